"""The follow-up frame: an update's answer carrying the next task's weights and batch, assembled
from buffers that already exist.

The frame (layout in `frames.py`) is written as four pieces, never concatenated: the prefix
(magic, header length, JSON header, padding), the version's snapshot bytes (tensor ``weights``:
float32, or the snapshot's float16 copy for a session with ``f16`` weights),
padding to 8 bytes, and the batch frame's payload (tensors ``x``, ``y`` at their offsets shifted
by the weights' padded length). The header is the update answer plus ``batch`` (the batch frame's
header fields) and the tensor table. Nothing model-sized is encoded, decoded or copied.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from webnn.server.frames import ALIGN, MAGIC


def _pad(n: int) -> int:
    return (-n) % ALIGN


@dataclass(frozen=True)
class BatchFrame:
    """A batch frame split into its header fields, tensor table and payload (a view)."""

    header: dict
    tensors: list[dict]
    payload: memoryview


def split_frame(frame: bytes) -> BatchFrame:
    """Split a frame this server encoded (trusted: no checks beyond the layout)."""
    view = memoryview(frame)
    (head_len,) = struct.unpack("<I", view[4:8])
    header = json.loads(bytes(view[8:8 + head_len]))
    tensors = header.pop("tensors")
    start = 8 + head_len + _pad(8 + head_len)
    return BatchFrame(header, tensors, view[start:])


WEIGHT_DTYPES = {"f32": ("float32", 4), "f16": ("float16", 2)}
"""The ``weights`` tensor's dtype and item size per weights encoding."""


def follow_up_pieces(answer: dict, weights: memoryview, batch: BatchFrame,
                     encoding: str = "f32") -> list[bytes | memoryview]:
    """The pieces of the follow-up frame, in order; their lengths sum to the frame's length.
    `weights` are the version's wire bytes in the session's weights `encoding`."""
    size = len(weights)
    shift = size + _pad(size)
    dtype, itemsize = WEIGHT_DTYPES[encoding]
    tensors = [{"name": "weights", "dtype": dtype, "shape": [size // itemsize], "offset": 0,
                "byteLength": size}]
    tensors += [{**entry, "offset": entry["offset"] + shift} for entry in batch.tensors]
    head = json.dumps({**answer, "batch": batch.header, "tensors": tensors},
                      separators=(",", ":"), allow_nan=False).encode()
    prefix = MAGIC + struct.pack("<I", len(head)) + head + b"\0" * _pad(8 + len(head))
    return [prefix, weights, b"\0" * _pad(size), batch.payload]
