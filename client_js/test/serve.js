// Start a real `wnn serve` for node tests: spawned from the repository's venv, port 0 (or a given
// port), the URL and admin token read from its banner. `stop()` sends SIGTERM and waits.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WNN = path.join(ROOT, '.venv', 'bin', 'wnn');
export const DIGITS_SPEC = path.join(ROOT, 'model_specs', 'digits_mlp.json');
export const DIGITS_DATA = path.join(ROOT, 'data_modules', 'digits.py');

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * @param {string[]} [extra] more `wnn serve` arguments
 * @param {{port?: number, timeoutMs?: number}} [options]
 * @returns {Promise<{url: string, adminToken: string, output: string[], process, stop: () => Promise<number>}>}
 */
export function startServer(extra = [], { port = 0, timeoutMs = 60_000 } = {}) {
  const args = ['serve', DIGITS_SPEC, '--data', DIGITS_DATA, '--port', String(port), ...extra];
  const child = spawn(WNN, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  let url = null;
  let adminToken = null;
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wnn serve did not print its URL within ${timeoutMs} ms:\n${output.join('\n')}`));
    }, timeoutMs);
    const onLine = (line) => {
      output.push(line);
      url ??= line.match(/volunteer page:\s+(\S+)/)?.[1] ?? null;
      adminToken ??= line.match(/admin token:\s+(\S+)/)?.[1] ?? null;
      if (url && adminToken) {
        clearTimeout(timer);
        resolve({
          url, adminToken, output, process: child,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return exited;
          },
        });
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let rest = '';
      stream.on('data', (chunk) => {
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop();
        lines.forEach(onLine);
      });
    }
    exited.then((code) => {
      if (!url || !adminToken) {
        clearTimeout(timer);
        reject(new Error(`wnn serve exited (${code}) before serving:\n${output.join('\n')}`));
      }
    });
  });
}
