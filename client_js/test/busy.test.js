// The protocol client honours 503 + Retry-After (the server's `busy` answer): it waits the given
// seconds and repeats the same request, without spending its retry attempts. A fake fetch plays
// the server, so the waits and the repeated requests can be checked exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ProtocolError, WebnnClient } from '../src/protocol.js';

function busyAnswer(retryAfter) {
  const headers = { 'Content-Type': 'application/json' };
  if (retryAfter !== null) headers['Retry-After'] = String(retryAfter);
  const body = JSON.stringify({ protocol: 1, error: { code: 'busy', message: 'update bodies in flight fill the budget' } });
  return new Response(body, { status: 503, headers });
}

function okAnswer(payload) {
  return new Response(JSON.stringify(payload), { status: 200, headers: { 'Content-Type': 'application/json' } });
}

/** A fetch that answers from `script` in order and records every request. */
function fakeFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, method: init.method, body: init.body, headers: { ...init.headers } });
    const next = script.shift();
    if (!next) throw new Error('unexpected request');
    return next();
  };
  return { fetch, calls };
}

test('503 with Retry-After: waits that long, then repeats the same request', async () => {
  const { fetch, calls } = fakeFetch([() => busyAnswer(1), () => okAnswer({ protocol: 1, accepted: true })]);
  const retries = [];
  const client = new WebnnClient('http://server.test/app/', {
    fetch, maxAttempts: 1, onRetry: (error, attempt, delay) => retries.push({ code: error.code, delay }),
  });
  client.token = 'session-token';
  const body = new Uint8Array([1, 2, 3, 4]);
  const started = performance.now();
  const response = await client.send('POST', 'api/v1/tasks/t-1/update', { body, contentType: 'application/vnd.webnn.frame' });
  const waited = (performance.now() - started) / 1000;
  assert.equal(response.status, 200);
  assert.deepEqual(retries, [{ code: 'busy', delay: 1 }]);
  assert.ok(waited >= 0.95, `waited ${waited} s, Retry-After said 1 s`);
  assert.equal(calls.length, 2);
  for (const call of calls) {
    assert.equal(call.url, 'http://server.test/app/api/v1/tasks/t-1/update');
    assert.equal(call.method, 'POST');
    assert.equal(call.body, body);
    assert.equal(call.headers['X-WebNN-Session'], 'session-token');
  }
});

test('busy waits are bounded by maxBusyWaits and maxBusyDelay, then count as server errors', async () => {
  const { fetch, calls } = fakeFetch([() => busyAnswer(3600), () => busyAnswer(3600), () => busyAnswer(3600)]);
  const delays = [];
  const client = new WebnnClient('http://server.test/', {
    fetch, maxAttempts: 1, maxBusyWaits: 2, maxBusyDelay: 0.01, onRetry: (error, attempt, delay) => delays.push(delay),
  });
  await assert.rejects(client.json('POST', 'api/v1/tasks', { role: 'train' }), (err) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, 'busy');
    assert.equal(err.status, 503);
    assert.equal(err.retryAfter, 3600);
    return true;
  });
  assert.deepEqual(delays, [0.01, 0.01]);
  assert.equal(calls.length, 3);
});

test('a 503 without Retry-After is an ordinary server error (backoff, counted attempts)', async () => {
  const { fetch, calls } = fakeFetch([() => busyAnswer(null)]);
  const client = new WebnnClient('http://server.test/', { fetch, maxAttempts: 1 });
  await assert.rejects(client.json('GET', 'api/v1/status'), (err) => err.code === 'busy');
  assert.equal(calls.length, 1);
});
