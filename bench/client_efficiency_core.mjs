// Core of the client-efficiency benchmark, shared by Node (client_efficiency.mjs) and Chromium
// (client_efficiency_browser.py injects this file into the volunteer page). It imports nothing:
// TF.js and the client classes are passed in.
//
//   raw rate           = optimizer steps / second of `model.fit` on the served model, batch size and
//                        backend, on a batch of batchSize x localSteps examples held in memory
//   participating rate = optimizer steps / second of the worker loop against the real server
//                        (ask task, fetch weights + batch, train, send the update), wall time
//   ratio              = median participating rate / median raw rate, rounds interleaved

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
    await raw.fit(x, y, { batchSize, epochs: tasksPerRound, shuffle: false, verbose: 0 });
    return (tasksPerRound * localSteps) / (now() - start);
  }

  async function participatingRound() {
    const loop = new WorkerLoop({ client, trainer, role: 'train', maxTasks: tasksPerRound });
    const start = now();
    await loop.run();
    return loop.stats.steps / (now() - start);
  }

  await rawRound(); // warm-up: kernels, JIT, the join and the model build
  await participatingRound();
  const rates = { raw: [], participating: [] };
  for (let round = 0; round < rounds; round++) {
    rates.raw.push(await rawRound());
    rates.participating.push(await participatingRound());
    log(`round ${round + 1}: raw ${rates.raw.at(-1).toFixed(1)} steps/s, participating ${rates.participating.at(-1).toFixed(1)} steps/s`);
  }
  await client.leave();
  trainer.dispose();
  tf.dispose([x, y]);
  raw.dispose();
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  return {
    backend: tf.getBackend(), batchSize, localSteps, rounds, tasksPerRound,
    rawStepsPerSecond: median(rates.raw),
    participatingStepsPerSecond: median(rates.participating),
    ratio: median(rates.participating) / median(rates.raw),
    rates,
  };
}
