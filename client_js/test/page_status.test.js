import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  consentKey, forgetConsent, isConnectionLoss, mainStatus, readConsent, rememberConsent, safeContact, secondsUntil,
} from '../src/page_status.js';
import { ProtocolError } from '../src/protocol.js';

class MemoryStorage {
  constructor(entries = {}) { this.map = new Map(Object.entries(entries)); }
  getItem(key) { return this.map.has(key) ? this.map.get(key) : null; }
  setItem(key, value) { this.map.set(key, String(value)); }
  removeItem(key) { this.map.delete(key); }
}

const running = { consent: 'given', running: true, serverState: 'running', project: 'Digits' };

test('contributing while the loop runs and the server answers', () => {
  assert.deepEqual(mainStatus(running), { phase: 'running', title: 'Contributing', detail: 'Training the model on this device.' });
  assert.match(mainStatus({ ...running, idle: true }).detail, /^Waiting for work/);
  assert.match(mainStatus({ ...running, activity: 'evaluate' }).detail, /^Evaluating/);
  assert.match(mainStatus({ ...running, finishing: true, idle: true }).detail, /final evaluation/);
});

test('a lost connection is the main status, with a countdown, never "contributing"', () => {
  const now = 1_000_000;
  const lost = mainStatus({ ...running, lost: true, retryAt: now + 4_200, now });
  assert.deepEqual(lost, { phase: 'lost', title: 'Connection lost', detail: 'retrying in 5 s' });
  assert.equal(mainStatus({ ...running, lost: true, retryAt: now - 10, now }).detail, 'retrying now…');
  // before consent too: the server is gone whatever the visitor decides
  assert.equal(mainStatus({ consent: 'ask', lost: true, now }).phase, 'lost');
});

test('the end of the run wins over everything but a fatal error, and never says waiting', () => {
  for (const facts of [
    { ...running, serverState: 'ended', idle: true },
    { ...running, running: false, ended: true, lost: true },
    { consent: 'ask', serverState: 'ended' },
    { ...running, serverState: 'paused', ended: true },
  ]) {
    const status = mainStatus(facts);
    assert.equal(status.phase, 'ended', JSON.stringify(facts));
    assert.equal(status.title, 'Training has ended — thank you!');
    assert.doesNotMatch(status.detail, /wait/i);
    assert.match(status.detail, /Digits|this model/);
  }
  assert.equal(mainStatus({ ...running, error: 'no WebGL', serverState: 'ended' }).phase, 'error');
});

test('paused by the project while contributing; stopped when the visitor stopped', () => {
  assert.equal(mainStatus({ ...running, serverState: 'paused' }).phase, 'paused');
  const stopped = mainStatus({ ...running, running: false, serverState: 'paused' });
  assert.equal(stopped.phase, 'stopped');
  assert.match(stopped.detail, /paused/);
  assert.equal(mainStatus({ ...running, running: false }).title, 'Stopped');
});

test('nothing runs before consent; "not now" is a stop, not an error', () => {
  assert.deepEqual(mainStatus({ consent: 'ask', serverState: 'running' }).phase, 'consent');
  assert.equal(mainStatus({ consent: 'declined', serverState: 'running' }).title, 'Not contributing');
  assert.equal(mainStatus({ consent: 'given', starting: true }).phase, 'starting');
});

test('connection losses are network failures and 5xx other than busy', () => {
  assert.ok(isConnectionLoss(new ProtocolError('network', 'fetch failed')));
  assert.ok(isConnectionLoss(new ProtocolError('http_error', 'bad gateway', { status: 502 })));
  assert.ok(!isConnectionLoss(new ProtocolError('busy', 'full', { status: 503, retryAfter: 2 })));
  assert.ok(!isConnectionLoss(new ProtocolError('bad_field', '$.role', { status: 400 })));
  assert.ok(!isConnectionLoss(null));
});

test('consent is remembered per page path and can be forgotten', () => {
  const storage = new MemoryStorage();
  const a = consentKey('http://host:8080/models/a/');
  const b = consentKey('http://host:8080/models/b/');
  assert.notEqual(a, b);
  assert.equal(readConsent(storage, a), 'ask');
  rememberConsent(storage, a, Date.UTC(2026, 0, 1));
  assert.equal(readConsent(storage, a), 'given');
  assert.equal(readConsent(storage, b), 'ask');
  assert.equal(JSON.parse(storage.getItem(a)).at, '2026-01-01T00:00:00.000Z');
  forgetConsent(storage, a);
  assert.equal(readConsent(storage, a), 'ask');
  // garbage, a "no", or no storage at all (private mode): ask
  assert.equal(readConsent(new MemoryStorage({ [a]: '{not json' }), a), 'ask');
  assert.equal(readConsent(new MemoryStorage({ [a]: '{"given": false}' }), a), 'ask');
  assert.equal(readConsent(null, a), 'ask');
  rememberConsent(null, a); // no throw
});

test('contact links: http(s) and mailto only', () => {
  assert.equal(safeContact('https://example.org/about'), 'https://example.org/about');
  assert.equal(safeContact(' mailto:lab@example.org '), 'mailto:lab@example.org');
  assert.equal(safeContact('javascript:alert(1)'), null);
  assert.equal(safeContact('https://exa mple.org'), null);
  assert.equal(safeContact(null), null);
});

test('secondsUntil rounds up and never goes below zero', () => {
  assert.equal(secondsUntil(2_001, 1_000), 2);
  assert.equal(secondsUntil(500, 1_000), 0);
});
