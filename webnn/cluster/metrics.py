"""/metrics of a scale-out run: every process's metrics with a ``process`` label.

Each process renders its own registry (`webnn.server.metrics.Metrics` plus the cluster's
families), adds ``process="<label>"`` to every sample and keeps the text in Redis for a few
seconds (`publish`, every second). A front-end's /metrics answers every live process's samples,
each family once (`merge_texts`), so one scrape of the shared port sees the whole run whichever
front-end answers.
"""

from __future__ import annotations

import json
import os
import socket
import time

from prometheus_client import Counter, Gauge, generate_latest

from webnn.cluster.keys import RedisClient, RunKeys
from webnn.server.metrics import Metrics

METRICS_TTL = 10
"""Seconds a process's published metrics outlive its last publication."""


class ProcessMetrics:
    """One process's families: the single process's (`base`) and the cluster's own."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.base = Metrics()
        r = self.base.registry
        self.entries = Counter("webnn_stream_entries", "Stream entries written (updates or "
                               "partials)", registry=r)
        self.entry_bytes = Counter("webnn_stream_bytes", "Bytes of stream entries written",
                                   registry=r)
        self.applied = Counter("webnn_stream_applied", "Stream entries applied by the merger",
                               registry=r)
        self.lag = Gauge("webnn_stream_unmerged", "Stream entries delivered to the merger and "
                         "not yet covered by a published version", registry=r)
        self.leader = Gauge("webnn_merger_active", "1 while this merger holds the lock",
                            registry=r)
        self.entry_seconds = Gauge("webnn_merger_entry_seconds", "The merger's measured "
                                   "seconds of work per stream entry (the back-pressure's pace)",
                                   registry=r)

    def text(self) -> str:
        return with_label(generate_latest(self.base.registry).decode(), self.label)

    async def register(self, redis: RedisClient, keys: RunKeys, role: str) -> None:
        """Name this process in the run's ``processes`` hash (role, host, pid, start time), so
        operators and benchmarks can find the process behind a label."""
        await redis.hset(keys.processes, self.label, json.dumps({
            "role": role, "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.time()}))

    async def publish(self, redis: RedisClient, keys: RunKeys) -> None:
        await redis.set(keys.metrics(self.label), self.text(), ex=METRICS_TTL)

    async def cluster_text(self, redis: RedisClient, keys: RunKeys) -> bytes:
        """This process's metrics (fresh) and every other live process's (published)."""
        texts = {self.label: self.text()}
        names = [name async for name in redis.scan_iter(match=keys.metrics_prefix + "*",
                                                        count=100)]
        if names:
            for name, value in zip(names, await redis.mget(names), strict=True):
                label = (name.decode() if isinstance(name, bytes) else name)[
                    len(keys.metrics_prefix):]
                if value is not None and label != self.label:
                    texts[label] = value.decode()
        return merge_texts([texts[k] for k in sorted(texts)]).encode()


def with_label(text: str, label: str) -> str:
    """Prometheus text with ``process="label"`` added to every sample line."""
    pair = f'process="{label}"'
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            out.append(line)
            continue
        cut = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=len(line))
        if line[cut:cut + 1] == "{":
            out.append(f"{line[:cut + 1]}{pair},{line[cut + 1:]}" if line[cut + 1] != "}"
                       else f"{line[:cut + 1]}{pair}{line[cut + 1:]}")
        else:
            out.append(f"{line[:cut]}{{{pair}}}{line[cut:]}")
    return "\n".join(out) + "\n"


def merge_texts(texts: list[str]) -> str:
    """Several processes' texts as one exposition: each family's HELP and TYPE once, followed
    by all processes' samples of it (in the order the families first appear)."""
    families: dict[str, list[str]] = {}
    headers: dict[str, list[str]] = {}
    for text in texts:
        family = ""
        for line in text.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                family = line.split(" ", 3)[2]
                seen = headers.setdefault(family, [])
                families.setdefault(family, [])
                if not any(h.split(" ", 2)[1] == line.split(" ", 2)[1] for h in seen):
                    seen.append(line)
            elif line and not line.startswith("#"):
                families.setdefault(family, []).append(line)
    out = []
    for family, samples in families.items():
        out.extend(headers.get(family, []))
        out.extend(samples)
    return "\n".join(out) + "\n"
