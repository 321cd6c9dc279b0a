// Hostile workers (`wnn-worker --attack ...`) against a real `wnn serve`: a NaN attacker's updates
// are refused with `not_finite`; a boosted (`scaled`) one is refused (`norm_too_large`) or clipped
// by a server with a norm bound, while an honest worker's updates pass the same bound.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { WebnnClient } from '../src/protocol.js';
import { startServer } from './serve.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'wnn-worker.js');
const running = [];

after(async () => {
  await Promise.all(running.map((stop) => stop()));
});

function startWorker(url, name, ...extra) {
  const child = spawn(process.execPath, [WORKER, '--server', url, '--name', name, '--role', 'train', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.on('data', (chunk) => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop();
      lines.push(...parts);
    });
  }
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  running.push(stop);
  return { lines, stop, exited };
}

async function serve(extra) {
  const server = await startServer(extra);
  running.push(server.stop);
  return { ...server, client: new WebnnClient(server.url) };
}

/** Poll `probe` until it answers something truthy; the deadline only guards against hanging. */
async function waitFor(probe, what, seconds = 120) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const byName = async (client, name) => (await client.clients()).clients.find((c) => c.name === name);

test('a nan attacker is refused with not_finite and changes nothing', async () => {
  const server = await serve([]);
  const worker = startWorker(server.url, 'nan-attacker', '--attack', 'nan');
  const status = await waitFor(async () => {
    const s = await server.client.status();
    return (s.rejected?.not_finite ?? 0) >= 2 && s;
  }, 'two not_finite refusals');
  assert.equal(status.merges, 0);
  assert.equal(status.version, 0);
  const me = await byName(server.client, 'nan-attacker');
  assert.equal(me.updatesAccepted, 0);
  assert.ok(me.updatesRejected >= 2);
  assert.ok(worker.lines.some((line) => line.includes('not_finite')), worker.lines.join('\n'));
  assert.equal(await worker.stop(), 0);
});

test('a scaled attacker is refused by a norm bound that an honest worker passes', async () => {
  const server = await serve(['--screen', 'norm_bound=5', '--screen', 'action=refuse']);
  const honest = startWorker(server.url, 'honest');
  const hostile = startWorker(server.url, 'booster', '--attack', 'scaled', '--attack-scale', '1000');
  await waitFor(async () => {
    const [h, b] = [await byName(server.client, 'honest'), await byName(server.client, 'booster')];
    return h?.updatesAccepted >= 2 && b?.updatesRejected >= 2;
  }, 'honest updates merged and boosted ones refused');
  const booster = await byName(server.client, 'booster');
  assert.equal(booster.updatesAccepted, 0);
  assert.ok((await server.client.status()).rejected.norm_too_large >= 2);
  assert.ok(hostile.lines.some((line) => line.includes('norm_too_large')), hostile.lines.join('\n'));
  assert.equal(await hostile.stop(), 0);
  assert.equal(await honest.stop(), 0);
});

test('with action = clip a scaled attacker\'s updates are clipped, not refused', async () => {
  const server = await serve(['--screen', 'norm_bound=5', '--screen', 'action=clip']);
  const hostile = startWorker(server.url, 'clipped-booster', '--attack', 'scaled', '--attack-scale', '1000', '--max-tasks', '3');
  await waitFor(() => hostile.lines.some((line) => line.startsWith('left ')), 'the worker to finish 3 tasks');
  const tasks = hostile.lines.filter((line) => line.startsWith('task '));
  assert.equal(tasks.length, 3, hostile.lines.join('\n'));
  for (const line of tasks) assert.match(line, / clipped$/);
  const status = await server.client.status();
  assert.equal(status.merges, 3);
  assert.equal(status.rejected.norm_too_large ?? 0, 0);
  // --max-tasks 3: the worker leaves and exits by itself (a SIGTERM now could race its exit)
  assert.equal(await hostile.exited, 0);
});
