"""What travels through the stream (one accepted update, or a pre-aggregated partial of several)
and the strategy state in the merger's checkpoint, as Redis field values (bytes).

An entry's ``tasks`` lists the task ids it carries: a task id is the update's id, so "merged
exactly once" is checked by counting task ids in the merge log.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from webnn.merge.base import Partial, StrategyState, Update


@dataclass
class StreamEntry:
    """A decoded stream entry: either `update` (raw, with its base version) or `partial`."""

    entry_id: str
    tasks: list[str]
    frontend: str
    update: Update | None = None
    partial: Partial | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def update_fields(tasks: list[str], update: Update, frontend: str) -> list[bytes | str]:
    """Field/value pairs of a raw update (the weights as float32 bytes)."""
    return ["kind", "update", "tasks", ",".join(tasks), "frontend", frontend,
            "client", update.client, "base_version", str(update.base_version),
            "base_steps", str(update.base_steps), "local_steps", str(update.local_steps),
            "examples", str(update.examples), "staleness", str(update.staleness),
            "weights", np.ascontiguousarray(update.weights, dtype="<f4").tobytes()]


def partial_fields(tasks: list[str], partial: Partial, frontend: str) -> list[bytes | str]:
    """Field/value pairs of a partial (its total as float32 bytes)."""
    return ["kind", "partial", "tasks", ",".join(tasks), "frontend", frontend,
            "count", str(partial.count), "weight", repr(float(partial.weight)),
            "max_steps", str(partial.max_steps), "scale", repr(float(partial.scale)),
            "meta", json.dumps(partial.meta),
            "total", np.ascontiguousarray(partial.total, dtype="<f4").tobytes()]


PAYLOAD_FIELDS = ("weights", "total")
"""The model-sized field of an update and of a partial: kept out of the stream entry (`detach`)."""


def detach(fields: list[bytes | str], key: str) -> tuple[list[bytes | str], bytes]:
    """An entry's field/value pairs without its model-sized array, which is stored under `key`
    (a Redis string) instead: the entry names the field (``payload``) and the key
    (``payload_key``). Through Redis's Lua, a model-sized argument costs the server several
    copies (9 ms of its CPU for 4 MB locally, against 3.6 ms for a plain ``SET``), so only the
    small fields go through `scripts.COMMIT`."""
    name, data = fields[-2], fields[-1]
    if name not in PAYLOAD_FIELDS or not isinstance(data, bytes):
        raise ValueError(f"an entry's last field must be one of {PAYLOAD_FIELDS}, got {name!r}")
    return [*fields[:-2], "payload", name, "payload_key", key], data


def payload_key(fields: dict) -> str | None:
    """The key holding an entry's array (`detach`), or None when the entry holds it itself."""
    key = fields.get(b"payload_key", fields.get("payload_key"))
    return None if key is None else _text(key)


def attach(fields: dict, data: bytes) -> dict:
    """An entry's fields with its array back under its own name (`detach`'s inverse)."""
    out = {_text(k): v for k, v in fields.items()}
    out[_text(out.pop("payload"))] = data
    out.pop("payload_key", None)
    return out


def _array(value: bytes | bytearray | memoryview) -> np.ndarray:
    """A float32 array of `value`'s bytes, writable: a view of a writable buffer (a
    `bytearray` from `connection.ArrayReader`: no copy), else a copy (`bytes`)."""
    array = np.frombuffer(value, dtype="<f4")
    return array if array.flags.writeable else array.copy()


def decode_entry(entry_id: bytes | str, fields: dict) -> StreamEntry:
    """A stream entry back as an `Update` or a `Partial`; its array is writable and the
    entry's own (`_array`: a view of a `bytearray` value, which the entry then owns, or a copy
    of `bytes`). A detached entry's array must have been `attach`ed."""
    get = {(_text(k)): v for k, v in fields.items()}
    if "payload_key" in get:
        raise ValueError(f"stream entry {_text(entry_id)}: its array "
                         f"({_text(get['payload_key'])!r}) "
                         "was not attached")
    tasks = [t for t in _text(get["tasks"]).split(",") if t]
    frontend = _text(get.get("frontend", b""))
    if _text(get["kind"]) == "update":
        update = Update(weights=_array(get["weights"]),
                        base_version=int(get["base_version"]), base_steps=int(get["base_steps"]),
                        local_steps=int(get["local_steps"]), staleness=int(get["staleness"]),
                        client=_text(get["client"]), examples=int(get["examples"]))
        return StreamEntry(_text(entry_id), tasks, frontend, update=update)
    partial = Partial(total=_array(get["total"]),
                      count=int(get["count"]), weight=float(get["weight"]),
                      max_steps=int(get["max_steps"]), scale=float(get["scale"]),
                      meta=json.loads(get["meta"]))
    return StreamEntry(_text(entry_id), tasks, frontend, partial=partial)


def state_bytes(state: StrategyState) -> bytes:
    """A strategy's state as ``.npz`` bytes (its meta as JSON in ``__meta__``); no pickles."""
    out = io.BytesIO()
    arrays = dict(state.arrays)
    arrays["__meta__"] = np.frombuffer(json.dumps(state.meta).encode(), dtype=np.uint8)
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def load_state_bytes(data: bytes) -> StrategyState:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: np.array(archive[name]) for name in archive.files if name != "__meta__"}
        meta = json.loads(archive["__meta__"].tobytes()) if "__meta__" in archive.files else {}
    return StrategyState(arrays, meta)


def id_order(entry_id: str) -> tuple[int, int]:
    """A stream id (``ms-seq``) as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
