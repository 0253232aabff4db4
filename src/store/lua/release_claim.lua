-- Undo a claim whose verification failed before any broadcast: iff the
-- record is CLAIMED with the given attempt, delete it with its index entries,
-- the reservations it owns and its logical-key binding.
-- KEYS[1]: record hash; KEYS[2..n+1]: reservation keys; KEYS[n+2] (optional):
-- logical-key binding. ARGV: prefix, tx id, attempt, n, has logical key
-- (0|1), then the n input names.
-- Returns 1 when released, 0 otherwise (nothing written).
local p = ARGV[1]
local id = ARGV[2]
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt')
if cur[1] ~= 'claimed' or cur[2] ~= ARGV[3] then
  return 0
end
local n = tonumber(ARGV[4])
for i = 1, n do
  if redis.call('GET', KEYS[i + 1]) == id then
    redis.call('DEL', KEYS[i + 1])
    redis.call('ZREM', p .. 'reservations', ARGV[5 + i])
  end
end
if ARGV[5] == '1' and redis.call('GET', KEYS[n + 2]) == id then
  redis.call('DEL', KEYS[n + 2])
end
redis.call('DEL', KEYS[1])
for _, st in ipairs(STATES) do
  redis.call('ZREM', p .. 'state:' .. st, id)
end
redis.call('ZREM', p .. 'journal', id)
redis.call('ZREM', p .. 'pending', id)
redis.call('ZREM', p .. 'journal-expiry', id)
return 1
