"""The server's update ingest against a plain memory copy of the same bytes, in one run.

For an update frame of N float32 weights (default 1M and 10M), times, median of `--repeat` runs:

- ``copy``: ``np.copyto`` of the frame's bytes into a preallocated buffer (one read + one write of
  every byte: the memory-bandwidth reference);
- ``decode+check``: what the server does with a body already in its pooled buffer
  (`updates.decode_update`: the frame decoded in place, a float32 view; `ingest.check_weights`:
  finiteness in one chunked pass);
- ``decode+check+norm``: the same with the delta norm against a reference (screening on);
- ``receive+decode+check``: the body arriving as 64 KiB chunks (as aiohttp hands them over) copied
  into the pooled buffer, then decode+check: the whole per-request path short of the socket;
- ``old path``: the path before issue 11 (a growing bytearray, ``bytes()`` of it, a decoded
  ``astype`` copy and a float64-sum finiteness check), for comparison.

Each line prints milliseconds, GB/s of frame bytes and the bandwidth ratio to ``copy`` (the
target for ``decode+check`` is >= 0.25).

    .venv/bin/python bench/ingest.py [--floats 1000000 10000000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from webnn.merge.screening import all_finite
from webnn.server.frames import decode_frame, encode_frame
from webnn.server.ingest import check_weights
from webnn.server.updates import decode_update
from webnn.weights import WeightLayout, WeightSpec

CHUNK_BYTES = 1 << 16


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(floats: int, repeat: int) -> list[tuple[str, float]]:
    layout = WeightLayout([WeightSpec("w", (floats,))])
    rng = np.random.default_rng(0)
    weights = rng.normal(size=floats).astype(np.float32)
    reference = rng.normal(size=floats).astype(np.float32)
    frame = encode_frame({"baseVersion": 0, "steps": 5, "loss": 1.0, "accuracy": 0.5,
                          "timings": {"compute": 0.5}}, {"weights": weights})
    source = np.frombuffer(frame, dtype=np.uint8)
    pooled = np.empty(source.size, dtype=np.uint8)
    chunks = [frame[i:i + CHUNK_BYTES] for i in range(0, len(frame), CHUNK_BYTES)]

    def copy() -> None:
        np.copyto(pooled, source)

    def decode_check(norm: bool = False) -> None:
        view, _ = decode_update(memoryview(pooled), layout, task_id="t", task_version=0,
                                max_steps=5)
        assert check_weights(view, reference if norm else None, norm=norm).finite

    def receive() -> None:
        view = memoryview(pooled)
        at = 0
        for chunk in chunks:
            view[at:at + len(chunk)] = chunk
            at += len(chunk)
        decode_check()

    def old_path() -> None:
        data = bytearray()
        for chunk in chunks:
            data += chunk
        body = bytes(data)
        tensor = decode_frame(body).tensors["weights"]
        assert all_finite(tensor.reshape(-1).astype(np.float32, copy=True))

    copy()
    results = [("copy", median_seconds(copy, repeat))]
    results.append(("decode+check", median_seconds(decode_check, repeat)))
    results.append(("decode+check+norm", median_seconds(lambda: decode_check(True), repeat)))
    results.append(("receive+decode+check", median_seconds(receive, repeat)))
    results.append(("old path", median_seconds(old_path, repeat)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floats", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    for floats in args.floats:
        nbytes = floats * 4
        results = bench(floats, args.repeat)
        copy_seconds = results[0][1]
        print(f"{floats:,} float32 ({nbytes / 1e6:.1f} MB frame), median of {args.repeat}:")
        for name, seconds in results:
            print(f"  {name:22s} {seconds * 1e3:8.3f} ms  {nbytes / seconds / 1e9:6.2f} GB/s  "
                  f"{copy_seconds / seconds:5.2f} x copy")


if __name__ == "__main__":
    main()
