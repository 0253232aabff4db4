-- Number of live reservations. ARGV: prefix.
local index = ARGV[1] .. 'reservations'
redis.call('ZREMRANGEBYSCORE', index, '-inf', int(now_ms()))
return redis.call('ZCARD', index)
