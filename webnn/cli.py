"""The ``wnn`` command line: one click group; each command lives beside the code it drives."""

from __future__ import annotations

import click

from webnn import __version__
from webnn.compare.commands import compare
from webnn.interop_commands import import_keras_command
from webnn.merge.commands import strategies
from webnn.server.commands import export, serve
from webnn.settings.commands import settings_command
from webnn.spec.commands import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wnn")
def main() -> None:
    """Train neural networks across volunteers' web browsers with asynchronous weight merging."""


for command in (serve, validate, strategies, export, compare, import_keras_command,
                settings_command):
    main.add_command(command)
