package io.sluice.ingress.internal;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Per-tenant limits of one gateway: open connections, and a token bucket of requests per second
 * (burst of one second's worth). Time comes from an injected nanosecond clock.
 */
public final class TenantLimits {
    private final int maxConnections;
    private final double ratePerSecond;
    private final LongSupplier nanoClock;
    /**
     * Open connections per tenant, changed only inside the map's compute so that a count and its
     * entry change together: a counter read outside it could be removed by the tenant's last
     * disconnect and then incremented, off the map, losing that connection's slot.
     */
    private final ConcurrentHashMap<String, Integer> connections = new ConcurrentHashMap<>();
    /**
     * Per tenant, the bucket as one number (the generic cell rate algorithm): the time at which
     * the bucket would be full again. A request is admitted when that time lies at most a burst
     * beyond now, and moves it one emission interval on. One compare-and-set per request, where a
     * lock shared by every socket of the tenant inflated under contention and parked threads.
     */
    private final ConcurrentHashMap<String, AtomicLong> buckets = new ConcurrentHashMap<>();
    /** Nanoseconds one request takes out of the bucket: 1 s / rate, rounded down. */
    private final long intervalNanos;
    /** How far the full-again time may run ahead of now: a burst of one second's worth, less one request. */
    private final long toleranceNanos;

    public TenantLimits(int maxConnections, double ratePerSecond, LongSupplier nanoClock) {
        this.maxConnections = maxConnections;
        this.ratePerSecond = ratePerSecond;
        this.nanoClock = nanoClock;
        this.intervalNanos = Math.max(1, (long) (1e9 / ratePerSecond));
        this.toleranceNanos = 1_000_000_000L - intervalNanos;
    }

    /** Takes a connection slot for the tenant; false when it has {@code maxConnections} already. */
    public boolean connect(String tenant) {
        boolean[] taken = new boolean[1];
        connections.compute(tenant, (k, n) -> {
            int open = n == null ? 0 : n;
            if (open >= maxConnections) {
                return n;
            }
            taken[0] = true;
            return open + 1;
        });
        return taken[0];
    }

    /** Gives back a slot {@link #connect} took. */
    public void disconnect(String tenant) {
        connections.computeIfPresent(tenant, (k, n) -> n <= 1 ? null : n - 1);
    }

    public int connections(String tenant) {
        Integer n = connections.get(tenant);
        return n == null ? 0 : n;
    }

    /** Takes one request from the tenant's bucket; false when it is empty. */
    public boolean admit(String tenant) {
        if (ratePerSecond < 1) {
            return false; // a bucket of less than one request never holds one
        }
        long now = nanoClock.getAsLong();
        AtomicLong fullAt = buckets.get(tenant);
        if (fullAt == null) {
            // Starts full: its full-again time is now.
            fullAt = buckets.computeIfAbsent(tenant, k -> new AtomicLong(now));
        }
        while (true) {
            long was = fullAt.get();
            // Nanosecond clocks may be compared only by difference.
            long from = now - was > 0 ? now : was;
            if (from - now > toleranceNanos) {
                return false;
            }
            if (fullAt.compareAndSet(was, from + intervalNanos)) {
                return true;
            }
        }
    }
}
