-- Forget an id still in progress for this digest; a stored answer is kept.
-- KEYS[1]: idempotency hash. ARGV: prefix, payload digest.
local cur = redis.call('HMGET', KEYS[1], 'digest', 'answer')
if cur[1] == ARGV[2] and not cur[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
