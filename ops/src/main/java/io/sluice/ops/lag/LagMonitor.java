package io.sluice.ops.lag;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Consumer lag of every group (or the chosen ones), per topic and partition: committed offset,
 * end offset, lag in records and in seconds, and a status judged over a window of samples.
 *
 * <p>Offsets come from the group coordinator and the partition leaders through the Admin API,
 * exactly as {@code kafka-consumer-groups --describe} reads them. One correction on top: offsets
 * between the committed offset and the end that hold only transaction markers (or aborted
 * records) are not lag — a transactional consumer that committed after its last record would
 * otherwise show a lag of 1 forever. {@link PartitionLag#rawLag()} keeps the uncorrected figure.
 * Call {@link #sample} from one thread, at a steady interval.
 */
public final class LagMonitor implements AutoCloseable {
    /** Raw lags above this are not checked for markers: they are real lag whatever a few markers add. */
    private static final long MARKER_CHECK_MAX = 1000;

    /** One partition of one group at one sample. {@code lagSeconds} is -1 when it could not be told. */
    public record PartitionLag(String group, String topic, int partition, long committed, long end, long rawLag, long lag,
            double lagSeconds, LagStatus status, boolean groupActive) {
    }

    private final Admin admin;
    private final KafkaConsumer<byte[], byte[]> reader;
    private final Clock clock;
    private final int window;
    private final Map<String, LagWindow> windows = new HashMap<>();
    private final Map<String, Boolean> markerOnly = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
            return size() > 10_000;
        }
    };

    public LagMonitor(String bootstrapServers, Clock clock, int window) {
        this.admin = Admin.create(Map.of("bootstrap.servers", bootstrapServers, "client.id", "sluice-lag"));
        this.reader = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50,
                ConsumerConfig.CLIENT_ID_CONFIG, "sluice-lag-reader"),
                new ByteArrayDeserializer(), new ByteArrayDeserializer());
        this.clock = clock;
        this.window = window;
    }

    /** Takes one sample of the given groups (all consumer groups when empty) and judges each partition. */
    public List<PartitionLag> sample(Collection<String> groups) throws InterruptedException {
        try {
            List<String> names = new ArrayList<>(groups);
            if (names.isEmpty()) {
                for (ConsumerGroupListing g : admin.listConsumerGroups().all().get()) {
                    names.add(g.groupId());
                }
            }
            names.sort(Comparator.naturalOrder());
            Map<String, ConsumerGroupDescription> described = admin.describeConsumerGroups(names).all().get();
            Map<String, Map<TopicPartition, OffsetAndMetadata>> committed = new LinkedHashMap<>();
            for (String g : names) {
                Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(g)
                        .partitionsToOffsetAndMetadata().get();
                offsets.values().removeIf(o -> o == null);
                committed.put(g, offsets);
            }
            Map<TopicPartition, OffsetSpec> wanted = new HashMap<>();
            committed.values().forEach(m -> m.keySet().forEach(tp -> wanted.put(tp, OffsetSpec.latest())));
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends = wanted.isEmpty() ? Map.of()
                    : admin.listOffsets(wanted).all().get();
            long now = clock.millis();
            List<PartitionLag> out = new ArrayList<>();
            for (var group : committed.entrySet()) {
                ConsumerGroupDescription d = described.get(group.getKey());
                boolean active = d != null && !d.members().isEmpty();
                List<TopicPartition> tps = new ArrayList<>(group.getValue().keySet());
                tps.sort(Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition));
                for (TopicPartition tp : tps) {
                    long c = group.getValue().get(tp).offset();
                    var endInfo = ends.get(tp);
                    if (endInfo == null) {
                        out.add(new PartitionLag(group.getKey(), tp.topic(), tp.partition(), c, -1, -1, -1, -1,
                                LagStatus.ERR, active));
                        continue;
                    }
                    long end = endInfo.offset();
                    long raw = Math.max(0, end - c);
                    long lag = raw > 0 && raw <= MARKER_CHECK_MAX && onlyMarkers(tp, c, end) ? 0 : raw;
                    LagWindow w = windows.computeIfAbsent(group.getKey() + "|" + tp, k -> new LagWindow(window, 64));
                    w.add(new LagWindow.Sample(now, c, end, lag));
                    double seconds = w.lagSeconds(now);
                    if (seconds < 0) {
                        long ts = timestampAt(tp, c);
                        seconds = ts < 0 ? -1 : Math.max(0, (now - ts) / 1000.0);
                    }
                    out.add(new PartitionLag(group.getKey(), tp.topic(), tp.partition(), c, end, raw, lag, seconds,
                            w.status(active), active));
                }
            }
            return out;
        } catch (ExecutionException e) {
            throw new IllegalStateException("Cannot read offsets: " + e.getCause().getMessage(), e.getCause());
        }
    }

    /** Records read from the head of a lagging requests partition to find each tier's oldest request. */
    private static final int TIER_SCAN = 200;
    /** Longest the reader spends on one partition per sample. */
    private static final Duration READ_LIMIT = Duration.ofMillis(500);

    /**
     * Per tier, seconds the oldest request that could run now has waited for the worker group
     * {@code group}: on the requests topic, the oldest unconsumed request of that tier (within
     * the first records after the committed offset); on the tier's retry topic, how long past its
     * due time the head retry is. A retry waiting for its backoff is not lag. 0 when none waits.
     */
    public Map<String, Double> tierLagSeconds(String group, io.sluice.schemas.Topics topics, List<PartitionLag> rows) {
        long now = clock.millis();
        Map<String, Double> out = new LinkedHashMap<>();
        for (io.sluice.schemas.Tier tier : io.sluice.schemas.Tier.values()) {
            out.put(tier.name(), 0.0);
        }
        for (PartitionLag r : rows) {
            if (!r.group().equals(group) || r.lag() <= 0) {
                continue;
            }
            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
            if (r.topic().equals(topics.requests())) {
                Map<String, Long> oldest = oldestPerTier(tp, r.committed(), r.end());
                oldest.forEach((tier, ts) -> out.merge(tier, Math.max(0, (now - ts) / 1000.0), Math::max));
            } else {
                for (io.sluice.schemas.Tier tier : io.sluice.schemas.Tier.values()) {
                    if (r.topic().equals(topics.retry(tier))) {
                        long due = headDue(tp, r.committed());
                        if (due > 0 && due < now) {
                            out.merge(tier.name(), (now - due) / 1000.0, Math::max);
                        }
                    }
                }
            }
        }
        return out;
    }

    private Map<String, Long> oldestPerTier(TopicPartition tp, long from, long end) {
        Map<String, Long> oldest = new HashMap<>();
        long deadline = readFrom(tp, from);
        int read = 0;
        while (read < TIER_SCAN && reader.position(tp) < end && System.nanoTime() < deadline
                && oldest.size() < io.sluice.schemas.Tier.values().length) {
            for (ConsumerRecord<byte[], byte[]> rec : reader.poll(Duration.ofMillis(50))) {
                read++;
                try {
                    var req = io.sluice.schemas.SluiceCodec.get().decode(rec.value(), io.sluice.schemas.InferenceRequest.class);
                    oldest.putIfAbsent(req.getTier().name(), rec.timestamp());
                } catch (RuntimeException notARequest) {
                    // a poison record: the worker dead-letters it, it is nobody's tier
                }
            }
        }
        return oldest;
    }

    /** When the retry at {@code offset} falls due (its record timestamp without the header), or -1. */
    private long headDue(TopicPartition tp, long offset) {
        ConsumerRecord<byte[], byte[]> rec = firstRecordAt(tp, offset);
        if (rec == null) {
            return -1;
        }
        var h = rec.headers().lastHeader("sluice.due");
        return h == null || h.value().length != 8 ? rec.timestamp() : java.nio.ByteBuffer.wrap(h.value()).getLong();
    }

    /** Points the group-free reader at {@code offset}; it reads for at most {@link #READ_LIMIT} from there. */
    private long readFrom(TopicPartition tp, long offset) {
        reader.assign(List.of(tp));
        reader.seek(tp, offset);
        return System.nanoTime() + READ_LIMIT.toNanos();
    }

    /** The first record at or after {@code offset}, or null when none arrives in time. */
    private ConsumerRecord<byte[], byte[]> firstRecordAt(TopicPartition tp, long offset) {
        long deadline = readFrom(tp, offset);
        while (System.nanoTime() < deadline) {
            for (ConsumerRecord<byte[], byte[]> rec : reader.poll(Duration.ofMillis(50))) {
                return rec;
            }
        }
        return null;
    }

    /** Whether {@code [from, end)} of a partition holds no record a read-committed consumer would get. */
    private boolean onlyMarkers(TopicPartition tp, long from, long end) {
        String key = tp + "|" + from + "|" + end;
        Boolean known = markerOnly.get(key);
        if (known != null) {
            return known;
        }
        long deadline = readFrom(tp, from);
        boolean none = true;
        while (System.nanoTime() < deadline) {
            if (!reader.poll(Duration.ofMillis(50)).isEmpty()) {
                none = false;
                break;
            }
            if (reader.position(tp) >= end) {
                break;
            }
        }
        boolean result = none && reader.position(tp) >= end;
        markerOnly.put(key, result);
        return result;
    }

    /** Timestamp of the first record at or after {@code offset}, or -1. */
    private long timestampAt(TopicPartition tp, long offset) {
        ConsumerRecord<byte[], byte[]> rec = firstRecordAt(tp, offset);
        return rec == null ? -1 : rec.timestamp();
    }

    @Override
    public void close() {
        reader.close(Duration.ofSeconds(2));
        admin.close(Duration.ofSeconds(2));
    }
}
