import { test } from 'node:test';
import assert from 'node:assert/strict';

import { classLoss, evaluateChunk } from '../src/evaluator.js';
import { loadTf } from './helpers.js';

const tf = await loadTf();

/** A softmax layer with an identity kernel: the predicted class is the argmax of x. */
function identityModel(loss, classes = 3) {
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [classes], units: classes, activation: 'softmax' })],
  });
  model.setWeights([tf.eye(classes), tf.zeros([classes])]);
  model.compile({ optimizer: 'sgd', loss, metrics: loss === 'meanSquaredError' ? [] : ['accuracy'] });
  return model;
}

// Seven examples; predicted = argmax x, labels below:
//   predicted 0 0 1 2 2 1 0
//   label     0 0 1 1 2 2 2
// class 0: 2 examples, 2 right; class 1: 2 examples, 1 right; class 2: 3 examples, 1 right.
const PREDICTED = [0, 0, 1, 2, 2, 1, 0];
const LABELS = [0, 0, 1, 1, 2, 2, 2];
const X = { data: Float32Array.from(PREDICTED.flatMap((p) => [0, 1, 2].map((k) => (k === p ? 3 : 0)))), shape: [7, 3], dtype: 'float32' };
const EXPECTED = { correct: [2, 1, 1], count: [2, 2, 3] };

test('per-class counts for a sparse classifier: argmax of the prediction against the label', async () => {
  const model = identityModel('sparseCategoricalCrossentropy');
  const y = { data: Int32Array.from(LABELS), shape: [7], dtype: 'int32' };
  const before = tf.memory().numTensors;
  const result = await evaluateChunk(tf, model, X, y, { batchSize: 3 });
  assert.equal(tf.memory().numTensors, before, 'every tensor is disposed');
  assert.deepEqual(result.classes, EXPECTED);
  assert.equal(result.examples, 7);
  assert.ok(Math.abs(result.accuracy - 4 / 7) < 1e-6, `accuracy ${result.accuracy}`);
  model.dispose();
});

test('per-class counts for a one-hot classifier', async () => {
  const model = identityModel('categoricalCrossentropy');
  const y = { data: Float32Array.from(LABELS.flatMap((l) => [0, 1, 2].map((k) => (k === l ? 1 : 0)))), shape: [7, 3], dtype: 'float32' };
  const before = tf.memory().numTensors;
  const result = await evaluateChunk(tf, model, X, y);
  assert.equal(tf.memory().numTensors, before, 'every tensor is disposed');
  assert.deepEqual(result.classes, EXPECTED);
  model.dispose();
});

test('no per-class counts for a regression loss', async () => {
  const model = identityModel('meanSquaredError');
  assert.equal(classLoss(model), null);
  const y = { data: new Float32Array(21), shape: [7, 3], dtype: 'float32' };
  const result = await evaluateChunk(tf, model, X, y);
  assert.equal(result.classes, undefined);
  assert.equal(result.accuracy, null);
  model.dispose();
});
