"""Overlap as a `wnn compare` setting: a strategy entry's `overlap` reaches its Node workers'
command lines (``--overlap`` / ``--no-overlap``; unset: the worker's default), and a value that
is not a boolean is refused naming the field. The shipped overlap comparison config loads."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from webnn.compare.config import ConfigError, load_config
from webnn.node_worker import WorkerArgs, WorkerCommand

ROOT = Path(__file__).resolve().parents[1]
BASE = """
model = "spec.json"
data = "data.py"
stop = { merges = 50 }
clients = [{ label = "volunteer", count = 2 }]
"""
COMMAND = WorkerCommand("node", Path("w.js"))


def write(tmp_path: Path, strategies: str) -> Path:
    (tmp_path / "spec.json").write_text("{}")
    (tmp_path / "data.py").write_text("")
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(BASE) + textwrap.dedent(strategies))
    return path


def test_entries_overlap_on_off_or_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
        [[strategies]]
        label = "on"
        name = "average"
        overlap = true

        [[strategies]]
        label = "off"
        name = "average"
        overlap = false

        [[strategies]]
        name = "average"
    """))
    assert [entry.overlap for entry in config.strategies] == [True, False, None]


def test_worker_argv_carries_overlap_only_when_set() -> None:
    def argv(overlap: bool | None) -> list[str]:
        return WorkerArgs("http://127.0.0.1:1/", "w", overlap=overlap).argv(COMMAND)

    assert argv(True)[-1] == "--overlap"
    assert argv(False)[-1] == "--no-overlap"
    assert not {"--overlap", "--no-overlap"} & set(argv(None))


def test_overlap_must_be_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [[strategies]]
        name = "average"
        overlap = "yes"
    """)
    with pytest.raises(ConfigError, match=r"overlap"):
        load_config(path)


def test_the_overlap_comparison_config_loads() -> None:
    config = load_config(ROOT / "bench" / "client_efficiency_overlap.toml")
    assert [(entry.label, entry.overlap) for entry in config.strategies] == [
        ("follow-ups", False), ("overlap", True)]
    assert len(config.seeds) >= 3


def test_a_compare_tab_gets_overlap_in_its_page_url() -> None:
    from urllib.parse import parse_qs, urlsplit

    from webnn.compare.browsers import BrowserSlot, Chromium

    def query(overlap: bool | None) -> dict[str, list[str]]:
        slot = BrowserSlot(name="tab-1", chromium=Chromium(), server_url="http://127.0.0.1:1/",
                           overlap=overlap)
        return parse_qs(urlsplit(slot.page_url).query)

    assert query(True)["overlap"] == ["1"]
    assert query(False)["overlap"] == ["0"]
    assert "overlap" not in query(None) and query(None)["autostart"] == ["1"]
