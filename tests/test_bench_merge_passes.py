"""bench/merge_passes.py runs at a toy size: both paths merge, stay bit-identical and report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def test_the_benchmark_runs_both_paths_and_checks_them_identical(
        capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parent.parent / "bench" / "merge_passes.py"
    spec = importlib.util.spec_from_file_location("merge_passes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--params", "300007", "--rounds", "2", "--merges", "12"])
    out = capsys.readouterr().out
    assert "bit-identical after every round" in out
    assert "clipped (the straightforward path in both): 0 of 24" in out
    rows = {line.split()[0] for line in out.splitlines() if line.split()}
    assert {"old", "new", "copy"} <= rows
