// A train task's learningRate reaches the trainer unchanged while the server's warm-up ramps it
// (`wnn serve --lr-scaling linear --lr-warmup`, docs/scaling.md): two worker loops with real
// trainers against a real server; every task is trained at exactly the rate it carried (the
// kept TF.js optimizer's own rate afterwards), and the rates rise, from the spec's, slowly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { WebnnClient } from '../src/protocol.js';
import { Trainer } from '../src/trainer.js';
import { WorkerLoop } from '../src/worker_loop.js';
import { startServer } from './serve.js';
import { loadTf } from './helpers.js';

const tf = await loadTf();
const SPEC_LR = 0.01; // model_specs/digits_mlp.json
let server;

before(async () => {
  // linear rule capped at 2 clients: the target is 0.02 once both trained; an hour's ramp
  server = await startServer(['--lr-scaling', 'linear', '--scaling-max-clients', '2',
    '--lr-warmup', '3600']);
});
after(async () => { await server?.stop(); });

test('each task is trained at the rate it carried, as the warm-up ramps it', async () => {
  const seen = [];
  const problems = [];
  const loops = ['warm-a', 'warm-b'].map((name) => {
    const client = new WebnnClient(server.url, { client: { kind: 'node', name } });
    const trainer = new Trainer(tf);
    const loop = new WorkerLoop({ client, trainer, role: 'train', maxTasks: 8 });
    loop.on('task', ({ task }) => {
      seen.push({ name, sent: task.learningRate, used: trainer.optimizer.learningRate, kept: trainer.learningRate });
    });
    loop.on('problem', ({ error }) => problems.push(error));
    return { loop, client, trainer };
  });
  const reasons = await Promise.all(loops.map(({ loop }) => loop.run()));
  assert.deepEqual(reasons, ['max-tasks', 'max-tasks']);
  assert.deepEqual(problems, []);
  assert.equal(seen.length, 16);
  for (const { sent, used, kept } of seen) {
    assert.equal(typeof sent, 'number');
    assert.equal(used, sent, 'the optimizer trained at the task\'s rate, exactly');
    assert.equal(kept, sent);
    assert.ok(sent >= SPEC_LR && sent < 2 * SPEC_LR, `rate ${sent} outside [0.01, 0.02)`);
  }
  assert.ok(seen.some(({ sent }) => sent > SPEC_LR), 'the ramp never began');
  for (const name of ['warm-a', 'warm-b']) {
    const rates = seen.filter((s) => s.name === name).map((s) => s.sent);
    assert.deepEqual(rates, [...rates].sort((a, b) => a - b), `${name}: the rate fell while ramping`);
  }
  const status = await (await fetch(new URL('api/v1/status', server.url))).json();
  const warmup = status.taskScaling.lrWarmup;
  assert.equal(warmup.seconds, 3600);
  assert.equal(warmup.targetRate, 2 * SPEC_LR);
  assert.ok(warmup.rateInUse > SPEC_LR && warmup.rateInUse < 2 * SPEC_LR);
  assert.ok(warmup.secondsLeft > 3000);
  for (const { client, trainer } of loops) {
    await client.leave();
    trainer.dispose();
  }
});
