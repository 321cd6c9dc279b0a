// The protocol client and trainer against a real `wnn serve` (digits_mlp on the digits data module).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { ProtocolError, WebnnClient } from '../src/protocol.js';
import { Trainer } from '../src/trainer.js';
import { freePort, startServer } from './serve.js';
import { loadTf } from './helpers.js';

const tf = await loadTf();
let server;

before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

async function taskOf(client, role) {
  for (let i = 0; i < 50; i++) {
    const answer = await client.requestTask(role);
    if (answer.task) return answer.task;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${role} task in 50 asks`);
}

test('join, build the served model, fetch weights conditionally', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'protocol-test' } });
  const joined = await client.join();
  assert.match(joined.token, /.{16,}/);
  assert.equal(joined.model.name, 'digits_mlp');
  const trainer = new Trainer(tf);
  assert.equal(await trainer.setModel(joined.model), true); // manifest shapes checked against TF.js
  const first = await client.weights();
  assert.equal(first.cached, false);
  assert.equal(first.weights.length, trainer.size);
  assert.ok(first.weights.some((v) => v !== 0));
  const again = await client.weights();
  assert.equal(again.cached, true); // 304 answered from the cache
  assert.equal(again.weights, first.weights);
  trainer.loadWeights(first.weights);
  assert.deepEqual(Array.from(await trainer.readWeights()), Array.from(first.weights));
  trainer.dispose();
  await client.leave();
});

test('a train task: batch frame, local steps, update merged into a new version', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'train-test' } });
  const joined = await client.join();
  const trainer = new Trainer(tf);
  await trainer.setModel(joined.model);
  const task = await taskOf(client, 'train');
  assert.equal(task.kind, 'train');
  const [weights, batch] = await Promise.all([client.weights(task.urls.weights), client.batch(task)]);
  assert.equal(weights.version, task.version);
  assert.deepEqual(batch.x.shape, [task.batchSize * task.localSteps, 64]);
  assert.equal(batch.y.shape[0], task.batchSize * task.localSteps);
  const result = await trainer.train(weights.weights, batch.x, batch.y, task);
  assert.equal(result.steps, task.localSteps);
  assert.ok(Number.isFinite(result.loss));
  const answer = await client.submitUpdate(task, result.weights, { ...result, timings: { fetch: 0, compute: 0, send: 0 } });
  assert.equal(answer.accepted, true);
  assert.ok(answer.version > task.version || answer.merged === false);
  // Submitting the same task again gets the first answer again and merges nothing new.
  const status = await client.status();
  const again = await client.submitUpdate(task, result.weights, { ...result, timings: { fetch: 0, compute: 0, send: 0 } });
  assert.deepEqual(again, answer);
  assert.equal((await client.status()).merges, status.merges);
  trainer.dispose();
  await client.leave();
});

test('an evaluate task: loss and accuracy over a validation chunk are accepted', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'eval-test' } });
  const joined = await client.join();
  const trainer = new Trainer(tf);
  await trainer.setModel(joined.model);
  const task = await taskOf(client, 'evaluate');
  assert.equal(task.kind, 'evaluate');
  const [weights, batch] = await Promise.all([client.weights(task.urls.weights), client.batch(task)]);
  const result = await trainer.evaluate(weights.weights, batch.x, batch.y);
  assert.equal(result.examples, batch.x.shape[0]);
  assert.ok(result.accuracy >= 0 && result.accuracy <= 1);
  assert.equal((await client.submitEvaluation(task, result)).accepted, true);
  trainer.dispose();
  await client.leave();
});

test('a bad update is refused with the server\'s error code and changes nothing', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'bad-test' } });
  await client.join();
  const task = await taskOf(client, 'train');
  const before = await client.status();
  await assert.rejects(
    client.submitUpdate(task, new Float32Array(10), { steps: 1, loss: 1, accuracy: 0, timings: { fetch: 0, compute: 0, send: 0 } }),
    (err) => err instanceof ProtocolError && err.code === 'wrong_length' && err.status === 400 && /40 bytes/.test(err.message));
  const after = await client.status();
  assert.equal(after.version, before.version);
  await client.leave();
});

test('unknown tasks and sessions: the task is reported gone, the session is rejoined', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'gone-test' } });
  await client.join();
  const fake = { id: 't-nope', version: 0, urls: { batch: 'api/v1/tasks/t-nope/batch' } };
  await assert.rejects(client.batch(fake), (err) => err.code === 'unknown_task' && err.status === 404);
  const oldToken = client.token;
  await client.leave();
  client.token = oldToken; // as if the server had forgotten us
  const answer = await client.requestTask('train');
  assert.ok('task' in answer);
  assert.notEqual(client.token, oldToken);
  assert.equal(client.joins, 2);
  await client.leave();
});

test('a closing page leaves for good: requests in flight never join again', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'browser', name: 'closing-tab' } });
  await client.join();
  const clientsNamed = async () => (await client.clients()).clients
    .filter((c) => c.name === 'closing-tab' && c.state !== 'left');
  const oldToken = client.token;
  // the page closes: the beacon's fallback (no navigator here) posts the leave
  assert.equal(client.leaveBeacon(null), true);
  for (let i = 0; i < 100 && (await clientsNamed()).length; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await clientsNamed()).length, 0);
  // a request that was on its way with the old session finds it gone, and does not rejoin
  client.token = oldToken;
  await assert.rejects(client.requestTask('train'), (err) => err.code === 'unknown_session');
  await assert.rejects(client.join(), (err) => err.code === 'closed');
  assert.equal(client.joins, 1);
  assert.equal((await clientsNamed()).length, 0);
});

test('admin actions need the admin token', async () => {
  const client = new WebnnClient(server.url);
  await assert.rejects(client.admin('pause', 'wrong-token-123'), (err) => err.code === 'admin_token_required' && err.status === 401);
  assert.equal((await client.status()).state, 'running');
  assert.equal((await client.admin('pause', server.adminToken)).state, 'paused');
  assert.equal((await client.admin('resume', server.adminToken)).state, 'running');
});

test('network errors are retried with backoff until the server comes up', async () => {
  const port = await freePort();
  const retries = [];
  const client = new WebnnClient(`http://127.0.0.1:${port}`, {
    initialDelay: 0.2, maxDelay: 1, maxAttempts: 200, onRetry: (err, attempt, delay) => retries.push([err.code, delay]),
  });
  const joining = client.join();
  await new Promise((r) => setTimeout(r, 500));
  const late = await startServer([], { port });
  try {
    const joined = await joining;
    assert.equal(joined.model.name, 'digits_mlp');
    assert.ok(retries.length >= 2);
    assert.deepEqual(retries.slice(0, 3).map(([code]) => code), ['network', 'network', 'network'].slice(0, Math.min(3, retries.length)));
    assert.deepEqual(retries.slice(0, 3).map(([, d]) => d), [0.2, 0.4, 0.8].slice(0, Math.min(3, retries.length)));
    await client.leave();
  } finally {
    await late.stop();
  }
});

