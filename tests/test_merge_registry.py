"""The strategy registry: built-ins, module:attr and file references, entry points."""

from __future__ import annotations

import inspect
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

import webnn.merge.base
from webnn.merge import (
    ModelState,
    ParamError,
    Strategy,
    StrategyError,
    Update,
    WebNNWeighted,
    available_strategies,
    builtin_strategies,
    create_strategy,
    get_strategy,
)

EMA_SOURCE = '''
import numpy as np
from webnn.merge import ModelState, Param, Strategy, Update

class Ema(Strategy):
    name = "ema"
    description = "W_n = (1 - alpha) W_{n-1} + alpha W_p"
    params = (Param("alpha", float, 0.5, "weight of the update", minimum=0, maximum=1),)

    def merge(self, model: ModelState, update: Update) -> bool:
        np.subtract(update.weights, model.weights, out=update.weights)
        update.weights *= self.alpha
        model.weights += update.weights
        model.steps = max(model.steps, update.steps_behind)
        return True

NOT_A_STRATEGY = 42
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module holding the `Ema` strategy; returns its (unique) module name."""
    name = f"wnn_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(EMA_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def write_dist(site: Path, dist: str, entry_points: str) -> None:
    """A minimal installed distribution (dist-info) registering `entry_points`."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[webnn.strategies]\n{entry_points}\n")


def one_merge(strategy: Strategy) -> ModelState:
    model = ModelState(np.array([0.0, 4.0], np.float32), steps=1)
    strategy.merge(model, Update(np.array([2.0, 0.0], np.float32), base_version=0, base_steps=1,
                                 local_steps=2, staleness=0, client="c"))
    return model


def test_builtins_by_name() -> None:
    assert {"average", "weighted", "mimic"} <= set(builtin_strategies())
    assert get_strategy("weighted") is WebNNWeighted
    assert isinstance(create_strategy("mimic", {}), Strategy)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(StrategyError) as info:
        get_strategy("fedavg")
    message = str(info.value)
    assert message.startswith("unknown strategy 'fedavg'; known strategies: average, ")
    known = message.split("known strategies: ")[1].split(" (")[0].split(", ")
    assert known == sorted(builtin_strategies())


def test_bad_param_value_names_the_param(plugin: str) -> None:
    with pytest.raises(ParamError, match="strategy.ema.alpha: must be <= 1, got 2") as info:
        create_strategy(f"{plugin}:Ema", {"alpha": "2"})
    assert info.value.param == "alpha"
    with pytest.raises(ParamError, match="strategy.average.alpha: unknown parameter "
                                         r"\(strategy 'average' takes none\)"):
        create_strategy("average", {"alpha": "0.5"})


def test_module_attr_reference(plugin: str) -> None:
    ema = create_strategy(f"{plugin}:Ema", {"alpha": "0.25"})
    assert ema.alpha == 0.25
    np.testing.assert_array_equal(one_merge(ema).weights, [0.5, 3.0])


def test_file_reference(tmp_path: Path) -> None:
    path = tmp_path / "my_strategies.py"
    path.write_text(EMA_SOURCE)
    cls = get_strategy(f"{path}:Ema")
    assert cls.name == "ema"
    assert get_strategy(f"{path}:Ema") is cls  # imported once


@pytest.mark.parametrize(("ref", "message"), [
    ("no_such_module_xyz:Ema", "no module named 'no_such_module_xyz'"),
    ("{plugin}:Missing", "has no attribute 'Missing'"),
    ("{plugin}:NOT_A_STRATEGY", "is 42, not a subclass of webnn.merge.Strategy"),
    ("{plugin}:np", "not a subclass of webnn.merge.Strategy"),
    ("/nowhere/strategies.py:Ema", "strategy file not found: /nowhere/strategies.py"),
    ("webnn.merge.base:Strategy", "does not implement merge"),
])
def test_reference_errors(plugin: str, ref: str, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        get_strategy(ref.format(plugin=plugin))


def test_reference_whose_import_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"wnn_broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(StrategyError, match=f"module '{name}' failed to import: "
                                            "No module named 'no_such_dependency_xyz'"):
        get_strategy(f"{name}:Ema")


def test_entry_point_from_an_installed_distribution(
        plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write_dist(site, "wnnplug", f"ema = {plugin}:Ema\nbroken = no_such_module_xyz:Thing\n"
                                 f"average = {plugin}:Ema")
    monkeypatch.syspath_prepend(str(site))

    cls = get_strategy("ema")
    assert cls.name == "ema" and cls.__module__ == plugin
    assert create_strategy("ema", {"alpha": "1"}).alpha == 1.0

    infos = available_strategies()
    listed = {info.name: info for info in infos if info.name != "average"}
    assert listed["ema"].strategy is cls
    assert listed["ema"].origin == f"entry point {plugin}:Ema (wnnplug 1.0)"
    assert "failed to load: ModuleNotFoundError" in listed["broken"].error
    builtin, shadowed = [i for i in infos if i.name == "average"]
    assert builtin.origin == "built-in" and get_strategy("average") is builtin.strategy
    assert shadowed.error == "shadowed by the built-in strategy 'average'"
    with pytest.raises(StrategyError, match="entry point 'broken' .* failed to load"):
        get_strategy("broken")
    with pytest.raises(StrategyError, match="known strategies: average, broken, .*ema, .*mimic"):
        get_strategy("nothing")


def test_entry_point_registered_twice_is_ambiguous(
        plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write_dist(site, "plug_one", f"ema = {plugin}:Ema")
    write_dist(site, "plug_two", f"ema = {plugin}:Ema")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(StrategyError, match="'ema' is registered more than once"):
        get_strategy("ema")


def test_the_documented_ten_line_example_works() -> None:
    doc = inspect.getdoc(webnn.merge.base)
    example = textwrap.dedent(doc.split("::\n", 1)[1])
    namespace: dict = {}
    exec(compile(example, "<base docstring>", "exec"), namespace)
    ema = namespace["Ema"](alpha="0.5")
    model = one_merge(ema)
    np.testing.assert_array_equal(model.weights, [1.0, 2.0])
    assert model.steps == 3
