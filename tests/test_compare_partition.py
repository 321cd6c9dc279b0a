"""`wnn compare` partitions: the [partition] table, its defaults and errors, and what each run's
server and client slots get from it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from webnn.compare.config import ConfigError, load_config
from webnn.compare.runner import Prepared, serve_config
from webnn.node_worker import WorkerArgs, WorkerCommand

BASE = """
model = "spec.json"
data = "data.py"
stop = { merges = 50 }
clients = [{ label = "desktop", count = 3 }, { label = "phone", count = 2 }]

[[strategies]]
name = "average"
"""


def write(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "spec.json").write_text("{}")
    (tmp_path / "data.py").write_text("")
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(BASE) + textwrap.dedent(extra))
    return path


def test_partition_table_and_default_shards(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
        [partition]
        kind = "dirichlet"
        alpha = 0.1
    """))
    assert config.partition == {"kind": "dirichlet", "alpha": 0.1}
    resolved = config.partition_config()
    assert (resolved.kind, resolved.alpha, resolved.shards) == ("dirichlet", 0.1, 5)  # clients
    assert config.to_json()["partition"]["shards"] == 5
    explicit = load_config(write(tmp_path, """
        [partition]
        kind = "shards"
        shards = 10
        classes = 1
    """)).partition_config()
    assert (explicit.shards, explicit.classes) == (10, 1)


def test_no_partition_is_iid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.partition is None and config.partition_config().is_iid


@pytest.mark.parametrize(("table", "message"), [
    ('kind = "dirichlet"\nalpha = 0', "partition.alpha: must be > 0, got 0"),
    ('kind = "skew"', "partition.kind: expected one of iid, dirichlet, shards, by_key"),
    ('kind = "shards"\nclasses = "two"', 'partition.classes: expected an integer, got "two"'),
    ('kind = "dirichlet"\nbeta = 1', "partition.beta: unknown key"),
    ('kind = "dirichlet"\nshards = 0', "partition.shards: must be >= 1, got 0"),
])
def test_bad_partition_keys_are_named(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, f"[partition]\n{table}\n"))
    assert any(p.startswith(message) for p in raised.value.problems), raised.value.problems


def test_runs_get_the_partition_and_slots_their_volunteer_id(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[partition]\nkind = "dirichlet"\nalpha = 0.1\n'))
    prepared = Prepared(spec=object(), dataset=object(), command=None)  # type: ignore[arg-type]
    serve = serve_config(config, prepared, config.strategies[0], seed=3)
    assert serve.partition == config.partition_config()
    argv = WorkerArgs(server_url="http://127.0.0.1:1/", name="phone-2",
                      volunteer_id="phone-2").argv(WorkerCommand("node", Path("w.js")))
    assert argv[-2:] == ["--volunteer-id", "phone-2"]
