"""The run's lifecycle: its state, why it ended, the finishing phase and its training seconds.

States: ``running`` and ``paused`` (admin pause/resume switch between them) and ``ended``, which
is final. A running or paused run may be *finishing* (`finishing_since` set): a stop condition
was reached and the run waits for the final evaluation before it ends; `end_reason` already
holds the condition then. Ending clears the finishing phase.

Elapsed seconds of training, across restarts: ``elapsed_before + now - started`` (paused time
counts), frozen at the end (`ended_elapsed`); a checkpoint stores `elapsed` and a restart
continues from it (`restore`). Times are the caller's clock readings (`now`): the lifecycle holds
no clock, so a coordinator whose clock is replaced (tests) stays consistent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunLifecycle:
    """One run's lifecycle; see the module docstring."""

    started: float
    state: str = "running"
    end_reason: str | None = None
    finishing_since: float | None = None
    elapsed_before: float = 0.0
    ended_elapsed: float | None = None

    @property
    def finishing(self) -> bool:
        """Whether the run waits for its final evaluation."""
        return self.finishing_since is not None

    def elapsed(self, now: float) -> float:
        """Seconds of training so far, across restarts; frozen once the run has ended."""
        if self.ended_elapsed is not None:
            return self.ended_elapsed
        return self.elapsed_before + now - self.started

    def finishing_deadline(self, finish_seconds: float) -> float | None:
        """When a finishing run ends without its final evaluation (None: not finishing)."""
        return None if self.finishing_since is None else self.finishing_since + finish_seconds

    def pause(self) -> bool:
        """A running run is paused; whether the state changed."""
        return self._switch("running", "paused")

    def unpause(self) -> bool:
        """A paused run runs again; whether the state changed."""
        return self._switch("paused", "running")

    def begin_finishing(self, reason: str, now: float) -> bool:
        """Start waiting for the final evaluation with `reason` as the end reason; False (and
        nothing changes) when the run has ended or is finishing already."""
        if self.state == "ended" or self.finishing_since is not None:
            return False
        self.end_reason = reason
        self.finishing_since = now
        return True

    def end(self, reason: str, now: float) -> bool:
        """End the run with `reason`, freezing its elapsed seconds; False (and nothing changes)
        when it has ended already."""
        if self.state == "ended":
            return False
        self.end_reason = reason
        self.finishing_since = None
        self.ended_elapsed = self.elapsed(now)
        self.state = "ended"
        return True

    def restore(self, state: str, end_reason: str | None, elapsed: float) -> None:
        """Continue a checkpointed run: its `state` and `end_reason`, and `elapsed` seconds
        trained before this process started (frozen if it had ended)."""
        self.state, self.end_reason, self.elapsed_before = state, end_reason, elapsed
        self.ended_elapsed = elapsed if state == "ended" else None

    def _switch(self, before: str, after: str) -> bool:
        if self.state != before:
            return False
        self.state = after
        return True
