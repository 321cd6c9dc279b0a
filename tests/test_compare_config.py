"""`wnn compare` config parsing: a good config round trip and a table of bad configs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from webnn.compare.config import ConfigError, StrategyEntry, load_config

GOOD = """
name = "demo"
description = "two strategies"
model = "spec.json"
data = "data.py"
seeds = [3, 4]
target_accuracy = 0.8

[data_options]
validation_fraction = 0.25

[stop]
seconds = 20
target_accuracy = 0.95

[evaluation]
every_merges = 5
every_seconds = 1.5

[server]
lease_seconds = 4

[[strategies]]
name = "average"

[[strategies]]
label = "weighted-b"
name = "weighted"

[[clients]]
label = "desktop"
count = 2

[[clients]]
label = "phone"
count = 3
speed = 0.25
latency_ms = 120
churn = { mean_online_seconds = 8, mean_offline_seconds = 2, signal = "term" }

[[clients]]
label = "attacker"
attack = "sign_flip"
attack_scale = 4
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "spec.json").write_text("{}")
    (tmp_path / "data.py").write_text("")
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.name == "demo"
    assert config.model == (tmp_path / "spec.json").resolve()
    assert config.data == str((tmp_path / "data.py").resolve())
    assert config.data_options == {"validation_fraction": "0.25"}
    assert config.seeds == (3, 4)
    assert [(s.label, s.name) for s in config.strategies] == [
        ("average", "average"), ("weighted-b", "weighted")]
    assert config.num_clients == 6
    phone = config.clients[1]
    assert (phone.speed, phone.latency_ms, phone.churn.signal) == (0.25, 120.0, "term")
    assert phone.churn.mean_online_seconds == 8.0
    assert config.clients[2].attack == "sign_flip" and config.clients[2].attack_scale == 4.0
    assert config.clients[0].attack is None and config.clients[0].churn is None
    assert config.stop.seconds == 20.0 and config.stop.timeout_seconds == 600.0
    assert config.target_accuracy == 0.8
    assert config.evaluation.every_merges == 5 and config.server.lease_seconds == 4.0
    assert config.to_json()["clients"][1]["churn"]["signal"] == "term"


def test_entry_attack_overrides_hostile_groups(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD.replace('name = "average"', '''name = "average"
attack = "none"''').replace('name = "weighted"', '''name = "weighted"
attack = "scaled"
attack_scale = 10''')))
    clean, scaled = config.strategies
    desktop, attacker = config.clients[0], config.clients[2]
    assert clean.attack_for(attacker) == (None, 1.0)
    assert scaled.attack_for(attacker) == ("scaled", 10.0)
    assert scaled.attack_for(desktop) == (None, 1.0)  # honest groups stay honest
    plain = StrategyEntry("x", "average")
    assert plain.attack_for(attacker) == ("sign_flip", 4.0)


def test_strategy_screening_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
        model = "spec.json"
        data = "data.py"
        stop = { seconds = 5 }
        clients = [{ count = 2 }]

        [[strategies]]
        name = "average"

        [[strategies]]
        name = "average"
        label = "average-clip"
        screening = { norm_bound = 4.0, action = "clip" }
    """))
    assert config.strategies[0].screening is None
    assert config.strategies[1].screening == {"norm_bound": 4.0, "action": "clip"}


def test_sweep_sets_the_swept_group_count(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
        model = "spec.json"
        data = "some.dotted.module"
        stop = { merges = 10 }
        strategies = [{ name = "average" }]
        clients = [{ count = 1, label = "fast" }, { count = 2, label = "slow", speed = 0.25 }]
        sweep = { clients = [8, 1, 4], group = "fast" }
    """))
    assert config.sweep is not None and config.sweep.clients == (1, 4, 8)
    counts = [(n, [(g.label, g.count) for g in variant.clients])
              for n, variant in config.variants()]
    assert counts == [(1, [("fast", 1), ("slow", 2)]), (4, [("fast", 4), ("slow", 2)]),
                      (8, [("fast", 8), ("slow", 2)])]
    assert config.to_json()["sweep"] == {"clients": (1, 4, 8), "group": "fast"}


