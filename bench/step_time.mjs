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
//       [--model mlp|lstm|dense]      (lstm: bench/specs/text_lstm.json, embedding 97x16 of 12
//                                      characters, LSTM --hidden units (64 as that spec), dense 97;
//                                      dense: float inputs of width --inputs through dense ReLU
//                                      layers of --hidden units (a comma list) to --classes softmax
//                                      units, e.g. bench/specs/teacher_mlp.json)
//       [--inputs 64] [--classes 10]  (dense only)
//       [--eval N]                    (dense only: also the median time of `Trainer.evaluate` on N
//                                      examples, the dense model's and the text model's, and
//                                      their ratio `evalRelText`: the evaluator's validation)
//
// With --model dense the text model's batch-32 cells (256 hidden units, as text_mlp.json) run
// interleaved with the dense cells as a reference, and the summary adds
//
//   relText32(B) = step(B) / step_text(32)   the dense step in text steps of 32 (paired: per round)
//
// so that a device's measured text step (0.152 s for 32 windows, docs/scaling.md) prices the
// dense step in device seconds: c_device(B) = relText32(B) x 0.152 s.
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
    inputs: { type: 'string', default: '64' },
    classes: { type: 'string', default: '10' },
    eval: { type: 'string', default: '0' },
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
if (!['mlp', 'lstm', 'dense'].includes(values.model)) throw new Error(`--model must be mlp, lstm or dense, not ${values.model}`);
const hidden = values.hidden.split(',').map(Number);
const textNet = (units) => tf.sequential({
  layers: [
    tf.layers.embedding({ inputShape: [WINDOW], inputDim: VOCAB, outputDim: 8 }),
    tf.layers.flatten(),
    tf.layers.dense({ units, activation: 'relu' }),
    tf.layers.dense({ units: VOCAB, activation: 'softmax' }),
  ],
});
const denseNet = () => tf.sequential({
  layers: [
    ...hidden.map((units, i) => tf.layers.dense({ ...(i ? {} : { inputShape: [Number(values.inputs)] }), units, activation: 'relu' })),
    tf.layers.dense({ units: Number(values.classes), activation: 'softmax' }),
  ],
});
const lstmNet = () => tf.sequential({
  layers: [
    tf.layers.embedding({ inputShape: [WINDOW], inputDim: VOCAB, outputDim: 16 }),
    tf.layers.lstm({ units: hidden[0] }),
    tf.layers.dense({ units: VOCAB, activation: 'softmax' }),
  ],
});
const describe = (net) => {
  const out = {
    topology: net.toJSON(null, false),
    training: { loss: 'sparseCategoricalCrossentropy', optimizer: 'adam', learningRate: 0.003, metrics: ['accuracy'] },
  };
  net.dispose();
  return out;
};
const description = describe(values.model === 'lstm' ? lstmNet() : values.model === 'dense' ? denseNet() : textNet(hidden[0]));
// the text model's batch-32 cells beside a dense model's: its step prices the dense step
const reference = values.model === 'dense' ? describe(textNet(256)) : null;

