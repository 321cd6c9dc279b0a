"""Decoding and checking a submitted update (protocol v1, ``POST api/v1/tasks/{id}/update``).

Pure: bytes in, a float32 buffer and a typed header out, or a `ProtocolError` that names the bad
field (``header.steps``), the byte counts, or the first non-finite value's tensor. Nothing here
touches server state, so a refused update changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from webnn.merge.screening import all_finite, first_non_finite
from webnn.server.errors import ProtocolError, bad_field
from webnn.server.frames import FrameError, decode_frame
from webnn.server.tasks import ROLES
from webnn.weights import WeightLayout


@dataclass(frozen=True)
class UpdateHeader:
    """The JSON header of an update frame.

    `loss`/`accuracy` are None when the client sent null or a non-finite value; `next_role` is the
    role of the follow-up task the client asks for (``"next"``), None for none.
    """

    base_version: int
    steps: int
    loss: float | None = None
    accuracy: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    next_role: str | None = None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite_float(value: object) -> float | None:
    """`value` as a finite float; None for anything else (bools, NaN, Inf, or an integer too
    large for a float, which JSON allows)."""
    if not _is_number(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def decode_update(body: bytes, layout: WeightLayout, *, task_id: str, task_version: int,
                  max_steps: int) -> tuple[np.ndarray, UpdateHeader]:
    """Check an update frame against its task and the model; return a writable copy of weights."""
    try:
        frame = decode_frame(body)
    except FrameError as error:
        raise ProtocolError(400, error.code, str(error)) from None
    raw = frame.header
    base = raw.get("baseVersion")
    if not _is_int(base):
        raise bad_field("header.baseVersion", "required integer is missing or not an integer")
    if base != task_version:
        raise bad_field("header.baseVersion",
                        f"task {task_id} was issued for version {task_version}, got {base}")
    steps = raw.get("steps")
    if not _is_int(steps) or not 1 <= steps <= max_steps:
        raise bad_field("header.steps", f"must be an integer from 1 to {max_steps}, got {steps!r}")
    metrics: dict[str, float | None] = {}
    for key in ("loss", "accuracy"):
        value = raw.get(key)
        if value is not None and not _is_number(value):
            raise bad_field(f"header.{key}", f"must be a number or null, got {value!r}")
        metrics[key] = finite_float(value)
    timings = raw.get("timings", {})
    if not isinstance(timings, dict) or not all(
        (seconds := finite_float(v)) is not None and seconds >= 0 for v in timings.values()
    ):
        raise bad_field("header.timings", "must be an object of finite numbers >= 0 (seconds)")
    follow = raw.get("next", False)
    if follow is not True and follow is not False and follow not in ROLES:
        raise bad_field("header.next", f"must be true, false or one of {list(ROLES)}, "
                        f"got {follow!r}")
    next_role = "any" if follow is True else (follow or None)

    tensor = frame.tensors.get("weights")
    if tensor is None:
        raise ProtocolError(400, "bad_frame", "the frame holds no tensor named 'weights'")
    if tensor.dtype != np.dtype("<f4"):
        raise ProtocolError(400, "bad_frame", f"tensor 'weights' must be float32, "
                            f"got {tensor.dtype}")
    if tensor.nbytes != layout.nbytes:
        raise ProtocolError(400, "wrong_length",
                            f"update holds {tensor.nbytes} bytes of weights; the model needs "
                            f"{layout.nbytes} bytes ({layout.size} float32)")
    weights = tensor.reshape(-1).astype(np.float32, copy=True)
    if not all_finite(weights):
        count, first = first_non_finite(weights)
        raise ProtocolError(400, "not_finite",
                            f"update holds {count} NaN or infinite values (first at "
                            f"{layout.locate(first)})")
    header = UpdateHeader(base_version=base, steps=steps, loss=metrics["loss"],
                          accuracy=metrics["accuracy"],
                          timings={k: float(v) for k, v in timings.items()}, next_role=next_role)
    return weights, header
