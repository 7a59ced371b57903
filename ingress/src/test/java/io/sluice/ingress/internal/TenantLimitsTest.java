package io.sluice.ingress.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class TenantLimitsTest {
    /** Starts far from zero and close to the wrap of a long, where nanosecond clocks may be. */
    private final AtomicLong nanos = new AtomicLong(Long.MAX_VALUE - 500_000_000L);

    private int admitted(TenantLimits limits, String tenant, int tries) {
        int n = 0;
        for (int i = 0; i < tries; i++) {
            if (limits.admit(tenant)) {
                n++;
            }
        }
        return n;
    }

    @Test
    void aFullBucketAdmitsOneSecondsWorthThenRefillsAtTheRate() {
        TenantLimits limits = new TenantLimits(10, 3, nanos::get);
        assertThat(admitted(limits, "a", 10)).as("burst of one second's worth").isEqualTo(3);
        nanos.addAndGet(333_333_334L);
        assertThat(admitted(limits, "a", 10)).as("a third of a second later").isEqualTo(1);
        nanos.addAndGet(10_000_000_000L);
        assertThat(admitted(limits, "a", 10)).as("an idle bucket holds no more than its burst").isEqualTo(3);
    }

    @Test
    void tenantsHaveBucketsOfTheirOwn() {
        TenantLimits limits = new TenantLimits(10, 2, nanos::get);
        assertThat(admitted(limits, "a", 5)).isEqualTo(2);
        assertThat(admitted(limits, "b", 5)).isEqualTo(2);
    }

    @Test
    void aRateUnderOneRequestPerSecondAdmitsNothing() {
        TenantLimits limits = new TenantLimits(10, 0.5, nanos::get);
        assertThat(admitted(limits, "a", 3)).isZero();
    }

    @Test
    void concurrentSocketsTogetherGetTheRateNotMore() throws Exception {
        TenantLimits limits = new TenantLimits(10, 1000, nanos::get);
        AtomicLong total = new AtomicLong();
        Thread[] threads = new Thread[4];
        for (int t = 0; t < threads.length; t++) {
            threads[t] = new Thread(() -> total.addAndGet(admitted(limits, "a", 1000)));
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join();
        }
        assertThat(total.get()).as("4,000 tries at one instant against a burst of 1,000").isEqualTo(1000);
    }

    @Test
    void connectionsPerTenantAreCapped() {
        TenantLimits limits = new TenantLimits(2, 10, nanos::get);
        assertThat(limits.connect("a")).isTrue();
        assertThat(limits.connect("a")).isTrue();
        assertThat(limits.connect("a")).isFalse();
        limits.disconnect("a");
        assertThat(limits.connect("a")).isTrue();
        assertThat(limits.connections("a")).isEqualTo(2);
    }

    @Test
    void connectionsThatComeAndGoAtOnceNeverHoldMoreThanTheCapNorLoseASlot() throws Exception {
        // Two slots, four threads taking and giving them back: a tenant's last disconnect removes
        // its entry while another thread's connect is under way, which is where a slot was lost.
        TenantLimits limits = new TenantLimits(2, 10, nanos::get);
        java.util.concurrent.atomic.AtomicInteger held = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicInteger mostHeld = new java.util.concurrent.atomic.AtomicInteger();
        Thread[] threads = new Thread[4];
        for (int t = 0; t < threads.length; t++) {
            threads[t] = new Thread(() -> {
                for (int i = 0; i < 200_000; i++) {
                    if (limits.connect("a")) {
                        mostHeld.accumulateAndGet(held.incrementAndGet(), Math::max);
                        held.decrementAndGet();
                        limits.disconnect("a");
                    }
                }
            });
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join();
        }
        assertThat(mostHeld.get()).as("slots held at once").isLessThanOrEqualTo(2);
        assertThat(limits.connections("a")).as("slots taken once all gave theirs back").isZero();
        assertThat(limits.connect("a")).isTrue();
        assertThat(limits.connect("a")).isTrue();
        assertThat(limits.connect("a")).as("the cap, after the churn").isFalse();
    }
}
