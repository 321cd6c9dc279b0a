"""Accept a TF.js ``model.json`` (or a bare layers-model topology) as a spec.

The Sequential topology is converted to the native spec format (TF.js keys are the spec's field
names in snake_case) and goes through the same checks; every problem points into the original
document (``$.modelTopology.config.layers[1].config.kernel_size``). Training settings come from an
optional ``"webnn"`` block (the spec's own fields), else from TF.js ``trainingConfig``, else
defaults. Weights listed in ``weightsManifest`` become the initial weights when the files exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webnn.spec import schema
from webnn.spec.build import build_spec, model_name
from webnn.spec.casing import to_camel, to_snake
from webnn.spec.errors import Problem, either, json_path, suggest
from webnn.spec.initializers import Initializer
from webnn.spec.layers import BY_CLASS_NAME
from webnn.spec.model import ModelSpec
from webnn.spec.schema import Parts, render
from webnn.spec.tfjs_weights import read_manifest_weights

_BASE_KEYS = {"name", "trainable", "dtype", "batchInputShape", "batchShape", "batchSize",
              "inputShape"}
_NULL_IS_FALSE = {"unitForgetBias", "maskZero"}
_SETTINGS = ("name", "description", "project", "inputDtype", "loss", "optimizer", "metrics",
             "training")
_OPTIMIZERS = {"sgd": "sgd", "adam": "adam", "adamax": "adamax", "rmsprop": "rmsprop",
               "adagrad": "adagrad", "adadelta": "adadelta", "momentum": "momentum"}


def is_tfjs(doc: dict[str, Any]) -> bool:
    """A TF.js ``model.json`` has ``modelTopology``; a bare topology has ``class_name``."""
    return "modelTopology" in doc or "class_name" in doc


def ts_value(value: Any, key: str = "") -> Any:
    """TF.js `convertPythonicToTs`: camelCase keys and string values, names kept verbatim."""
    if isinstance(value, str):
        return value if key in ("name", "class_name", "className") else to_camel(value)
    if isinstance(value, list):
        return [ts_value(v, key) for v in value]
    if isinstance(value, dict):
        return {to_camel(k): ts_value(v, k) for k, v in value.items()}
    return value


@dataclass
class PathMap:
    """Maps paths in the converted spec back to the original ``model.json``."""

    fields: dict[str, str] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    input_offset: int = 0

    def __call__(self, parts: Parts) -> str:
        if not parts:
            return "$"
        head, rest = parts[0], parts[1:]
        if head == "layers" and rest and isinstance(rest[0], int) and rest[0] < len(self.layers):
            return self._layer(self.layers[rest[0]], rest[1:])
        if head == "inputShape" and rest and isinstance(rest[0], int):
            return f"{self.fields.get('inputShape', '$')}[{rest[0] + self.input_offset}]"
        base = self.fields.get(str(head), json_path((head,)))
        return json_path(rest, root=base)

    @staticmethod
    def _layer(base: str, parts: Parts) -> str:
        if not parts:
            return base
        key, rest = str(parts[0]), parts[1:]
        out = f"{base}.config.{to_snake(key)}"
        if key.endswith("Initializer") and rest:
            sub = "class_name" if rest[0] == "type" else f"config.{to_snake(str(rest[0]))}"
            return json_path(rest[1:], root=f"{out}.{sub}")
        return json_path(rest, root=out)


def _convert_layer(entry: Any, path: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        return None, [Problem(path, "must be a layer: an object with class_name and config")]
    kind = BY_CLASS_NAME.get(entry["class_name"])
    if kind is None:
        close = suggest(entry["class_name"], BY_CLASS_NAME)
        hint = f" (did you mean {either(close)}?)" if close else \
            f"; supported: {', '.join(BY_CLASS_NAME)}"
        return None, [Problem(f"{path}.class_name", (
            f"webnn does not support the TF.js layer class {entry['class_name']!r}{hint}"))]
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        return None, [Problem(f"{path}.config", "must be an object of layer options")]
    allowed = schema.schema()["$defs"][kind.schema_def]["properties"]
    layer: dict[str, Any] = {"type": kind.type}
    problems: list[Problem] = []
    for raw_key, raw_value in config.items():
        key, value = to_camel(raw_key), ts_value(raw_value, raw_key)
        where = f"{path}.config.{raw_key}"
        if key in _BASE_KEYS:
            if key == "name":
                layer["name"] = raw_value
            elif key == "trainable" and raw_value is False:
                layer["trainable"] = False
        elif key in allowed and key != "type":
            if value is None:
                if key in _NULL_IS_FALSE:
                    layer[key] = False
                elif key == "strides":
                    layer[key] = None
            elif key.endswith("Initializer") and isinstance(value, dict):
                layer[key] = Initializer.from_tfjs(value)
            elif key == "targetShape" and isinstance(value, list):
                layer[key] = [-1 if d is None else d for d in value]
            else:
                layer[key] = value
        elif key in kind.tfjs_ignored:
            permitted = kind.tfjs_ignored[key]
            if permitted is not None and value not in permitted:
                problems.append(Problem(where, f"webnn does not support {raw_key} = "
                                               f"{render(raw_value)} on {entry['class_name']}"))
        else:
            problems.append(Problem(where, f"webnn does not support the option {raw_key!r} of "
                                           f"{entry['class_name']}"))
    return layer, problems


def _input_shape(config: Any, path: str) -> tuple[Any, str, list[Problem]]:
    if not isinstance(config, dict):
        config = {}
    for key in ("batch_input_shape", "batch_shape", "batchInputShape"):
        shape = config.get(key)
        if isinstance(shape, list) and shape:
            where = f"{path}.config.{key}"
            nulls = [i for i, d in enumerate(shape[1:], start=1) if d is None]
            problems = [Problem(f"{where}[{i}]", "webnn needs a fixed input shape; this dimension "
                                                 "is null") for i in nulls]
            return shape[1:], where, problems
    return None, f"{path}.config", [Problem(f"{path}.config.batch_input_shape", (
        "missing: the first layer must give batch_input_shape (the input shape)"))]


def _training_config(doc: dict[str, Any], keras: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Loss, optimizer and metrics of a TF.js ``trainingConfig`` (or Keras ``training_config``)."""
    where = "$.trainingConfig" if "trainingConfig" in doc else "$.modelTopology.training_config"
    tc = doc.get("trainingConfig", keras)
    if not isinstance(tc, dict):
        return {}, {}
    out: dict[str, Any] = {}
    paths: dict[str, str] = {}
    loss = tc.get("loss")
    if isinstance(loss, dict) and isinstance(loss.get("class_name"), str):
        loss = loss["class_name"][:1].lower() + loss["class_name"][1:]
    if isinstance(loss, str):
        out["loss"], paths["loss"] = to_camel(loss), f"{where}.loss"
    metrics = tc.get("metrics")
    if isinstance(metrics, list) and all(isinstance(m, str) for m in metrics):
        out["metrics"], paths["metrics"] = [to_camel(m) for m in metrics], f"{where}.metrics"
    optimizer = tc.get("optimizer_config")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("class_name"), str):
        name = optimizer["class_name"].lower()
        settings = ts_value(optimizer.get("config") or {})
        if not isinstance(settings, dict):
            settings = {}
        if name == "sgd" and settings.get("momentum"):
            name = "momentum"
        block: dict[str, Any] = {"type": _OPTIMIZERS.get(name, name)}
        rate = settings.get("learningRate", settings.get("lr"))
        if isinstance(rate, int | float):
            block["learningRate"] = rate
        out["optimizer"], paths["optimizer"] = block, f"{where}.optimizer_config"
    return out, paths


