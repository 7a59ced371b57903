package io.sluice.ops.health;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * The checks that decide {@code /readyz}: a role is ready only when every dependency it needs
 * answers (Kafka, Redis, the model). Each check's result is kept for a second, so a load
 * balancer polling often does not turn into a stream of calls to Kafka and Redis.
 */
public final class Readiness {
    private static final long CACHE_NANOS = 1_000_000_000L;
    private final Map<String, BooleanSupplier> checks = new LinkedHashMap<>();
    private final Map<String, long[]> cache = new LinkedHashMap<>();

    public synchronized Readiness add(String name, BooleanSupplier check) {
        checks.put(name, check);
        return this;
    }

    /** Each check by name, true when it passed. */
    public synchronized Map<String, Boolean> report() {
        Map<String, Boolean> out = new LinkedHashMap<>();
        long now = System.nanoTime();
        for (var c : checks.entrySet()) {
            long[] cached = cache.get(c.getKey());
            if (cached == null || now - cached[1] > CACHE_NANOS) {
                boolean ok;
                try {
                    ok = c.getValue().getAsBoolean();
                } catch (RuntimeException e) {
                    ok = false;
                }
                cached = new long[] {ok ? 1 : 0, now};
                cache.put(c.getKey(), cached);
            }
            out.put(c.getKey(), cached[0] == 1);
        }
        return out;
    }

    public boolean ready() {
        return report().values().stream().allMatch(b -> b);
    }
}
