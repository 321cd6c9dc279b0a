"""Render a results directory: summary (Markdown, JSON, terminal table), plots (PNG and SVG),
HTML report.

Everything is derived from the files under ``runs/`` (and ``config.json`` for the strategy order,
the target accuracy and the title, ``provenance.json`` for what it ran on), so
``wnn compare --report DIR`` re-renders a finished comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webnn.compare.html_report import render_html
from webnn.compare.plots import write_plots
from webnn.compare.results import read_config_json, read_provenance, read_runs, write_text
from webnn.compare.summary import (
    StrategySummary,
    format_table,
    summarize,
    to_json,
    to_markdown,
    validation_size,
)
from webnn.compare.sweep import speedup_figure, sweep_rows
from webnn.compare.sweep import to_markdown as sweep_markdown


@dataclass(frozen=True)
class Report:
    summaries: list[StrategySummary]
    table: str
    files: list[Path]


def render_report(out_dir: str | Path) -> Report:
    """Write summary.md, summary.json, accuracy_vs_{time,merges}.{png,svg} and report.html."""
    out_dir = Path(out_dir)
    config = read_config_json(out_dir)
    provenance = read_provenance(out_dir)
    runs = read_runs(out_dir)
    order = [s["label"] for s in config.get("strategies", [])]
    sweep = config.get("sweep")
    if sweep:  # each strategy at each client count, in sweep order
        order = [f"{label}@{n}" for label in order for n in sweep["clients"]]
    target = config.get("target_accuracy")
    title = config.get("name") or out_dir.name
    summaries = summarize(runs, target, order)
    validation = validation_size(runs)
    files = [out_dir / "summary.md", out_dir / "summary.json"]
    markdown = to_markdown(summaries, f"Comparison: {title}", provenance, validation)
    table = format_table(summaries, validation)
    images = write_plots(out_dir, runs, order, target, title)
    if sweep and target is not None:
        rows = sweep_rows(runs, target, [s["label"] for s in config.get("strategies", [])])
        scaling = sweep_markdown(rows, target)
        markdown += "\n" + scaling
        table += "\n\n" + scaling
        for fmt in ("png", "svg"):
            name = f"speedup_vs_clients.{fmt}"
            images[name] = speedup_figure(rows, fmt, title)
            (out_dir / name).write_bytes(images[name])
    write_text(files[0], markdown)
    write_text(files[1], to_json(summaries, provenance, validation))
    files += [out_dir / name for name in images]
    html_path = out_dir / "report.html"
    pngs = {name: data for name, data in images.items() if name.endswith(".png")}
    write_text(html_path, render_html(f"Comparison: {title}", config, summaries, runs, pngs,
                                      provenance, validation))
    files.append(html_path)
    return Report(summaries, table, files)
