"""The server side of bench/load.py: start ``wnn serve`` as a child process (optionally pinned with
``taskset``, or sched_setaffinity where taskset is missing), wait until it answers, read its CPU
time and RSS from /proc, and stop it.

CPU comes from ``/proc/<pid>/stat`` (utime + stime, in clock ticks), RSS from ``/proc/<pid>/statm``
(resident pages x page size). A plain memory copy's bandwidth (``np.copyto`` of a model-sized
float32 array, median of repeats) is measured on the server's CPUs before the server starts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LISTENING = re.compile(r"webnn(?: [^:\s]+)?: listening on (\S+):(\d+)")  # "webnn 0.1.0: ..."
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class ServerError(RuntimeError):
    """The server did not start or died; the message carries the tail of its log."""


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: CPU seconds used so far and resident bytes."""

    cpu_seconds: float
    rss_bytes: int


def read_proc(pid: int) -> ProcSample | None:
    """CPU seconds (user + system) and RSS of `pid`; None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; field 3 is fields[0]
    ticks = int(fields[11]) + int(fields[12])     # utime (14) + stime (15)
    return ProcSample(ticks / CLOCK_TICKS, int(statm.split()[1]) * PAGE_BYTES)


def parse_cpus(text: str | None) -> tuple[int, ...] | None:
    """A CPU list as taskset writes it ("0", "1-7", "0,2-3") as a sorted tuple; None for none."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"CPU list {text!r}: {part!r} is not N or N-M") from None
        if first > last or first < 0:
            raise ValueError(f"CPU list {text!r}: bad range {part!r}")
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def memcopy_bandwidth(nbytes: int, cpus: tuple[int, ...] | None,
                      seconds: float = 1.0) -> float:
    """Bytes per second of ``np.copyto`` between two `nbytes` float32 arrays, on `cpus` (the median
    of repeats over about `seconds`; bytes counted once, as an update's bytes are)."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        source = np.random.default_rng(0).random(max(1, nbytes // 4), dtype=np.float32)
        target = np.empty_like(source)
        np.copyto(target, source)
        times: list[float] = []
        began = time.perf_counter()
        while len(times) < 5 or (time.perf_counter() - began < seconds and len(times) < 10_000):
            start = time.perf_counter()
            np.copyto(target, source)
            times.append(time.perf_counter() - start)
        return source.nbytes / statistics.median(times)
    finally:
        os.sched_setaffinity(0, before)


def wnn_command(census: bool = False, profile: bool = False) -> list[str]:
    """The ``wnn`` CLI run by this interpreter, so the server imports the same webnn as the
    benchmark (the same sys.path, PYTHONPATH included); with `census`, the server first starts
    `memory_census`'s thread (it does something only with ``WEBNN_CENSUS`` in its environment);
    with `profile`, `load_profile`'s signal handlers (``WEBNN_PROFILE``)."""
    hooks = [name for name, wanted in (("memory_census", census), ("load_profile", profile))
             if wanted]
    prelude = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
               + "".join(f"import {name}; {name}.install(); " for name in hooks)) if hooks else ""
    return [sys.executable, "-c", prelude + "from webnn.cli import main; main()"]


class ServerProcess:
    """A ``wnn serve`` child with its log in a file (so a full pipe can never stall it)."""

    def __init__(self, args: list[str], log_path: Path, cpus: tuple[int, ...] | None,
                 env: dict[str, str] | None = None) -> None:
        """`env`: variables added to the server's environment (``WEBNN_CENSUS`` starts the
        census of `memory_census`, ``WEBNN_PROFILE`` the profile of `load_profile`)."""
        taskset = shutil.which("taskset")
        pin = [taskset, "-c", ",".join(map(str, cpus))] if cpus and taskset else []
        env = env or {}
        self.command = [*pin, *wnn_command(census="WEBNN_CENSUS" in env,
                                           profile="WEBNN_PROFILE" in env), "serve", *args]
        self.log_path = log_path
        self._log = log_path.open("wb")

        def pin_without_taskset() -> None:
            if cpus and not taskset:
                os.sched_setaffinity(0, cpus)

        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=pin_without_taskset,
                                        env={**os.environ, **env} if env else None)
        self.base_url = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_listening(self, timeout: float) -> str:
        """Poll the log for the banner's address; the base URL."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"wnn serve exited with status {self.process.returncode}:\n"
                                  f"{self.log_tail()}")
            match = LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.base_url = f"http://{match.group(1)}:{match.group(2)}/"
                return self.base_url
            time.sleep(0.1)
        raise ServerError(f"wnn serve printed no address within {timeout:.0f} s:\n"
                          f"{self.log_tail()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
