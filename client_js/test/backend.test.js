// Backend selection (backend.js): WebGPU only where navigator.gpu gives an adapter, then WebGL,
// then CPU; each failing backend gives way to the next. Navigators are stand-ins (Node has no
// WebGPU); the fallback itself runs on real TF.js, where neither webgpu nor webgl can start.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { backendOrder, startBackend, webgpuAdapter } from '../src/backend.js';
import { loadTf } from './helpers.js';

const withGpu = (requestAdapter) => ({ gpu: { requestAdapter } });

test('webgpu counts as offered only when requestAdapter gives an adapter', async () => {
  assert.equal(await webgpuAdapter({}), false); // no navigator.gpu
  assert.equal(await webgpuAdapter(undefined), false);
  assert.equal(await webgpuAdapter({ gpu: {} }), false);
  assert.equal(await webgpuAdapter(withGpu(async () => null)), false); // headless Chromium's answer
  assert.equal(await webgpuAdapter(withGpu(async () => { throw new Error('blocked'); })), false);
  assert.equal(await webgpuAdapter(withGpu(() => { throw new Error('sync failure'); })), false);
  assert.equal(await webgpuAdapter(withGpu(async () => ({ features: new Set() }))), true);
});

test('the order: webgpu, webgl, cpu with an adapter; webgl, cpu without; a forced backend alone', async () => {
  const adapter = withGpu(async () => ({ features: new Set() }));
  assert.deepEqual(await backendOrder(null, adapter), ['webgpu', 'webgl', 'cpu']);
  assert.deepEqual(await backendOrder(null, withGpu(async () => null)), ['webgl', 'cpu']);
  assert.deepEqual(await backendOrder(null, {}), ['webgl', 'cpu']);
  assert.deepEqual(await backendOrder('wasm', adapter), ['wasm']);
  assert.deepEqual(await backendOrder('cpu', adapter), ['cpu']);
});

test('a backend that fails to load or start gives way to the next', async () => {
  const tried = [];
  const warnings = [];
  let current = null;
  const tf = {
    setBackend: async (name) => {
      tried.push(name);
      if (name === 'webgl') throw new Error('no WebGL context');
      if (name === 'webgpu') return false;
      current = name;
      return true;
    },
    ready: async () => {},
    getBackend: () => current,
  };
  const warn = (...args) => warnings.push(args.join(' '));
  assert.equal(await startBackend(tf, ['webgpu', 'webgl', 'cpu'], { warn }), 'cpu');
  assert.deepEqual(tried, ['webgpu', 'webgl', 'cpu']);
  assert.match(warnings.join('\n'), /backend webgl failed/);
  tried.length = 0;
  const load = async (name) => { if (name === 'webgpu') throw new Error('could not load the bundle'); };
  assert.equal(await startBackend(tf, ['webgpu', 'cpu'], { load, warn }), 'cpu');
  assert.deepEqual(tried, ['cpu']); // a bundle that did not load is never asked for
});

test('on real TF.js in Node neither webgpu nor webgl starts: cpu is chosen and trains', async () => {
  const tf = await loadTf();
  const name = await startBackend(tf, ['webgpu', 'webgl', 'cpu'], { warn: () => {} });
  assert.equal(name, 'cpu');
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] });
  model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const history = await model.fit(tf.ones([4, 2]), tf.zeros([4, 1]), { epochs: 1, verbose: 0 });
  assert.ok(Number.isFinite(history.history.loss[0]));
  model.dispose();
});
