"""Client efficiency in headless Chromium: steps/s of the page's worker loop against a real
`wnn serve` over steps/s of raw TF.js `model.fit` in the same page, same model, batch size and
backend.

    .venv/bin/python bench/client_efficiency_browser.py [--backend webgl|cpu|wasm] [--rounds N]
                                                          [--tasks N] [--local-steps N]

Starts ``wnn serve digits_mlp`` on a free port (``--local-steps N``: a copy of the spec with N
local steps per task), opens the volunteer page with ``?autostart=0`` (TF.js loaded, backend
chosen, not contributing; its live view of the run stays on, as for a volunteer), injects
``client_efficiency_core.mjs`` and runs it there. Prints one JSON line with the figures, then a
summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.e2e import DIGITS_SPEC, launch_chromium, start_server  # noqa: E402

CORE = Path(__file__).resolve().parent / "client_efficiency_core.mjs"

RUN = """async ({rounds, tasks}) => {
  const [{WebnnClient}, {Trainer}, {WorkerLoop}] = await Promise.all([
    import('./static/client/protocol.js'), import('./static/client/trainer.js'),
    import('./static/client/worker_loop.js')]);
  return await globalThis.measureEfficiency({
    tf: globalThis.tf, WebnnClient, Trainer, WorkerLoop,
    baseUrl: new URL('.', location.href).href, rounds, tasksPerRound: tasks,
    log: (line) => console.log(line)});
}"""
SUMMARY = "(result) => globalThis.efficiencySummary('chromium', result)"


def spec_with_local_steps(steps: int, directory: Path) -> Path:
    """A copy of the digits_mlp spec with `steps` local steps per task."""
    spec = json.loads(DIGITS_SPEC.read_text())
    spec.pop("$schema", None)
    spec["training"]["localSteps"] = steps
    path = directory / "digits_mlp.json"
    path.write_text(json.dumps(spec))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="webgl", choices=["webgl", "cpu", "wasm"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--local-steps", type=int, default=None)
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="webnn-bench-")
    spec = (spec_with_local_steps(args.local_steps, Path(scratch.name))
            if args.local_steps else DIGITS_SPEC)
    server = start_server(spec=spec)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            page.on("console", lambda message: print(message.text, file=sys.stderr))
            page.goto(f"{server.url}?autostart=0&backend={args.backend}")
            page.wait_for_function("() => globalThis.webnnPage && globalThis.webnnPage.loop",
                                   timeout=120_000)
            source = CORE.read_text() + (
                "\nglobalThis.measureEfficiency = measure;"
                "\nglobalThis.efficiencySummary = summary;")
            page.add_script_tag(content=source, type="module")
            page.wait_for_function("() => typeof globalThis.measureEfficiency === 'function'")
            result = page.evaluate(RUN, {"rounds": args.rounds, "tasks": args.tasks})
            line = page.evaluate(SUMMARY, result)
            browser.close()
    finally:
        server.stop()
        scratch.cleanup()
    print(json.dumps({"environment": "chromium", **result}))
    print(line)


if __name__ == "__main__":
    main()
