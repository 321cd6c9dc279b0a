"""The settings model (webnn.settings): every problem at once with its dotted path, "did you
mean" for unknown keys, and one setting giving the same value whether it comes from a flag, a
serve TOML file or `ServeConfig` itself; the reference page is current. These run no server."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from webnn.cli import main
from webnn.compare.config import load_config
from webnn.server.commands import merge_settings, plan_models, serve
from webnn.server.toml_config import load_toml
from webnn.settings import ConfigError, ServeConfig
from webnn.settings import cli as settings_cli
from webnn.settings.serve import MODEL_KEYS, PROCESS_KEYS, ProcessSettings

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "model_specs" / "digits_mlp.json"
DATA = ROOT / "data_modules" / "digits.py"


def write(tmp_path: Path, text: str, name: str = "serve.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_serve_file_reports_every_problem_at_once_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, """
port = "80"
eval_quorom = 2
[partition]
kind = "dirichlet"
alpha = -1
[data_options]
limit = [1]
[[models]]
spec = "a.json"
[[models]]
spec = "b.json"
eval_quorum = 0
lease_seconds = "long"
host = "0.0.0.0"
""")
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    problems = info.value.problems
    assert str(info.value).startswith(f"serve.toml: {len(problems)} problems:")
    assert sorted(problems) == sorted([
        'port: expected an integer, got "80"',
        "eval_quorom: unknown key; did you mean `eval_quorum`?",
        "partition.alpha: must be > 0, got -1",
        "data_options.limit: expected a string, number or boolean, got an array",
        "models[1].eval_quorum: must be >= 1, got 0",
        'models[1].lease_seconds: expected a number, got "long"',
        "models[1].host: unknown key here: host is a process setting (one per wnn serve "
        "process): put it at the top level",
    ])
    assert {p.path for p in problems} >= {"models[1].eval_quorum", "partition.alpha"}


def test_wnn_serve_prints_every_problem_of_its_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'max_merges = 0\nlease_secnds = 3\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert "serve.toml: 2 problems:" in result.output
    assert "max_merges: must be >= 1, got 0" in result.output
    assert "lease_secnds: unknown key; did you mean `lease_seconds`?" in result.output
    assert "listening" not in result.output


def test_serve_config_reports_every_problem_and_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        ServeConfig(spec={}, data="x", eval_quorum=0, lease_secnds=3,  # type: ignore[call-arg]
                    partition={"kind": "dirichlet", "shardz": 4}, screening={"action": "x"},
                    strategy="fedasync", strategy_params={"alpah": 0.5})
    assert sorted(info.value.problems) == sorted([
        "eval_quorum: must be >= 1, got 0",
        "lease_secnds: unknown key; did you mean `lease_seconds`?",
        "partition.shardz: unknown key; did you mean `shards`?",
        "screening.action: must be one of refuse, clip, got 'x'",
    ])
    # a model's own checks (strategy parameters) follow once its fields are well typed
    with pytest.raises(ConfigError) as info:
        ServeConfig(spec={}, data="x", strategy="fedasync", strategy_params={"alpah": 0.5})
    assert info.value.problems == ["params.alpah: unknown parameter; did you mean `alpha`?"]


def test_strategy_parameters_are_named_by_strategy_and_parameter() -> None:
    from webnn.merge import ParamError, create_strategy

    with pytest.raises(ParamError) as info:
        create_strategy("robust", {"trim": "0.7", "k": "0"})
    message = str(info.value)
    assert "strategy.robust.trim: must be <= 0.49, got 0.7" in message
    assert "strategy.robust.k: must be >= 1, got 0" in message


def test_compare_file_problems_at_once_with_paths(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("{}")
    (tmp_path / "data.py").write_text("")
    path = write(tmp_path, """
