"""The console of `wnn serve`: a real server with a real local Node worker prints its URLs, the
admin token once in a box, a status line every few seconds and one line format, no per-task lines
unless --verbose and no TF.js banner; without --state-dir it says progress is lost; with one the
admin token is kept (0600) across restarts. Unit tests cover the verbosities and the status line.

Tests wait on events (a status line reporting merges, a per-task line), never on fixed sleeps.
"""

from __future__ import annotations

import re
import signal
import stat
from pathlib import Path

import pytest
from support.serve_cli import (
    DIGITS_DATA,
    DIGITS_SPEC,
    ROOT,
    ServeProcess,
    start_serve,
    wait_for,
)

from webnn.server.console import (
    TOKEN_FILE,
    Console,
    StatusLine,
    Verbosity,
    admin_token_box,
    resolve_admin_token,
)

WORKER = ROOT / "client_js" / "bin" / "wnn-worker.js"
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d \[[^\]]+\] ")
STATUS_WITH_MERGES = r"\[status\] v\d+ \| [1-9]\d* merges"
TASK_LINE = r"\[worker-1\] task \S+ (train|evaluate) "
TFJS_BANNER = re.compile(r"TensorFlow\.js in Node\.js|tfjs-node", re.IGNORECASE)
needs_worker = pytest.mark.skipif(not (ROOT / "client_js" / "node_modules").is_dir(),
                                  reason="client_js/node_modules is not installed")


def stopped_output(served: ServeProcess) -> list[str]:
    assert served.stop(signal.SIGTERM) == 0, served.output()
    return list(served.lines)


