-- KEYS[1] claim hash, KEYS[2] checkpoint list; ARGV: fence, final state, outcome, ttl_ms.
-- Returns 1 when recorded, 0 when fenced out.
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'fence')) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'outcome', ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
return 1
