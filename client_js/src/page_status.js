// What the volunteer page says it is doing: one main status worked out from the facts the page
// holds, so the page never shows two stories at once (a green "contributing" while the server is
// gone, "waiting for work" beside "training has ended").
//
// Order of precedence (the first that holds wins):
//   error    TensorFlow.js could not start (nothing the page can retry)
//   ended    the server said the run has ended (status, a task answer or a 409 `ended`)
//   lost     the server cannot be reached: "connection lost — retrying in N s"
//   consent  the visitor has not said yes yet (nothing is loaded or computed before)
//   declined the visitor said "not now" (or stopped and forgot the answer)
//   paused   the operator paused training (the page waits and resumes by itself)
//   stopped  the visitor pressed Stop
//   starting loading TensorFlow.js, joining
//   running  contributing; its detail says training, evaluating, finishing or waiting for work
//
// Consent is remembered per page (the app's base path) in localStorage under CONSENT_KEY.

export const CONSENT_KEY = 'webnn.consent';

/** Whole seconds until `at` (ms since the epoch), never below 0. */
export function secondsUntil(at, now) {
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * The page's main status.
 * @param {object} f the facts
 * @param {string|null} [f.error] a fatal error's message
 * @param {string|null} [f.serverState] `running` | `paused` | `ended` (status or task answers)
 * @param {boolean} [f.finishing] the server is running its final evaluation
 * @param {boolean} [f.ended] the worker loop stopped because the run ended
 * @param {boolean} [f.lost] the last request failed for want of a connection
 * @param {number|null} [f.retryAt] when the next attempt goes out (ms since the epoch)
 * @param {'ask'|'given'|'declined'} [f.consent]
 * @param {boolean} [f.running] the worker loop runs
 * @param {boolean} [f.starting] TF.js is loading or the first join is under way
 * @param {boolean} [f.idle] the server had no task for us at the last ask
 * @param {string|null} [f.activity] `train` | `evaluate`: the last task's kind
 * @param {string} [f.project] the project's name, for the texts
 * @param {number} [f.now] ms since the epoch
 * @returns {{phase: string, title: string, detail: string}}
 */
export function mainStatus(f) {
  const project = f.project || 'this model';
  const now = f.now ?? Date.now();
  if (f.error) {
    return { phase: 'error', title: 'Something went wrong', detail: f.error };
  }
  if (f.ended || f.serverState === 'ended') {
    return {
      phase: 'ended', title: 'Training has ended — thank you!',
      detail: `${project} has finished training. This page no longer uses your processor; you can close it.`,
    };
  }
  if (f.lost) {
    const wait = f.retryAt ? secondsUntil(f.retryAt, now) : null;
    return {
      phase: 'lost', title: 'Connection lost',
      detail: wait === null || wait === 0 ? 'retrying now…' : `retrying in ${wait} s`,
    };
  }
  if (f.consent === 'ask') {
    return { phase: 'consent', title: 'Waiting for your OK', detail: 'Nothing runs on this device until you press Start.' };
  }
  if (f.consent === 'declined' && !f.running && !f.starting) {
    return { phase: 'stopped', title: 'Not contributing', detail: 'Press Start whenever you want to help.' };
  }
  if (f.serverState === 'paused' && (f.running || f.starting)) {
    return {
      phase: 'paused', title: 'Paused by the project',
      detail: 'The project paused training; this page waits and carries on by itself when it resumes.',
    };
  }
  if (!f.running && !f.starting) {
    const paused = f.serverState === 'paused' ? ' (training is paused by the project right now)' : '';
    return { phase: 'stopped', title: 'Stopped', detail: `Press Start to contribute again${paused}.` };
  }
  if (f.starting) {
    return { phase: 'starting', title: 'Starting…', detail: 'Loading TensorFlow.js and joining.' };
  }
  let detail = 'Training the model on this device.';
  if (f.finishing) detail = 'The run is finishing: helping with the final evaluation.';
  else if (f.idle) detail = 'Waiting for work: the server has none for this device right now.';
  else if (f.activity === 'evaluate') detail = 'Evaluating the model on validation data.';
  return { phase: 'running', title: 'Contributing', detail };
}

/**
 * Whether a failed request means the connection is gone (not a refusal or a busy server).
 * @param {{code?: string, status?: number}} error a ProtocolError
 */
export function isConnectionLoss(error) {
  if (!error) return false;
  if (error.code === 'network') return true;
  return typeof error.status === 'number' && error.status >= 500 && error.code !== 'busy';
}

/** The consent store's key for the page at `base` (its path: one answer per mounted model). */
export function consentKey(base) {
  let path = '/';
  try { path = new URL(base).pathname; } catch { /* keep "/" */ }
  return `${CONSENT_KEY}:${path}`;
}

/** The remembered answer: `given`, or `ask` (nothing stored, storage unavailable, or garbage). */
export function readConsent(storage, key) {
  try {
    const raw = storage?.getItem(key);
    if (!raw) return 'ask';
    const value = JSON.parse(raw);
    return value && value.given === true ? 'given' : 'ask';
  } catch {
    return 'ask';
  }
}

/** Remember that the visitor said yes (with when, for the curious). */
export function rememberConsent(storage, key, now = Date.now()) {
  try { storage?.setItem(key, JSON.stringify({ given: true, at: new Date(now).toISOString() })); } catch { /* private mode */ }
}

/** Forget the answer: the next visit asks again. */
export function forgetConsent(storage, key) {
  try { storage?.removeItem(key); } catch { /* private mode */ }
}

/** A contact link safe to put in `href`: http(s) or mailto only, else null. */
export function safeContact(url) {
  if (typeof url !== 'string') return null;
  return /^(https?:\/\/[^\s/]+|mailto:[^\s@]+@[^\s@]+)\S*$/.test(url.trim()) ? url.trim() : null;
}
