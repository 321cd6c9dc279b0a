// The client's cost of the encodings (client_js/src/encoding.js) on 1M float32 parameters in 4
// tensors, median of 7, against a plain Float32Array copy:
//   node bench/encodings_client.mjs
import { encodeQ8, fromFloat16, seededRandom, toFloat16 } from '../client_js/src/encoding.js';

const n = 1_000_000;
const sizes = [n / 4, n / 4, n / 4, n / 4];
const random = seededRandom(1);
const base = Float32Array.from({ length: n }, () => random() - 0.5);
const trained = Float32Array.from(base, (b) => b + 0.01 * (random() - 0.5));
const bits = new Uint16Array(n);
const out = new Float32Array(n);

function time(name, fn) {
  fn();
  const times = [];
  for (let i = 0; i < 7; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  console.log(`| ${name} | ${times[3].toFixed(1)} |`);
}

console.log(`| 1M parameters (node ${process.versions.node}) | ms |\n|---|---|`);
time('Float32Array copy (reference)', () => out.set(trained));
time('q8: delta, scales, stochastic rounding (encodeQ8)', () => encodeQ8(trained, base, sizes, random));
time('f16: float32 to float16 bits (toFloat16)', () => toFloat16(trained, bits));
time('f16 weights: widen to float32 (fromFloat16)', () => fromFloat16(bits, out));
