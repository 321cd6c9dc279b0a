"""The Keras-like summary table of a compiled model."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webnn.spec.model import CompiledModel


def shape_text(shape: tuple[int | None, ...]) -> str:
    """``(None, 26, 26, 8)``."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def summary_table(model: CompiledModel) -> str:
    """Rows ``name (Class)  (None, ...)  params`` between rules, then the totals::

        Model: "digits_mlp"
        _________________________________________________________________
         Layer (type)                Output Shape              Param #
        =================================================================
         dense_1 (Dense)             (None, 64)                4160
        ...
        =================================================================
        Total params: 4,810
        Trainable params: 4,810
        Non-trainable params: 0
        _________________________________________________________________
    """
    rows = [(f"{layer.name} ({layer.class_name})", shape_text(layer.output_shape),
             str(layer.params)) for layer in model.layers]
    header = ("Layer (type)", "Output Shape", "Param #")
    widths = [max(len(r[i]) + 2 for r in [header, *rows]) for i in range(3)]
    widths = [max(widths[0], 28), max(widths[1], 26), max(widths[2], 10)]
    width = sum(widths) + 1

    def line(cells: tuple[str, str, str]) -> str:
        return (" " + "".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    return "\n".join([
        f'Model: "{model.name}"',
        "_" * width,
        line(header),
        "=" * width,
        *(line(r) for r in rows),
        "=" * width,
        f"Total params: {model.total_params:,}",
        f"Trainable params: {model.trainable_params:,}",
        f"Non-trainable params: {model.non_trainable_params:,}",
        "_" * width,
    ])
