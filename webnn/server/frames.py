"""The binary frame codec (``application/vnd.webnn.frame``) used for batches and updates.

Layout (all integers little-endian)::

    bytes 0..3   ASCII "WNF1"
    bytes 4..7   uint32 H: byte length of the JSON header
    bytes 8..    H bytes of UTF-8 JSON header, then zero padding to the next multiple of 8
    payload      tensors, each at header.tensors[i].offset (multiple of 8) from the payload start

The header holds ``"tensors": [{"name", "dtype", "shape", "offset", "byteLength"}]`` plus message
fields. Decoding checks the header against the declared schema `TENSOR_SCHEMA` and these bounds:

- header: at most `MAX_HEADER_BYTES` of UTF-8 JSON, an object nested at most `MAX_HEADER_DEPTH`
  levels, at most `MAX_TENSORS` tensors with distinct names of at most `MAX_NAME_CHARS` characters;
- ``dtype``: a string from `DTYPES`; ``shape``: a list of at most `MAX_RANK` integers, each
  ``0 <= d <= MAX_DIM``, whose element count (computed with an early stop, so never a huge
  number) is at most `MAX_ELEMENTS`; ``byteLength`` = element count x item size;
- ``offset``: a multiple of `ALIGN`; tensors do not overlap; nothing follows the last tensor but
  its zero padding to a multiple of `ALIGN` (no trailing bytes).

Violations raise `FrameError` with code ``bad_frame`` (malformed) or ``truncated`` (a header or
tensor extends past the end of the data), with a message naming the field (``header.tensors[0].
shape``) and the byte counts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from webnn.server.wire import JsonInputError, dumps, parse_json

MAGIC = b"WNF1"
CONTENT_TYPE = "application/vnd.webnn.frame"
ALIGN = 8
MAX_HEADER_BYTES = 1 << 20
MAX_HEADER_DEPTH = 32
MAX_TENSORS = 64
MAX_NAME_CHARS = 128
MAX_RANK = 8
MAX_DIM = 1 << 31
MAX_ELEMENTS = 1 << 31
DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"),
                                "float16": np.dtype("<f2"), "int8": np.dtype("i1")}
"""The allowed tensor dtypes: float16 and int8 carry compressed updates and weights
(`webnn.server.encodings`)."""


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


@dataclass(frozen=True)
class TensorEntry:
    """One checked entry of ``header.tensors``."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    byte_length: int

    @property
    def end(self) -> int:
        return self.offset + self.byte_length


# The declared schema of a ``header.tensors[i]`` entry: field -> (JSON type, description).
TENSOR_SCHEMA: dict[str, tuple[type, str]] = {
    "name": (str, f"a string of 1 to {MAX_NAME_CHARS} characters"),
    "dtype": (str, f"one of {sorted(DTYPES)}"),
    "shape": (list, f"a list of at most {MAX_RANK} integers from 0 to {MAX_DIM}"),
    "offset": (int, f"a non-negative integer, a multiple of {ALIGN}"),
    "byteLength": (int, "a non-negative integer: element count x item size"),
}


def _pad(n: int) -> int:
    return (-n) % ALIGN


def _dtype_name(array: np.ndarray) -> str:
    for name, dtype in DTYPES.items():
        if array.dtype == dtype:
            return name
    raise ValueError(f"frames carry {', '.join(DTYPES)} tensors, not {array.dtype}")


def encode_frame(header: dict, tensors: dict[str, np.ndarray]) -> bytes:
    """Encode `header` fields and `tensors` (arrays of a `DTYPES` dtype) into one frame."""
    entries, chunks, offset = [], [], 0
    for name, array in tensors.items():
        dtype = _dtype_name(array)
        data = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
        entries.append({"name": name, "dtype": dtype, "shape": list(array.shape),
                        "offset": offset, "byteLength": len(data)})
        chunks.append(data + b"\0" * _pad(len(data)))
        offset += len(data) + _pad(len(data))
    head = dumps({**header, "tensors": entries}).encode()  # strict JSON, like every answer
    prefix = MAGIC + struct.pack("<I", len(head)) + head + b"\0" * _pad(8 + len(head))
    return prefix + b"".join(chunks)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _element_count(shape: list, where: str) -> int:
    """The product of `shape`, refusing ranks over `MAX_RANK`, dimensions outside 0..`MAX_DIM`
    and products over `MAX_ELEMENTS` (checked after each factor, so it never grows large)."""
    if len(shape) > MAX_RANK:
        raise FrameError("bad_frame", f"{where}.shape has {len(shape)} dimensions; at most "
                         f"{MAX_RANK} are allowed")
    count = 1
    for axis, dim in enumerate(shape):
        if not _is_int(dim) or not 0 <= dim <= MAX_DIM:
            raise FrameError("bad_frame", f"{where}.shape[{axis}] must be an integer from 0 to "
                             f"{MAX_DIM}")
        count *= dim
        if count > MAX_ELEMENTS:
            raise FrameError("bad_frame", f"{where}.shape holds more than {MAX_ELEMENTS} "
                             "elements")
    return count


