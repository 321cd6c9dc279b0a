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
from webnn.compare.summary import StrategySummary, format_table, summarize, to_json, to_markdown


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
    target = config.get("target_accuracy")
    title = config.get("name") or out_dir.name
    summaries = summarize(runs, target, order)
    files = [out_dir / "summary.md", out_dir / "summary.json"]
    write_text(files[0], to_markdown(summaries, f"Comparison: {title}", provenance))
    write_text(files[1], to_json(summaries, provenance))
    images = write_plots(out_dir, runs, order, target, title)
    files += [out_dir / name for name in images]
    html_path = out_dir / "report.html"
    pngs = {name: data for name, data in images.items() if name.endswith(".png")}
    write_text(html_path, render_html(f"Comparison: {title}", config, summaries, runs, pngs,
                                      provenance))
    files.append(html_path)
    return Report(summaries, format_table(summaries), files)
