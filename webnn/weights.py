"""The flat weight buffer: one contiguous float32 array per model version.

A `WeightLayout` maps each weight tensor of a model (in TF.js `model.weights` order) to an offset
in the flat buffer. The wire format is the TF.js `weights.bin` layout: float32, little-endian, the
tensors concatenated in manifest order, no header. On little-endian hosts converting to and from
the wire is a view, never a per-tensor copy.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

WIRE_DTYPE = np.dtype("<f4")
"""float32, little-endian: the dtype of TF.js weight files."""

_NATIVE_IS_WIRE = sys.byteorder == "little"


class WeightFormatError(ValueError):
    """A weight buffer does not match the model's layout."""


@dataclass(frozen=True)
class WeightSpec:
    """One weight tensor: its TF.js name (e.g. ``dense_1/kernel``), shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def manifest_entry(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


class WeightLayout:
    """Offsets of every tensor of a model inside one flat float32 buffer."""

    def __init__(self, specs: Iterable[WeightSpec]) -> None:
        self.specs: tuple[WeightSpec, ...] = tuple(specs)
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise WeightFormatError(f"duplicate weight names: {', '.join(duplicates)}")
        for spec in self.specs:
            if spec.dtype != "float32":
                raise WeightFormatError(
                    f"weight {spec.name!r} has dtype {spec.dtype}; only float32 is supported")
        offsets, total = [], 0
        for spec in self.specs:
            offsets.append(total)
            total += spec.size
        self.offsets: tuple[int, ...] = tuple(offsets)
        self.size: int = total

    @property
    def nbytes(self) -> int:
        return self.size * WIRE_DTYPE.itemsize

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WeightLayout) and self.specs == other.specs

    def __hash__(self) -> int:
        return hash(self.specs)

    def __repr__(self) -> str:
        return f"WeightLayout({len(self.specs)} tensors, {self.size} floats)"

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.float32)

    def check(self, buffer: np.ndarray) -> None:
        """Raise `WeightFormatError` unless `buffer` is a flat float32 array of this size."""
        if buffer.dtype != np.float32 or buffer.ndim != 1 or buffer.size != self.size:
            raise WeightFormatError(
                f"expected a flat float32 buffer of {self.size} values, "
                f"got {buffer.dtype} with shape {buffer.shape}"
            )

    def views(self, buffer: np.ndarray) -> dict[str, np.ndarray]:
        """Per-tensor views into `buffer`, reshaped; writing to a view writes to the buffer."""
        self.check(buffer)
        return {
            spec.name: buffer[offset : offset + spec.size].reshape(spec.shape)
            for spec, offset in zip(self.specs, self.offsets, strict=True)
        }

    def from_arrays(self, arrays: Sequence[np.ndarray] | dict[str, np.ndarray]) -> np.ndarray:
        """Pack tensors (in manifest order, or by name) into a new flat buffer; checks shapes."""
        if isinstance(arrays, dict):
            missing = [n for n in self.names if n not in arrays]
            if missing:
                raise WeightFormatError(f"missing weights: {', '.join(missing)}")
            arrays = [arrays[n] for n in self.names]
        if len(arrays) != len(self.specs):
            raise WeightFormatError(f"expected {len(self.specs)} tensors, got {len(arrays)}")
        buffer = self.zeros()
        for spec, view, array in zip(self.specs, self.views(buffer).values(), arrays, strict=True):
            if tuple(np.shape(array)) != spec.shape:
                raise WeightFormatError(f"weight {spec.name!r} has shape "
                                        f"{tuple(np.shape(array))}, expected {spec.shape}")
            view[...] = array
        return buffer

    def from_bytes(self, data: bytes | bytearray | memoryview, *, copy: bool = True) -> np.ndarray:
        """Decode the TF.js `weights.bin` layout into a flat float32 buffer.

        With ``copy=False`` the result is a (possibly read-only) view of `data` on little-endian
        hosts.
        """
        nbytes = memoryview(data).nbytes
        if nbytes != self.nbytes:
            raise WeightFormatError(
                f"weights hold {nbytes} bytes; the model needs {self.nbytes} bytes "
                f"({self.size} float32)"
            )
        wire = np.frombuffer(data, dtype=WIRE_DTYPE)
        if _NATIVE_IS_WIRE:
            native = wire.view(np.float32)
            return native.copy() if copy else native
        return wire.astype(np.float32)

    def to_bytes(self, buffer: np.ndarray) -> memoryview:
        """The TF.js `weights.bin` bytes of `buffer`: a view on little-endian hosts."""
        self.check(buffer)
        if _NATIVE_IS_WIRE:
            return memoryview(np.ascontiguousarray(buffer)).cast("B")  # type: ignore[arg-type]
        return memoryview(buffer.astype(WIRE_DTYPE).tobytes())

    def locate(self, index: int) -> str:
        """Where flat `index` lies, for messages: ``dense_1/kernel[3, 7] (index 199)``."""
        if not 0 <= index < self.size:
            return f"index {index} (outside the {self.size} values)"
        i = bisect_right(self.offsets, index) - 1
        spec = self.specs[i]
        position = np.unravel_index(index - self.offsets[i], spec.shape) if spec.shape else ()
        return f"{spec.name}[{', '.join(str(int(p)) for p in position)}] (index {index})"

    def manifest(self) -> list[dict]:
        """``[{name, shape, dtype}]`` in manifest order."""
        return [spec.manifest_entry() for spec in self.specs]

    def manifest_json(self, path: str = "weights.bin") -> list[dict]:
        """The ``weightsManifest`` of a TF.js ``model.json`` with all weights in one file."""
        return [{"paths": [path], "weights": self.manifest()}]

    @classmethod
    def from_manifest(cls, manifest: Iterable[dict]) -> WeightLayout:
        """Build a layout from a TF.js ``weightsManifest`` (groups) or a flat list of entries."""
        specs: list[WeightSpec] = []
        for entry in manifest:
            entries = entry.get("weights", [entry])
            for w in entries:
                specs.append(WeightSpec(w["name"], tuple(int(d) for d in w["shape"]),
                                        w.get("dtype", "float32")))
        return cls(specs)
