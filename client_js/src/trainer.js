// The trainer: builds the served model in TF.js, loads the flat weight buffer, trains the task's
// local steps and hands back one flat Float32Array. It never imports TF.js: `tf` is passed in.
//
// Contract (docs/architecture.md, "client_js"):
// - The model is built from the served topology with `tf.models.modelFromJSON` and compiled with the
//   served optimizer, loss and learning rate. It is kept between tasks and rebuilt only when the
//   topology changes.
// - Flat buffer <-> model: tensor i of the manifest is `flat.subarray(offset_i, offset_i + size_i)`
//   in `model.weights` order (trainable by layer, then non-trainable), as `getWeights`/`setWeights`.
// - A train task of n = batchSize x localSteps examples runs ceil(n / batchSize) optimizer steps, one
//   per consecutive slice of `batchSize` examples, in order (`model.fit`, one epoch, no shuffle).
//   `loss` and `accuracy` are the means over those steps (each measured before its own update).
//   fit_steps.js takes exactly these steps with fit's own train function, without fit's per-call
//   machinery and with one read-back for weights and logs; `model.fit` where TF.js lacks its hooks.
// - Optimizer state: kept between tasks by default (Adam moments carry over the server's merges, as
//   momentum does; no re-allocation per task). `resetOptimizer: true` makes a fresh optimizer per
//   task. A task with a different learning rate (the server scales it with the live clients,
//   docs/scaling.md) changes the kept optimizer's rate in place (`setLearningRate`): its moments,
//   accumulators and iteration count stay (resetting Adam's moments per task was measured 1.7-4x
//   slower to a target, docs/scaling.md).
// - Every tensor made here is disposed: `tf.memory().numTensors` stays flat across tasks.
// - `fit` yields to the event loop at most every 125 ms (TF.js's 'auto') so a page stays responsive,
//   but through a message-channel task (Node: setImmediate) instead of TF.js's default
//   requestAnimationFrame, which never fires in a hidden tab and would stall training there.
// - The input buffer is never written to.

import { evaluateChunk, readAccuracy, toTargetTensor, toTensor } from './evaluator.js';
import { canFitSteps, fitSteps } from './fit_steps.js';

const OPTIMIZERS = {
  sgd: (tf, lr) => tf.train.sgd(lr),
  momentum: (tf, lr) => tf.train.momentum(lr, 0.9),
  adam: (tf, lr) => tf.train.adam(lr),
  adamax: (tf, lr) => tf.train.adamax(lr),
  rmsprop: (tf, lr) => tf.train.rmsprop(lr),
  adagrad: (tf, lr) => tf.train.adagrad(lr),
  adadelta: (tf, lr) => tf.train.adadelta(lr),
};

/** A model description that does not fit this client (names the field and the mismatch). */
export class ModelMismatchError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ModelMismatchError';
  }
}