def _default_loss(layers: list[dict[str, Any]]) -> str:
    activation = next((layer.get("activation") for layer in reversed(layers)
                       if layer.get("activation")), None)
    if activation == "softmax":
        return "sparseCategoricalCrossentropy"
    if activation == "sigmoid":
        return "binaryCrossentropy"
    return "meanSquaredError"


def convert(doc: dict[str, Any], default_name: str
            ) -> tuple[dict[str, Any] | None, PathMap, list[Problem]]:
    """The native spec equivalent of a TF.js ``model.json``, its path map, and the problems
    found while converting."""
    paths = PathMap()
    base, topology, keras_training = "$", doc, None
    if "modelTopology" in doc:
        base, topology = "$.modelTopology", doc["modelTopology"]
        if isinstance(topology, dict) and "model_config" in topology:
            keras_training = topology.get("training_config")
            base, topology = f"{base}.model_config", topology["model_config"]
    if not isinstance(topology, dict) or not isinstance(topology.get("class_name"), str):
        return None, paths, [Problem(base, "must be a TF.js layers-model topology: an object "
                                           "with class_name and config")]
    if topology["class_name"] != "Sequential":
        return None, paths, [Problem(f"{base}.class_name", (
            f"webnn supports Sequential models only; this topology is {topology['class_name']!r}"))]
    config = topology.get("config")
    entries, list_path = (config.get("layers"), f"{base}.config.layers") \
        if isinstance(config, dict) else (config, f"{base}.config")
    if not isinstance(entries, list) or not entries:
        return None, paths, [Problem(list_path, "must be a non-empty list of layers")]

    problems: list[Problem] = []
    layers: list[dict[str, Any]] = []
    input_shape, input_path = None, None
    for j, entry in enumerate(entries):
        path = f"{list_path}[{j}]"
        if j == 0 and isinstance(entry, dict) and entry.get("class_name") == "InputLayer":
            input_shape, input_path, more = _input_shape(entry.get("config") or {}, path)
            problems += more
            continue
        if input_path is None:
            input_shape, input_path, more = _input_shape(
                entry.get("config") or {} if isinstance(entry, dict) else {}, path)
            problems += more
        layer, more = _convert_layer(entry, path)
        problems += more
        if layer is not None:
            layers.append(layer)
            paths.layers.append(path)
    paths.fields["inputShape"], paths.input_offset = input_path or list_path, 1
    paths.fields["layers"] = list_path

    spec: dict[str, Any] = {"inputShape": input_shape, "layers": layers}
    settings, setting_paths = _training_config(doc, keras_training)
    block = doc.get("webnn", {})
    if not isinstance(block, dict):
        problems.append(Problem("$.webnn", "must be an object with the spec's training settings"))
        block = {}
    for finding in schema.check(block, "trainingSettings"):
        problems.append(Problem(json_path(finding.parts, root="$.webnn"), finding.message))
    for key in _SETTINGS:
        if key in block:
            settings[key], setting_paths[key] = block[key], f"$.webnn.{key}"
    paths.fields.update(setting_paths)
    spec.update(settings)
    if "loss" not in spec:
        spec["loss"] = _default_loss(layers)
    if "name" not in spec:
        topology_name = config.get("name") if isinstance(config, dict) else None
        spec["name"] = model_name(topology_name) if isinstance(topology_name, str) \
            and topology_name else default_name
    if problems or input_shape is None:
        return None, paths, problems
    return spec, paths, problems


def load(doc: dict[str, Any], default_name: str, base_dir: Path | None
         ) -> tuple[ModelSpec | None, list[Problem]]:
    """Convert, validate and compile a TF.js ``model.json``; load its weights if present."""
    spec_doc, paths, problems = convert(doc, default_name)
    if spec_doc is None:
        return None, problems
    spec, more = build_spec(spec_doc, default_name, paths, source=doc)
    problems = list(dict.fromkeys(problems + more))
    if spec is None or problems:
        return None, problems
    manifest = doc.get("weightsManifest")
    if manifest is not None:
        weights, more = read_manifest_weights(manifest, spec.compiled.layout, base_dir)
        if more:
            return None, more
        spec.compiled.loaded_weights = weights
    return spec, []
