-- KEYS[1]: idempotency hash. ARGV: prefix, payload digest, ttl ms.
-- Returns {'new'}, {'in_progress'}, {'stored', answer} or {'mismatch'}.
local cur = redis.call('HMGET', KEYS[1], 'digest', 'answer')
if not cur[1] then
  redis.call('HSET', KEYS[1], 'digest', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new'}
end
if cur[1] ~= ARGV[2] then
  return {'mismatch'}
end
if cur[2] then
  return {'stored', cur[2]}
end
return {'in_progress'}
