"""How close each merge strategy runs to memory bandwidth.

For a model of N float32 weights, times one merge of every built-in strategy and, side by side in
the same run, two references: ``np.copyto`` of the model (one read + one write of N floats, the
floor for any merge that touches every weight) and the update decode the server does per request
(``WeightLayout.from_bytes``: one copy). Prints milliseconds and the ratio to the copy.

    .venv/bin/python bench/merge_throughput.py [--floats 10000000] [--repeat 7]

Buffering strategies (fedbuff, robust) are timed per update over a full buffer cycle, so the cost
of the flush is spread over the K updates that trigger it, as a server sees it.

Two more rows time what the merge thread does for ``average`` after its check: the merge, the
merged weights' finiteness sum and the new version's snapshot copy, as separate passes (as the
server does them) and fused into one pass of `ingest.CHUNK`-value chunks that stays in cache
(alternating, so both see the same machine): whether fusing them would pay.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from webnn.merge import ModelState, Update, available_strategies, create_strategy
from webnn.server.ingest import CHUNK
from webnn.weights import WeightLayout, WeightSpec

BUFFERED = {"fedbuff": {"k": 5}, "robust": {"k": 5}}


def median_ms(run: Callable[[Any], object], repeat: int,
              setup: Callable[[], Any] = lambda: None) -> float:
    """Median wall time of ``run(setup())`` in ms; `setup` is not timed."""
    times = []
    for _ in range(repeat):
        prepared = setup()
        start = time.perf_counter()
        run(prepared)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floats", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n = args.floats
    rng = np.random.default_rng(0)
    base = rng.standard_normal(n, dtype=np.float32)
    trained = base + rng.standard_normal(n, dtype=np.float32) * 0.01
    layout = WeightLayout([WeightSpec("w", (n,))])
    wire = bytes(layout.to_bytes(trained))
    scratch = np.empty_like(base)

    copy_ms = median_ms(lambda _: np.copyto(scratch, base), args.repeat)
    rows = [("np.copyto (reference)", copy_ms),
            ("decode update (from_bytes)",
             median_ms(lambda _: layout.from_bytes(wire), args.repeat))]
    for info in available_strategies():
        if info.strategy is None or info.origin != "built-in":
            continue
        params = BUFFERED.get(info.name, {})
        strategy = create_strategy(info.name, params)
        model = ModelState(weights=base.copy(), steps=100, version=10)
        per_cycle = int(params.get("k", 1))

        def updates(strategy=strategy, per_cycle=per_cycle) -> list[Update]:
            # fresh copies: a strategy may use an update's buffer as scratch
            return [Update(weights=trained.copy(), base_version=9, base_steps=95,
                           local_steps=10, staleness=1, client="bench",
                           base_weights=base if strategy.needs_base_weights else None)
                    for _ in range(per_cycle)]

        def one_cycle(cycle: list[Update], strategy=strategy, model=model) -> None:
            for update in cycle:
                strategy.merge(model, update)

        rows.append((f"merge: {info.name}",
                     median_ms(one_cycle, args.repeat, updates) / per_cycle))
    rows.extend(after_merge(base, trained, max(args.repeat, 31)))
    print(f"{n:,} float32 weights ({n * 4 / 1e6:.0f} MB), median of {args.repeat} runs")
    print(f"{'operation':32} {'ms':>9} {'x copy':>7}")
    for name, ms in rows:
        print(f"{name:32} {ms:9.2f} {ms / copy_ms:7.2f}")


def after_merge(base: np.ndarray, trained: np.ndarray, repeat: int) -> list[tuple[str, float]]:
    """The average, the finiteness sum and the snapshot copy: separate passes, and one fused
    chunked pass; median ms of `repeat` alternating runs each."""
    model, snapshot = base.copy(), np.empty_like(base)
    half = np.float32(0.5)

    def separate() -> None:
        model[:] = base
        np.add(model, trained, out=model)  # average_into: model += update; model *= 0.5
        np.multiply(model, half, out=model)
        assert np.isfinite(np.add.reduce(model))
        np.copyto(snapshot, model)

    def fused() -> None:
        model[:] = base
        total = 0.0
        for start in range(0, model.size, CHUNK):
            part = model[start:start + CHUNK]
            part += trained[start:start + CHUNK]
            part *= half
            copy = snapshot[start:start + CHUNK]
            np.copyto(copy, part)
            total += float(np.add.reduce(copy))
        assert np.isfinite(total)

    times: dict[str, list[float]] = {"separate": [], "fused": []}
    for _ in range(repeat):
        for name, run in (("separate", separate), ("fused", fused)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return [("average+finite+snapshot, separate", statistics.median(times["separate"]) * 1e3),
            ("the same fused in chunks", statistics.median(times["fused"]) * 1e3)]


if __name__ == "__main__":
    main()
