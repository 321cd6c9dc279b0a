"""The bundled Tiny Shakespeare corpus and the text data module's corpus, ``.gz`` and speaker-key
options: the exact bytes ship in the package, load through the data module, and a ``by_key``
partition over speaking roles serves each volunteer windows of its own roles over real HTTP."""

from __future__ import annotations

import gzip
import hashlib
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.data import (
    DataModuleError,
    check_dataset,
    corpora,
    import_data_module,
    load_data_module,
)
from webnn.data.partition import PartitionConfig, partition
from webnn.server.app import create_app
from webnn.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
TEXT = str(ROOT / "data_modules" / "text.py")
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
PLAY = ("ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
        "JULIET:\nAy me!\n\nROMEO:\nShe speaks:\nO, speak again, bright angel!\n\n"
        "Nurse:\nAnon, anon!\n\n") * 6


def text_module():
    return import_data_module(TEXT)[0]


def test_the_bundled_corpus_is_tiny_shakespeare_byte_for_byte() -> None:
    data = corpora.read_corpus("shakespeare")
    assert len(data) == 1_115_394
    assert hashlib.sha256(data).hexdigest() == SHAKESPEARE_SHA256
    assert data.startswith(b"First Citizen:\nBefore we proceed any further, hear me speak.\n")
    assert (corpora.FOLDER / "README.md").read_text().count(SHAKESPEARE_SHA256) == 1


def test_the_corpus_ships_in_the_wheel_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["webnn.data.corpora"]
    folder = ROOT / "webnn" / "data" / "corpora"
    for name in ("tinyshakespeare.txt.gz", "README.md"):
        assert (folder / name).is_file()
        assert any(fnmatch(name, p) for p in patterns), (name, patterns)
    assert (folder / "__init__.py").is_file()  # a package: packages.find (webnn*) takes it


def test_the_data_module_reads_the_bundled_corpus() -> None:
    data = load_data_module(TEXT, {"corpus": "shakespeare", "seq_len": "12",
                                   "validation_limit": "2048"})
    text = text_module()
    tokens = text.encode(corpora.read_corpus("shakespeare").decode())
    assert len(data.tokens) == 1_115_394 and (data.tokens != text.UNKNOWN).all()
    split = 1_115_394 - 111_539
    assert data.split == split and data.num_train == split - 12 and data.num_validation == 2048
    np.testing.assert_array_equal(data.tokens, tokens)
    assert text.decode(data.train_examples(np.array([0])).x[0]) == "First Citizen:"[:12]
    assert check_dataset(data, load_spec(ROOT / "bench" / "specs" / "text_mlp.json")) == []


def test_a_gz_path_gives_what_the_plain_file_gives(tmp_path: Path) -> None:
    plain, packed = tmp_path / "play.txt", tmp_path / "play.txt.gz"
    plain.write_text(PLAY)
    packed.write_bytes(gzip.compress(PLAY.encode()))
    a = load_data_module(TEXT, {"path": str(plain), "seq_len": "8"})
    b = load_data_module(TEXT, {"path": str(packed), "seq_len": "8"})
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert (a.split, a.num_validation) == (b.split, b.num_validation)


def test_corpus_and_path_errors_name_the_option(tmp_path: Path) -> None:
    plain = tmp_path / "play.txt"
    plain.write_text(PLAY)
    with pytest.raises(DataModuleError, match="give exactly one of the options path .* and "
                                              "corpus"):
        load_data_module(TEXT, {})
    with pytest.raises(DataModuleError, match="exactly one .*got path='.*play.txt' and "
                                              "corpus='shakespeare'"):
        load_data_module(TEXT, {"path": str(plain), "corpus": "shakespeare"})
    with pytest.raises(DataModuleError, match="option corpus: unknown corpus 'hamlet'; "
                                              "bundled: shakespeare"):
        load_data_module(TEXT, {"corpus": "hamlet"})
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DataModuleError, match="broken.txt.gz: not a readable gzip file"):
        load_data_module(TEXT, {"path": str(broken)})
    with pytest.raises(DataModuleError, match="option keys must be one of '', 'speaker', "
                                              "got 'play'"):
        load_data_module(TEXT, {"path": str(plain), "keys": "play"})
    prose = tmp_path / "prose.txt"
    prose.write_text("No speeches here, only prose.\n" * 20)
    with pytest.raises(DataModuleError, match="keys=speaker: .*prose.txt has no speech "
                                              "headings"):
        load_data_module(TEXT, {"path": str(prose), "keys": "speaker"})


