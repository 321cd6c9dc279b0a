"""Compile normalised layers into a TF.js Sequential topology, a weight layout and summaries.

Layers are checked in order: each kind infers its output shape from its input shape and reports
the problems it sees (with the spec field at fault). Inference stops at a layer whose output cannot
be computed, or at a layer the schema already rejected, since later shapes would be guesses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webnn.spec.casing import pythonic
from webnn.spec.errors import Problem
from webnn.spec.initializers import Initializer, UnitForgetBias
from webnn.spec.layers import KINDS, LayerKind, Shape, WeightDef
from webnn.spec.model import CompiledModel, LayerSummary, WeightInit
from webnn.spec.schema import Parts
from webnn.weights import WeightLayout, WeightSpec

TFJS_LAYERS_VERSION = "tfjs-layers 4.22.0"
"""What TF.js 4.22 writes as ``keras_version`` in a saved topology."""

PathOf = Callable[[Parts], str]

MAX_PARAMS = 250_000_000
"""Largest model accepted: 1 GB of float32 per version. Browsers cannot train more, and the server
holds a few versions at once; a spec beyond it is almost always a typo (``units: 1000000000``)."""


@dataclass
class _Built:
    kind: LayerKind
    output: Shape
    weights: list[WeightDef]


def assign_names(layers: list[dict[str, Any] | None], path_of: PathOf
                 ) -> tuple[list[str], list[Problem]]:
    """Layer names: the user's `name`, else ``<prefix>_<n>`` counting per kind within the spec
    (skipping names the user took). Duplicate user names are problems."""
    problems: list[Problem] = []
    taken: dict[str, int] = {}
    for i, layer in enumerate(layers):
        if layer is not None and isinstance(layer.get("name"), str):
            if layer["name"] in taken:
                problems.append(Problem(path_of(("layers", i, "name")), (
                    f"duplicate layer name {layer['name']!r} (also used by "
                    f"{path_of(('layers', taken[layer['name']]))})")))
            taken.setdefault(layer["name"], i)
    counters: dict[str, int] = {}
    names: list[str] = []
    for i, layer in enumerate(layers):
        if layer is None:
            names.append("")
        elif isinstance(layer.get("name"), str):
            names.append(layer["name"])
        else:
            prefix = KINDS[layer["type"]].prefix
            n = counters.get(prefix, 0) + 1
            while f"{prefix}_{n}" in taken:
                n += 1
            counters[prefix] = n
            names.append(f"{prefix}_{n}")
            taken[names[-1]] = i
    return names, problems


def _init_problem(weight: WeightDef) -> str | None:
    init = weight.init.inner if isinstance(weight.init, UnitForgetBias) else weight.init
    return init.check(weight.shape) if isinstance(init, Initializer) else None


def compile_layers(name: str, input_shape: Shape, layers: list[dict[str, Any] | None],
                   path_of: PathOf
                   ) -> tuple[CompiledModel | None, list[dict[str, Any]], list[Problem]]:
    """Check and compile `layers` on `input_shape`; a None layer (one the schema rejected) stops
    shape inference.

    Returns the compiled model (None if anything is wrong), the normalised layer configs of the
    layers that were checked, and the problems.
    """
    names, problems = assign_names(layers, path_of)
    built: list[_Built] = []
    shape = input_shape
    complete = True
    for i, layer in enumerate(layers):
        if layer is None:
            complete = False
            break
        kind = KINDS[layer["type"]]({**layer, "name": names[i]})
        inferred = kind.infer(shape)
        for field, message in inferred.problems:
            parts: Parts = ("layers", i, field) if field else ("layers", i)
            problems.append(Problem(path_of(parts), message))
        weights: list[WeightDef] = []
        if not inferred.problems:
            weights = kind.weights(shape)
            for weight in weights:
                reason = _init_problem(weight)
                if reason:
                    problems.append(Problem(path_of(("layers", i, weight.field)), reason))
        if inferred.output is None:
            complete = False
            break
        built.append(_Built(kind, inferred.output, weights))
        shape = inferred.output
    normalised = [b.kind.config for b in built]
    total = 0
    for i, b in enumerate(built):
        total += sum(WeightSpec("", w.shape).size for w in b.weights)
        if total > MAX_PARAMS:
            problems.append(Problem(path_of(("layers", i)), (
                f"the model reaches {total:,} parameters at this layer; webnn serves at most "
                f"{MAX_PARAMS:,} ({MAX_PARAMS * 4 // 10**9} GB of float32 per version)")))
            break
    if problems or not complete:
        return None, normalised, problems
    return _assemble(name, input_shape, built), normalised, []


def _assemble(name: str, input_shape: Shape, built: list[_Built]) -> CompiledModel:
    trainable: list[tuple[WeightSpec, WeightInit]] = []
    frozen: list[tuple[WeightSpec, WeightInit]] = []
    summaries: list[LayerSummary] = []
    index = 0
    for b in built:
        for w in b.weights:
            spec = WeightSpec(f"{b.kind.name}/{w.name}", tuple(w.shape))
            entry = (spec, WeightInit(index, w.init))
            (trainable if w.trainable and b.kind.trainable else frozen).append(entry)
            index += 1
        params = sum(WeightSpec("", w.shape).size for w in b.weights)
        trainable_params = sum(WeightSpec("", w.shape).size for w in b.weights
                               if w.trainable and b.kind.trainable)
        summaries.append(LayerSummary(b.kind.name, b.kind.class_name, (None, *b.output), params,
                                      b.kind.type, trainable_params))
    ordered = trainable + frozen
    layout = WeightLayout(spec for spec, _ in ordered)
    total = layout.size
    trainable_total = sum(spec.size for spec, _ in trainable)
    return CompiledModel(
        name=name, topology=topology(name, input_shape, [b.kind for b in built]), layout=layout,
        layers=summaries, input_shape=tuple(input_shape), output_shape=(None, *built[-1].output),
        total_params=total, trainable_params=trainable_total,
        non_trainable_params=total - trainable_total, inits=tuple(init for _, init in ordered))


def topology(name: str, input_shape: Shape, kinds: list[LayerKind]) -> dict[str, Any]:
    """The Sequential ``modelTopology``: one ``{class_name, config}`` per layer, snake_case keys,
    ``batch_input_shape`` and ``dtype`` on the first layer."""
    layers = []
    for i, kind in enumerate(kinds):
        config = {**kind.tfjs_config(), "name": kind.name, "trainable": kind.trainable}
        if i == 0:
            config |= {"batchInputShape": [None, *input_shape], "dtype": "float32"}
        layers.append({"class_name": kind.class_name, "config": pythonic(config)})
    return {"class_name": "Sequential", "config": {"name": name, "layers": layers},
            "keras_version": TFJS_LAYERS_VERSION, "backend": "tensor_flow.js"}
