"""Traffic figures of one served model: accepted update bodies and weights sent, per encoding.

Four tables of counts keyed by encoding (``f32``, ``f16``, ``q8``): ``updates`` and
``updateBytes`` (an accepted update's body, counted once per task, as received), ``weights`` and
``weightBytes`` (each weights answer or follow-up frame's weights, as sent). They are figures,
not state the run depends on: status shows them (`summary`), a checkpoint carries them (`state`,
the ``traffic`` field of ``state.json``) and a restart continues them (`load`).

Status's ``traffic`` block: ``{"updates": {enc: {"count", "bytes", "meanBytes"}}, "weights":
{...}}`` with ``meanBytes = round(bytes / count, 1)``, encodings in sorted order, encodings with
a zero count left out (a scale-out run's front-ends answer the same shape,
`webnn.cluster.admission_share.traffic_summary`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

log = logging.getLogger("webnn.server")

TABLES = ("updates", "updateBytes", "weights", "weightBytes")
"""The checkpointed tables, in ``state.json``'s order."""


class Traffic:
    """The traffic counters of one model; see the module docstring."""

    def __init__(self) -> None:
        self.tables: dict[str, Counter[str]] = {name: Counter() for name in TABLES}

    def record_update(self, encoding: str, nbytes: int) -> None:
        """An accepted update whose body of `nbytes` bytes came in `encoding`."""
        self.tables["updates"][encoding] += 1
        self.tables["updateBytes"][encoding] += nbytes

    def record_weights(self, encoding: str, nbytes: int) -> None:
        """Weights of `nbytes` bytes sent in `encoding`."""
        self.tables["weights"][encoding] += 1
        self.tables["weightBytes"][encoding] += nbytes

    def summary(self) -> dict:
        """Status's ``traffic`` block (module docstring)."""
        def table(counts: Counter[str], sizes: Counter[str]) -> dict:
            return {enc: {"count": n, "bytes": sizes[enc], "meanBytes": round(sizes[enc] / n, 1)}
                    for enc, n in sorted(counts.items()) if n}
        return {"updates": table(self.tables["updates"], self.tables["updateBytes"]),
                "weights": table(self.tables["weights"], self.tables["weightBytes"])}

    def state(self) -> dict[str, dict[str, int]]:
        """The checkpointed counts: ``{table: {encoding: count}}`` for every table."""
        return {name: dict(counts) for name, counts in self.tables.items()}

    def load(self, saved: Any) -> None:
        """Continue the counts of a checkpoint's `state()`, added to the current ones. A
        checkpoint without them (older) leaves every table as it is; a table that is not a
        mapping of encodings to counts >= 0 is left as it is, with a warning naming it."""
        if not isinstance(saved, dict):
            return
        for name, counts in self.tables.items():
            table = saved.get(name)
            if isinstance(table, dict) and all(
                    isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                    and v >= 0 for k, v in table.items()):
                counts.update(table)
            elif table is not None:
                log.warning("checkpoint: traffic.%s is not a table of counts; starting it at 0",
                            name)
