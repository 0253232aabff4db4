-- Tx ids whose next check time is at or before now, oldest first.
-- ARGV: prefix, now (unix ms, the caller's clock), limit.
local p = ARGV[1]
sweep(p, now_ms(), 1000)
return redis.call('ZRANGE', p .. 'pending', '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
