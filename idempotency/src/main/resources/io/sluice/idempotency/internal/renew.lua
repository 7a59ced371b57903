-- KEYS[1] claim hash; ARGV: fence, lease_ms. Returns 1 when renewed, 0 when fenced out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'fence')) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[2]))
return 1
