"""What the volunteer page and the dashboard read from the server (issue 14, "pages that earn
trust"): the spec's ``project`` block (validation with JSON paths, the model and status answers),
the strategy's effective parameters (defaults filled in, never null where the strategy has a
value), the end conditions, `elapsed` frozen at the end, and the styled multi-model index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.protocol_client import ProtocolClient

from webnn.merge.registry import create_strategy
from webnn.server.app import create_app
from webnn.server.keys import COORDINATOR
from webnn.server.multi import create_multi_app
from webnn.spec import SpecError, load_spec, validate_spec
from webnn.spec.loader import load_spec as load

DIGITS_SPEC = Path(__file__).resolve().parent.parent / "model_specs" / "digits_mlp.json"

PROJECT = {"name": "Digits for everyone", "operator": "Example Lab, University of Nowhere",
           "contact": "mailto:lab@example.org",
           "description": "We train a small digit reader to show that browsers can train together."}


def spec_doc(**extra: object) -> dict:
    return {**json.loads(DIGITS_SPEC.read_text()), **extra}


def test_project_block_is_read_with_its_defaults():
    spec = load_spec(spec_doc(project=PROJECT))
    assert spec.project is not None
    assert spec.project_public() == PROJECT
    minimal = load_spec(spec_doc(project={"operator": "  Ann  "}))
    assert minimal.project_public() == {
        "name": minimal.name, "operator": "Ann", "contact": None,
        "description": minimal.description}
    without = load_spec(spec_doc())
    assert without.project is None
    assert without.project_public()["operator"] is None
    assert without.project_public()["name"] == without.name


def test_bad_project_blocks_are_refused_with_json_paths():
    problems = validate_spec(spec_doc(project={
        "name": " ", "operator": 3, "contact": "javascript:alert(1)", "description": "x" * 2001,
        "oprator": "typo"}))
    by_path = {p.path: p.message for p in problems}
    assert set(by_path) == {"$.project.name", "$.project.operator", "$.project.contact",
                            "$.project.description", "$.project.oprator"}, by_path
    assert "http://, https:// or mailto:" in by_path["$.project.contact"]
    assert "did you mean 'operator'" in by_path["$.project.oprator"]
    assert [p.path for p in validate_spec(spec_doc(project={"name": "P"}))] == [
        "$.project.operator"]
    assert "must be an object" in validate_spec(spec_doc(project="Lab"))[0].message
    with pytest.raises(SpecError):
        load(spec_doc(project={"operator": "Lab", "contact": "https://exa mple.org"}))


def test_project_block_in_a_tfjs_model_json(digits_spec):
    document = digits_spec.compiled.model_json()
    document["webnn"] = {"loss": digits_spec.loss, "project": {"operator": "Lab"}}
    assert load_spec(document).project_public()["operator"] == "Lab"
    document["webnn"]["project"] = {"operator": ""}
    assert [p.path for p in validate_spec(document)] == ["$.webnn.project.operator"]


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("fedasync", {}, {"alpha": 0.6, "staleness_fn": "polynomial", "a": 0.5, "b": 0.0}),
    ("fedasync", {"staleness_fn": "hinge"}, {"a": 10.0, "b": 4.0}),
    ("fedbuff", {"staleness_fn": "hinge", "a": "2"}, {"a": 2.0, "b": 4.0}),
    ("fedopt", {"optimizer": "adam"}, {"server_lr": 0.01, "a": 0.0, "b": 0.0}),
    ("dp", {"k": 40}, {"count_noise": 2.0}),
    ("robust", {"aggregator": "multi_krum", "k": 6, "f": 1}, {"m": 5, "clip": "none"}),
])
def test_effective_parameters_fill_in_the_defaults(name, params, expected):
    values = create_strategy(name, params).effective_params()
    for key, value in expected.items():
        assert values[key] == pytest.approx(value) if isinstance(value, float) else \
            values[key] == value, (key, values)
    if name in ("fedasync", "fedbuff", "fedopt"):
        assert values["a"] is not None and values["b"] is not None


async def test_status_and_model_answers_carry_what_the_pages_show(make_config, serve, http):
    spec = load_spec(spec_doc(project=PROJECT))
    served = await serve(create_app(make_config(
        spec=spec, strategy="fedasync", max_merges=50, max_seconds=3600, target_accuracy=0.9)))
    client = ProtocolClient(http, served.url)
    status = (await client.get("api/v1/status")).body
    assert status["project"] == PROJECT
    assert status["strategy"]["params"]["a"] == 0.5
    assert None not in (status["strategy"]["params"]["a"], status["strategy"]["params"]["b"])
    assert status["endConditions"] == {"targetAccuracy": 0.9, "maxMerges": 50,
                                       "maxSeconds": 3600}
    model = (await client.get("api/v1/model")).body
    assert model["project"] == PROJECT
    joined = await client.join()
    assert joined["model"]["project"] == PROJECT


async def test_elapsed_stops_at_the_end(make_config, serve, http):
    app = create_app(make_config(evaluate_initial=False))
    served = await serve(app)
    coordinator = app[COORDINATOR]
    client = ProtocolClient(http, served.url)
    real = coordinator.clock
    coordinator.clock = lambda: real() + 100.0  # the run's clock moves on by 100 s
    running = (await client.get("api/v1/status")).body["elapsed"]
    assert running >= 100.0
    assert (await client.admin("end", "admin-token-123")).status == 200
    ended = (await client.get("api/v1/status")).body
    assert ended["state"] == "ended"
    coordinator.clock = lambda: real() + 1000.0  # and on by 900 s more after the end
    again = (await client.get("api/v1/status")).body
    assert again["elapsed"] == ended["elapsed"] < 1000.0


async def test_elapsed_of_an_ended_run_stays_frozen_after_a_restart(make_config, serve, http,
                                                                       tmp_path):
    config = make_config(evaluate_initial=False, state_dir=tmp_path / "state")
    first = await serve(create_app(config))
    client = ProtocolClient(http, first.url)
    await client.admin("end", "admin-token-123")
    ended = (await client.get("api/v1/status")).body["elapsed"]
    await first.stop()
    second = await serve(create_app(config))
    status = (await ProtocolClient(http, second.url).get("api/v1/status")).body
    assert status["state"] == "ended"
    assert status["elapsed"] == pytest.approx(ended, abs=1e-3)


async def test_multi_model_index_is_styled_and_lists_the_models(make_config, serve, http):
    apps = {"digits": create_app(make_config()),
            "other": create_app(make_config(spec=load_spec(spec_doc(project=PROJECT))))}
    served = await serve(create_multi_app(apps))
    async with http.get(served.url) as response:
        page = await response.text()
    assert response.status == 200
    assert 'href="models/digits/static/client/style.css"' in page
    assert 'class="card' in page
    assert "Digits for everyone" in page and "Example Lab" in page
    async with http.get(served.url + "models/digits/static/client/style.css") as response:
        assert response.status == 200
