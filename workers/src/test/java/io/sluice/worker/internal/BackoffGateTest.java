package io.sluice.worker.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.worker.retry.TierPolicy;
import java.util.List;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

/** The retry consumer's waiting, driven by injected time. */
class BackoffGateTest {
    static final TopicPartition P0 = new TopicPartition("sluice.requests.retry.financial", 0);
    static final TopicPartition P1 = new TopicPartition("sluice.requests.retry.financial", 1);

    @Test
    void aRecordWaitsUntilItsDueTimeAndNotAMillisecondLonger() {
        BackoffGate gate = new BackoffGate();
        long now = 1_000_000;
        assertThat(gate.hold(P0, now, now)).as("due now: processed at once").isFalse();
        assertThat(gate.hold(P0, now + 1500, now)).isTrue();
        assertThat(gate.held()).containsExactly(P0);
        assertThat(gate.nextDue()).isEqualTo(now + 1500);
        assertThat(gate.release(now + 1499)).isEmpty();
        assertThat(gate.release(now + 1500)).containsExactly(P0);
        assertThat(gate.held()).isEmpty();
    }

    @Test
    void theFinancialScheduleWithInjectedTime() {
        // A request failing every attempt at the moment it is processed: attempt n+1 is due
        // exactly delay(n+1) after attempt n failed, and the gate releases it at that instant.
        TierPolicy financial = TierPolicy.financialDefault();
        BackoffGate gate = new BackoffGate();
        long clock = 0;
        List<Long> processedAt = new java.util.ArrayList<>();
        processedAt.add(clock);
        for (int attempt = 0; financial.retriesLeftAfter(attempt); attempt++) {
            long due = clock + financial.delay(attempt + 1, 0.5).toMillis();
            assertThat(gate.hold(P0, due, clock)).isTrue();
            while (gate.release(clock).isEmpty()) {
                clock += 10;
            }
            processedAt.add(clock);
        }
        assertThat(processedAt).containsExactly(0L, 1000L, 3000L, 7000L);
    }

    @Test
    void aRebalanceNeverLeavesAPartitionHeldThatNoLongerNeedsIt() {
        BackoffGate gate = new BackoffGate();
        long now = 0;
        gate.hold(P0, 5_000, now);
        gate.hold(P1, 9_000, now);
        // P1 moves to another worker; P0 stays.
        gate.revoked(List.of(P1));
        gate.retain(List.of(P0));
        assertThat(gate.held()).containsExactly(P0);
        // An eager rebalance revokes everything and assigns P0 again: its state is forgotten, so
        // the consumer polls it afresh and holds it again only if its head is still not due.
        gate.revoked(List.of(P0));
        gate.retain(List.of(P0));
        assertThat(gate.held()).isEmpty();
        assertThat(gate.hold(P0, 5_000, 4_000)).isTrue();
        assertThat(gate.release(5_000)).containsExactly(P0);
    }
}
