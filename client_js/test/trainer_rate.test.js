// A task's learning rate changes the kept optimizer's rate in place: Adam's moments, momentum's
// accumulations and the iteration count survive (docs/scaling.md: resetting them per task was
// measured 1.7-4x slower). The server changes the rate as volunteers come and go.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Trainer } from '../src/trainer.js';
import { describeModel, initialWeights, loadTf, problem } from './helpers.js';

const tf = await loadTf();

/** The optimizer's state as plain copies: [{name, data, shape}] (iterations first). */
async function snapshot(optimizer) {
  const weights = await optimizer.getWeights();
  return Promise.all(weights.map(async ({ name, tensor }) => ({
    name, shape: tensor.shape, data: Float32Array.from(await tensor.data()),
  })));
}

function maxDiff(a, b) {
  let most = 0;
  for (let i = 0; i < a.length; i++) most = Math.max(most, Math.abs(a[i] - b[i]));
  return most;
}

for (const optimizer of ['adam', 'momentum', 'rmsprop']) {
  test(`${optimizer}: a new task learning rate keeps the moments and takes the new rate`, async () => {
    const { description, size } = describeModel(tf, { optimizer, learningRate: 0.01 });
    const { x, y } = problem(32);
    const base = initialWeights(size);

    // A: one task at 0.01, then one at 0.04 (the rate the server sends for 16 clients)
    const a = new Trainer(tf);
    await a.setModel(description);
    const first = await a.train(base, x, y, { batchSize: 16, learningRate: 0.01 });
    const kept = a.optimizer;
    const state = await snapshot(kept);
    assert.equal(state[0].data[0], 2, 'two steps counted after the first task');
    const second = await a.train(first.weights, x, y, { batchSize: 16, learningRate: 0.04 });
    assert.equal(a.optimizer, kept, 'the same optimizer object, not a fresh one');
    assert.equal(a.learningRate, 0.04);
    assert.equal((await snapshot(a.optimizer))[0].data[0], 4, 'iterations continue: 2 + 2');

    // B: the reference. An optimizer made at 0.04 and given A's state after the first task
    // trains the second task to the same weights: A kept its moments and took the new rate.
    const b = new Trainer(tf);
    await b.setModel({ ...description, training: { ...description.training, learningRate: 0.04 } });
    await b.optimizer.setWeights(state.map(({ name, shape, data }) => ({ name, tensor: tf.tensor(data, shape) })));
    const reference = await b.train(first.weights, x, y, { batchSize: 16, learningRate: 0.04 });
    const same = maxDiff(second.weights, reference.weights);
    assert.ok(same < 1e-6, `A and the reference differ by ${same}`);

    // C: a fresh optimizer at 0.04 (what the trainer did before) gives other weights, so the
    // kept state is what made A equal to the reference
    const c = new Trainer(tf, { resetOptimizer: true });
    await c.setModel(description);
    const fresh = await c.train(first.weights, x, y, { batchSize: 16, learningRate: 0.04 });
    const apart = maxDiff(second.weights, fresh.weights);
    assert.ok(apart > 100 * Math.max(same, 1e-7), `a fresh optimizer differs by only ${apart}`);
    // D: keeping the old rate gives other weights too: the rate did change
    const d = new Trainer(tf);
    await d.setModel(description);
    await d.train(base, x, y, { batchSize: 16, learningRate: 0.01 });
    const unchanged = await d.train(first.weights, x, y, { batchSize: 16, learningRate: 0.01 });
    assert.ok(maxDiff(second.weights, unchanged.weights) > 100 * Math.max(same, 1e-7));
    for (const trainer of [a, b, c, d]) trainer.dispose();
  });
}

test('sgd takes the new rate too, and changing rates leaks no tensors', async () => {
  const { description, size } = describeModel(tf, { optimizer: 'sgd', learningRate: 0.1 });
  const { x, y } = problem(32);
  const trainer = new Trainer(tf);
  await trainer.setModel(description);
  let weights = initialWeights(size);
  weights = (await trainer.train(weights, x, y, { batchSize: 16, learningRate: 0.1 })).weights;
  const before = tf.memory().numTensors;
  for (const rate of [0.2, 0.05, 0.3, 0.1]) {
    weights = (await trainer.train(weights, x, y, { batchSize: 16, learningRate: rate })).weights;
  }
  assert.equal(tf.memory().numTensors, before);
  // plain SGD: the step is -lr * gradient, so doubling the rate doubles the step
  const start = Float32Array.from(weights);
  const small = await trainer.train(start, x, y, { batchSize: 32, learningRate: 0.1 });
  const large = await trainer.train(start, x, y, { batchSize: 32, learningRate: 0.2 });
  const ratio = maxDiff(large.weights, start) / maxDiff(small.weights, start);
  assert.ok(Math.abs(ratio - 2) < 1e-3, `step ratio ${ratio}`);
  trainer.dispose();
});
