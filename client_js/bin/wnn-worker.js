#!/usr/bin/env node
// Headless webnn worker: joins a server and contributes with TF.js in Node until stopped.
//
//   wnn-worker --server URL [--role train|evaluate|any] [--backend cpu|wasm] [--name NAME]
//              [--max-tasks N] [--speed FACTOR] [--join-token TOKEN] [--reset-optimizer]
//              [--no-follow-up] [--overlap | --no-overlap]
//              [--attack scaled|sign_flip|random|nan [--attack-scale S] [--attack-seed N]] [--encoding q8|f16|f32] [--weights-encoding f16|f32]
//              [--volunteer-id ID] [--quiet]
//
// --overlap / --no-overlap: fetch the next task while the current one computes, or not (default:
// the worker loop's, OVERLAP_DEFAULT; see worker_loop.js and docs/development.md "Client efficiency").
//
// --volunteer-id sends an opaque id (1-64 printable ASCII characters, no spaces) at join: with a
// partitioned training set the server keeps this worker on the same data shard across restarts.
//
// --encoding / --weights-encoding offer only that update / weights encoding at join (default: all
// of them; the server picks, see docs/protocol.md "Encodings"); f32 is the fallback either way.
//
// --attack makes a hostile client for experiments: each trained weight set is replaced by
// attacks.js's transform of it (given the task's base weights) before it is sent.
//
// Logs one line per task on stdout (--quiet: only joining, stopping and leaving); problems and
// retries on stderr. TF.js's "install our node backend" banner is dropped (see quietTfjsBanner). SIGINT/SIGTERM: stop after the
// current computation, leave (open tasks go back to the queue) and exit 0.
// Exit status: 0 stopped, ended or max tasks reached; 1 fatal error; 2 bad usage.

import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import os from 'node:os';

import { WebnnClient } from '../src/protocol.js';
import { OFFER_ALL } from '../src/encoding.js';
import { Trainer } from '../src/trainer.js';
import { OVERLAP_DEFAULT, WorkerLoop } from '../src/worker_loop.js';
import { ATTACK_KINDS, applyAttack, seededRandom } from '../src/attacks.js';

const USAGE = `usage: wnn-worker --server URL [--role train|evaluate|any] [--backend cpu|wasm]
                  [--name NAME] [--max-tasks N] [--speed FACTOR] [--join-token TOKEN]
                  [--reset-optimizer] [--no-follow-up] [--overlap | --no-overlap]
                  [--attack ${ATTACK_KINDS.join('|')} [--attack-scale S] [--attack-seed N]]
                  [--encoding q8|f16|f32] [--weights-encoding f16|f32]
                  [--volunteer-id ID] [--quiet]`;

function usageError(message) {
  process.stderr.write(`wnn-worker: ${message}\n${USAGE}\n`);
  process.exit(2);
}

