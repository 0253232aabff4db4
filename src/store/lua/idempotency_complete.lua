-- Store the answer for an id begun with the same digest (or whose entry has
-- expired meanwhile). An id now held by another payload is left alone.
-- KEYS[1]: idempotency hash. ARGV: prefix, payload digest, answer, ttl ms.
local digest = redis.call('HGET', KEYS[1], 'digest')
if digest and digest ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'digest', ARGV[2], 'answer', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
