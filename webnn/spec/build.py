"""Turn a spec document into a `ModelSpec`: schema check, layer compilation, training settings.

`build_spec` works on the native spec format; the TF.js importer converts a ``model.json`` to that
format first and passes a `path_of` that maps every problem back to the original file.
"""

from __future__ import annotations

import re
from typing import Any

from webnn.spec import schema
from webnn.spec.compile import PathOf, compile_layers
from webnn.spec.errors import Problem
from webnn.spec.layers import KINDS
from webnn.spec.model import ModelSpec, ProjectInfo, TrainingConfig

DEFAULT_LEARNING_RATES = {"sgd": 0.01, "momentum": 0.01, "adam": 0.001, "adamax": 0.002,
                          "rmsprop": 0.001, "adagrad": 0.01, "adadelta": 1.0}
"""Learning rate when the spec names only the optimizer (TF.js defaults; 0.01 for sgd/momentum)."""

DEFAULT_OPTIMIZER = "adam"

CLASSIFICATION_LOSSES = frozenset({"sparseCategoricalCrossentropy", "categoricalCrossentropy",
                                   "binaryCrossentropy", "categoricalHinge", "hinge",
                                   "squaredHinge"})
"""Losses whose default metrics are ``["accuracy"]`` (others default to no metrics)."""


def model_name(candidate: str | None) -> str:
    """A valid model name from a file stem or topology name: other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", candidate or "")
    return name if name[:1].isalnum() else "model"


def build_spec(doc: dict[str, Any], default_name: str, path_of: PathOf,
               source: dict[str, Any] | None = None) -> tuple[ModelSpec | None, list[Problem]]:
    """Validate and compile a native spec document; returns the spec or every problem found."""
    findings = schema.check(doc)
    problems = [Problem(path_of(f.parts), f.message) for f in findings]
    broken = {f.parts[0] for f in findings if f.parts}
    layers = doc.get("layers") if isinstance(doc.get("layers"), list) else []
    name = str(doc["name"]) if "name" not in broken and doc.get("name") else default_name

    compiled = None
    normalised: list[dict[str, Any]] = []
    if "inputShape" not in broken and "inputShape" in doc and layers:
        input_shape = tuple(int(d) for d in doc["inputShape"])
        usable = usable_layers(layers, findings)
        compiled, normalised, more = compile_layers(name, input_shape, usable, path_of)
        problems += more

    training = None
    if "training" not in broken:
        training, more = training_config(doc.get("training") or {}, path_of)
        problems += more
    if problems or compiled is None or training is None:
        return None, problems

    loss = doc["loss"]
    optimizer, learning_rate = optimizer_settings(doc.get("optimizer", DEFAULT_OPTIMIZER))
    metrics = doc.get("metrics")
    if metrics is None:
        metrics = ["accuracy"] if loss in CLASSIFICATION_LOSSES else []
    first = normalised[0]["type"]
    return ModelSpec(
        name=name, input_shape=compiled.input_shape, layers=normalised, loss=loss,
        optimizer=optimizer, learning_rate=learning_rate,
        metrics=["accuracy" if m == "acc" else m for m in metrics], training=training,
        compiled=compiled, source=doc if source is None else source,
        input_dtype=doc.get("inputDtype", "int32" if first == "embedding" else "float32"),
        description=doc.get("description", ""),
        project=project_info(doc.get("project"), name, doc.get("description", "")),
    ), []


def project_info(block: dict[str, Any] | None, model: str, description: str
                 ) -> ProjectInfo | None:
    """`ProjectInfo` from a schema-valid ``project`` block (None without one): the name defaults
    to the model's, the description to the spec's; surrounding spaces are dropped."""
    if block is None:
        return None
    return ProjectInfo(name=str(block.get("name", "")).strip() or model,
                       operator=str(block["operator"]).strip(),
                       contact=str(block.get("contact", "")).strip(),
                       description=str(block.get("description", "")).strip() or description.strip())


def usable_layers(layers: list[Any], findings: list[schema.Finding]) -> list[dict[str, Any] | None]:
    """The layers shape inference can check: a layer the schema rejected only for optional fields
    (a misspelt activation, an unknown option) is checked without them, so its shape problems are
    reported too; a layer with a bad type or a bad required field is None (inference stops)."""
    bad: dict[int, set[str] | None] = {}
    for f in findings:
        if len(f.parts) < 2 or f.parts[0] != "layers" or not isinstance(f.parts[1], int):
            continue
        i = f.parts[1]
        if len(f.parts) == 2 or f.parts[2] == "type":
            bad[i] = None
        elif (fields := bad.setdefault(i, set())) is not None:
            fields.add(str(f.parts[2]))
    out: list[dict[str, Any] | None] = []
    for i, layer in enumerate(layers):
        fields = bad.get(i, set())
        if fields is None or not isinstance(layer, dict) or layer.get("type") not in KINDS:
            out.append(None)
            continue
        definition = KINDS[layer["type"]].schema_def
        known = schema.schema()["$defs"][definition]["properties"]
        optional = set(schema.defaults(definition)) | {"name", "trainable"}
        droppable = all(f in optional or f not in known for f in fields)
        out.append({k: v for k, v in layer.items() if k not in fields} if droppable else None)
    return out


def optimizer_settings(value: str | dict[str, Any]) -> tuple[str, float]:
    """``"adam"`` or ``{"type": "adam", "learningRate": 0.005}`` -> (name, learning rate)."""
    if isinstance(value, str):
        return value, DEFAULT_LEARNING_RATES[value]
    name = value["type"]
    return name, float(value.get("learningRate", DEFAULT_LEARNING_RATES[name]))


def training_config(block: dict[str, Any], path_of: PathOf
                    ) -> tuple[TrainingConfig | None, list[Problem]]:
    """`TrainingConfig` from a schema-valid ``training`` block; missing fields take the defaults.

    Without a ``validation`` block validation runs every 20 merges; a ``validation`` block that
    names neither ``everyMerges`` nor ``everySeconds`` is a problem (set one to null explicitly
    to switch that trigger off).
    """
    d = TrainingConfig()
    validation = block.get("validation")
    every_merges, every_seconds = d.validation_every_merges, d.validation_every_seconds
    chunk = d.validation_chunk_size
    if validation is not None:
        if "everyMerges" not in validation and "everySeconds" not in validation:
            return None, [Problem(path_of(("training", "validation")),
                                  "give everyMerges and/or everySeconds (null switches one off)")]
        every_merges = validation.get("everyMerges")
        every_seconds = validation.get("everySeconds")
        chunk = validation.get("chunkSize", chunk)
    return TrainingConfig(
        batch_size=int(block.get("batchSize", d.batch_size)),
        local_steps=int(block.get("localSteps", d.local_steps)),
        validation_every_merges=None if every_merges is None else int(every_merges),
        validation_every_seconds=None if every_seconds is None else float(every_seconds),
        validation_chunk_size=int(chunk),
        seed=int(block.get("seed", d.seed)),
    ), []
