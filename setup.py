"""Build step that puts the whole product into the wheel (metadata lives in pyproject.toml).

`build_py` copies, next to the Python package in the build tree:

- ``webnn/_client/``: the browser client (``client_js/src``), the Node worker
  (``client_js/bin/wnn-worker.js``, ``client_js/package.json``) and, from
  ``client_js/node_modules``, only the files the server serves (TF.js ``tf.min.js``, the wasm
  backend's bundle and ``.wasm`` files, the WebGPU backend's bundle, chart.js's UMD build) and
  the files ``node`` loads for the worker (each TF.js package's ``*.node.js`` bundle and the few
  small packages they require), with their licence files;
- ``webnn/_examples/``: the example specs (``model_specs/*.json``) and data modules
  (``data_modules/*.py``).

Nothing is copied for an editable install (``pip install -e .``): that one runs from the checkout,
whose ``client_js/``, ``model_specs/`` and ``data_modules/`` `webnn.bundled` finds directly.
A wheel build fails, naming the file, when ``client_js/node_modules`` lacks one of the files
(run ``npm ci`` in ``client_js/`` first).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
CLIENT = ROOT / "client_js"
MODULES = CLIENT / "node_modules"

CLIENT_GLOBS = ("package.json", "src/*.js", "src/*.html", "src/*.css", "bin/wnn-worker.js")
"""Files of ``client_js/`` itself (``package.json`` makes the worker's ``.js`` files ES modules)."""

TFJS_FILES: dict[str, tuple[str, ...]] = {
    "@tensorflow/tfjs": ("dist/tf.node.js", "dist/tf.min.js"),
    "@tensorflow/tfjs-core": ("dist/tf-core.node.js",),
    "@tensorflow/tfjs-layers": ("dist/tf-layers.node.js",),
    "@tensorflow/tfjs-converter": ("dist/tf-converter.node.js",),
    "@tensorflow/tfjs-data": ("dist/tf-data.node.js",),
    "@tensorflow/tfjs-backend-cpu": ("dist/tf-backend-cpu.node.js",),
    "@tensorflow/tfjs-backend-webgl": ("dist/tf-backend-webgl.node.js",),
    "@tensorflow/tfjs-backend-wasm": ("dist/tf-backend-wasm.node.js", "dist/tf-backend-wasm.min.js",
                                      "dist/*.wasm"),
    "@tensorflow/tfjs-backend-webgpu": ("dist/tf-backend-webgpu.min.js",),
    "chart.js": ("dist/chart.umd.js",),
}
"""Per package: the bundles ``node`` loads for the worker (``main`` of each package.json: the
``*.node.js`` files) and the ones `webnn.server.static` serves to pages (``tf.min.js``, the wasm
bundle and its ``.wasm`` files, the WebGPU backend's bundle, ``chart.umd.js``). Each package
also gets its package.json and licence files."""

SMALL_PACKAGES = ("long", "seedrandom", "node-fetch", "whatwg-url", "tr46", "webidl-conversions",
                  "string_decoder", "safe-buffer")
"""Runtime dependencies of the TF.js node bundles (``long`` and ``seedrandom`` load at start;
the others only when the worker would read files or lacks a global ``fetch``), copied whole
except for the files in `SKIPPED`."""
SKIPPED_DIRS = {"coverage", "test", "tests", "docs", "example", "examples"}
KEPT_SUFFIXES = (".js", ".mjs", ".cjs", ".json")

EXAMPLE_GLOBS = {"model_specs": "*.json", "data_modules": "*.py"}


def _package_files(package: str, patterns: tuple[str, ...]) -> list[Path]:
    """The package.json, licences and `patterns` of one ``node_modules`` package."""
    root = MODULES / package
    files = [root / "package.json", *sorted(root.glob("LICENSE*"))]
    for pattern in patterns:
        found = sorted(root.glob(pattern))
        if not found:
            raise SystemExit(f"webnn wheel: {root / pattern} is missing; run `npm ci` in "
                             f"{CLIENT} (or `make setup`) before building the wheel")
        files += found
    return files


def _small_package_files(package: str) -> list[Path]:
    root = MODULES / package
    if not (root / "package.json").is_file():
        raise SystemExit(f"webnn wheel: {root} is missing; run `npm ci` in {CLIENT} first")
    files = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or any(p.startswith(".") or p in SKIPPED_DIRS for p in parts[:-1]):
            continue
        kept = path.suffix in KEPT_SUFFIXES and not (
            path.name.startswith(".") or path.name in ("bower.json", "Gruntfile.js"))
        if kept or path.name.startswith("LICENSE"):
            files.append(path)
    return files


def product_files() -> dict[Path, Path]:
    """Destination (relative to the build's ``webnn/``) -> source, for every bundled file."""
    mapping: dict[Path, Path] = {}
    for pattern in CLIENT_GLOBS:
        found = sorted(CLIENT.glob(pattern))
        if not found:
            raise SystemExit(f"webnn wheel: no {CLIENT / pattern}")
        for path in found:
            mapping[Path("_client") / path.relative_to(CLIENT)] = path
    sources = [f for package, patterns in TFJS_FILES.items()
               for f in _package_files(package, patterns)]
    sources += [f for package in SMALL_PACKAGES for f in _small_package_files(package)]
    for path in sources:
        mapping[Path("_client") / path.relative_to(CLIENT)] = path
    for folder, pattern in EXAMPLE_GLOBS.items():
        for path in sorted((ROOT / folder).glob(pattern)):
            if path.name != "__init__.py":
                mapping[Path("_examples") / folder / path.name] = path
    return mapping


class BuildPyWithProduct(build_py):
    """`build_py` that also copies the client, the worker's TF.js and the examples (see above)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        package = Path(self.build_lib) / "webnn"
        for stale in ("_client", "_examples"):  # a reused build/ must not keep removed files
            shutil.rmtree(package / stale, ignore_errors=True)
        for target, source in product_files().items():
            destination = package / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


class SdistWithProduct(sdist):
    """`sdist` that also carries the files `BuildPyWithProduct` copies, at their source paths, so a
    wheel built from the sdist (``python -m build``) is the same product."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        for source in product_files().values():
            destination = Path(base_dir) / source.relative_to(ROOT)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


setup(cmdclass={"build_py": BuildPyWithProduct, "sdist": SdistWithProduct})