test('5xx answers are retried; 4xx answers are not', async () => {
  // A stand-in for a proxy in front of the server that fails twice: the one place a real
  // `wnn serve` cannot be made to answer 503 on demand.
  let calls = 0;
  const proxy = http.createServer((req, res) => {
    calls += 1;
    if (req.url === '/api/v1/status' && calls <= 2) { res.writeHead(503); res.end('busy'); return; }
    if (req.url === '/api/v1/status') { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{"protocol":1,"state":"running"}'); return; }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"protocol":1,"error":{"code":"unknown_task","message":"no task t-1"}}');
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const client = new WebnnClient(`http://127.0.0.1:${proxy.address().port}/`, { initialDelay: 0.01 });
    assert.equal((await client.status()).state, 'running');
    assert.equal(calls, 3);
    await assert.rejects(client.batch({ id: 't-1', urls: { batch: '/api/v1/tasks/t-1/batch' } }), /no task t-1/);
    assert.equal(calls, 4);
  } finally {
    proxy.close();
  }
});

test('an update asking for "next" brings the next task with its weights and batch', async () => {
  const client = new WebnnClient(server.url, { client: { kind: 'node', name: 'follow-up-test' } });
  const joined = await client.join();
  const trainer = new Trainer(tf);
  await trainer.setModel(joined.model);
  const task = await taskOf(client, 'train');
  const [weights, batch] = await Promise.all([client.weights(task.urls.weights), client.batch(task)]);
  const result = await trainer.train(weights.weights, batch.x, batch.y, task);
  const answer = await client.submitUpdate(task, result.weights, { ...result, timings: { fetch: 0, compute: 0, send: 0 } }, { next: 'train' });
  assert.equal(answer.accepted, true);
  const next = answer.next.task;
  assert.equal(next.kind, 'train');
  assert.equal(next.version, answer.version); // leased after our merge
  // The inputs that came along are what the task's URLs serve; the weights are now cached.
  assert.equal(answer.inputs.weights.version, next.version);
  assert.equal((await client.weights(next.urls.weights)).cached, true);
  const fresh = new WebnnClient(server.url);
  fresh.token = client.token;
  assert.deepEqual(Array.from(answer.inputs.weights.weights), Array.from((await fresh.weights(next.urls.weights)).weights));
  const served = await client.batch(next);
  assert.deepEqual(answer.inputs.batch.x, served.x);
  assert.deepEqual(answer.inputs.batch.y, served.y);
  trainer.dispose();
  await client.leave();
});

test('with follow-ups the worker loop makes one request per task after the first', async () => {
  const { WorkerLoop } = await import('../src/worker_loop.js');
  for (const followUp of [true, false]) {
    const requests = [];
    const counting = (url, init) => {
      requests.push(`${init.method} ${new URL(url).pathname.replace(/t-[\w-]+/, 't-*').replace(/weights\/\d+/, 'weights/*')}`);
      return fetch(url, init);
    };
    const client = new WebnnClient(server.url, { client: { kind: 'node', name: `loop-${followUp}` }, fetch: counting });
    const trainer = new Trainer(tf);
    const loop = new WorkerLoop({ client, trainer, role: 'train', maxTasks: 4, followUp });
    assert.equal(await loop.run(), 'max-tasks');
    const count = (what) => requests.filter((r) => r === what).length;
    assert.equal(count('POST /api/v1/tasks/t-*/update'), 4);
    assert.equal(count('POST /api/v1/tasks'), followUp ? 1 : 4, requests.join('\n'));
    assert.equal(count('GET /api/v1/tasks/t-*/batch'), followUp ? 1 : 4);
    assert.equal(count('GET /api/v1/weights/*'), followUp ? 1 : 4);
    assert.equal(loop.stats.updates, 4);
    assert.equal((await client.status()).openTasks, 0); // the last update asked for no follow-up
    trainer.dispose();
    await client.leave();
  }
});