/** Parse and check the command line; bad values exit with status 2 naming the option. */
export function parseOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        server: { type: 'string' },
        role: { type: 'string', default: 'any' },
        backend: { type: 'string', default: 'cpu' },
        name: { type: 'string' },
        'max-tasks': { type: 'string' },
        speed: { type: 'string', default: '1' },
        'join-token': { type: 'string' },
        'reset-optimizer': { type: 'boolean', default: false },
        'no-follow-up': { type: 'boolean', default: false },
        overlap: { type: 'boolean', default: false },
        'no-overlap': { type: 'boolean', default: false },
        attack: { type: 'string' },
        'attack-scale': { type: 'string' },
        'attack-seed': { type: 'string' },
        encoding: { type: 'string' },
        'weights-encoding': { type: 'string' },
        'volunteer-id': { type: 'string' },
        quiet: { type: 'boolean', short: 'q', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    usageError(err.message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (!values.server) usageError('--server URL is required');
  try {
    const url = new URL(values.server);
    if (!['http:', 'https:'].includes(url.protocol)) throw new Error('not http(s)');
  } catch {
    usageError(`--server: ${JSON.stringify(values.server)} is not an http(s) URL`);
  }
  if (!['train', 'evaluate', 'any'].includes(values.role)) usageError(`--role: ${JSON.stringify(values.role)} is not train, evaluate or any`);
  if (!['cpu', 'wasm'].includes(values.backend)) usageError(`--backend: ${JSON.stringify(values.backend)} is not cpu or wasm`);
  let maxTasks = Infinity;
  if (values['max-tasks'] !== undefined) {
    maxTasks = Number(values['max-tasks']);
    if (!Number.isInteger(maxTasks) || maxTasks < 1) usageError(`--max-tasks: ${JSON.stringify(values['max-tasks'])} is not a positive integer`);
  }
  const encodings = { ...OFFER_ALL };
  if (values.encoding !== undefined) {
    if (!['q8', 'f16', 'f32'].includes(values.encoding)) usageError(`--encoding: ${JSON.stringify(values.encoding)} is not q8, f16 or f32`);
    encodings.update = [values.encoding];
  }
  if (values['weights-encoding'] !== undefined) {
    if (!['f16', 'f32'].includes(values['weights-encoding'])) usageError(`--weights-encoding: ${JSON.stringify(values['weights-encoding'])} is not f16 or f32`);
    encodings.weights = [values['weights-encoding']];
  }
  const volunteerId = values['volunteer-id'] ?? null;
  if (volunteerId !== null && !/^[!-~]{1,64}$/.test(volunteerId)) {
    usageError(`--volunteer-id: ${JSON.stringify(volunteerId)} is not 1-64 printable ASCII characters without spaces`);
  }
  if (values.overlap && values['no-overlap']) usageError('--overlap and --no-overlap contradict each other');
  const overlap = values.overlap ? true : values['no-overlap'] ? false : OVERLAP_DEFAULT;
  const speed = Number(values.speed);
  if (!Number.isFinite(speed) || speed <= 0) usageError(`--speed: ${JSON.stringify(values.speed)} is not a number > 0`);
  return {
    server: values.server, role: values.role, backend: values.backend,
    name: values.name ?? `${os.hostname()}-${process.pid}`, maxTasks, speed,
    joinToken: values['join-token'] ?? null, resetOptimizer: values['reset-optimizer'],
    followUp: !values['no-follow-up'], overlap, attack: attackOptions(values), encodings, volunteerId,
    quiet: values.quiet,
  };
}

/** `{kind, scale, seed}` from --attack, --attack-scale (default 1) and --attack-seed, or null. */
function attackOptions(values) {
  if (values.attack === undefined) {
    for (const name of ['attack-scale', 'attack-seed']) {
      if (values[name] !== undefined) usageError(`--${name} needs --attack`);
    }
    return null;
  }
  if (!ATTACK_KINDS.includes(values.attack)) {
    usageError(`--attack: ${JSON.stringify(values.attack)} is not one of ${ATTACK_KINDS.join(', ')}`);
  }
  const scale = Number(values['attack-scale'] ?? '1');
  if (values['attack-scale'] !== undefined && (values['attack-scale'].trim() === '' || !Number.isFinite(scale))) {
    usageError(`--attack-scale: ${JSON.stringify(values['attack-scale'])} is not a finite number`);
  }
  let seed = null;
  if (values['attack-seed'] !== undefined) {
    seed = Number(values['attack-seed']);
    if (!Number.isInteger(seed) || seed < 0) usageError(`--attack-seed: ${JSON.stringify(values['attack-seed'])} is not an integer >= 0`);
  }
  return { kind: values.attack, scale, seed };
}

/** The worker loop's `transform` for an attack: trained weights -> hostile weights. */
function attackTransform({ kind, scale, seed }) {
  const random = seed === null ? Math.random : seededRandom(seed);
  return (trained, base) => applyAttack(kind, trained, base, { scale, random });
}

/** TF.js's cpu backend, on its first tensor in Node (env flag IS_NODE), warns through
 * console.warn: "Hi, looks like you are running TensorFlow.js in Node.js. To speed things up
 * dramatically, install our node backend ...". This worker runs the cpu or wasm backend on
 * purpose (tfjs-node is a native build it does not use), so the banner is advice that does not
 * apply, printed once per worker. It is dropped here by its text; every other TF.js warning still
 * reaches stderr. (TF.js's PROD flag would also silence it, but it silences all of TF.js's
 * warnings, and faking IS_NODE would change how TF.js loads files and fetches.) */
export function quietTfjsBanner(target = console) {
  const warn = target.warn.bind(target);
  target.warn = (...args) => {
    if (typeof args[0] === 'string' && /running TensorFlow\.js in Node\.js/i.test(args[0])) return;
    warn(...args);
  };
}

async function loadTf(backend) {
  quietTfjsBanner();
  const tf = await import('@tensorflow/tfjs');
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(require.resolve('@tensorflow/tfjs-backend-wasm').replace(/[^/\\]*$/, ''));
  }
  if (!(await tf.setBackend(backend))) throw new Error(`the TF.js ${backend} backend failed to start`);
  await tf.ready();
  return tf;
}

