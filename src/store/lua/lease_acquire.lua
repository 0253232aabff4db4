-- Take a free (or expired) lease, or renew it when the caller already holds it.
-- KEYS[1]: lease key. ARGV: prefix, holder, ttl ms. Returns 1 when held by the caller.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if holder == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
