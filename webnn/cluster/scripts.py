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
  every task is still claimed by the caller.
- `LEAVE`: a session's open tasks go back to the queue.
- `PUBLISH`: the merger's version, checkpoint, merge log, stream acknowledgement and
  notification in one step, fenced by the merger lock (a merger that lost it writes nothing).
"""

from __future__ import annotations

NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
"""

RECLAIM_DUE = """
local function reclaim(leases, returned, stats, task_prefix, stasks_prefix, keep, limit)
  local due = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local key = task_prefix .. id
    local t = redis.call('HMGET', key, 'state', 'index', 'session')
    if t[1] == 'open' or t[1] == 'claimed' then
      redis.call('HSET', key, 'state', 'expired')
      redis.call('RPUSH', returned, t[2])
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
-- KEYS: leases, returned, next_batch, stats, session, session tasks
-- ARGV: task prefix, session-tasks prefix, keep seconds, task id, version, steps, token,
--       lease seconds, max open tasks
reclaim(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[3], 64)
if redis.call('EXISTS', KEYS[5]) == 0 then return {'unknown_session'} end
if redis.call('SCARD', KEYS[6]) >= tonumber(ARGV[9]) then return {'too_many_tasks'} end
local index = redis.call('LPOP', KEYS[2])
if not index then index = tostring(redis.call('INCR', KEYS[3]) - 1) end
local expires = now + tonumber(ARGV[8])
local key = ARGV[1] .. ARGV[4]
redis.call('HSET', key, 'state', 'open', 'index', index, 'version', ARGV[5], 'steps', ARGV[6],
           'session', ARGV[7], 'expires', tostring(expires))
redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[8]) + tonumber(ARGV[3])))
redis.call('ZADD', KEYS[1], expires, ARGV[4])
redis.call('SADD', KEYS[6], ARGV[4])
redis.call('EXPIRE', KEYS[6], math.ceil(tonumber(ARGV[8]) + tonumber(ARGV[3])))
redis.call('HINCRBY', KEYS[4], 'tasks_issued', 1)
return {'ok', index, tostring(expires)}
"""

CLAIM = NOW + """
-- KEYS: task, leases, returned, stats, session tasks; ARGV: task id, token, owner,
--       claim seconds, keep seconds
local t = redis.call('HMGET', KEYS[1], 'state', 'session', 'expires', 'answer', 'index')
if not t[1] then return {'unknown_task'} end
if t[2] ~= ARGV[2] then return {'not_your_task'} end
if t[1] == 'done' then return {'done', t[4]} end
if t[1] == 'expired' then return {'lease_expired'} end
if t[1] == 'claimed' then return {'claimed'} end
if tonumber(t[3]) < now then
  redis.call('HSET', KEYS[1], 'state', 'expired')
  redis.call('RPUSH', KEYS[3], t[5])
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

COMMIT = """
-- KEYS: stream, leases, stats
-- ARGV: owner, task prefix, session-tasks prefix, keep seconds, n, task ids (n), answers (n),
--       then the entry's field/value pairs
local n = tonumber(ARGV[5])
for i = 1, n do
  local t = redis.call('HMGET', ARGV[2] .. ARGV[5 + i], 'state', 'owner')
  if t[1] ~= 'claimed' or t[2] ~= ARGV[1] then return {'lost', ARGV[5 + i]} end
end
local fields = {}
for i = 6 + 2 * n, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
for i = 1, n do
  local key = ARGV[2] .. ARGV[5 + i]
  local session = redis.call('HGET', key, 'session')
  redis.call('HSET', key, 'state', 'done', 'answer', ARGV[5 + n + i], 'entry', id)
  redis.call('EXPIRE', key, ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[5 + i])
  redis.call('SREM', ARGV[3] .. session, ARGV[5 + i])
end
redis.call('HINCRBY', KEYS[3], 'updates_durable', n)
redis.call('HINCRBY', KEYS[3], 'stream_entries', 1)
return {'ok', id}
"""

LEAVE = """
-- KEYS: session tasks, returned, leases, session, sessions; ARGV: task prefix, token, keep
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local t = redis.call('HMGET', key, 'state', 'index')
  if t[1] == 'open' then
    redis.call('HSET', key, 'state', 'expired')
    redis.call('RPUSH', KEYS[2], t[2])
    redis.call('ZREM', KEYS[3], id)
    redis.call('EXPIRE', key, ARGV[3])
  end
end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[2])
return #ids
"""

PUBLISH = """
-- KEYS: lock, current, checkpoint, merge log, stream, stats, version key, blob key
-- ARGV: owner, version, digest, steps, merges, applied entry id, strategy state (bytes),
--       blob (bytes, empty: the blob exists), channel, message, group, old version key or '',
--       n log records, log records (n), then entry ids to acknowledge
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'not_owner'} end
local now = redis.call('TIME')
if ARGV[8] ~= '' then redis.call('SET', KEYS[8], ARGV[8]) end
redis.call('HSET', KEYS[7], 'digest', ARGV[3], 'steps', ARGV[4], 'merges', ARGV[5])
local fields = {'version', ARGV[2], 'digest', ARGV[3], 'steps', ARGV[4], 'merges', ARGV[5],
                'time', now[1] .. '.' .. string.format('%06d', tonumber(now[2]))}
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HSET', KEYS[3], 'version', ARGV[2], 'digest', ARGV[3], 'steps', ARGV[4],
           'merges', ARGV[5], 'applied', ARGV[6], 'state', ARGV[7])
if ARGV[12] ~= '' then
  local old = redis.call('HGET', ARGV[12], 'digest')
  redis.call('DEL', ARGV[12])
  if old and old ~= ARGV[3] then
    -- the blob may be shared by a newer version with the same weights
    redis.call('HINCRBY', KEYS[6], 'versions_dropped', 1)
    redis.call('DEL', string.sub(KEYS[8], 1, #KEYS[8] - #ARGV[3]) .. old)
  end
end
local n = tonumber(ARGV[13])
for i = 1, n do redis.call('RPUSH', KEYS[4], ARGV[13 + i]) end
local acks = {}
for i = 14 + n, #ARGV do acks[#acks + 1] = ARGV[i] end
if #acks > 0 then redis.call('XACK', KEYS[5], ARGV[11], unpack(acks)) end
redis.call('PUBLISH', ARGV[9], ARGV[10])
return {'ok'}
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
