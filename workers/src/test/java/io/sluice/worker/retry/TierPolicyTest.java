package io.sluice.worker.retry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class TierPolicyTest {

    static List<Long> delays(TierPolicy p, double random) {
        List<Long> out = new ArrayList<>();
        for (int n = 1; n <= p.maxRetries(); n++) {
            out.add(p.delay(n, random).toMillis());
        }
        return out;
    }

    @Test
    void financialBacksOffOneSecondTimesTwoToTheNWithTwentyPercentJitterThreeTimes() {
        TierPolicy p = TierPolicy.financialDefault();
        assertThat(delays(p, 0.5)).containsExactly(1000L, 2000L, 4000L);
        assertThat(delays(p, 0.0)).containsExactly(800L, 1600L, 3200L);
        assertThat(delays(p, 0.999_999)).containsExactly(1200L, 2400L, 4800L);
        assertThat(p.retriesLeftAfter(0)).isTrue();
        assertThat(p.retriesLeftAfter(2)).isTrue();
        assertThat(p.retriesLeftAfter(3)).as("attempt 3 was the third retry").isFalse();
    }

    @Test
    void operationalBacksOffLinearlyFiveSecondsTimesNEightTimesWithoutJitter() {
        TierPolicy p = TierPolicy.operationalDefault();
        List<Long> expected = List.of(5_000L, 10_000L, 15_000L, 20_000L, 25_000L, 30_000L, 35_000L, 40_000L);
        assertThat(delays(p, 0.0)).containsExactlyElementsOf(expected);
        assertThat(delays(p, 0.73)).containsExactlyElementsOf(expected);
        assertThat(p.retriesLeftAfter(7)).isTrue();
        assertThat(p.retriesLeftAfter(8)).isFalse();
    }

    @Test
    void jitterSpreadsWaitsOverTheWholeBand() {
        TierPolicy p = new TierPolicy(3, TierPolicy.Backoff.EXPONENTIAL, Duration.ofSeconds(1), 0.2);
        java.util.Random random = new java.util.Random(7);
        long min = Long.MAX_VALUE;
        long max = 0;
        for (int i = 0; i < 10_000; i++) {
            long d = p.delay(2, random.nextDouble()).toMillis();
            min = Math.min(min, d);
            max = Math.max(max, d);
        }
        assertThat(min).isBetween(1600L, 1620L);
        assertThat(max).isBetween(2380L, 2400L);
    }

    @Test
    void fixedAndInvalidSettings() {
        TierPolicy fixed = new TierPolicy(2, TierPolicy.Backoff.parse("fixed"), Duration.ofMillis(300), 0);
        assertThat(delays(fixed, 0.3)).containsExactly(300L, 300L);
        assertThatThrownBy(() -> fixed.delay(0, 0.5)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new TierPolicy(1, TierPolicy.Backoff.FIXED, Duration.ofMillis(1), 1.0))
                .hasMessageContaining("jitter");
        assertThatThrownBy(() -> new TierPolicy(-1, TierPolicy.Backoff.FIXED, Duration.ofMillis(1), 0))
                .hasMessageContaining("maxRetries");
    }

    @Test
    void failuresAreClassifiedByType() {
        assertThat(Failures.retryable(new Failures.ProcessingTimeoutException("slow"))).isTrue();
        assertThat(Failures.code(new Failures.ProcessingTimeoutException("slow"))).isEqualTo("timeout");
        assertThat(Failures.retryable(new IllegalStateException("device lost"))).isTrue();
        assertThat(Failures.code(new IllegalStateException("device lost"))).isEqualTo("failed");
        assertThat(Failures.retryable(new Failures.PermanentFailureException("max_tokens: must be >= 1"))).isFalse();
        assertThat(Failures.retryable(new IllegalArgumentException("top_p: must be in (0, 1]"))).isFalse();
        assertThat(Failures.code(new IllegalArgumentException("x"))).isEqualTo("invalid_request");
    }
}
