-- KEYS[1] claim hash, KEYS[2] checkpoint list; ARGV: fence, from_seq, token ids...
-- Returns the checkpoint length after the append, or -1 when the fence is stale.
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return -1 end
if tonumber(redis.call('HGET', KEYS[1], 'fence')) ~= tonumber(ARGV[1]) then return -1 end
local len = redis.call('LLEN', KEYS[2])
local from = tonumber(ARGV[2])
if from > len then
  return redis.error_reply('checkpoint gap: have ' .. len .. ' tokens, append starts at ' .. from)
end
-- Tokens below len are already checkpointed (a repeated write of the same step): keep the first.
for i = 3 + (len - from), #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
return redis.call('LLEN', KEYS[2])
