"""Update bodies of bench/load.py's simulated clients in the protocol's encodings (docs/protocol.md,
"Encodings"; the server's side is webnn/server/encodings.py), built in O(slice), not O(model).

A simulated update is the weights the client holds with one rotating slice ``[at, at + k)``
perturbed, so the update's tensors are sent as scatter parts (memoryviews, never joined):

- ``f32``: ``weights`` float32 ``[P]``: ``[prefix, held[:at], held[at:at+k] + noise, held[at+k:]]``
  (the held weights widened to float32 when they came as float16);
- ``f16``: ``weights`` float16 ``[P]``: the same over the float16 weights, the slice rounded to
  float16 (``(float32(held16) + noise).astype(float16)``);
- ``q8``: ``delta_q8`` int8 ``[P]`` and ``scales`` float32 ``[T]``. The delta from the base the
  client holds, ``d = trained - base``, is zero outside the slice, so its int8 tensor is a shared
  read-only zero buffer around the slice's own ``q``: ``[prefix, zeros[:at], q, zeros[at+k:P],
  pad, scales, pad]``. Per manifest tensor t, ``s_t = max|d_t| / 127`` over the part of the slice
  in t (float32; 0 for a tensor the slice does not touch, whose ``q`` is all 0 as the protocol says
  for a tensor that did not move) and ``q = clip(floor(d / s_t + u), -127, 127)``, ``u ~ U[0, 1)``
  (stochastic rounding).

`OFFERS` maps ``--encoding`` to the join body's ``encodings`` offer; the session's pick (the join
answer's ``encodings``) decides what a client sends and how it reads weights, so a server that
picks otherwise still gets valid updates.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from webnn.server.frames import ALIGN, MAGIC

OFFERS: dict[str, dict[str, list[str]] | None] = {
    "f32": None,
    "q8f16": {"update": ["q8"], "weights": ["f16"]},
    "f16": {"update": ["f16"], "weights": ["f16"]},
}
"""``--encoding`` -> the join body's ``encodings`` (None: no offer, every server answers f32)."""
WEIGHT_DTYPES = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2")}
"""Weights encoding -> dtype of a weights body and of a follow-up frame's ``weights`` tensor."""
WIRE_DTYPES = {"float32": "<f4", "float16": "<f2", "int8": "i1"}
"""A frame's dtype names -> numpy dtypes."""
_ZERO_PAD = bytes(ALIGN)


def pad(n: int) -> int:
    """Zero bytes after `n` bytes of a tensor (frames align every tensor to `ALIGN`)."""
    return (-n) % ALIGN


def byte_view(array: np.ndarray) -> memoryview:
    return memoryview(array).cast("B")  # type: ignore[arg-type]  # numpy buffer


