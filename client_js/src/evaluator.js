// The evaluator: loss and accuracy of a compiled TF.js model over one validation chunk.
//
//   loss     = (1/n) sum_i loss(model(x_i), y_i)
//   accuracy = (1/n) sum_i [prediction_i == y_i]   (null when the model is compiled without it)
//
// Computed with `model.evaluate` in slices of `batchSize`; TF.js weights each slice by its size,
// so these are exact means over the n examples. Every tensor made here is disposed.
//
// For a classifier (sparse or one-hot categorical cross-entropy, one output [n, K]) also the
// per-class counts the server turns into the worst-class accuracy:
//   count[k]   = #{i : label_i == k}
//   correct[k] = #{i : label_i == k and argmax model(x_i) == k}
// where label_i is y_i (sparse) or argmax y_i (one-hot).

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

/** Losses whose models report per-class counts: whether the labels are class indices. */
const CLASS_LOSSES = { sparseCategoricalCrossentropy: true, categoricalCrossentropy: false };

/** The compiled loss's name when it is one of `CLASS_LOSSES` and the model has one [n, K] output. */
export function classLoss(model) {
  const loss = Array.isArray(model.loss) ? (model.loss.length === 1 ? model.loss[0] : null) : model.loss;
  if (typeof loss !== 'string' || !(loss in CLASS_LOSSES)) return null;
  const outputs = model.outputs ?? [];
  if (outputs.length !== 1 || outputs[0].shape.length !== 2 || !(outputs[0].shape[1] > 0)) return null;
  return loss;
}

/**
 * Per-class counts `{correct, count}` (integer lists of length K) of a classifier over (xs, ys);
 * `sparse`: ys holds class indices ([n] or [n, 1]), else one-hot rows [n, K]. Predictions are
 * made in slices of `batchSize`; every tensor made here is disposed.
 */
export async function classCounts(tf, model, xs, ys, { sparse, batchSize = 256 }) {
  const classes = model.outputs[0].shape[1];
  const sums = tf.tidy(() => {
    const predictions = model.predict(xs, { batchSize });
    const predicted = predictions.argMax(-1).toInt();
    const labels = sparse ? ys.reshape([-1]).toInt() : ys.argMax(-1).toInt();
    const members = tf.oneHot(labels, classes).toFloat(); // [n, K]
    const hits = predicted.equal(labels).toFloat().expandDims(1); // [n, 1]
    return tf.stack([members.mul(hits).sum(0), members.sum(0)]); // [2, K]
  });
  try {
    const values = await sums.data();
    return {
      correct: Array.from(values.subarray(0, classes), Math.round),
      count: Array.from(values.subarray(classes), Math.round),
    };
  } finally {
    sums.dispose();
  }
}

/**
 * @param {object} tf the TensorFlow.js namespace
 * @param {object} model a compiled tf.LayersModel holding the weights to evaluate
 * @param {{data, shape, dtype}} x inputs, first dimension n
 * @param {{data, shape, dtype}} y targets, first dimension n
 * @returns {Promise<{loss: number, accuracy: number|null, examples: number,
 *   classes?: {correct: number[], count: number[]}}>} (`classes` for classifiers, see `classLoss`)
 */
export async function evaluateChunk(tf, model, x, y, { batchSize = 256 } = {}) {
  const xs = toTensor(tf, x);
  const ys = toTargetTensor(tf, y);
  let outputs = [];
  try {
    const evaluated = model.evaluate(xs, ys, { batchSize, verbose: 0 });
    outputs = Array.isArray(evaluated) ? evaluated : [evaluated];
    const values = await Promise.all(outputs.map((t) => t.data()));
    const names = model.metricsNames ?? ['loss'];
    const logs = {};
    names.forEach((name, i) => { logs[name] = values[i]?.[0]; });
    const result = { loss: values[0][0], accuracy: readAccuracy(logs), examples: x.shape[0] };
    const loss = classLoss(model);
    if (loss !== null) {
      result.classes = await classCounts(tf, model, xs, ys, {
        sparse: CLASS_LOSSES[loss], batchSize });
    }
    return result;
  } finally {
    tf.dispose([xs, ys, ...outputs]);
  }
}
