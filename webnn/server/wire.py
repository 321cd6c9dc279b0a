"""JSON on the wire: the one bounded parser for what clients send and the one strict serialiser for
what the server answers.

In: `parse_json(data, what=..., max_depth=...)` decodes UTF-8 JSON after checking, without
recursion, that no array or object is nested more than `max_depth` levels deep (Python's decoder
recurses, so thousands of ``[`` would otherwise raise `RecursionError`, which is not a parse error).
Every failure is a `JsonInputError` whose message names what was wrong and where.

Out: `dumps(payload)` / `json_response(payload)` serialise with ``allow_nan=False`` after
`finite(payload)` has replaced every non-finite float anywhere in it (nested dicts, lists, tuples)
with ``null``; ``Infinity`` and ``NaN`` are not JSON, and a browser's ``JSON.parse`` throws on them.
Non-finite figures can only come from derived sums (a session's compute seconds, say); inputs are
bounded at the door, and this is the last line of defence.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from aiohttp import web

PROTOCOL_VERSION = 1
MAX_DEPTH = 32
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


class JsonInputError(ValueError):
    """Bytes that are not acceptable JSON: bad UTF-8, bad syntax, or nested too deeply."""


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in JSON text `data`, in linear time and without
    recursion. A ``"`` delimits a string unless an odd run of backslashes precedes it; brackets
    count only outside strings; depth = max over the prefix sums of (+1 per ``[``/``{``, -1 per
    ``]``/``}``). For malformed text it bounds what a parser reaches before its first error."""
    codes = np.frombuffer(data, dtype=np.uint8)
    if not codes.size:
        return 0
    wide = np.int64 if codes.size >= 2**31 else np.int32  # 4 bytes per byte of text, not 8
    index = np.arange(codes.size, dtype=wide)
    last_plain = np.maximum.accumulate(np.where(codes == _BACKSLASH, wide(-1), index))
    run_before = np.zeros(codes.size, dtype=wide)
    run_before[1:] = index[:-1] - last_plain[:-1]  # backslashes right before each byte
    delimiter = (codes == _QUOTE) & (run_before % 2 == 0)
    outside = np.cumsum(delimiter, dtype=wide) % 2 == 0
    steps = (np.isin(codes, _OPEN) & outside).astype(wide)
    steps -= np.isin(codes, _CLOSE) & outside
    return int(np.cumsum(steps, dtype=wide).max(initial=0))


def parse_json(data: bytes, *, what: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON `data` (`what` names it in messages); `JsonInputError` on any failure.

    The depth can exceed `max_depth` only if the text holds more than `max_depth` opening
    brackets; counting them (two `bytes.count` calls, microseconds) skips the exact pass
    (`nesting_depth`, about 0.6 ms for a typical request) for nearly every body."""
    data = bytes(data)
    opening = data.count(b"[") + data.count(b"{")
    depth = 0 if opening <= max_depth else nesting_depth(data)
    if depth > max_depth:
        raise JsonInputError(f"{what} nests arrays/objects {depth} levels deep; the limit is "
                             f"{max_depth}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonInputError(f"{what} is not valid UTF-8: {error}") from None
    try:
        return json.loads(text)
    except RecursionError:  # unreachable after the depth check; kept as a guard
        raise JsonInputError(f"{what} nests too deeply to parse") from None
    except ValueError as error:  # bad JSON, or an integer too long to convert
        raise JsonInputError(f"{what} is not valid JSON: {error}") from None


def finite(value: Any) -> Any:
    """`value` with every non-finite float (at any depth) replaced by None; numpy scalars become
    Python numbers. Iterative, so a deep payload cannot exhaust the stack."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, item = stack.pop()
        if isinstance(item, float | np.floating):
            parent[key] = float(item) if math.isfinite(item) else None
        elif isinstance(item, np.integer | np.bool_):
            parent[key] = item.item()
        elif isinstance(item, dict):
            copy = dict(item)
            parent[key] = copy
            stack.extend((copy, k, v) for k, v in copy.items())
        elif isinstance(item, list | tuple):
            items = list(item)
            parent[key] = items
            stack.extend((items, i, v) for i, v in enumerate(items))
    return root[0]


def dumps(payload: Any) -> str:
    """Strict, compact JSON of `payload` (non-finite floats become null; never NaN/Infinity)."""
    return json.dumps(finite(payload), allow_nan=False, separators=(",", ":"))


def json_response(payload: dict, status: int = 200, headers: dict[str, str] | None = None, *,
                  envelope: bool = True) -> web.Response:
    """The one way the server answers JSON: ``{"protocol": 1, **payload}`` (`envelope=False` for
    documents with a fixed format, such as an exported TF.js ``model.json``)."""
    body = {"protocol": PROTOCOL_VERSION, **payload} if envelope else payload
    return web.Response(text=dumps(body), status=status, headers=headers,
                        content_type="application/json")