def frame_prefix(header: dict, tensors: list[tuple[str, str, int]]) -> bytes:
    """The frame bytes before the payload for 1-D tensors ``(name, dtype, count)`` laid out one
    after the other from offset 0, each padded to `ALIGN`."""
    entries, offset = [], 0
    for name, dtype, count in tensors:
        length = count * np.dtype(WIRE_DTYPES[dtype]).itemsize
        entries.append({"name": name, "dtype": dtype, "shape": [count], "offset": offset,
                        "byteLength": length})
        offset += length + pad(length)
    head = json.dumps({**header, "tensors": entries}, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + b"\0" * pad(8 + len(head))


@dataclass
class Held:
    """A task's inputs: its weights as received (a float32 or float16 view into a received body),
    their version and the ETag they came with (a follow-up frame names it in ``weightsEtag``; None
    from a server older than that: then ``"v<version>"``, what such a server sent). `as_dtype`
    converts the whole of them once (only when the update's dtype differs from the weights')."""

    version: int
    weights: np.ndarray
    etag: str | None = None
    converted: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def as_dtype(self, dtype: np.dtype) -> np.ndarray:
        if self.weights.dtype == dtype:
            return self.weights
        key = dtype.str
        if key not in self.converted:
            self.converted[key] = self.weights.astype(dtype)
        return self.converted[key]


@dataclass(frozen=True)
class Slice:
    """One update's perturbation: at `at`, `noise` (float32, k values) added to the base."""

    at: int
    noise: np.ndarray


class UpdateBuilder:
    """Scatter parts of an update frame in one encoding, over a model of `bounds` (the manifest
    tensors' ``[start, end)`` in flat order). One per generator process; stateless per update
    except the random generator of the stochastic rounding."""

    def __init__(self, bounds: list[tuple[int, int]], seed: int) -> None:
        self.size = bounds[-1][1] if bounds else 0
        self.starts = np.array([start for start, _ in bounds], dtype=np.int64)
        self.ends = np.array([end for _, end in bounds], dtype=np.int64)
        self.zeros = np.zeros(self.size, dtype=np.int8)
        self.zeros.flags.writeable = False
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_manifest(cls, manifest: list[dict], seed: int) -> UpdateBuilder:
        """From a join answer's ``model.weightsManifest`` (``[{name, shape, dtype}]``, or TF.js
        groups ``[{paths, weights: [...]}]``)."""
        bounds, start = [], 0
        for group in manifest:
            for entry in group.get("weights", [group]):
                count = int(np.prod(entry["shape"], dtype=np.int64))
                bounds.append((start, start + count))
                start += count
        return cls(bounds, seed)

    def parts(self, encoding: str, header: dict, held: Held, change: Slice) -> list[memoryview]:
        """The update frame in `encoding` (``f32``, ``f16`` or ``q8``) as scatter parts."""
        if encoding == "q8":
            return self.q8_parts(header, held, change)
        dtype = WEIGHT_DTYPES[encoding]
        weights = held.as_dtype(dtype)
        at, k = change.at, change.noise.size
        fresh = (weights[at:at + k].astype(np.float32) + change.noise).astype(dtype)
        prefix = frame_prefix(header, [("weights", "float32" if encoding == "f32" else "float16",
                                        weights.size)])
        whole, item = byte_view(weights), dtype.itemsize
        return [memoryview(prefix), whole[:item * at], byte_view(fresh),
                whole[item * (at + k):], memoryview(_ZERO_PAD[:pad(weights.nbytes)])]

    def q8_slice(self, base: np.ndarray, noise: np.ndarray, at: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(q, scales)`` of a slice at `at` whose trained values are ``base + noise``: int8
        ``q`` of the slice's k values and float32 ``scales`` of every manifest tensor (module
        docstring)."""
        k = base.size
        trained = base + noise
        delta = trained - base
        scales = np.zeros(self.starts.size, dtype="<f4")
        q = np.zeros(k, dtype=np.int8)
        uniform = self.rng.random(k, dtype=np.float32)
        first = int(np.searchsorted(self.ends, at, side="right"))
        last = int(np.searchsorted(self.starts, at + k, side="left"))
        for t in range(first, last):
            lo, hi = max(at, int(self.starts[t])) - at, min(at + k, int(self.ends[t])) - at
            if hi <= lo:
                continue
            part = delta[lo:hi]
            scale = np.float32(np.abs(part).max()) / np.float32(127)
            scales[t] = scale
            if scale > 0:
                q[lo:hi] = np.clip(np.floor(part / scale + uniform[lo:hi]), -127, 127)
        return q, scales

    def q8_parts(self, header: dict, held: Held, change: Slice) -> list[memoryview]:
        size, at = self.size, change.at
        if held.weights.size != size:
            raise ValueError(f"held weights have {held.weights.size} values; the manifest "
                             f"{size}")
        k = change.noise.size
        q, scales = self.q8_slice(held.weights[at:at + k].astype(np.float32), change.noise, at)
        prefix = frame_prefix(header, [("delta_q8", "int8", size),
                                       ("scales", "float32", scales.size)])
        zeros = byte_view(self.zeros)
        return [memoryview(prefix), zeros[:at], byte_view(q), zeros[at + k:],
                memoryview(_ZERO_PAD[:pad(size)]), byte_view(scales),
                memoryview(_ZERO_PAD[:pad(scales.nbytes)])]
