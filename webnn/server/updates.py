"""Decoding and checking a submitted update (protocol v1, ``POST api/v1/tasks/{id}/update``).

Pure: bytes in, a float32 view on them and a typed header out, or a `ProtocolError` that names the
bad field (``header.steps``), the shape or byte counts. Nothing is copied: the weights are a view on
the body's (pooled, writable) buffer, and finiteness is checked by the ingest path in one pass
(`ingest.check_weights`); `not_finite_error` words its refusal. Nothing here touches server state,
so a refused update changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from webnn.server.encodings import EncodedUpdate, check_update_tensors
from webnn.server.errors import ProtocolError, bad_field
from webnn.server.frames import FrameError, decode_frame
from webnn.server.tasks import ROLES
from webnn.weights import WeightLayout

MAX_TIMING_SECONDS = 86400.0
"""A timing in an update header is a duration of one task: 0 <= t <= one day."""


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


def decode_update(body: bytes | bytearray | memoryview, layout: WeightLayout, *, task_id: str,
                  task_version: int, max_steps: int, encoding: str = "f32"
                  ) -> tuple[np.ndarray | EncodedUpdate, UpdateHeader]:
    """Check an update frame against its task and the model; return the weights as a flat
    float32 view on `body` (writable when `body` is) or, for the compressed `encoding`s, an
    `EncodedUpdate` of views (see `encodings.check_update_tensors`), and the header. Finiteness
    is not checked here (see the module docstring)."""
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
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= max_steps:
        raise bad_field("header.steps", f"must be an integer from 1 to {max_steps}, got {steps!r}")
    metrics: dict[str, float | None] = {}
    for key in ("loss", "accuracy"):
        value = raw.get(key)
        if value is not None and not _is_number(value):
            raise bad_field(f"header.{key}", f"must be a number or null, got {value!r}")
        metrics[key] = finite_float(value)
    timings = _timings(raw.get("timings", {}))
    follow = raw.get("next", False)
    if follow is not True and follow is not False and follow not in ROLES:
        raise bad_field("header.next", f"must be true, false or one of {list(ROLES)}, "
                        f"got {follow!r}")
    next_role = "any" if follow is True else (follow or None)

    weights = check_update_tensors(frame.tensors, layout, encoding)
    header = UpdateHeader(base_version=base, steps=steps, loss=metrics["loss"],
                          accuracy=metrics["accuracy"], timings=timings, next_role=next_role)
    return weights, header


def _timings(timings: object) -> dict[str, float]:
    """``header.timings``: an object of at most 16 durations, each 0 <= t <= one day (seconds)."""
    if not isinstance(timings, dict) or len(timings) > 16:
        raise bad_field("header.timings", "must be an object of at most 16 durations (seconds)")
    clean: dict[str, float] = {}
    for key, value in timings.items():
        seconds = finite_float(value)
        if seconds is None or not 0 <= seconds <= MAX_TIMING_SECONDS:
            raise bad_field(f"header.timings.{key}",
                            f"must be a finite number of seconds from 0 to "
                            f"{MAX_TIMING_SECONDS:g}, got {value!r}")
        clean[str(key)] = seconds
    return clean


def not_finite_error(count: int, first: int, layout: WeightLayout) -> ProtocolError:
    """The refusal of an update holding `count` NaN/Inf values, the first at index `first`."""
    return ProtocolError(400, "not_finite",
                         f"update holds {count} NaN or infinite values (first at "
                         f"{layout.locate(first)})")
