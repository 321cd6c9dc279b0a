"""Process CPU of the server's model-sized conversions at bench/load.py's 1M model, one call each
(mean of 40 after one warm call): what a q8f16 or f16 update costs the server beyond an f32 one.

    taskset -c 1 nice -n 10 .venv/bin/python \\
        bench/load_results/2026-12-02-local-2core-encodings/conversions.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from load_model import CLASSES, INPUTS, width_for  # noqa: E402

from webnn.server.encodings import EncodedUpdate, to_half  # noqa: E402
from webnn.weights import WeightLayout  # noqa: E402


def cpu_ms(call: Callable[[], object], repeat: int = 40) -> float:
    call()
    started = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - started) / repeat * 1e3


def main() -> None:
    h = width_for(1_000_000)
    shapes = [[INPUTS, h], [h], [h, h], [h], [h, CLASSES], [CLASSES]]
    layout = WeightLayout.from_manifest([{"name": f"t{i}", "shape": shape, "dtype": "float32"}
                                         for i, shape in enumerate(shapes)])
    size = layout.size
    rng = np.random.default_rng(0)
    base = rng.standard_normal(size).astype(np.float32)
    out = np.empty(size, dtype=np.float32)
    half = np.empty(size, dtype="<f2")
    q8 = EncodedUpdate("q8", rng.integers(-127, 128, size).astype(np.int8),
                       np.full(len(shapes), 1e-5, dtype=np.float32))
    f16 = EncodedUpdate("f16", base.astype("<f2"))
    print(f"{size:,} parameters, numpy {np.__version__}")
    rows = [("q8 decode_into (base + q s_t)", lambda: q8.decode_into(out, layout, base)),
            ("f16 decode_into (widen)", lambda: f16.decode_into(out, layout)),
            ("to_half (each new version's copy)", lambda: to_half(base, half)),
            ("np.copyto float32 (reference)", lambda: np.copyto(out, base))]
    for name, call in rows:
        print(f"{name:35s}{cpu_ms(call):6.2f} ms")


if __name__ == "__main__":
    main()
