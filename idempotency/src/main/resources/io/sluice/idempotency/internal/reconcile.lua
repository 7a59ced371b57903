-- KEYS[1] claim hash; ARGV: request_id, final state, outcome, ttl_ms, owner.
-- Records an outcome reached without a claim (decoded while Redis did not answer).
-- A call that timed out may still have run once Redis answered again, so a claim of this very
-- request by this very owner is ours, not a rival's. Returns 1 when recorded (or already there),
-- 0 when someone else claimed the key meanwhile (reported as a possible second decode).
local state = redis.call('HGET', KEYS[1], 'state')
if state then
  local first = redis.call('HGET', KEYS[1], 'request_id')
  local owner = redis.call('HGET', KEYS[1], 'owner')
  if first ~= ARGV[1] then return 0 end
  if state ~= 'RUNNING' then return 1 end
  if owner ~= ARGV[5] then return 0 end
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'request_id', ARGV[1], 'owner', ARGV[5], 'outcome', ARGV[3])
if not state then
  redis.call('HSET', KEYS[1], 'fence', 0, 'lease_until', 0)
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
