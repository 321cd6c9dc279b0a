// Core of the client-efficiency benchmark, shared by Node (client_efficiency.mjs) and Chromium
// (client_efficiency_browser.py injects this file into the volunteer page). It imports nothing:
// TF.js and the client classes are passed in, one set per client variant (e.g. this tree's client
// and an older copy, measured side by side in one run).
//
//   raw rate           = optimizer steps / second of `model.fit` on the served model, batch size and
//                        backend, on a batch of batchSize x localSteps examples held in memory, one
//                        call of `tasksPerRound` epochs (no per-call cost, no yielding: the fastest
//                        plain TF.js training of those steps)
//   fit per task       = the same steps as one `model.fit` call per task (one epoch of localSteps
//                        steps each, the trainer's fit options): what returning after every task
//                        costs TF.js itself, before any weights move
//   local <variant>    = the variant's `Trainer.train` per task on inputs held in memory, each task
//                        starting from the weights the previous one returned: the participating
//                        client's computation (weights in, tensors made, fit, weights out), no network
//   participating      = optimizer steps / second of the variant's worker loop against the real
//                        server (train, send the update, its answer bringing the next task with its
//                        weights and batch: "follow-ups", no overlap), wall time of `tasksPerRound`
//                        tasks of one continuous run: each kind's loop runs from the warm-up to the
//                        end, held at a gate before a computation while the other kinds take their
//                        turn (class Gate), so no round pays a loop's start (ask for a task, fetch
//                        weights and batch) that a volunteer's run pays once. Each kind is its own
//                        session; a held loop holds its next task's lease
//   overlap            = the same loop with `overlap: true` (modes: 'overlap'); its round also waits
//                        for the updates still on their way
//   without follow-ups = the loop with `followUp: false` (modes: 'withoutFollowUps')
//   ratio              = median rate / median raw rate, rounds interleaved (raw, fit per task, local,
//                        participating, ...; each round starts one rung later than the last);
//                        `pairRatio` is the median of each round's rate / raw, steadier when the
//                        machine's load swings between rounds
//
// Breakdown (`breakdown[kind]`, milliseconds per task, means over the measured rounds): where a
// participating task's wall time goes, from performance.now() around the variant's own methods
// (wrapped on the instances, the classes are untouched): train (Trainer.train: weights in, tensors
// made from the batch, the steps, weights out; of which weightsIn = Trainer.loadWeights, and where
// the variant calls them, fit = model.fit and weightsOut = Trainer.readWeights), encode (the update
// frame made: submitUpdate before its request), request (until the answer's headers: the network
// and the server's merge and follow-up), answer (body read and decoded), fetches (task, weights
// and batch requests not carried by a follow-up), and other = wall - train - encode - request -
// answer - fetches (loop bookkeeping, events, the page's own work). Only for the participating
// loops: with overlap (and without follow-ups, whose weights and batch come in parallel) requests
// run side by side and their durations would not add up.

const now = () => performance.now();
/** Breakdown phases inside `train` (not added again for `other`). */
const PARTS_OF_TRAIN = new Set(['weightsIn', 'fit', 'weightsOut']);

/** Replace `obj[name]` by a wrapper adding its duration (ms, async-aware) to `probe.sink[label]`
 * while `probe.sink` is set. */
function timeMethod(obj, name, probe, label = name) {
  const original = obj[name];
  if (typeof original !== 'function' || original.timed) return;
  const wrapped = function timed(...args) {
    const start = now();
    const add = () => { if (probe.sink) probe.sink[label] = (probe.sink[label] ?? 0) + (now() - start); };
    const out = original.apply(this, args);
    if (out && typeof out.then === 'function') return out.finally(add);
    add();
    return out;
  };
  wrapped.timed = true;
  obj[name] = wrapped;
}

/** Make a client and trainer report their phases into `probe.sink` while it is set (see the header). */
function instrument(client, trainer, probe) {
  const add = (label, ms) => { if (probe.sink) probe.sink[label] = (probe.sink[label] ?? 0) + ms; };
  timeMethod(trainer, 'loadWeights', probe, 'weightsIn');
  timeMethod(trainer, 'readWeights', probe, 'weightsOut');
  const wrapFit = () => { if (trainer.model) timeMethod(trainer.model, 'fit', probe, 'fit'); };
  const setModel = trainer.setModel.bind(trainer);
  trainer.setModel = async (...args) => { const built = await setModel(...args); wrapFit(); return built; };
  wrapFit();
  // The update: encode, request (until the answer's headers), answer (body read and decoded).
  const submitUpdate = client.submitUpdate.bind(client);
  const send = client.send.bind(client);
  let inUpdate = null;
  client.send = async (method, path, options) => {
    const start = now();
    const update = inUpdate !== null && method === 'POST';
    if (update) add('encode', start - inUpdate);
    try {
      return await send(method, path, options);
    } finally {
      add(update ? 'request' : 'fetches', now() - start);
      if (update) inUpdate = now();
    }
  };
  client.submitUpdate = async (...args) => {
    inUpdate = now();
    try {
      return await submitUpdate(...args);
    } finally {
      add('answer', now() - inUpdate);
      inUpdate = null;
    }
  };
}

