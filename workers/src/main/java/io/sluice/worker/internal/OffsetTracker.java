package io.sluice.worker.internal;

import java.util.HashMap;
import java.util.Map;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Which offsets may be committed when requests finish out of order: per partition, the offsets
 * still in flight; the committable position is the lowest of them, or one past the highest seen
 * when none is left. A crash then redelivers exactly the unfinished requests. Owned by the
 * consumer thread.
 */
public final class OffsetTracker {
    private static final class Partition {
        final TreeSet<Long> inFlight = new TreeSet<>();
        long next = -1;
        long committed = -1;
    }

    private final Map<TopicPartition, Partition> partitions = new HashMap<>();

    /**
     * Records an offset as in flight and returns the partition's current incarnation, which the
     * caller hands back with {@link #finished}. A partition revoked and assigned again is a new
     * incarnation: its records are polled again, and a late completion of a record polled before
     * must not mark the new copy finished (that would commit past a request no one holds).
     */
    public Object started(TopicPartition tp, long offset) {
        Partition p = partitions.computeIfAbsent(tp, k -> new Partition());
        p.inFlight.add(offset);
        p.next = Math.max(p.next, offset + 1);
        return p;
    }

    /** Marks an offset terminal; ignored when it belongs to an earlier incarnation of the partition. */
    public void finished(TopicPartition tp, long offset, Object incarnation) {
        Partition p = partitions.get(tp);
        if (p != null && p == incarnation) {
            p.inFlight.remove(offset);
        }
    }

    /** Offsets that moved since the last call, to commit. */
    public Map<TopicPartition, OffsetAndMetadata> committable() {
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        partitions.forEach((tp, p) -> {
            long position = p.inFlight.isEmpty() ? p.next : p.inFlight.first();
            if (position > p.committed && position >= 0) {
                out.put(tp, new OffsetAndMetadata(position));
            }
        });
        return out;
    }

    /** Records that {@code offsets} were committed. */
    public void committed(Map<TopicPartition, OffsetAndMetadata> offsets) {
        offsets.forEach((tp, om) -> {
            Partition p = partitions.get(tp);
            if (p != null) {
                p.committed = Math.max(p.committed, om.offset());
            }
        });
    }

    public void forget(TopicPartition tp) {
        partitions.remove(tp);
    }

    public int inFlight() {
        return partitions.values().stream().mapToInt(p -> p.inFlight.size()).sum();
    }
}
