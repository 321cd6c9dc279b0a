// The encodings codec (src/encoding.js) and the protocol client sending and receiving compressed
// tensors against a real `wnn serve` (digits_mlp).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  decodeQ8, encodeQ8, float16Bits, fromFloat16, OFFER_ALL, seededRandom, toFloat16,
} from '../src/encoding.js';
import { decodeFrame, encodeFrame } from '../src/frame.js';
import { WebnnClient } from '../src/protocol.js';
import { startServer } from './serve.js';

test('float16 bits of known values (IEEE binary16, round to nearest even)', () => {
  const cases = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff],
    [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00], [2 ** -24, 0x0001], [2 ** -14, 0x0400],
    [2 ** -25, 0x0000], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66],
  ];
  for (const [value, bits] of cases) assert.equal(float16Bits(value), bits, `float16(${value})`);
  assert.ok(Number.isNaN(fromFloat16(Uint16Array.of(float16Bits(NaN)))[0]));
});

test('float16 round trip: exact for every half value, within half an ulp for floats', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
  const wide = fromFloat16(all);
  const back = toFloat16(wide);
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(wide[h])) continue;
    assert.equal(back[h], h, `half 0x${h.toString(16)}`);
  }
  const random = seededRandom(3);
  const values = Float32Array.from({ length: 10000 }, () => (random() - 0.5) * 8);
  const restored = fromFloat16(toFloat16(values));
  for (let i = 0; i < values.length; i++) {
    assert.ok(Math.abs(restored[i] - values[i]) <= Math.abs(values[i]) * 2 ** -11 + 2 ** -25);
  }
});

test('q8: scales are max|d|/127, codes within [-127, 127], error below one step', () => {
  const random = seededRandom(7);
  const sizes = [300, 5, 0, 200];
  const total = 505;
  const base = Float32Array.from({ length: total }, () => random() - 0.5);
  const trained = Float32Array.from(base, (b, i) => b + (i < 300 ? 0.01 : 3) * (random() - 0.5));
  trained.fill(base[300], 300, 305); // a tensor that did not move: scale 0
  trained[300] = base[300];
  const { q, scales } = encodeQ8(trained, base, sizes, random);
  assert.equal(q.length, total);
  assert.equal(scales.length, 4);
  assert.equal(scales[2], 0);
  const out = decodeQ8(q, scales, base, sizes);
  let offset = 0;
  for (const [t, size] of sizes.entries()) {
    let max = 0;
    for (let i = offset; i < offset + size; i++) max = Math.max(max, Math.abs(trained[i] - base[i]));
    assert.ok(Math.abs(scales[t] - max / 127) <= 1e-6 * max, `scale ${t}`);
    for (let i = offset; i < offset + size; i++) {
      assert.ok(q[i] >= -127 && q[i] <= 127);
      assert.ok(Math.abs(out[i] - trained[i]) <= scales[t] * 1.0001 + 1e-7, `value ${i}`);
    }
    offset += size;
  }
});

test('q8 stochastic rounding is unbiased: the mean of many encodings is the delta', () => {
  const random = seededRandom(11);
  const n = 64;
  const base = new Float32Array(n);
  const trained = Float32Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 0.37 * Math.sin(i)));
  const trials = 4000;
  const sum = new Float64Array(n);
  let scale = 0;
  for (let k = 0; k < trials; k++) {
    const { q, scales } = encodeQ8(trained, base, [n], random);
    scale = scales[0];
    for (let i = 0; i < n; i++) sum[i] += q[i] * scales[0];
  }
  // each value's rounding error is within one step s, variance <= s^2/4: the mean over T trials
  // has standard deviation <= s / (2 sqrt(T)); 5 of them bounds a false alarm at ~1e-6 per value
  const bound = 5 * scale / (2 * Math.sqrt(trials));
  for (let i = 0; i < n; i++) {
    const mean = sum[i] / trials;
    assert.ok(Math.abs(mean - trained[i]) <= bound, `value ${i}: mean ${mean} vs ${trained[i]} (bound ${bound})`);
  }
  // and the rounding is not deterministic: a value between two codes takes both
  const seen = new Set();
  for (let k = 0; k < 50; k++) seen.add(encodeQ8(trained, base, [n], random).q[5]);
  assert.ok(seen.size >= 2);
});

