// The volunteer page: says what the project is and who runs it (the spec's `project` block, from
// `api/v1/model`), asks before it uses the device, then contributes until Stop, the end of the
// run or the tab closes. Nothing is loaded or computed before the visitor says yes; the answer is
// remembered in localStorage per page ("Stop and forget my answer" asks again next time).
//
// The main status (page_status.js) is one of: consent, starting, running, paused, lost
// ("connection lost — retrying in N s"), ended, stopped, error; `window.webnnPage.phase` holds it.
//
// URL parameters (docs/clients.md): `?autostart=1` starts at once without asking and
// `?autostart=0` loads TF.js and waits for Start (both for kiosks, labs and automated runs where
// whoever opens the page owns the device: the answer is implied, never stored);
// `?backend=cpu|wasm|webgl|webgpu` forces a backend (default: webgpu where offered, webgl, cpu);
// `?name=…` names this client; `?role=train|evaluate|any`; `?overlap=1|0` fetches the next task
// while one computes, or not (default: worker_loop.js's OVERLAP_DEFAULT).
// Every URL is relative to the page, so the page works when the app is mounted under a prefix.
// The page exposes `window.webnnPage` (phase, facts, stats, loop) for tests and the curious.

import { WebnnClient, sleep } from './protocol.js';
import { localStorageOrNull, volunteerId } from './volunteer_id.js';
import { OFFER_ALL } from './encoding.js';
import { Trainer } from './trainer.js';
import { WorkerLoop } from './worker_loop.js';
import { backendOrder, startBackend } from './backend.js';
import { createCurveChart } from './curve.js';
import { LiveView } from './live.js';
import {
  consentKey, forgetConsent, isConnectionLoss, mainStatus, readConsent, rememberConsent, safeContact,
} from './page_status.js';

