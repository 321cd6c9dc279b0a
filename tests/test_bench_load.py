"""bench/load.py end to end: a real `wnn serve`, real HTTP, simulated clients in real processes.

Only the report's structure and its counts are checked (merges happened, nothing failed); speed
figures belong to the benchmark's docs, not to tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

from load_model import param_count, width_for  # noqa: E402
from load_server import parse_cpus  # noqa: E402

KINDS = {"join", "task", "weights", "batch", "update", "evaluation"}


def run_bench(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "report.json"
    command = [sys.executable, str(BENCH / "load.py"), "--params", "2000", "--clients", "4",
               "--processes", "2", "--think", "0:0.05", "--warmup", "1", "--duration", "3",
               "--eval-seconds", "1", "--json", str(out), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "merges/s" in done.stdout
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("follow_up", [True, False], ids=["follow-up", "three-requests"])
def test_load_bench_reports_merges_without_errors(tmp_path: Path, follow_up: bool) -> None:
    report = run_bench(tmp_path, *([] if follow_up else ["--no-follow-up"]))
    assert report["follow_up"] is follow_up
    assert report["params"] >= 2000 and report["model_bytes"] == 4 * report["params"]
    assert report["clients"] == 4 and report["processes"] == 2
    assert report["errors_total"] == 0, report["errors"]
    assert report["errors"] == {}
    assert report["merges_per_s"] > 0
    assert report["accepted_updates_per_s"] > 0
    assert report["server"]["final_status"]["merges"] > 0
    assert set(report["latency_s"]) >= KINDS
    update = report["latency_s"]["update"]
    assert update["count"] > 0 and 0 < update["p50"] <= update["p99"] <= update["max"]
    if not follow_up:
        assert report["latency_s"]["weights"]["count"] > 0
        assert report["latency_s"]["batch"]["count"] > 0
    assert isinstance(report["busy_503_total"], int)
    assert isinstance(report["throttled_429"], dict)
    assert report["merges_per_s_first_last"]["first"] is not None
    server = report["server"]
    assert server["cpu_mean_pct"] > 0
    assert server["rss"]["max_mb"] > 0 and server["rss"]["first_mb"] > 0
    ingest = report["ingest"]
    assert ingest["bytes_per_s"] > 0 and ingest["memcopy_bytes_per_s"] > 0
    assert ingest["ratio_to_memcopy"] == pytest.approx(
        ingest["bytes_per_s"] / ingest["memcopy_bytes_per_s"])
    series = report["series"]
    assert len(series["merges_per_s"]["t"]) == len(series["merges_per_s"]["value"]) > 0
    assert len(series["rss_mb"]["value"]) > 0
    assert sum(series["updates_per_s"]) > 0
    assert len(series["open_tasks"]["t"]) == len(series["open_tasks"]["value"]) > 0
    assert str(tmp_path / "report.json") in report["command"]
    assert report["date"] and report["machine"]["cpus"]


def test_model_width_meets_the_requested_parameter_count() -> None:
    for params in (1, 2000, 100_000, 1_000_000, 10_000_000):
        width = width_for(params)
        assert param_count(width) >= params
        assert width == 1 or param_count(width - 1) < params


def test_cpu_lists_parse_like_taskset() -> None:
    assert parse_cpus("0") == (0,)
    assert parse_cpus("1-3,7") == (1, 2, 3, 7)
    assert parse_cpus(None) is None
    with pytest.raises(ValueError, match="'x'"):
        parse_cpus("x")
    with pytest.raises(ValueError, match="bad range"):
        parse_cpus("3-1")


@pytest.mark.slow
def test_load_step_reports_before_and_after(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--step", "1.5:1")
    assert report["step"] == {"after_s": 1.5, "clients": 1}
    step = report["step_result"]
    assert step["merges_per_s_before"] > 0 and step["merges_per_s_after"] >= 0
    assert step["last_503_after_step_s"] + step["recovered_503_free_s"] >= 1
    assert step["rss_last_5s_mb"] > 0
    assert step["capacity_last"]["bodyBytes"] >= 0
    assert report["errors_total"] == 0, report["errors"]


def test_load_step_is_parsed_as_seconds_and_clients() -> None:
    from load import parse_step

    assert parse_step("30:100") == (30.0, 100)
    for bad in ("30", "x:1", "0:5", "5:-1"):
        with pytest.raises(Exception, match="--step"):
            parse_step(bad)


@pytest.mark.slow
def test_load_profile_covers_the_event_loops_update_route(tmp_path: Path) -> None:
    """``--profile``: the server's event-loop thread under cProfile over the measured window."""
    import pstats

    from load_profile import summary

    profile = tmp_path / "loop.pstats"
    # a model above INLINE_MERGE_MAX_VALUES, so that its merges run in the worker thread
    report = run_bench(tmp_path, "--params", "100000", "--profile", str(profile),
                       "--server-env", "WEBNN_PROFILE_CLOCK=cpu")
    assert report["errors_total"] == 0, report["errors"]
    assert profile.exists()
    functions = {(Path(file).name, name)
                 for file, _, name in pstats.Stats(str(profile)).stats}  # type: ignore[attr-defined]
    assert ("routes.py", "update") in functions  # the update route ran on the profiled thread
    assert ("merging.py", "run") not in functions  # the merge's worker thread is not in it
    assert "per unit" in summary(str(profile), per=2.0, top=5)


