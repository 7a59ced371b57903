package io.sluice.ingress.internal;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongSupplier;

/**
 * Per-tenant limits of one gateway: open connections, and a token bucket of requests per second
 * (burst of one second's worth). Time comes from an injected nanosecond clock.
 */
public final class TenantLimits {
    private final int maxConnections;
    private final double ratePerSecond;
    private final LongSupplier nanoClock;
    private final ConcurrentHashMap<String, AtomicInteger> connections = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Bucket> buckets = new ConcurrentHashMap<>();

    private static final class Bucket {
        double tokens;
        long lastNanos;

        Bucket(double tokens, long now) {
            this.tokens = tokens;
            this.lastNanos = now;
        }
    }

    public TenantLimits(int maxConnections, double ratePerSecond, LongSupplier nanoClock) {
        this.maxConnections = maxConnections;
        this.ratePerSecond = ratePerSecond;
        this.nanoClock = nanoClock;
    }

    /** Takes a connection slot for the tenant; false when it has {@code maxConnections} already. */
    public boolean connect(String tenant) {
        AtomicInteger n = connections.computeIfAbsent(tenant, k -> new AtomicInteger());
        if (n.incrementAndGet() > maxConnections) {
            n.decrementAndGet();
            return false;
        }
        return true;
    }

    public void disconnect(String tenant) {
        connections.computeIfPresent(tenant, (k, n) -> n.decrementAndGet() <= 0 ? null : n);
    }

    public int connections(String tenant) {
        AtomicInteger n = connections.get(tenant);
        return n == null ? 0 : n.get();
    }

    /** Takes one request from the tenant's bucket; false when it is empty. */
    public boolean admit(String tenant) {
        long now = nanoClock.getAsLong();
        Bucket b = buckets.computeIfAbsent(tenant, k -> new Bucket(ratePerSecond, now));
        synchronized (b) {
            b.tokens = Math.min(ratePerSecond, b.tokens + (now - b.lastNanos) / 1e9 * ratePerSecond);
            b.lastNanos = now;
            if (b.tokens >= 1) {
                b.tokens -= 1;
                return true;
            }
            return false;
        }
    }
}
