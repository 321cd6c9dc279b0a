#!/usr/bin/env node
// Cost of one optimiser step of the text workload's model (bench/specs/text_mlp.json: embedding
// 97x8 of 12 characters, flatten, dense 256 relu, dense 97 softmax; Adam, sparse categorical
// cross-entropy with accuracy) against the batch size, as the volunteer client trains it: this
// tree's `Trainer.train` (client_js/src/trainer.js) in Node, cpu backend, each task from the
// weights the last one returned. Per batch size B and task length L (steps), the median wall time
// T(B, L) of `--rounds` tasks, the (B, L) cells interleaved (each round in a rotated order) so
// that load swings of a shared machine hit every cell alike. Then, per B:
//
//   step(B)  = (T(B, Lmax) - T(B, Lmin)) / (Lmax - Lmin)      ms per optimiser step
//   fixed(B) = T(B, Lmin) - Lmin step(B)                       ms per task (weights in/out, tensors)
//   c(B)     = step(B) / (10 step(32))                          one step in units of a 10-step x
//                                                              32-example task (bench/scaling_sim.py)
//
// and the same from each round's own cells (`paired`: the median over rounds of that round's
// slope, and of its slope over the round's batch-32 slope), steadier when the load swings
// between rounds.
//
//   taskset -c 1 nice -n 10 node bench/step_time.mjs [--batches 8,16,32,64] [--steps 2,10] [--rounds 100]
//       [--warmup 5] [--hidden 256]   (--hidden: the width of the hidden layer, 256 as the spec)
//       [--model mlp|lstm]            (lstm: bench/specs/text_lstm.json, embedding 97x16 of 12
//                                      characters, LSTM --hidden units (64 as that spec), dense 97)
//
// Prints one JSON line per cell and a summary line.

import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { loadTf } from './tfjs_node.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const requireClient = createRequire(path.join(ROOT, 'client_js', 'package.json'));
const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '8,16,32,64' },
    steps: { type: 'string', default: '2,10' },
    rounds: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '5' },
    hidden: { type: 'string', default: '256' },
    model: { type: 'string', default: 'mlp' },
  },
});
const batches = values.batches.split(',').map(Number);
const stepsList = values.steps.split(',').map(Number).sort((a, b) => a - b);
if (!batches.includes(32)) throw new Error('--batches must include 32 (the unit of the simulator)');
if (stepsList.length < 2) throw new Error('--steps needs two task lengths or more');

const tf = await loadTf(requireClient);
const { log } = console;
const { Trainer } = await import(pathToFileURL(path.join(ROOT, 'client_js', 'src', 'trainer.js')).href);

const VOCAB = 97;
const WINDOW = 12;
if (!['mlp', 'lstm'].includes(values.model)) throw new Error(`--model must be mlp or lstm, not ${values.model}`);
const net = values.model === 'lstm' ? tf.sequential({
  layers: [
    tf.layers.embedding({ inputShape: [WINDOW], inputDim: VOCAB, outputDim: 16 }),
    tf.layers.lstm({ units: Number(values.hidden) }),
    tf.layers.dense({ units: VOCAB, activation: 'softmax' }),
  ],
}) : tf.sequential({
  layers: [
    tf.layers.embedding({ inputShape: [WINDOW], inputDim: VOCAB, outputDim: 8 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: Number(values.hidden), activation: 'relu' }),
    tf.layers.dense({ units: VOCAB, activation: 'softmax' }),
  ],
});
const description = {
  topology: net.toJSON(null, false),
  training: { loss: 'sparseCategoricalCrossentropy', optimizer: 'adam', learningRate: 0.003, metrics: ['accuracy'] },
};
net.dispose();

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const cells = [];
for (const batch of batches) {
  for (const steps of stepsList) {
    const n = batch * steps;
    const x = { data: Int32Array.from({ length: n * WINDOW }, () => Math.floor(Math.random() * VOCAB)), shape: [n, WINDOW], dtype: 'int32' };
    const y = { data: Int32Array.from({ length: n }, () => Math.floor(Math.random() * VOCAB)), shape: [n], dtype: 'int32' };
    const trainer = new Trainer(tf);
    await trainer.setModel(description);
    cells.push({ batch, steps, x, y, trainer, flat: await trainer.readWeights(), times: [] });
  }
}
const task = async (cell) => {
  const start = performance.now();
  cell.flat = (await cell.trainer.train(cell.flat, cell.x, cell.y, { batchSize: cell.batch })).weights;
  return performance.now() - start;
};
for (let i = 0; i < Number(values.warmup); i++) for (const cell of cells) await task(cell);
for (let r = 0; r < Number(values.rounds); r++) {
  for (let k = 0; k < cells.length; k++) {
    const cell = cells[(k + r) % cells.length];
    cell.times.push(await task(cell));
  }
}
const T = {};
for (const cell of cells) {
  const ms = median(cell.times);
  (T[cell.batch] ??= {})[cell.steps] = ms;
  log(JSON.stringify({ batch: cell.batch, steps: cell.steps, rounds: cell.times.length, msPerTask: +ms.toFixed(3) }));
  cell.trainer.dispose();
}
const lo = stepsList[0];
const hi = stepsList[stepsList.length - 1];
const perStep = Object.fromEntries(batches.map((b) => [b, (T[b][hi] - T[b][lo]) / (hi - lo)]));
const unit = 10 * perStep[32];
const roundSlope = (b, r) => {
  const at = (L) => cells.find((c) => c.batch === b && c.steps === L).times[r];
  return (at(hi) - at(lo)) / (hi - lo);
};
const rounds = Number(values.rounds);
const paired = {
  msPerStep: Object.fromEntries(batches.map((b) => [b, +median(Array.from({ length: rounds }, (_, r) => roundSlope(b, r))).toFixed(3)])),
  stepCostUnits: Object.fromEntries(batches.map((b) => [b, +(median(Array.from({ length: rounds }, (_, r) => roundSlope(b, r) / roundSlope(32, r))) / 10).toFixed(4)])),
};
log(JSON.stringify({
  environment: 'node', backend: tf.getBackend(), tfjs: tf.version.tfjs, stepsFit: [lo, hi],
  msPerStep: Object.fromEntries(batches.map((b) => [b, +perStep[b].toFixed(3)])),
  msFixedPerTask: Object.fromEntries(batches.map((b) => [b, +(T[b][lo] - lo * perStep[b]).toFixed(3)])),
  unitMs: +unit.toFixed(3),
  stepCostUnits: Object.fromEntries(batches.map((b) => [b, +(perStep[b] / unit).toFixed(4)])),
  stepCostRelative32: Object.fromEntries(batches.map((b) => [b, +(perStep[b] / perStep[32]).toFixed(3)])),
  paired,
}));
