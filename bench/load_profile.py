"""An opt-in profile of a ``wnn serve`` process's event-loop thread for bench/load.py
(``--profile FILE``).

Python 3.11 has no perf trampoline, so ``perf`` sees only ``_PyEval_EvalFrameDefault`` where the
interpreter runs; this names the Python functions. `install()` (run by the server's interpreter
before ``wnn serve`` starts, when ``WEBNN_PROFILE`` names a file) sets two signal handlers in the
main thread, the one that runs the event loop:

- ``SIGUSR1``: start a ``cProfile`` profile of the main thread (the merge's worker threads are
  not in it: cProfile profiles the thread that enables it);
- ``SIGUSR2``: stop it and write its statistics to the file (``pstats`` format: read them with
  ``python -m pstats FILE`` or `summary`).

Times are wall-clock (cProfile's default: on a core shared with the merge thread they include
the time the merge thread ran while the event loop waited for the GIL or the CPU) unless
``WEBNN_PROFILE_CLOCK=cpu``: the thread's own CPU time (``time.thread_time``, a system call per
reading, so the profile's own cost is larger).

bench/load.py sends SIGUSR1 when its measured window opens and SIGUSR2 when it closes, so the
profile covers the same seconds as the report's figures. cProfile's own cost inflates the time
of functions with many small calls; compare shares between two profiles, not with the
unprofiled CPU figures.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import sys
import time
from typing import Any


def install() -> None:
    """Set the SIGUSR1/SIGUSR2 handlers when ``WEBNN_PROFILE`` names a file (else nothing)."""
    target = os.environ.get("WEBNN_PROFILE")
    if not target:
        return
    holder: dict[str, cProfile.Profile] = {}

    def start(signum: int, frame: Any) -> None:
        if "profile" not in holder:
            clock = time.thread_time if os.environ.get("WEBNN_PROFILE_CLOCK") == "cpu" else None
            holder["profile"] = (cProfile.Profile() if clock is None
                                 else cProfile.Profile(clock))  # type: ignore[arg-type]
            holder["profile"].enable()

    def stop(signum: int, frame: Any) -> None:
        profile = holder.pop("profile", None)
        if profile is not None:
            profile.disable()
            profile.dump_stats(target)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def summary(path: str, per: float = 1.0, top: int = 40, sort: str = "tottime") -> str:
    """The `top` functions of a profile by `sort`, times divided by `per` (e.g. the accepted
    updates in the window, for ms per update)."""
    stats = pstats.Stats(path)
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime if sort == "tottime" else cumtime, tottime, cumtime, calls,
                     f"{os.path.basename(filename)}:{line}({name})"))
    rows.sort(reverse=True)
    total = sum(row[1] for row in rows)
    lines = [f"total {total / per * 1e3:.3f} ms per unit ({per:g} units)",
             f"{'tottime ms':>10} {'cumtime ms':>10} {'calls':>8}  function"]
    for _, tottime, cumtime, calls, where in rows[:top]:
        lines.append(f"{tottime / per * 1e3:10.4f} {cumtime / per * 1e3:10.4f} "
                     f"{calls / per:8.2f}  {where}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0,
                  sort=sys.argv[3] if len(sys.argv) > 3 else "tottime"))
