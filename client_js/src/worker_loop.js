// The contribute loop shared by the volunteer page and the headless worker:
//   ask for a task -> fetch its weights and batch (in parallel) -> train or evaluate -> submit.
//
// Follow-ups (`followUp`, default on): an update asks the server for our next task ("next" in its
// header); the server leases it right after merging ours (so it starts from the newest version
// and adds no staleness) and answers with it, its weights and its batch. In steady state a train
// task then costs one round trip (the update) instead of three (task; weights + batch; update).
// The last task before `maxTasks` does not ask, so no lease is left behind.
//
// Overlap (`overlap`, default OVERLAP_DEFAULT; docs/development.md "Client efficiency" has the measurement):
// while a task computes, the next one is already on its way, so the network exchange hides behind
// the computation instead of following it. The first task of a run asks for a second one
// (task, weights and batch) before it computes; from then on each update is sent without waiting
// for its answer, and the follow-up that answer carries is the task after next. The cost is
// staleness: a task's weights never hold the client's own previous update (that update was still
// on the wire when the task was leased), one merge more than with follow-ups alone. At most three
// of the session's tasks are open at once (the update on the wire, the one computing, the one
// coming), inside the server's `max_open_tasks` (4). A prefetched task the loop does not run (the
// loop stopped) is never sent back half-done: the caller's `leave` returns it to the queue, and
// unreturned leases expire without counting against the volunteer (docs/protocol.md).
//
// `transform(trained, base, task)`, when given, replaces the trained weights before they are sent
// (hostile clients for experiments: see attacks.js); the reported loss stays the honest one.
//
// Timings per task, in seconds: fetch (weights + batch; with overlap, the wait for a task already on
// its way), compute (training or evaluation, including the slowdown of `speed` < 1), send (the
// update or evaluation request, until its answer) and wall (the time the loop spent on the task:
// fetch + compute + send, or with overlap, where the send runs beside the next task, fetch +
// compute). The update's header carries this task's fetch and compute and the previous update's
// send (this one's is not known yet).
// With `speed` s < 1 the loop waits compute x (1/s - 1) after each computation, so a fast machine
// can stand in for a slow device; s >= 1 changes nothing.
//
// Events (`on(name, fn)`): `joined` {model, clientId}, `task` {task, kind, result, answer, timings,
// stats}, `idle` {retryAfter, state}, `dropped` {task, error}, `problem` {error}, `retry` {error,
// attempt, delay}, `state` {running, reason}.

import { ProtocolError, sleep, TASK_GONE } from './protocol.js';
import { yieldToEventLoop } from './trainer.js';

const now = () => (globalThis.performance ?? Date).now() / 1000;

/** Running totals of one device's contribution. */
export class ContributionStats {
  constructor() {
    this.tasks = 0;
    this.updates = 0;
    this.merged = 0;
    this.evaluations = 0;
    this.steps = 0;
    this.examples = 0;
    this.computeSeconds = 0;
    this.busySeconds = 0;
    this.stepsPerSecond = 0; // exponential moving average over tasks of steps / task wall time
    this.lastLoss = null;
    this.lastAccuracy = null;
    this.version = null;
    this.lastStaleness = null;
  }

  /** Add one finished task; `timings.wall` (default fetch + compute + send): the loop's time on it. */
  add(kind, { steps = 0, examples = 0, loss = null, accuracy = null }, timings, answer) {
    const wall = timings.wall ?? timings.fetch + timings.compute + timings.send;
    this.tasks += 1;
    this.computeSeconds += timings.compute;
    this.busySeconds += wall;
    if (kind === 'train') {
      this.updates += 1;
      this.merged += answer?.merged ? 1 : 0;
      this.steps += steps;
      this.examples += examples;
      this.lastLoss = loss;
      this.lastAccuracy = accuracy;
      this.lastStaleness = answer?.staleness ?? null;
      if (typeof answer?.version === 'number') this.version = answer.version;
      const rate = wall > 0 ? steps / wall : 0;
      this.stepsPerSecond = this.updates === 1 ? rate : 0.8 * this.stepsPerSecond + 0.2 * rate;
    } else {
      this.evaluations += 1;
    }
  }
}

/** Whether a loop overlaps by default (the Node worker's and the page's default; see above). */
export const OVERLAP_DEFAULT = false;

