-- Create a journal record if none exists.
-- KEYS[1]: record hash. ARGV: prefix, tx id, data, state, attempt, updated_at,
-- retention ms, schedule kind, schedule time.
-- Returns {1} when created, {0, data} when a record already exists.
local p = ARGV[1]
local existing = redis.call('HGET', KEYS[1], 'data')
if existing then
  return {0, existing}
end
put_record(p, KEYS[1], {
  id = ARGV[2], data = ARGV[3], state = ARGV[4], attempt = ARGV[5], updated = ARGV[6],
  retention = ARGV[7], sched = ARGV[8], at = ARGV[9],
})
return {1}
