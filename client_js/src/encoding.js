// Compressed updates and weights (docs/protocol.md, "Encodings"): the client's half of the codec.
//
// - float16: `toFloat16(Float32Array) -> Uint16Array` (IEEE binary16 bits, round to nearest even,
//   overflow to infinity, subnormals kept) and `fromFloat16(Uint16Array) -> Float32Array` (exact;
//   a 65536-entry table built once). Node 20 has no Float16Array, so this is bit manipulation.
// - q8: `encodeQ8(trained, base, sizes, random)`: the delta d = trained - base, per manifest tensor
//   t a scale s_t = max|d_t| / 127 (stored as float32) and q = floor(d / s_t + u), u ~ U[0, 1)
//   (stochastic rounding: E[q s_t] = d, so rounding adds no bias that could accumulate over
//   merges), clamped to [-127, 127] as int8. `decodeQ8(q, scales, base, sizes)` is the server's
//   reconstruction w = base + q s_t (used in tests).
// - `seededRandom(seed)`: a small deterministic generator for tests and reproducible runs;
//   `cryptoRandom()` draws every value from crypto.getRandomValues (in blocks), so the rounding
//   noise is uniform and independent, which the unbiasedness of stochastic rounding rests on.

export const UPDATE_ENCODINGS = ['q8', 'f16', 'f32'];
export const WEIGHTS_ENCODINGS = ['f16', 'f32'];
/** The join offer of a client that implements every encoding (the worker's and page's default). */
export const OFFER_ALL = Object.freeze({ update: UPDATE_ENCODINGS, weights: WEIGHTS_ENCODINGS });

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bits of one number (round to nearest even). */
export function float16Bits(value) {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf or NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow: infinity
  if (e <= 0) { // subnormal half (or zero)
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1))) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half += 1; // may carry into the exponent
  return sign | half;
}

/** Float32 values as float16 bits. */
export function toFloat16(values, out = new Uint16Array(values.length)) {
  for (let i = 0; i < values.length; i++) out[i] = float16Bits(values[i]);
  return out;
}

let table = null;

function halfTable() {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) table[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) table[h] = mant ? NaN : sign * Infinity;
    else table[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return table;
}

/** Float16 bits widened to float32 (exact). */
export function fromFloat16(bits, out = new Float32Array(bits.length)) {
  const t = halfTable();
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/** A deterministic generator of floats in [0, 1) from an integer seed. */
export function seededRandom(seed) {
  let a = (seed >>> 0) ^ 0x9e3779b9;
  let b = Math.imul(seed >>> 0, 0x85ebca6b) ^ 0xc2b2ae35;
  if (a === 0 && b === 0) a = 1;
  return () => {
    let s1 = a;
    const s0 = b;
    a = s0;
    s1 ^= s1 << 23;
    s1 ^= s1 >>> 17;
    s1 ^= s0 ^ (s0 >>> 26);
    b = s1;
    return ((a + b) >>> 0) / 4294967296;
  };
}

/** Floats in [0, 1) straight from the platform's cryptographic source, drawn in blocks. */
export function cryptoRandom() {
  const block = new Uint32Array(16384); // getRandomValues takes at most 65536 bytes per call
  let next = block.length;
  return () => {
    if (next === block.length) {
      globalThis.crypto.getRandomValues(block);
      next = 0;
    }
    return block[next++] / 4294967296;
  };
}

/**
 * Quantise the delta `trained - base` to int8 with one scale per tensor (see the top).
 * @param {Float32Array} trained
 * @param {Float32Array} base
 * @param {number[]} sizes element counts of the manifest tensors, in order (sum = length)
 * @param {() => number} [random] uniform [0, 1) source (default: `cryptoRandom()`)
 * @returns {{q: Int8Array, scales: Float32Array}} non-finite deltas give a non-finite scale
 */
export function encodeQ8(trained, base, sizes, random = cryptoRandom()) {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (trained.length !== total || base.length !== total) {
    throw new RangeError(`q8: ${trained.length} trained and ${base.length} base values; the tensors hold ${total}`);
  }
  const q = new Int8Array(total);
  const scales = new Float32Array(sizes.length);
  let offset = 0;
  for (const [t, size] of sizes.entries()) {
    const end = offset + size;
    let max = 0;
    for (let i = offset; i < end; i++) {
      const d = Math.abs(trained[i] - base[i]);
      if (!(d <= max)) max = d; // NaN propagates into the scale: the server refuses it
    }
    f32[0] = max / 127;
    const scale = f32[0];
    scales[t] = scale;
    if (scale > 0 && Number.isFinite(scale)) {
      for (let i = offset; i < end; i++) {
        const v = Math.floor((trained[i] - base[i]) / scale + random());
        q[i] = v > 127 ? 127 : v < -127 ? -127 : v;
      }
    }
    offset = end;
  }
  return { q, scales };
}

/** The weights `base + q * s_t` (float32), as the server reconstructs them. */
export function decodeQ8(q, scales, base, sizes) {
  const out = new Float32Array(q.length);
  let offset = 0;
  for (const [t, size] of sizes.entries()) {
    for (let i = offset; i < offset + size; i++) out[i] = base[i] + q[i] * scales[t];
    offset += size;
  }
  return out;
}

/** Element counts of a model description's `weightsManifest` tensors. */
export function manifestSizes(manifest) {
  return manifest.map((entry) => entry.shape.reduce((a, b) => a * b, 1));
}

/**
 * The update frame's tensors in `encoding` (`f32`, `f16`, `q8`).
 * @returns {Array<{name: string, data: Float32Array|Uint16Array|Int8Array, dtype?: string}>}
 */
export function updateTensors(encoding, trained, { base = null, sizes = null, random } = {}) {
  if (encoding === 'f16') return [{ name: 'weights', dtype: 'float16', data: toFloat16(trained) }];
  if (encoding === 'q8') {
    if (!base || !sizes) throw new Error('a q8 update needs the base weights and the tensor sizes');
    const { q, scales } = encodeQ8(trained, base, sizes, random);
    return [{ name: 'delta_q8', data: q }, { name: 'scales', data: scales }];
  }
  return [{ name: 'weights', data: trained }];
}

/** Bytes per value of each weights encoding. */
export const WEIGHTS_ITEM_BYTES = { f32: 4, f16: 2 };
