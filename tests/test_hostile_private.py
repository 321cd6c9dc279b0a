"""Private operations: `private_status` keeps the client list, history and events to joined
sessions and the admin; client-supplied strings are stripped of control and format characters and
length-bounded; the multi-model index page escapes what it shows."""

from __future__ import annotations

import pytest
from support.hostile import REPO, strict_loads
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.multi import create_multi_app

ADMIN = "admin-token-123"
PRIVATE_VIEWS = ("api/v1/clients", "api/v1/history", "api/v1/events")


@pytest.fixture
async def private(make_config, serve, http):
    served = await serve(create_app(make_config(private_status=True)))
    return served, ProtocolClient(http, served.url)


@pytest.mark.parametrize("path", PRIVATE_VIEWS)
async def test_private_views_refuse_strangers(private, path):
    _, stranger = private
    for headers in ({}, {"X-WebNN-Session": "not-a-session"},
                    {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer \u00e9"}):
        answer = await stranger.get(path, headers=headers)
        assert answer.status == 401 and answer.code == "private_status", (headers, answer.body)
    status = await stranger.get("api/v1/status")
    assert status.status == 200  # the state stays public: the volunteer page shows it


@pytest.mark.parametrize("path", ("api/v1/clients", "api/v1/history"))
async def test_private_views_answer_sessions_and_the_admin(private, path):
    _, client = private
    await client.join()
    assert (await client.get(path)).status == 200
    admin = await client.get(path, session=False, headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status == 200


async def test_private_events_stream_for_the_admin(private, http):
    served, client = private
    async with http.get(client.url("api/v1/events"),
                        headers={"Authorization": f"Bearer {ADMIN}"}) as stream:
        assert stream.status == 200
        assert (await stream.content.readline()).startswith(b"event: state")


async def test_open_by_default(make_config, serve, http):
    served = await serve(create_app(make_config()))
    stranger = ProtocolClient(http, served.url)
    for path in ("api/v1/clients", "api/v1/history"):
        assert (await stranger.get(path)).status == 200


async def test_client_strings_are_sanitised_and_bounded(make_config, serve, http):
    served = await serve(create_app(make_config()))
    client = ProtocolClient(http, served.url)
    name = "eve\u202e\u200b\x1b[31m<b>\x00\x07 "
    answer = await client.request("POST", "api/v1/join", session=False, json_body={
        "client": {"kind": "node", "name": name, "userAgent": "ua\r\nX-Injected: 1"}})
    assert answer.status == 200
    rows = strict_loads((await client.get("api/v1/clients")).raw)["clients"]
    assert rows[0]["name"] == "eve[31m<b>"  # controls and bidi/zero-width gone; escaped on show
    assert rows[0]["userAgent"] == "uaX-Injected: 1"
    too_long = await client.request("POST", "api/v1/join", session=False,
                                    json_body={"client": {"name": "x" * 201}})
    assert too_long.status == 400 and too_long.code == "bad_field"
    assert too_long.body["error"]["message"].startswith("$.client.name")


async def test_multi_index_escapes_model_facts(make_config, serve, http):
    app = create_multi_app({"a": create_app(make_config())})
    served = await serve(app)
    async with http.get(served.url) as page:
        text = await page.text()
    assert page.status == 200 and "<script" not in text
    async with http.get(served.url + "no/such/page") as missing:
        body = strict_loads(await missing.read())
    assert missing.status == 404 and body["error"]["code"] == "not_found"


def test_private_status_from_a_toml_file(tmp_path):
    from webnn.server.commands import merge_settings, plan_models
    from webnn.server.toml_config import ConfigError, load_toml

    file = tmp_path / "serve.toml"
    file.write_text('spec = "{}"\ndata = "{}"\nprivate_status = true\n'.format(
        *(str(p) for p in (REPO / "model_specs" / "digits_mlp.json",
                           REPO / "data_modules" / "digits.py"))))
    process, models = merge_settings(load_toml(file), (), {})
    assert plan_models(process, models, mounted=False)[0].config.private_status is True
    file.write_text('spec = "x.json"\nprivate_status = "yes"\n')
    with pytest.raises(ConfigError, match="private_status: expected a boolean"):
        load_toml(file)


def test_private_status_flag_reaches_the_model_settings():
    from webnn.server.commands import merge_settings, serve
    from webnn.server.toml_config import FileSettings

    spec = str(REPO / "model_specs" / "digits_mlp.json")
    for args, expected in ((["--private-status"], True), ([], None),
                           (["--public-status"], False)):
        params = serve.make_context("serve", [spec, *args]).params
        assert params["private_status"] is expected
        _, models = merge_settings(FileSettings(), (spec,), {"private_status": expected})
        assert models[0].get("private_status") is expected
