import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ModelMismatchError, Trainer } from '../src/trainer.js';
import { describeModel, initialWeights, loadTf, problem } from './helpers.js';

const tf = await loadTf();

test('training lowers the loss and raises accuracy on a small separable problem', async () => {
  const { description, size } = describeModel(tf);
  const trainer = new Trainer(tf);
  await trainer.setModel(description);
  const { x, y } = problem(64);
  let weights = initialWeights(size);
  const first = await trainer.evaluate(weights, x, y);
  for (let task = 0; task < 15; task++) {
    const result = await trainer.train(weights, x, y, { batchSize: 16 });
    assert.equal(result.steps, 4);
    assert.equal(result.examples, 64);
    assert.equal(result.weights.length, size);
    weights = result.weights;
  }
  const last = await trainer.evaluate(weights, x, y);
  assert.ok(last.loss < first.loss * 0.5, `loss ${first.loss} -> ${last.loss}`);
  assert.ok(last.accuracy > 0.9, `accuracy ${last.accuracy}`);
  assert.equal(last.examples, 64);
  trainer.dispose();
});

test('weights round trip: load then read gives the same buffer, in manifest order', async () => {
  const { description, size } = describeModel(tf);
  const trainer = new Trainer(tf);
  await trainer.setModel(description);
  const flat = initialWeights(size);
  trainer.loadWeights(flat);
  assert.deepEqual(Array.from(await trainer.readWeights()), Array.from(flat));
  // Manifest order = model.weights order: the first tensor is the first layer's kernel [4, 8].
  const kernel = await trainer.model.weights[0].read().data();
  assert.deepEqual(Array.from(kernel), Array.from(flat.subarray(0, 32)));
  trainer.dispose();
});

test('training never writes to the base buffer and its result is not changed by later tasks', async () => {
  const { description, size } = describeModel(tf);
  const trainer = new Trainer(tf);
  await trainer.setModel(description);
  const { x, y } = problem(32);
  const base = initialWeights(size);
  const copy = Float32Array.from(base);
  const first = await trainer.train(base, x, y, { batchSize: 16 });
  const firstCopy = Float32Array.from(first.weights);
  await trainer.train(first.weights, x, y, { batchSize: 16 });
  assert.deepEqual(Array.from(base), Array.from(copy));
  assert.deepEqual(Array.from(first.weights), Array.from(firstCopy));
  assert.notDeepEqual(Array.from(first.weights), Array.from(base));
  trainer.dispose();
});

test('same inputs give the same result with a fresh optimizer per task (deterministic steps)', async () => {
  const { description, size } = describeModel(tf, { optimizer: 'sgd', learningRate: 0.1 });
  const trainer = new Trainer(tf, { resetOptimizer: true });
  await trainer.setModel(description);
  const { x, y } = problem(32);
  const a = await trainer.train(initialWeights(size), x, y, { batchSize: 16 });
  const b = await trainer.train(initialWeights(size), x, y, { batchSize: 16 });
  assert.deepEqual(Array.from(a.weights), Array.from(b.weights));
  assert.equal(a.loss, b.loss);
  trainer.dispose();
});

test('tensor count stays flat over 50 train and evaluate tasks', async () => {
  const { description, size } = describeModel(tf);
  const trainer = new Trainer(tf);
  await trainer.setModel(description);
  const { x, y } = problem(64);
  let weights = initialWeights(size);
  weights = (await trainer.train(weights, x, y, { batchSize: 16 })).weights; // optimizer slots now exist
  await trainer.evaluate(weights, x, y);
  const before = tf.memory().numTensors;
  for (let task = 0; task < 50; task++) {
    weights = (await trainer.train(weights, x, y, { batchSize: 16, learningRate: task % 10 === 0 ? 0.02 : 0.01 })).weights;
    if (task % 5 === 0) await trainer.evaluate(weights, x, y);
  }
  // A learning-rate change rebuilds the optimizer; its slots come back on the next step, so the
  // count after a plain task equals the count before.
  await trainer.train(weights, x, y, { batchSize: 16, learningRate: 0.01 });
  assert.equal(tf.memory().numTensors, before);
  trainer.dispose();
  assert.equal(tf.memory().numTensors, 0);
});

test('the model is kept while the topology is unchanged and rebuilt when it changes', async () => {
  const trainer = new Trainer(tf);
  const small = describeModel(tf);
  assert.equal(await trainer.setModel(small.description), true);
  assert.equal(await trainer.setModel(small.description), false);
  const wide = describeModel(tf, { hidden: 16 });
  assert.equal(await trainer.setModel(wide.description), true);
  assert.equal(trainer.size, wide.size);
  trainer.dispose();
});

test('mismatches are refused with a message that names the field', async () => {
  const { description, size } = describeModel(tf);
  const trainer = new Trainer(tf);
  const bad = structuredClone(description);
  bad.weightsManifest[1].shape = [9];
  await assert.rejects(trainer.setModel(bad), (err) => err instanceof ModelMismatchError &&
    /weightsManifest\[1\] .* has shape \[9\]; the TF.js model's weight 1 .* has \[8\]/.test(err.message));
  await trainer.setModel(description);
  assert.throws(() => trainer.loadWeights(new Float32Array(size - 1)),
    new RegExp(`weights hold ${(size - 1) * 4} bytes; the model needs ${size * 4} bytes`));
  const odd = structuredClone(description);
  odd.training.optimizer = 'lion';
  odd.topology.config.name = 'other';
  await assert.rejects(trainer.setModel(odd), /training\.optimizer "lion" is not one of/);
  trainer.dispose();
});
