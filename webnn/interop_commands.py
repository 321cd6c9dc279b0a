"""``wnn import-keras`` and ``wnn export --format keras``: Keras models in and out of webnn.

Both need the optional ``tensorflowjs`` package (``pip install 'webnn[keras]'``); without it they
exit with status 1 and say how to install it. The conversions live in `webnn.keras_interop`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from webnn.keras_interop import KerasInteropError, export_keras, import_keras


def settings_block(name: str | None, loss: str | None, optimizer: str | None,
                   learning_rate: float | None, batch_size: int | None,
                   local_steps: int | None) -> dict[str, Any]:
    """The ``"webnn"`` block of the imported ``model.json`` from the command-line options.

    A learning rate without an optimizer gives ``{"learningRate"}`` alone; `import_keras` keeps
    the Keras file's optimizer for it.
    """
    block: dict[str, Any] = {}
    if name is not None:
        block["name"] = name
    if loss is not None:
        block["loss"] = loss
    if optimizer is not None or learning_rate is not None:
        block["optimizer"] = {"type": optimizer} if optimizer is not None else {}
        if learning_rate is not None:
            block["optimizer"]["learningRate"] = learning_rate
    training = {k: v for k, v in (("batchSize", batch_size), ("localSteps", local_steps))
                if v is not None}
    if training:
        block["training"] = training
    return block


@click.command("import-keras")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Model name (default: the Keras model's name).")
@click.option("--loss", help="TF.js loss, e.g. sparseCategoricalCrossentropy (default: the "
                             "Keras file's compiled loss, else one guessed from the last layer).")
@click.option("--optimizer", help="TF.js optimizer: sgd, adam, rmsprop, ... (default: the Keras "
                                  "file's compiled optimizer, else adam).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate of the clients' optimizer.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size of a training task.")
@click.option("--local-steps", type=click.IntRange(min=1),
              help="Training steps a client runs per task.")
@click.option("--overwrite", is_flag=True, help="Replace a model.json already in OUT_DIR.")
def import_keras_command(model: Path, out_dir: Path, name: str | None, loss: str | None,
                         optimizer: str | None, learning_rate: float | None,
                         batch_size: int | None, local_steps: int | None,
                         overwrite: bool) -> None:
    """Convert the Keras model MODEL (.keras or .h5) into a TF.js model in OUT_DIR.

    `wnn serve OUT_DIR/model.json --data ...` then trains it, starting from its weights. Layers
    webnn cannot train are listed by name and nothing is written.
    """
    block = settings_block(name, loss, optimizer, learning_rate, batch_size, local_steps)
    try:
        result = import_keras(model, out_dir, settings=block, overwrite=overwrite)
    except KerasInteropError as exc:
        raise click.ClickException(str(exc)) from exc
    spec = result.spec
    click.echo(spec.compiled.summary())
    click.echo(f"Loss: {spec.loss}; optimizer: {spec.optimizer} (learning rate "
               f"{spec.learning_rate:g}); batch size {spec.training.batch_size}, "
               f"{spec.training.local_steps} local steps per task")
    for path in result.files:
        click.echo(f"wrote {path}")
    click.echo(f"webnn: imported {model} as {result.model_json}; serve it with "
               f"`wnn serve {result.model_json} --data DATA_MODULE`")


def export_keras_file(state_dir: Path, out: Path, overwrite: bool) -> None:
    """``wnn export --format keras``: the run in `state_dir` as the Keras file `out`.

    `out` ends in .h5 (HDF5: Keras 2 and 3 load it) or .keras (Keras v3 archive).
    """
    try:
        result = export_keras(state_dir, out, overwrite=overwrite)
    except KerasInteropError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {result.path}")
    click.echo(f"webnn: exported {state_dir} as a Keras model ({result.layers} layers, "
               f"{result.params} parameters); load it with keras.models.load_model")
