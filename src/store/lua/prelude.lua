-- Shared by every script (prepended at load time, after the generated
-- `local STATES = {...}` line that lists the journal states).
--
-- Key layout: the keys of the entity a call is about (reservation, record,
-- lease, idempotency entry) arrive in KEYS; the shared index keys are derived
-- from the key prefix, which is always ARGV[1]. Standalone and Sentinel Redis
-- only: the derived keys are not declared, so Redis Cluster is not supported.

-- Server time in unix milliseconds. Every deadline the scripts compute uses
-- the server clock, the same clock Redis uses to expire keys.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integer as a decimal string (Lua's default number formatting switches to
-- exponent notation for large values).
local function int(x)
  return string.format('%.0f', x)
end

-- Drop index entries of journal records whose retention has run out. Bounded
-- per call; whatever is left is taken by the next call.
local function sweep(p, now, max)
  local ids = redis.call('ZRANGE', p .. 'journal-expiry', '-inf', int(now), 'BYSCORE', 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', p .. 'settle:' .. id) == 0 then
      for _, st in ipairs(STATES) do
        redis.call('ZREM', p .. 'state:' .. st, id)
      end
      redis.call('ZREM', p .. 'journal', id)
      redis.call('ZREM', p .. 'pending', id)
    end
    redis.call('ZREM', p .. 'journal-expiry', id)
  end
end

-- Write a journal record and every index that derives from it, in one step.
-- key: the record hash; a: table with id, data, state, attempt, updated,
-- retention (ms), sched ('at' | 'done' | 'keep'), at (ms).
local function put_record(p, key, a)
  redis.call('HSET', key, 'data', a.data, 'state', a.state, 'attempt', a.attempt, 'updatedAt', a.updated)
  local expires = now_ms() + tonumber(a.retention)
  redis.call('PEXPIREAT', key, int(expires))
  redis.call('ZADD', p .. 'journal-expiry', int(expires), a.id)
  for _, st in ipairs(STATES) do
    if st ~= a.state then
      redis.call('ZREM', p .. 'state:' .. st, a.id)
    end
  end
  redis.call('ZADD', p .. 'state:' .. a.state, a.updated, a.id)
  redis.call('ZADD', p .. 'journal', a.updated, a.id)
  if a.sched == 'at' then
    redis.call('ZADD', p .. 'pending', a.at, a.id)
  elseif a.sched == 'done' then
    redis.call('ZREM', p .. 'pending', a.id)
  end
end