export class WorkerLoop {
  /**
   * @param {object} options
   * @param {import('./protocol.js').WebnnClient} options.client
   * @param {import('./trainer.js').Trainer} options.trainer
   * @param {'train'|'evaluate'|'any'} [options.role='any']
   * @param {number} [options.maxTasks=Infinity] stop after this many finished tasks
   * @param {number} [options.speed=1] simulated relative device speed (see above)
   * @param {boolean} [options.followUp=true] ask for the next task with each update (see above)
   * @param {boolean} [options.overlap=OVERLAP_DEFAULT] fetch the next task while this one computes
   *   (see above)
   * @param {Function} [options.transform] (trained, base, task) => Float32Array sent instead
   */
  constructor({
    client, trainer, role = 'any', maxTasks = Infinity, speed = 1, followUp = true, overlap = OVERLAP_DEFAULT,
    transform = null,
  }) {
    this.client = client;
    this.trainer = trainer;
    this.role = role;
    this.maxTasks = maxTasks;
    this.speed = speed;
    this.followUp = followUp;
    this.overlap = overlap;
    this.transform = transform;
    // Task answers on their way, oldest first: promises that never reject, resolving to a task
    // answer ({task, inputs?} or {task: null, retryAfter, state}) or {task: null, error}.
    this.ahead = [];
    this.sending = new Set(); // updates and evaluations sent without waiting for their answer
    this.stats = new ContributionStats();
    this.listeners = new Map();
    this.running = false;
    this.controller = null;
    this.modelJoin = 0;
    this.lastSend = 0;
    this.pollSeconds = 2;
    client.onRetry = (error, attempt, delay) => this.emit('retry', { error, attempt, delay });
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
    return this;
  }

