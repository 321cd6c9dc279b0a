"""The atomic steps of a run, as Lua scripts run by Redis (each one all-or-nothing, and no other
command runs in between, whichever process calls it).

Task states: ``open`` (leased) -> ``claimed`` (a front-end holds the update and is writing it to
the stream) -> ``done`` (in the stream; `answer` kept for retries); ``open``/``claimed`` ->
``expired`` (the deadline in `leases` passed: the batch number goes back to `returned`). Time is
Redis's own clock (``TIME``), so front-ends on other machines agree on every deadline.

- `LEASE`: reclaim due leases, then hand out one batch (a returned one first, else the next
  number): no batch is out twice, and a dead front-end's leases come back after their deadline.
- `RECLAIM`: the reclaim alone (run by every front-end's tick).
- `CLAIM`: an update's task moves from ``open`` to ``claimed`` (or says why not).
- `COMMIT`: the stream entry is added and its tasks become ``done`` in one step; refused unless
  every task is still claimed by the caller. A raw update that the merger merges against its
  base version's weights pins that version (``bases``) until it is applied; refused
  (``too_stale``) when that version was dropped meanwhile.
- `GIVE_BACK`: a task refused too_stale is due now (its batch goes back at the next reclaim).
- `LEAVE`: a session's open tasks go back to the queue.
- `PUBLISH`: the merger's version, checkpoint, merge log and notification in one step,
  fenced by the merger lock (a merger that lost it writes nothing);
  the version under evaluation is never dropped here.
- `GUARDED`: a write of the evaluation in progress (compare-and-set on its revision), guarded by
  conditions on hash fields and optionally fenced by the merger lock, with the commands that go
  with it (task records, history, the run's state, events) in the same step.
- `NOTE_INVALID`: a refused submission counted; a streak cuts the session off.
- `JOIN`: the join token bucket of one client address, shared by every front-end.
- `STATE`: the admin's pause and resume.
- `ASSIGN`: a session's data shard in a partitioned run.
- `FORGET`: idle sessions leave the live set (once, whichever front-end runs it).
- `TRAINERS`: a session noted in the run's live trainers (added on an accepted update, only
  refreshed on a lease), the set trimmed to the window and counted (`task_rate.py`).

`LEASE` and `COMMIT` read the run's ``control`` hash: a paused, finishing or ended run hands
out no training, and a finishing or ended one writes no update to the stream.
Shard s > 0 of a partitioned run has its own ``next_batch:<s>`` and ``returned:<s>``.
"""

from __future__ import annotations

NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
"""

SHARD_KEY = """
-- shard 0's keys are the base names (`next_batch`, `returned`), shard s's are `<name>:<s>`
local function shard_key(base, shard)
  if not shard or shard == '' or shard == '0' then return base end
  return base .. ':' .. shard
end
"""

RECLAIM_DUE = SHARD_KEY + """
local function reclaim(leases, returned, stats, task_prefix, stasks_prefix, keep, limit)
  local due = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local key = task_prefix .. id
    local t = redis.call('HMGET', key, 'state', 'index', 'session', 'shard')
    if t[1] == 'open' or t[1] == 'claimed' then
      redis.call('HSET', key, 'state', 'expired')
      redis.call('RPUSH', shard_key(returned, t[4]), t[2])
      redis.call('SREM', stasks_prefix .. t[3], id)
      redis.call('HINCRBY', stats, 'leases_expired', 1)
      redis.call('EXPIRE', key, keep)
    end
    redis.call('ZREM', leases, id)
  end
  return #due
end
"""

RECLAIM = NOW + RECLAIM_DUE + """
-- KEYS: leases, returned, stats; ARGV: task prefix, session-tasks prefix, keep seconds
return reclaim(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], 256)
"""

LEASE = NOW + RECLAIM_DUE + """
-- KEYS: leases, returned, next_batch, stats, session, session tasks, control
-- ARGV: task prefix, session-tasks prefix, keep seconds, task id, version, steps, token,
--       lease seconds, max open tasks, shard
reclaim(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[3], 64)
if redis.call('EXISTS', KEYS[5]) == 0 then return {'unknown_session'} end
local run = redis.call('HMGET', KEYS[7], 'state', 'finishing')
if (run[1] and run[1] ~= 'running') or (run[2] and run[2] ~= '') then return {'idle'} end
if redis.call('SCARD', KEYS[6]) >= tonumber(ARGV[9]) then return {'too_many_tasks'} end
local index = redis.call('LPOP', shard_key(KEYS[2], ARGV[10]))
if not index then index = tostring(redis.call('INCR', shard_key(KEYS[3], ARGV[10])) - 1) end
local expires = now + tonumber(ARGV[8])
local key = ARGV[1] .. ARGV[4]
redis.call('HSET', key, 'state', 'open', 'index', index, 'version', ARGV[5], 'steps', ARGV[6],
           'session', ARGV[7], 'expires', tostring(expires), 'shard', ARGV[10])
redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[8]) + tonumber(ARGV[3])))
redis.call('ZADD', KEYS[1], expires, ARGV[4])
redis.call('SADD', KEYS[6], ARGV[4])
redis.call('EXPIRE', KEYS[6], math.ceil(tonumber(ARGV[8]) + tonumber(ARGV[3])))
redis.call('HINCRBY', KEYS[4], 'tasks_issued', 1)
return {'ok', index, tostring(expires), redis.call('ZCARD', KEYS[1])}
"""

CLAIM = NOW + SHARD_KEY + """
-- KEYS: task, leases, returned, stats, session tasks; ARGV: task id, token, owner,
--       claim seconds, keep seconds
local t = redis.call('HMGET', KEYS[1], 'state', 'session', 'expires', 'answer', 'index',
                     'shard')
if not t[1] then return {'unknown_task'} end
if t[2] ~= ARGV[2] then return {'not_your_task'} end
if t[1] == 'done' then return {'done', t[4]} end
if t[1] == 'expired' then return {'lease_expired'} end
if t[1] == 'claimed' then return {'claimed'} end
if tonumber(t[3]) < now then
  redis.call('HSET', KEYS[1], 'state', 'expired')
  redis.call('RPUSH', shard_key(KEYS[3], t[6]), t[5])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[5], ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'leases_expired', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return {'lease_expired'}
