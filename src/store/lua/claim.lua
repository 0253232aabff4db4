-- Claim a settlement in one step: create its journal record, reserve its
-- inputs and bind its logical key (Masumi terms digest), or write nothing.
-- KEYS[1]: record hash; KEYS[2..n+1]: reservation keys of the n inputs;
-- KEYS[n+2] (optional): the logical-key binding.
-- ARGV: prefix, tx id, data, state, attempt, updated_at, retention ms,
-- schedule kind, schedule time, reservation ttl ms, n, has logical key (0|1),
-- then the n input names (members of the reservation index).
-- Returns {1} when claimed, {0, data} when a record exists, {2, i, holder}
-- when input i is reserved by another transaction, {3, holder} when the
-- logical key is bound to another live transaction.
local p = ARGV[1]
local id = ARGV[2]
local existing = redis.call('HGET', KEYS[1], 'data')
if existing then
  return {0, existing}
end
local n = tonumber(ARGV[11])
local has_key = ARGV[12] == '1'
if has_key then
  local holder = redis.call('GET', KEYS[n + 2])
  if holder and holder ~= id and redis.call('EXISTS', p .. 'settle:' .. holder) == 1 then
    return {3, holder}
  end
end
for i = 1, n do
  local holder = redis.call('GET', KEYS[i + 1])
  if holder and holder ~= id then
    return {2, i, holder}
  end
end
local now = now_ms()
local ttl = tonumber(ARGV[10])
local index = p .. 'reservations'
for i = 1, n do
  redis.call('SET', KEYS[i + 1], id, 'PX', ttl)
  redis.call('ZADD', index, int(now + ttl), ARGV[12 + i])
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', int(now))
if has_key then
  redis.call('SET', KEYS[n + 2], id, 'PX', ARGV[7])
end
put_record(p, KEYS[1], {
  id = id, data = ARGV[3], state = ARGV[4], attempt = ARGV[5], updated = ARGV[6],
  retention = ARGV[7], sched = ARGV[8], at = ARGV[9],
})
return {1}
