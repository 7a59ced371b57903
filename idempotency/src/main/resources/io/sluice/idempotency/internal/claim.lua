-- KEYS[1] claim hash, KEYS[2] checkpoint list
-- ARGV: request_id, owner, lease_ms, ttl_ms
-- Returns {state, fence, first_request_id, lease_remaining_ms, checkpoint}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'request_id', ARGV[1], 'owner', ARGV[2],
             'fence', 1, 'lease_until', now + lease)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('DEL', KEYS[2])
  return {'ACQUIRED', 1, ARGV[1], 0, {}}
end
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence'))
local first = redis.call('HGET', KEYS[1], 'request_id')
if state ~= 'RUNNING' then
  return {state, fence, first, 0, redis.call('LRANGE', KEYS[2], 0, -1)}
end
local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until'))
local owner = redis.call('HGET', KEYS[1], 'owner')
-- The holder itself may claim the same request again at once (it stopped its own generation,
-- say during a Redis outage); anyone else, and any other request of the key, waits for the lease.
if lease_until > now and not (owner == ARGV[2] and first == ARGV[1]) then
  return {'BUSY', fence, first, lease_until - now, {}}
end
-- Take over under a higher fence, so every write under the old one is refused.
fence = fence + 1
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'fence', fence, 'lease_until', now + lease)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {'ACQUIRED', fence, first, 0, redis.call('LRANGE', KEYS[2], 0, -1)}
