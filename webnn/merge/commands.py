"""``wnn strategies``: list merge strategies with their parameters and defaults."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from webnn.merge.params import Param
from webnn.merge.registry import StrategyInfo, available_strategies, strategy_info


@click.command()
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def strategies(names: tuple[str, ...], as_json: bool) -> None:
    """List merge strategies (or only NAMES: built-in names, entry points or module:attr).

    Exits with status 1 when a strategy fails to load; the others are still listed.
    """
    infos = [strategy_info(name) for name in names] if names else available_strategies()
    if as_json:
        click.echo(json.dumps({"strategies": [_as_json(info) for info in infos]}, indent=2))
    else:
        click.echo("\n".join(_as_text(info) for info in infos))
    failed = [info for info in infos if info.error is not None]
    for info in failed:
        click.echo(f"error: {info.name}: {info.error}", err=True)
    if failed:
        sys.exit(1)


def _as_json(info: StrategyInfo) -> dict[str, Any]:
    described: dict[str, Any] = (info.strategy.describe() if info.strategy is not None
                                 else {"name": info.name})
    described.update(name=info.name, origin=info.origin, error=info.error)
    return described


def _as_text(info: StrategyInfo) -> str:
    lines = [f"{info.name}  ({info.origin})"]
    if info.strategy is None:
        lines.append(f"    failed: {info.error}")
        return "\n".join(lines)
    cls = info.strategy
    if cls.description:
        lines.append(f"    {cls.description}")
    if cls.needs_base_weights:
        lines.append("    needs the base version's weights")
    if not cls.params:
        lines.append("    parameters: none")
    else:
        lines.append("    parameters:")
        lines.extend(f"      {_param_text(p)}" for p in cls.params)
    return "\n".join(lines)


def _param_text(param: Param) -> str:
    limits = []
    if param.choices is not None:
        limits.append("one of " + ", ".join(str(c) for c in param.choices))
    if param.minimum is not None:
        limits.append(f">= {param.minimum}")
    if param.maximum is not None:
        limits.append(f"<= {param.maximum}")
    extra = f" [{'; '.join(limits)}]" if limits else ""
    return f"{param.name} ({param.type_name}, default {param.default!r}){extra}: {param.help}"
