"""Compressed updates and weights on the wire (docs/protocol.md, "Encodings").

Negotiated once per session at join: the client lists what it can send and receive
(``"encodings": {"update": ["q8", "f16", "f32"], "weights": ["f16", "f32"]}``), the server picks
per its settings (`negotiate`) and answers the chosen pair; ``f32`` needs no offer (every client
speaks it), so a client that offers nothing gets ``f32`` both ways.

Update encodings (the tensors of the update frame):

- ``f32``: ``weights`` float32 ``[P]`` (P = total parameters), the trained weights.
- ``f16``: ``weights`` float16 ``[P]``; widened to float32 on the server.
- ``q8``: the delta ``d = trained - base`` from the task's base weights, per manifest tensor t
  with ``s_t = max|d_t| / 127`` (float32) and ``q = stochastic_round(d / s_t)`` in
  ``[-127, 127]``: tensors ``delta_q8`` int8 ``[P]`` and ``scales`` float32 ``[T]`` (T = manifest
  tensors). ``E[q s_t] = d`` (stochastic rounding: ``floor(x + u)``, ``u ~ U[0, 1)``), so the
  rounding adds no bias that could accumulate over merges. The server reconstructs
  ``w = base + q * s_t`` into a pooled float32 buffer.

Weights encodings (``GET weights/{version}`` and the follow-up frame's ``weights`` tensor):
``f32`` (TF.js ``weights.bin``) or ``f16`` (float16, little-endian, same order).

`check_update_tensors` checks an update frame's tensors against the session's encoding (cheap:
no pass over the values except the scales); `EncodedUpdate.decode_into` does the model-sized work
in the merge thread, chunk by chunk, into a pooled buffer (no other model-sized temporary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from webnn.server.errors import ProtocolError, bad_field
from webnn.weights import WeightLayout

UPDATE_ENCODINGS = ("q8", "f16", "f32")
"""Update encodings, fewest bytes first (``auto`` picks the first the client offers)."""
WEIGHTS_ENCODINGS = ("f16", "f32")
"""Weights encodings, fewest bytes first."""
UPDATE_SETTINGS = ("auto", *UPDATE_ENCODINGS)
WEIGHTS_SETTINGS = ("auto", *WEIGHTS_ENCODINGS)
MAX_OFFER = 16
"""Entries one offered list may hold (unknown names are skipped: a newer client may know more)."""
CHUNK = 1 << 16
"""Values decoded per step (256 KiB of float32 output: stays in cache)."""
WRONG_ENCODING = "wrong_encoding"

_UPDATE_TENSORS = {"f32": "tensor 'weights' float32", "f16": "tensor 'weights' float16",
                   "q8": "tensors 'delta_q8' int8 and 'scales' float32"}


@dataclass(frozen=True)
class Encodings:
    """What one session sends (`update`) and receives (`weights`)."""

    update: str = "f32"
    weights: str = "f32"

    def public(self) -> dict[str, str]:
        return {"update": self.update, "weights": self.weights}


def parse_offer(value: object) -> dict[str, tuple[str, ...]]:
    """A join body's ``encodings`` (absent: nothing offered) as ``{"update": (...), "weights":
    (...)}``. Types are checked (`bad_field` naming ``$.encodings...``); unknown names skipped."""
    if value is None:
        return {"update": (), "weights": ()}
    if not isinstance(value, Mapping):
        raise bad_field("$.encodings", "must be an object like {\"update\": [\"q8\", \"f16\", "
                        "\"f32\"], \"weights\": [\"f16\", \"f32\"]}")
    offer: dict[str, tuple[str, ...]] = {}
    for key, known in (("update", UPDATE_ENCODINGS), ("weights", WEIGHTS_ENCODINGS)):
        names = value.get(key, [])
        if not isinstance(names, list) or len(names) > MAX_OFFER or not all(
                isinstance(n, str) for n in names):
            raise bad_field(f"$.encodings.{key}",
                            f"must be a list of at most {MAX_OFFER} strings (known: "
                            f"{list(known)})")
        offer[key] = tuple(n for n in names if n in known)
    return offer


def _pick(setting: str, offered: tuple[str, ...], order: tuple[str, ...]) -> str:
    if setting == "auto":
        return next((name for name in order if name in offered), "f32")
    return setting if setting in offered else "f32"


def negotiate(offer: Mapping[str, tuple[str, ...]], update_setting: str = "auto",
              weights_setting: str = "auto", *, exact_base: bool = False) -> Encodings:
    """The session's encodings: ``auto`` = the fewest bytes the client offers; a fixed setting
    is used when the client offers it; otherwise (and with no offer) ``f32``.

    `exact_base` (the strategy subtracts the base version's float32 weights): ``f16`` weights
    only go with ``q8`` updates, whose delta the client computes against the very float16 base it
    trained from; an f16 or f32 update would carry the rounding of its base as part of its delta,
    snapping the model to the float16 grid at every step."""
    update = _pick(update_setting, offer.get("update", ()), UPDATE_ENCODINGS)
    weights = _pick(weights_setting, offer.get("weights", ()), WEIGHTS_ENCODINGS)
    if exact_base and weights == "f16" and update != "q8":
        weights = "f32"
    return Encodings(update=update, weights=weights)


@dataclass(frozen=True)
class EncodedUpdate:
    """An update's tensors as sent (views on the pooled body): float16 weights (``f16``) or int8
    deltas with per-tensor scales (``q8``). `decode_into` makes the float32 weights."""

    encoding: str
    values: np.ndarray
    scales: np.ndarray | None = None

    def decode_into(self, out: np.ndarray, layout: WeightLayout,
                    base: np.ndarray | None = None) -> np.ndarray:
        """Write the float32 weights into `out` (flat, P values) and return it: ``f16`` widened;
        ``q8`` as ``base + q * s_t`` per manifest tensor. `CHUNK` values at a time."""
        size = layout.size
        if self.encoding == "f16":
            for start in range(0, size, CHUNK):
                stop = min(start + CHUNK, size)
                np.copyto(out[start:stop], self.values[start:stop])
            return out
        if base is None or self.scales is None:
            raise ValueError("a q8 update needs the task's base weights and scales")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused as not_finite
            for index, offset in enumerate(layout.offsets):
                scale = np.float32(self.scales[index])
                end = offset + layout.specs[index].size
                for start in range(offset, end, CHUNK):
                    stop = min(start + CHUNK, end)
                    part = out[start:stop]
                    np.multiply(self.values[start:stop], scale, out=part, dtype=np.float32)
                    np.add(part, base[start:stop], out=part)
        return out


def _tensor(tensors: Mapping[str, np.ndarray], name: str, dtype: str, count: int,
            what: str) -> np.ndarray:
    """Tensor `name` of `dtype` and shape ``[count]``, or the refusal naming it."""
    tensor = tensors.get(name)
    if tensor is None:
        raise ProtocolError(400, "bad_frame", f"the frame holds no tensor named {name!r}")
    if tensor.dtype != np.dtype(dtype).newbyteorder("<"):  # frames are little-endian
        raise ProtocolError(400, "bad_frame", f"tensor {name!r} must be {dtype}, got "
                            f"{tensor.dtype}")
    needed = count * tensor.dtype.itemsize
    if tensor.nbytes != needed:
        raise ProtocolError(400, "wrong_length",
                            f"update holds {tensor.nbytes} bytes of {name}; the model needs "
                            f"{needed} bytes ({count} {dtype})")
    if tensor.shape != (count,):
        raise ProtocolError(400, "bad_frame", f"tensor {name!r} must have shape [{count}] "
                            f"({what}), got {list(tensor.shape)}")
    return tensor


def _sent_encoding(tensors: Mapping[str, np.ndarray]) -> str:
    """The encoding the tensors look like (for the wrong-encoding message)."""
    if "delta_q8" in tensors or "scales" in tensors:
        return "q8"
    weights = tensors.get("weights")
    if weights is not None and weights.dtype == np.float16:
        return "f16"
    return "f32" if weights is not None else "none"


def check_update_tensors(tensors: Mapping[str, np.ndarray], layout: WeightLayout,
                         encoding: str) -> np.ndarray | EncodedUpdate:
    """Check an update frame's tensors against the session's `encoding`: the float32 weights view
    (``f32``) or an `EncodedUpdate`. Refusals: ``wrong_encoding`` (another encoding than the one
    negotiated at join), ``wrong_length``, ``bad_frame``, ``not_finite`` (a NaN/Inf scale),
    each naming the tensor and byte counts. Reads no model-sized data."""
    sent = _sent_encoding(tensors)
    if sent != encoding and sent != "none":
        raise ProtocolError(400, WRONG_ENCODING,
                            f"this session negotiated update encoding {encoding!r} at join "
                            f"({_UPDATE_TENSORS[encoding]}); the frame holds an {sent!r} update "
                            f"({_UPDATE_TENSORS[sent]}). Join again to negotiate another")
    size = layout.size
    if encoding == "f32":
        weights = _tensor(tensors, "weights", "float32", size, "all the model's parameters, flat")
        return weights.view(np.float32)
    if encoding == "f16":
        return EncodedUpdate("f16", _tensor(tensors, "weights", "float16", size,
                                            "all the model's parameters, flat"))
    delta = _tensor(tensors, "delta_q8", "int8", size, "one per parameter")
    count = len(layout.specs)
    scales = _tensor(tensors, "scales", "float32", count, "one per manifest tensor")
    finite = np.isfinite(scales)
    if not finite.all():
        first = int(np.argmin(finite))
        raise ProtocolError(400, "not_finite",
                            f"tensor 'scales' holds {int(count - finite.sum())} NaN or infinite "
                            f"values (first: scales[{first}], tensor "
                            f"{layout.specs[first].name})")
    if (scales < 0).any():
        first = int(np.argmax(scales < 0))
        raise ProtocolError(400, "bad_frame", f"tensor 'scales' must hold values >= 0 "
                            f"(max|d| / 127); scales[{first}] is {float(scales[first])!r}")
    return EncodedUpdate("q8", delta.view(np.int8), scales.view(np.float32))


def update_bytes(layout: WeightLayout, encoding: str) -> int:
    """The tensor payload of one update in `encoding` (frame prefix and header not counted)."""
    size = layout.size
    if encoding == "q8":
        count = len(layout.specs)
        return size + (-size % 8) + 4 * count
    return size * (2 if encoding == "f16" else 4)


def to_half(weights: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A read-only float16 copy of flat float32 `weights` (round to nearest even; values beyond
    the float16 range become infinite), into `out` when given. Chunked."""
    half = out if out is not None else np.empty(weights.size, dtype="<f2")
    half.flags.writeable = True
    with np.errstate(over="ignore"):
        for start in range(0, weights.size, CHUNK):
            np.copyto(half[start:start + CHUNK], weights[start:start + CHUNK], casting="unsafe")
    half.flags.writeable = False
    return half
