import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ATTACK_KINDS, applyAttack, nanUpdate, randomUpdate, scaledUpdate, seededRandom, signFlipUpdate,
} from '../src/attacks.js';

const base = new Float32Array([1, -2, 0.5, 4]);
const trained = new Float32Array([2, -2, 0, 3.5]); // delta = [1, 0, -0.5, -0.5]

function close(actual, expected) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) < 1e-6, `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

test('scaled moves s times as far from the base', () => {
  close(scaledUpdate(trained, base, 10), [11, -2, -4.5, -1]);
  close(scaledUpdate(trained, base, 1), trained);
  close(scaledUpdate(trained, base, 0), base);
});

test('sign_flip moves the other way', () => {
  close(signFlipUpdate(trained, base, 1), [0, -2, 1, 4.5]);
  close(signFlipUpdate(trained, base, 3), [-2, -2, 2, 5.5]);
});

test('random is base plus seeded normal noise of the given scale', () => {
  const n = 20000;
  const zeros = new Float32Array(n);
  const a = randomUpdate(zeros, 0.5, seededRandom(7));
  const b = randomUpdate(zeros, 0.5, seededRandom(7));
  assert.deepEqual(a, b, 'same seed, same noise');
  const c = randomUpdate(zeros, 0.5, seededRandom(8));
  assert.notDeepEqual(a, c, 'other seed, other noise');
  let sum = 0;
  let sq = 0;
  for (const v of a) { sum += v; sq += v * v; }
  const mean = sum / n;
  const std = Math.sqrt(sq / n - mean * mean);
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(std - 0.5) < 0.02, `std ${std}`);
  const shifted = randomUpdate(new Float32Array(n).fill(3), 0.5, seededRandom(7));
  close(shifted.map((v, i) => v - a[i]), new Float32Array(n).fill(3));
  assert.ok(a.every(Number.isFinite));
});

test('random handles odd lengths', () => {
  const out = randomUpdate(new Float32Array(3), 1, seededRandom(1));
  assert.equal(out.length, 3);
  assert.ok(out.every(Number.isFinite) && out[2] !== 0);
});

test('nan gives only NaN', () => {
  const out = nanUpdate(trained);
  assert.equal(out.length, trained.length);
  assert.ok(out.every(Number.isNaN));
});

test('applyAttack dispatches and never touches its inputs', () => {
  const t = trained.slice();
  const b = base.slice();
  close(applyAttack('scaled', t, b, { scale: 10 }), [11, -2, -4.5, -1]);
  close(applyAttack('sign_flip', t, b), [0, -2, 1, 4.5]);
  assert.ok(applyAttack('nan', t, b).every(Number.isNaN));
  const r = applyAttack('random', t, b, { scale: 2, random: seededRandom(3) });
  close(r, randomUpdate(b, 2, seededRandom(3)));
  assert.deepEqual(t, trained);
  assert.deepEqual(b, base);
  assert.deepEqual([...ATTACK_KINDS], ['scaled', 'sign_flip', 'random', 'nan']);
});

test('bad input gets a clear error', () => {
  assert.throws(() => applyAttack('boost', trained, base), /unknown attack "boost"; known: scaled/);
  assert.throws(() => scaledUpdate(trained, new Float32Array(3), 1), /4 values, base weights 3/);
  assert.throws(() => scaledUpdate([1, 2], [1, 2], 1), /Float32Array/);
  assert.throws(() => scaledUpdate(trained, base, Number.NaN), /finite number/);
  assert.throws(() => applyAttack('nan', trained, new Float32Array(1)), /must match/);
});
