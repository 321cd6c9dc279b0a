"""The merger: the only writer of the model.

One merger process holds the lock (``SET NX PX lock_ms``, renewed every third of its lease; a
failed renewal is tried once more within the lease before the lead is given up);
others wait as standbys, trying every sixth of the lease, and take over when it lapses: within
``lock_ms * 7/6`` of the holder's death, plus loading the checkpoint. The active merger:

1. loads the checkpoint (``checkpoint`` hash: version, weights digest, steps, merges, the last
   applied stream id, the strategy's state), or publishes version 0 (the spec's initial weights)
   when the run is new;
2. reads the stream by id from the checkpoint's last applied id (``XREAD`` after it, in id
   order): the checkpoint is the one source of truth of what is merged, so entries a deposed
   leader read (and could not publish: `PUBLISH` is fenced by the lock) are read again here;
3. applies each entry with the strategy (`merge` for an update, `merge_partial` for a partial;
   a non-finite result rolls back that entry alone, so earlier entries of the same batch stay
   merged: the merger reloads the checkpoint and reads the entries after it again, applying
   each as before and refusing that one (`_undo`). Nothing is copied before an entry for this
   rare case: no snapshot of the weights or the strategy's state per entry);
4. after each batch that changed the model publishes one version with `scripts.PUBLISH`:
   weights (content-addressed blob), version hash, ``current``, the checkpoint and the merge
   log records, and the pub/sub notification, all in one step that writes nothing unless the
   lock is still this merger's; entries up to the checkpoint's id are then trimmed from the
   stream (unless the stream is kept). Without a new version a checkpoint is published when
   the stream goes idle, after `LOG_FLUSH` applied entries, or once the applied entries no
   checkpoint covers hold `FLUSH_SHARE` of ``--merge-backlog`` in measured work.

So a new merger re-applies exactly the entries after the published checkpoint: every stream
entry is merged once. How long that replay takes is bounded by the front-ends' back-pressure
(`backlog.py`): the merger measures its work per entry and shares it (`PaceMeter`), and the
front-ends refuse new bodies while the unmerged stream holds more than ``--merge-backlog``
seconds of that work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time

import numpy as np

from webnn.cluster import scripts
from webnn.cluster.backlog import PaceMeter
from webnn.cluster.connection import ArrayReader
from webnn.cluster.control import LostLock
from webnn.cluster.controller import Controller, chunk_sizes, eval_chunk_size
from webnn.cluster.keys import RedisClient, RunKeys
from webnn.cluster.metrics import ProcessMetrics
from webnn.cluster.records import (
    StreamEntry,
    attach,
    decode_entry,
    id_order,
    load_state_bytes,
    payload_key,
    state_bytes,
)
from webnn.cluster.settings import ClusterSettings, kept_versions
from webnn.cluster.versions import digest_of
from webnn.merge.base import ModelState
from webnn.server.config import ModelParts, ServeConfig
from webnn.server.ingest import check_weights
from webnn.server.store import layout_fingerprint

log = logging.getLogger("webnn.cluster")
READ_COUNT = 64
READ_BYTES = 256 << 20
"""A read's arrays at most, in bytes (`Merger._read_count`): a batch's arrays are in memory
at once."""
REPORT_SECONDS = 1.0
"""The strategy's report (status) is stored at most this often."""
BLOCK_MS = 500
LOG_FLUSH = 1024
"""Applied entries at most that no published checkpoint covers: past this a checkpoint is
published even when the weights did not change (a strategy's buffer), so a long busy spell
neither grows the publication's arguments without bound nor leaves a standby much to redo."""
FLUSH_SHARE = 0.25
"""A checkpoint is also published once the applied entries no checkpoint covers hold this share
of ``--merge-backlog`` in the merger's measured work: the front-ends count them as unmerged
(``stream_entries - stream_applied``), so a strategy that buffers (fedbuff, fedbuff_live) would
otherwise fill the budget with entries already merged, refuse bodies until an idle read
published, and restart from empty; it also bounds what a standby replays."""
RENEW_SHARE = 3
"""The holder renews the lock every ``lock_ms / RENEW_SHARE``."""
POLL_SHARE = 6
"""A standby tries to take the lock every ``lock_ms / POLL_SHARE``."""
STAGED_EXPIRY_MS = 600_000
"""A staged blob or state is written with this expiry; the publication in the same transaction
renames it into place (and removes the expiry) or deletes it."""
NOT_FINITE = "merge_not_finite"
"""The refusal of an entry whose merge left non-finite weights (`Merger._undo`)."""


