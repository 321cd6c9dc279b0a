// Hostile clients for strategy comparisons: pure functions that turn an honestly trained flat weight
// buffer into a hostile one, given the base weights the client started from. No TF.js, no I/O.
//
//   scaled     w' = base + s * (w - base)       (a boosted update; s = 10 is a classic model-replacement)
//   sign_flip  w' = base - s * (w - base)       (pushes the model the wrong way)
//   random     w' = base + s * z,  z ~ N(0, 1)  (noise of standard deviation s, no training signal)
//   nan        w' = NaN everywhere              (a broken client; the server must refuse it)

export const ATTACK_KINDS = Object.freeze(['scaled', 'sign_flip', 'random', 'nan']);

function checkPair(trained, base) {
  if (!(trained instanceof Float32Array) || !(base instanceof Float32Array)) {
    throw new TypeError('trained and base weights must be Float32Arrays');
  }
  if (trained.length !== base.length) {
    throw new RangeError(
      `trained weights hold ${trained.length} values, base weights ${base.length}; they must match`);
  }
}

function checkScale(scale) {
  if (typeof scale !== 'number' || !Number.isFinite(scale)) {
    throw new TypeError(`attack scale must be a finite number, got ${scale}`);
  }
}

/** base + scale * (trained - base), as a new Float32Array. */
export function scaledUpdate(trained, base, scale) {
  checkPair(trained, base);
  checkScale(scale);
  const out = new Float32Array(trained.length);
  for (let i = 0; i < out.length; i++) out[i] = base[i] + scale * (trained[i] - base[i]);
  return out;
}

/** base - scale * (trained - base), as a new Float32Array. */
export function signFlipUpdate(trained, base, scale) {
  return scaledUpdate(trained, base, -scale);
}

/**
 * A seeded uniform generator on [0, 1) (mulberry32): the same seed gives the same sequence, so a
 * hostile run can be repeated.
 */
export function seededRandom(seed) {
  let a = (seed >>> 0) || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** base + scale * z with z standard normal (Box-Muller on `random`, a () => [0, 1) function). */
export function randomUpdate(base, scale, random = Math.random) {
  if (!(base instanceof Float32Array)) throw new TypeError('base weights must be a Float32Array');
  checkScale(scale);
  const out = new Float32Array(base.length);
  for (let i = 0; i < out.length; i += 2) {
    const u1 = 1 - random(); // (0, 1]: log stays finite
    const u2 = random();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = base[i] + scale * r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = base[i + 1] + scale * r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** A buffer of the same length holding only NaN. */
export function nanUpdate(trained) {
  if (!(trained instanceof Float32Array)) throw new TypeError('trained weights must be a Float32Array');
  return new Float32Array(trained.length).fill(NaN);
}

/**
 * applyAttack(kind, trained, base, {scale = 1, random = Math.random}) -> Float32Array
 * Dispatch on `kind` (one of ATTACK_KINDS); never modifies `trained` or `base`.
 */
export function applyAttack(kind, trained, base, { scale = 1, random = Math.random } = {}) {
  switch (kind) {
    case 'scaled':
      return scaledUpdate(trained, base, scale);
    case 'sign_flip':
      return signFlipUpdate(trained, base, scale);
    case 'random':
      checkPair(trained, base);
      return randomUpdate(base, scale, random);
    case 'nan':
      checkPair(trained, base);
      return nanUpdate(trained);
    default:
      throw new RangeError(`unknown attack ${JSON.stringify(kind)}; known: ${ATTACK_KINDS.join(', ')}`);
  }
}
