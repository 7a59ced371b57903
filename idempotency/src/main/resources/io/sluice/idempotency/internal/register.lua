-- KEYS[1] submission hash; ARGV: request_id, digest, tenant, created_at_ms, ttl_ms
-- Returns {status, request_id, digest, tenant, created_at, acked}: NEW for the first submission of
-- a key, EXISTING with the first submission's fields for every later one. acked is '1' once the
-- first submission's gateway saw Kafka acknowledge it, '0' before.
local first = redis.call('HGET', KEYS[1], 'request_id')
if first then
  local f = redis.call('HMGET', KEYS[1], 'digest', 'tenant', 'created_at', 'acked')
  return {'EXISTING', first, f[1], f[2], f[3], f[4] or '0'}
end
redis.call('HSET', KEYS[1], 'request_id', ARGV[1], 'digest', ARGV[2], 'tenant', ARGV[3], 'created_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return {'NEW', ARGV[1], ARGV[2], ARGV[3], ARGV[4], '0'}