@pytest.mark.slow
def test_load_bench_q8f16_updates_are_accepted_and_merged(tmp_path: Path) -> None:
    """``--encoding q8f16``: the clients offer what the shipped clients get by default and the
    server takes their q8 updates (no ``wrong_encoding``, no error) and sends f16 weights."""
    report = run_bench(tmp_path, "--encoding", "q8f16")
    assert report["encoding"] == "q8f16"
    assert report["errors_total"] == 0, report["errors"]
    assert report["refused"] == {}
    assert report["accepted_updates_per_s"] > 0
    assert report["server"]["final_status"]["merges"] > 0
    sizes = report["bytes"]
    assert sizes["negotiated"] and set(sizes["negotiated"]) == {"q8/f16"}
    traffic = sizes["traffic"]
    assert set(traffic["updates"]) == {"q8"} and traffic["updates"]["q8"]["count"] > 0
    assert set(traffic["weights"]) == {"f16"} and traffic["weights"]["f16"]["count"] > 0
    params = report["params"]
    # a q8 body: P int8 + T = 6 float32 scales (+ padding) and a frame header; well under 2 P
    assert params + 24 < sizes["per_update_body"] < 2 * params
    # follow-up answers carry 2 P bytes of float16 weights and a header
    assert 2 * params < sizes["per_answer"] < 4 * params
    ingest = report["ingest"]
    assert ingest["bytes_per_s"] == pytest.approx(
        sizes["per_update_body"] * report["accepted_updates_per_s"])


@pytest.mark.slow
def test_load_bench_f32_reports_its_byte_sizes(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--processes", "1")
    assert report["encoding"] == "f32"
    sizes = report["bytes"]
    assert set(sizes["negotiated"]) == {"f32/f32"}
    assert set(sizes["traffic"]["updates"]) == {"f32"}
    assert 4 * report["params"] < sizes["per_update_body"] < 4 * report["params"] + 1024
    assert 4 * report["params"] < sizes["per_answer"]


@pytest.mark.parametrize("at", [0, 40, 95, 130, 200 - 64])
def test_q8_update_frame_decodes_on_the_server_to_base_plus_the_slice(at: int) -> None:
    """The generator's q8 frame, read by the server's own code (frame decoder, encoding check,
    reconstruction ``base + q s_t``): the slice moves by its noise within one step of its
    tensor's scale, everything else stays exactly the base (f16 weights widened)."""
    import numpy as np
    from load_encodings import Held, Slice, UpdateBuilder

    from webnn.server.encodings import check_update_tensors
    from webnn.server.frames import decode_frame
    from webnn.weights import WeightLayout

    manifest = [{"name": "a", "shape": [10, 10], "dtype": "float32"},
                {"name": "b", "shape": [3], "dtype": "float32"},
                {"name": "c", "shape": [97], "dtype": "float32"}]
    layout = WeightLayout.from_manifest(manifest)
    rng = np.random.default_rng(at)
    base16 = rng.standard_normal(layout.size).astype("<f2")
    noise = (rng.standard_normal(64) * 1e-3).astype(np.float32)
    builder = UpdateBuilder.from_manifest(manifest, seed=1)
    parts = builder.parts("q8", {"baseVersion": 0}, Held(0, base16), Slice(at, noise))
    frame = decode_frame(b"".join(bytes(part) for part in parts))
    assert frame.header["baseVersion"] == 0
    update = check_update_tensors(frame.tensors, layout, "q8")
    base = base16.astype(np.float32)
    out = update.decode_into(np.empty(layout.size, dtype=np.float32), layout, base)
    scales = frame.tensors["scales"]
    touched = {i for i, (start, spec) in enumerate(zip(layout.offsets, layout.specs,
                                                       strict=True))
               if start < at + 64 and at < start + spec.size}
    assert {i for i in range(len(layout.specs)) if scales[i] > 0} <= touched
    outside = np.ones(layout.size, dtype=bool)
    outside[at:at + 64] = False
    assert np.array_equal(out[outside], base[outside])
    step = np.repeat(scales, [spec.size for spec in layout.specs])[at:at + 64]
    assert np.all(np.abs(out[at:at + 64] - (base[at:at + 64] + noise)) <= step * 1.0001 + 1e-7)
    assert np.abs(frame.tensors["delta_q8"].astype(np.int32)).max() <= 127
