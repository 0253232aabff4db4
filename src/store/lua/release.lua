-- Release the inputs still held by the owner; others' are left alone.
-- KEYS[1..n]: reservation keys. ARGV: prefix, owner, then the n input names.
local p, owner = ARGV[1], ARGV[2]
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == owner then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', p .. 'reservations', ARGV[i + 2])
    released = released + 1
  end
end
return released
