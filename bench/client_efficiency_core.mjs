// Core of the client-efficiency benchmark, shared by Node (client_efficiency.mjs) and Chromium
// (client_efficiency_browser.py injects this file into the volunteer page). It imports nothing:
// TF.js and the client classes are passed in.
//
//   raw rate           = optimizer steps / second of `model.fit` on the served model, batch size and
//                        backend, on a batch of batchSize x localSteps examples held in memory, one
//                        call of `tasksPerRound` epochs (no per-call cost, no yielding: the fastest
//                        plain TF.js training of those steps)
//   participating rate = optimizer steps / second of the worker loop against the real server
//                        (ask task, fetch weights + batch, train, send the update), wall time; the
//                        first task of a round asks for a task, the others come with the previous
//                        update's answer ("follow-ups"), without overlap
//   overlap            = the same loop with `overlap: true`: the next task's exchange runs while
//                        this one trains (worker_loop.js)
//   without follow-ups = the loop with `followUp: false` (and no overlap): three round trips per task
//   ratio              = median rate / median raw rate, rounds interleaved (raw, participating,
//                        overlap, without follow-ups, raw, ...); `pairRatio` is the median of each
//                        round's rate / raw, steadier when the machine's load swings between rounds

export async function measure({ tf, WebnnClient, Trainer, WorkerLoop, baseUrl, rounds = 5, tasksPerRound = 10, log = () => {} }) {
  const viewer = new WebnnClient(baseUrl);
  const description = await viewer.model();
  const { batchSize, localSteps } = description.training;
  const n = batchSize * localSteps;

  const raw = await tf.models.modelFromJSON({ modelTopology: description.topology });
  raw.compile({ optimizer: description.training.optimizer, loss: description.training.loss, metrics: ['accuracy'] });
  const inputShape = raw.inputs[0].shape.slice(1);
  const classes = raw.outputs[0].shape[raw.outputs[0].shape.length - 1];
  const x = tf.randomUniform([n, ...inputShape]);
  const y = tf.floor(tf.randomUniform([n], 0, classes));

  const client = new WebnnClient(baseUrl, { client: { kind: globalThis.window ? 'browser' : 'node', name: 'bench' } });
  const trainer = new Trainer(tf);
  const now = () => performance.now() / 1000;

  async function rawRound() {
    const start = now();
    await raw.fit(x, y, { batchSize, epochs: tasksPerRound, shuffle: false, verbose: 0, yieldEvery: 'never' });
    return (tasksPerRound * localSteps) / (now() - start);
  }

  async function loopRound(followUp, overlap = false) {
    const loop = new WorkerLoop({ client, trainer, role: 'train', maxTasks: tasksPerRound, followUp, overlap });
    const start = now();
    await loop.run();
    return loop.stats.steps / (now() - start);
  }

  const kinds = {
    raw: rawRound,
    participating: () => loopRound(true),
    overlap: () => loopRound(true, true),
    withoutFollowUps: () => loopRound(false),
  };
  for (const round of Object.values(kinds)) await round(); // warm-up: kernels, JIT, join, model build
  const rates = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [kind, round] of Object.entries(kinds)) rates[kind].push(await round());
    log(`round ${r + 1}: ${Object.keys(kinds).map((k) => `${k} ${rates[k].at(-1).toFixed(1)}`).join(', ')} steps/s`);
  }
  await client.leave();
  trainer.dispose();
  tf.dispose([x, y]);
  raw.dispose();
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const pairs = (kind) => median(rates[kind].map((rate, i) => rate / rates.raw[i]));
  return {
    backend: tf.getBackend(), batchSize, localSteps, rounds, tasksPerRound,
    rawStepsPerSecond: median(rates.raw),
    participatingStepsPerSecond: median(rates.participating),
    overlapStepsPerSecond: median(rates.overlap),
    withoutFollowUpsStepsPerSecond: median(rates.withoutFollowUps),
    ratio: median(rates.participating) / median(rates.raw),
    pairRatio: pairs('participating'),
    ratioOverlap: median(rates.overlap) / median(rates.raw),
    pairRatioOverlap: pairs('overlap'),
    ratioWithoutFollowUps: median(rates.withoutFollowUps) / median(rates.raw),
    pairRatioWithoutFollowUps: pairs('withoutFollowUps'),
    rates,
  };
}

/** One line of figures for a result of `measure`. */
export function summary(environment, r) {
  return `client efficiency (${environment}, ${r.backend}, ${r.localSteps} local steps, batch ${r.batchSize}): ` +
    `participating ${r.participatingStepsPerSecond.toFixed(1)} / raw ${r.rawStepsPerSecond.toFixed(1)} steps/s = ` +
    `ratio ${r.ratio.toFixed(2)} (median of per-round ratios ${r.pairRatio.toFixed(2)}); ` +
    `overlap ${r.overlapStepsPerSecond.toFixed(1)} steps/s = ${r.ratioOverlap.toFixed(2)} (${r.pairRatioOverlap.toFixed(2)}); ` +
    `without follow-ups ${r.ratioWithoutFollowUps.toFixed(2)} (${r.pairRatioWithoutFollowUps.toFixed(2)})`;
}
