"""What decoding a compressed update costs the server, against a memory copy of the float32 weights.

For a model of `--params` parameters in `--tensors` equal manifest tensors, times (median of
`--repeat`) in one run: ``np.copyto`` of the float32 weights (the reference), the f16 widening and
the q8 reconstruction (``base + q * s_t``) into a pooled float32 buffer
(`EncodedUpdate.decode_into`), and the float16 copy of a new version (`to_half`). Ratio = copy
time / path time (1.0: memory-copy speed). Body bytes per encoding are printed too.

    .venv/bin/python bench/encodings.py --params 1000000 --repeat 15
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from webnn.server.encodings import EncodedUpdate, to_half, update_bytes
from webnn.weights import WeightLayout, WeightSpec


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    size = args.params // args.tensors
    layout = WeightLayout([WeightSpec(f"t{i}", (size,)) for i in range(args.tensors)])
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, layout.size).astype(np.float32)
    out = np.empty(layout.size, np.float32)
    half = base.astype(np.float16)
    codes = rng.integers(-127, 128, layout.size).astype(np.int8)
    scales = rng.random(args.tensors).astype(np.float32)
    half_out = np.empty(layout.size, np.float16)
    rows = [
        ("np.copyto float32 (reference)", lambda: np.copyto(out, base)),
        ("f16 update: widen into the pooled buffer",
         lambda: EncodedUpdate("f16", half).decode_into(out, layout)),
        ("q8 update: base + q * s into the pooled buffer",
         lambda: EncodedUpdate("q8", codes, scales).decode_into(out, layout, base)),
        ("f16 weights: a version's float16 copy", lambda: to_half(base, half_out)),
    ]
    reference = None
    print(f"{layout.size} parameters in {args.tensors} tensors; median of {args.repeat}")
    print("| path | ms | × copy |\n|---|---|---|")
    for name, fn in rows:
        fn()
        seconds = median_seconds(fn, args.repeat)
        reference = reference or seconds
        print(f"| {name} | {seconds * 1e3:.3f} | {reference / seconds:.2f} |")
    print("\n| encoding | tensor bytes per update | vs f32 |\n|---|---|---|")
    for encoding in ("f32", "f16", "q8"):
        nbytes = update_bytes(layout, encoding)
        print(f"| {encoding} | {nbytes} | {update_bytes(layout, 'f32') / nbytes:.3f}x fewer |")


if __name__ == "__main__":
    main()
