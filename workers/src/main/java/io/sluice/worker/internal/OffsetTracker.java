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

    public void started(TopicPartition tp, long offset) {
        Partition p = partitions.computeIfAbsent(tp, k -> new Partition());
        p.inFlight.add(offset);
        p.next = Math.max(p.next, offset + 1);
    }

    /** Marks an offset terminal; ignored when the partition is no longer ours. */
    public void finished(TopicPartition tp, long offset) {
        Partition p = partitions.get(tp);
        if (p != null) {
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
