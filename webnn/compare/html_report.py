"""A self-contained HTML report: tables inline, plots embedded as base64 PNG, no external files."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from webnn.compare.results import Run
from webnn.compare.summary import (
    DIFFERENCE_NOTE,
    StrategySummary,
    ValidationSize,
    difference_rows,
    table_rows,
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f2f2f2} td.failed{color:#a00} img{max-width:100%}
pre{background:#f6f6f6;padding:.6rem}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]],
           classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append("<tr>" + "".join(f"<td{cls}>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_html(title: str, config: Mapping[str, Any], summaries: Sequence[StrategySummary],
                runs: Sequence[Run], images: Mapping[str, bytes],
                provenance: Mapping[str, Any] | None = None,
                validation: ValidationSize | None = None) -> str:
    """The report page as one string."""
    header, rows = table_rows(summaries)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if config.get("description"):
        parts.append(f"<p>{html.escape(config['description'])}</p>")
    parts.append("<h2>Summary</h2>" + _table(header, rows))
    diff_header, diff_rows = difference_rows(summaries)
    if diff_rows:
        parts.append("<h2>Paired differences</h2>" + _table(diff_header, diff_rows)
                     + f"<p>{html.escape(DIFFERENCE_NOTE)}</p>")
    if validation is not None:
        parts.append(f"<p>{html.escape(validation.note())}</p>")
    for name, data in images.items():
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(f"<h2>{html.escape(name.removesuffix('.png').replace('_', ' '))}</h2>"
                     f"<img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>")
    run_rows: list[list[str]] = []
    classes: list[str] = []
    for run in runs:
        r = run.record
        last = run.rows[-1] if run.rows else None
        run_rows.append([r.label, str(r.seed), r.status, r.stopped_by or "-",
                         _num(last.val_accuracy) if last else "-",
                         _num(last.worst_class_accuracy) if last else "-",
                         str(last.merges) if last else "-", _num(r.duration, 1),
                         str(r.worker_restarts), str(r.churn_events), r.error or ""])
        classes.append("failed" if r.status != "ok" else "")
    parts.append("<h2>Runs</h2>" + _table(
        ["strategy", "seed", "status", "stopped by", "final acc", "worst-class acc", "merges",
         "seconds",
         "worker restarts", "churn events", "error"], run_rows, classes))
    if config.get("clients"):
        client_rows = [[g.get("label"), g.get("count"), g.get("speed"), g.get("latency_ms"),
                        g.get("backend"), json.dumps(g.get("churn")) if g.get("churn") else "-",
                        (f"{g['attack']} x{g.get('attack_scale')}" if g.get("attack") else "-")]
                       for g in config["clients"]]
        parts.append("<h2>Clients</h2>" + _table(
            ["group", "count", "speed", "latency (ms)", "backend", "churn", "attack"],
            client_rows))
    if provenance:
        parts.append("<h2>Provenance</h2>" + _table(
            ["what", "value"], [[k, str(v)] for k, v in provenance.items()]))
    if config:
        parts.append("<h2>Config</h2><pre>"
                     + html.escape(json.dumps(config, indent=2, default=str)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
