"""Keras models in and out of webnn through the optional `tensorflowjs` converters.

    import_keras("model.keras", "pretrained/")      # -> pretrained/model.json + weight shards
    export_keras("state/digits", "trained.h5")      # the run's current model as a Keras file

Import converts a Keras file (``.keras`` from Keras 3, ``.h5``/``.hdf5`` from Keras 2 / tf_keras)
into a TF.js layers-model artifact with ``tensorflowjs.converters``; `wnn serve` accepts its
``model.json`` as a spec and starts from its weights. The artifact is written only after webnn's
spec loader accepted it: every layer it cannot train is reported by name and nothing is written.
Export writes the run's checkpoint as a TF.js artifact (`webnn.server.export.export_state_dir`) and
loads it back with ``tensorflowjs.converters.load_keras_model``, so the Keras model holds the
float32 weights the server held, bit for bit.

`tensorflowjs` (TensorFlow, JAX and more, about 3 GB) is imported only inside these functions; the
core never needs it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

INSTALL_HINT = "pip install 'webnn[keras]'"
IMPORT_SUFFIXES = (".keras", ".h5", ".hdf5")
EXPORT_SUFFIXES = (".h5", ".keras")


class KerasInteropError(Exception):
    """A Keras import or export that cannot be done; the message says what and where."""


class MissingExtraError(KerasInteropError):
    """The optional `tensorflowjs` package is not installed (or does not import)."""


@dataclass(frozen=True)
class LayerProblem:
    """Why webnn cannot train one layer (`layer` is None for a model-wide problem)."""

    layer: str | None
    class_name: str
    message: str

    def __str__(self) -> str:
        if self.layer is None:
            return f"model: {self.message}"
        return f"layer {self.layer!r} ({self.class_name}): {self.message}"


class UnsupportedModelError(KerasInteropError):
    """A Keras model webnn cannot train; `problems` names every offending layer."""

    def __init__(self, source: Path, problems: list[LayerProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: webnn cannot train this model "
                         f"({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n{lines}")


@dataclass(frozen=True)
class ImportResult:
    """An imported model: the artifact's files and the spec `wnn serve` will build from it."""

    model_json: Path
    files: tuple[Path, ...]
    spec: Any  # webnn.spec.ModelSpec


@dataclass(frozen=True)
class ExportResult:
    """An exported Keras model file and what it holds."""

    path: Path
    layers: int
    params: int


