// The evaluator: loss and accuracy of a compiled TF.js model over one validation chunk.
//
//   loss     = (1/n) sum_i loss(model(x_i), y_i)
//   accuracy = (1/n) sum_i [prediction_i == y_i]   (null when the model is compiled without it)
//
// Computed with `model.evaluate` in slices of `batchSize`; TF.js weights each slice by its size,
// so these are exact means over the n examples. Every tensor made here is disposed.

/** A served {data, shape, dtype} input tensor (from a frame) as a TF.js tensor. */
export function toTensor(tf, t) {
  return tf.tensor(t.data, t.shape, t.dtype);
}

/**
 * A served target tensor as a TF.js tensor. TF.js losses take float32 targets only (its sparse
 * cross-entropy floors them), so int32 class indices become float32 (exact below 2^24).
 */
export function toTargetTensor(tf, t) {
  return t.dtype === 'int32' ? tf.tensor(Float32Array.from(t.data), t.shape, 'float32') : toTensor(tf, t);
}

/** Accuracy from TF.js logs or history (`acc` or `accuracy`), entry `index` when it is a list. */
export function readAccuracy(logs, index = null) {
  const value = logs.acc ?? logs.accuracy;
  if (value === undefined) return null;
  return index === null ? value : value[index];
}

/**
 * @param {object} tf the TensorFlow.js namespace
 * @param {object} model a compiled tf.LayersModel holding the weights to evaluate
 * @param {{data, shape, dtype}} x inputs, first dimension n
 * @param {{data, shape, dtype}} y targets, first dimension n
 * @returns {Promise<{loss: number, accuracy: number|null, examples: number}>}
 */
export async function evaluateChunk(tf, model, x, y, { batchSize = 256 } = {}) {
  const xs = toTensor(tf, x);
  const ys = toTargetTensor(tf, y);
  let outputs = [];
  try {
    const result = model.evaluate(xs, ys, { batchSize, verbose: 0 });
    outputs = Array.isArray(result) ? result : [result];
    const values = await Promise.all(outputs.map((t) => t.data()));
    const names = model.metricsNames ?? ['loss'];
    const logs = {};
    names.forEach((name, i) => { logs[name] = values[i]?.[0]; });
    return { loss: values[0][0], accuracy: readAccuracy(logs), examples: x.shape[0] };
  } finally {
    tf.dispose([xs, ys, ...outputs]);
  }
}
