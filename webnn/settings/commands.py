"""``wnn settings``: every setting with its type, default and description (docs/settings.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("settings")
@click.option("--markdown", "fmt", flag_value="markdown", default=True,
              help="The settings reference as Markdown (docs/settings.md) [default].")
@click.option("--json", "fmt", flag_value="json", help="JSON schemas of the settings models.")
@click.option("--check", "check", type=click.Path(dir_okay=False, path_type=Path),
              help="Exit 1 unless this file holds the current Markdown reference.")
def settings_command(fmt: str, check: Path | None) -> None:
    """Print every setting of wnn serve, create_app, strategies and wnn compare."""
    from webnn.settings.reference import markdown, schemas

    if check is not None:
        current = markdown()
        if not check.is_file() or check.read_text(encoding="utf-8") != current:
            raise click.ClickException(f"{check} is not current; write it with "
                                       f"`wnn settings --markdown > {check}`")
        click.echo(f"{check} is current")
        return
    if fmt == "json":
        click.echo(json.dumps(schemas(), indent=2, default=str))
        return
    click.echo(markdown(), nl=False)
