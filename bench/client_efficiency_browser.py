"""Client efficiency in headless Chromium: steps/s of the page's worker loop against a real
`wnn serve` over steps/s of raw TF.js `model.fit` in the same page, same model, batch size and
backend.

    .venv/bin/python bench/client_efficiency_browser.py [--backend webgl|cpu|wasm] [--rounds N]
                                                          [--tasks N] [--local-steps N]
                                                          [--encodings all|f32] [--modes M,...]
                                                          [--old-client DIR] [--server URL]

Starts ``wnn serve digits_mlp`` on a free port (``--local-steps N``: a copy of the spec with N
local steps per task), opens the volunteer page with ``?autostart=0`` (TF.js loaded, backend
chosen, not contributing; its live view of the run stays on, as for a volunteer), injects
``client_efficiency_core.mjs`` and runs it there. Prints one JSON line with the figures, then a
summary line. ``--encodings all`` (default) joins as the page does (offering q8/f16);
``--old-client DIR`` also measures the client modules in DIR (a copy of ``client_js/src`` from
another commit), served to the page under ``old_client/``, side by side as ``old``.
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

RUN = """async ({rounds, tasks, encodings, modes, old}) => {
  const variant = async (dir) => {
    const [{WebnnClient}, {Trainer}, {WorkerLoop}, {OFFER_ALL}] = await Promise.all([
      import(`./${dir}/protocol.js`), import(`./${dir}/trainer.js`),
      import(`./${dir}/worker_loop.js`), import(`./${dir}/encoding.js`)]);
    return {WebnnClient, Trainer, WorkerLoop, OFFER_ALL};
  };
  const variants = {new: await variant('static/client')};
  if (old) variants.old = await variant('old_client');
  return await globalThis.measureEfficiency({
    tf: globalThis.tf, variants, baseUrl: new URL('.', location.href).href, rounds,
    tasksPerRound: tasks, modes, encodings: encodings === 'all' ? variants.new.OFFER_ALL : null,
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
    parser.add_argument("--encodings", default="all", choices=["all", "f32"])
    parser.add_argument("--modes", default="", help="also: overlap, withoutFollowUps")
    parser.add_argument("--old-client", type=Path, default=None)
    parser.add_argument("--server", default=None,
                        help="a running wnn serve's URL (e.g. one pinned to its own core) "
                        "instead of starting one; --local-steps is then the server's")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="webnn-bench-")
    spec = (spec_with_local_steps(args.local_steps, Path(scratch.name))
            if args.local_steps else DIGITS_SPEC)
    server = start_server(spec=spec) if args.server is None else None
    url = args.server or server.url
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            page.on("console", lambda message: print(message.text, file=sys.stderr))
            if args.old_client:
                old = args.old_client.resolve()
                page.route("**/old_client/*", lambda route: route.fulfill(
                    path=str(old / Path(route.request.url.split("?")[0]).name),
                    content_type="text/javascript"))
            page.goto(f"{url}?autostart=0&backend={args.backend}")
            page.wait_for_function("() => globalThis.webnnPage && globalThis.webnnPage.loop",
                                   timeout=120_000)
            source = CORE.read_text() + (
                "\nglobalThis.measureEfficiency = measure;"
                "\nglobalThis.efficiencySummary = summary;")
            page.add_script_tag(content=source, type="module")
            page.wait_for_function("() => typeof globalThis.measureEfficiency === 'function'")
            result = page.evaluate(RUN, {
                "rounds": args.rounds, "tasks": args.tasks, "encodings": args.encodings,
                "modes": [m for m in args.modes.split(",") if m], "old": bool(args.old_client)})
            line = page.evaluate(SUMMARY, result)
            browser.close()
    finally:
        if server is not None:
            server.stop()
        scratch.cleanup()
    print(json.dumps({"environment": "chromium", "encodings": args.encodings, **result}))
    print(line)


if __name__ == "__main__":
    main()