end
redis.call('HSET', KEYS[1], 'state', 'claimed', 'owner', ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return {'ok'}
"""

UNCLAIM = """
-- KEYS: task; ARGV: owner. A claimed task whose update was refused after the claim goes back
-- to open (its lease deadline is unchanged in spirit: the claim's deadline stands).
local t = redis.call('HMGET', KEYS[1], 'state', 'owner')
if t[1] == 'claimed' and t[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'open')
  return 1
end
return 0
"""

GIVE_BACK = """
-- KEYS: task, leases; ARGV: task id, owner
-- A task refused too_stale: open (or claimed by the caller) -> open with a due deadline, so
-- the next reclaim hands its batch out again; any other state (done, expired, another's
-- claim) is left as it is.
local t = redis.call('HMGET', KEYS[1], 'state', 'owner')
if t[1] == 'open' or (t[1] == 'claimed' and t[2] == ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'expires', '0')
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  return 1
end
return 0
"""

COMMIT = """
-- KEYS: stream, leases, stats, control, bases, the base version's key ('' no pin), checkpoint,
--       the entry's payload key ('' none: the entry holds its array)
-- ARGV: owner, task prefix, session-tasks prefix, keep seconds, n, base version to pin ('' no
--       pin), task ids (n), answers (n), then the entry's field/value pairs
-- The payload was SET (with an expiry) in the same MULTI/EXEC just before this script: it is
-- made permanent with the entry, or deleted when the entry is refused.
local function refuse(code, detail)
  if KEYS[8] and KEYS[8] ~= '' then redis.call('UNLINK', KEYS[8]) end
  return {code, detail}
end
local n = tonumber(ARGV[5])
local run = redis.call('HMGET', KEYS[4], 'state', 'finishing')
if run[1] == 'ended' then return refuse('ended', '') end
if run[2] and run[2] ~= '' then return refuse('finishing', '') end
for i = 1, n do
  local t = redis.call('HMGET', ARGV[2] .. ARGV[6 + i], 'state', 'owner')
  if t[1] ~= 'claimed' or t[2] ~= ARGV[1] then return refuse('lost', ARGV[6 + i]) end
end
if ARGV[6] ~= '' then
  -- below the sweep's floor a version is gone or kept only for its evaluation
  local floor = tonumber(redis.call('HGET', KEYS[7], 'floor') or '0')
  if tonumber(ARGV[6]) < floor or redis.call('EXISTS', KEYS[6]) == 0 then
    return refuse('too_stale', '')
  end
end
if KEYS[8] and KEYS[8] ~= '' then
  if redis.call('PERSIST', KEYS[8]) == 0 and redis.call('EXISTS', KEYS[8]) == 0 then
    return {'no_payload', KEYS[8]}
  end
end
local fields = {}
for i = 7 + 2 * n, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[5], tonumber(ARGV[6]), id) end
for i = 1, n do
  local key = ARGV[2] .. ARGV[6 + i]
  local session = redis.call('HGET', key, 'session')
  redis.call('HSET', key, 'state', 'done', 'answer', ARGV[6 + n + i], 'entry', id)
  redis.call('EXPIRE', key, ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[6 + i])
  redis.call('SREM', ARGV[3] .. session, ARGV[6 + i])
end
redis.call('HINCRBY', KEYS[3], 'updates_durable', n)
redis.call('HINCRBY', KEYS[3], 'stream_entries', 1)
return {'ok', id}
"""

LEAVE = SHARD_KEY + """
-- KEYS: session tasks, returned, leases, session, sessions, evaluation leases, parties,
--       shard load
-- ARGV: task prefix, token, keep
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local t = redis.call('HMGET', key, 'state', 'index', 'kind', 'shard')
  if t[1] == 'open' and t[3] == 'evaluate' then
    -- the merger gives the chunk back in the evaluation (its lease is due now)
    redis.call('ZADD', KEYS[6], 0, id)
  elseif t[1] == 'open' then
    redis.call('HSET', key, 'state', 'expired')
    redis.call('RPUSH', shard_key(KEYS[2], t[4]), t[2])
    redis.call('ZREM', KEYS[3], id)
    redis.call('EXPIRE', key, ARGV[3])
  end
end
local shard = redis.call('HMGET', KEYS[4], 'shard', 'anonymous')
if shard[1] and shard[2] == '1' then redis.call('HINCRBY', KEYS[8], shard[1], -1) end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('HDEL', KEYS[7], ARGV[2])
return #ids
"""

PUBLISH = """
-- KEYS: lock, current, checkpoint, merge log, stream, stats, version key, blob key,
--       pinned version key (the version under evaluation: never dropped here) or '', bases,
--       staged blob ('' none: the blob exists), staged state, checkpoint state, then the
--       payload keys of the entries this checkpoint covers (deleted)
-- ARGV: owner, version, digest, steps, merges, applied entry id, (unused), (unused),
--       channel, message, versions kept, n log records, log records kept (the newest), log
--       records (n), then applied entry ids to remove from `bases`
-- The staged blob and state were SET (with an expiry) in the same MULTI/EXEC just before this
-- script: model-sized values never pass through Lua (each copy there costs Redis's one
-- thread milliseconds); they are renamed into place, or deleted when the lock is another's.
-- Versions are dropped in order from the checkpoint's `floor` up to (version - kept), but
-- never one at or above the lowest base version an unapplied entry needs (`bases`); the
-- version under evaluation is passed over (`DROP` takes it when its evaluation ends). A
-- dropped version's blob goes only when no version still kept has the same digest.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  for i = 11, 12 do if KEYS[i] ~= '' then redis.call('UNLINK', KEYS[i]) end end
  return {'not_owner'}
end
local now = redis.call('TIME')
if KEYS[11] ~= '' then
  if redis.call('EXISTS', KEYS[8]) == 1 then redis.call('UNLINK', KEYS[11])
  else redis.call('RENAME', KEYS[11], KEYS[8]); redis.call('PERSIST', KEYS[8]) end
end
redis.call('RENAME', KEYS[12], KEYS[13])
redis.call('PERSIST', KEYS[13])
for i = 14, #KEYS do redis.call('UNLINK', KEYS[i]) end
redis.call('HSET', KEYS[7], 'digest', ARGV[3], 'steps', ARGV[4], 'merges', ARGV[5])
local fields = {'version', ARGV[2], 'digest', ARGV[3], 'steps', ARGV[4], 'merges', ARGV[5],
                'time', now[1] .. '.' .. string.format('%06d', tonumber(now[2]))}
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HSET', KEYS[3], 'version', ARGV[2], 'digest', ARGV[3], 'steps', ARGV[4],
           'merges', ARGV[5], 'applied', ARGV[6])
redis.call('HDEL', KEYS[3], 'state')  -- a checkpoint from before `checkpoint state`
local n = tonumber(ARGV[12])
for i = 1, n do
  redis.call('RPUSH', KEYS[4], ARGV[13 + i])
  local record = cjson.decode(ARGV[13 + i])
  if record.refused ~= cjson.null then  -- counted here, so a deposed merger counts nothing
    redis.call('HINCRBY', KEYS[6], 'rejected:' .. record.refused, #record.tasks)
  end
end
if n > 0 then
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[13]), -1)
  -- one record per applied entry: with `stream_entries` (COMMIT), the unmerged stream
  redis.call('HINCRBY', KEYS[6], 'stream_applied', n)
