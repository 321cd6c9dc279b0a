// Choosing a page's TF.js backend: WebGPU where the browser offers an adapter, else WebGL, else
// CPU (docs/clients.md, "Backends"). It never imports TF.js: `tf` and a script loader are passed in.
//
// - WebGPU counts as offered only when `navigator.gpu.requestAdapter()` resolves to an adapter
//   (a browser may expose `navigator.gpu` with no usable GPU behind it, as headless Chromium does);
//   its bundle (static/tfjs-webgpu/) is loaded only then.
// - Each backend of the order is tried in turn: one whose script fails to load, whose
//   `tf.setBackend` answers false or throws (no WebGL context, a device lost at start) gives way
//   to the next; when none starts, cpu (always available) is used.
// - A backend the visitor forces (`?backend=`) is the whole order.

/** The order tried when the browser offers WebGPU; without it the first entry is dropped. */
export const PREFERRED_BACKENDS = Object.freeze(['webgpu', 'webgl', 'cpu']);

/** Whether `navigatorLike.gpu` gives a WebGPU adapter (false when absent, null, refused or failing). */
export async function webgpuAdapter(navigatorLike = globalThis.navigator) {
  const gpu = navigatorLike?.gpu;
  if (!gpu || typeof gpu.requestAdapter !== 'function') return false;
  try {
    return Boolean(await gpu.requestAdapter());
  } catch {
    return false;
  }
}

/**
 * The backends to try, best first: `[wanted]` when one is forced, else webgpu (only when the
 * browser gives an adapter), webgl, cpu.
 * @returns {Promise<string[]>}
 */
export async function backendOrder(wanted = null, navigatorLike = globalThis.navigator) {
  if (wanted) return [wanted];
  const gpu = await webgpuAdapter(navigatorLike);
  return PREFERRED_BACKENDS.filter((name) => name !== 'webgpu' || gpu);
}

/**
 * Start the first backend of `order` that works and return its name (cpu when none does).
 * @param {object} tf the TensorFlow.js namespace
 * @param {string[]} order backend names, best first
 * @param {{load?: (name: string) => Promise<void>, warn?: Function}} [options] `load(name)` makes
 *   the backend known to TF.js when its bundle is separate (webgpu, wasm); a failure skips it
 */
export async function startBackend(tf, order, { load = async () => {}, warn = console.warn } = {}) {
  for (const name of order) {
    try {
      await load(name);
      if (await tf.setBackend(name)) {
        await tf.ready();
        return tf.getBackend();
      }
    } catch (err) {
      warn(`webnn: backend ${name} failed:`, err);
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  return tf.getBackend();
}