/**
 * Holds a worker loop between rounds without ending it, so each round measures `n` tasks of one
 * continuous run: the loop's trainer awaits `pass()` before each computation; `round(n, settle)`
 * lets n computations through and resolves, with the round's milliseconds, once the loop comes
 * back for the (n + 1)th (the n-th task's update answered, its follow-up in hand) and `settle()`
 * (updates still on their way, with overlap) has resolved. A parked loop holds its next task's
 * lease; nothing is computed or sent meanwhile.
 */
class Gate {
  constructor() {
    this.allowed = 0;
    this.parked = null; // resolves the round waiting for the loop to come back
    this.waiting = null; // {resolve, reject} of the parked pass
    this.arrival = new Promise((resolve) => { this.arrived = resolve; });
  }

  async pass() {
    if (this.allowed > 0) {
      this.allowed -= 1;
      return;
    }
    const waited = new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
    this.arrived();
    await waited;
    this.allowed -= 1;
  }

  async round(n, settle) {
    await this.arrival; // the loop is parked at the gate
    this.arrival = new Promise((resolve) => { this.arrived = resolve; });
    const start = now();
    this.allowed = n;
    const { resolve } = this.waiting;
    this.waiting = null;
    resolve();
    await this.arrival;
    await settle();
    return now() - start;
  }

  close() {
    const abort = new Error('stopped');
    abort.name = 'AbortError';
    this.waiting?.reject(abort);
    this.waiting = null;
  }
}

