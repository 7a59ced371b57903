package io.sluice.archive;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.archive.internal.ChainedLog;
import io.sluice.archive.internal.Manifest;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.MalformedRecordException;
import io.sluice.schemas.Origin;
import io.sluice.schemas.SluiceCodec;
import io.sluice.schemas.Tier;
import io.sluice.schemas.Topics;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.Duration;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.avro.file.CodecFactory;
import org.apache.avro.file.DataFileWriter;
import org.apache.avro.specific.SpecificDatumWriter;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Archives the dead-letter topics into Avro object container files,
 * {@code dlq/tier=<tier>/date=<yyyy-mm-dd>/<tier>-<millis>-<n>.avro}, one file per flush and tier,
 * each written to a temporary name, fsync'd, renamed, its directory fsync'd, and then entered
 * with its SHA-256 and offsets in the chained {@link Manifest}. Offsets are committed only after
 * that, and on every assignment the archiver resumes after the last offset the manifest holds,
 * so a crash at any point neither loses a dead letter nor archives one twice. Financial dead
 * letters are flushed within {@code archiver.financial.flush.ms} (default 200 ms), operational
 * ones in batches. Expired days are removed per tier and the removal recorded in the manifest.
 */
public final class Archiver implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Archiver.class);
    private static final int RECENT_IDENTITIES = 100_000;
    private static final String LOCK = "archive.lock";

    private final ArchiverConfig config;
    private final Path root;
    private final Topics topics;
    private final Clock clock;
    private final Manifest manifest;
    private final KafkaConsumer<String, byte[]> consumer;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final Map<Tier, Batch> batches = new EnumMap<>(Tier.class);
    private final Thread thread;
    private final CountDownLatch assigned = new CountDownLatch(1);
    private volatile boolean running = true;
    private volatile long archived;
    private volatile long duplicates;
    private long nextRetention;
    /** Identities of dead letters archived lately: a worker that re-sends one after a crash is not archived twice. */
    private final LinkedHashMap<String, Boolean> recent = new LinkedHashMap<>(16, 0.75f, false) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
            return size() > RECENT_IDENTITIES;
        }
    };

    /** Dead letters waiting for their tier's next file, and the offsets they came from. */
    private static final class Batch {
        final List<DeadLetter> letters = new ArrayList<>();
        final Map<TopicPartition, long[]> offsets = new HashMap<>();
        long firstNanos;

        void add(DeadLetter letter, ConsumerRecord<?, ?> r) {
            if (offsets.isEmpty()) {
                firstNanos = System.nanoTime();
            }
            if (letter != null) {
                letters.add(letter);
            }
            offsets.merge(new TopicPartition(r.topic(), r.partition()), new long[] {r.offset(), r.offset()},
                    (a, b) -> new long[] {Math.min(a[0], b[0]), Math.max(a[1], b[1])});
        }

        boolean isEmpty() {
            return offsets.isEmpty();
        }

        void clear() {
            letters.clear();
            offsets.clear();
        }
    }

    public static Archiver start(ArchiverConfig config) {
        return new Archiver(config, Clock.systemUTC());
    }

    /** An archiver whose file dates, retention and manifest times follow {@code clock}. */
    public static Archiver start(ArchiverConfig config, Clock clock) {
        return new Archiver(config, clock);
    }

    private Archiver(ArchiverConfig config, Clock clock) {
        this.config = config;
        this.clock = clock;
        this.root = Path.of(config.getString(ArchiverConfig.DIR)).toAbsolutePath();
        this.topics = new Topics(config.getString(CommonConfig.TOPIC_PREFIX));
        try {
            Files.createDirectories(root);
            lockChannel = FileChannel.open(root.resolve(LOCK), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock held;
            try {
                held = lockChannel.tryLock();
            } catch (java.nio.channels.OverlappingFileLockException sameJvm) {
                held = null;
            }
            lock = held;
            if (lock == null) {
                lockChannel.close();
                throw new IllegalStateException("Another archiver writes " + root + " (it holds " + LOCK + ")");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot open the archive at " + root, e);
        }
        this.manifest = new Manifest(root);
        List<String> problems = manifest.log().verifyChain();
        if (!problems.isEmpty()) {
            // Appending to a broken chain would bury the evidence; an auditor must look first.
            release();
            throw new IllegalStateException("The manifest of " + root + " does not verify: " + problems);
        }
        recover();
        try {
            // Loads the codec (zstd-jni's native library) now, not with the first dead letter,
            // which must reach the archive within its tier's deadline.
            try (DataFileWriter<DeadLetter> w = new DataFileWriter<>(new SpecificDatumWriter<>(DeadLetter.class))) {
                w.setCodec(codec());
                w.create(DeadLetter.getClassSchema(), new java.io.ByteArrayOutputStream());
                w.append(DeadLetter.newBuilder().setOriginal(ByteBuffer.allocate(0)).setOrigin(new Origin("", 0, 0L))
                        .setFinalError(new ErrorInfo("", "", false)).setDeadLetteredAt(clock.instant()).build());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Codec " + config.getString(ArchiverConfig.CODEC) + " does not work here", e);
        }
        for (Tier t : Tier.values()) {
            batches.put(t, new Batch());
        }
        this.consumer = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, config.getString(CommonConfig.BOOTSTRAP_SERVERS),
                ConsumerConfig.GROUP_ID_CONFIG, config.getString(ArchiverConfig.GROUP_ID),
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                ConsumerConfig.CLIENT_ID_CONFIG, "sluice-archiver",
                // Dead letters are few and a financial one must be archived within a second:
                // never let an empty fetch hold the next record back for long.
                ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100,
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, config.getInt(ArchiverConfig.SESSION_TIMEOUT_MS),
                ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, Math.max(500, config.getInt(ArchiverConfig.SESSION_TIMEOUT_MS) / 4)),
                new StringDeserializer(), new ByteArrayDeserializer());
        this.thread = new Thread(this::run, "sluice-archiver");
        thread.start();
        log.info("Archiver writing {} (codec {})", root, config.getString(ArchiverConfig.CODEC));
    }

    public Path root() {
        return root;
    }

    /** Dead letters written to archive files since start. */
    public long archived() {
        return archived;
    }

    /** Dead letters dropped as repeats of one archived moments before. */
    public long duplicates() {
        return duplicates;
    }

    public boolean awaitAssignment(Duration timeout) throws InterruptedException {
        return assigned.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * Puts aside what a crash may have left: temporary files, and files renamed into place whose
     * manifest entry was never written (their dead letters are read again from Kafka, because
     * neither the manifest nor the committed offsets moved past them).
     */
    private void recover() {
        Set<String> listed = new HashSet<>();
        for (ObjectNode e : manifest.entries()) {
            if ("file".equals(e.path("type").asText())) {
                listed.add(e.path("path").asText());
            }
        }
        Path dlq = root.resolve("dlq");
        if (!Files.isDirectory(dlq)) {
            return;
        }
        try (Stream<Path> files = Files.walk(dlq)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                String rel = root.relativize(f).toString().replace('\\', '/');
                if (f.getFileName().toString().endsWith(".tmp")) {
                    Files.delete(f);
                } else if (!listed.contains(rel)) {
                    Path aside = root.resolve("recovered").resolve(rel);
                    Files.createDirectories(aside.getParent());
                    Files.move(f, aside, StandardCopyOption.REPLACE_EXISTING);
                    log.warn("Put aside {}: written before a crash but never entered in the manifest", rel);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot recover the archive at " + root, e);
        }
    }

    private void run() {
        List<String> sources = List.of(topics.dlq(Tier.financial), topics.dlq(Tier.operational));
        try {
            consumer.subscribe(sources, new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    flushAll();
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    resumeFromManifest(partitions);
                    assigned.countDown();
                }
            });
            while (running) {
                for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(50))) {
                    Tier tier = r.topic().equals(topics.dlq(Tier.financial)) ? Tier.financial : Tier.operational;
                    DeadLetter letter = letterOf(r, tier);
                    String identity = letter.getRequestId() + "|" + letter.getOrigin().getTopic() + "/"
                            + letter.getOrigin().getPartition() + "/" + letter.getOrigin().getOffset();
                    if (recent.put(identity, Boolean.TRUE) != null) {
                        duplicates++;
                        log.info("Dead letter of {} seen again (a worker re-sent it); archived once", letter.getRequestId());
                        batches.get(tier).add(null, r);
                    } else {
                        batches.get(tier).add(letter, r);
                    }
                }
                for (Tier tier : Tier.values()) {
                    Batch b = batches.get(tier);
                    if (!b.isEmpty() && (b.letters.size() >= config.getInt(ArchiverConfig.tierKey(tier, "flush.records"))
                            || System.nanoTime() - b.firstNanos >= TimeUnit.MILLISECONDS.toNanos(
                                    config.getLong(ArchiverConfig.tierKey(tier, "flush.ms"))))) {
                        flush(tier);
                    }
                }
                if (clock.millis() >= nextRetention) {
                    enforceRetention();
                    nextRetention = clock.millis() + config.getLong(ArchiverConfig.RETENTION_CHECK_MS);
                }
            }
        } catch (WakeupException e) {
            // closing
        } catch (RuntimeException e) {
            log.error("Archiver stopped", e);
        } finally {
            try {
                flushAll();
            } catch (RuntimeException e) {
                log.error("Cannot flush on close; the dead letters are read again on the next start", e);
            }
            consumer.close(Duration.ofSeconds(5));
        }
    }

    /** A DLQ record as a dead letter; one that is not readable is archived as what it is, with its bytes. */
    private DeadLetter letterOf(ConsumerRecord<String, byte[]> r, Tier tier) {
        try {
            return SluiceCodec.get().decode(r.value(), DeadLetter.class);
        } catch (MalformedRecordException e) {
            log.error("Unreadable record on {}-{}@{}; archived with its bytes", r.topic(), r.partition(), r.offset());
            return DeadLetter.newBuilder().setRequestId(r.key()).setTier(tier)
                    .setOriginal(ByteBuffer.wrap(r.value() == null ? new byte[0] : r.value()))
                    .setOrigin(new Origin(r.topic(), r.partition(), r.offset()))
                    .setFinalError(new ErrorInfo("unreadable_dead_letter", String.valueOf(e.getMessage()), false))
                    .setDeadLetteredAt(java.time.Instant.ofEpochMilli(r.timestamp())).build();
        }
    }

    private void resumeFromManifest(Collection<TopicPartition> partitions) {
        Map<String, Long> next = manifest.nextOffsets();
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(Set.copyOf(partitions));
        for (TopicPartition tp : partitions) {
            Long archivedUpTo = next.get(tp.toString());
            OffsetAndMetadata c = committed.get(tp);
            if (archivedUpTo != null && (c == null || c.offset() < archivedUpTo)) {
                // The file is durable but its offsets were not committed before a crash.
                consumer.seek(tp, archivedUpTo);
                log.info("Resuming {} at {} from the manifest (committed: {})", tp, archivedUpTo, c == null ? "none" : c.offset());
            }
        }
    }

    private void flushAll() {
        for (Tier tier : Tier.values()) {
            if (!batches.get(tier).isEmpty()) {
                flush(tier);
            }
        }
    }

    private void flush(Tier tier) {
        Batch b = batches.get(tier);
        if (!b.letters.isEmpty()) {
            writeFile(tier, b);
        }
        Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
        b.offsets.forEach((tp, range) -> commit.put(tp, new OffsetAndMetadata(range[1] + 1)));
        consumer.commitSync(commit);
        archived += b.letters.size();
        b.clear();
    }

    private void writeFile(Tier tier, Batch b) {
        java.time.Instant now = clock.instant();
        LocalDate date = LocalDate.ofInstant(now, ZoneOffset.UTC);
        String rel = "dlq/tier=" + tier.name() + "/date=" + date + "/" + tier.name() + "-" + now.toEpochMilli() + "-"
                + manifest.log().count() + ".avro";
        Path file = root.resolve(rel);
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            Files.createDirectories(file.getParent());
            try (DataFileWriter<DeadLetter> w = new DataFileWriter<>(new SpecificDatumWriter<>(DeadLetter.class))) {
                w.setCodec(codec());
                w.setMeta("sluice.tier", tier.name());
                w.create(DeadLetter.getClassSchema(), tmp.toFile());
                for (DeadLetter d : b.letters) {
                    w.append(d);
                }
                w.fSync();
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
            fsyncDirectory(file.getParent());
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot write " + file, e);
        }
        Map<String, long[]> offsets = new HashMap<>();
        b.offsets.forEach((tp, range) -> offsets.put(tp.toString(), range));
        manifest.appendFile(rel, ChainedLog.sha256(file), b.letters.size(), tier.name(), offsets, now);
        log.info("Archived {} {} dead letters in {}", b.letters.size(), tier, rel);
    }

    private CodecFactory codec() {
        return switch (config.getString(ArchiverConfig.CODEC)) {
            case "deflate" -> CodecFactory.deflateCodec(6);
            case "null" -> CodecFactory.nullCodec();
            default -> CodecFactory.zstandardCodec(3, true);
        };
    }

    private static void fsyncDirectory(Path dir) throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }

    /** Removes archive days older than each tier's retention, recording every removed file in the manifest. */
    void enforceRetention() {
        for (Tier tier : Tier.values()) {
            int days = config.getInt(ArchiverConfig.tierKey(tier, "retention.days"));
            if (days <= 0) {
                continue;
            }
            LocalDate oldestKept = LocalDate.ofInstant(clock.instant(), ZoneOffset.UTC).minusDays(days - 1L);
            Path tierDir = root.resolve("dlq").resolve("tier=" + tier.name());
            if (!Files.isDirectory(tierDir)) {
                continue;
            }
            Map<String, String> removed = new LinkedHashMap<>();
            try (Stream<Path> dates = Files.list(tierDir)) {
                for (Path d : dates.sorted().toList()) {
                    String name = d.getFileName().toString();
                    if (!name.startsWith("date=") || !LocalDate.parse(name.substring(5)).isBefore(oldestKept)) {
                        continue;
                    }
                    try (Stream<Path> files = Files.list(d)) {
                        for (Path f : files.sorted().toList()) {
                            removed.put(root.relativize(f).toString().replace('\\', '/'), ChainedLog.sha256(f));
                        }
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException("Cannot list " + tierDir, e);
            }
            if (removed.isEmpty()) {
                continue;
            }
            // Recorded first: a crash after this entry leaves files the manifest says are gone,
            // which the next pass removes; never a silent gap.
            manifest.appendRetention(tier.name(), removed, clock.instant());
            try {
                for (String rel : removed.keySet()) {
                    Files.deleteIfExists(root.resolve(rel));
                }
                try (Stream<Path> dates = Files.list(tierDir)) {
                    for (Path d : dates.toList()) {
                        try (Stream<Path> left = Files.list(d)) {
                            if (left.findAny().isEmpty()) {
                                Files.delete(d);
                            }
                        }
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException("Cannot remove expired archive files", e);
            }
            log.info("Retention: removed {} {} archive files older than {} days", removed.size(), tier, days);
        }
    }

    private void release() {
        try {
            lock.release();
            lockChannel.close();
        } catch (IOException e) {
            log.warn("Cannot release {}", LOCK, e);
        }
    }

    @Override
    public void close() {
        if (!running) {
            return;
        }
        running = false;
        consumer.wakeup();
        try {
            thread.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        release();
        log.info("Archiver stopped after {} dead letters", archived);
    }
}
