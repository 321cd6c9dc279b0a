"""The merge thread's work per update, the one-pass average against the straightforward path.

What the server's merge thread does per accepted update (`merging.MergeWorker.run`, WebNN's
`average`, the default screening), on N float32 weights (default 1M), timed in one process, old
and new in alternating rounds on the same data:

- ``old``: the straightforward path (``MergeWorker(fused=False)``): the update's check and delta
  norm (`ingest.check_weights`, chunked), the screen, the average (``W += W_p; W *= 1/2``), a
  finiteness sum over the result and the copy into the pooled snapshot buffer;
- ``new``: the one-pass path (``MergeWorker(fused=True)``, `webnn.merge.fused_average`): the same
  steps block by block, each array read once;
- the old path's parts alone (``check+norm``, ``average``, ``result sum``, ``snapshot copy``) and
  ``copy`` (one `np.copyto` of the model: one read and one write of every byte, the memory
  reference).

Each update of a round is a buffer of its own, filled before the round (so not the last thing in
cache when its merge starts, as a body just received mostly is not); its base is the version
`--staleness` merges back.
Per round, `--merges` merges of each path; printed: the median over `--rounds` rounds of the
milliseconds per merge, wall clock and the process's CPU time (`time.process_time`: BLAS
threads included), and the new/old ratio of each round's pair (median). Both paths' weights
are checked bit-identical after every round.

    taskset -c 1 nice -n 10 .venv/bin/python bench/merge_passes.py [--params 1000000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Update
from webnn.merge.screening import DEFAULT_SCREENING, Screen, ScreeningConfig
from webnn.merge.webnn_rules import average_into
from webnn.merge.webnn_strategies import WebNNAverage
from webnn.server.ingest import CHUNK, check_weights
from webnn.server.merging import MergeWorker
from webnn.server.versions import Snapshot, SnapshotPool
from webnn.weights import WeightLayout, WeightSpec


class Path:
    """One worker (old or new) with its own model, snapshots and screen."""

    def __init__(self, fused: bool, initial: np.ndarray, staleness: int) -> None:
        size = initial.size
        layout = WeightLayout([WeightSpec("w", (size,))])
        self.pool = SnapshotPool(size, keep=staleness + 4)
        screen = Screen(ScreeningConfig(**DEFAULT_SCREENING), layout)
        self.worker = MergeWorker(WebNNAverage(), screen, layout, self.pool, fused=fused)
        self.model = ModelState(weights=initial.copy(), steps=1)
        self.kept: deque[Snapshot] = deque([self.worker.snapshot(self.model)])
        self.staleness = staleness
        self.steps = 1
        self.clipped = 0

    def merge(self, weights: np.ndarray) -> None:
        base = self.kept[max(0, len(self.kept) - 1 - self.staleness)].array()
        self.steps += 1
        update = Update(weights=weights, base_version=0, base_steps=self.steps, local_steps=1,
                        staleness=self.staleness, client="bench")
        outcome = self.worker.run(self.model, update, base, self.kept[-1])
        assert outcome.snapshot is not None and not outcome.refused, outcome.verdict
        self.clipped += outcome.verdict is not None and outcome.verdict.action == "clipped"
        self.kept.append(outcome.snapshot)
        if len(self.kept) > self.staleness + 1:
            dropped = self.kept.popleft()
            array = dropped.data
            del dropped
            self.pool.give_back(array)


def timed(work: Callable[[], Any], count: int) -> tuple[float, float]:
    """(wall ms, process CPU ms) per call of `work` over `count` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        work()
    return ((time.perf_counter() - wall) * 1e3 / count,
            (time.process_time() - cpu) * 1e3 / count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--merges", type=int, default=16, help="merges per path per round")
    parser.add_argument("--staleness", type=int, default=2)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    initial = rng.standard_normal(args.params).astype(np.float32)
    noise = [rng.standard_normal(args.params).astype(np.float32) * np.float32(0.01)
             for _ in range(4)]
    ring = [np.empty(args.params, np.float32) for _ in range(args.merges)]
    paths = {name: Path(name == "new", initial, args.staleness) for name in ("old", "new")}
    assert paths["new"].worker.fused is not None and paths["old"].worker.fused is None

    def run_path(name: str) -> tuple[float, float]:
        """`--merges` merges, each of its own buffer: an honest-looking update near the model,
        made before the timing (so not the last thing in cache)."""
        path = paths[name]
        for i, buffer in enumerate(ring):
            np.add(path.model.weights, noise[i % len(noise)], out=buffer)
        it = iter(ring)
        return timed(lambda: path.merge(next(it)), args.merges)

    # the old path's parts, on separate arrays
    model = initial.copy()
    update = (initial + noise[0]).astype(np.float32)
    reference = initial.copy()
    snapshot = np.empty_like(model)
    scratch = np.empty(min(CHUNK, args.params), np.float32)
    parts: dict[str, Callable[[], Any]] = {
        "check+norm": lambda: check_weights(update, reference, norm=True, scratch=scratch),
        "average": lambda: average_into(model, update),
        "result sum": lambda: check_weights(model),
        "snapshot copy": lambda: np.copyto(snapshot, model),
        "copy": lambda: np.copyto(snapshot, update),
    }

    results: dict[str, list[tuple[float, float]]] = {k: [] for k in ("old", "new", *parts)}
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    for _ in range(args.rounds):
        order = ("old", "new") if _ % 2 == 0 else ("new", "old")
        pair = {name: run_path(name) for name in order}
        for name, figures in pair.items():
            results[name].append(figures)
        ratios.append(pair["new"][0] / pair["old"][0])
        cpu_ratios.append(pair["new"][1] / pair["old"][1])
        a, b = paths["old"].model, paths["new"].model
        assert a.weights.tobytes() == b.weights.tobytes() and a.steps == b.steps, "results differ"
        screens = [paths[name].worker.screen for name in ("old", "new")]
        assert screens[0] is not None and screens[1] is not None
        assert screens[0].state() == screens[1].state(), "screen windows differ"
        for name, work in parts.items():
            model[...] = initial
            results[name].append(timed(work, max(4, args.merges // 4)))

    print(f"{args.params} parameters, {args.rounds} rounds of {args.merges} merges per path, "
          f"staleness {args.staleness}, default screening; ms per merge (median of rounds)")
    print(f"{'':16} {'wall ms':>9} {'cpu ms':>9}")
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"{name:16} {wall:9.3f} {cpu:9.3f}")
    print(f"new / old, median of round pairs: wall {statistics.median(ratios):.3f}, "
          f"cpu {statistics.median(cpu_ratios):.3f}; weights and screen state bit-identical "
          "after every round")
    print(f"clipped (the straightforward path in both): {paths['old'].clipped} of "
          f"{args.rounds * args.merges} merges per path")


if __name__ == "__main__":
    main()