def test_a_changed_bundled_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    fake = tmp_path / "fake.txt.gz"
    fake.write_bytes(gzip.compress(b"Not Shakespeare.\n"))
    monkeypatch.setitem(corpora.CORPORA, "shakespeare",
                        corpora.Corpus("shakespeare", str(fake), 1_115_394, SHAKESPEARE_SHA256))
    with pytest.raises(DataModuleError, match="fake.txt.gz holds 17 bytes with SHA-256 .*, "
                                              "expected 1115394 bytes"):
        load_data_module(TEXT, {"corpus": "shakespeare"})


def test_speaker_keys_give_each_window_the_role_of_the_character_it_predicts(tmp_path: Path
                                                                            ) -> None:
    path = tmp_path / "play.txt"
    path.write_text("Prologue, spoken by no one.\n\n" + PLAY)
    data = load_data_module(TEXT, {"path": str(path), "seq_len": "6", "keys": "speaker"})
    assert data.key_names == ["", "ROMEO", "JULIET", "Nurse"]
    keys = data.train_keys()
    assert keys.shape == (data.num_train,)
    text = text_module()
    training = text.decode(data.tokens[:data.split])
    expected = []  # by hand: the last heading at or before the predicted character
    role = ""
    for position in range(len(training)):
        for name in ("ROMEO", "JULIET", "Nurse"):
            if training.startswith(name + ":\n", position) and (
                    position == 0 or training[position - 2:position] == "\n\n"):
                role = name
        expected.append(data.key_names.index(role))
    np.testing.assert_array_equal(keys, expected[6:])
    assert keys[0] == 0  # the prologue has no speaker
    romeo = np.flatnonzero(keys == 1)
    first = data.train_examples(romeo[:1])
    assert text.decode(first.y) == "R"  # "...no one.\n\n" predicts the heading's first letter
    plain = load_data_module(TEXT, {"path": str(path), "seq_len": "6"})
    assert plain.train_keys() is None


def test_shakespeare_has_its_roles_as_keys() -> None:
    data = load_data_module(TEXT, {"corpus": "shakespeare", "seq_len": "12", "keys": "speaker"})
    keys = data.train_keys()
    names = data.key_names
    assert {"ROMEO", "JULIET", "First Citizen", "KING RICHARD III"} <= set(names)
    assert len(keys) == data.num_train and keys.min() >= 1  # the text opens with a speech
    shards = partition(PartitionConfig("by_key", 16), seed=0, keys=keys)
    assert sum(len(s) for s in shards) == data.num_train and min(len(s) for s in shards) > 0


async def test_a_by_key_partition_serves_each_volunteer_its_roles_over_http(
        make_config, serve, http, tmp_path: Path) -> None:
    path = tmp_path / "play.txt"
    path.write_text(PLAY * 4)
    options = {"path": str(path), "seq_len": "12", "keys": "speaker"}
    config = make_config(spec=str(ROOT / "bench" / "specs" / "text_mlp.json"), data=TEXT,
                         data_options=options, partition={"kind": "by_key"},
                         eval_chunk_size=256, evaluate_initial=False)
    served = await serve(create_app(config))
    data = load_data_module(TEXT, options)
    keys = data.train_keys()
    shards = partition(PartitionConfig("by_key"), 1, keys=keys)
    assert len(shards) == 3  # ROMEO, JULIET, Nurse (no text before the first speech)
    seen = {}
    for volunteer in ("v1", "v2", "v3"):
        client = ProtocolClient(http, served.url)
        answer = await client.request("POST", "api/v1/join", session=False, json_body={
            "client": {"kind": "python", "name": "test", "volunteerId": volunteer}})
        assert answer.status == 200, answer.body
        client.token, client.client_id = answer.body["token"], answer.body["clientId"]
        task = (await client.task("train"))["task"]
        _, tensors = await client.batch(task)
        listed = (await client.get("api/v1/clients")).body["clients"]
        shard = next(c["shard"] for c in listed if c["clientId"] == client.client_id)
        windows = data.train_examples(shards[shard])
        allowed = {row.tobytes() for row in np.c_[windows.x, windows.y].astype(np.int32)}
        got = np.c_[tensors["x"], tensors["y"]].astype(np.int32)
        assert {row.tobytes() for row in got} <= allowed
        assert set(keys[shards[shard]].tolist()) == {shard + 1}  # one role per shard
        seen[volunteer] = shard
    assert sorted(seen.values()) == [0, 1, 2]
