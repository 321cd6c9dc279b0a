"""Prometheus metrics of one served model, in a per-app `CollectorRegistry` (no global state).

Counters restart at zero with the process (Prometheus semantics); gauges carry the resumed state.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

STALENESS_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The metric families; `render()` gives the Prometheus text format."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.merges = Counter("webnn_merges", "Updates merged into the model", registry=r)
        self.versions = Counter("webnn_versions", "New model versions produced", registry=r)
        self.updates_accepted = Counter("webnn_updates_accepted", "Updates accepted", registry=r)
        self.updates_rejected = Counter(
            "webnn_updates_rejected", "Updates and evaluations refused, by reason", ["reason"],
            registry=r)
        self.requests_refused = Counter(
            "webnn_requests_refused", "Error answers (4xx/5xx) to any request, by error code",
            ["code"], registry=r)
        self.http_refused = Counter(
            "webnn_http_refused", "Requests the HTTP layer refused before any route (malformed "
            "HTTP, headers not complete in time), by reason", ["reason"], registry=r)
        self.http_refusals: Tally[str] = Tally()  # the same by reason, for status.httpRefused
        self.tasks_issued = Counter("webnn_tasks_issued", "Tasks handed out", ["kind"], registry=r)
        self.update_bytes = Counter("webnn_update_bytes", "Body bytes of accepted updates",
                                    ["encoding"], registry=r)
        self.update_bodies = Counter("webnn_update_bodies", "Accepted updates by encoding",
                                     ["encoding"], registry=r)
        self.leases_expired = Counter(
            "webnn_leases_expired", "Task leases that ran out (work handed out again)", ["kind"],
            registry=r)
        self.evaluations = Counter("webnn_evaluations", "Completed evaluations", registry=r)
        self.active_clients = Gauge("webnn_active_clients", "Joined sessions", registry=r)
        self.version = Gauge("webnn_model_version", "Current model version", registry=r)
        self.steps = Gauge("webnn_model_steps", "Current step counter t", registry=r)
        self.val_accuracy = Gauge("webnn_validation_accuracy", "Last validation accuracy",
                                  registry=r)
        self.val_loss = Gauge("webnn_validation_loss", "Last validation loss", registry=r)
        self.body_bytes = Gauge("webnn_update_body_bytes",
                                "Bytes of update bodies in flight (admission budget in use)",
                                registry=r)
        self.snapshot_bytes = Gauge("webnn_snapshot_bytes", "Bytes of kept version snapshots",
                                    registry=r)
        self.merge_queue = Gauge("webnn_merge_queue", "Updates waiting for the merge lock",
                                 registry=r)
        self.staleness = Histogram("webnn_update_staleness", "Staleness of merged updates",
                                   buckets=STALENESS_BUCKETS, registry=r)
        self.merge_seconds = Histogram("webnn_merge_seconds", "Time spent in strategy.merge",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.request_seconds = Histogram(
            "webnn_request_seconds", "Request latency by route", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=r)

    def on_event(self, event: str, data: dict) -> None:
        """Follow the coordinator's event bus (`EventBus.listen`): merges, evaluations and the
        client count are counted from the events, not by inline calls."""
        if event == "merge":
            self.merges.inc()
            self.updates_accepted.inc()
            self.staleness.observe(data["staleness"])
            if data.get("merged"):
                self.versions.inc()
            self.version.set(data["version"])
            self.steps.set(data["steps"])
        elif event == "evaluation":
            self.evaluations.inc()
            if data.get("valLoss") is not None:
                self.val_loss.set(data["valLoss"])
            if data.get("valAccuracy") is not None:
                self.val_accuracy.set(data["valAccuracy"])
        elif event == "client":
            self.active_clients.set(data["clients"])

    def count_http_refusal(self, code: str, reason: str) -> None:
        """A request refused by the HTTP layer (`webnn.server.runner`): answered `code`,
        counted under it with every error answer and under its finer `reason`."""
        self.requests_refused.labels(code).inc()
        self.http_refused.labels(reason).inc()
        self.http_refusals[reason] += 1

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self) -> Callable:
        """An aiohttp middleware observing request latency by route name (or path pattern)."""

        @web.middleware
        async def observe(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
            start = time.perf_counter()
            try:
                return await handler(request)
            finally:
                route = request.match_info.route
                label = route.name or (route.resource.canonical if route.resource else "unmatched")
                if label != "events":
                    self.request_seconds.labels(label, request.method).observe(
                        time.perf_counter() - start)

        return observe
