"""bench/scaling.py's ``batch=N`` and ``lr_warmup=S`` in a ``--setting``: the batch size goes into
the spec the server serves (train tasks carry it, the feed cuts batches of batchSize x localSteps),
the warm-up to the server's configuration; a toy run with one Node worker trains at batch 64."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "scaling.py"


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("bench_scaling_batch", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scaling_batch"] = module
    spec.loader.exec_module(module)
    return module


def test_setting_carries_batch_and_warmup(scaling) -> None:
    setting = scaling.Setting.parse("fedbuff_live lr=0.08 steps=2 batch=64 lr_scaling=sqrt "
                                    "lr_warmup=20")
    assert (setting.batch_size, setting.local_steps, setting.learning_rate) == (64, 2, 0.08)
    assert setting.serve == {"lr_scaling": "sqrt", "lr_warmup": 20}
    assert setting.params == {}
    assert setting.label() == "fedbuff_live lr_scaling=sqrt lr_warmup=20 lr=0.08 steps=2 batch=64"
    spec = scaling._spec_with(str(ROOT / "bench" / "specs" / "text_mlp.json"), setting)
    assert (spec.training.batch_size, spec.training.local_steps) == (64, 2)
    # no batch=: the spec's own
    plain = scaling.Setting.parse("average lr=0.01")
    assert plain.batch_size is None and "batch" not in plain.label()
    assert scaling._spec_with(str(ROOT / "bench" / "specs" / "text_mlp.json"),
                              plain).training.batch_size == 32
    for bad in ("0", "-3", "2.5", "many"):
        with pytest.raises(ValueError, match=f"batch must be a whole number.*{bad!r}"):
            scaling.Setting.parse(f"average batch={bad}")


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_a_toy_run_trains_at_batch_64(scaling, tmp_path: Path) -> None:
    from webnn.data import load_data_module
    from webnn.node_worker import WorkerCommand
    from webnn.server.config import default_client_dir

    setting = scaling.Setting.parse("average lr=0.01 steps=2 batch=64 lr_scaling=sqrt "
                                    "lr_warmup=5")
    workload = scaling.Workload(
        name="toy", spec=str(ROOT / "model_specs" / "digits_mlp.json"),
        data=str(ROOT / "data_modules" / "digits.py"), target=0.5, cap_seconds=3.0,
        settings={1: setting})
    dataset = load_data_module(workload.data, {})
    result = asyncio.run(scaling.run_one(
        workload, 1, 1, [1.0], WorkerCommand.find(default_client_dir()), dataset, None, None,
        tmp_path / "logs"))
    assert result.error is None, result.error
    assert result.setting.endswith("batch=64")
    # the server's own account of what train tasks carry (status.taskScaling.batchSize)
    assert (result.batch_size, result.local_steps) == (64, 2)
    assert result.updates >= 1  # it trained: updates of 2 steps x 64 examples were merged


async def test_the_served_spec_hands_out_tasks_of_the_batch(scaling, make_config, serve,
                                                            http) -> None:
    from support.protocol_client import ProtocolClient

    from webnn.server.app import create_app

    setting = scaling.Setting.parse("average lr=0.01 steps=2 batch=64")
    spec = scaling._spec_with(str(ROOT / "model_specs" / "digits_mlp.json"), setting)
    running = await serve(create_app(make_config(spec=spec, evaluate_initial=False)))
    client = ProtocolClient(http, running.url)
    await client.join()
    task = (await client.task("train"))["task"]
    assert (task["batchSize"], task["localSteps"], task["examples"]) == (64, 2, 128)
    header, batch = await client.batch(task)
    assert header["examples"] == 128 and batch["x"].shape[0] == 128  # the feed's batch: 64 x 2
    status = (await client.get("api/v1/status")).body["taskScaling"]
    assert (status["batchSize"], status["localSteps"]) == (64, 2)


def test_efficiencies_are_counted_in_examples_when_batches_differ(scaling) -> None:
    # 1 client: 2-step tasks of batch 64 at 1 update/s (128 examples/s), 50 updates to target
    # (6400 examples) in 50 s; 4 clients: 2-step tasks of batch 32 at 6 updates/s (384
    # examples/s), 150 updates (9600 examples) in 25 s
    def run(clients: int, seed: int, t: float, merges: int, ups: float, batch: int) -> dict:
        return {"workload": "w", "clients": clients, "seed": seed, "setting": "s",
                "speeds": [1.0] * clients, "reached": True, "time_to_target": t,
                "updates_to_target": merges, "final_accuracy": 0.9,
                "updates_per_second": ups, "local_steps": 2, "batch_size": batch,
                "history": [{"t": t, "merges": merges, "version": merges, "acc": 0.9}]}

    runs = [run(1, s, 50.0, 50, 1.0, 64) for s in (1, 2, 3)]
    runs += [run(4, s, 25.0, 150, 6.0, 32) for s in (1, 2, 3)]
    four = {r["clients"]: r for r in scaling.summarise(runs)}[4]
    assert four["batch_size"] == 32
    assert four["hardware_speedup"] == pytest.approx(3.0)  # 384 / 128 examples/s
    assert four["statistical_cost"] == pytest.approx(1.5)  # 9600 / 6400 examples
    assert four["speedup"] == pytest.approx(2.0)  # = 3.0 / 1.5