def after_banner(lines: list[str]) -> list[str]:
    """The lines after ``Press Ctrl+C ...``: all of them in the one log format."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Press Ctrl+C"))
    return lines[start + 1:]


@pytest.mark.e2e
@needs_worker
def test_default_console_is_a_status_line_not_a_flood(
    processes: list[ServeProcess]
) -> None:
    served = start_serve(str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--local-workers", "1")
    processes.append(served)
    wait_for(lambda: served.find(r"\[worker-1\] joined "), "the worker to join", deadline=180)
    wait_for(lambda: len(re.findall(STATUS_WITH_MERGES, served.output())) >= 2,
             "two status lines reporting merges", deadline=180)
    lines = stopped_output(served)
    text = "\n".join(lines)

    # The admin token: once, inside its box, still readable as `admin token: T`.
    assert text.count(served.admin_token) == 1, text
    at = next(i for i, line in enumerate(lines) if "admin token:" in line)
    assert lines[at].startswith("| admin token: ") and lines[at].endswith("|")
    assert re.fullmatch(r"\+-+\+", lines[at - 1]) and lines[at - 1] == lines[at + 2]
    assert "no --state-dir: not kept" in lines[at + 1]
    # No state dir: said plainly, and no checkpoint promised.
    assert re.search(r"\[webnn\] WARNING: no --state-dir: progress is lost on exit", text)
    assert "checkpoint" not in text
    assert "nothing was kept" in text

    assert not TFJS_BANNER.search(text), text
    assert not re.search(TASK_LINE, text), text
    status = [line for line in lines if "[status] " in line]
    assert status and all(re.search(r"merges.* clients \| .* \| running", s) for s in status)
    assert re.search(r"\d+ merges \(\d+\.\d/s\)", text)
    # One format after the banner, and a bounded count: start/join/leave/exit lines + status.
    rest = after_banner(lines)
    assert all(LOG_LINE.match(line) for line in rest), rest
    assert len(rest) - len(status) <= 12, text


@pytest.mark.e2e
@needs_worker
def test_verbose_adds_the_workers_per_task_lines(
    processes: list[ServeProcess]
) -> None:
    served = start_serve(str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--local-workers", "1",
                         "--verbose")
    processes.append(served)
    wait_for(lambda: served.find(TASK_LINE + r".*merged"), "a merged task's line", deadline=180)
    lines = stopped_output(served)
    assert all(LOG_LINE.match(line) for line in after_banner(lines))
    assert not TFJS_BANNER.search("\n".join(lines))


def test_admin_token_is_kept_in_the_state_dir_across_restarts(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    state = tmp_path / "state"
    args = (str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--state-dir", str(state))
    first = start_serve(*args)
    processes.append(first)
    kept = state / TOKEN_FILE
    assert kept.read_text().strip() == first.admin_token
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first.find(r"\| new; kept in \S+admin_token")
    assert first.find(r"a checkpoint is written to \S+ on the way out")
    assert not first.find("no --state-dir")
    assert first.stop(signal.SIGTERM) == 0, first.output()

    second = start_serve(*args, "--quiet")
    processes.append(second)
    assert second.admin_token == first.admin_token
    assert second.find(r"\| kept from the last run in ")
    assert second.stop(signal.SIGTERM) == 0, second.output()
    assert not second.find(r"\[webnn\] stopped"), "--quiet prints no information lines"

    third = start_serve(*args, "--admin-token", "given-token-123")
    processes.append(third)
    assert third.admin_token == "given-token-123"
    assert third.stop(signal.SIGTERM) == 0, third.output()
    assert kept.read_text().strip() == first.admin_token, "a given token is not written"


def test_verbosities_filter_information_not_warnings() -> None:
    for verbosity, shown in ((Verbosity.QUIET, ["w", "e"]),
                             (Verbosity.NORMAL, ["i", "w", "e"]),
                             (Verbosity.VERBOSE, ["i", "d", "w", "e"])):
        out: list[str] = []
        console = Console(verbosity, out.append, clock=lambda: 0.0)
        console.emit("x", "i")
        console.emit("x", "d", detail=True)
        console.emit("x", "w", "warning")
        console.emit("x", "e", "error")
        assert [line.rsplit(" ", 1)[1] for line in out] == shown
    out = []
    Console(Verbosity.NORMAL, out.append).emit("src", "two\nlines", "warning")
    assert len(out) == 2 and all(re.match(LOG_LINE.pattern + "WARNING: ", line) for line in out)
    with pytest.raises(ValueError, match="console level must be one of"):
        Console().emit("x", "y", "loud")


def test_status_line_reports_rate_clients_and_validation() -> None:
    line = StatusLine()
    status = {"version": 7, "merges": 10, "clients": 2, "state": "running", "lastEvaluation": None}
    assert line.render("m", status, 100.0) == (
        "v7 | 10 merges | 2 clients | no validation yet | running")
    status |= {"merges": 30, "lastEvaluation": {"version": 6, "valAccuracy": 0.5,
                                                "validated": False}}
    assert line.render("m", status, 104.0) == (
        "v7 | 30 merges (5.0/s) | 2 clients | accuracy 0.5000 (v6, not validated) | running")
    status |= {"state": "ended", "endReason": "max_merges",
               "lastEvaluation": {"version": 7, "valAccuracy": 0.9, "validated": True}}
    assert line.render("m", status, 108.0).endswith(
        "accuracy 0.9000 (v7, validated) | ended (max_merges)")


def test_token_box_and_resolution(tmp_path: Path) -> None:
    box = admin_token_box("abc", "a longer note")
    assert box == ["+" + "-" * 18 + "+", "| admin token: abc |", "| a longer note    |",
                   "+" + "-" * 18 + "+"]
    assert resolve_admin_token(None, None).origin == "new"
    (tmp_path / TOKEN_FILE).write_text("\n")  # empty: replaced by a new one
    fresh = resolve_admin_token(None, tmp_path)
    assert fresh.origin == "new" and fresh.path == tmp_path / TOKEN_FILE
    fresh.save()
    assert resolve_admin_token(None, tmp_path).token == fresh.token
    assert resolve_admin_token("mine", tmp_path).token == "mine"
