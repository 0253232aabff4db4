-- Number of journal records in each state, in STATES order. ARGV: prefix.
local p = ARGV[1]
sweep(p, now_ms(), 1000)
local out = {}
for i, st in ipairs(STATES) do
  out[i] = redis.call('ZCARD', p .. 'state:' .. st)
end
return out
