"""`wnn import-keras` / `wnn export --format keras` refuse bad input before touching TensorFlow,
and say how to install the keras extra when it is missing. Runs in both venvs (no tensorflowjs
needed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from webnn.interop_commands import settings_block

WNN = Path(sys.executable).parent / "wnn"
HAS_EXTRA = importlib.util.find_spec("tensorflowjs") is not None


def wnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(WNN), *args], capture_output=True, text=True, timeout=120)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b""
            for p in sorted(directory.rglob("*"))}


@pytest.mark.parametrize("case", ["missing", "directory", "suffix"])
def test_import_of_a_bad_source_names_the_file(tmp_path: Path, case: str) -> None:
    source = {"missing": tmp_path / "nope.keras", "directory": tmp_path / "model.h5",
              "suffix": tmp_path / "model.pt"}[case]
    if case == "directory":
        source.mkdir()
    elif case == "suffix":
        source.write_bytes(b"\x00" * 16)
    before = snapshot(tmp_path)
    done = wnn("import-keras", str(source), str(tmp_path / "out"))
    assert done.returncode == 1
    expected = {"missing": "no such file", "directory": "not a file",
                "suffix": "unknown model file type '.pt'"}[case]
    assert f"{source}: {expected}" in done.stderr, done.stderr
    assert snapshot(tmp_path) == before


def test_import_never_overwrites_a_model_without_overwrite(tmp_path: Path) -> None:
    source = tmp_path / "model.keras"
    source.write_bytes(b"PK")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.json").write_text("{}")
    done = wnn("import-keras", str(source), str(out))
    assert done.returncode == 1
    assert "already holds a model.json (use --overwrite" in done.stderr, done.stderr
    assert (out / "model.json").read_text() == "{}"


@pytest.mark.parametrize("case", ["suffix", "exists", "no_state"])
def test_export_refuses_bad_arguments(tmp_path: Path, case: str) -> None:
    state = tmp_path / "state"
    if case != "no_state":
        state.mkdir()
    out = tmp_path / ("model.onnx" if case == "suffix" else "model.h5")
    if case == "exists":
        out.write_bytes(b"old")
    before = snapshot(tmp_path)
    done = wnn("export", "--format", "keras", str(state), str(out))
    assert done.returncode == 1
    expected = {"suffix": f"{out}: the Keras file must end in .h5 or .keras, got '.onnx'",
                "exists": f"{out}: already exists (use --overwrite to replace it)",
                "no_state": f"{state}: no such state directory"}[case]
    assert expected in done.stderr, done.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(HAS_EXTRA, reason="tensorflowjs is installed here")
def test_without_the_extra_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    source = tmp_path / "model.h5"
    source.write_bytes(b"\x89HDF")
    state = tmp_path / "state"
    state.mkdir()
    for args in (("import-keras", str(source), str(tmp_path / "out")),
                 ("export", "--format", "keras", str(state), str(tmp_path / "exported.h5"))):
        done = wnn(*args)
        assert done.returncode == 1
        assert "needs the optional tensorflowjs package" in done.stderr, done.stderr
        assert "pip install 'webnn[keras]'" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.h5", "state"]


def test_settings_options_become_the_webnn_block() -> None:
    assert settings_block(None, None, None, None, None, None) == {}
    assert settings_block("digits", "categoricalCrossentropy", "sgd", 0.1, 16, 3) == {
        "name": "digits", "loss": "categoricalCrossentropy",
        "optimizer": {"type": "sgd", "learningRate": 0.1},
        "training": {"batchSize": 16, "localSteps": 3}}
    # A learning rate alone leaves the optimizer type to the Keras file (import_keras fills it).
    assert json.dumps(settings_block(None, None, None, 0.5, None, None)) == \
        '{"optimizer": {"learningRate": 0.5}}'