/** Resolves in a new event-loop task: not tied to frames, not throttled in hidden tabs. */
export function yieldToEventLoop() {
  if (typeof setImmediate === 'function') return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

export class Trainer {
  /**
   * @param {object} tf the TensorFlow.js namespace
   * @param {{resetOptimizer?: boolean}} [options]
   */
  constructor(tf, { resetOptimizer = false } = {}) {
    this.tf = tf;
    this.resetOptimizer = resetOptimizer;
    this.model = null;
    this.optimizer = null;
    this.learningRate = null;
    this.topologyKey = null;
    this.training = null;
    this.sizes = [];
    this.size = 0;
  }

  /**
   * Build (or keep) the model for a served model description
   * `{topology, weightsManifest?, training: {loss, optimizer, learningRate, metrics}}`.
   * @returns {Promise<boolean>} true when the model was (re)built
   */
  async setModel(description) {
    const optimizer = description.training?.optimizer;
    if (!OPTIMIZERS[optimizer]) {
      throw new ModelMismatchError(`training.optimizer ${JSON.stringify(optimizer)} is not one of ${Object.keys(OPTIMIZERS).join(', ')}`);
    }
    const key = JSON.stringify(description.topology);
    if (key === this.topologyKey && this.model) {
      const changed = JSON.stringify(description.training) !== JSON.stringify(this.training);
      this.training = description.training;
      if (changed) this.compile(description.training.learningRate);
      return false;
    }
    this.disposeModel();
    const model = await this.tf.models.modelFromJSON({ modelTopology: description.topology });
    const shapes = model.weights.map((w) => w.shape);
    const manifest = description.weightsManifest;
    if (manifest) {
      if (manifest.length !== shapes.length) {
        model.dispose();
        throw new ModelMismatchError(`weightsManifest lists ${manifest.length} tensors; the TF.js model has ${shapes.length}`);
      }
      manifest.forEach((entry, i) => {
        if (JSON.stringify(entry.shape) !== JSON.stringify(shapes[i])) {
          model.dispose();
          throw new ModelMismatchError(
            `weightsManifest[${i}] (${entry.name}) has shape ${JSON.stringify(entry.shape)}; ` +
              `the TF.js model's weight ${i} (${model.weights[i].originalName}) has ${JSON.stringify(shapes[i])}`);
        }
      });
    }
    this.model = model;
    this.topologyKey = key;
    this.training = description.training;
    this.sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    this.size = this.sizes.reduce((a, b) => a + b, 0);
    this.compile(description.training.learningRate);
    return true;
  }

  compile(learningRate) {
    const { optimizer, loss, metrics = [] } = this.training;
    const make = OPTIMIZERS[optimizer];
    if (this.optimizer) this.optimizer.dispose();
    this.optimizer = make(this.tf, learningRate);
    this.learningRate = learningRate;
    const wantsAccuracy = metrics.some((m) => m === 'accuracy' || m === 'acc');
    this.model.compile({ optimizer: this.optimizer, loss, metrics: wantsAccuracy ? ['accuracy'] : [] });
  }

  /**
   * Change the kept optimizer's learning rate, keeping its state (Adam's moments, momentum's
   * accumulations, the iteration count). TF.js's optimizers read `learningRate` at every step,
   * except sgd and momentum, which keep it as a scalar that `setLearningRate` replaces.
   */
  setLearningRate(learningRate) {
    if (typeof this.optimizer.setLearningRate === 'function') this.optimizer.setLearningRate(learningRate);
    else this.optimizer.learningRate = learningRate;
    this.learningRate = learningRate;
  }

  /** Load a flat float32 buffer (manifest order) into the model. */
  loadWeights(flat) {
    if (!(flat instanceof Float32Array)) throw new TypeError('weights must be a Float32Array');
    if (flat.length !== this.size) {
      throw new ModelMismatchError(`weights hold ${flat.byteLength} bytes; the model needs ${this.size * 4} bytes (${this.size} float32)`);
    }
    const tensors = [];
    let offset = 0;
    for (const [i, w] of this.model.weights.entries()) {
      tensors.push(this.tf.tensor(flat.subarray(offset, offset + this.sizes[i]), w.shape, 'float32'));
      offset += this.sizes[i];
    }
    try {
      this.model.setWeights(tensors);
    } finally {
      this.tf.dispose(tensors);
    }
  }

  /** The model's weights as one new flat Float32Array (one read-back for all tensors). */
  async readWeights() {
    const tf = this.tf;
    const flat = tf.tidy(() => tf.concat(this.model.weights.map((w) => w.read().reshape([-1]))));
    try {
      // A fresh array: no backend writes to a tensor's storage after it is made.
      return await flat.data();
    } finally {
      flat.dispose();
    }
  }

  /**
   * Train one task.
   * @param {Float32Array} flat the base weights (not modified)
   * @param {{data, shape, dtype}} x served inputs, first dimension n
   * @param {{data, shape, dtype}} y served targets, first dimension n
   * @param {{batchSize: number, learningRate?: number}} task
   * @returns {Promise<{weights: Float32Array, loss: number, accuracy: number|null, steps: number, examples: number}>}
   */
  async train(flat, x, y, task) {
    if (!this.model) throw new Error('Trainer.setModel must be called before train');
    const learningRate = task.learningRate ?? this.training.learningRate;
    if (this.resetOptimizer) this.compile(learningRate);
    else if (learningRate !== this.learningRate) this.setLearningRate(learningRate);
    this.loadWeights(flat);
    const xs = toTensor(this.tf, x);
    const ys = toTargetTensor(this.tf, y);
    const examples = x.shape[0];
    try {
      const steps = Math.ceil(examples / task.batchSize);
      if (canFitSteps(this.model)) { // fit's steps, one read-back for weights and logs (fit_steps.js)
        const fitted = await fitSteps(this.tf, this.model, xs, ys, { batchSize: task.batchSize, yieldFn: yieldToEventLoop });
        return { weights: fitted.weights, loss: fitted.logs.loss, accuracy: readAccuracy(fitted.logs), steps, examples };
      }
      const history = await this.model.fit(xs, ys, {
        batchSize: task.batchSize, epochs: 1, shuffle: false, verbose: 0,
        callbacks: { nextFrameFunc: yieldToEventLoop },
      });
      const loss = history.history.loss[0];
      return {
        weights: await this.readWeights(),
        loss,
        accuracy: readAccuracy(history.history, 0),
        steps,
        examples,
      };
    } finally {
      xs.dispose();
      ys.dispose();
    }
  }

  /** Evaluate `flat` on a validation chunk: `{loss, accuracy, examples}` (means over the chunk). */
  async evaluate(flat, x, y, { batchSize = 256 } = {}) {
    if (!this.model) throw new Error('Trainer.setModel must be called before evaluate');
    this.loadWeights(flat);
    return evaluateChunk(this.tf, this.model, x, y, { batchSize });
  }

  disposeModel() {
    if (this.optimizer) this.optimizer.dispose();
    if (this.model) this.model.dispose();
    this.optimizer = null;
    this.model = null;
    this.topologyKey = null;
  }

  dispose() {
    this.disposeModel();
  }
}