const $ = (id) => document.getElementById(id);
const fmt = (v, digits = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');
const POLL_SECONDS = 5;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

/** Load TF.js from where the server says (default: its own copy) and start a backend: the one
 * `wanted`, else webgpu where the browser gives an adapter, webgl, then cpu (backend.js). */
async function startTf(base, model, wanted) {
  if (!globalThis.tf) await loadScript(new URL(model.urls?.tfjs ?? 'static/tfjs/tf.min.js', base).href);
  const tf = globalThis.tf;
  const load = async (name) => {
    if (name === 'wasm' && !tf.findBackend('wasm')) {
      const script = new URL(model.urls?.tfjsWasm ?? 'static/tfjs-wasm/tf-backend-wasm.min.js', base);
      await loadScript(script.href);
      tf.wasm.setWasmPaths(new URL('.', script).href);
    }
    if (name === 'webgpu' && !tf.findBackend('webgpu')) {
      await loadScript(new URL(model.urls?.tfjsWebgpu ?? 'static/tfjs-webgpu/tf-backend-webgpu.min.js', base).href);
    }
  };
  await startBackend(tf, await backendOrder(wanted), { load });
  return tf;
}

/** Show the project's name, operator, contact and description (all as text, never as HTML). */
function showProject(model) {
  const project = model.project ?? {};
  const name = project.name || model.name;
  const operator = project.operator || null;
  $('project-name').textContent = name;
  $('model-name').textContent = `(${model.name})`;
  document.title = `Help train ${name}`;
  for (const el of document.querySelectorAll('.js-project')) el.textContent = name;
  for (const el of document.querySelectorAll('.js-operator')) el.textContent = operator ?? 'the people running this server';
  if (operator) {
    $('operator-name').textContent = operator;
    $('project-operator').hidden = false;
  }
  const contact = safeContact(project.contact);
  if (contact) {
    $('contact').href = contact;
    $('contact').textContent = contact.startsWith('mailto:') ? `contact: ${contact.slice(7)}` : 'contact';
    $('contact-wrap').hidden = false;
    if (!operator) $('project-operator').hidden = false;
  }
  if (project.description) {
    $('project-description').textContent = project.description;
    $('project-description').hidden = false;
  }
  return { name, operator };
}

async function main() {
  const base = new URL('.', location.href).href;
  const params = new URLSearchParams(location.search);
  const storage = localStorageOrNull();
  const key = consentKey(base);
  const autostart = params.get('autostart'); // '1' or '0': the answer is implied (kiosk, lab)
  const facts = {
    consent: autostart === '1' || autostart === '0' ? 'given' : readConsent(storage, key),
    serverState: null, finishing: false, ended: false, lost: false, retryAt: null,
    running: false, starting: false, idle: false, activity: null, error: null, project: null,
  };
  const state = {
    phase: 'starting', title: '', detail: '', facts, backend: null, error: null, loop: null,
    stats: null, history: [], status: null, consentKey: key, autostart,
  };
  globalThis.webnnPage = state;
  const toggle = $('toggle');
  const forget = $('forget');

  const render = () => {
    const status = mainStatus({ ...facts, now: Date.now() });
    if (status.phase !== state.phase || status.title !== state.title) {
      $('status-title').textContent = status.title;
    }
    if (status.detail !== state.detail) $('status-detail').textContent = status.detail;
    Object.assign(state, { phase: status.phase, title: status.title, detail: status.detail, error: facts.error });
    $('status').className = `status ${status.phase}`;
    $('consent').hidden = status.phase !== 'consent';
    const ready = state.loop !== null || facts.consent === 'declined' || autostart === '0';
    toggle.hidden = status.phase === 'consent' || status.phase === 'ended' || status.phase === 'error';
    toggle.textContent = facts.running ? 'Stop' : 'Start';
    toggle.className = facts.running ? 'stop' : '';
    toggle.disabled = facts.starting || (!facts.running && !ready) || toggle.dataset.stopping === '1';
    forget.hidden = autostart !== null || readConsent(storage, key) !== 'given';
    if (status.phase !== 'running') $('message').textContent = '';
  };
  setInterval(render, 1000); // the "retrying in N s" countdown
  render();

  // The model description: project, name, where TF.js lives. Retried until the server answers.
  const viewer = new WebnnClient(base, { client: { kind: 'browser' }, maxAttempts: 1 });
  let model = null;
  for (let attempt = 1; !model; attempt++) {
    try {
      model = await viewer.model();
      facts.lost = false;
    } catch (err) {
      if (!isConnectionLoss(err)) { // refused (a join token, say): retrying will not help
        facts.lost = false;
        facts.error = `the server refused to describe the model: ${err.message}`;
        render();
        return;
      }
      const delay = Math.min(8, 2 ** attempt);
      facts.lost = true;
      facts.retryAt = Date.now() + delay * 1000;
      $('message').textContent = err.message;
      render();
      await sleep(delay);
    }
  }
  facts.project = showProject(model).name;
  render();

  const chart = globalThis.Chart ? createCurveChart(globalThis.Chart, $('curve')) : null;
  const live = new LiveView(viewer, {
    status: (status) => {
      state.status = status;
      facts.serverState = status.state ?? null;
      facts.finishing = Boolean(status.finishing);
      facts.lost = false; // the server answered
      $('clients').textContent = status.clients?.active ?? status.clients ?? '-';
      $('merges').textContent = status.merges ?? '-';
      $('server-state').textContent = status.state ?? '-';
      const evaluation = status.lastEvaluation ?? status.evaluation;
      if (evaluation) {
        $('val-accuracy').textContent = fmt(evaluation.valAccuracy ?? evaluation.accuracy);
        $('val-loss').textContent = fmt(evaluation.valLoss ?? evaluation.loss);
      }
      render();
    },
    history: ({ history }) => {
      state.history = history;
      chart?.update(history, $('x-axis').value);
    },
    error: (err) => {
      if (isConnectionLoss(err)) {
        markLost(POLL_SECONDS);
      } else {
        console.warn('webnn: live view:', err.message);
      }
    },
  }, { pollSeconds: POLL_SECONDS });
  $('x-axis').addEventListener('change', () => chart?.update(state.history, $('x-axis').value));
  live.start();

  function markLost(seconds) {
    facts.lost = true;
    $('server-state').textContent = 'unreachable';
    facts.retryAt = Date.now() + seconds * 1000;
    render();
  }
  function connected() {
    facts.lost = false;
  }

  let client = null;
  /** Load TF.js and build the worker loop (once); only after consent. */
  async function prepare() {
    if (state.loop) return state.loop;
    facts.starting = true;
    render();
    let tf;
    try {
      tf = await startTf(base, model, params.get('backend'));
    } catch (err) {
      facts.error = `TensorFlow.js could not start: ${err.message}`;
      facts.starting = false;
      render();
      throw err;
    }
    state.backend = tf.getBackend();
    $('backend').textContent = state.backend;
    client = new WebnnClient(base, {
      client: {
        kind: 'browser', name: params.get('name') ?? undefined, userAgent: navigator.userAgent, backend: state.backend,
        volunteerId: volunteerId(storage), // keeps this browser's data shard
      },
      encodings: OFFER_ALL, // compressed updates and weights, as the server picks (docs/protocol.md)
    });
    const overlap = params.has('overlap') ? params.get('overlap') === '1' : undefined;
    const loop = new WorkerLoop({ client, trainer: new Trainer(tf), role: params.get('role') ?? 'any', overlap });
    loop.on('task', ({ stats, kind }) => {
      connected();
      facts.idle = false;
      facts.activity = kind;
      $('steps-per-second').textContent = fmt(stats.stepsPerSecond, 1);
      $('updates').textContent = String(stats.updates);
      $('version').textContent = stats.version ?? '-';
      $('last-loss').textContent = fmt(stats.lastLoss);
      render();
      $('message').textContent = kind === 'evaluate' ? 'evaluated a validation chunk' : '';
    });
    loop.on('joined', ({ clientId }) => {
      connected();
      render();
      $('message').textContent = `joined as ${clientId}`;
    });
    loop.on('idle', ({ state: serverState }) => {
      connected();
      facts.idle = true;
      if (serverState) facts.serverState = serverState;
      render();
    });
    loop.on('problem', ({ error }) => {
      if (isConnectionLoss(error)) {
        markLost(loop.pollSeconds);
      } else {
        render();
        $('message').textContent = error.message;
      }
    });
    loop.on('retry', ({ error, delay }) => {
      if (isConnectionLoss(error)) {
        markLost(delay);
      } else {
        render();
        $('message').textContent = `the server is busy; trying again in ${Math.round(delay)} s`;
      }
    });
    state.loop = loop;
    state.stats = loop.stats;
    facts.starting = false;
    render();
    return loop;
  }

  async function start() {
    if (facts.running || facts.starting || facts.ended) return;
    let loop;
    try {
      loop = await prepare();
    } catch {
      return;
    }
    facts.running = true;
    facts.idle = false;
    render();
    const reason = await loop.run();
    await client.leave().catch(() => {});
    facts.running = false;
    facts.idle = false;
    if (reason === 'ended') facts.ended = true;
    delete toggle.dataset.stopping;
    for (const view of ['status', 'history']) live.refresh(view); // the final figures
    render();
  }

  function stop() {
    if (!state.loop?.running) return;
    toggle.dataset.stopping = '1';
    render();
    state.loop.stop();
  }

  $('consent-yes').addEventListener('click', () => {
    rememberConsent(storage, key);
    facts.consent = 'given';
    render();
    toggle.focus();
    start();
  });
  $('consent-no').addEventListener('click', () => {
    facts.consent = 'declined';
    render();
    toggle.focus();
  });
  toggle.addEventListener('click', () => {
    if (facts.running) {
      stop();
      return;
    }
    if (facts.consent !== 'given') {
      rememberConsent(storage, key); // pressing Start is a yes
      facts.consent = 'given';
    }
    start();
  });
  forget.addEventListener('click', () => {
    stop();
    forgetConsent(storage, key);
    facts.consent = 'ask';
    render();
    $('consent-yes').focus();
  });
  // Closing the tab: hand our open task back at once (fetch keepalive/sendBeacon outlive the page).
  addEventListener('pagehide', () => {
    state.loop?.stop();
    client?.leaveBeacon();
  });

  // A run that has ended asks nobody for anything: look before loading TF.js.
  try {
    const status = await viewer.status();
    facts.serverState = status.state ?? null;
  } catch { /* the live view reports the connection */ }
  render();
  if (facts.serverState === 'ended') return;
  if (autostart === '0') {
    await prepare().catch(() => {});
    $('message').textContent = 'ready; press Start to contribute';
  } else if (facts.consent === 'given') {
    start();
  }
}

main();