const fmt = (v, digits = 4) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');

function describe({ task, kind, result, answer, timings }) {
  const t = `fetch ${fmt(timings.fetch, 3)}s compute ${fmt(timings.compute, 3)}s send ${fmt(timings.send, 3)}s`;
  if (kind === 'evaluate') {
    return `task ${task.id} evaluate v${task.version} examples ${result.examples} loss ${fmt(result.loss)} acc ${fmt(result.accuracy)} ${t}`;
  }
  return `task ${task.id} train v${task.version} steps ${result.steps} loss ${fmt(result.loss)} acc ${fmt(result.accuracy)} ${t}` +
    ` -> v${answer.version} ${answer.merged ? 'merged' : 'buffered'} staleness ${answer.staleness}` +
    `${answer.clipped ? ' clipped' : ''}`;
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const tf = await loadTf(options.backend);
  const client = new WebnnClient(options.server, {
    client: {
      kind: 'node', name: options.name, backend: options.backend, userAgent: `node/${process.versions.node}`,
      ...(options.volunteerId ? { volunteerId: options.volunteerId } : {}),
    },
    joinToken: options.joinToken,
    encodings: options.encodings,
  });
  const trainer = new Trainer(tf, { resetOptimizer: options.resetOptimizer });
  const loop = new WorkerLoop({
    client, trainer, role: options.role, maxTasks: options.maxTasks, speed: options.speed,
    followUp: options.followUp, overlap: options.overlap, transform: options.attack ? attackTransform(options.attack) : null,
  });
  const say = (line) => process.stdout.write(`${line}\n`);
  const warn = (line) => process.stderr.write(`${line}\n`);
  const hostile = options.attack ? `; attack ${options.attack.kind} scale ${options.attack.scale}` : '';
  loop.on('joined', ({ model, clientId }) => say(`joined ${client.base} as ${clientId} (${options.name}); model ${model.name} v${model.version}, backend ${tf.getBackend()}, encodings ${client.encoding.update}/${client.encoding.weights}${hostile}`));
  if (!options.quiet) loop.on('task', (event) => say(describe(event)));
  loop.on('dropped', ({ error }) => warn(`dropped task: ${error.code}: ${error.message}`));
  loop.on('problem', ({ error }) => warn(`problem: ${error.code ?? error.name}: ${error.message}`));
  loop.on('retry', ({ error, attempt, delay }) => warn(`retry ${attempt} in ${delay}s: ${error.message}`));
  let signalled = false;
  const onSignal = (name) => {
    if (signalled) process.exit(1);
    signalled = true;
    say(`${name}: stopping`);
    loop.stop();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  const reason = await loop.run();
  try {
    await client.leave();
    say(`left (${reason}) after ${loop.stats.updates} updates, ${loop.stats.evaluations} evaluations, ${loop.stats.steps} steps`);
  } catch (err) {
    warn(`leave failed: ${err.message}`);
  }
  trainer.dispose();
}

main().catch((err) => {
  process.stderr.write(`wnn-worker: ${err.stack ?? err}\n`);
  process.exit(1);
});
