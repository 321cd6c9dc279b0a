import { test } from 'node:test';
import assert from 'node:assert/strict';

import { decodeFrame, encodeFrame, FrameError } from '../src/frame.js';

test('round trip keeps fields, names, shapes, dtypes and values', () => {
  const x = Float32Array.from({ length: 15 }, (_, i) => i / 7 - 1);
  const y = Int32Array.from([3, -1, 2147483647, 0, 5]);
  const frame = encodeFrame({ baseVersion: 12, loss: 0.5, timings: { fetch: 0.1 } }, [
    { name: 'x', data: x, shape: [5, 3] },
    { name: 'y', data: y },
  ]);
  const { header, tensors } = decodeFrame(frame);
  assert.deepEqual(header, { baseVersion: 12, loss: 0.5, timings: { fetch: 0.1 } });
  assert.deepEqual(tensors.x.shape, [5, 3]);
  assert.equal(tensors.x.dtype, 'float32');
  assert.deepEqual(Array.from(tensors.x.data), Array.from(x));
  assert.equal(tensors.y.dtype, 'int32');
  assert.deepEqual(Array.from(tensors.y.data), Array.from(y));
});

test('layout follows the protocol: magic, LE header length, 8-byte aligned payload offsets', () => {
  const frame = encodeFrame({ k: 'é' }, [
    { name: 'a', data: new Float32Array([1, 2, 3]) }, // 12 bytes -> next tensor at offset 16
    { name: 'b', data: new Int32Array([7]) },
  ]);
  assert.equal(new TextDecoder().decode(frame.subarray(0, 4)), 'WNF1');
  const view = new DataView(frame.buffer);
  const h = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(frame.subarray(8, 8 + h)));
  assert.deepEqual(header.tensors.map((t) => [t.name, t.offset, t.byteLength]), [['a', 0, 12], ['b', 16, 4]]);
  const payload = Math.ceil((8 + h) / 8) * 8;
  for (let i = 8 + h; i < payload; i++) assert.equal(frame[i], 0, `padding byte ${i}`);
  assert.equal(view.getFloat32(payload + 8, true), 3);
  assert.equal(view.getInt32(payload + 16, true), 7);
  assert.equal(frame.length, payload + 24);
});

test('decoding works from an ArrayBuffer and from an unaligned Uint8Array', () => {
  const frame = encodeFrame({}, [{ name: 'w', data: new Float32Array([1.5, -2.5]) }]);
  assert.deepEqual(Array.from(decodeFrame(frame.slice().buffer).tensors.w.data), [1.5, -2.5]);
  const shifted = new Uint8Array(frame.length + 1);
  shifted.set(frame, 1);
  assert.deepEqual(Array.from(decodeFrame(shifted.subarray(1)).tensors.w.data), [1.5, -2.5]);
});

test('bad frames are refused with a message that says what is wrong', () => {
  const good = encodeFrame({}, [{ name: 'w', data: new Float32Array(4) }]);
  const cases = [
    [new Uint8Array(5), /5 bytes; at least 8/],
    [Uint8Array.from([...new TextEncoder().encode('NOPE'), 0, 0, 0, 0]), /expected "WNF1"/],
    [good.subarray(0, 12), /claims \d+ bytes but only 4 follow/],
    [good.subarray(0, good.length - 4), /needs payload bytes 0\.\.16 but the payload holds 12 bytes/],
  ];
  for (const [bytes, pattern] of cases) assert.throws(() => decodeFrame(bytes), (err) => err instanceof FrameError && pattern.test(err.message));

  const withHeader = (header) => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + 64);
    out.set(new TextEncoder().encode('WNF1'));
    new DataView(out.buffer).setUint32(4, json.length, true);
    out.set(json, 8);
    return out;
  };
  assert.throws(() => decodeFrame(withHeader([1])), /JSON object with a "tensors" list/);
  assert.throws(() => decodeFrame(withHeader({ tensors: [{ name: 'x', dtype: 'float64', shape: [1], offset: 0, byteLength: 8 }] })),
    /header\.tensors\[0\] \(x\): dtype "float64"/);
  assert.throws(() => decodeFrame(withHeader({ tensors: [{ name: 'x', dtype: 'float32', shape: [3], offset: 0, byteLength: 8 }] })),
    /byteLength 8 does not match shape \[3\] \(12 bytes\)/);
  assert.throws(() => decodeFrame(withHeader({ tensors: [{ name: 'x', dtype: 'int32', shape: [1], offset: 2, byteLength: 4 }] })),
    /offset 2 must be a non-negative multiple of 4/);
});

test('encoding refuses data that does not fit its shape or dtype', () => {
  assert.throws(() => encodeFrame({}, [{ name: 'x', data: new Float32Array(6), shape: [4, 2] }]), /shape \[4,2\] does not hold 6 values/);
  assert.throws(() => encodeFrame({}, [{ name: 'x', data: new Float64Array(2) }]), /Float32Array or Int32Array/);
  assert.throws(() => encodeFrame({ tensors: 1 }, []), /must not contain "tensors"/);
});