end
local done = {}
for i = 14 + n, #ARGV do
  done[#done + 1] = ARGV[i]
  if #done == 1000 then redis.call('ZREM', KEYS[10], unpack(done)); done = {} end
end
if #done > 0 then redis.call('ZREM', KEYS[10], unpack(done)) end
local version = tonumber(ARGV[2])
local vprefix = string.sub(KEYS[7], 1, #KEYS[7] - #ARGV[2])
local bprefix = string.sub(KEYS[8], 1, #KEYS[8] - #ARGV[3])
local limit = version - tonumber(ARGV[11])
local lowest = redis.call('ZRANGE', KEYS[10], 0, 0, 'WITHSCORES')
if lowest[2] then limit = math.min(limit, tonumber(lowest[2]) - 1) end
local floor = tonumber(redis.call('HGET', KEYS[3], 'floor') or '0')
local dropped = {}
while floor <= limit do
  local old = nil
  if vprefix .. floor ~= KEYS[9] then old = redis.call('HGET', vprefix .. floor, 'digest') end
  if old then
    redis.call('DEL', vprefix .. floor)
    redis.call('HINCRBY', KEYS[6], 'versions_dropped', 1)
    dropped[#dropped + 1] = old
  end
  floor = floor + 1
end
redis.call('HSET', KEYS[3], 'floor', floor)
if #dropped > 0 then
  local used = {[ARGV[3]] = true}
  if KEYS[9] ~= '' then
    local evaluated = redis.call('HGET', KEYS[9], 'digest')
    if evaluated then used[evaluated] = true end
  end
  for v = floor, version do
    local d = redis.call('HGET', vprefix .. v, 'digest')
    if d then used[d] = true end
  end
  for _, d in ipairs(dropped) do
    if not used[d] then redis.call('DEL', bprefix .. d); used[d] = true end
  end
end
redis.call('PUBLISH', ARGV[9], ARGV[10])
return {'ok'}
"""

DROP = """
-- KEYS: lock, checkpoint, stats, the version's key, current
-- ARGV: owner, version, version key prefix, blob key prefix
-- A version whose evaluation ended: dropped when the publications' sweep passed it (below
-- the checkpoint's `floor`: no unapplied update can pin it, `COMMIT` refuses that), its blob
-- too unless a kept version (from the floor to the current one) has the same digest.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local floor = tonumber(redis.call('HGET', KEYS[2], 'floor') or '0')
if tonumber(ARGV[2]) >= floor then return 0 end
local digest = redis.call('HGET', KEYS[4], 'digest')
if not digest then return 0 end
redis.call('DEL', KEYS[4])
redis.call('HINCRBY', KEYS[3], 'versions_dropped', 1)
local current = tonumber(redis.call('HGET', KEYS[5], 'version') or '-1')
for v = floor, current do
  if redis.call('HGET', ARGV[3] .. v, 'digest') == digest then return 1 end
end
redis.call('DEL', ARGV[4] .. digest)
return 1
"""

RENEW = """
-- KEYS: lock; ARGV: owner, milliseconds
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE = """
-- KEYS: lock; ARGV: owner
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

GUARDED = """
-- A guarded write of the evaluation in progress (and what goes with it), all or nothing.
-- KEYS: evaluation hash, revision counter, merger lock
-- ARGV: lock owner ('' = any writer), expected revision ('' = no evaluation, '*' = any),
--       new json ('' = delete the evaluation, '=' = leave it as it is),
--       n guards, guards (op, key, field, value) x n with op 'eq' or 'ne' (a missing field
--       reads ''), then m commands, each as its argument count followed by its arguments
local i = 1
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'not_owner'} end
local rev = redis.call('HGET', KEYS[1], 'rev') or ''
if ARGV[2] ~= '*' and rev ~= ARGV[2] then return {'conflict', rev} end
local guards = tonumber(ARGV[4])
i = 5
for g = 1, guards do
  local found = redis.call('HGET', ARGV[i + 1], ARGV[i + 2]) or ''
  if (ARGV[i] == 'eq') ~= (found == ARGV[i + 3]) then
    return {'guard', ARGV[i + 1], ARGV[i + 2], found}
  end
  i = i + 4
end
local new = rev
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  new = ''
elseif ARGV[3] ~= '=' then
  new = tostring(redis.call('INCR', KEYS[2]))
  redis.call('HSET', KEYS[1], 'json', ARGV[3], 'rev', new)
end
local commands = tonumber(ARGV[i])
i = i + 1
for c = 1, commands do
  local argc = tonumber(ARGV[i])
  local args = {}
  for a = 1, argc do args[a] = ARGV[i + a] end
  redis.call(unpack(args))
  i = i + argc + 1
end
return {'ok', new}
"""

NOTE_INVALID = """
-- KEYS: session, stats; ARGV: code, counts toward the cut-off (1/0), max in a row,
--       cut-off seconds
-- A refused submission: counted; a streak of `max` invalid ones cuts the session off (its
-- `cut_off_until` is Redis's clock + the cut-off seconds) and starts the streak again.
redis.call('HINCRBY', KEYS[2], 'rejected:' .. ARGV[1], 1)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'rejected', 1)
if ARGV[2] ~= '1' then return 0 end
local streak = redis.call('HINCRBY', KEYS[1], 'invalid', 1)
if streak >= tonumber(ARGV[3]) then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
  redis.call('HSET', KEYS[1], 'invalid', 0, 'cut_off_until', tostring(now + tonumber(ARGV[4])))
  return 1
end
return 0
"""

JOIN = """
-- KEYS: the address's bucket; ARGV: tokens per second, burst
-- A token bucket shared by every front-end: 0 when a token was spent, else the seconds until
-- one is there (as a string).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""

STATE = """
-- KEYS: control, events channel; ARGV: from state, to state, event message
-- The admin's pause/resume: `from` -> `to` only (anything else changes nothing).
local state = redis.call('HGET', KEYS[1], 'state') or 'running'
if state ~= ARGV[1] then return state end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return ARGV[2]
"""

ASSIGN = """
-- KEYS: volunteers (id -> shard), shard load (shard -> load), session
-- ARGV: volunteer id ('' none), shard count, most volunteers remembered
-- The session's shard (the single process's ShardAssigner): kept once given; a known
-- volunteer's; else the least-loaded shard (load: volunteer ids assigned plus live anonymous
-- sessions; ties to the lowest number), remembered for the volunteer id while the table holds
-- fewer than the most ids (past that the session is served as anonymous).
local mine = redis.call('HGET', KEYS[3], 'shard')
if mine then return mine end
if ARGV[1] ~= '' then
  local known = redis.call('HGET', KEYS[1], ARGV[1])
  if known then
    redis.call('HSET', KEYS[3], 'shard', known)
    return known
  end
end
local best, least = 0, nil
for shard = 0, tonumber(ARGV[2]) - 1 do
  local load = tonumber(redis.call('HGET', KEYS[2], tostring(shard)) or '0')
  if least == nil or load < least then best, least = shard, load end
end
local chosen = tostring(best)
redis.call('HINCRBY', KEYS[2], chosen, 1)
if ARGV[1] ~= '' and redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], chosen)
  redis.call('HSET', KEYS[3], 'shard', chosen)
else
  redis.call('HSET', KEYS[3], 'shard', chosen, 'anonymous', '1')
end
return chosen
"""

FORGET = """
-- KEYS: sessions, parties, shard load; ARGV: session key prefix, idle before (seconds), limit
-- Sessions idle past the timeout leave the live set; whoever removes one (front-ends race for
-- it) drops its party entry and, for an anonymous session, its count on its shard.
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, token in ipairs(idle) do
  redis.call('ZREM', KEYS[1], token)
  redis.call('HDEL', KEYS[2], token)
  local shard = redis.call('HMGET', ARGV[1] .. token, 'shard', 'anonymous')
  if shard[1] and shard[2] == '1' then
    redis.call('HINCRBY', KEYS[3], shard[1], -1)
    redis.call('HDEL', ARGV[1] .. token, 'anonymous')
  end
end
return #idle
"""

TRAINERS = NOW + """
-- KEYS: trainers, the session's key (for 'add'); ARGV: session token, window seconds, 'add'
--       (an accepted update) or 'refresh' (a lease: only a session already in the set gets
--       the new time)
-- Returns the sessions within the window, by Redis's clock (front-ends' clocks may differ).
-- The trim comes first, so a lease refreshes only a session that still counts; an add needs
-- the session (one that left while its update was written is not counted again).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
if ARGV[3] == 'add' then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
else
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
end
return redis.call('ZCARD', KEYS[1])
"""
