// The WNF1 frame codec (docs/protocol.md, "Frame"): batches and updates.
//
//   bytes 0..3  ASCII "WNF1"
//   bytes 4..7  uint32 LE: H, byte length of the JSON header
//   bytes 8..   H bytes of UTF-8 JSON header, zero padding to the next multiple of 8
//   payload     tensors, each at header.tensors[i].offset (from payload start, multiple of 8)
//
// Decoding returns typed-array views into the received buffer whenever the host is little-endian
// and the tensor is aligned (always, for frames we or the server write); otherwise a copy.

export const MAGIC = 'WNF1';
export const FRAME_CONTENT_TYPE = 'application/vnd.webnn.frame';
const ALIGN = 8;
// float16 travels as its bits (Uint16Array; encoding.js converts), int8 as Int8Array.
const DTYPES = { float32: Float32Array, int32: Int32Array, float16: Uint16Array, int8: Int8Array };
const GETTERS = { float32: 'getFloat32', int32: 'getInt32', float16: 'getUint16', int8: 'getInt8' };
const SETTERS = { float32: 'setFloat32', int32: 'setInt32', float16: 'setUint16', int8: 'setInt8' };

/** The dtype name of a tensor to encode: its `dtype`, else from its array type. */
function dtypeOf(t) {
  if (t.dtype !== undefined) return DTYPES[t.dtype] && t.data instanceof DTYPES[t.dtype] ? t.dtype : null;
  if (t.data instanceof Float32Array) return 'float32';
  if (t.data instanceof Int32Array) return 'int32';
  if (t.data instanceof Int8Array) return 'int8';
  return null;
}
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A frame that cannot be decoded or encoded; `message` says what and where (byte counts). */
export class FrameError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FrameError';
  }
}

const pad = (n) => Math.ceil(n / ALIGN) * ALIGN;

function elementCount(shape, where) {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new FrameError(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Encode a frame.
 * @param {object} fields message fields of the JSON header (must not contain `tensors`)
 * @param {Array<{name: string, data: Float32Array|Int32Array|Int8Array|Uint16Array, shape?: number[],
 *   dtype?: string}>} tensors (`dtype: 'float16'` with the bits in a Uint16Array)
 * @returns {Uint8Array} the whole frame
 */
export function encodeFrame(fields, tensors) {
  if ('tensors' in fields) throw new FrameError('header fields must not contain "tensors"');
  const entries = [];
  let offset = 0;
  for (const [i, t] of tensors.entries()) {
    const dtype = dtypeOf(t);
    if (dtype === null) throw new FrameError(`tensors[${i}] (${t.name}): data must be a Float32Array or Int32Array (or an Int8Array, or a Uint16Array with dtype 'float16')`);
    const shape = t.shape ?? [t.data.length];
    if (elementCount(shape, `tensors[${i}] (${t.name})`) !== t.data.length) {
      throw new FrameError(`tensors[${i}] (${t.name}): shape ${JSON.stringify(shape)} does not hold ${t.data.length} values`);
    }
    entries.push({ name: t.name, dtype, shape, offset, byteLength: t.data.byteLength });
    offset = pad(offset + t.data.byteLength);
  }
  const header = new TextEncoder().encode(JSON.stringify({ ...fields, tensors: entries }));
  const payloadStart = pad(8 + header.length);
  const frame = new Uint8Array(payloadStart + offset);
  frame.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(frame.buffer).setUint32(4, header.length, true);
  frame.set(header, 8);
  for (const [i, t] of tensors.entries()) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (LITTLE_ENDIAN) {
      frame.set(bytes, payloadStart + entries[i].offset);
    } else {
      const view = new DataView(frame.buffer, payloadStart + entries[i].offset, t.data.byteLength);
      const put = SETTERS[entries[i].dtype];
      const size = t.data.BYTES_PER_ELEMENT;
      t.data.forEach((v, k) => view[put](size * k, v, true));
    }
  }
  return frame;
}

/**
 * Decode a frame.
 * @param {ArrayBuffer|Uint8Array} input
 * @returns {{header: object, tensors: Object<string, {dtype: string, shape: number[], data: Float32Array|Int32Array}>}}
 *   `header` is the JSON header without `tensors`.
 */
export function decodeFrame(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (bytes.length < 8) throw new FrameError(`frame holds ${bytes.length} bytes; at least 8 needed for magic and header length`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== MAGIC) throw new FrameError(`frame starts with ${JSON.stringify(magic)}, expected "${MAGIC}"`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(4, true);
  if (8 + headerLength > bytes.length) {
    throw new FrameError(`frame header claims ${headerLength} bytes but only ${bytes.length - 8} follow the length field`);
  }
  let header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (err) {
    throw new FrameError(`frame header is not UTF-8 JSON: ${err.message}`);
  }
  if (header === null || typeof header !== 'object' || !Array.isArray(header.tensors)) {
    throw new FrameError('frame header must be a JSON object with a "tensors" list');
  }
  const payloadStart = Math.min(pad(8 + headerLength), bytes.length);
  const payloadLength = bytes.length - payloadStart;
  const tensors = {};
  for (const [i, t] of header.tensors.entries()) {
    const where = `header.tensors[${i}]${t && typeof t.name === 'string' ? ` (${t.name})` : ''}`;
    if (!t || typeof t.name !== 'string') throw new FrameError(`${where}: "name" must be a string`);
    const Ctor = DTYPES[t.dtype];
    if (!Ctor) throw new FrameError(`${where}: dtype ${JSON.stringify(t.dtype)} is not one of ${Object.keys(DTYPES).join(', ')}`);
    const size = Ctor.BYTES_PER_ELEMENT;
    const count = elementCount(t.shape, where);
    if (!Number.isInteger(t.offset) || t.offset < 0 || t.offset % 4 !== 0) {
      throw new FrameError(`${where}: offset ${JSON.stringify(t.offset)} must be a non-negative multiple of 4`);
    }
    if (t.byteLength !== count * size) {
      throw new FrameError(`${where}: byteLength ${t.byteLength} does not match shape ${JSON.stringify(t.shape)} (${count * size} bytes)`);
    }
    if (t.offset + t.byteLength > payloadLength) {
      throw new FrameError(`${where}: needs payload bytes ${t.offset}..${t.offset + t.byteLength} but the payload holds ${payloadLength} bytes`);
    }
    const start = bytes.byteOffset + payloadStart + t.offset;
    let data;
    if (LITTLE_ENDIAN && start % size === 0) {
      data = new Ctor(bytes.buffer, start, count);
    } else {
      data = new Ctor(count);
      const view = new DataView(bytes.buffer, start, t.byteLength);
      const get = GETTERS[t.dtype];
      for (let k = 0; k < count; k++) data[k] = view[get](size * k, true);
    }
    tensors[t.name] = { dtype: t.dtype, shape: t.shape, data };
  }
  const { tensors: _entries, ...fields } = header;
  return { header: fields, tensors };
}
