"""Cutting off a session that keeps sending invalid submissions.

A refused update or evaluation answer whose error code is in `INVALID_UPDATE_CODES` (malformed or
hostile content, not the server's own refusals such as ``busy``, ``too_stale`` or ``finishing``)
adds one to the session's streak; an accepted update resets it (an evaluation answer does not: a
well-formed answer may still disagree with the other replicas). At `CutOff.max_invalid` in a row
the session is cut off for `CutOff.seconds` and its streak starts again at 0. While cut off, its
submissions are answered ``429 cut_off`` with ``Retry-After`` = ceil(seconds left), at least 1.

The single process keeps the streak on its `Session`; a scale-out run keeps it in Redis (the
``NOTE_INVALID`` script of `webnn.cluster.scripts`) with the same codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from webnn.server.encodings import WRONG_ENCODING
from webnn.server.errors import ProtocolError
from webnn.server.sessions import Session

INVALID_UPDATE_CODES = frozenset({"wrong_length", "not_finite", "bad_frame", "truncated",
                                  "wrong_content_type", "bad_field", "too_large", "bad_json",
                                  "norm_too_large", "merge_not_finite",
                                  "evaluation_disagrees", WRONG_ENCODING})
"""Refusals that count toward a session's cut-off."""


@dataclass(frozen=True)
class CutOff:
    """The cut-off rule: `max_invalid` invalid submissions in a row cut a session off for
    `seconds`; see the module docstring."""

    max_invalid: int
    seconds: float

    def check(self, until: float, now: float) -> None:
        """Raise ``429 cut_off`` (with ``Retry-After``) while a session cut off until `until`
        serves its time."""
        wait = until - now
        if wait > 0:
            raise ProtocolError(
                429, "cut_off",
                f"too many invalid updates in a row ({self.max_invalid}); "
                f"this session is cut off for {wait:.0f} more seconds",
                headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def note(self, session: Session, code: str, now: float) -> bool:
        """A submission of `session` refused with `code`: extend its streak if the code counts;
        True when this refusal cut the session off (until ``now + seconds``)."""
        if code not in INVALID_UPDATE_CODES:
            return False
        session.invalid_streak += 1
        if session.invalid_streak < self.max_invalid:
            return False
        session.invalid_streak = 0
        session.cut_off_until = now + self.seconds
        return True
