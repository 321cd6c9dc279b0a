// TF.js for the benchmarks in Node: the copy in client_js/node_modules (the version the clients
// run), ready on a named backend. Its banner about the node backend (advice for a native build the
// clients do not use; printed through console.warn at the first tensor) is dropped.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const BANNER = /running TensorFlow\.js in Node\.js/i;

/**
 * TF.js imported through `requireClient` (`createRequire` of client_js/package.json), ready on
 * `backend` (`cpu` or `wasm`).
 */
export async function loadTf(requireClient, backend = 'cpu') {
  const warn = console.warn.bind(console);
  console.warn = (...args) => {
    if (!(typeof args[0] === 'string' && BANNER.test(args[0]))) warn(...args);
  };
  const tf = await import(pathToFileURL(requireClient.resolve('@tensorflow/tfjs')).href);
  if (backend === 'wasm') {
    const wasmPath = requireClient.resolve('@tensorflow/tfjs-backend-wasm');
    const wasm = await import(pathToFileURL(wasmPath).href);
    wasm.setWasmPaths(path.dirname(wasmPath) + path.sep);
  }
  await tf.setBackend(backend);
  await tf.ready();
  return tf;
}
