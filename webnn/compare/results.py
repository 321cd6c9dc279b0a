"""The results directory of a comparison: one CSV time series and one JSON record per run.

Layout (``DIR`` is ``--out``)::

    DIR/config.json               the parsed config (labels, order, target accuracy)
    DIR/config.toml               a copy of the config file
    DIR/runs/<label>__seed<k>.csv the run's time series, one row per validation of the model
    DIR/runs/<label>__seed<k>.json the run's record (status, error, counters, churn events)
    DIR/logs/<label>__seed<k>/    worker output
    DIR/summary.{md,json}, DIR/accuracy_vs_{time,merges}.png, DIR/report.html  (see report.py)
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

REQUIRED_COLUMNS = ("time", "version", "steps", "merges", "val_loss", "val_accuracy",
                    "updates_accepted", "updates_rejected", "mean_staleness")
OPTIONAL_COLUMNS = ("worst_class_accuracy",)
"""Columns added later: a CSV written before them reads them as NaN."""
CSV_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


class ResultsError(ValueError):
    """A results directory is missing or holds a file that cannot be read."""


@dataclass(frozen=True)
class SeriesRow:
    """One validation of the model during a run.

    `time` is seconds since the run's server started; `version`, `steps`, `merges`, `val_loss` and
    `val_accuracy` are the server's history entry; `updates_accepted`, `updates_rejected` and
    `mean_staleness` (mean over all accepted updates so far) are the server's counters sampled by
    the runner at that moment (NaN/0 when the server does not report them).
    `worst_class_accuracy` is the history entry's ``worstClassAccuracy`` (the lowest per-class
    accuracy; NaN when the clients sent no per-class counts or the CSV predates the column).
    """

    time: float
    version: int
    steps: int
    merges: int
    val_loss: float
    val_accuracy: float
    updates_accepted: int = 0
    updates_rejected: int = 0
    mean_staleness: float = math.nan
    worst_class_accuracy: float = math.nan


@dataclass
class RunRecord:
    """What happened in one run (one strategy under one seed)."""

    label: str
    strategy: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"  # ok | failed | interrupted
    error: str | None = None
    stopped_by: str | None = None  # seconds | merges | target_accuracy | timeout | ended
    started_at: float = 0.0
    duration: float = 0.0
    worker_restarts: int = 0
    churn_events: int = 0
    final_status: dict[str, Any] = field(default_factory=dict)
    clients: int = 0  # training clients of the run (the swept value in a sweep)

    @property
    def run_id(self) -> str:
        return run_id(self.label, self.seed)


def run_id(label: str, seed: int) -> str:
    return f"{label}__seed{seed}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fmt(value: float | int) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_run(out_dir: Path, record: RunRecord, rows: list[SeriesRow]) -> None:
    """Write a run's CSV then its JSON record (the record's presence marks the run as written)."""
    lines = [",".join(CSV_COLUMNS)]
    lines += [",".join(_fmt(getattr(row, c)) for c in CSV_COLUMNS) for row in rows]
    _atomic_write(out_dir / "runs" / f"{record.run_id}.csv", "\n".join(lines) + "\n")
    _atomic_write(out_dir / "runs" / f"{record.run_id}.json",
                  json.dumps(asdict(record), indent=2, default=str) + "\n")


def read_series(path: Path) -> list[SeriesRow]:
    """Read a run CSV; errors name the file, line and column."""
    types = {f.name: f.type for f in fields(SeriesRow)}
    rows: list[SeriesRow] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ResultsError(f"{path}: missing columns {', '.join(missing)}")
        for line, raw in enumerate(reader, start=2):
            values: dict[str, Any] = {}
            for column in CSV_COLUMNS:
                text = raw.get(column) or ""
                try:
                    if types[column] == "int":
                        values[column] = int(text) if text else 0
                    else:
                        values[column] = float(text) if text else math.nan
                except ValueError:
                    raise ResultsError(
                        f"{path}:{line}: column {column}: not a number: {text!r}") from None
            rows.append(SeriesRow(**values))
    return rows


def read_record(path: Path) -> RunRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(RunRecord)}
        return RunRecord(**{k: v for k, v in data.items() if k in known})
    except (json.JSONDecodeError, TypeError) as exc:
        raise ResultsError(f"{path}: not a run record: {exc}") from None


@dataclass
class Run:
    """A finished run read back from disk."""

    record: RunRecord
    rows: list[SeriesRow]


def read_runs(out_dir: Path) -> list[Run]:
    """Every run of a results directory, in file-name order."""
    runs_dir = Path(out_dir) / "runs"
    if not runs_dir.is_dir():
        raise ResultsError(f"{out_dir}: not a results directory (no runs/ inside)")
    runs = []
    for json_path in sorted(runs_dir.glob("*.json")):
        record = read_record(json_path)
        csv_path = json_path.with_suffix(".csv")
        rows = read_series(csv_path) if csv_path.is_file() else []
        runs.append(Run(record, rows))
    return runs


def read_config_json(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON: {exc}") from None


def read_provenance(out_dir: Path) -> dict[str, Any]:
    """``provenance.json`` of a results directory ({} for results written before it existed)."""
    path = Path(out_dir) / "provenance.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ResultsError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return data


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, text)
