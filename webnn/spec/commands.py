"""``wnn validate SPEC``: every problem with its JSON path (exit 1), or the summary (exit 0)."""

from __future__ import annotations

import click

from webnn.spec.loader import load_with_problems
from webnn.spec.model import ModelSpec


def training_text(spec: ModelSpec) -> str:
    """The spec's input, loss, optimizer and training settings, one topic per line."""
    t = spec.training
    triggers = [f"every {t.validation_every_merges} merges" if t.validation_every_merges else "",
                f"every {t.validation_every_seconds:g} s" if t.validation_every_seconds else ""]
    when = " and ".join(x for x in triggers if x) or "never"
    return "\n".join([
        f"Input: {list(spec.input_shape)} {spec.input_dtype}",
        f"Loss: {spec.loss}; optimizer: {spec.optimizer} (learning rate {spec.learning_rate:g}); "
        f"metrics: {', '.join(spec.metrics) or 'none'}",
        f"Training: batch size {t.batch_size}, {t.local_steps} local steps per task, seed {t.seed}",
        f"Validation: {when}, chunks of {t.validation_chunk_size}",
    ])


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def validate(spec: str) -> None:
    """Check the model spec SPEC (a spec JSON or a TF.js model.json).

    Prints every problem with the JSON path of the bad field and exits with status 1, or prints a
    summary of the model (layers, output shapes, parameter counts, training settings).
    """
    loaded, problems = load_with_problems(spec)
    if problems or loaded is None:
        count = len(problems)
        click.echo(f"{spec}: {count} problem{'s' if count != 1 else ''}")
        for problem in problems:
            click.echo(f"  {problem.path}: {problem.message}")
        raise SystemExit(1)
    click.echo(loaded.compiled.summary())
    click.echo(training_text(loaded))
    click.echo(f"{spec}: valid")
