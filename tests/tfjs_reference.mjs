// TF.js reference for webnn.spec: builds models with TensorFlow.js (pure-JS cpu backend) and prints
// what TF.js itself says about them, as JSON on stdout.
//
//   node tests/tfjs_reference.mjs < topology.json
//
// stdin is one of
//   - a layers-model topology ({"class_name": "Sequential", ...}) or a model.json ({"modelTopology"});
//   - {"cases": [case, ...]} where a case is
//       {"id", "topology", "weights"?: base64 float32 LE buffer}  -> tf.models.modelFromJSON(topology),
//           then, if weights are given, setWeights() from the flat buffer and getWeights() back;
//       {"id", "build": {"inputShape", "layers": [[factory, args], ...]}} -> tf.sequential() built with
//           tf.layers.<factory>(args); reports the TF.js-initialised weights too.
// Each result: {id, manifest: [{name, shape, dtype, trainable}] (model.weights order, original names;
// trainable = listed in model.trainableWeights),
// layers: [{name, class_name, output_shape, params}], total_params, trainable_params, output_shape,
// topology: model.toJSON(), weights?: base64 of getWeights() concatenated} or {id, error}.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'client_js', 'package.json'));

// tfjs prints a banner about tfjs-node on import and warnings while initialising weights; keep
// stdout for the JSON answer only.
const quiet = () => {};
console.log = quiet;
console.warn = quiet;
console.info = quiet;
const tf = require('@tensorflow/tfjs');
await tf.setBackend('cpu');

function encode(arrays) {
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const flat = new Float32Array(total);
  let offset = 0;
  for (const a of arrays) {
    flat.set(a, offset);
    offset += a.length;
  }
  return Buffer.from(flat.buffer).toString('base64');
}

function decode(base64) {
  const bytes = Buffer.from(base64, 'base64');
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

function readWeights(model) {
  const tensors = model.getWeights();
  return encode(tensors.map((t) => t.dataSync()));
}

function setFlatWeights(model, flat) {
  const sizes = model.weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== flat.length) {
    throw new Error(`weights hold ${flat.length} float32; the model needs ${total}`);
  }
  let offset = 0;
  const tensors = model.weights.map((w, i) => {
    const t = tf.tensor(flat.subarray(offset, offset + sizes[i]), w.shape, 'float32');
    offset += sizes[i];
    return t;
  });
  model.setWeights(tensors);
  tf.dispose(tensors);
}

function describe(model) {
  const size = (w) => w.shape.reduce((a, b) => a * b, 1);
  // A frozen layer's variables keep their own `trainable` flag; what counts is whether the model
  // lists them among its trainable weights.
  const trainable = new Set(model.trainableWeights);
  return {
    manifest: model.weights.map((w) => ({
      name: w.originalName, shape: w.shape, dtype: w.dtype, trainable: trainable.has(w),
    })),
    layers: model.layers.map((l) => ({
      name: l.name, class_name: l.getClassName(), output_shape: l.outputShape, params: l.countParams(),
    })),
    total_params: model.countParams(),
    trainable_params: model.trainableWeights.reduce((n, w) => n + size(w), 0),
    output_shape: model.outputs[0].shape,
    topology: model.toJSON(null, false),
  };
}

async function runCase(c) {
  let model;
  if (c.build) {
    model = tf.sequential();
    c.build.layers.forEach(([factory, args], i) => {
      const options = i === 0 ? { inputShape: c.build.inputShape, ...args } : args;
      model.add(tf.layers[factory](options));
    });
  } else {
    const topology = c.topology.modelTopology ?? c.topology;
    model = await tf.models.modelFromJSON({ modelTopology: topology });
  }
  const result = { id: c.id, ...describe(model) };
  if (c.weights) setFlatWeights(model, decode(c.weights));
  if (c.weights || c.build) result.weights = readWeights(model);
  model.dispose();
  return result;
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const batch = Array.isArray(input.cases);
  const cases = batch ? input.cases : [{ id: 'stdin', topology: input }];
  const results = [];
  for (const c of cases) {
    try {
      results.push(await runCase(c));
    } catch (error) {
      results.push({ id: c.id, error: String(error && error.message ? error.message : error) });
    }
  }
  process.stdout.write(JSON.stringify(batch ? { results } : results[0]));
  process.stdout.write('\n');
}

await main();
