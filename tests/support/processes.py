"""Stopping a child process the way the tests need: a signal, a wait, a kill if it hangs."""

from __future__ import annotations

import signal
import subprocess


def stop_process(process: subprocess.Popen, signum: int = signal.SIGTERM,
                 timeout: float = 30) -> int:
    """Send `signum` unless it has exited, wait `timeout` s, kill if it hangs; its status."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
