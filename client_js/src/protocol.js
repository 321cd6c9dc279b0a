// The protocol client (docs/protocol.md, version 1): join, model, tasks, weights, batches, updates,
// evaluations, leave, status, history, clients and admin actions.
//
// - Every request goes to a URL resolved against the app's base URL (which ends in "/"), so the
//   client works when the app is mounted under a prefix; absolute paths in payloads already carry it.
// - Network errors and 5xx answers are retried with exponential backoff: attempt k (k >= 1) waits
//   min(maxDelay, initialDelay * 2^(k-1)) seconds, for at most `maxAttempts` attempts in all.
//   Updates are safe to retry: the server merges a task submitted twice once.
// - 503 with Retry-After (the server is busy: code `busy`) waits the given seconds (at most
//   `maxBusyDelay`) and repeats the same request; these waits do not count as attempts, up to
//   `maxBusyWaits` in a row.
// - `unknown_session` (the server restarted or forgot us): join again, then repeat the request once.
//   Requests run concurrently (a worker loop with overlap), so one join serves them all: a request
//   whose token was already replaced repeats with the new one, and concurrent joins share one.
// - Weights: a local cache of the last version fetched; every fetch is conditional
//   (If-None-Match with the cached ETag) and a 304 answers from the cache.
// - Failures the caller must act on are thrown as `ProtocolError` with the server's `code`.
// - Encodings (docs/protocol.md, "Encodings"): join offers what `options.encodings` lists (e.g.
//   encoding.js's OFFER_ALL; without it nothing, so f32 both ways, as for clients older than
//   encodings); the server's pick is `this.encoding` ({update, weights}).
//   Weights arrive as float32 or float16 (widened here to a Float32Array); updates go as float32
//   weights, float16 weights or q8 deltas from the task's base weights (the cached version).

import { decodeFrame, encodeFrame, FRAME_CONTENT_TYPE } from './frame.js';
import { fromFloat16, manifestSizes, updateTensors } from './encoding.js';

export const PROTOCOL_VERSION = 1;