def test_defaults_and_repetitions(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
        model = "spec.json"
        data = "some.dotted.module"
        repetitions = 3
        stop = { merges = 10, target_accuracy = 0.9 }
        strategies = [{ name = "mimic" }]
        clients = [{ count = 4 }]
    """))
    assert config.name == "exp" and config.data == "some.dotted.module"
    assert config.seeds == (0, 1, 2)
    assert config.target_accuracy == 0.9  # taken from the stop condition
    assert config.clients[0].label == "group0" and config.worker == "node"


BASE = {
    "model": '"spec.json"', "data": '"data.py"', "stop": "{ seconds = 5 }",
    "strategies": '[{ name = "average" }]', "clients": "[{ count = 2 }]",
}

BAD = [
    ({"strategies": '[{ name = "average" }, { name = "weighted" }, '
                    '{ name = "mimic", params = { alpha = "x" } }]'},
     "strategies[2].params.alpha: unknown parameter (known: unit)"),
    ({"model": None}, "model: missing (expected a string)"),
    ({"model": '"nope.json"'}, "model: file not found:"),
    ({"data": '"missing.py"'}, "data: file not found:"),
    ({"data": "3"}, "data: expected a string, got 3"),
    ({"stop": None}, "stop: missing"),
    ({"stop": "{ }"}, "stop: give at least one of seconds, merges, target_accuracy"),
    ({"stop": "{ seconds = -1 }"}, "stop.seconds: must be > 0, got -1"),
    ({"stop": '{ seconds = "ten" }'}, 'stop.seconds: expected a number, got "ten"'),
    ({"stop": "{ target_accuracy = 1.5 }"}, "stop.target_accuracy: must be <= 1, got 1.5"),
    ({"stop": "{ merges = 2.5 }"}, "stop.merges: expected an integer, got 2.5"),
    ({"stop": "{ secs = 3 }"}, "stop.secs: unknown key"),
    ({"strategies": "[]"}, "strategies: must hold at least one strategy"),
    ({"strategies": '[{ name = "average", screening = { action = "explode" } }]'},
     "strategies[0].screening.action: must be one of refuse, clip"),
    ({"strategies": '[{ name = "average", screening = { bound = 3 } }]'},
     "strategies[0].screening.bound: unknown setting"),
    ({"strategies": '[{ name = "nosuch" }]'}, "strategies[0].name: unknown strategy 'nosuch'"),
    ({"strategies": '[{ name = "average" }, { name = "average" }]'},
     'strategies[1].name: duplicate label "average"'),
    ({"strategies": '[{ name = "average", label = "a b" }]'}, "strategies[0].label: use letters"),
    ({"strategies": '[{ name = "average", weight = 1 }]'}, "strategies[0].weight: unknown key"),
    ({"strategies": '[{ name = "average", params = 3 }]'},
     "strategies[0].params: expected a table, got 3"),
    ({"strategies": '["average"]'}, 'strategies[0]: expected a table, got "average"'),
    ({"strategies": '[{ name = "average", attack = "nan" }]'},
     "strategies[0].attack: no client group has an attack to override"),
    ({"strategies": '[{ name = "average", attack = "boom" }]'},
     'strategies[0].attack: expected one of scaled, sign_flip, random, nan, none, got "boom"'),
    ({"clients": "[]"}, "clients: must hold at least one client group"),
    ({"clients": "[{ count = 0 }]"}, "clients[0].count: must be >= 1, got 0"),
    ({"clients": "[{ count = 1, speed = 0 }]"}, "clients[0].speed: must be > 0, got 0"),
    ({"clients": "[{ count = 1, speed = 2 }]"}, "clients[0].speed: must be <= 1, got 2"),
    ({"clients": '[{ count = 1, backend = "gpu" }]'},
     'clients[0].backend: expected one of cpu, wasm, webgl, got "gpu"'),
    ({"clients": '[{ count = 1, attack = "boost" }]'},
     'clients[0].attack: expected one of scaled, sign_flip, random, nan, got "boost"'),
    ({"clients": "[{ count = 1, attack_scale = 3 }]"},
     "clients[0].attack_scale: given without attack"),
    ({"clients": "[{ count = 1, churn = { mean_online_seconds = 5 } }]"},
     "clients[0].churn.mean_offline_seconds: missing"),
    ({"clients": '[{ count = 1, churn = { mean_online_seconds = 5, mean_offline_seconds = 1, '
                 'signal = "stop" } }]'},
     'clients[0].churn.signal: expected one of kill, term, got "stop"'),
    ({"clients": "[{ count = 1, latency_ms = -5 }]"}, "clients[0].latency_ms: must be >= 0"),
    ({"seeds": "[1, 1]"}, "seeds: seeds must be distinct"),
    ({"seeds": '[1, "2"]'}, 'seeds[1]: expected an integer, got "2"'),
    ({"seeds": "[1, -2]"}, "seeds[1]: must be >= 0, got -2"),
    ({"seeds": "[1]", "repetitions": "2"}, "repetitions: give either seeds or repetitions"),
    ({"worker": '"firefox"'}, 'worker: expected one of node, chromium, got "firefox"'),
    ({"worker": '"chromium"', "clients": "[{ count = 1, speed = 0.5 }]"},
     'clients[0].speed: not supported with worker = "chromium"'),
    ({"worker": '"chromium"', "clients": '[{ count = 1, attack = "nan" }]'},
     'clients[0].attack: not supported with worker = "chromium"'),
    ({"clients": '[{ count = 1, backend = "webgl" }]'},
     'clients[0].backend: webgl needs worker = "chromium"'),
    ({"colour": '"red"'}, "colour: unknown key"),
    ({"evaluation": "{ every_merges = 0 }"}, "evaluation.every_merges: must be >= 1, got 0"),
    ({"server": "{ lease_seconds = 0 }"}, "server.lease_seconds: must be > 0, got 0"),
    ({"data_options": "{ path = [1] }"}, "data_options.path: expected a string, number or boolean"),
    ({"target_accuracy": "true"}, "target_accuracy: expected a number, got true"),
    ({"order": '"alphabetical"'}, 'order: expected one of random, fixed, got "alphabetical"'),
    ({"sweep": "{ }"}, "sweep.clients: missing"),
    ({"sweep": "{ clients = [] }"}, "sweep.clients: must hold at least one client count"),
    ({"sweep": "{ clients = [1, 0] }"}, "sweep.clients[1]: must be >= 1, got 0"),
    ({"sweep": "{ clients = [2, 2] }"}, "sweep.clients: client counts must be distinct"),
    ({"sweep": "{ clients = [1], steps = [5] }"}, "sweep.steps: unknown key"),
    ({"sweep": "{ clients = [1, 2] }", "clients": '[{ count = 1 }, { count = 2, label = "b" }]'},
     "sweep.group: name the client group to sweep, one of group0, b"),
    ({"sweep": '{ clients = [1, 2], group = "c" }'},
     'sweep.group: no client group "c" (groups: group0)'),
]


def render(overrides: dict[str, str | None]) -> str:
    values = {**BASE, **overrides}
    return "\n".join(f"{k} = {v}" for k, v in values.items() if v is not None)


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[m.split(":")[0] + f"-{i}"
                                                             for i, (_, m) in enumerate(BAD)])
def test_bad_config(tmp_path: Path, overrides: dict[str, str | None], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, render(overrides)))
    assert any(p.startswith(message) or message in p for p in info.value.problems), \
        info.value.problems
    assert str(tmp_path / "exp.toml") in str(info.value)


def test_param_type_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A declared float parameter given a string: the message names the full key path."""
    from webnn.merge import Param, Strategy

    class Alpha(Strategy):
        name = "alpha_test"
        description = "test"
        params = (Param("alpha", float, 0.5, "mixing weight"),)

        def merge(self, model, update):  # pragma: no cover - never merged here
            return False

    monkeypatch.setattr("webnn.merge.registry.builtin_strategies",
                        lambda: {"alpha_test": Alpha, "average": Alpha})
    text = render({"strategies": '[{ name = "average" }, { name = "average", label = "b" }, '
                                 '{ name = "alpha_test", params = { alpha = "x" } }]'})
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert 'strategies[2].params.alpha: expected a number, got "x"' in info.value.problems


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = render({"stop": "{ seconds = -1 }", "clients": "[{ count = 0 }]", "colour": "1"})
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert len(info.value.problems) == 3


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "model = "))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


def test_shipped_experiments_parse() -> None:
    root = Path(__file__).resolve().parent.parent / "experiments"
    paths = sorted(root.glob("*.toml"))
    assert {p.name for p in paths} >= {"webnn_poster.toml", "heterogeneous.toml",
                                       "async_strategies.toml", "poisoning.toml"}
    for path in paths:
        config = load_config(path)
        assert config.strategies and config.clients
