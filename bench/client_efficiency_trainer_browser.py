"""The participating client's computation alone in headless Chromium: this tree's `Trainer.train`
against an older copy's, finely interleaved in one page (60 pairs after 5 warm-up pairs, each
trainer from the weights it returned last), on the served digits_mlp model, batch 32.

    .venv/bin/python bench/client_efficiency_trainer_browser.py --old-client DIR
                                                   [--backend webgl,cpu] [--local-steps 5,10]

Starts ``wnn serve digits_mlp``, opens the volunteer page with ``?autostart=0&backend=B``, serves
DIR (a copy of ``client_js/src`` from another commit) to it under ``old_client/`` and prints one
JSON line per backend and step count: median ms per task of each and the median per-pair ratio
new / old (below 1: the new trainer is faster). See client_efficiency_trainer.mjs for Node.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.e2e import DIGITS_SPEC, launch_chromium, start_server  # noqa: E402

RUN = """async ({steps, pairs}) => {
  const tf = globalThis.tf;
  const [{Trainer: New}, {Trainer: Old}] = await Promise.all([
    import('./static/client/trainer.js'), import('./old_client/trainer.js')]);
  const model = await (await fetch('api/v1/model')).json();
  const n = 32 * steps;
  const x = {data: Float32Array.from({length: n * 64}, Math.random), shape: [n, 64],
             dtype: 'float32'};
  const y = {data: Int32Array.from({length: n}, (_, i) => i % 10), shape: [n], dtype: 'int32'};
  const make = async (Trainer) => {
    const trainer = new Trainer(tf);
    await trainer.setModel(model);
    return {trainer, flat: await trainer.readWeights()};
  };
  const old = await make(Old);
  const fresh = await make(New);
  const task = async (s) => {
    const start = performance.now();
    s.flat = (await s.trainer.train(s.flat, x, y, {batchSize: 32})).weights;
    return performance.now() - start;
  };
  for (let i = 0; i < 5; i++) { await task(old); await task(fresh); }
  const times = {old: [], new: [], ratio: []};
  for (let i = 0; i < pairs; i++) {
    const a = await task(old);
    const b = await task(fresh);
    times.old.push(a); times.new.push(b); times.ratio.push(b / a);
  }
  old.trainer.dispose();
  fresh.trainer.dispose();
  const median = (v) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
  return {environment: 'chromium', backend: tf.getBackend(), localSteps: steps, pairs,
    oldMsPerTask: median(times.old), newMsPerTask: median(times.new),
    newOverOld: median(times.ratio)};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-client", type=Path, required=True)
    parser.add_argument("--backend", default="webgl,cpu")
    parser.add_argument("--local-steps", default="5,10")
    parser.add_argument("--pairs", type=int, default=60)
    args = parser.parse_args()
    old = args.old_client.resolve()
    server = start_server(spec=DIGITS_SPEC)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            for backend in args.backend.split(","):
                for steps in (int(s) for s in args.local_steps.split(",")):
                    page = browser.new_page()
                    page.route("**/old_client/*", lambda route: route.fulfill(
                        path=str(old / Path(route.request.url.split("?")[0]).name),
                        content_type="text/javascript"))
                    page.goto(f"{server.url}?autostart=0&backend={backend}")
                    page.wait_for_function(
                        "() => globalThis.webnnPage && globalThis.webnnPage.loop", timeout=120_000)
                    print(json.dumps(page.evaluate(RUN, {"steps": steps, "pairs": args.pairs})),
                          flush=True)
                    page.close()
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