def _tensor_entry(entry: object, index: int, payload_size: int) -> TensorEntry:
    where = f"header.tensors[{index}]"
    if not isinstance(entry, dict):
        raise FrameError("bad_frame", f"{where} must be an object, got {type(entry).__name__}")
    for key, (kind, description) in TENSOR_SCHEMA.items():
        value = entry.get(key)
        negative = isinstance(value, int) and value < 0
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and negative):
            raise FrameError("bad_frame", f"{where}.{key} must be {description}, "
                             f"got {type(value).__name__}")
    name, dtype_name, shape = entry["name"], entry["dtype"], entry["shape"]
    offset, length = entry["offset"], entry["byteLength"]
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise FrameError("bad_frame", f"{where}.name must be {TENSOR_SCHEMA['name'][1]}")
    dtype = DTYPES.get(dtype_name)
    if dtype is None:
        shown = dtype_name if len(dtype_name) <= 20 else dtype_name[:20] + "..."
        raise FrameError("bad_frame", f"{where}.dtype must be one of {sorted(DTYPES)}, "
                         f"got {shown!r}")
    count = _element_count(shape, where)
    if offset % ALIGN:
        raise FrameError("bad_frame", f"{where}.offset {offset} is not a multiple of {ALIGN}")
    expected = count * dtype.itemsize
    if length != expected:
        raise FrameError(
            "bad_frame",
            f"{where}.byteLength is {length} but shape {shape} of {dtype_name} needs {expected} "
            "bytes",
        )
    if offset + length > payload_size:
        raise FrameError(
            "truncated",
            f"{where} ({name!r}) needs bytes {offset}..{offset + length} of the payload; "
            f"the payload holds {payload_size} bytes",
        )
    return TensorEntry(name, dtype, tuple(shape), offset, length)


def _check_layout(entries: list[TensorEntry], payload_size: int) -> None:
    """No two tensors share a byte; nothing but padding follows the last one."""
    end = 0
    for entry in sorted(entries, key=lambda e: (e.offset, e.end)):
        if entry.byte_length and entry.offset < end:
            raise FrameError("bad_frame", f"tensor {entry.name!r} (bytes {entry.offset}.."
                             f"{entry.end}) overlaps another tensor ending at byte {end}")
        end = max(end, entry.end)
    allowed = end + _pad(end)
    if payload_size > allowed:
        raise FrameError("bad_frame", f"{payload_size - allowed} trailing bytes after the last "
                         f"tensor (the payload holds {payload_size} bytes; the tensors and their "
                         f"padding end at byte {allowed})")


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
        header = parse_json(bytes(view[8 : 8 + head_len]), what="header",
                            max_depth=MAX_HEADER_DEPTH)
    except JsonInputError as error:
        raise FrameError("bad_frame", str(error)) from None
    if not isinstance(header, dict):
        raise FrameError("bad_frame", f"header must be a JSON object, got {type(header).__name__}")
    entries = header.pop("tensors", None)
    if not isinstance(entries, list):
        raise FrameError("bad_frame", "header.tensors must be a list")
    if len(entries) > MAX_TENSORS:
        raise FrameError("bad_frame", f"header.tensors lists {len(entries)} tensors; at most "
                         f"{MAX_TENSORS} are allowed")
    start = 8 + head_len + _pad(8 + head_len)
    payload = view[min(start, len(view)) :]
    checked: list[TensorEntry] = []
    names: set[str] = set()
    for index, raw in enumerate(entries):
        entry = _tensor_entry(raw, index, len(payload))
        if entry.name in names:
            raise FrameError("bad_frame", f"header.tensors[{index}]: duplicate tensor "
                             f"{entry.name!r}")
        names.add(entry.name)
        checked.append(entry)
    _check_layout(checked, len(payload))
    frame = Frame(header)
    for entry in checked:
        count = entry.byte_length // entry.dtype.itemsize
        array = np.frombuffer(payload, dtype=entry.dtype, count=count, offset=entry.offset)
        frame.tensors[entry.name] = array.reshape(entry.shape)
    return frame