const textData = (n) => ({
  x: { data: Int32Array.from({ length: n * WINDOW }, () => Math.floor(Math.random() * VOCAB)), shape: [n, WINDOW], dtype: 'int32' },
  y: { data: Int32Array.from({ length: n }, () => Math.floor(Math.random() * VOCAB)), shape: [n], dtype: 'int32' },
});
const gauss = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
const denseData = (n) => ({
  x: { data: Float32Array.from({ length: n * Number(values.inputs) }, gauss), shape: [n, Number(values.inputs)], dtype: 'float32' },
  y: { data: Int32Array.from({ length: n }, () => Math.floor(Math.random() * Number(values.classes))), shape: [n], dtype: 'int32' },
});

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const cells = [];
const addCell = async (model, desc, batch, steps, data) => {
  const { x, y } = data(batch * steps);
  const trainer = new Trainer(tf);
  await trainer.setModel(desc);
  cells.push({ model, batch, steps, x, y, trainer, flat: await trainer.readWeights(), times: [] });
};
for (const batch of batches) {
  for (const steps of stepsList) {
    await addCell(values.model, description, batch, steps, values.model === 'dense' ? denseData : textData);
  }
}
if (reference) for (const steps of stepsList) await addCell('text', reference, 32, steps, textData);
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
const evalCells = [];
if (reference && Number(values.eval) > 0) {
  for (const [model, desc, data] of [['dense', description, denseData], ['text', reference, textData]]) {
    const trainer = new Trainer(tf);
    await trainer.setModel(desc);
    const { x, y } = data(Number(values.eval));
    evalCells.push({ model, trainer, x, y, flat: await trainer.readWeights(), times: [] });
  }
  for (let r = 0; r < Math.max(5, Math.ceil(rounds0() / 2)); r++) {
    for (const cell of (r % 2 ? [...evalCells].reverse() : evalCells)) {
      const start = performance.now();
      await cell.trainer.evaluate(cell.flat, cell.x, cell.y);
      cell.times.push(performance.now() - start);
    }
  }
}
function rounds0() { return Number(values.rounds); }
const T = {};
const Tref = {};
for (const cell of cells) {
  const ms = median(cell.times);
  if (cell.model === 'text' && reference) Tref[cell.steps] = ms;
  else (T[cell.batch] ??= {})[cell.steps] = ms;
  log(JSON.stringify({ model: cell.model, batch: cell.batch, steps: cell.steps, rounds: cell.times.length, msPerTask: +ms.toFixed(3) }));
  cell.trainer.dispose();
}
const lo = stepsList[0];
const hi = stepsList[stepsList.length - 1];
const perStep = Object.fromEntries(batches.map((b) => [b, (T[b][hi] - T[b][lo]) / (hi - lo)]));
const unit = 10 * perStep[32];
const roundSlope = (b, r, model = values.model) => {
  const at = (L) => cells.find((c) => c.model === model && c.batch === b && c.steps === L).times[r];
  return (at(hi) - at(lo)) / (hi - lo);
};
const rounds = Number(values.rounds);
const paired = {
  msPerStep: Object.fromEntries(batches.map((b) => [b, +median(Array.from({ length: rounds }, (_, r) => roundSlope(b, r))).toFixed(3)])),
  stepCostUnits: Object.fromEntries(batches.map((b) => [b, +(median(Array.from({ length: rounds }, (_, r) => roundSlope(b, r) / roundSlope(32, r))) / 10).toFixed(4)])),
};
if (reference) {
  const textStep = (Tref[hi] - Tref[lo]) / (hi - lo);
  paired.relText32 = Object.fromEntries(batches.map((b) => [b, +median(Array.from({ length: rounds }, (_, r) => roundSlope(b, r) / roundSlope(32, r, 'text'))).toFixed(4)]));
  paired.textMsPerStep32 = +median(Array.from({ length: rounds }, (_, r) => roundSlope(32, r, 'text'))).toFixed(3);
  paired.textMsFixedPerTask32 = +(Tref[lo] - lo * textStep).toFixed(3);
}
if (evalCells.length) {
  const [dense, text] = evalCells;
  paired.evalExamples = Number(values.eval);
  paired.evalMs = { dense: +median(dense.times).toFixed(1), text: +median(text.times).toFixed(1) };
  paired.evalRelText = +median(dense.times.map((t, r) => t / text.times[r])).toFixed(3);
  for (const cell of evalCells) cell.trainer.dispose();
}
log(JSON.stringify({
  model: values.model, hidden, environment: 'node', backend: tf.getBackend(), tfjs: tf.version.tfjs, stepsFit: [lo, hi],
  msPerStep: Object.fromEntries(batches.map((b) => [b, +perStep[b].toFixed(3)])),
  msFixedPerTask: Object.fromEntries(batches.map((b) => [b, +(T[b][lo] - lo * perStep[b]).toFixed(3)])),
  unitMs: +unit.toFixed(3),
  stepCostUnits: Object.fromEntries(batches.map((b) => [b, +(perStep[b] / unit).toFixed(4)])),
  stepCostRelative32: Object.fromEntries(batches.map((b) => [b, +(perStep[b] / perStep[32]).toFixed(3)])),
  paired,
}));
