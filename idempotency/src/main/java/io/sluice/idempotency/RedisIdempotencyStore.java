package io.sluice.idempotency;

import io.sluice.idempotency.internal.Scripts;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.net.URI;
import java.util.Set;
import redis.clients.jedis.HostAndPort;
import redis.clients.jedis.RedisClient;
import redis.clients.jedis.RedisClusterClient;
import redis.clients.jedis.AbstractPipeline;
import redis.clients.jedis.DefaultJedisClientConfig;
import redis.clients.jedis.JedisClientConfig;
import redis.clients.jedis.Response;
import redis.clients.jedis.UnifiedJedis;
import redis.clients.jedis.exceptions.JedisDataException;
import redis.clients.jedis.params.SetParams;

/**
 * {@link IdempotencyStore} on Redis. Every transition is one Lua script, so claim, fence check and
 * write are atomic; lease times come from the Redis server's clock, so workers' clocks never need
 * to agree. Keys carry a hash tag ({@code {...}}) so a key's hash and checkpoint list live in the
 * same slot of a Redis Cluster; the store works on any {@link UnifiedJedis} (standalone or cluster).
 */
public final class RedisIdempotencyStore implements IdempotencyStore, SubmissionRegistry {
    private final UnifiedJedis redis;
    private final String namespace;
    private final Duration ttl;

    /**
     * @param namespace prefix of every key, e.g. {@code sluice:}
     * @param ttl how long a finished key is remembered
     */
    public RedisIdempotencyStore(UnifiedJedis redis, String namespace, Duration ttl) {
        this.redis = redis;
        this.namespace = namespace;
        this.ttl = ttl;
    }

    /**
     * Connects to a standalone Redis ({@code redis://host:port}) or, with {@code redis-cluster://host:port},
     * to a Redis Cluster through that seed node.
     */
    public static RedisIdempotencyStore connect(URI uri, String namespace, Duration ttl) {
        return connect(uri, namespace, ttl, Duration.ofMillis(2000));
    }

    /**
     * As {@link #connect(URI, String, Duration)}, with a bound on how long one call may wait: a
     * caller with a policy for Redis outages wants to learn of one quickly.
     */
    public static RedisIdempotencyStore connect(URI uri, String namespace, Duration ttl, Duration timeout) {
        JedisClientConfig config = DefaultJedisClientConfig.builder()
                .socketTimeoutMillis((int) timeout.toMillis()).connectionTimeoutMillis((int) timeout.toMillis()).build();
        UnifiedJedis client;
        if ("redis-cluster".equals(uri.getScheme())) {
            client = RedisClusterClient.builder().nodes(Set.of(new HostAndPort(uri.getHost(), uri.getPort())))
                    .clientConfig(config).build();
        } else {
            client = RedisClient.builder().hostAndPort(uri.getHost(), uri.getPort()).clientConfig(config).build();
        }
        return new RedisIdempotencyStore(client, namespace, ttl);
    }

    private List<String> keys(String key) {
        String base = namespace + "idem:{" + key + "}";
        return List.of(base, base + ":tokens");
    }

    @Override
    public Claim claim(String key, String requestId, String owner, Duration lease) {
        List<?> r = (List<?>) redis.eval(Scripts.CLAIM, keys(key),
                List.of(requestId, owner, String.valueOf(lease.toMillis()), String.valueOf(ttl.toMillis())));
        Claim.State state = Claim.State.valueOf(string(r.get(0)));
        long fence = (Long) r.get(1);
        String firstRequest = string(r.get(2));
        long leaseRemaining = (Long) r.get(3);
        List<Integer> checkpoint = new ArrayList<>();
        for (Object id : (List<?>) r.get(4)) {
            checkpoint.add(Integer.parseInt(string(id)));
        }
        return new Claim(state, fence, firstRequest, checkpoint, leaseRemaining);
    }

    @Override
    public boolean renew(String key, long fence, Duration lease) {
        Object r = redis.eval(Scripts.RENEW, keys(key), List.of(String.valueOf(fence), String.valueOf(lease.toMillis())));
        return ((Long) r) == 1L;
    }

