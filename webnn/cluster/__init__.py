"""Scale-out: one run served by several processes (and machines) coordinated through Redis.

Roles (docs/scale-out.md):

- **front-end** (`frontend.py`): terminates HTTP (the volunteer protocol), keeps sessions, leases
  and the batch queue in Redis (atomic Lua scripts, `scripts.py`), decodes and screens updates
  with the single process's ingest path, pre-aggregates them when the strategy is
  `combinable` (`combiner.py`) and acknowledges an update only once it is in the Redis stream.
- **merger** (`merger.py`): the only writer of the model; reads the stream by id after its
  checkpoint's last applied entry, applies the strategy in order, publishes each version once
  (content-addressed blob, `versions.py`) with its checkpoint in one fenced script; a
  standby takes over through a lease lock.
- the merger also owns the run's schedule (`controller.py`): evaluations (kept in Redis,
  `evalstate.py`; front-ends lease chunks and record results, `evaluations.py`), the history
  and the end conditions; the run's state is the ``control`` hash (`control.py`), its events
  a pub/sub channel every front-end relays to its event stream (`relay.py`).
- `launch.py` runs the roles (``wnn serve --redis URL --processes N`` or ``--role``);
  `embed.py` makes a front-end (and a merger) an aiohttp app (``create_app(config,
  cluster=...)``).

Nothing here is imported by the single-process server: ``wnn serve`` without ``--redis`` needs
neither Redis nor this package.
"""
