-- KEYS[1] submission hash; ARGV[1] request_id
-- Marks the submission as written to Kafka, only while it still names this request: a mark that
-- comes after the key expired must neither recreate it (without an expiry) nor vouch for a later
-- request under the same key. Returns 1 when marked, 0 otherwise.
if redis.call('HGET', KEYS[1], 'request_id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'acked', '1')
  return 1
end
return 0
