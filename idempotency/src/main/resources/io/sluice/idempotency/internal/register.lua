-- KEYS[1] submission hash; ARGV: request_id, digest, tenant, created_at_ms, ttl_ms
-- Returns {status, request_id, digest, tenant, created_at}: NEW for the first submission of a key,
-- EXISTING with the first submission's fields for every later one.
local first = redis.call('HGET', KEYS[1], 'request_id')
if first then
  return {'EXISTING', first, redis.call('HGET', KEYS[1], 'digest'), redis.call('HGET', KEYS[1], 'tenant'),
          redis.call('HGET', KEYS[1], 'created_at')}
end
redis.call('HSET', KEYS[1], 'request_id', ARGV[1], 'digest', ARGV[2], 'tenant', ARGV[3], 'created_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return {'NEW', ARGV[1], ARGV[2], ARGV[3], ARGV[4]}
