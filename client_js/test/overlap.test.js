// The worker loop with overlap (the next task fetched while this one computes) against a real
// `wnn serve`: request counts, staleness, no lease left behind, and one rejoin for concurrent
// requests after a server restart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { WebnnClient } from '../src/protocol.js';
import { Trainer } from '../src/trainer.js';
import { WorkerLoop } from '../src/worker_loop.js';
import { freePort, startServer } from './serve.js';
import { loadTf } from './helpers.js';

const tf = await loadTf();
let server;

before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

/** A fetch that records `METHOD path` of every request (task ids and versions as `*`). */
function countingFetch(requests) {
  return (url, init) => {
    requests.push(`${init.method} ${new URL(url).pathname.replace(/t-[\w-]+/, 't-*').replace(/weights\/\d+/, 'weights/*')}`);
    return fetch(url, init);
  };
}

test('with overlap each task after the second comes with an update sent while the next one computed', async () => {
  const requests = [];
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'overlap' }, fetch: countingFetch(requests) });
  const trainer = new Trainer(tf);
  const loop = new WorkerLoop({ client, trainer, role: 'train', maxTasks: 6, overlap: true });
  const answers = [];
  const problems = [];
  loop.on('task', ({ answer, timings }) => answers.push({ answer, timings }));
  for (const name of ['problem', 'dropped', 'idle']) loop.on(name, (event) => problems.push([name, event]));
  assert.equal(await loop.run(), 'max-tasks');
  assert.deepEqual(problems, []);
  const count = (what) => requests.filter((r) => r === what).length;
  assert.equal(count('POST /api/v1/tasks/t-*/update'), 6, requests.join('\n'));
  // the first task, and the second asked for before the first computed; the rest are follow-ups
  assert.equal(count('POST /api/v1/tasks'), 2, requests.join('\n'));
  assert.equal(count('GET /api/v1/tasks/t-*/batch'), 2);
  assert.equal(loop.stats.updates, 6);
  assert.ok(answers.every(({ answer }) => answer.accepted));
  // Answers come in the order they arrive, not the tasks' order: updates sent beside the next
  // computation overlap one another, and the last task's (sent alone) may overtake them.
  // The cost: a task leased before our previous update merged starts one merge behind it; only
  // the first task starts at the newest version.
  const fresh = answers.filter(({ answer }) => answer.staleness === 0);
  assert.ok(fresh.length <= 1, JSON.stringify(answers.map((a) => a.answer.staleness)));
  // The five updates sent beside the next computation report the loop's time without their send
  // (the sixth, the last task's, went alone and reports none).
  const beside = answers.filter(({ timings }) => timings.wall !== undefined);
  assert.equal(beside.length, 5, JSON.stringify(answers.map((a) => a.timings)));
  assert.ok(beside.every(({ timings }) => timings.wall === timings.fetch + timings.compute));
  assert.equal((await client.status()).openTasks, 0); // nothing prefetched beyond maxTasks
  trainer.dispose();
  await client.leave();
});

test('a loop stopped with a task on its way leaves no lease behind once it leaves', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'overlap-stop' } });
  const trainer = new Trainer(tf);
  const loop = new WorkerLoop({ client, trainer, role: 'train', overlap: true });
  let tasks = 0;
  loop.on('task', () => { tasks += 1; if (tasks === 3) loop.stop(); });
  assert.equal(await loop.run(), 'stopped');
  const viewer = new WebnnClient(server.url);
  const mine = (await viewer.clients()).clients.find((c) => c.clientId === client.clientId);
  assert.ok(mine.openTasks >= 1 && mine.openTasks <= 3, JSON.stringify(mine)); // within max_open_tasks
  await client.leave();
  assert.equal((await viewer.status()).openTasks, 0);
  trainer.dispose();
});

test('concurrent requests of a forgotten session join again once', async () => {
  const port = await freePort();
  let restarted = await startServer([], { port });
  try {
    const client = new WebnnClient(restarted.url, { client: { kind: 'node', name: 'rejoin' } });
    await client.join();
    const old = client.token;
    await restarted.stop();
    restarted = await startServer([], { port }); // a new process: our session is unknown there
    const answers = await Promise.all([client.requestTask('train'), client.requestTask('train'), client.requestTask('train')]);
    assert.equal(client.joins, 2);
    assert.notEqual(client.token, old);
    assert.ok(answers.every((a) => 'task' in a));
    await client.leave();
  } finally {
    await restarted.stop();
  }
});

test('wnn-worker takes --overlap or --no-overlap, never both', async () => {
  const { spawnSync } = await import('node:child_process');
  const run = (...args) => spawnSync(process.execPath, ['bin/wnn-worker.js', '--server', 'http://127.0.0.1:1/', ...args],
    { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
  const both = run('--overlap', '--no-overlap');
  assert.equal(both.status, 2);
  assert.match(both.stderr, /--overlap and --no-overlap contradict each other/);
  assert.match(run('--help').stdout, /\[--overlap \| --no-overlap\]/);
});