model = "spec.json"
data = "data.py"
stop = { secnds = 5 }
clients = [{ count = 2, sped = 0.5 }]
[[strategies]]
name = "average"
[[strategies]]
name = "weighted"
[[strategies]]
name = "robust"
params = { trim = 0.7, agregator = "mean" }
""", name="exp.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert sorted(info.value.problems) == sorted([
        "stop.secnds: unknown key; did you mean `seconds`?",
        "clients[0].sped: unknown key; did you mean `speed`?",
    ])
    path.write_text(path.read_text().replace("secnds", "seconds").replace("sped", "speed"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert sorted(info.value.problems) == sorted([
        "strategies[2].params.trim: must be <= 0.49, got 0.7",
        "strategies[2].params.agregator: unknown parameter; did you mean `aggregator`?",
    ])


# ---- one setting, three ways in

FLAGS = ["--eval-quorum", "3", "--lease-seconds", "5", "--trusted-proxy", "10.0.0.1",
         "--trusted-proxy", "::1", "--partition", "dirichlet", "--partition-alpha", "0.25",
         "--screen", "norm_bound=5", "--screen", "action=refuse", "--update-budget", "1M",
         "--private-status", "--param", "alpha=0.5", "--strategy", "fedasync",
         "--data-option", "limit=100", "--max-merges", "7", "--update-encoding", "q8",
         "--join-token", "sesame-123", "--port", "0"]
TOML = f"""
spec = "{SPEC}"
data = "{DATA}"
eval_quorum = 3
lease_seconds = 5
trusted_proxies = ["10.0.0.1", "::1"]
update_budget = 1048576
private_status = true
strategy = "fedasync"
max_merges = 7
update_encoding = "q8"
join_token = "sesame-123"
port = 0
[partition]
kind = "dirichlet"
alpha = 0.25
[screening]
norm_bound = 5
action = "refuse"
[params]
alpha = 0.5
[data_options]
limit = 100
"""
DIRECT: dict[str, Any] = dict(
    eval_quorum=3, lease_seconds=5, trusted_proxies=["10.0.0.1", "::1"],
    partition={"kind": "dirichlet", "alpha": 0.25},
    screening={"norm_bound": 5, "action": "refuse"}, update_budget=1 << 20,
    private_status=True, strategy="fedasync", strategy_params={"alpha": 0.5},
    data_options={"limit": "100"}, max_merges=7, update_encoding="q8", join_token="sesame-123")
COMPARED = ("eval_quorum", "lease_seconds", "trusted_proxies", "update_budget", "private_status",
            "strategy", "max_merges", "update_encoding", "join_token", "data_options")


def _from_flags(args: list[str]) -> tuple[dict[str, Any], ServeConfig]:
    from webnn.server.toml_config import FileSettings

    ctx = serve.make_context("serve", [str(SPEC), "--data", str(DATA), *args])
    flags = {k: v for k, v in ctx.params.items()
             if k not in ("specs", "config_file", "verbose", "quiet")}
    cli = settings_cli.collect(flags, ServeConfig, ProcessSettings)
    process, models = merge_settings(FileSettings(), tuple(ctx.params["specs"]), cli)
    return process, plan_models(process, models, mounted=False)[0].config


def _from_file(tmp_path: Path) -> tuple[dict[str, Any], ServeConfig]:
    process, models = merge_settings(load_toml(write(tmp_path, TOML)), (), {})
    return process, plan_models(process, models, mounted=False)[0].config


def test_a_setting_is_the_same_from_flags_file_and_serve_config(tmp_path: Path) -> None:
    flag_process, by_flags = _from_flags(FLAGS)
    file_process, by_file = _from_file(tmp_path)
    direct = ServeConfig(spec=SPEC, data=str(DATA), **DIRECT)
    for name in COMPARED:
        values = [getattr(c, name) for c in (by_flags, by_file, direct)]
        assert values[0] == values[1] == values[2], (name, values)
        assert type(values[0]) is type(values[1]) is type(values[2]), (name, values)
    assert by_flags.lease_seconds == 5.0 and isinstance(by_flags.lease_seconds, float)
    assert by_flags.trusted_proxies == ("10.0.0.1", "::1")
    for config in (by_flags, by_file, direct):
        assert dict(config.partition) == {"kind": "dirichlet", "alpha": 0.25}
        assert dict(config.screening) == {"norm_bound": 5, "action": "refuse"}
        assert float(config.strategy_params["alpha"]) == 0.5  # "0.5" from a flag: read by type
    assert flag_process["port"] == file_process["port"] == 0


def test_flags_override_the_file_and_bad_flags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, TOML)
    ctx = serve.make_context("serve", ["--config", str(path), "--eval-quorum", "5"])
    flags = {k: v for k, v in ctx.params.items()
             if k not in ("specs", "config_file", "verbose", "quiet")}
    cli = settings_cli.collect(flags, ServeConfig, ProcessSettings)
    process, models = merge_settings(load_toml(path), (), cli)
    assert plan_models(process, models, mounted=False)[0].config.eval_quorum == 5
    result = CliRunner().invoke(main, ["serve", "--eval-quorum", "0", str(SPEC)])
    assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output


def test_every_file_setting_has_a_flag_and_every_flag_a_setting() -> None:
    flags = {opt for p in serve.params for opt in p.opts + p.secondary_opts}
    own = {"--config", "--verbose", "-v", "--quiet", "-q", "--help", "-h"}
    cluster = {"--redis", "--processes", "--role", "--keep-stream"}  # webnn.cluster's own
    generated = set()
    for key, field in settings_cli.cli_fields(ServeConfig, ProcessSettings):
        flag = settings_cli.flag_of(key, field)
        generated.update(flag.split("/"))
    partition = {f for f in flags if f.startswith("--partition")}
    assert flags - own - cluster - partition - {"specs"} <= generated
    for key in MODEL_KEYS | PROCESS_KEYS:
        if key in ("name", "spec"):
            continue  # `name` only in files; `spec` is the SPEC argument
        assert any(key == k for k, _ in settings_cli.cli_fields(ServeConfig, ProcessSettings)), key


def test_declared_choices_match_the_modules_that_use_them() -> None:
    from webnn.data.partition import KINDS
    from webnn.node_worker import BACKENDS
    from webnn.server.encodings import UPDATE_SETTINGS, WEIGHTS_SETTINGS
    from webnn.settings import serve as model

    assert typing.get_args(model.UpdateEncoding) == UPDATE_SETTINGS
    assert typing.get_args(model.WeightsEncoding) == WEIGHTS_SETTINGS
    assert typing.get_args(model.WorkerBackend) == BACKENDS
    assert typing.get_args(model.PartitionKind) == KINDS


def test_the_settings_reference_page_is_current() -> None:
    from webnn.settings.reference import markdown

    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert page == markdown(), "regenerate it: wnn settings --markdown > docs/settings.md"
    for needle in ("| `eval_quorum` | `--eval-quorum` | integer, >= 1 | 2 |",
                   "### `fedasync`", "### `[[clients]]`", "`partition.alpha`"):
        assert needle in page
    result = CliRunner().invoke(main, ["settings", "--check", str(ROOT / "docs" / "settings.md")])
    assert result.exit_code == 0, result.output
