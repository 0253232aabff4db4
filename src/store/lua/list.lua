-- One page of journal records, newest first by (updated_at, tx id).
-- ARGV: prefix, index name ('journal' or 'state:<state>'), limit, and the
-- cursor's updated_at and tx id ('' for the first page).
-- Returns {more, last_score, last_id, data...}: more is 1 when records follow
-- the page, and the page's last position is then the next cursor.
local p, limit, cs, cm = ARGV[1], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local index = p .. ARGV[2]
sweep(p, now_ms(), 1000)
local rows = {}
local function add(id, score)
  rows[#rows + 1] = {id, score}
end
if cs == '' then
  local r = redis.call('ZRANGE', index, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit + 1, 'WITHSCORES')
  for i = 1, #r, 2 do add(r[i], r[i + 1]) end
else
  -- Equal timestamps are ordered by tx id: first the ties below the cursor's id...
  local ties = redis.call('ZRANGE', index, cs, cs, 'BYSCORE', 'REV')
  for _, id in ipairs(ties) do
    if #rows > limit then break end
    if id < cm then add(id, cs) end
  end
  -- ...then everything strictly older.
  if #rows <= limit then
    local r = redis.call('ZRANGE', index, '(' .. cs, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit + 1 - #rows, 'WITHSCORES')
    for i = 1, #r, 2 do add(r[i], r[i + 1]) end
  end
end
local out = {0, '', ''}
local n = math.min(#rows, limit)
if #rows > limit then
  out[1] = 1
  out[2] = rows[n][2]
  out[3] = rows[n][1]
end
for i = 1, n do
  local data = redis.call('HGET', p .. 'settle:' .. rows[i][1], 'data')
  if data then out[#out + 1] = data end
end
return out