/** A request that failed: `code` is the server's error code (or `network`, `bad_response`). */
export class ProtocolError extends Error {
  constructor(code, message, { status = 0, retryAfter = null } = {}) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** Codes after which the task at hand cannot be finished: drop it and ask for another. */
export const TASK_GONE = new Set(['unknown_task', 'lease_expired', 'not_your_task', 'too_stale', 'unknown_version']);

/** Resolves after `seconds`, or rejects with an AbortError when `signal` aborts first. */
export function sleep(seconds, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(abortError()); return; }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, seconds * 1000);
    const onAbort = () => { clearTimeout(timer); reject(abortError()); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError() {
  const err = new Error('stopped');
  err.name = 'AbortError';
  return err;
}

/** The base URL of an app: absolute, ending in "/". */
export function normaliseBase(url) {
  const base = new URL(url);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  base.search = '';
  base.hash = '';
  return base.href;
}

export class WebnnClient {
  /**
   * @param {string} baseUrl the app's base URL, e.g. `http://host:8080/` or `https://site/training/`
   * @param {object} [options]
   * @param {{kind: string, name?: string, userAgent?: string, backend?: string}} [options.client]
   * @param {string} [options.joinToken] sent as a bearer token on join when the server needs one
   * @param {number} [options.maxAttempts=10] attempts per request on network errors and 5xx
   * @param {number} [options.initialDelay=0.25] seconds before the first retry
   * @param {number} [options.maxDelay=8] cap on the wait between retries, in seconds
   * @param {Function} [options.fetch] the fetch implementation (default: global fetch)
   * @param {Function} [options.onRetry] called with (error, attempt, delaySeconds) before each retry
   * @param {number} [options.maxBusyWaits=100] waits on 503 + Retry-After in a row before giving up
   * @param {number} [options.maxBusyDelay=60] cap on one such wait, in seconds
   * @param {{update?: string[], weights?: string[]}} [options.encodings] what join offers (e.g.
   *   encoding.js's OFFER_ALL; default none: f32 both ways); f32 is always understood
   * @param {() => number} [options.random] uniform [0, 1) source for q8's stochastic rounding
   */
  constructor(baseUrl, options = {}) {
    this.base = normaliseBase(baseUrl);
    this.clientInfo = options.client ?? { kind: 'node' };
    this.joinToken = options.joinToken ?? null;
    this.maxAttempts = options.maxAttempts ?? 10;
    this.initialDelay = options.initialDelay ?? 0.25;
    this.maxDelay = options.maxDelay ?? 8;
    this.fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.onRetry = options.onRetry ?? null;
    this.maxBusyWaits = options.maxBusyWaits ?? 100;
    this.maxBusyDelay = options.maxBusyDelay ?? 60;
    this.onJoin = options.onJoin ?? null;
    this.signal = options.signal ?? null;
    this.token = null;
    this.closed = false; // set by leaveBeacon: a closing page never joins again
    this.clientId = null;
    this.joined = null;
    this.joins = 0;
    this.joining = null; // the join in progress, shared by concurrent callers
    this.weightsCache = null; // {version, etag, steps, weights: Float32Array}
    this.offer = options.encodings ?? null;
    this.random = options.random;
    this.encoding = { update: 'f32', weights: 'f32' }; // the server's pick, set at join
    this.sizes = null; // element counts of the manifest tensors (q8 scales are per tensor)
  }

  url(path) {
    return new URL(path, this.base).href;
  }

  /**
   * One HTTP exchange with retries on network errors and 5xx. Answers 2xx and 304 come back as the
   * Response; other answers throw `ProtocolError` carrying the server's error code.
   */
  async send(method, path, { body, contentType, headers = {}, session = true, rejoin = true } = {}) {
    let busyWaits = 0;
    for (let attempt = 1; ; attempt++) {
      const init = { method, headers: { ...headers }, signal: this.signal ?? undefined };
      const token = this.token;
      if (session && token) init.headers['X-WebNN-Session'] = token;
      if (body !== undefined) {
        init.body = body;
        init.headers['Content-Type'] = contentType;
      }
      let response;
      try {
        response = await this.fetch(this.url(path), init);
      } catch (err) {
        if (err.name === 'AbortError') throw err;
        await this.backoff(new ProtocolError('network', `${method} ${this.url(path)}: ${err.cause?.message ?? err.message}`), attempt);
        continue;
      }
      if (response.ok || response.status === 304) return response;
      const error = await errorOf(response, method, this.url(path));
      if (response.status === 503 && Number.isFinite(error.retryAfter) && error.retryAfter >= 0
          && busyWaits < this.maxBusyWaits) {
        busyWaits += 1;
        attempt -= 1; // a busy server asked us to wait: not a failed attempt
        const delay = Math.min(this.maxBusyDelay, error.retryAfter);
        this.onRetry?.(error, attempt, delay);
        await sleep(delay, this.signal);
        continue;
      }
      if (response.status >= 500) {
        await this.backoff(error, attempt);
        continue;
      }
      if (error.code === 'unknown_session' && session && rejoin && !this.closed) {
        if (this.token === token) await this.join(); // else another request joined meanwhile
        return this.send(method, path, { body, contentType, headers, session, rejoin: false });
      }
      throw error;
    }
  }

  async backoff(error, attempt) {
    if (attempt >= this.maxAttempts) throw error;
    const delay = Math.min(this.maxDelay, this.initialDelay * 2 ** (attempt - 1));
    this.onRetry?.(error, attempt, delay);
    await sleep(delay, this.signal);
  }

  async json(method, path, payload, options = {}) {
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    const response = await this.send(method, path, { body, contentType: 'application/json', ...options });
    return readJson(response, method, this.url(path));
  }

  /** Join (again): a new session token; the answer carries the model description. Concurrent
   * calls share one join. */
  join() {
    if (this.closed) {
      return Promise.reject(new ProtocolError('closed', 'this client has left: its page is closing'));
    }
    this.joining ??= this.joinOnce().finally(() => { this.joining = null; });
    return this.joining;
  }

  async joinOnce() {
    const headers = this.joinToken ? { Authorization: `Bearer ${this.joinToken}` } : {};
    const body = this.offer ? { client: this.clientInfo, encodings: this.offer } : { client: this.clientInfo };
    const answer = await this.json('POST', 'api/v1/join', body, { headers, session: false });
    this.encoding = { update: answer.encodings?.update ?? 'f32', weights: answer.encodings?.weights ?? 'f32' };
    this.sizes = Array.isArray(answer.model?.weightsManifest) ? manifestSizes(answer.model.weightsManifest) : null;
    this.token = answer.token;
    this.clientId = answer.clientId;
    this.joined = answer;
    this.joins += 1;
    if (this.closed) { // the page closed while this join was on its way: leave at once
      this.leaveBeacon();
      throw new ProtocolError('closed', 'this client has left: its page is closing');
    }
    this.onJoin?.(answer);
    return answer;
  }

  /** The model description (topology, weightsManifest, training, version, steps, urls). */
  model() {
    return this.json('GET', 'api/v1/model');
  }

  /**
   * Ask for a task. @returns {Promise<{task: object|null, retryAfter?: number, state?: string}>}
   */
  requestTask(role = 'any') {
    return this.json('POST', 'api/v1/tasks', { role });
  }

  /**
   * The weights at `url` (a task's `urls.weights`, default the latest), conditionally: the cached
   * version's ETag goes in If-None-Match and a 304 answers from the cache.
   * @returns {Promise<{version: number, steps: number|null, weights: Float32Array, cached: boolean}>}
   */
  async weights(url = 'api/v1/weights') {
    const cache = this.weightsCache;
    const headers = cache ? { 'If-None-Match': cache.etag } : {};
    const response = await this.send('GET', url, { headers });
    if (response.status === 304) {
      if (!cache) throw new ProtocolError('bad_response', `GET ${this.url(url)} answered 304 without a cached version`);
      return { version: cache.version, steps: cache.steps, weights: cache.weights, cached: true };
    }
    const buffer = await response.arrayBuffer();
    const half = response.headers.get('X-WebNN-Encoding') === 'f16';
    if (buffer.byteLength % (half ? 2 : 4) !== 0) {
      throw new ProtocolError('bad_response', `GET ${this.url(url)}: ${buffer.byteLength} bytes is not a whole number of ${half ? 'float16' : 'float32'}`);
    }
    const version = Number(response.headers.get('X-WebNN-Version'));
    const stepsHeader = response.headers.get('X-WebNN-Steps');
    const entry = {
      version,
      steps: stepsHeader === null ? null : Number(stepsHeader),
      etag: response.headers.get('ETag') ?? `"v${version}"`,
      weights: half ? fromFloat16(new Uint16Array(buffer)) : new Float32Array(buffer),
    };
    this.weightsCache = entry;
    return { version: entry.version, steps: entry.steps, weights: entry.weights, cached: false };
  }

  /** A task's batch: `{header, x, y}` with x and y as `{dtype, shape, data}`. */
  async batch(task) {
    const response = await this.send('GET', task.urls.batch);
    const frame = decodeFrame(await response.arrayBuffer());
    for (const name of ['x', 'y']) {
      if (!frame.tensors[name]) throw new ProtocolError('bad_response', `batch of task ${task.id} has no tensor "${name}"`);
    }
    return { header: frame.header, x: frame.tensors.x, y: frame.tensors.y };
  }

  /**
   * Send a trained weight set.
   *
   * With `next` (a role) the server leases our next task right after the merge and the answer
   * carries it as `next` (`{task}` or `{task: null, retryAfter, state}`, as `requestTask`). The
   * answer then comes as a frame that also holds that task's weights and batch: they are returned
   * as `inputs` ({weights, batch}, shaped as `weights()` and `batch()` answer) and the weights
   * enter the cache. One round trip per task instead of three.
   * @param {object} task
   * @param {Float32Array} weights
   * @param {{steps: number, loss: number, accuracy: number|null, timings: {fetch, compute, send}}} info
   * @param {{next?: 'train'|'evaluate'|'any'|null, base?: Float32Array}} [options] `base`: the
   *   weights the task started from, for q8 (default: the cached weights of the task's version)
   * @returns {Promise<{accepted: boolean, version: number, merged: boolean, staleness: number,
   *   next?: object, inputs?: {weights: object, batch: object}}>}
   */
  async submitUpdate(task, weights, { steps, loss, accuracy, timings }, { next = null, base = null } = {}) {
    const header = { baseVersion: task.version, steps, loss: finiteOrNull(loss), accuracy: finiteOrNull(accuracy), timings };
    if (next) header.next = next;
    const encoding = this.encoding.update;
    if (encoding === 'q8' && !base) {
      const cache = this.weightsCache;
      if (!cache || cache.version !== task.version) {
        throw new ProtocolError('no_base', `task ${task.id}: a q8 update needs the weights of version ${task.version} it started from; the cache holds ${cache ? `version ${cache.version}` : 'none'}`);
      }
      base = cache.weights;
    }
    const tensors = updateTensors(encoding, weights, { base, sizes: this.sizes, random: this.random });
    const frame = encodeFrame(header, tensors);
    const headers = next ? { Accept: `${FRAME_CONTENT_TYPE}, application/json` } : {};
    const url = task.urls.submit;
    const response = await this.send('POST', url, { body: frame, contentType: FRAME_CONTENT_TYPE, headers });
    if (!(response.headers.get('Content-Type') ?? '').startsWith(FRAME_CONTENT_TYPE)) {
      return readJson(response, 'POST', this.url(url));
    }
    return this.readFollowUp(await response.arrayBuffer(), this.url(url));
  }

  /** An update answer frame: header = the JSON answer; tensors = the next task's inputs. */
  readFollowUp(buffer, url) {
    let frame;
    try {
      frame = decodeFrame(buffer);
    } catch (err) {
      throw new ProtocolError('bad_response', `POST ${url}: ${err.message}`);
    }
    const { batch: batchHeader, weightsEtag, ...answer } = frame.header;
    const next = answer.next?.task;
    const { weights, x, y } = frame.tensors;
    if (!next || !weights || !x || !y) {
      throw new ProtocolError('bad_response', `POST ${url}: answer frame needs a next task and tensors weights, x, y`);
    }
    const half = weights.dtype === 'float16';
    const entry = {
      version: next.version,
      steps: next.steps ?? null,
      // the server's ETag for these weights (a cluster's names their digest); older servers sent none
      etag: weightsEtag ?? (half ? `"v${next.version}-f16"` : `"v${next.version}"`),
      weights: half ? fromFloat16(weights.data) : weights.data,
    };
    this.weightsCache = entry;
    answer.inputs = {
      weights: { version: entry.version, steps: entry.steps, weights: entry.weights, cached: false },
      batch: { header: batchHeader ?? {}, x, y },
    };
    return answer;
  }

  /** Send an evaluation: means over the chunk, and per-class counts when the evaluator made them. */
  submitEvaluation(task, { loss, accuracy, examples, classes }) {
    const body = { loss: finiteOrNull(loss), accuracy: finiteOrNull(accuracy), examples };
    if (classes) body.classes = { correct: classes.correct, count: classes.count };
    return this.json('POST', task.urls.submit, body);
  }

  /** Leave: our open tasks go back to the queue. No retries: leaving must not hold anything up. */
  async leave() {
    if (!this.token) return { left: false };
    const saved = this.maxAttempts;
    this.maxAttempts = 1;
    try {
      return await this.json('POST', 'api/v1/leave', {}, { rejoin: false });
    } finally {
      this.maxAttempts = saved;
      this.token = null;
    }
  }

  /**
   * Leave from a closing page: `navigator.sendBeacon` cannot set headers, so the token travels in
   * the JSON body (`{"token": ...}`), which the server accepts as well as the header.
   */
  leaveBeacon(navigatorLike = globalThis.navigator) {
    // From here on this client never joins again: a request still in flight that finds its
    // session gone must not bring a new one to life for a page that is closing.
    this.closed = true;
    if (!this.token) return false;
    const body = JSON.stringify({ token: this.token });
    this.token = null;
    if (navigatorLike?.sendBeacon) {
      return navigatorLike.sendBeacon(this.url('api/v1/leave'), new Blob([body], { type: 'application/json' }));
    }
    this.fetch(this.url('api/v1/leave'), {
      method: 'POST', body, keepalive: true, headers: { 'Content-Type': 'application/json' },
    }).catch(() => {});
    return true;
  }

  // Open views; they send our session when we have one (a server with a join token asks for it).
  status() { return this.json('GET', 'api/v1/status', undefined, { rejoin: false }); }
  history() { return this.json('GET', 'api/v1/history', undefined, { rejoin: false }); }
  clients() { return this.json('GET', 'api/v1/clients', undefined, { rejoin: false }); }

  /** An admin-only file of the current model (`model.json` or `weights.bin`) as a Response. */
  exportFile(name, adminToken) {
    return this.send('GET', `api/v1/export/${name}`, {
      session: false, headers: adminToken ? { Authorization: `Bearer ${adminToken}` } : {},
    });
  }

  /** `pause`, `resume` or `end` with the admin token; answers the new status. */
  admin(action, adminToken) {
    return this.json('POST', `api/v1/admin/${action}`, {}, {
      session: false, headers: adminToken ? { Authorization: `Bearer ${adminToken}` } : {},
    });
  }
}

function finiteOrNull(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

async function readJson(response, method, url) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new ProtocolError('bad_response', `${method} ${url}: answer is not JSON (${text.slice(0, 80)})`, { status: response.status });
  }
}

async function errorOf(response, method, url) {
  const retryHeader = response.headers.get('Retry-After');
  const retryAfter = retryHeader === null ? null : Number(retryHeader);
  let code = `http_${response.status}`;
  let message = `${method} ${url} answered ${response.status} ${response.statusText}`;
  try {
    const payload = JSON.parse(await response.text());
    if (payload?.error?.code) {
      code = payload.error.code;
      message = `${method} ${url}: ${payload.error.message ?? code}`;
    }
  } catch {
    // Not a protocol error body (a proxy's page, say): keep the HTTP status as the code.
  }
  return new ProtocolError(code, message, { status: response.status, retryAfter });
}
