"""Client sessions: who joined, when they were last seen, their statistics and their cut-off state.

A session is identified by an unguessable token (never by IP). A client that sends
`max_invalid_updates` invalid updates in a row is cut off for `cut_off_seconds`.

Sessions are kept in last-seen order (an `OrderedDict` moved to the end on every `touch`), so idle
expiry looks only at the oldest sessions: O(expired + idle ones still holding a lease), never all.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from webnn.server.encodings import Encodings


@dataclass
class Session:
    """One joined client and its running statistics."""

    token: str
    client_id: str
    kind: str
    name: str | None
    user_agent: str | None
    backend: str | None
    joined: float
    last_seen: float
    updates_accepted: int = 0
    updates_rejected: int = 0
    evaluations: int = 0
    examples_trained: int = 0
    compute_seconds: float = 0.0
    last_loss: float | None = None
    last_accuracy: float | None = None
    last_staleness: int | None = None
    invalid_streak: int = 0
    cut_off_until: float = 0.0
    open_tasks: set[str] = field(default_factory=set)
    encodings: Encodings = field(default_factory=Encodings)  # negotiated at join
    volunteer_id: str | None = None  # sent at join; keeps the volunteer's shard across sessions
    shard: int | None = None  # the partition shard it trains on (set at its first training task)
    address: str | None = None  # the client address at join (admission's view, proxy-aware)

    def public(self, now: float) -> dict:
        """The dashboard's view of this client (no token)."""
        return {
            "clientId": self.client_id, "kind": self.kind, "name": self.name,
            "userAgent": self.user_agent, "backend": self.backend,
            "joined": self.joined, "lastSeen": self.last_seen,
            "updatesAccepted": self.updates_accepted, "updatesRejected": self.updates_rejected,
            "evaluations": self.evaluations, "examplesTrained": self.examples_trained,
            "computeSeconds": round(self.compute_seconds, 3),
            "lastLoss": self.last_loss, "lastAccuracy": self.last_accuracy,
            "lastStaleness": self.last_staleness, "openTasks": len(self.open_tasks),
            "cutOff": self.cut_off_until > now, "encodings": self.encodings.public(),
            "shard": self.shard,
        }


class SessionRegistry:
    """Sessions by token; client ids are ``c-1``, ``c-2``, ... in join order.

    `joined` is checkpointed, so ids stay unique across restarts: strategy state that remembers
    clients (robust's per-client rows) never mistakes a new client for one from before.
    """

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.joined = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self):
        return iter(list(self._sessions.values()))

    def join(self, info: dict, now: float) -> Session:
        self.joined += 1
        session = Session(
            token=secrets.token_urlsafe(24), client_id=f"c-{self.joined}",
            kind=info.get("kind", "browser"), name=info.get("name"),
            user_agent=info.get("userAgent"), backend=info.get("backend"),
            joined=now, last_seen=now, volunteer_id=info.get("volunteerId"),
        )
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        return self._sessions.get(token) if token else None

    def touch(self, session: Session, now: float) -> None:
        """`session` was seen at `now`: it moves to the young end of the last-seen order."""
        session.last_seen = now
        if session.token in self._sessions:
            self._sessions.move_to_end(session.token)

    def remove(self, token: str) -> Session | None:
        return self._sessions.pop(token, None)

    def idle(self, now: float, timeout: float) -> list[Session]:
        """Sessions not seen for `timeout` seconds that hold no open task.

        Walks the last-seen order from the oldest and stops at the first session seen recently.
        """
        found = []
        for session in self._sessions.values():
            if now - session.last_seen <= timeout:
                break
            if not session.open_tasks:
                found.append(session)
        return found
