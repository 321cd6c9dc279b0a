"""`wnn compare CONFIG` runs a comparison; `wnn compare --report DIR` re-renders its report."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from webnn.compare.config import ConfigError, load_config
from webnn.compare.provenance import collect_provenance
from webnn.compare.report import render_report
from webnn.compare.results import ResultsError, write_text

T = TypeVar("T")


def _default_out(name: str) -> Path:
    return Path("results") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


async def _run_until_signal(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`; the first SIGINT or SIGTERM cancels it (its clean-up stops workers and the
    server), later ones are ignored so that clean-up can finish."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def stop() -> None:
        for sig in signals:
            loop.add_signal_handler(sig, lambda: None)
        task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, stop)
    try:
        return await work
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def select_seeds(seeds: tuple[int, ...], chosen: str) -> tuple[int, ...]:
    """The seeds named in `chosen` (``"2,4"``), in the config's order; each must be one of
    `seeds` (raises `click.BadParameter` naming the one that is not)."""
    picked: set[int] = set()
    for part in chosen.split(","):
        try:
            seed = int(part.strip())
        except ValueError:
            raise click.BadParameter(f"expected integers separated by commas, got {part!r}",
                                     param_hint="--seeds") from None
        if seed not in seeds:
            raise click.BadParameter(
                f"seed {seed} is not in the config's seeds ({', '.join(map(str, seeds))})",
                param_hint="--seeds")
        picked.add(seed)
    return tuple(s for s in seeds if s in picked)


def _print_report(out_dir: Path) -> None:
    try:
        report = render_report(out_dir)
    except ResultsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.table)
    click.echo("")
    for path in report.files:
        click.echo(f"wrote {path}")


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Results directory (default: results/<config name>-<timestamp>).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Re-render summary, plots and HTML of a finished results directory.")
@click.option("--check", is_flag=True, help="Only validate the config (and load spec and data).")
@click.option("--seeds", "only_seeds", metavar="S[,S...]",
              help="Run only these of the config's seeds (to spread one comparison over several "
                   "processes or machines: put their runs/ files in one directory and render it "
                   "with --report).")
def compare(config: Path | None, out_dir: Path | None, report_dir: Path | None,
            check: bool, only_seeds: str | None) -> None:
    """Compare merge strategies as a TOML CONFIG describes (see experiments/).

    Every strategy runs once per seed against a fresh server with the same clients; results go to
    --out: a CSV per run, summary.md/json, accuracy plots (PNG) and report.html.
    """
    if report_dir is not None:
        if config is not None:
            raise click.UsageError("give either CONFIG or --report DIR, not both")
        if not report_dir.is_dir():
            raise click.ClickException(f"--report: {report_dir} is not a directory")
        _print_report(report_dir)
        return
    if config is None:
        raise click.UsageError("give a CONFIG file to run, or --report DIR to re-render results")
    from webnn.compare.runner import prepare, run_comparison

    try:
        parsed = load_config(config)
        if only_seeds is not None:
            parsed = replace(parsed, seeds=select_seeds(parsed.seeds, only_seeds))
        prepared = prepare(parsed)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        click.echo(f"{config}: OK ({len(parsed.strategies)} strategies x {len(parsed.seeds)} seeds,"
                   f" {parsed.num_clients} clients)")
        return
    out_dir = out_dir or _default_out(parsed.name)
    if (out_dir / "runs").exists():
        raise click.ClickException(f"--out: {out_dir} already holds results; choose another "
                                   "directory (or re-render it with --report)")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "config.json", json.dumps(parsed.to_json(), indent=2) + "\n")
    provenance = collect_provenance(prepared.command.script.parent.parent,
                                    prepared.command.node)
    write_text(out_dir / "provenance.json", json.dumps(provenance, indent=2) + "\n")
    shutil.copyfile(config, out_dir / "config.toml")
    click.echo(f"{parsed.name}: {len(parsed.strategies)} strategies x {len(parsed.seeds)} seeds, "
               f"{parsed.num_clients} clients + 1 evaluator; results in {out_dir}", err=True)
    interrupted = False
    records = []
    try:
        records = asyncio.run(_run_until_signal(run_comparison(parsed, prepared, out_dir)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        click.echo("\ninterrupted: workers and servers stopped; reporting the finished runs",
                   err=True)
    if any((out_dir / "runs").glob("*.json")):
        _print_report(out_dir)
    failed = [r for r in records if r.status != "ok"]
    for record in failed:
        click.echo(f"run {record.run_id} failed: {record.error}", err=True)
    if interrupted:
        sys.exit(130)
    if failed:
        sys.exit(1)
