// The operator dashboard: the run's status, every client, the validation curve, merges over time,
// the strategy and its parameters, refused updates by reason, and admin actions (pause, resume,
// end, export) that send the admin token typed into the page (kept in this tab's sessionStorage
// only). "Last seen" is measured on the server's clock (`now` in `api/v1/clients`).
// The strategy's parameters are the server's effective values (defaults filled in); the end
// conditions show the progress towards each; both charts count seconds from the run's start
// (`elapsed`), which the server freezes at the end; pause, resume and end are disabled after it.

import { WebnnClient } from './protocol.js';
import { createCurveChart, curvePoints } from './curve.js';
import { LiveView } from './live.js';
import { summariseClient } from './client_stats.js';
import { adminActions, endProgress, strategyRows } from './dashboard_view.js';

const $ = (id) => document.getElementById(id);
const fmt = (v, digits = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function renderClients(payload) {
  const list = payload.clients ?? [];
  const now = payload.now ?? Date.now() / 1000; // servers before `now` existed: the browser's clock
  const rows = list.map((c) => {
    const s = summariseClient(c, now);
    const tr = document.createElement('tr');
    tr.dataset.clientId = s.id;
    tr.append(cell(s.id), cell(s.name), cell(s.kind), cell(s.rejected ? `${s.updates} (+${s.rejected} refused)` : String(s.updates)),
      cell(fmt(s.examplesPerSecond, 1)), cell(fmt(s.updatesPerMinute, 1)), cell(s.staleness ?? '-'),
      cell(fmt(s.loss)), cell(s.lastSeenAgo === null ? '-' : `${s.lastSeenAgo.toFixed(0)} s ago`), cell(s.state));
    return tr;
  });
  $('client-rows').replaceChildren(...rows);
}

function renderStatus(status) {
  $('model-name').textContent = status.name ?? '-';
  $('server-state').textContent = status.state ?? '-';
  $('server-state').className = `state ${status.state ?? ''}`;
  const project = status.project;
  if (project?.name && project.name !== status.name) document.title = `webnn dashboard: ${project.name}`;
  $('project-line').textContent = project?.operator ? `${project.name ?? status.name}, run by ${project.operator} · ` : '';
  $('version').textContent = status.version ?? '-';
  $('steps').textContent = status.steps ?? '-';
  $('merges').textContent = status.merges ?? '-';
  $('clients').textContent = status.clients ?? '-';
  $('open-tasks').textContent = status.openTasks ?? '-';
  $('elapsed').textContent = typeof status.elapsed === 'number' ? `${status.elapsed.toFixed(0)} s` : '-';
  $('end-reason').textContent = status.endReason ? `ended: ${status.endReason}` : '';
  const last = status.lastEvaluation;
  if (last) {
    $('val-accuracy').textContent = fmt(last.valAccuracy);
    $('val-loss').textContent = fmt(last.valLoss);
  }
  const strategy = status.strategy ?? {};
  $('strategy-name').textContent = strategy.name ?? '-';
  // effective parameters, then what the strategy reports (e.g. the privacy spent by `dp`)
  const rows = strategyRows(strategy).map(({ name, text, kind }) => {
    const tr = document.createElement('tr');
    tr.dataset.param = name;
    tr.dataset.kind = kind;
    tr.append(cell(name), cell(text));
    return tr;
  });
  if (!rows.length) rows.push(Object.assign(document.createElement('tr'), { innerHTML: '<td class="muted">no parameters</td>' }));
  $('strategy-params').replaceChildren(...rows);
  renderEnd(status);
  renderAdmin(status);
  renderRefusals(status.rejected ?? {});
}

/** The end conditions with a meter each; "none" when the run goes on until an admin ends it. */
function renderEnd(status) {
  const rows = endProgress(status).map((row) => {
    const div = document.createElement('div');
    div.dataset.end = row.key;
    const label = Object.assign(document.createElement('span'), { textContent: row.label });
    const meter = Object.assign(document.createElement('meter'), { min: 0, max: 1, value: row.fraction });
    meter.setAttribute('aria-label', `${row.label}: ${row.text}`);
    const text = Object.assign(document.createElement('span'), { textContent: row.text });
    div.append(label, meter, text);
    return div;
  });
  if (!rows.length) {
    rows.push(Object.assign(document.createElement('p'), {
      className: 'muted', textContent: 'none: the run goes on until an admin ends it',
    }));
  }
  $('end-conditions').replaceChildren(...rows);
}

function renderAdmin(status) {
  const live = adminActions(status);
  for (const button of document.querySelectorAll('button[data-action]')) {
    button.disabled = !live[button.dataset.action];
    button.title = button.disabled && status.state === 'ended' ? 'the run has ended' : '';
  }
}

/** Refused updates and evaluations by reason (the server's error code), most frequent first. */
function renderRefusals(rejected) {
  const rows = Object.entries(rejected).sort((a, b) => b[1] - a[1]).map(([reason, count]) => {
    const tr = document.createElement('tr');
    tr.dataset.reason = reason;
    tr.append(cell(reason), cell(String(count)));
    return tr;
  });
  if (!rows.length) rows.push(Object.assign(document.createElement('tr'), { innerHTML: '<td class="muted" colspan="2">none</td>' }));
  $('refusals').replaceChildren(...rows);
}

function mergesChart(Chart, canvas) {
  const chart = new Chart(canvas, {
    type: 'line',
    data: { datasets: [{ label: 'merges', data: [], borderColor: '#2f6fed', backgroundColor: '#2f6fed', pointRadius: 0, stepped: true }] },
    options: {
      animation: false, maintainAspectRatio: false, parsing: false,
      scales: { x: { type: 'linear', min: 0, title: { display: true, text: 'seconds' } }, y: { type: 'linear', beginAtZero: true, title: { display: true, text: 'merges' } } },
    },
  });
  return {
    /** Add (elapsed seconds, merges) points, kept sorted by time; points come from the history
     * (one per evaluation, since the start) and from every status refresh. */
    add(points) {
      const data = chart.data.datasets[0].data;
      const seen = new Set(data.map((p) => p.x));
      for (const [x, y] of points) {
        if (typeof x === 'number' && typeof y === 'number' && !seen.has(x)) data.push({ x, y });
      }
      data.sort((a, b) => a.x - b.x);
      chart.update('none');
    },
    /** The points drawn, as [{x, y}] (for tests). */
    points() {
      return chart.data.datasets[0].data.map(({ x, y }) => ({ x, y }));
    },
  };
}

async function download(response, name) {
  const url = URL.createObjectURL(await response.blob());
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function main() {
  const base = new URL('.', location.href).href;
  const client = new WebnnClient(base, { client: { kind: 'browser' }, maxAttempts: 3 });
  const state = { status: null, statusCount: 0, clients: [], history: [], events: 0, lastAdmin: null, curve: null, merges: null };
  globalThis.webnnDashboard = state;
  const Chart = globalThis.Chart;
  const curve = Chart ? createCurveChart(Chart, $('curve')) : null;
  const merges = Chart ? mergesChart(Chart, $('merges-chart')) : null;

  const live = new LiveView(client, {
    status: (status) => {
      state.status = status;
      state.statusCount += 1;
      renderStatus(status);
      merges?.add([[status.elapsed, status.merges]]);
      state.merges = merges?.points() ?? null;
    },
    clients: (payload) => {
      state.clients = payload.clients ?? [];
      renderClients(payload);
    },
    history: ({ history }) => {
      state.history = history;
      curve?.update(history, $('x-axis').value);
      merges?.add(history.map((h) => [h.elapsed, h.merges]));
      state.curve = curve ? curvePoints(history, 'time') : null;
      state.merges = merges?.points() ?? null;
    },
    error: (err) => console.warn('webnn dashboard:', err.message),
  }, { pollSeconds: 3 });
  live.onEvent = () => { state.events += 1; };
  live.start();
  $('x-axis').addEventListener('change', () => curve?.update(state.history, $('x-axis').value));

  const tokenInput = $('admin-token');
  tokenInput.value = sessionStorage.getItem('webnn-admin-token') ?? '';
  tokenInput.addEventListener('change', () => sessionStorage.setItem('webnn-admin-token', tokenInput.value));
  for (const button of document.querySelectorAll('button[data-action]')) {
    button.addEventListener('click', async () => {
      const action = button.dataset.action;
      const token = tokenInput.value.trim();
      const message = $('admin-message');
      if (!token) {
        message.textContent = `${action}: type the admin token first (wnn serve prints it)`;
        state.lastAdmin = { action, ok: false, code: 'no_token' };
        return;
      }
      try {
        if (action === 'export') {
          await download(await client.exportFile('model.json', token), 'model.json');
          await download(await client.exportFile('weights.bin', token), 'weights.bin');
          message.textContent = 'exported model.json and weights.bin';
        } else {
          const status = await client.admin(action, token);
          state.status = status;
          renderStatus(status);
          message.textContent = `${action}: done; state ${status.state}`;
        }
        state.lastAdmin = { action, ok: true };
      } catch (err) {
        message.textContent = `${action} refused: ${err.message}`;
        state.lastAdmin = { action, ok: false, code: err.code ?? err.name };
      }
      live.refresh('status');
    });
  }
}

main();
