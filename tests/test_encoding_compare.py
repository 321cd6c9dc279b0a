"""`wnn compare` and encodings: the `encoding` / `weights_encoding` keys of client groups and
strategy entries, the worker command line they make, and the summary's bytes per update."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from webnn.compare.config import ConfigError, load_config
from webnn.compare.results import Run, RunRecord, SeriesRow
from webnn.compare.summary import summarize, table_rows
from webnn.node_worker import WorkerArgs, WorkerCommand

ROOT = Path(__file__).resolve().parent.parent


def config(tmp_path: Path, entries: str, groups: str = "[[clients]]\ncount = 2\n") -> Path:
    path = tmp_path / "enc.toml"
    path.write_text(f'''name = "enc"
model = "{ROOT / 'model_specs' / 'digits_mlp.json'}"
data = "{ROOT / 'data_modules' / 'digits.py'}"
seeds = [1]
[stop]
merges = 10
{entries}
{groups}''')
    return path


def test_the_shipped_experiment_parses_with_one_encoding_per_entry():
    parsed = load_config(ROOT / "experiments" / "encodings.toml")
    group = parsed.clients[0]
    picks = {e.label: e.encodings_for(group) for e in parsed.strategies}
    assert picks == {"f32": ("f32", "f32"), "f16": ("f16", "f16"), "q8": ("q8", "f32"),
                     "q8-w16": ("q8", "f16")}
    assert len(parsed.seeds) >= 3 and parsed.stop.merges


def test_entry_encoding_overrides_the_group(tmp_path):
    parsed = load_config(config(
        tmp_path, '[[strategies]]\nname = "average"\n[[strategies]]\nlabel = "b"\n'
        'name = "average"\nencoding = "f16"\n',
        '[[clients]]\ncount = 1\nencoding = "q8"\nweights_encoding = "f16"\n'))
    group = parsed.clients[0]
    assert parsed.strategies[0].encodings_for(group) == ("q8", "f16")
    assert parsed.strategies[1].encodings_for(group) == ("f16", "f16")


@pytest.mark.parametrize(("entries", "groups", "words"), [
    ('[[strategies]]\nname = "average"\nencoding = "q4"\n', "[[clients]]\ncount = 1\n",
     "strategies[0].encoding: expected one of q8, f16, f32"),
    ('[[strategies]]\nname = "average"\n', '[[clients]]\ncount = 1\nweights_encoding = "q8"\n',
     "clients[0].weights_encoding: expected one of f16, f32"),
])
def test_bad_encoding_keys_name_their_path(tmp_path, entries, groups, words):
    with pytest.raises(ConfigError) as caught:
        load_config(config(tmp_path, entries, groups))
    assert words in str(caught.value)


def test_worker_argv_offers_only_the_named_encodings():
    command = WorkerCommand("node", Path("wnn-worker.js"))
    argv = WorkerArgs("http://h/", "w", encoding="q8", weights_encoding="f16").argv(command)
    assert argv[-4:] == ["--encoding", "q8", "--weights-encoding", "f16"]
    assert "--encoding" not in WorkerArgs("http://h/", "w").argv(command)


def _run(label: str, seed: int, traffic: dict) -> Run:
    record = RunRecord(label=label, strategy="average", seed=seed, status="ok",
                       final_status={"traffic": {"updates": traffic}})
    row = SeriesRow(time=1.0, version=10, steps=100, merges=10, val_loss=0.5, val_accuracy=0.9,
                    updates_accepted=10, updates_rejected=0, mean_staleness=1.0)
    return Run(record, [row])


def test_summary_shows_the_encoding_and_mean_bytes_per_update():
    runs = [_run("f32", 1, {"f32": {"count": 10, "bytes": 20000}}),
            _run("q8", 1, {"q8": {"count": 4, "bytes": 2000}}),
            _run("q8", 2, {"q8": {"count": 6, "bytes": 4200}})]
    summaries = summarize(runs, None)
    assert summaries[0].update_bytes_mean == 2000 and summaries[0].update_encodings == "f32"
    assert math.isclose(summaries[1].update_bytes_mean, (500 + 700) / 2)
    header, rows = table_rows(summaries)
    assert header[-2:] == ["encoding", "bytes/update"]
    assert rows[1][-2:] == ["q8", "600"]
    # runs without traffic figures (older results) keep the old table
    plain = [_run("a", 1, {})]
    assert "bytes/update" not in table_rows(summarize(plain, None))[0]
