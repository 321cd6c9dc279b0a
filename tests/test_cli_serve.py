"""A real `wnn serve` process: banner, a Python client training through it, SIGTERM writes a
checkpoint that a restart resumes, SIGKILL loses at most one checkpoint interval, and bad settings
fail before serving. The process helpers are in `support.serve_cli`.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.serve_cli import (
    DIGITS_DATA,
    DIGITS_SPEC,
    ROOT,
    WNN,
    ServeProcess,
    current_checkpoint_state,
    snapshot,
    start_serve,
    train,
    wait_for,
)

from webnn.cli import main


async def test_sigterm_writes_a_checkpoint_that_a_restart_resumes(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    state = tmp_path / "state"
    args = (str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--state-dir", str(state), "--seed", "3",
            "--checkpoint-every-merges", "1000")
    first = start_serve(*args)
    processes.append(first)
    assert first.url.startswith("http://127.0.0.1:") and first.url.endswith("/")
    assert first.find(r"dashboard:\s+http://127\.0\.0\.1:\d+/dashboard")

    before, weights_before = await train(first.url, updates=4)
    assert before["merges"] == 4 and before["version"] >= 1 and before["steps"] > 0
    assert before["history"]  # at least the initial model's evaluation
    assert current_checkpoint_state(state) is None  # nothing written yet at this interval

    assert first.stop(signal.SIGTERM) == 0, first.output()
    assert "SIGTERM received" in first.output()
    saved = current_checkpoint_state(state)
    assert saved is not None and saved["merges"] == 4

    second = start_serve(*args)
    processes.append(second)
    after, weights_after = await snapshot(second.url)
    for key in ("version", "steps", "merges"):
        assert after[key] == before[key], key
    assert after["history"] == before["history"]
    np.testing.assert_array_equal(weights_after, weights_before)
    assert second.stop() == 0


async def test_sigkill_resumes_from_the_last_checkpoint(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    state = tmp_path / "state"
    args = (str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--state-dir", str(state),
            "--checkpoint-every-merges", "1")
    first = start_serve(*args)
    processes.append(first)
    at_three, weights_three = await train(first.url, updates=3)
    wait_for(lambda: (current_checkpoint_state(state) or {}).get("merges") == 3,
             "the checkpoint of merge 3")
    at_four, weights_four = await train(first.url, updates=1, seed=1)
    first.stop(signal.SIGKILL)  # no cleanup: whatever checkpoint was complete is what survives

    second = start_serve(*args)
    processes.append(second)
    resumed, weights = await snapshot(second.url)
    assert resumed["merges"] in (3, 4)  # at most one checkpoint interval (1 merge) lost
    expected, expected_weights = (at_three, weights_three) if resumed["merges"] == 3 else (
        at_four, weights_four)
    assert (resumed["version"], resumed["steps"]) == (expected["version"], expected["steps"])
    np.testing.assert_array_equal(weights, expected_weights)
    assert second.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "no-such-strategy"], "no-such-strategy"),
        (["--strategy", "fedasync", "--param", "nonsense=1"], "nonsense"),
        (["--data", "no_such_module_xyz"], "no_such_module_xyz"),
        (["--spec-file-instead"], "No such option"),
    ],
)
def test_bad_values_exit_before_serving(args: list[str], message: str) -> None:
    argv = [str(DIGITS_SPEC), "--data", str(DIGITS_DATA), *args, "--port", "0"]
    result = CliRunner().invoke(main, ["serve", *argv])  # in process: the same code, faster
    assert result.exit_code != 0
    assert message in result.output
    assert "listening" not in result.output


def test_invalid_spec_names_the_json_path(tmp_path: Path) -> None:
    spec = json.loads(DIGITS_SPEC.read_text())
    spec["layers"][0]["units"] = -3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    done = subprocess.run([str(WNN), "serve", str(bad), "--data", str(DIGITS_DATA)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "$.layers[0].units" in done.stderr, done.stderr
