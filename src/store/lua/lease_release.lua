-- Give a lease back, only if the caller holds it. KEYS[1]: lease key. ARGV: prefix, holder.
if redis.call('GET', KEYS[1]) == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