export async function measure({
  tf, variants, baseUrl, rounds = 5, tasksPerRound = 10, modes = [], encodings = null, log = () => {},
}) {
  const names = Object.keys(variants);
  const first = variants[names[0]];
  const viewer = new first.WebnnClient(baseUrl);
  const description = await viewer.model();
  const { batchSize, localSteps } = description.training;
  const n = batchSize * localSteps;

  const raw = await tf.models.modelFromJSON({ modelTopology: description.topology });
  raw.compile({ optimizer: description.training.optimizer, loss: description.training.loss, metrics: ['accuracy'] });
  const inputShape = raw.inputs[0].shape.slice(1);
  const classes = raw.outputs[0].shape[raw.outputs[0].shape.length - 1];
  const x = tf.randomUniform([n, ...inputShape]);
  const y = tf.floor(tf.randomUniform([n], 0, classes));
  // The same batch as the server serves it (a frame's {data, shape, dtype}) for the local rounds.
  const served = {
    x: { data: await x.data(), shape: x.shape, dtype: 'float32' },
    y: { data: Int32Array.from(await y.data()), shape: y.shape, dtype: 'int32' },
  };
  const yieldNow = () => new Promise((resolve) => setTimeout(resolve, 0));

  async function rawRound() {
    const start = now();
    await raw.fit(x, y, { batchSize, epochs: tasksPerRound, shuffle: false, verbose: 0, yieldEvery: 'never' });
    return (tasksPerRound * localSteps * 1000) / (now() - start);
  }

  async function fitPerTaskRound() {
    const start = now();
    for (let t = 0; t < tasksPerRound; t++) {
      await raw.fit(x, y, { batchSize, epochs: 1, shuffle: false, verbose: 0, callbacks: { nextFrameFunc: yieldNow } });
    }
    return (tasksPerRound * localSteps * 1000) / (now() - start);
  }

  const kinds = { raw: rawRound, fitPerTask: fitPerTaskRound };
  const breakdown = {};
  const setups = [];
  for (const name of names) {
    const { WebnnClient, Trainer, WorkerLoop } = variants[name];
    const local = new Trainer(tf);
    await local.setModel(description);
    let flat = null;
    kinds[`local:${name}`] = async () => {
      flat ??= await local.readWeights();
      const start = now();
      for (let t = 0; t < tasksPerRound; t++) {
        flat = (await local.train(flat, served.x, served.y, { batchSize })).weights;
      }
      return (tasksPerRound * localSteps * 1000) / (now() - start);
    };
    const continuous = (kind, options) => {
      const client = new WebnnClient(baseUrl, {
        client: { kind: globalThis.window ? 'browser' : 'node', name: `bench-${kind}` },
        ...(encodings ? { encodings } : {}),
      });
      const trainer = new Trainer(tf);
      const probe = { sink: null };
      instrument(client, trainer, probe);
      const gate = new Gate();
      const train = trainer.train.bind(trainer);
      trainer.train = async (...args) => {
        await gate.pass();
        const start = now();
        try {
          return await train(...args);
        } finally {
          if (probe.sink) probe.sink.train = (probe.sink.train ?? 0) + (now() - start);
        }
      };
      const loop = new WorkerLoop({ client, trainer, role: 'train', ...options });
      const running = loop.run();
      setups.push({ client, trainer, loop, gate, running });
      // The breakdown adds up sequential phases: only for the default loop (follow-ups, no
      // overlap), whose requests never run side by side.
      const timed = options.followUp && !options.overlap;
      return async (measured) => {
        const sink = {};
        probe.sink = measured && timed ? sink : null;
        const before = loop.stats.steps;
        const elapsed = await gate.round(tasksPerRound, () => Promise.allSettled([...loop.sending]));
        probe.sink = null;
        if (measured && timed) {
          const acc = (breakdown[kind] ??= { tasks: 0, wall: 0 });
          acc.tasks += tasksPerRound;
          acc.wall += elapsed;
          for (const [key, ms] of Object.entries(sink)) acc[key] = (acc[key] ?? 0) + ms;
        }
        return ((loop.stats.steps - before) * 1000) / elapsed;
      };
    };
    kinds[`participating:${name}`] = continuous(`participating:${name}`, { followUp: true, overlap: false });
    if (modes.includes('overlap')) kinds[`overlap:${name}`] = continuous(`overlap:${name}`, { followUp: true, overlap: true });
    if (modes.includes('withoutFollowUps')) {
      kinds[`withoutFollowUps:${name}`] = continuous(`withoutFollowUps:${name}`, { followUp: false, overlap: false });
    }
    setups.push({ trainer: local });
  }
  for (const round of Object.values(kinds)) { await round(false); await round(false); } // warm-up: kernels, JIT, join, model build
  const rates = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    // Each round starts one rung later than the last, so no rung always follows the same one.
    const order = Object.entries(kinds);
    for (const [kind, round] of [...order.slice(r % order.length), ...order.slice(0, r % order.length)]) {
      rates[kind].push(await round(true));
    }
    log(`round ${r + 1}: ${Object.keys(kinds).map((k) => `${k} ${rates[k].at(-1).toFixed(1)}`).join(', ')} steps/s`);
  }
  for (const { client, trainer, loop, gate, running } of setups) {
    if (loop) {
      loop.stop();
      gate.close();
      await running;
      await client.leave();
    }
    trainer.dispose();
  }
  tf.dispose([x, y]);
  raw.dispose();
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const figures = {};
  for (const kind of Object.keys(kinds)) {
    figures[kind] = {
      stepsPerSecond: median(rates[kind]),
      ratio: median(rates[kind]) / median(rates.raw),
      pairRatio: median(rates[kind].map((rate, i) => rate / rates.raw[i])),
    };
  }
  const perTask = {};
  for (const [kind, acc] of Object.entries(breakdown)) {
    const { tasks, ...sums } = acc;
    const ms = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / tasks]));
    const known = Object.entries(ms).filter(([k]) => !PARTS_OF_TRAIN.has(k) && k !== 'wall').reduce((a, [, v]) => a + v, 0);
    perTask[kind] = { tasks, ...ms, other: ms.wall - known };
  }
  return {
    backend: tf.getBackend(), batchSize, localSteps, rounds, tasksPerRound,
    rawMsPerTask: (1000 * localSteps) / median(rates.raw),
    figures, breakdown: perTask, rates,
  };
}

/** Lines of figures for a result of `measure`. */
export function summary(environment, r) {
  const lines = [`client efficiency (${environment}, ${r.backend}, ${r.localSteps} local steps, batch ${r.batchSize}, ` +
    `${r.rounds} rounds of ${r.tasksPerRound} tasks): raw model.fit ${r.figures.raw.stepsPerSecond.toFixed(1)} steps/s ` +
    `(${r.rawMsPerTask.toFixed(1)} ms per task)`];
  for (const [kind, f] of Object.entries(r.figures)) {
    if (kind === 'raw') continue;
    lines.push(`  ${kind}: ${f.stepsPerSecond.toFixed(1)} steps/s, ratio ${f.ratio.toFixed(2)} (per-round ${f.pairRatio.toFixed(2)})`);
  }
  for (const [kind, b] of Object.entries(r.breakdown)) {
    const parts = Object.entries(b).filter(([k]) => k !== 'tasks').map(([k, v]) => `${k} ${v.toFixed(2)}`);
    lines.push(`  ${kind} ms/task: ${parts.join(', ')}`);
  }
  return lines.join('\n');
}
