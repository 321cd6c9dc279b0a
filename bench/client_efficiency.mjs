#!/usr/bin/env node
// Client efficiency in Node: steps/s of the worker loop against a real `wnn serve` over steps/s of
// raw TF.js `model.fit`, same model, batch size and backend, measured side by side in one run.
//
//   node bench/client_efficiency.mjs [--backend cpu|wasm] [--rounds N] [--tasks N]
//                                    [--local-steps N] [--server URL] [--encodings all|f32]
//                                    [--modes overlap,withoutFollowUps] [--old-client DIR]
//
// Without --server it starts `wnn serve model_specs/digits_mlp.json --data data_modules/digits.py`
// on a free port and stops it afterwards; `--local-steps N` serves a copy of the spec with N local
// steps per task (the network cost per task is fixed, so bigger tasks hide more of it).
// `--encodings all` (default) joins as the page and wnn-worker do (offering q8/f16: the server's
// default picks q8 updates and f16 weights); `f32` offers nothing. `--old-client DIR` also measures
// the client modules in DIR (a copy of client_js/src from another commit) side by side, as `old`.
// Prints one JSON line with the figures, then a summary line (see client_efficiency_core.mjs).

import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

import { measure, summary } from './client_efficiency_core.mjs';
import { loadTf } from './tfjs_node.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLIENT = path.join(ROOT, 'client_js');
const requireClient = createRequire(path.join(CLIENT, 'package.json'));

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'cpu' },
    rounds: { type: 'string', default: '5' },
    tasks: { type: 'string', default: '10' },
    server: { type: 'string' },
    'local-steps': { type: 'string' },
    encodings: { type: 'string', default: 'all' },
    modes: { type: 'string', default: '' },
    'old-client': { type: 'string' },
  },
});

function specPath() {
  const spec = path.join(ROOT, 'model_specs', 'digits_mlp.json');
  if (!values['local-steps']) return spec;
  const json = JSON.parse(readFileSync(spec, 'utf8'));
  delete json.$schema;
  json.training.localSteps = Number(values['local-steps']);
  const copy = path.join(mkdtempSync(path.join(os.tmpdir(), 'webnn-bench-')), 'digits_mlp.json');
  writeFileSync(copy, JSON.stringify(json));
  return copy;
}

function startServer() {
  const child = spawn(path.join(ROOT, '.venv', 'bin', 'wnn'),
    ['serve', specPath(), '--data', 'data_modules/digits.py', '--port', '0'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk) => {
      text += chunk;
      const url = text.match(/volunteer page:\s+(\S+)/)?.[1];
      if (url) resolve({ url, stop: () => new Promise((r) => { child.on('exit', r); child.kill('SIGTERM'); }) });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`wnn serve exited (${code}):\n${text}`)));
  });
}

const tf = await loadTf(requireClient, values.backend);

async function variant(dir) {
  const load = (name) => import(pathToFileURL(path.join(dir, name)).href);
  const [{ WebnnClient }, { Trainer }, { WorkerLoop }, { OFFER_ALL }] = await Promise.all(
    ['protocol.js', 'trainer.js', 'worker_loop.js', 'encoding.js'].map(load));
  return { WebnnClient, Trainer, WorkerLoop, OFFER_ALL };
}
const variants = { new: await variant(path.join(CLIENT, 'src')) };
if (values['old-client']) variants.old = await variant(path.resolve(values['old-client']));

const server = values.server ? { url: values.server, stop: async () => {} } : await startServer();
try {
  const result = await measure({
    tf, variants, baseUrl: server.url,
    rounds: Number(values.rounds), tasksPerRound: Number(values.tasks),
    encodings: values.encodings === 'all' ? variants.new.OFFER_ALL : null,
    modes: values.modes.split(',').filter(Boolean),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(JSON.stringify({ environment: 'node', encodings: values.encodings, ...result }));
  console.log(summary('node', result));
} finally {
  await server.stop();
}
