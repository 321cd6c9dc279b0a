"""Memory a server keeps per joined session and per open task, measured with `tracemalloc`.

Starts the digits model's app in process (no HTTP: the figures are what the coordinator keeps,
not transient request buffers), then

1. joins `--sessions` sessions (each with a 200-character name and user agent and a 64-character
   volunteer id, the longest a client may send, and an IPv6 client address) and reports the
   traced bytes kept per session;
2. leases one open training task to each session and reports the bytes kept per open training
   task (its lease record and its batch's encoded frame: ``batch x local steps`` examples);
3. likewise one evaluation task per session (chunks' frames are shared, so only the lease);
4. the worst case a crowd can make the server hold with the default caps:
   ``max_sessions x (session + max_open_tasks x open training task)``.

    .venv/bin/python bench/memory_sessions.py [--sessions 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parent.parent


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def measure(sessions: int) -> dict[str, float]:
    from webnn.server.app import create_app
    from webnn.server.config import ServeConfig
    from webnn.server.keys import COORDINATOR

    config = ServeConfig(spec=REPO / "model_specs" / "digits_mlp.json",
                         data=str(REPO / "data_modules" / "digits.py"), seed=1,
                         evaluate_initial=False, max_sessions=sessions + 1,
                         max_open_tasks=4, joins_per_minute=0)
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()  # startup: validation frames, the tick
    coordinator = app[COORDINATOR]
    try:
        tracemalloc.start()
        before = _traced()
        # distinct strings, as from requests: each session keeps its own
        infos = [{"kind": "node", "name": f"{i:08d}".ljust(200, "n"),
                  "userAgent": f"{i:08d}".ljust(200, "u"), "backend": "cpu",
                  "volunteerId": f"{i:08d}".ljust(64, "v")}
                 for i in range(sessions)]
        addresses = [f"2001:db8:{i // 65536:x}:{i % 65536:x}::{i % 7 + 1:x}"
                     for i in range(sessions)]
        joined = [coordinator.join(info, address=address)
                  for info, address in zip(infos, addresses, strict=True)]
        del infos, addresses
        after_join = _traced()
        for session in joined:
            coordinator.next_task(session, "train")
        after_train = _traced()
        coordinator.schedule.chunk_examples = [1] * sessions  # one chunk per session
        coordinator._start_evaluation(coordinator.model.version, 0, 0)
        after_start = _traced()
        for session in joined:
            coordinator.next_task(session, "evaluate")
        after_eval = _traced()
        tracemalloc.stop()
        batch = coordinator.batch_size * coordinator.local_steps
        per_session = (after_join - before) / sessions
        per_train = (after_train - after_join) / sessions
        defaults = ServeConfig.model_fields
        cap_sessions = defaults["max_sessions"].default
        cap_tasks = defaults["max_open_tasks"].default
        return {"sessions": sessions, "batch_examples": batch,
                "bytes_per_session": per_session,
                "bytes_per_open_train_task": per_train,
                "bytes_per_open_evaluation_task": (after_eval - after_start) / sessions,
                "default_max_sessions": cap_sessions, "default_max_open_tasks": cap_tasks,
                "worst_case_bytes_default_caps": cap_sessions * (per_session
                                                                 + cap_tasks * per_train)}
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.sessions))
    for key, value in figures.items():
        print(f"{key:32s} {value:12.0f}")


if __name__ == "__main__":
    main()