  emit(name, payload) {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        fn(payload);
      } catch (err) {
        // A listener's failure must not stop the contribution.
        console.error(`worker loop: "${name}" listener failed:`, err);
      }
    }
  }

  /** Stop after the current computation; pending waits and requests are aborted. */
  stop() {
    this.running = false;
    this.controller?.abort();
  }

  /**
   * Contribute until `stop()`, `maxTasks` finished tasks or the server's run has ended.
   * @returns {Promise<string>} why it stopped: `stopped`, `max-tasks` or `ended`
   */
  async run() {
    if (this.running) throw new Error('the worker loop is already running');
    this.running = true;
    this.controller = new AbortController();
    this.client.signal = this.controller.signal;
    this.emit('state', { running: true, reason: 'started' });
    let reason = 'stopped';
    try {
      reason = await this.contribute();
    } catch (err) {
      if (err.name !== 'AbortError') throw err;
    } finally {
      this.running = false;
      await Promise.allSettled([...this.sending]); // their answers count; a stop aborted them
      this.ahead = []; // their leases go back to the server when the caller leaves
      this.client.signal = null;
      this.controller = null;
      this.emit('state', { running: false, reason });
    }
    return reason;
  }

  /** Tasks this run may still take beyond those finished, sent, computing (`current`) and coming. */
  room(current = 0) {
    return this.maxTasks - (this.stats.tasks + this.sending.size + current + this.ahead.length);
  }

  async contribute() {
    while (this.running) {
      if (this.stats.tasks + this.sending.size >= this.maxTasks) {
        if (this.sending.size === 0) return 'max-tasks';
        await Promise.race([...this.sending]); // a dropped update frees its place
        continue;
      }
      try {
        await this.ensureModel();
        const asked = now();
        const answer = this.ahead.length ? await this.ahead.shift() : await this.client.requestTask(this.role);
        if (answer.error) throw answer.error;
        if (!answer.task) {
          if (answer.skipped || this.ahead.length) continue; // a task may already be on its way
          this.emit('idle', { retryAfter: answer.retryAfter, state: answer.state });
          if (answer.state === 'ended') return 'ended';
          await sleep(answer.retryAfter ?? this.pollSeconds, this.controller.signal);
          continue;
        }
        await this.runTask(answer.task, answer.inputs, asked);
      } catch (err) {
        if (err.name === 'AbortError' || !this.running) return 'stopped';
        if (err instanceof ProtocolError && err.code === 'ended') return 'ended';
        await this.recover(err);
      }
    }
    return 'stopped';
  }

  /** Build the model for the current session's description (after the first join and rejoins). */
  async ensureModel() {
    if (!this.client.token) await this.client.join();
    if (this.modelJoin === this.client.joins) return;
    const joined = this.client.joined;
    this.pollSeconds = joined.pollSeconds ?? this.pollSeconds;
    await this.trainer.setModel(joined.model);
    this.modelJoin = this.client.joins;
    this.emit('joined', { model: joined.model, clientId: joined.clientId });
  }

  async recover(err) {
    if (err instanceof ProtocolError && TASK_GONE.has(err.code)) {
      this.emit('dropped', { error: err });
      return;
    }
    this.emit('problem', { error: err });
    const wait = err instanceof ProtocolError && err.retryAfter ? err.retryAfter : this.pollSeconds;
    await sleep(wait, this.controller.signal);
  }

  /** Ask for a task and fetch its weights and batch; a promise that never rejects (see `ahead`). */
  prefetch() {
    const fetchAll = async () => {
      const answer = await this.client.requestTask(this.role);
      if (!answer.task) return answer;
      const { task } = answer;
      const [weights, batch] = await Promise.all([this.client.weights(task.urls.weights), this.client.batch(task)]);
      return { ...answer, inputs: { weights, batch } };
    };
    // A session at its cap of open tasks (a lease it dropped has not expired yet) goes on
    // without a task ahead rather than waiting.
    return fetchAll().catch((error) => (error instanceof ProtocolError && error.code === 'too_many_tasks'
      ? { task: null, skipped: true } : { task: null, error }));
  }

  /**
   * Run one task; `inputs` ({weights, batch}) came with it (a follow-up or a prefetch), `asked`
   * is when the loop began waiting for it.
   */
  async runTask(task, inputs = null, asked = now()) {
    const [weights, batch] = inputs
      ? [inputs.weights, inputs.batch]
      : await Promise.all([this.client.weights(task.urls.weights), this.client.batch(task)]);
    if (weights.version !== task.version) {
      throw new ProtocolError('bad_response', `task ${task.id} is for version ${task.version} but the weights are version ${weights.version}`);
    }
    await this.ensureModel(); // a rejoin during the fetch may have brought another model
    if (this.overlap && this.ahead.length === 0 && this.room(1) > 0) this.ahead.push(this.prefetch());
    // Let requests just started (the prefetch, the previous update) reach the network before
    // the computation holds the thread.
    if (this.ahead.length || this.sending.size) await yieldToEventLoop();
    const fetched = now();
    const result = task.kind === 'evaluate'
      ? await this.trainer.evaluate(weights.weights, batch.x, batch.y)
      : await this.trainer.train(weights.weights, batch.x, batch.y,
        { batchSize: task.batchSize, learningRate: task.learningRate });
    if (this.speed > 0 && this.speed < 1) await sleep((now() - fetched) * (1 / this.speed - 1), this.controller.signal);
    const computed = now();
    const timings = { fetch: fetched - asked, compute: computed - fetched, send: 0 };
    const wantsNext = (this.followUp || this.overlap) && this.running && this.room(1) > 0;
    const next = wantsNext && task.kind !== 'evaluate' && this.followUp ? this.role : null;
    const submission = this.submit(task, result, weights.weights, timings, next);
    if (!(this.overlap && this.ahead.length)) {
      const answer = await submission;
      if (answer.next) this.ahead.push(Promise.resolve({ ...answer.next, inputs: answer.inputs }));
      return;
    }
    // Overlap: the next task is on its way already; this answer brings (or is followed by) the one after.
    timings.wall = computed - asked;
    const sent = submission.then(() => {}, (err) => this.dropOrReport(err, wantsNext));
    this.sending.add(sent);
    sent.finally(() => this.sending.delete(sent));
    if (!wantsNext) return;
    this.ahead.push(submission.then(
      (answer) => (answer.next?.task ? { ...answer.next, inputs: answer.inputs } : this.prefetch()),
      (error) => (error instanceof ProtocolError && TASK_GONE.has(error.code) ? this.prefetch() : { task: null, error }),
    ));
  }

  /** A failed submission sent without waiting: a task gone is dropped; another failure is reported
   * here unless a follow-up waits on this answer (the loop then meets it as its next task's). */
  dropOrReport(err, awaited) {
    if (err.name === 'AbortError' || !this.running) return;
    if (err instanceof ProtocolError && TASK_GONE.has(err.code)) {
      this.emit('dropped', { error: err });
    } else if (!awaited) {
      this.emit('problem', { error: err });
    }
  }

  /** Send a task's result (asking for `next`); counts and reports it when the answer comes. */
  async submit(task, result, base, timings, next) {
    const sent = task.kind !== 'evaluate' && this.transform
      ? this.transform(result.weights, base, task) : result.weights;
    const computed = now();
    const answer = task.kind === 'evaluate'
      ? await this.client.submitEvaluation(task, result)
      : await this.client.submitUpdate(task, sent, {
        steps: result.steps, loss: result.loss, accuracy: result.accuracy,
        timings: { fetch: timings.fetch, compute: timings.compute, send: this.lastSend },
      }, { next, base });
    timings.send = now() - computed;
    if (task.kind !== 'evaluate') this.lastSend = timings.send;
    this.stats.add(task.kind === 'evaluate' ? 'evaluate' : 'train', result, timings, answer);
    this.emit('task', { task, kind: task.kind, result, answer, timings, stats: this.stats });
    return answer;
  }
}
