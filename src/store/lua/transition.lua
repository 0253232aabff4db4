-- Compare-and-set a journal record on (state, attempt).
-- KEYS[1]: record hash. ARGV: prefix, tx id, expected state, expected attempt,
-- data, next state, next attempt, updated_at, retention ms, schedule kind,
-- schedule time.
-- Returns {1} when applied, {0} when the record is gone, {0, data} when its
-- state or attempt did not match (nothing written).
local p = ARGV[1]
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'data')
if not cur[3] then
  return {0}
end
if cur[1] ~= ARGV[3] or cur[2] ~= ARGV[4] then
  return {0, cur[3]}
end
put_record(p, KEYS[1], {
  id = ARGV[2], data = ARGV[5], state = ARGV[6], attempt = ARGV[7], updated = ARGV[8],
  retention = ARGV[9], sched = ARGV[10], at = ARGV[11],
})
return {1}