def converters() -> ModuleType:
    """``tensorflowjs.converters``, or `MissingExtraError` saying how to install it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up log lines
    # tensorflow_decision_forests (a tensorflowjs dependency) imports IPython to show an advert
    # when sys.stdout is not a console or a file (pytest's capture, a notebook) and fails without.
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    try:
        return importlib.import_module("tensorflowjs.converters")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "tensorflowjs":
            raise MissingExtraError(
                "Keras import/export needs the optional tensorflowjs package (TensorFlow, JAX "
                f"and more, about 3 GB), which is not installed: {INSTALL_HINT}") from exc
        raise MissingExtraError(_broken_install(exc)) from exc
    except Exception as exc:  # a broken install fails in many ways (protobuf, numpy ABI, ...)
        raise MissingExtraError(_broken_install(exc)) from exc


def _broken_install(exc: BaseException) -> str:
    return (f"the tensorflowjs package is installed but does not import "
            f"({type(exc).__name__}: {exc}); reinstall the pinned versions: "
            f"{INSTALL_HINT} --force-reinstall")


# ---------------------------------------------------------------------------------------------
# import


def import_keras(source: str | Path, out_dir: str | Path, *,
                 settings: dict[str, Any] | None = None,
                 overwrite: bool = False) -> ImportResult:
    """Convert the Keras model file `source` into a TF.js artifact in `out_dir`.

    `settings` become the ``"webnn"`` block of ``model.json`` (the spec's ``name``, ``loss``,
    ``optimizer``, ``metrics``, ``training``), overriding what the Keras file's compile settings
    say. Raises `UnsupportedModelError` naming every layer webnn cannot train, and
    `KerasInteropError` for a missing or unreadable file or an occupied `out_dir`; in every error
    case `out_dir` is left as it was.
    """
    source, out_dir = Path(source), Path(out_dir)
    _check_source(source)
    _check_out_dir(out_dir, overwrite)
    tfjs = converters()
    with _scratch_dir(out_dir) as work:
        artifact = work / "artifact"
        _convert(tfjs, source, artifact, work)
        model_json = artifact / "model.json"
        document = json.loads(model_json.read_text(encoding="utf-8"))
        clean_document(document)
        if settings:
            document["webnn"] = {**document.get("webnn", {}),
                                 **_complete_settings(document, settings, artifact)}
        model_json.write_text(json.dumps(document), encoding="utf-8")
        spec = _check_spec(document, artifact, source)
        files = _install(artifact, out_dir)
    return ImportResult(model_json=out_dir / "model.json", files=files, spec=spec)


def _complete_settings(document: dict[str, Any], settings: dict[str, Any], artifact: Path
                       ) -> dict[str, Any]:
    """`settings` with an optimizer given as ``{"learningRate"}`` alone completed by the type
    the document already implies (its Keras compile settings, else webnn's default)."""
    optimizer = settings.get("optimizer")
    if not isinstance(optimizer, dict) or "type" in optimizer:
        return settings
    from webnn.spec import SpecError, load_spec
    from webnn.spec.build import DEFAULT_OPTIMIZER

    try:
        kind = load_spec(document, base_dir=artifact).optimizer
    except SpecError:  # reported in full once the settings are in
        kind = DEFAULT_OPTIMIZER
    return {**settings, "optimizer": {"type": kind, **optimizer}}


def _check_source(source: Path) -> None:
    if not source.exists():
        raise KerasInteropError(f"{source}: no such file")
    if not source.is_file():
        raise KerasInteropError(f"{source}: not a file (give a .keras or .h5 model file)")
    if source.suffix.lower() not in IMPORT_SUFFIXES:
        raise KerasInteropError(
            f"{source}: unknown model file type {source.suffix or '(no suffix)'!r}; expected a "
            "Keras model saved as .keras (Keras 3) or .h5/.hdf5 (HDF5)")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise KerasInteropError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and (out_dir / "model.json").exists() and not overwrite:
        raise KerasInteropError(f"{out_dir}: already holds a model.json (use --overwrite to "
                                "replace it)")


@contextmanager
def _scratch_dir(target: Path) -> Iterator[Path]:
    """A temporary directory in the nearest existing ancestor of `target`: on its file system (so
    files move there by rename), and creating no directory that would outlive a failure."""
    near = target.absolute().parent
    while not near.is_dir():
        near = near.parent
    path = Path(tempfile.mkdtemp(prefix=".wnn-keras-", dir=near))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _convert(tfjs: ModuleType, source: Path, artifact: Path, work: Path) -> None:
    """Write model.json + weight shards of `source` into `artifact`.

    An HDF5 file goes straight through the converter. A Keras 3 ``.keras`` file is loaded with
    Keras and saved as HDF5 in `work` first: the converter's own ``.keras`` path unpacks the
    archive beside the user's file and names weights by position (``dense/vars/0``), which no
    topology can be matched against.
    """
    h5 = source
    if source.suffix.lower() == ".keras":
        h5 = work / "model.h5"
        model = _load_keras3(source)
        try:
            with _quiet_absl():  # "HDF5 is a legacy format": it is the one the converter reads
                model.save(h5)
        except Exception as exc:
            raise KerasInteropError(f"{source}: Keras cannot save this model as HDF5 for the "
                                    f"TF.js converter: {exc}") from exc
    try:
        # The converter prints a false "likely a weight only file" for Keras 3 files.
        with contextlib.redirect_stdout(io.StringIO()):
            tfjs.converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(
                str(h5), output_dir=str(artifact))
    except Exception as exc:
        raise KerasInteropError(f"{source}: the tensorflowjs converter failed: "
                                f"{type(exc).__name__}: {exc}") from exc
    if not (artifact / "model.json").is_file():
        raise KerasInteropError(f"{source}: holds weights only, no model topology; save the "
                                "whole model (model.save), not model.save_weights")


@contextmanager
def _quiet_absl() -> Iterator[None]:
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_keras3(source: Path) -> Any:
    import keras  # installed with TensorFlow >= 2.16, which the extra pins

    try:
        return keras.models.load_model(source, compile=True)
    except Exception as exc:
        raise KerasInteropError(f"{source}: Keras cannot load this file: "
                                f"{type(exc).__name__}: {exc}") from exc


_KERAS3_ENTRY_KEYS = frozenset({"module", "registered_name", "build_config", "compile_config"})
_KERAS_NO_OPS: dict[str, tuple[Any, ...]] = {
    "quantization_config": (None,), "lora_rank": (None, 0), "lora_alpha": (None,),
    "input_axes": (None,), "output_axes": (None,), "synchronized": (False,), "groups": (1,),
    "data_format": ("channels_last",), "keepdims": (False,), "seed": (None,),
}
"""Keras config keys TF.js lacks (or ignores), with the values that leave the layer as TF.js
builds it (TF.js is channels-last, ungrouped, unseeded); any other value stays in and webnn's
spec loader reports it against the layer."""


def clean_document(document: dict[str, Any]) -> None:
    """Make a converter-written Keras 3 ``model.json`` read like a TF.js one, in place.

    Keras 3 wraps classes as ``{"module", "class_name", "config", "registered_name"}``, stores
    dtypes as ``DTypePolicy`` objects, adds options TF.js lacks (`_KERAS_NO_OPS`) and prefixes
    HDF5 weight names with the model's name (``model/dense/kernel``). TF.js (and webnn) read
    ``{"class_name", "config"}``, a dtype string and ``dense/kernel``. No value that changes the
    model is dropped.
    """

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        if value.get("class_name") == "DTypePolicy" and isinstance(value.get("config"), dict):
            return value["config"].get("name", "float32")
        return {k: walk(v) for k, v in value.items() if k not in _KERAS3_ENTRY_KEYS
                and not (k in _KERAS_NO_OPS and v in _KERAS_NO_OPS[k])}

    topology = document.get("modelTopology")
    if not isinstance(topology, dict) or not isinstance(topology.get("model_config"), dict):
        return
    topology["model_config"] = walk(topology["model_config"])
    config = topology["model_config"].get("config")
    model = config.get("name") if isinstance(config, dict) else None
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(model, str) or not isinstance(layers, list):
        return
    names = {(entry.get("config") or {}).get("name") for entry in layers if isinstance(entry, dict)}
    prefix = f"{model}/"
    for group in document.get("weightsManifest") or []:
        for weight in group.get("weights", []) if isinstance(group, dict) else []:
            name = weight.get("name") if isinstance(weight, dict) else None
            if isinstance(name, str) and name.startswith(prefix) \
                    and name[len(prefix):].split("/")[0] in names:
                weight["name"] = name[len(prefix):]


_LAYER_PATH = re.compile(r"^\$\.modelTopology\.model_config\.config(?:\.layers)?\[(\d+)\]")


def layer_problems(document: dict[str, Any], problems: list[Any]) -> list[LayerProblem]:
    """Spec problems (``Problem(path, message)`` into `document`) attributed to Keras layers.

    A path inside ``model_config.config.layers[i]`` names layer i; the rest of the path (the
    option at fault) stays in the message.
    """
    config = document.get("modelTopology", {}).get("model_config", {})
    entries = config.get("config", {})
    entries = entries.get("layers", []) if isinstance(entries, dict) else entries
    out: list[LayerProblem] = []
    for problem in problems:
        match = _LAYER_PATH.match(problem.path)
        if match is None or int(match.group(1)) >= len(entries):
            out.append(LayerProblem(None, str(config.get("class_name", "")),
                                    f"{problem.path}: {problem.message}"))
            continue
        entry = entries[int(match.group(1))]
        name = (entry.get("config") or {}).get("name") or f"layers[{match.group(1)}]"
        rest = problem.path[match.end():].removeprefix(".config.")
        message = problem.message if rest in ("", ".class_name") or rest in problem.message \
            else f"{rest}: {problem.message}"
        out.append(LayerProblem(str(name), str(entry.get("class_name", "")), message))
    return out


def _check_spec(document: dict[str, Any], artifact: Path, source: Path) -> Any:
    from webnn.spec import SpecError, load_spec

    try:
        return load_spec(document, base_dir=artifact)
    except SpecError as exc:
        raise UnsupportedModelError(source, layer_problems(document, exc.problems)) from None


def _install(artifact: Path, out_dir: Path) -> tuple[Path, ...]:
    """Move the artifact's files into `out_dir`, weights first and model.json last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in artifact.iterdir() if p.name != "model.json")
    moved = []
    for name in [*names, "model.json"]:
        os.replace(artifact / name, out_dir / name)
        moved.append(out_dir / name)
    return tuple(moved)


# ---------------------------------------------------------------------------------------------
# export


def export_keras(state_dir: str | Path, out: str | Path, *, overwrite: bool = False
                 ) -> ExportResult:
    """Write the current checkpoint of the run in `state_dir` as the Keras model file `out`.

    The checkpoint goes out as a TF.js artifact (`export_state_dir`) and comes back through
    ``tensorflowjs.converters.load_keras_model``, which builds a tf_keras model and sets its
    weights from the artifact. ``.h5``: tf_keras writes HDF5, which Keras 2 and 3 load;
    ``.keras``: Keras 3 re-saves that file as its archive. `out` appears only when complete.
    """
    from webnn.server.export import export_state_dir
    from webnn.server.store import StateError

    state_dir, out = Path(state_dir), Path(out)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise KerasInteropError(f"{out}: the Keras file must end in .h5 or .keras, "
                                f"got {out.suffix or '(no suffix)'!r}")
    if out.exists() and (out.is_dir() or not overwrite):
        raise KerasInteropError(f"{out}: already exists" + ("" if out.is_dir() else
                                                          " (use --overwrite to replace it)"))
    if not state_dir.is_dir():
        raise KerasInteropError(f"{state_dir}: no such state directory")
    tfjs = converters()
    with _scratch_dir(out) as work:
        try:
            export_state_dir(state_dir, work / "tfjs")
        except (OSError, ValueError, StateError, LookupError) as exc:
            raise KerasInteropError(f"{state_dir}: {exc}") from exc
        try:
            model = tfjs.load_keras_model(str(work / "tfjs" / "model.json"))
        except Exception as exc:
            raise KerasInteropError(f"{state_dir}: tensorflowjs cannot build a Keras model from "
                                    f"this checkpoint: {type(exc).__name__}: {exc}") from exc
        staged = work / "model.h5"
        with warnings.catch_warnings():  # "HDF5 is a legacy format": it is the one both read
            warnings.simplefilter("ignore", UserWarning)
            model.save(staged)
        if out.suffix.lower() == ".keras":
            staged = _to_keras3(staged, work / "model.keras")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, out)
    return ExportResult(path=out, layers=len(model.layers), params=int(model.count_params()))


def _to_keras3(h5: Path, target: Path) -> Path:
    """Re-save a tf_keras HDF5 file as a Keras 3 ``.keras`` archive (tf_keras's own ``.keras``
    archives do not load in Keras 3, which TensorFlow >= 2.16 users have as ``tf.keras``)."""
    import keras

    keras.models.load_model(h5).save(target)
    return target
