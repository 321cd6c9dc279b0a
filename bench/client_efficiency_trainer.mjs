#!/usr/bin/env node
// The participating client's computation alone, this tree's Trainer against an older copy, finely
// interleaved in one process: per task, old and new `Trainer.train` alternate (60 pairs after 5
// warm-up pairs) on the same batch, each from the weights it returned last, on digits_mlp's
// network (64-64-10 with dropout, Adam 0.01, batch 32), cpu backend.
//
//   node bench/client_efficiency_trainer.mjs --old-client DIR [--local-steps 5,10] [--pairs 60]
//
// Prints one JSON line per step count: the median ms per task of each and the median of the
// per-pair ratios new / old (below 1: the new trainer is faster). Pairs next to each other in
// time see the same machine load, so this resolves differences of a few percent that the
// participating benchmark (client_efficiency.mjs) cannot on a loaded machine.

import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { loadTf } from './tfjs_node.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const requireClient = createRequire(path.join(ROOT, 'client_js', 'package.json'));
const { values } = parseArgs({
  options: {
    'old-client': { type: 'string' },
    'local-steps': { type: 'string', default: '5,10' },
    pairs: { type: 'string', default: '60' },
  },
});
if (!values['old-client']) throw new Error('--old-client DIR (a copy of client_js/src from another commit) is required');

const tf = await loadTf(requireClient);
const { log } = console;
const load = async (dir) => (await import(pathToFileURL(path.join(dir, 'trainer.js')).href)).Trainer;
const New = await load(path.join(ROOT, 'client_js', 'src'));
const Old = await load(path.resolve(values['old-client']));

const net = tf.sequential({
  layers: [
    tf.layers.dense({ inputShape: [64], units: 64, activation: 'relu' }),
    tf.layers.dropout({ rate: 0.1 }),
    tf.layers.dense({ units: 10, activation: 'softmax' }),
  ],
});
const description = {
  topology: net.toJSON(null, false),
  training: { loss: 'sparseCategoricalCrossentropy', optimizer: 'adam', learningRate: 0.01, metrics: ['accuracy'] },
};
net.dispose();
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
for (const steps of values['local-steps'].split(',').map(Number)) {
  const n = 32 * steps;
  const x = { data: Float32Array.from({ length: n * 64 }, Math.random), shape: [n, 64], dtype: 'float32' };
  const y = { data: Int32Array.from({ length: n }, (_, i) => i % 10), shape: [n], dtype: 'int32' };
  const make = async (Trainer) => {
    const trainer = new Trainer(tf);
    await trainer.setModel(description);
    return { trainer, flat: await trainer.readWeights() };
  };
  const old = await make(Old);
  const fresh = await make(New);
  const task = async (s) => {
    const start = performance.now();
    s.flat = (await s.trainer.train(s.flat, x, y, { batchSize: 32 })).weights;
    return performance.now() - start;
  };
  for (let i = 0; i < 5; i++) { await task(old); await task(fresh); }
  const times = { old: [], new: [], ratio: [] };
  for (let i = 0; i < Number(values.pairs); i++) {
    const a = await task(old);
    const b = await task(fresh);
    times.old.push(a);
    times.new.push(b);
    times.ratio.push(b / a);
  }
  old.trainer.dispose();
  fresh.trainer.dispose();
  log(JSON.stringify({
    environment: 'node', backend: tf.getBackend(), localSteps: steps, pairs: times.ratio.length,
    oldMsPerTask: median(times.old), newMsPerTask: median(times.new), newOverOld: median(times.ratio),
  }));
}
