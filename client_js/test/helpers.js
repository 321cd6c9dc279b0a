// Shared test helpers: TF.js (cpu backend, banner silenced) and a tiny real classification problem.

export async function loadTf() {
  const info = console.log;
  console.log = () => {};
  const tf = await import('@tensorflow/tfjs');
  console.log = info;
  await tf.setBackend('cpu');
  await tf.ready();
  return tf;
}

/** The served description of a small dense classifier, built by TF.js itself. */
export function describeModel(tf, { inputs = 4, hidden = 8, classes = 3, optimizer = 'adam', learningRate = 0.01 } = {}) {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [inputs], units: hidden, activation: 'relu' }),
      tf.layers.dense({ units: classes, activation: 'softmax' }),
    ],
  });
  const description = {
    name: 'tiny',
    topology: model.toJSON(null, false),
    weightsManifest: model.weights.map((w) => ({ name: w.originalName, shape: w.shape, dtype: 'float32' })),
    training: { loss: 'sparseCategoricalCrossentropy', optimizer, learningRate, metrics: ['accuracy'], batchSize: 16, localSteps: 4 },
  };
  const size = model.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  model.dispose();
  return { description, size };
}

/** Deterministic small weights (a sine hash), like a seeded initialiser. */
export function initialWeights(size, scale = 0.4) {
  return Float32Array.from({ length: size }, (_, i) => Math.sin(i * 12.9898 + 1) * scale);
}

/** n examples of 3 separable classes in 4 dimensions: x = one-hot(class) + noise. */
export function problem(n, inputs = 4, classes = 3) {
  const x = new Float32Array(n * inputs);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % classes;
    for (let j = 0; j < inputs; j++) x[i * inputs + j] = (j === y[i] ? 1 : 0) + 0.3 * Math.cos(i * 7.1 + j * 3.3);
  }
  return { x: { data: x, shape: [n, inputs], dtype: 'float32' }, y: { data: y, shape: [n], dtype: 'int32' } };
}
