"""The binary frame codec (``application/vnd.webnn.frame``) used for batches and updates.

Layout (all integers little-endian)::

    bytes 0..3   ASCII "WNF1"
    bytes 4..7   uint32 H: byte length of the JSON header
    bytes 8..    H bytes of UTF-8 JSON header, then zero padding to the next multiple of 8
    payload      tensors, each at header.tensors[i].offset (multiple of 8) from the payload start

The header holds ``"tensors": [{"name", "dtype", "shape", "offset", "byteLength"}]`` plus message
fields. Decoding checks every field and bound and raises `FrameError` with code ``bad_frame``
(malformed) or ``truncated`` (a header or tensor extends past the end of the data).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from math import prod

import numpy as np

MAGIC = b"WNF1"
CONTENT_TYPE = "application/vnd.webnn.frame"
ALIGN = 8
MAX_HEADER_BYTES = 1 << 20
DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}


class FrameError(ValueError):
    """A frame that cannot be decoded; `code` is ``bad_frame`` or ``truncated``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Frame:
    """A decoded frame: the JSON header (minus ``tensors``) and the tensors by name (read-only)."""

    header: dict
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def _pad(n: int) -> int:
    return (-n) % ALIGN


def _dtype_name(array: np.ndarray) -> str:
    if array.dtype == np.float32:
        return "float32"
    if array.dtype == np.int32:
        return "int32"
    raise ValueError(f"frames carry float32 or int32 tensors, not {array.dtype}")


def encode_frame(header: dict, tensors: dict[str, np.ndarray]) -> bytes:
    """Encode `header` fields and `tensors` (float32 or int32 arrays) into one frame."""
    entries, chunks, offset = [], [], 0
    for name, array in tensors.items():
        dtype = _dtype_name(array)
        data = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
        entries.append({"name": name, "dtype": dtype, "shape": list(array.shape),
                        "offset": offset, "byteLength": len(data)})
        chunks.append(data + b"\0" * _pad(len(data)))
        offset += len(data) + _pad(len(data))
    head = json.dumps({**header, "tensors": entries}, separators=(",", ":")).encode()
    prefix = MAGIC + struct.pack("<I", len(head)) + head + b"\0" * _pad(8 + len(head))
    return prefix + b"".join(chunks)


def _tensor_entry(entry: object, index: int, payload_size: int) -> tuple[str, np.dtype, tuple, int]:
    where = f"header.tensors[{index}]"
    if not isinstance(entry, dict):
        raise FrameError("bad_frame", f"{where} is not an object")
    name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    offset, length = entry.get("offset"), entry.get("byteLength")
    if not isinstance(name, str):
        raise FrameError("bad_frame", f"{where}.name must be a string")
    if dtype not in DTYPES:
        raise FrameError("bad_frame",
                         f"{where}.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise FrameError("bad_frame", f"{where}.shape must be a list of non-negative integers")
    for key, value in (("offset", offset), ("byteLength", length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FrameError("bad_frame", f"{where}.{key} must be a non-negative integer")
    if offset % ALIGN:
        raise FrameError("bad_frame", f"{where}.offset {offset} is not a multiple of {ALIGN}")
    expected = prod(shape) * DTYPES[dtype].itemsize
    if length != expected:
        raise FrameError(
            "bad_frame",
            f"{where}.byteLength is {length} but shape {shape} of {dtype} needs {expected} bytes",
        )
    if offset + length > payload_size:
        raise FrameError(
            "truncated",
            f"{where} ({name!r}) needs bytes {offset}..{offset + length} of the payload; "
            f"the payload holds {payload_size} bytes",
        )
    return name, DTYPES[dtype], tuple(shape), offset


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Decode a frame; tensors are read-only views into `data`."""
    view = memoryview(data).cast("B")
    if len(view) < 8:
        raise FrameError("truncated", f"a frame needs at least 8 bytes; got {len(view)}")
    if bytes(view[:4]) != MAGIC:
        raise FrameError("bad_frame", f"frame must start with {MAGIC!r}, got {bytes(view[:4])!r}")
    (head_len,) = struct.unpack("<I", view[4:8])
    if head_len > MAX_HEADER_BYTES:
        raise FrameError("bad_frame", f"header length {head_len} exceeds {MAX_HEADER_BYTES} bytes")
    if 8 + head_len > len(view):
        raise FrameError(
            "truncated", f"header claims {head_len} bytes; only {len(view) - 8} follow the prefix"
        )
    try:
        header = json.loads(bytes(view[8 : 8 + head_len]).decode("utf-8"))
    except ValueError as error:  # bad UTF-8, bad JSON, or an integer too long to parse
        raise FrameError("bad_frame", f"header is not valid UTF-8 JSON: {error}") from None
    if not isinstance(header, dict):
        raise FrameError("bad_frame", "header must be a JSON object")
    entries = header.pop("tensors", None)
    if not isinstance(entries, list):
        raise FrameError("bad_frame", "header.tensors must be a list")
    start = 8 + head_len + _pad(8 + head_len)
    payload = view[min(start, len(view)) :]
    frame = Frame(header)
    for index, entry in enumerate(entries):
        name, dtype, shape, offset = _tensor_entry(entry, index, len(payload))
        if name in frame.tensors:
            raise FrameError("bad_frame", f"header.tensors[{index}]: duplicate tensor {name!r}")
        count = prod(shape)
        array = np.frombuffer(payload, dtype=dtype, count=count, offset=offset).reshape(shape)
        frame.tensors[name] = array
    return frame