test('frames carry float16 and int8 tensors', () => {
  const bits = toFloat16(Float32Array.of(1, -2, 0.5));
  const codes = Int8Array.of(-127, 0, 5, 127, 1);
  const frame = encodeFrame({ a: 1 }, [
    { name: 'h', dtype: 'float16', data: bits }, { name: 'q', data: codes },
    { name: 's', data: Float32Array.of(0.25) },
  ]);
  const back = decodeFrame(frame);
  assert.equal(back.tensors.h.dtype, 'float16');
  assert.deepEqual([...fromFloat16(back.tensors.h.data)], [1, -2, 0.5]);
  assert.deepEqual([...back.tensors.q.data], [-127, 0, 5, 127, 1]);
  assert.equal(back.tensors.s.data[0], 0.25);
  assert.throws(() => encodeFrame({}, [{ name: 'h', dtype: 'float16', data: new Float32Array(2) }]), /Uint16Array/);
});

let server;
before(async () => { server = await startServer(['--max-staleness', '1000']); });
after(async () => { await server?.stop(); });

async function trainTask(client) {
  for (let i = 0; i < 50; i++) {
    const answer = await client.requestTask('train');
    if (answer.task) return answer.task;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no train task in 50 asks');
}

const info = { steps: 1, loss: 1, accuracy: 0, timings: { fetch: 0, compute: 0, send: 0 } };

for (const [update, weights] of [['q8', 'f16'], ['f16', 'f32'], ['q8', 'f32']]) {
  test(`a real server merges ${update} updates and sends ${weights} weights`, async () => {
    const client = new WebnnClient(server.url, {
      client: { kind: 'node', name: `enc-${update}-${weights}` },
      encodings: { update: [update], weights: [weights] }, random: seededRandom(5),
    });
    const joined = await client.join();
    assert.deepEqual(joined.encodings, { update, weights });
    assert.deepEqual(client.encoding, { update, weights });
    const task = await trainTask(client);
    const fetched = await client.weights(task.urls.weights);
    assert.equal(fetched.weights.length, joined.model.totalParams);
    assert.match(client.weightsCache.etag, weights === 'f16' ? new RegExp(`^"v${task.version}-[0-9a-f]{16}-f16"$`) : new RegExp(`^"v${task.version}-[0-9a-f]{16}"$`));
    const trained = Float32Array.from(fetched.weights, (w, i) => w + 0.01 * Math.sin(i));
    const answer = await client.submitUpdate(task, trained, info, { next: 'train' });
    assert.equal(answer.accepted, true);
    // the follow-up frame carries the next version's weights in our encoding, widened
    assert.equal(answer.inputs.weights.weights.length, joined.model.totalParams);
    // ... under the server's own ETag, so fetching that version again is a 304 from the cache
    const again = await client.weights(answer.next.task.urls.weights);
    assert.equal(again.cached, true);
    const status = await client.status();
    assert.ok(status.traffic.updates[update].count >= 1);
    await client.leave();
  });
}

test('an update in another encoding than negotiated is refused and changes nothing', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'enc-wrong' }, encodings: OFFER_ALL });
  await client.join();
  assert.equal(client.encoding.update, 'q8');
  const task = await trainTask(client);
  const fetched = await client.weights(task.urls.weights);
  const before = await client.status();
  client.encoding.update = 'f32'; // as a broken client would
  await assert.rejects(client.submitUpdate(task, fetched.weights, info),
    (err) => err.code === 'wrong_encoding' && err.status === 400 && /q8/.test(err.message));
  assert.equal((await client.status()).version, before.version);
  await client.leave();
});