class ClusterError(RuntimeError):
    """The run in Redis cannot be served by this process (another model, lost data)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Merger:
    """One merger process (active or standby); see the module docstring."""

    def __init__(self, config: ServeConfig, parts: ModelParts, settings: ClusterSettings,
                 redis: RedisClient, keys: RunKeys, label: str) -> None:
        self.config = config
        self.parts = parts
        self.settings = settings
        self.redis = redis
        self.keys = keys
        self.label = label
        self.owner = f"{label}:{secrets.token_hex(4)}"
        self.strategy = parts.strategy
        self.layout = parts.spec.compiled.layout
        self.keep_versions = kept_versions(settings.keep_versions, self.layout.nbytes)
        self.metrics = ProcessMetrics(label)
        self.publish_script = redis.register_script(scripts.PUBLISH)
        self.renew_script = redis.register_script(scripts.RENEW)
        self.release_script = redis.register_script(scripts.RELEASE)
        self.model = ModelState(weights=np.zeros(self.layout.size, np.float32))
        self.arrays = ArrayReader.from_client(redis)
        """Entries' arrays and base weights are read with it (None: the client's ``MGET``)."""
        self._refused: dict[str, str] = {}
        """Entries whose merge left non-finite weights, by id: refused, not applied, when the
        replay from the checkpoint (`_undo`) reads them again."""
        self.merges = 0
        self.applied = "0-0"
        self._log: list[dict] = []
        self._based: list[str] = []
        """Applied entries whose base version pin (`RunKeys.bases`) the next publication
        removes."""
        self._payloads: list[str] = []
        """Payload keys of applied entries (`records.detach`) the next publication deletes."""
        self.leading = False
        self.chunk_examples: list[int] | None = None
        self._reported = 0.0
        self.controller: Controller | None = None
        self.pace = PaceMeter()
        """Seconds of work per stream entry, shared with the front-ends (`backlog.py`)."""

    # -- the lock ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Wait for the lock, lead while holding it, and stand by again after losing it."""
        await self.metrics.register(self.redis, self.keys, "merger")
        if self.chunk_examples is None:
            self.chunk_examples = await chunk_sizes(
                self.parts.dataset, eval_chunk_size(self.config, self.parts.spec.training))
        publisher = asyncio.create_task(self._publish_metrics())
        try:
            while not stop.is_set():
                try:
                    got = await self.redis.set(self.keys.lock, self.owner, nx=True,
                                               px=self.settings.lock_ms)
                except Exception as error:
                    log.warning("%s: Redis: %s", self.label, error)
                    got = False
                if not got:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(
                                self.settings.lock_ms / (1000 * POLL_SHARE)):
                            await stop.wait()
                    continue
                await self._lead_while_locked(stop)
        finally:
            publisher.cancel()
            if self.arrays is not None:
                self.arrays.close()
            with contextlib.suppress(Exception):
                await self.release_script(keys=[self.keys.lock], args=[self.owner])
            with contextlib.suppress(Exception):
                await self.redis.delete(self.keys.metrics(self.label))
                await self.redis.hdel(self.keys.processes, self.label)

    async def _lead_while_locked(self, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._renew(lost))
        self.leading = True
        self.metrics.leader.set(1)
        log.info("%s: merger lock taken", self.label)
        try:
            lead = asyncio.create_task(self._lead(stop, lost))
            watch = asyncio.create_task(lost.wait())
            done, _ = await asyncio.wait({lead, watch}, return_when=asyncio.FIRST_COMPLETED)
            watch.cancel()
            if lead not in done:
                lead.cancel()
            with contextlib.suppress(asyncio.CancelledError, LostLock):
                await lead
        except ClusterError:
            raise
        except Exception:
            log.exception("%s: leading stopped", self.label)
            await asyncio.sleep(self.settings.lock_ms / (1000 * RENEW_SHARE))
        finally:
            self.leading = False
            self.metrics.leader.set(0)
            renewer.cancel()

    async def _renew(self, lost: asyncio.Event) -> None:
        """Renew the lease every ``lock_ms / RENEW_SHARE``. A renewal that fails (a Redis
        error or timeout) is tried once more while the lease it renews still runs (the lease
        ends ``lock_ms`` after the last renewal was sent); the lead is given up when Redis says
        the lock is another's, or when the second try fails too. A merger that kept leading
        on a lapsed lease writes nothing: `PUBLISH` is fenced by the lock."""
        lease = self.settings.lock_ms / 1000
        sent = time.monotonic()
        while True:
            await asyncio.sleep(lease / RENEW_SHARE)
            began = time.monotonic()
            kept = await self._renew_once(sent + lease - began)
            if kept is None:  # an error: once more, within what is left of the lease
                left = sent + lease - time.monotonic()
                if left > 0:
                    kept = await self._renew_once(left)
            if not kept:
                log.warning("%s: merger lock lost", self.label)
                lost.set()
                return
            sent = began

    async def _renew_once(self, seconds: float) -> bool | None:
        """One renewal within `seconds`: whether the lock is still this merger's, or None
        when Redis did not answer (an error or the time ran out)."""
        try:
            async with asyncio.timeout(max(seconds, 0.001)):
                return bool(await self.renew_script(keys=[self.keys.lock],
                                                    args=[self.owner, self.settings.lock_ms]))
        except Exception as error:
            log.warning("%s: lock renewal failed: %s", self.label, error or type(error).__name__)
            return None

    # -- leading -----------------------------------------------------------------------------
    async def _lead(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        await self._load()
        await self.redis.hset(self.keys.meta, "merger", self.label)
        self.controller = Controller(self, self.chunk_examples or [])
        await self.controller.start()
        schedule = asyncio.create_task(self.controller.loop())
        try:
            await self._read(stop, lost)
        finally:
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await schedule
            self.controller = None

    @property
    def unpublished(self) -> bool:
        """Whether entries were applied that no published checkpoint covers yet."""
        return bool(self._log)

    def _read_count(self) -> int:
        """Entries a read at most: `READ_COUNT`, fewer where their arrays would pass
        `READ_BYTES` (1M parameters: 64; 10M: 6; 64M or more: 1)."""
        return max(1, min(READ_COUNT, READ_BYTES // max(1, 4 * self.layout.size)))

    async def _read(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        while not stop.is_set() and not lost.is_set():
            started = time.perf_counter()
            count = self._read_count()
            answer = await self.redis.xread({self.keys.stream: self.applied}, count=count,
                                            block=BLOCK_MS)
            if answer:
                entries = answer[0][1]
                read = time.perf_counter()
                await self._process(entries)
                # a full batch came from a backlog: its read is work too; a partial one may
                # have waited for entries to arrive, which is not
                begun = started if len(entries) >= count else read
                self.pace.note(time.perf_counter() - begun, len(entries))
                cost = self.pace.cost()
                if cost is not None:
                    self.metrics.entry_seconds.set(cost)
                await self.pace.share(self.redis, self.keys, self.label)
            elif self._log:
                # nothing new: a checkpoint covers what was applied without changing the
                # weights (a strategy's buffer), so a finishing run sees the stream drained
                await self._publish(new_version=False)

    async def _load(self) -> None:
        """The checkpoint into memory, or version 0 published for a new run."""
        meta = {_text(k): _text(v) for k, v in (await self.redis.hgetall(self.keys.meta)).items()}
        fingerprint = layout_fingerprint(self.layout)
        if meta and meta.get("fingerprint") != fingerprint:
            raise ClusterError(f"run {self.keys.run!r} in Redis holds another model "
                               f"({meta.get('params')} parameters, layout "
                               f"{meta.get('fingerprint')}); this one has {self.layout.size} "
                               "parameters: use another --run name or another Redis")
        checkpoint = await self.redis.hgetall(self.keys.checkpoint)
        if not checkpoint:
            await self.redis.hset(self.keys.meta, mapping={
                "name": self.parts.spec.name, "params": self.layout.size,
                "fingerprint": fingerprint, "strategy": self.strategy.name,
                "started": repr(time.time())})
            await self.redis.hsetnx(self.keys.stats, "stream_applied", 0)
            self.model = ModelState(self.parts.spec.compiled.initial_weights(self.parts.seed),
                                    steps=0, version=0)
            self.merges, self.applied = 0, "0-0"
            self._log, self._based, self._payloads = [], [], []
            await self._publish(new_version=False)
            log.info("%s: run %s started at version 0", self.label, self.keys.run)
            return
        cp = {_text(k): v for k, v in checkpoint.items()}
        digest = _text(cp["digest"])
        blob = await self.redis.get(self.keys.blob(digest))
        if blob is None:
            raise ClusterError(f"the checkpoint's weights (blob {digest[:12]}...) are missing "
                               "from Redis: it lost data (see docs/scale-out.md)")
        self.model = ModelState(np.frombuffer(blob, dtype="<f4").copy(),
                                steps=int(cp["steps"]), version=int(cp["version"]))
        state = cp.get("state")  # a checkpoint from before `checkpoint_state`
        if state is None:
            state = await self.redis.get(self.keys.checkpoint_state)
        if state is None:
            raise ClusterError("the checkpoint's strategy state is missing from Redis: it lost "
                               "data (see docs/scale-out.md)")
        self.strategy.load_state(load_state_bytes(state))
        self.merges, self.applied = int(cp["merges"]), _text(cp["applied"])
        self._log, self._based, self._payloads = [], [], []
        self._refused = {entry: code for entry, code in self._refused.items()
                         if id_order(entry) > id_order(self.applied)}
        if not await self.redis.hexists(self.keys.stats, "stream_applied"):
            await self._seed_applied()
        log.info("%s: resumed at version %d (stream entry %s)", self.label, self.model.version,
                 self.applied)

    async def _seed_applied(self) -> None:
        """A run from before the `stream_applied` count: it is seeded with the entries the
        checkpoint covers, ``stream_entries - n`` where ``n`` counts the stream's entries after
        the checkpoint's applied id (they are applied, and counted, once more from here).

        ``stream_entries`` and the stream's last id are read in one transaction (`COMMIT` adds
        an entry and its count in one step), and only entries up to that id are counted, so
        entries written meanwhile are neither counted as applied nor missed."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(self.keys.stats, "stream_entries")
        pipe.xrevrange(self.keys.stream, count=1)
        entries, last = await pipe.execute()
        after = 0
        if last:
            end = _text(last[0][0])
            start = self.applied
            while id_order(start) < id_order(end):
                page = await self.redis.xrange(self.keys.stream, min=f"({start}", max=end,
                                               count=READ_COUNT)
                if not page:
                    break
                after += len(page)
                start = _text(page[-1][0])
        await self.redis.hsetnx(self.keys.stats, "stream_applied",
                                max(0, int(entries or 0) - after))

    # -- applying ----------------------------------------------------------------------------
    async def _attached(self, entries: list) -> list[tuple[str, dict, str | None]]:
        """The entries not applied yet with their arrays (`records.detach`: one ``MGET`` for
        the batch), each with its payload key (None: the entry held its array)."""
        fresh = [(_text(entry_id), fields, payload_key(fields)) for entry_id, fields in entries
                 if fields and id_order(_text(entry_id)) > id_order(self.applied)]
        wanted = [key for _, _, key in fresh if key is not None]
        found = iter(await self._mget(wanted))
        out = []
        for entry_id, fields, key in fresh:
            if key is not None:
                data = next(found)
                if data is None:
                    raise ClusterError(f"stream entry {entry_id}'s array ({key}) is missing "
                                       "from Redis: it lost data (see docs/scale-out.md)")
                fields = attach(fields, data)
            out.append((entry_id, fields, key))
        return out

    async def _mget(self, keys: list[str]) -> list:
        """Model-sized values (`ArrayReader`: writable buffers) of `keys`, None where missing."""
        if not keys:
            return []
        if self.arrays is not None:
            return await self.arrays.mget(keys)
        return await self.redis.mget(keys)

    async def _process(self, entries: list) -> None:
        changed = False
        for entry_id, fields, key in await self._attached(entries):
            if id_order(entry_id) <= id_order(self.applied):
                continue  # the checkpoint holds it already
            entry = decode_entry(entry_id, fields)
            refusal = self._refused.get(entry_id)
            refused: str | None
            if refusal is not None:  # its merge left non-finite weights before `_undo`
                moved, refused = False, refusal
            else:
                base = None
                if entry.update is not None and self.strategy.needs_base_weights:
                    base = await self._base(entry.update.base_version)
                started = time.perf_counter()
                moved, refused = await asyncio.to_thread(self._apply, entry, base)
                self.metrics.base.merge_seconds.observe(time.perf_counter() - started)
                if refused == NOT_FINITE:
                    self._refused[entry_id] = refused
                    await self._undo()
                    return
            self.metrics.applied.inc()
            if refused is None:
                self.merges += len(entry.tasks)
                self.metrics.base.merges.inc(len(entry.tasks))
            else:
                # the run's count goes with the merge log record (fenced `PUBLISH`)
                self.metrics.base.updates_rejected.labels(refused).inc(len(entry.tasks))
            self._log.append({"entry": entry_id, "tasks": entry.tasks, "refused": refused,
                              "frontend": entry.frontend})
            if entry.update is not None and self.strategy.needs_base_weights:
                self._based.append(entry_id)  # its pin on the base version goes
            if key is not None and self.settings.trim_stream:
                self._payloads.append(key)  # deleted with its entry (kept with the stream)
            self.applied = entry_id
            changed = changed or moved
            if not changed and self._flush_due():
                # a strategy's buffer: applied entries count as the front-ends' backlog until
                # a checkpoint covers them, so one is published before they pass the share
                await self._publish(new_version=False)
        self.metrics.lag.set(len(self._log))
        if changed:
            await self._publish(new_version=True)
            if self.controller is not None:
                await self.controller.tick(after_publish=True)
        elif self._flush_due():
            await self._publish(new_version=False)

    def _flush_due(self) -> bool:
        """Whether the applied entries no checkpoint covers call for one: `LOG_FLUSH` of them,
        or their measured work ``len(log) * c`` past `FLUSH_SHARE` of ``--merge-backlog``."""
        if len(self._log) >= LOG_FLUSH:
            return True
        cost = self.pace.cost()
        budget = self.settings.merge_backlog
        return (budget > 0 and cost is not None and bool(self._log)
                and len(self._log) * cost >= FLUSH_SHARE * budget)

    async def _undo(self) -> None:
        """Roll the model back to just before an entry whose merge left it non-finite (now in
        `_refused`): the checkpoint is loaded again (the weights, steps, merges and strategy
        state this merger last published) and `_read` reads the entries after it once more.
        They are applied as before (their arrays and base versions stay in Redis until a
        checkpoint covers them) up to the refused one, which is logged as refused and not
        applied, so the entries before it stay merged, exactly once. This costs a reload and a
        replay only when a merge overflows, instead of copying the weights and the strategy's
        state before every entry."""
        log.warning("%s: a merge left non-finite weights; replaying from the checkpoint",
                    self.label)
        await self._load()

    async def _base(self, version: int) -> np.ndarray | None:
        fields = await self.redis.hgetall(self.keys.version(version))
        if not fields:
            return None
        [blob] = await self._mget([self.keys.blob(_text(fields[b"digest"]))])
        return None if blob is None else np.frombuffer(blob, dtype="<f4")

    def _apply(self, entry: StreamEntry, base: np.ndarray | None) -> tuple[bool, str | None]:
        """One entry into the model (worker thread); ``(changed, refusal code or None)``.
        After `NOT_FINITE` the model and the strategy's state are spoiled: `_undo` follows."""
        model = self.model
        with np.errstate(over="ignore", invalid="ignore"):
            if entry.partial is not None:
                changed = bool(self.strategy.merge_partial(model, entry.partial))
            else:
                update = entry.update
                assert update is not None
                if self.strategy.needs_base_weights and base is None:
                    return False, "too_stale"
                update.staleness = max(0, model.version - update.base_version)
                update.base_weights = base
                changed = bool(self.strategy.merge(model, update))
        if changed and not check_weights(model.weights).finite:
            return False, NOT_FINITE
        return changed, None

    # -- publishing --------------------------------------------------------------------------
    async def _publish(self, *, new_version: bool) -> None:
        """Publish the model as the next version (or version 0) with the checkpoint and the
        merge log, in one fenced script."""
        model = self.model
        version = model.version + 1 if new_version else model.version
        # the model's bytes as a view (no copy: nothing changes the weights until this
        # publication is over, the merger applies and publishes in turn); the digest off the
        # event loop (the lock's renewal runs there)
        data = np.ascontiguousarray(model.weights, dtype="<f4").data.cast("B")
        digest = await asyncio.to_thread(digest_of, data)
        state = await asyncio.to_thread(lambda: state_bytes(self.strategy.state()))
        exists = await self.redis.exists(self.keys.blob(digest))
        message = json.dumps({"version": version, "digest": digest, "steps": model.steps,
                              "merges": self.merges})
        records = [json.dumps({**record, "version": version}) for record in self._log]
        # the blob and the state are staged by plain SETs in the same transaction as the fenced
        # script, which renames them into place: no model-sized value passes through Lua
        staged_blob = "" if exists else self.keys.staged(self.owner, "blob")
        staged_state = self.keys.staged(self.owner, "state")
        pipe = self.redis.pipeline(transaction=True)
        if staged_blob:
            pipe.set(staged_blob, data, px=STAGED_EXPIRY_MS)
        pipe.set(staged_state, state, px=STAGED_EXPIRY_MS)
        await self.publish_script(
            keys=[self.keys.lock, self.keys.current, self.keys.checkpoint, self.keys.merge_log,
                  self.keys.stream, self.keys.stats, self.keys.version(version),
                  self.keys.blob(digest), self._pinned_key(), self.keys.bases, staged_blob,
                  staged_state, self.keys.checkpoint_state, *self._payloads],
            args=[self.owner, version, digest, model.steps, self.merges, self.applied, "", "",
                  self.keys.channel, message, self.keep_versions, len(records),
                  self.settings.merge_log_keep, *records, *self._based],
            client=pipe)
        result = (await pipe.execute())[-1]
        if _text(result[0]) != "ok":
            raise LostLock()
        model.version = version
        self._log, self._based, self._payloads = [], [], []
        self._refused = {entry: code for entry, code in self._refused.items()
                         if id_order(entry) > id_order(self.applied)}
        self.metrics.lag.set(0)
        self.metrics.base.version.set(version)
        self.metrics.base.steps.set(model.steps)
        if new_version:
            self.metrics.base.versions.inc()
        if time.monotonic() - self._reported >= REPORT_SECONDS:  # status.strategy.report
            self._reported = time.monotonic()
            await self.redis.hset(self.keys.meta, "report",
                                  json.dumps(self.strategy.report(), default=str))
        if self.settings.trim_stream and self.applied != "0-0":
            await self.redis.xtrim(self.keys.stream, minid=self.applied, approximate=False)

    def _pinned_key(self) -> str:
        """The version under evaluation (never dropped by a publication), or ''."""
        pinned = None if self.controller is None else self.controller.pinned
        return "" if pinned is None else self.keys.version(pinned)

    async def _publish_metrics(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.metrics.publish(self.redis, self.keys)
            await asyncio.sleep(1.0)
