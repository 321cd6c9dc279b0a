"""Hostile input, by family, against one real server on loopback (hypothesis, reproducible).

Each example sends one request built to be invalid (see support.hostile) and checks the promises
of docs/security.md: no 5xx, every 4xx is protocol JSON, a refused update or evaluation is counted
under its code in `status.rejected`, and a refused request changes nothing (version, steps,
merges, history, weight bytes; weights stay finite).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile import (
    JOIN_TOKEN,
    JSON_TYPE,
    Harness,
    Request,
    Target,
    assert_unchanged,
    check_answer,
    describe,
    frame_request_to,
    header_request_to,
    hostile_app,
    json_request_to,
    path_request_to,
    refusals,
    version_text,
)

HOSTILE = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
# Codes a refused submission (update or evaluation) is counted under in status.rejected.
SUBMISSION_STATUSES = {400, 413, 415}




@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    served = Harness(hostile_app)
    yield served
    served.close()


@pytest.fixture(scope="module")
def target(harness: Harness) -> Target:
    return harness.target()


def _submission(harness: Harness, target: Target, request: Request) -> None:
    """Send a request that must be refused as an invalid submission; check it is counted."""
    before = harness.snapshot(target)
    answer = harness.send(request)
    check_answer(answer)
    assert answer.status in SUBMISSION_STATUSES, (answer.status, answer.raw[:300],
                                                  describe(request))
    after = harness.snapshot(target)
    assert refusals(before, after) == {answer.code: 1}, (answer.code, before.rejected,
                                                         after.rejected)
    assert_unchanged(before, after)


@HOSTILE
@given(data=st.data())
def test_random_frames_are_refused_counted_and_change_nothing(harness, target, data):
    _submission(harness, target, data.draw(frame_request_to(target)))


@HOSTILE
@given(data=st.data())
def test_random_json_bodies_never_fail_the_server(harness, target, data):
    request = data.draw(json_request_to(target))
    if "/evaluation" in request.path:
        _submission(harness, target, request)
        return
    before = harness.snapshot(target)
    answer = harness.send(request)
    check_answer(answer)
    if not request.path.endswith("join"):
        assert 400 <= answer.status < 500, (request.path, answer.status, answer.raw[:200])
    assert_unchanged(before, harness.snapshot(target))


@HOSTILE
@given(data=st.data())
def test_random_auth_session_and_content_type_headers_are_refused(harness, target, data):
    request = data.draw(header_request_to(target))
    before = harness.snapshot(target)
    answer = harness.send(request)
    check_answer(answer)
    if request.path.startswith(("api/v1/admin", "api/v1/export")):
        expected = "admin_token_required"
    elif request.path == "api/v1/join":
        expected = "join_token_required" if answer.status != 429 else "rate_limited"
    elif request.headers.get("X-WebNN-Session") == target.fuzzer.token:
        expected = "wrong_content_type"
    else:
        expected = "unknown_session"
    assert answer.code == expected, (describe(request), answer.status, answer.raw[:200])
    assert_unchanged(before, harness.snapshot(target))


@settings(HOSTILE, max_examples=300)
@given(data=st.data())
def test_random_paths_and_methods_answer_json_or_content(harness, target, data):
    request = data.draw(path_request_to(target))
    before = harness.snapshot(target)
    answer = harness.send(request)
    check_answer(answer)
    assert_unchanged(before, harness.snapshot(target))


@HOSTILE
@given(text=version_text())
def test_weights_versions_take_ascii_digits_only(harness, target, text):
    from support.hostile import _quoted

    answer = harness.send(Request("GET", "api/v1/weights/" + _quoted(text),
                                  {"X-WebNN-Session": target.victim.token or ""}))
    check_answer(answer)
    held = text.isascii() and text.isdigit() and len(text) <= 18 and int(text) == 0
    if held:
        assert answer.status == 200 and len(answer.raw) == target.weights.nbytes
    else:
        assert answer.status == 404 and answer.code == "unknown_version", (text, answer.raw)


def test_deep_json_is_a_counted_bad_json_not_a_500(harness, target):
    depth = 5000
    request = Request("POST", target.evaluate["urls"]["submit"].lstrip("/"),
                      {"Content-Type": JSON_TYPE, "X-WebNN-Session": target.victim.token or ""},
                      b"[" * depth + b"]" * depth)
    before = harness.snapshot(target)
    answer = harness.send(request)
    assert answer.status == 400 and answer.code == "bad_json"
    assert f"{depth} levels deep" in answer.json()["error"]["message"]
    assert refusals(before, harness.snapshot(target)) == {"bad_json": 1}


def test_missing_static_files_and_directories_are_json_404(harness, target):
    for path in ("static/client/nope.js", "static/client/", "static/tfjs/", "static/client/..",
                 "static/client/%2e%2e/%2e%2e/pyproject.toml", "no/such/route"):
        answer = harness.send(Request("GET", path))
        assert answer.status == 404 and answer.code == "not_found", (path, answer.raw)
    answer = harness.send(Request("GET", "static/client/frame.js"))
    assert answer.status == 200 and b"encodeFrame" in answer.raw
    answer = harness.send(Request("DELETE", "api/v1/status"))
    assert answer.status == 405 and answer.code == "method_not_allowed"


def _refused_total(harness: Harness, code: str) -> float:
    text = harness.send(Request("GET", "metrics")).raw.decode()
    line = f'webnn_requests_refused_total{{code="{code}"}} '
    return sum(float(row[len(line):]) for row in text.splitlines() if row.startswith(line))


def test_every_error_answer_is_counted_in_metrics_by_code(harness, target):
    before = {code: _refused_total(harness, code)
              for code in ("not_found", "unknown_session", "admin_token_required", "bad_json")}
    harness.send(Request("GET", "no/such/route"))
    harness.send(Request("GET", "api/v1/model", {"X-WebNN-Session": "\u00e9t\u00e9"}))
    harness.send(Request("POST", "api/v1/admin/end", {"Authorization": "Bearer \u2460"}))
    harness.send(Request("POST", "api/v1/join", {"Authorization": f"Bearer {JOIN_TOKEN}",
                                                 "Content-Type": JSON_TYPE}, b"[" * 64))
    after = {code: _refused_total(harness, code) for code in before}
    assert {code: after[code] - before[code] for code in before} == {
        "not_found": 1, "unknown_session": 1, "admin_token_required": 1, "bad_json": 1}
