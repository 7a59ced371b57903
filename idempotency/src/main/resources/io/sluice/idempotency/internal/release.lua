-- KEYS[1] submission hash; ARGV[1] request_id
-- Forgets the submission only while it still names this request and Kafka has not acknowledged
-- it: a release that comes late never drops a later request's submission, and a request known to
-- be written keeps its key. Returns 1 when it was forgotten, 0 otherwise.
if redis.call('HGET', KEYS[1], 'request_id') == ARGV[1] and not redis.call('HGET', KEYS[1], 'acked') then
  return redis.call('DEL', KEYS[1])
end
return 0
