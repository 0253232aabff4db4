-- All-or-nothing reservation of UTxO inputs for one transaction.
-- KEYS[1..n]: reservation keys. ARGV: prefix, owner, ttl ms, then the n input
-- names (members of the reservation index), in KEYS order.
-- Returns {0} when every input is now held by the owner, or {i, holder} for
-- the first input held by another transaction (and then nothing is written).
local p, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 1, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder and holder ~= owner then
    return {i, holder}
  end
end
local now = now_ms()
local index = p .. 'reservations'
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], owner, 'PX', ttl)
  redis.call('ZADD', index, int(now + ttl), ARGV[i + 3])
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', int(now))
return {0}
