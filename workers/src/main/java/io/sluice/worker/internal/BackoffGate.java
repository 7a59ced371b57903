package io.sluice.worker.internal;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.common.TopicPartition;

/**
 * Which retry partitions wait for their head record to fall due. A retry consumer never sleeps:
 * it seeks back to a record that is not due yet, pauses that partition until the record's due
 * time, keeps polling (so it keeps its group membership), and resumes it then. The state is
 * forgotten for revoked partitions and never carried across a rebalance: a partition assigned
 * again is polled afresh and paused again if its head is still not due, so no partition stays
 * paused because a rebalance lost track of it. Owned by the consumer thread; times come from the
 * caller, so the decisions are testable with injected time.
 */
public final class BackoffGate {
    private final Map<TopicPartition, Long> dueAt = new HashMap<>();

    /**
     * Decides on a record read from a retry partition.
     *
     * @return true when the record must wait: the caller seeks back to it and skips the rest of
     *     that partition's records from this poll
     */
    public boolean hold(TopicPartition tp, long dueMillis, long nowMillis) {
        if (dueMillis <= nowMillis) {
            return false;
        }
        dueAt.put(tp, dueMillis);
        return true;
    }

    /** Partitions whose head is due by {@code nowMillis}: no longer held, to resume. */
    public List<TopicPartition> release(long nowMillis) {
        List<TopicPartition> due = new ArrayList<>();
        dueAt.entrySet().removeIf(e -> {
            if (e.getValue() <= nowMillis) {
                due.add(e.getKey());
                return true;
            }
            return false;
        });
        return due;
    }

    /** Partitions held now. */
    public Set<TopicPartition> held() {
        return Set.copyOf(dueAt.keySet());
    }

    /** When the earliest held partition falls due, or {@code Long.MAX_VALUE}. */
    public long nextDue() {
        return dueAt.values().stream().mapToLong(Long::longValue).min().orElse(Long.MAX_VALUE);
    }

    /** Forgets revoked partitions; whoever owns them next reads their head again. */
    public void revoked(Collection<TopicPartition> partitions) {
        partitions.forEach(dueAt::remove);
    }

    /** Keeps only partitions still assigned (after any rebalance). */
    public void retain(Collection<TopicPartition> assigned) {
        dueAt.keySet().retainAll(Set.copyOf(assigned));
    }
}
