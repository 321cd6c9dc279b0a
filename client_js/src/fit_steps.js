// One train task's optimizer steps without `model.fit`'s per-call machinery, and one read-back for
// the trained weights, loss and metrics together.
//
// The steps are those of `model.fit(xs, ys, {batchSize: b, epochs: 1, shuffle: false})`: TF.js's
// own train function (`LayersModel.makeTrainFunction`: forward pass in training mode, the compiled
// loss plus regularizer penalties, `optimizer.minimize`, the compiled metrics) on the consecutive
// slices [k b, min((k + 1) b, n)) of the inputs, in order. The reported values are fit's epoch logs
// (TF.js's BaseLogger), each the slice-size-weighted mean over the steps, measured before each
// step's own update:
//
//   loss = (1/n) sum_k size_k loss_k,   metric = (1/n) sum_k size_k metric_k
//
// What it saves per task: fit's input checks, callback lists, History and its read-back of every
// logged scalar, and a separate read-back of the weights. Here the weights (manifest order, as
// `model.weights`) and the logs come back in one `data()` call: one GPU synchronisation per task
// on webgl/webgpu instead of two, and one allocation.
//
// Between steps it awaits `yieldFn()` at most every `yieldMs` milliseconds (fit's 'auto' yields
// every 125 ms), so a page stays responsive during long tasks.
//
// It uses two LayersModel methods TF.js does not document (`standardizeUserDataXY`,
// `makeTrainFunction`; @tensorflow/tfjs 4.22.0, package.json pins it); `canFitSteps(model)` says
// whether a model has them, and the trainer uses `model.fit` where it does not. Every tensor made
// here is disposed.

/** The LayersModel that trains: a Sequential's inner model, else the model itself. */
function trainable(model) {
  return model.model ?? model;
}

/** Whether `model` offers the TF.js internals `fitSteps` uses (else use `model.fit`). */
export function canFitSteps(model) {
  const inner = trainable(model);
  return typeof inner?.standardizeUserDataXY === 'function' && typeof inner.makeTrainFunction === 'function'
    && typeof inner.getDedupedMetricsNames === 'function' && Boolean(inner.optimizer_);
}

/**
 * Train one pass over (xs, ys) in slices of `batchSize`.
 * @param {object} tf the TensorFlow.js namespace
 * @param {object} model a compiled tf.LayersModel (or Sequential) for which `canFitSteps` holds
 * @param {object} xs input tensor, first dimension n
 * @param {object} ys target tensor, first dimension n
 * @param {{batchSize: number, yieldFn?: () => Promise<void>, yieldMs?: number}} options
 * @returns {Promise<{weights: Float32Array, logs: Object<string, number>, steps: number}>}
 *   `weights`: the trained weights as one new flat array (manifest order); `logs`: `loss` and the
 *   compiled metrics under fit's names (e.g. `acc`)
 */
export async function fitSteps(tf, model, xs, ys, { batchSize, yieldFn = null, yieldMs = 125 }) {
  const inner = trainable(model);
  if (inner.isTraining) throw new Error('Cannot start training because another fit() call is ongoing.');
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  inner.isTraining = true;
  let standardX = [];
  let standardY = [];
  const logged = []; // per step, the train function's scalars (loss, then the metrics)
  try {
    [standardX, standardY] = inner.standardizeUserDataXY(xs, ys, false, batchSize);
    const ins = standardX.concat(standardY);
    const n = ins[0].shape[0];
    const train = inner.makeTrainFunction();
    const names = inner.getDedupedMetricsNames();
    const sizes = [];
    let lastYield = performance.now();
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      let outs = [];
      tf.tidy(() => {
        outs = train(ins.map((t) => t.slice(start, size)));
        outs.forEach((o) => tf.keep(o));
      });
      logged.push(...outs);
      sizes.push(size);
      if (yieldFn && start + size < n && performance.now() - lastYield >= yieldMs) {
        await yieldFn();
        lastYield = performance.now();
      }
    }
    const steps = sizes.length;
    // One product for all logs: (1 x steps) size_k / n times (steps x logs) values; no work per step.
    const flat = tf.tidy(() => tf.concat([
      ...model.weights.map((w) => w.read().reshape([-1])),
      tf.matMul(tf.tensor2d(sizes.map((k) => k / n), [1, steps]),
        tf.stack(logged.map((o) => o.reshape([]))).reshape([steps, names.length])).reshape([-1]),
    ]));
    let values;
    try {
      values = await flat.data(); // a fresh array: no backend writes to it after this
    } finally {
      flat.dispose();
    }
    const size = values.length - names.length;
    const logs = Object.fromEntries(names.map((name, i) => [name, values[size + i]]));
    return { weights: values.subarray(0, size), logs, steps: sizes.length };
  } finally {
    inner.isTraining = false;
    tf.dispose(logged);
    tf.dispose(standardX.filter((t) => t !== xs));
    tf.dispose(standardY.filter((t) => t !== ys));
  }
}