    @Override
    public long append(String key, long fence, int fromSeq, List<Integer> tokenIds) {
        return (Long) redis.eval(Scripts.APPEND, keys(key), appendArgs(fence, fromSeq, tokenIds));
    }

    @Override
    public long[] appendAll(List<Append> appends) {
        long[] out = new long[appends.size()];
        if (appends.isEmpty()) {
            return out;
        }
        List<Response<Object>> responses = new ArrayList<>(appends.size());
        try (AbstractPipeline pipeline = redis.pipelined()) {
            for (Append a : appends) {
                responses.add(pipeline.eval(Scripts.APPEND, keys(a.key()), appendArgs(a.fence(), a.fromSeq(), a.tokenIds())));
            }
            pipeline.sync();
        }
        for (int i = 0; i < out.length; i++) {
            out[i] = (Long) responses.get(i).get();
        }
        return out;
    }

    @Override
    public boolean[] renewAll(List<String> keys, List<Long> fences, Duration lease) {
        boolean[] out = new boolean[keys.size()];
        if (keys.isEmpty()) {
            return out;
        }
        List<Response<Object>> responses = new ArrayList<>(keys.size());
        try (AbstractPipeline pipeline = redis.pipelined()) {
            for (int i = 0; i < keys.size(); i++) {
                responses.add(pipeline.eval(Scripts.RENEW, keys(keys.get(i)),
                        List.of(String.valueOf(fences.get(i)), String.valueOf(lease.toMillis()))));
            }
            pipeline.sync();
        }
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Long) responses.get(i).get()) == 1L;
        }
        return out;
    }

    private static List<String> appendArgs(long fence, int fromSeq, List<Integer> tokenIds) {
        List<String> args = new ArrayList<>(tokenIds.size() + 2);
        args.add(String.valueOf(fence));
        args.add(String.valueOf(fromSeq));
        for (Integer id : tokenIds) {
            args.add(id.toString());
        }
        return args;
    }

    @Override
    public boolean complete(String key, long fence, boolean failed, byte[] outcome) {
        Object r = redis.eval(Scripts.COMPLETE, keys(key), List.of(String.valueOf(fence), failed ? "FAILED" : "DONE",
                Base64.getEncoder().encodeToString(outcome), String.valueOf(ttl.toMillis())));
        return ((Long) r) == 1L;
    }

    @Override
    public boolean reconcile(String key, String requestId, String owner, boolean failed, byte[] outcome) {
        Object r = redis.eval(Scripts.RECONCILE, List.of(keys(key).get(0)), List.of(requestId, failed ? "FAILED" : "DONE",
                Base64.getEncoder().encodeToString(outcome), String.valueOf(ttl.toMillis()), owner));
        return ((Long) r) == 1L;
    }

    @Override
    public byte[] outcome(String key) {
        String v = redis.hget(keys(key).get(0), "outcome");
        return v == null ? null : Base64.getDecoder().decode(v);
    }

    @Override
    public Submission register(String key, String requestId, String digest, String tenant, long createdAtMillis,
            Duration ttl) {
        List<?> r = (List<?>) redis.eval(Scripts.REGISTER, List.of(submissionKey(key)),
                List.of(requestId, digest, tenant, String.valueOf(createdAtMillis), String.valueOf(ttl.toMillis())));
        return new Submission("NEW".equals(string(r.get(0))), string(r.get(1)), string(r.get(2)), string(r.get(3)),
                Long.parseLong(string(r.get(4))), -1, "1".equals(string(r.get(5))));
    }

    @Override
    public void acknowledgeAll(List<Registration> registrations) {
        if (registrations.isEmpty()) {
            return;
        }
        try (AbstractPipeline pipeline = redis.pipelined()) {
            for (Registration r : registrations) {
                pipeline.eval(Scripts.ACKNOWLEDGE, List.of(submissionKey(r.key())), List.of(r.requestId()));
            }
            pipeline.sync();
        }
    }

    @Override
    public Standing standing(String key, String requestId) {
        List<String> f = redis.hmget(submissionKey(key), "request_id", "acked");
        if (!requestId.equals(f.get(0))) {
            return Standing.GONE;
        }
        return f.get(1) != null ? Standing.ACKNOWLEDGED : Standing.PENDING;
    }

    private String submissionKey(String key) {
        return namespace + "sub:{" + key + "}";
    }

    @Override
    public boolean release(String key, String requestId) {
        return Long.valueOf(1).equals(redis.eval(Scripts.RELEASE, List.of(submissionKey(key)), List.of(requestId)));
    }

    @Override
    public void index(String requestId, String tenant, String idempotencyKey, long createdAtMillis, int replyPartition,
            Duration ttl) {
        indexAll(List.of(new IndexEntry(requestId, tenant, idempotencyKey, createdAtMillis, replyPartition)), ttl);
    }

    /**
     * Each index entry is one string written with one {@code SET ... PX}: a gateway writes one per
     * request it accepts, and a hash with its own expiry cost two commands and twice the Redis work.
     * Layout: {@code created|partition|tenant length|tenant key} (the idempotency key last, as is).
     */
    @Override
    public void indexAll(List<IndexEntry> entries, Duration ttl) {
        if (entries.isEmpty()) {
            return;
        }
        SetParams expiry = SetParams.setParams().px(ttl.toMillis());
        try (AbstractPipeline pipeline = redis.pipelined()) {
            for (IndexEntry e : entries) {
                pipeline.set(indexKey(e.requestId()), encodeIndex(e), expiry);
            }
            pipeline.sync();
        }
    }

    static String encodeIndex(IndexEntry e) {
        return new StringBuilder(48 + e.tenant().length() + e.key().length()).append(e.createdAtMillis()).append('|')
                .append(e.replyPartition()).append('|').append(e.tenant().length()).append('|').append(e.tenant())
                .append(e.key()).toString();
    }

    /** The entry {@link #encodeIndex} wrote, as {@code [tenant, created, partition, key]}. */
    static String[] decodeIndex(String v) {
        int a = v.indexOf('|');
        int b = v.indexOf('|', a + 1);
        int c = v.indexOf('|', b + 1);
        int tenantEnd = c + 1 + Integer.parseInt(v, b + 1, c, 10);
        return new String[] {v.substring(c + 1, tenantEnd), v.substring(0, a), v.substring(a + 1, b), v.substring(tenantEnd)};
    }

    /**
     * The index entry of {@code requestId}, as {@code [tenant, created, partition, key]}, or null.
     * An entry still stored as a hash (written before entries were single strings) is read as one,
     * so requests accepted before an upgrade can be attached to until their retention ends.
     */
    private String[] indexEntry(String requestId) {
        String key = indexKey(requestId);
        try {
            String v = redis.get(key);
            return v == null ? null : decodeIndex(v);
        } catch (JedisDataException wrongType) {
            var fields = redis.hgetAll(key);
            if (fields == null || fields.isEmpty()) {
                return null;
            }
            return new String[] {fields.get("tenant"), fields.get("created_at"), fields.getOrDefault("partition", "-1"),
                    fields.get("key")};
        }
    }

    private String indexKey(String requestId) {
        return namespace + "req:{" + requestId + "}";
    }

    @Override
    public java.util.Optional<byte[]> outcomeOf(String requestId) {
        String[] entry = indexEntry(requestId);
        return entry == null ? java.util.Optional.empty() : java.util.Optional.ofNullable(outcome(entry[3]));
    }

    @Override
    public java.util.Optional<byte[]> outcomeByKey(String key) {
        return java.util.Optional.ofNullable(outcome(key));
    }

    @Override
    public java.util.Optional<Submission> lookup(String requestId) {
        String[] entry = indexEntry(requestId);
        if (entry == null) {
            return java.util.Optional.empty();
        }
        return java.util.Optional.of(new Submission(false, requestId, "", entry[0], Long.parseLong(entry[1]),
                Integer.parseInt(entry[2]), false));
    }

    private static String string(Object o) {
        return o instanceof byte[] b ? new String(b, StandardCharsets.UTF_8) : String.valueOf(o);
    }

    /** Whether Redis answers now: one read of a key that never exists (works on standalone and cluster). */
    @Override
    public boolean available() {
        try {
            redis.exists(namespace + "probe:{readiness}");
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    }

    @Override
    public void close() {
        redis.close();
    }
}
