import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminActions, endProgress, strategyRows, valueText } from '../src/dashboard_view.js';
import { curvePoints } from '../src/curve.js';

test('parameters never read null: values as text, an unused one as "none"', () => {
  const rows = strategyRows({
    params: { alpha: 0.6, staleness_fn: 'polynomial', a: 0.5, b: 0, noise_seed: null },
    report: { epsilon: 1.23456789, spent: { k: 1 } },
  });
  assert.deepEqual(rows.map((r) => [r.name, r.text, r.kind]), [
    ['alpha', '0.6', 'param'], ['staleness_fn', 'polynomial', 'param'], ['a', '0.5', 'param'], ['b', '0', 'param'],
    ['noise_seed', 'none', 'param'], ['epsilon', '1.23457', 'report'], ['spent', '{"k":1}', 'report'],
  ]);
  assert.ok(rows.every((r) => r.text !== 'null'));
  assert.equal(valueText(undefined), 'none');
  assert.deepEqual(strategyRows(), []);
});

test('end conditions and the progress towards each', () => {
  const rows = endProgress({
    endConditions: { targetAccuracy: 0.9, maxMerges: 200, maxSeconds: 600 },
    merges: 50, elapsed: 150.7, lastValidatedEvaluation: { valAccuracy: 0.45 },
  });
  assert.deepEqual(rows.map((r) => [r.key, r.fraction, r.text]), [
    ['targetAccuracy', 0.5, '0.450 of 0.9'], ['maxMerges', 0.25, '50 of 200'], ['maxSeconds', 150.7 / 600, '150 s of 600 s'],
  ]);
  const none = endProgress({ endConditions: { targetAccuracy: 0.9, maxMerges: null, maxSeconds: null }, merges: 3 });
  assert.deepEqual(none.map((r) => [r.key, r.value, r.fraction, r.text]), [['targetAccuracy', null, 0, '- of 0.9']]);
  assert.equal(endProgress({ endConditions: { maxMerges: 10 }, merges: 12 })[0].fraction, 1);
  assert.deepEqual(endProgress({}), []);
});

test('admin actions after the end: only export', () => {
  assert.deepEqual(adminActions({ state: 'ended' }), { pause: false, resume: false, end: false, export: true });
  assert.deepEqual(adminActions({ state: 'running' }), { pause: true, resume: false, end: true, export: true });
  assert.deepEqual(adminActions({ state: 'paused' }), { pause: false, resume: true, end: true, export: true });
  assert.equal(adminActions({ state: 'running', finishing: true }).pause, false);
});

test('the validation curve counts seconds from the run start, like the merges chart', () => {
  const history = [
    { time: 1000, elapsed: 12, merges: 0, valLoss: 2.3, valAccuracy: 0.1 },
    { time: 1010, elapsed: 22, merges: 20, valLoss: 1.1, valAccuracy: 0.6 },
    { time: 1015, elapsed: 27, merges: 25, valLoss: null, valAccuracy: null },
  ];
  assert.deepEqual(curvePoints(history).accuracy, [{ x: 12, y: 0.1 }, { x: 22, y: 0.6 }]);
  assert.deepEqual(curvePoints(history, 'merges').loss.map((p) => p.x), [0, 20]);
  // an older server without elapsed: seconds from the first entry
  assert.deepEqual(curvePoints([{ time: 5, merges: 0, valLoss: 1 }, { time: 7.5, merges: 1, valLoss: 0.5 }]).loss.map((p) => p.x), [0, 2.5]);
});
