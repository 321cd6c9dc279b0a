"""Pre-aggregation (`Strategy.fold`/`merge_partial`) against one-by-one merges, the stream
records and the labelled /metrics text of the scale-out package (no Redis needed)."""

from __future__ import annotations

import numpy as np
import pytest

from webnn.cluster.metrics import merge_texts, with_label
from webnn.cluster.records import (
    attach,
    decode_entry,
    detach,
    load_state_bytes,
    partial_fields,
    payload_key,
    state_bytes,
)
from webnn.merge.base import ModelState, Update
from webnn.merge.registry import create_strategy

SIZE = 1000


def _updates(rng: np.random.Generator, base: np.ndarray, count: int) -> list[Update]:
    return [Update(weights=(base + rng.normal(0, 0.1, SIZE)).astype(np.float32), base_version=0,
                   base_steps=3, local_steps=2, staleness=i % 3, client=f"c{i}",
                   base_weights=base) for i in range(count)]


def _copy(update: Update) -> Update:
    return Update(weights=update.weights.copy(), base_version=update.base_version,
                  base_steps=update.base_steps, local_steps=update.local_steps,
                  staleness=update.staleness, client=update.client,
                  base_weights=update.base_weights)


@pytest.mark.parametrize("name", ["average", "fedbuff"])
def test_a_partial_of_one_update_merges_exactly_like_the_update(name):
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, SIZE).astype(np.float32)
    direct, combined = create_strategy(name, {"k": 1} if name == "fedbuff" else {}), \
        create_strategy(name, {"k": 1} if name == "fedbuff" else {})
    assert direct.combinable
    one, two = ModelState(base.copy()), ModelState(base.copy())
    for update in _updates(rng, base, 5):
        direct.merge(one, _copy(update))
        combined.merge_partial(two, combined.fold(None, _copy(update)))
    np.testing.assert_array_equal(one.weights, two.weights)
    assert one.steps == two.steps


@pytest.mark.parametrize("name", ["average", "fedbuff"])
def test_a_partial_of_several_updates_matches_merging_them_in_turn(name):
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, SIZE).astype(np.float32)
    params = {"k": 6} if name == "fedbuff" else {}
    direct, combined = create_strategy(name, params), create_strategy(name, params)
    updates = _updates(rng, base, 6)
    one, two = ModelState(base.copy()), ModelState(base.copy())
    for update in updates:
        direct.merge(one, _copy(update))
    partial = None
    for update in updates:
        partial = combined.fold(partial, _copy(update))
    assert partial is not None and partial.count == 6
    assert combined.merge_partial(two, partial)
    np.testing.assert_allclose(one.weights, two.weights, rtol=1e-5, atol=1e-6)
    assert one.steps == two.steps


def test_strategies_that_cannot_combine_say_so():
    strategy = create_strategy("weighted", {})
    assert not strategy.combinable
    with pytest.raises(ValueError, match="does not combine"):
        strategy.fold(None, _updates(np.random.default_rng(0), np.zeros(SIZE, np.float32), 1)[0])


def test_a_partial_survives_the_stream_record_and_state_round_trips():
    rng = np.random.default_rng(3)
    strategy = create_strategy("fedbuff", {"k": 4})
    base = np.zeros(SIZE, np.float32)
    partial = strategy.fold(None, _updates(rng, base, 1)[0])
    fields = partial_fields(["t-1", "t-2"], partial, "frontend-0")
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    entry = decode_entry(b"5-0", {k.encode(): v if isinstance(v, bytes) else v.encode()
                                  for k, v in pairs.items()})
    assert entry.tasks == ["t-1", "t-2"] and entry.frontend == "frontend-0"
    assert entry.partial is not None
    np.testing.assert_array_equal(entry.partial.total, partial.total)
    strategy.merge_partial(ModelState(base.copy()), entry.partial)
    state = load_state_bytes(state_bytes(strategy.state()))
    assert state.meta["count"] == 1
    np.testing.assert_array_equal(state.arrays["delta_sum"], strategy.state().arrays["delta_sum"])


def test_metrics_of_several_processes_merge_into_one_exposition():
    text = ("# HELP webnn_merges_total Updates\n# TYPE webnn_merges_total counter\n"
            "webnn_merges_total 3.0\n# HELP webnn_req_total Requests\n"
            "# TYPE webnn_req_total counter\nwebnn_req_total{code=\"busy\"} 1.0\n")
    merged = merge_texts([with_label(text, "frontend-0"), with_label(text, "merger-0")])
    lines = merged.splitlines()
    assert lines.count("# HELP webnn_merges_total Updates") == 1
    assert 'webnn_merges_total{process="frontend-0"} 3.0' in lines
    assert 'webnn_merges_total{process="merger-0"} 3.0' in lines
    assert 'webnn_req_total{process="merger-0",code="busy"} 1.0' in lines
    assert lines.index('webnn_merges_total{process="merger-0"} 3.0') < lines.index(
        "# HELP webnn_req_total Requests")


