package io.sluice.worker.retry;

import java.time.Duration;
import java.util.Locale;

/**
 * How one tier retries: how often, and how long each retry waits.
 *
 * @param maxRetries retries after the first attempt; the attempt after the last retry dead-letters
 * @param backoff how the wait grows from one retry to the next
 * @param base the wait of the first retry (before jitter)
 * @param jitter the wait is spread uniformly over ±{@code jitter} of itself, so retries of requests
 *     that failed together do not all come back in the same instant
 */
public record TierPolicy(int maxRetries, Backoff backoff, Duration base, double jitter) {

    /** Growth of the wait with the retry number n (1 for the first retry). */
    public enum Backoff {
        /** base × 2ⁿ⁻¹: 1 s, 2 s, 4 s ... */
        EXPONENTIAL,
        /** base × n: 5 s, 10 s, 15 s ... */
        LINEAR,
        /** base every time. */
        FIXED;

        public static Backoff parse(String name) {
            return valueOf(name.trim().toUpperCase(Locale.ROOT));
        }
    }

    public TierPolicy {
        if (maxRetries < 0) {
            throw new IllegalArgumentException("maxRetries must be >= 0: " + maxRetries);
        }
        if (base.isNegative()) {
            throw new IllegalArgumentException("base must be >= 0: " + base);
        }
        if (jitter < 0 || jitter >= 1) {
            throw new IllegalArgumentException("jitter must be in [0, 1): " + jitter);
        }
    }

    /** Financial defaults of the contract: 3 retries, 1 s × 2ⁿ, ±20 %. */
    public static TierPolicy financialDefault() {
        return new TierPolicy(3, Backoff.EXPONENTIAL, Duration.ofSeconds(1), 0.2);
    }

    /** Operational defaults of the contract: 8 retries, 5 s × n. */
    public static TierPolicy operationalDefault() {
        return new TierPolicy(8, Backoff.LINEAR, Duration.ofSeconds(5), 0.0);
    }

    /** Whether a request whose attempt {@code attempt} (0 = the first) failed may be retried. */
    public boolean retriesLeftAfter(int attempt) {
        return attempt < maxRetries;
    }

    /**
     * The wait before retry {@code n}.
     *
     * @param n the retry number, 1 for the first retry
     * @param random a uniform draw in [0, 1) that places the wait within the jitter band
     */
    public Duration delay(int n, double random) {
        if (n < 1) {
            throw new IllegalArgumentException("retry number starts at 1: " + n);
        }
        double millis = switch (backoff) {
            case EXPONENTIAL -> base.toMillis() * Math.pow(2, n - 1);
            case LINEAR -> (double) base.toMillis() * n;
            case FIXED -> base.toMillis();
        };
        millis *= 1 + jitter * (2 * random - 1);
        return Duration.ofMillis(Math.round(millis));
    }
}
