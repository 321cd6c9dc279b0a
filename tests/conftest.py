"""Shared fixtures: the digits model and data, serve configs, and apps running on loopback ports."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from webnn.weights import WeightLayout, WeightSpec

REPO = Path(__file__).resolve().parent.parent
DIGITS_SPEC = REPO / "model_specs" / "digits_mlp.json"
DIGITS_DATA = REPO / "data_modules" / "digits.py"


# --- a small dense model and the digits data, for while webnn.spec / webnn.data are being written --

@dataclasses.dataclass
class _Training:
    batch_size: int = 16
    local_steps: int = 2
    validation_every_merges: int | None = 5
    validation_every_seconds: float | None = None
    validation_chunk_size: int = 128
    seed: int = 0


class _Compiled:
    def __init__(self, units: tuple[int, ...]) -> None:
        specs, layers = [], []
        for i, (n_in, n_out) in enumerate(zip(units, units[1:], strict=False), start=1):
            specs += [WeightSpec(f"dense_{i}/kernel", (n_in, n_out)), WeightSpec(f"dense_{i}/bias",
                                                                                (n_out,))]
            layers.append({"class_name": "Dense", "config": {
                "name": f"dense_{i}", "units": n_out, "use_bias": True,
                "activation": "softmax" if i == len(units) - 1 else "relu",
                **({"batch_input_shape": [None, n_in]} if i == 1 else {})}})
        self.layout = WeightLayout(specs)
        self.topology = {"class_name": "Sequential", "config": {"name": "tiny", "layers": layers},
                         "keras_version": "tfjs-layers 4.22.0", "backend": "tensor_flow.js"}
        self.total_params = self.layout.size
        self.output_shape = (None, units[-1])

    def initial_weights(self, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).normal(0, 0.1, self.layout.size).astype(np.float32)

    def model_json(self, weights_path: str = "weights.bin") -> dict:
        return {"format": "layers-model", "modelTopology": self.topology,
                "weightsManifest": self.layout.manifest_json(weights_path)}


@dataclasses.dataclass
class _Spec:
    name: str = "tiny_digits"
    loss: str = "sparseCategoricalCrossentropy"
    optimizer: str = "adam"
    learning_rate: float = 0.01
    metrics: tuple[str, ...] = ("accuracy",)
    training: Any = dataclasses.field(default_factory=_Training)
    compiled: Any = dataclasses.field(default_factory=lambda: _Compiled((64, 16, 10)))
    input_shape: tuple[int, ...] = (64,)


def _load_real_spec() -> Any | None:
    try:
        from webnn.spec import load_spec
    except ImportError:
        return None
    return load_spec(DIGITS_SPEC) if DIGITS_SPEC.exists() else None


@pytest.fixture(scope="session")
def digits_spec() -> Any:
    """The shipped digits_mlp spec (or a small dense model of the same shape until it lands)."""
    return _load_real_spec() or _Spec()


@pytest.fixture(scope="session")
def digits_data() -> Any:
    """The digits data set: 1500 training and 297 validation examples of 8x8 images."""
    from sklearn.datasets import load_digits

    from webnn.data.base import ArrayDataset

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int32)
    return ArrayDataset(x[:1500], y[:1500], x[1500:], y[1500:])


@pytest.fixture
def make_config(digits_spec: Any, digits_data: Any, tmp_path: Path) -> Callable[..., Any]:
    """``make_config(**overrides)``: a `ServeConfig` for the digits model (in memory by default)."""
    from webnn.server.config import ServeConfig

    def make(**overrides: Any) -> ServeConfig:
        values: dict[str, Any] = {"spec": digits_spec, "data": digits_data, "strategy": "average",
                                  "seed": 1, "eval_chunk_size": 100, "eval_every_merges": 5,
                                  "tick_seconds": 0.05, "admin_token": "admin-token-123"}
        values.update(overrides)
        return ServeConfig(**values)

    return make


@dataclasses.dataclass
class Served:
    """An app listening on a loopback port; `url` is its base URL (with the mount prefix)."""

    app: web.Application
    url: str
    runner: web.AppRunner

    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """``await serve(app, prefix=None)`` runs `app` (mounted under `prefix` if given) on 127.0.0.1."""
    running: list[Served] = []

    async def start(app: web.Application, prefix: str | None = None) -> Served:
        root = app
        if prefix:
            root = web.Application()
            root.add_subapp(prefix, app)
        runner = web.AppRunner(root)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        served = Served(app=app, url=f"http://{host}:{port}{prefix or '/'}", runner=runner)
        running.append(served)
        return served

    yield start
    for served in reversed(running):
        await served.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
