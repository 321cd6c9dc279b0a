// The volunteer page: opening it starts contributing; Stop/Start toggles; closing the tab leaves.
//
// Order of start-up: read the model description (which says where TF.js lives: the server's copy or
// a CDN) -> load TF.js -> pick the backend (WebGL, CPU when WebGL fails; `?backend=cpu|wasm|webgl`
// forces one) -> join and run the worker loop (`?autostart=0`: wait for Start). Every URL is relative to the page, so the page works
// when the app is mounted under a prefix. The page exposes `window.webnnPage` (state, stats, loop)
// for tests and the curious.

import { WebnnClient } from './protocol.js';
import { localStorageOrNull, volunteerId } from './volunteer_id.js';
import { OFFER_ALL } from './encoding.js';
import { Trainer } from './trainer.js';
import { WorkerLoop } from './worker_loop.js';
import { createCurveChart } from './curve.js';
import { LiveView } from './live.js';

const $ = (id) => document.getElementById(id);
const fmt = (v, digits = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

/** Load TF.js from where the server says (default: its own copy) and start a backend. */
async function startTf(base, model, wanted) {
  if (!globalThis.tf) await loadScript(new URL(model.urls?.tfjs ?? 'static/tfjs/tf.min.js', base).href);
  const tf = globalThis.tf;
  const order = wanted ? [wanted] : ['webgl', 'cpu'];
  for (const name of order) {
    try {
      if (name === 'wasm' && !tf.findBackend('wasm')) {
        const script = new URL(model.urls?.tfjsWasm ?? 'static/tfjs-wasm/tf-backend-wasm.min.js', base);
        await loadScript(script.href);
        tf.wasm.setWasmPaths(new URL('.', script).href);
      }
      if (await tf.setBackend(name)) {
        await tf.ready();
        return tf;
      }
    } catch (err) {
      console.warn(`webnn: backend ${name} failed:`, err);
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  return tf;
}

async function main() {
  const base = new URL('.', location.href).href;
  const params = new URLSearchParams(location.search);
  const state = { phase: 'starting', backend: null, error: null, loop: null, stats: null, history: [], status: null };
  globalThis.webnnPage = state;
  const show = (phase, text) => {
    state.phase = phase;
    $('state').textContent = text;
    $('state').className = `state ${phase}`;
  };

  const viewer = new WebnnClient(base, { client: { kind: 'browser' } });
  let model;
  try {
    model = await viewer.model();
  } catch (err) {
    show('error', 'cannot reach the server');
    $('message').textContent = err.message;
    state.error = err.message;
    return;
  }
  $('model-name').textContent = model.name;
  document.title = `webnn: help train ${model.name}`;

  const chart = globalThis.Chart ? createCurveChart(globalThis.Chart, $('curve')) : null;
  const live = new LiveView(viewer, {
    status: (status) => {
      state.status = status;
      $('clients').textContent = status.clients?.active ?? status.clients ?? '-';
      $('merges').textContent = status.merges ?? '-';
      $('server-state').textContent = status.state ?? '-';
      const evaluation = status.lastEvaluation ?? status.evaluation;
      if (evaluation) {
        $('val-accuracy').textContent = fmt(evaluation.valAccuracy ?? evaluation.accuracy);
        $('val-loss').textContent = fmt(evaluation.valLoss ?? evaluation.loss);
      }
    },
    history: ({ history }) => {
      state.history = history;
      chart?.update(history, $('x-axis').value);
    },
    error: (err) => console.warn('webnn: live view:', err.message),
  });
  $('x-axis').addEventListener('change', () => chart?.update(state.history, $('x-axis').value));
  live.start();

  let tf;
  try {
    tf = await startTf(base, model, params.get('backend'));
  } catch (err) {
    show('error', 'TensorFlow.js could not start');
    $('message').textContent = err.message;
    state.error = err.message;
    return;
  }
  state.backend = tf.getBackend();
  $('backend').textContent = state.backend;

  const client = new WebnnClient(base, {
    client: {
      kind: 'browser', name: params.get('name') ?? undefined, userAgent: navigator.userAgent, backend: state.backend,
      volunteerId: volunteerId(localStorageOrNull()), // keeps this browser's data shard
    },
    encodings: OFFER_ALL, // compressed updates and weights, as the server picks (docs/protocol.md)
  });
  const trainer = new Trainer(tf);
  const loop = new WorkerLoop({ client, trainer, role: params.get('role') ?? 'any' });
  state.loop = loop;
  state.stats = loop.stats;
  loop.on('task', ({ stats, kind }) => {
    $('steps-per-second').textContent = fmt(stats.stepsPerSecond, 1);
    $('updates').textContent = String(stats.updates);
    $('version').textContent = stats.version ?? '-';
    $('last-loss').textContent = fmt(stats.lastLoss);
    $('message').textContent = kind === 'evaluate' ? 'evaluated a validation chunk' : '';
  });
  loop.on('joined', ({ clientId }) => { $('message').textContent = `joined as ${clientId}`; });
  loop.on('idle', ({ state: serverState }) => {
    $('message').textContent = serverState === 'paused' ? 'training is paused; waiting' : 'no work right now; waiting';
  });
  loop.on('problem', ({ error }) => { $('message').textContent = error.message; });
  loop.on('retry', ({ attempt, delay }) => { $('message').textContent = `server unreachable; retry ${attempt} in ${delay}s`; });

  const toggle = $('toggle');
  const start = async () => {
    show('running', 'contributing');
    toggle.textContent = 'Stop';
    toggle.className = 'stop';
    toggle.disabled = false;
    const reason = await loop.run();
    await client.leave().catch(() => {});
    toggle.textContent = 'Start';
    toggle.className = '';
    toggle.disabled = false;
    show('stopped', reason === 'ended' ? 'training has ended; thank you!' : 'stopped');
    if (reason === 'ended') toggle.disabled = true;
  };
  toggle.addEventListener('click', () => {
    if (loop.running) {
      toggle.disabled = true;
      loop.stop();
    } else {
      start();
    }
  });
  // Closing the tab: hand our open task back at once (fetch keepalive/sendBeacon outlive the page).
  addEventListener('pagehide', () => {
    loop.stop();
    client.leaveBeacon();
  });
  if (params.get('autostart') === '0') {
    show('stopped', 'ready; press Start to contribute');
    toggle.textContent = 'Start';
    toggle.disabled = false;
  } else {
    start();
  }
}

main();
