// fitSteps against TF.js's own model.fit: the same optimizer steps (weights equal to float32
// rounding), the same epoch logs, a last partial slice, several tasks with the optimizer's state
// carried over, regularizers, and no tensor left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { canFitSteps, fitSteps } from '../src/fit_steps.js';
import { initialWeights, loadTf, problem } from './helpers.js';

const tf = await loadTf();

/** Two identical compiled models (same weights, fresh optimizers of the same kind). */
function twins({ optimizer = () => tf.train.adam(0.01), regularized = false, metrics = ['accuracy'] } = {}) {
  const make = () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [4], units: 8, activation: 'relu',
          kernelRegularizer: regularized ? tf.regularizers.l2({ l2: 0.01 }) : undefined,
        }),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    model.compile({ optimizer: optimizer(), loss: 'sparseCategoricalCrossentropy', metrics });
    return model;
  };
  const a = make();
  const b = make();
  const size = a.weights.reduce((n, w) => n + w.shape.reduce((p, q) => p * q, 1), 0);
  const flat = initialWeights(size);
  for (const model of [a, b]) {
    let offset = 0;
    model.setWeights(model.weights.map((w) => {
      const count = w.shape.reduce((p, q) => p * q, 1);
      const t = tf.tensor(flat.subarray(offset, offset + count), w.shape);
      offset += count;
      return t;
    }));
  }
  return { a, b, size };
}

async function viaFit(model, xs, ys, batchSize) {
  const history = await model.fit(xs, ys, { batchSize, epochs: 1, shuffle: false, verbose: 0 });
  const flat = tf.tidy(() => tf.concat(model.weights.map((w) => w.read().reshape([-1]))));
  const weights = await flat.data();
  flat.dispose();
  return { weights, loss: history.history.loss[0], acc: history.history.acc?.[0] };
}

function assertClose(actual, expected, tolerance, what) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance * (1 + Math.abs(expected[i])),
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

for (const [name, options] of [
  ['adam', {}],
  ['sgd with an l2 regularizer', { optimizer: () => tf.train.sgd(0.1), regularized: true }],
  ['momentum without metrics', { optimizer: () => tf.train.momentum(0.05, 0.9), metrics: [] }],
]) {
  test(`fitSteps takes model.fit's steps and reports its logs (${name}, a last partial slice, three tasks)`, async () => {
    const { a, b, size } = twins(options);
    const { x, y } = problem(70); // 32 + 32 + 6
    const xs = tf.tensor(x.data, x.shape);
    const ys = tf.tensor(Float32Array.from(y.data), y.shape);
    assert.ok(canFitSteps(a));
    let after1 = null; // optimizer state (moments) is made by the first task's steps
    for (let task = 0; task < 3; task++) {
      const fitted = await fitSteps(tf, a, xs, ys, { batchSize: 32 });
      const reference = await viaFit(b, xs, ys, 32);
      assert.equal(fitted.steps, 3);
      assert.equal(fitted.weights.length, size);
      assertClose(fitted.weights, reference.weights, 1e-5, `task ${task} weights`);
      assertClose([fitted.logs.loss], [reference.loss], 1e-5, `task ${task} loss`);
      if (options.metrics?.length === 0) {
        assert.deepEqual(Object.keys(fitted.logs), ['loss']);
      } else {
        assertClose([fitted.logs.acc], [reference.acc], 1e-6, `task ${task} accuracy`);
      }
      after1 ??= tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, after1, 'fitSteps leaves no tensor behind');
    tf.dispose([xs, ys]);
    a.dispose();
    b.dispose();
  });
}

test('fitSteps yields between steps when a task runs longer than yieldMs, and refuses a bad batch size', async () => {
  const { a, b } = twins();
  const { x, y } = problem(64);
  const xs = tf.tensor(x.data, x.shape);
  const ys = tf.tensor(Float32Array.from(y.data), y.shape);
  let yields = 0;
  const fitted = await fitSteps(tf, a, xs, ys, { batchSize: 8, yieldMs: 0, yieldFn: async () => { yields += 1; } });
  assert.equal(fitted.steps, 8);
  assert.equal(yields, 7); // between steps, not after the last
  await assert.rejects(fitSteps(tf, a, xs, ys, { batchSize: 0 }), /batchSize must be a positive integer, got 0/);
  assert.equal(a.model.isTraining, false);
  tf.dispose([xs, ys]);
  a.dispose();
  b.dispose();
});
