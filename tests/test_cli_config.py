"""`wnn serve` settings: the TOML loader (good files, unknown keys, wrong types) and how CLI flags
override file values. These run no server."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from webnn.cli import main
from webnn.server.commands import merge_settings, parse_pairs
from webnn.server.toml_config import ConfigError, FileSettings, load_toml


def write(tmp_path: Path, text: str, name: str = "serve.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_single_model_file_resolves_paths_against_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
spec = "specs/m.json"
data = "data/d.py"
strategy = "average"
seed = 7
lease_seconds = 5
port = 9000
state_dir = "state"
local_workers = 2
[data_options]
limit = 100
shuffle = true
[params]
alpha = 0.5
""")
    settings = load_toml(path)
    assert not settings.multi
    assert settings.process == {"port": 9000, "state_dir": str(tmp_path / "state"),
                                "local_workers": 2}
    (model,) = settings.models
    assert model["spec"] == str(tmp_path / "specs" / "m.json")
    assert model["data"] == str(tmp_path / "data" / "d.py")
    assert model["strategy"] == "average"
    assert model["seed"] == 7
    assert model["lease_seconds"] == 5.0 and isinstance(model["lease_seconds"], float)
    # data options reach the data module as strings, as from --data-option
    assert model["data_options"] == {"limit": "100", "shuffle": "true"}
    assert model["params"] == {"alpha": 0.5}


def test_dotted_data_module_is_not_a_path(tmp_path: Path) -> None:
    settings = load_toml(write(tmp_path, 'spec = "m.json"\ndata = "mypkg.digits"\n'))
    assert settings.models[0]["data"] == "mypkg.digits"


def test_models_array_inherits_top_level_defaults(tmp_path: Path) -> None:
    settings = load_toml(write(tmp_path, """
data = "d.py"
strategy = "average"
port = 0
[[models]]
name = "plain"
spec = "a.json"
[[models]]
name = "stale"
spec = "b.json"
strategy = "staleness"
[models.params]
beta = 2
"""))
    assert settings.multi
    assert settings.process == {"port": 0}
    first, second = settings.models
    assert first == {"name": "plain", "spec": str(tmp_path / "a.json"),
                     "data": str(tmp_path / "d.py"), "strategy": "average"}
    assert second["strategy"] == "staleness" and second["params"] == {"beta": 2}
    assert second["data"] == str(tmp_path / "d.py")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('straegy = "average"\n', "straegy: unknown key; did you mean `strategy`?"),
        ('[[models]]\nspec = "a.json"\nhost = "x"\n',
         "models[0].host: unknown key here: host is a process setting"),
        ('[[models]]\nspec = "a.json"\ncolour = 1\n',
         "models[0].colour: unknown key (known: answer_budget, body_timeout"),
        ("port = \"80\"\n", 'port: expected an integer, got "80"'),
        ("port = true\n", "port: expected an integer, got true"),
        ("lease_seconds = \"1\"\n", 'lease_seconds: expected a number, got "1"'),
        ("spec = 3\n", "spec: expected a path, a table or a ModelSpec, got 3"),
        ("params = 3\n", "params: expected a table, got 3"),
        ("[params]\nx = [1, 2]\n", "params.x: expected a string, number or boolean, got an array"),
        ("models = 3\n", "models: expected a non-empty array of tables"),
        ('[[models]]\nname = "a b"\nspec = "a.json"\n', 'models[0].name: "a b" is not a valid'),
        ("port = \n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_toml(write(tmp_path, text))
    assert str(info.value).startswith("serve.toml: ")
    assert message in str(info.value)


def test_process_key_inside_models_hints_at_the_top_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="put it at the top level"):
        load_toml(write(tmp_path, '[[models]]\nspec = "a.json"\nport = 1\n'))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_toml(tmp_path / "nope.toml")


def test_cli_flags_override_file_values(tmp_path: Path) -> None:
    file = load_toml(write(tmp_path, """
spec = "a.json"
data = "d.py"
strategy = "average"
port = 9000
host = "0.0.0.0"
[params]
alpha = 0.5
beta = 1
"""))
    cli = {"port": 0, "host": None, "strategy": "staleness", "seed": None,
           "params": {"alpha": "0.9"}, "data_options": {}}
    process, models = merge_settings(file, (), cli)
    assert process["port"] == 0 and process["host"] == "0.0.0.0"
    assert process["local_workers"] == 0  # built-in default
    (model,) = models
    assert model["strategy"] == "staleness"
    assert model["params"] == {"alpha": "0.9", "beta": 1}  # merged per key, CLI wins
    assert "seed" not in model


def test_spec_arguments_replace_the_file_spec_and_make_several_models() -> None:
    file = FileSettings(models=[{"spec": "x.json", "data": "d.py"}])
    _, models = merge_settings(file, ("a.json", "b.json"), {"data_options": {}, "params": {}})
    assert [m["spec"] for m in models] == ["a.json", "b.json"]
    assert all(m["data"] == "d.py" for m in models)


def test_spec_arguments_and_models_array_conflict(tmp_path: Path) -> None:
    file = load_toml(write(tmp_path, '[[models]]\nspec = "a.json"\ndata = "d.py"\n'))
    with pytest.raises(Exception, match="not both"):
        merge_settings(file, ("b.json",), {})


def test_parse_pairs() -> None:
    assert parse_pairs(("a=1", "b=x=y", "empty="), "--param") == {"a": "1", "b": "x=y",
                                                                   "empty": ""}
    with pytest.raises(Exception, match="'alpha': expected key=value"):
        parse_pairs(("alpha",), "--param")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "{dir}/bad.toml"], "bad.toml: colour: unknown key (known: admin_token"),
        (["--config", "{dir}/missing.toml"], "config file not found"),
        (["x.json", "--data", "d.py", "--param", "alpha"], "'alpha': expected key=value"),
        (["--data", "d.py"], "no spec given"),
        (["--port", "99999", "x.json"], "99999 is not in the range"),
        (["--worker-backend", "gpu", "x.json"], "'gpu' is not one of"),
    ],
)
def test_serve_refuses_bad_settings_before_serving(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write(tmp_path, 'colour = "red"\n', name="bad.toml")
    result = CliRunner().invoke(main, ["serve", *[a.format(dir=tmp_path) for a in args]])
    assert result.exit_code != 0
    assert message in result.output
    assert "listening" not in result.output


def test_screening_table_and_screen_flags(tmp_path: Path) -> None:
    settings = load_toml(write(tmp_path, 'spec = "m.json"\ndata = "d.py"\n'
                                         '[screening]\nnorm_bound = 5.0\naction = "refuse"\n'))
    assert settings.models[0]["screening"] == {"norm_bound": 5.0, "action": "refuse"}
    # a --screen flag overrides one key of the file's table and keeps the others
    _, (model,) = merge_settings(settings, (), {"screening": {"action": "clip"}})
    assert model["screening"] == {"norm_bound": 5.0, "action": "clip"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--screen", "action=explode"], "screening.action: must be one of refuse, clip"),
        (["--screen", "norm_bound=abc"], "screening.norm_bound: must be a finite number"),
        (["--screen", "colour=1"], "screening.colour: unknown setting"),
        (["--screen", "norm_bound"], "'norm_bound': expected key=value"),
    ],
)
def test_bad_screen_flags_are_refused_before_serving(flags: list[str], message: str) -> None:
    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(main, ["serve", str(root / "model_specs" / "digits_mlp.json"),
                                       "--data", str(root / "data_modules" / "digits.py"),
                                       "--port", "0", *flags])
    assert result.exit_code != 0
    assert message in result.output
    assert "listening" not in result.output