def test_cluster_settings_report_every_problem_at_once():
    from webnn.cluster.settings import ClusterSettings, ClusterSettingsError
    from webnn.settings.errors import ConfigError

    with pytest.raises(ClusterSettingsError) as caught:
        ClusterSettings(redis_url="http://x", role="boss", processes=0, combine_max=65)
    assert isinstance(caught.value, ConfigError)
    assert {p.path for p in caught.value.problems} == {"redis_url", "role", "processes",
                                                       "combine_max"}


def test_kept_versions_fill_their_memory_budget_within_bounds_unless_set():
    from webnn.cluster.settings import ClusterSettings, ClusterSettingsError, kept_versions

    assert kept_versions(None, 4_007_260) == (512 << 20) // 4_007_260 == 133  # 1M parameters
    assert kept_versions(None, 40_000_000) == 32  # 10M: at least 32, as before
    assert kept_versions(None, 19_000) == 1024  # a small model: at most 1024
    assert kept_versions(7, 4_007_260) == 7  # --keep-versions wins
    assert ClusterSettings(redis_url="redis://h:1/0").keep_versions is None
    with pytest.raises(ClusterSettingsError, match="keep_versions"):
        ClusterSettings(redis_url="redis://h:1/0", keep_versions=1)


def test_cluster_settings_from_the_serve_process_settings():
    from webnn.cluster.settings import ClusterSettings

    settings = ClusterSettings.from_process({"redis": "redis://h:1/0", "keep_stream": True,
                                             "processes": 3, "lock_ms": 500, "host": "x"})
    assert settings.redis_url == "redis://h:1/0" and not settings.trim_stream
    assert settings.processes == 3 and settings.lock_ms == 500 and settings.mergers == 2


def test_wnn_serve_refuses_a_bad_redis_url_before_starting_anything():
    from click.testing import CliRunner

    from webnn.cli import main

    result = CliRunner().invoke(main, ["serve", "--redis", "http://h:1", "--processes", "2"])
    assert result.exit_code != 0
    assert "redis: must start with redis://" in result.output, result.output


def test_an_entry_detached_from_its_array_decodes_once_the_array_is_attached():
    rng = np.random.default_rng(4)
    strategy = create_strategy("fedbuff", {"k": 4})
    partial = strategy.fold(None, _updates(rng, np.zeros(SIZE, np.float32), 1)[0])
    small, data = detach(partial_fields(["t-1"], partial, "frontend-0"), "wnn:r:payload:x")
    assert all(not isinstance(v, bytes) for v in small), "only small fields stay in the entry"
    stored = {k.encode(): v.encode() for k, v in zip(small[::2], small[1::2], strict=True)}
    assert payload_key(stored) == "wnn:r:payload:x"
    with pytest.raises(ValueError, match=r"stream entry 6-0: its array \('wnn:r:payload:x'\)"):
        decode_entry(b"6-0", stored)
    entry = decode_entry(b"6-0", attach(stored, data))
    assert entry.partial is not None and entry.tasks == ["t-1"]
    np.testing.assert_array_equal(entry.partial.total, partial.total)
    with pytest.raises(ValueError, match="last field must be one of"):
        detach(["kind", "partial"], "k")


async def test_a_group_waits_for_bodies_on_their_way_and_closes_when_none_is_left():
    import asyncio

    from webnn.cluster.combiner import Combiner

    written: list[list[str]] = []

    async def commit(tasks, answers, fields):
        written.append(list(tasks))
        return f"{len(written)}-0"

    checked = asyncio.Event()
    calls = 0
    on_their_way = {"t-2"}

    def pending() -> int:
        nonlocal calls
        calls += 1
        if calls >= 2:  # the window passed twice with t-2 on its way: the group stayed open
            checked.set()
        return len(on_their_way)

    strategy = create_strategy("fedbuff", {"k": 4})
    rng = np.random.default_rng(5)
    one, two, three = _updates(rng, np.zeros(SIZE, np.float32), 3)
    # a window long enough that a stalled event loop on a loaded machine does not run past the
    # group's bound (8 windows) between `checked` and the second update (it flapped at 2 ms)
    combiner = Combiner(strategy, commit, max_count=16, window=0.05, label="f", pending=pending)
    first = asyncio.ensure_future(combiner.add("t-1", one, "{}"))
    await checked.wait()
    assert not written and combiner.waiting == 1
    on_their_way.clear()
    second = await combiner.add("t-2", two, "{}")  # nothing else on its way: it closes
    assert await first == second == "1-0" and written == [["t-1", "t-2"]]
    assert combiner.sizes == [2] and combiner.waiting == 0
    # nothing pending: a lone update closes its group after one window
    assert await combiner.add("t-3", three, "{}") == "2-0" and written[-1] == ["t-3"]
