package io.sluice.archive;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.Attempt;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.Origin;
import io.sluice.schemas.SluiceCodec;
import io.sluice.schemas.Tier;
import io.sluice.schemas.Topics;
import io.sluice.testkit.ChildJvm;
import io.sluice.testkit.SharedInfra;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.BooleanSupplier;
import org.apache.avro.file.DataFileReader;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.avro.specific.SpecificRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The archiver on a real broker, and the auditors' reader on what it wrote. */
class ArchiverTest {
    static final Duration WAIT = Duration.ofSeconds(60);
    final SharedInfra infra = SharedInfra.get();
    Topics topics;
    KafkaProducer<String, SpecificRecord> producer;
    @TempDir
    Path dir;

    @BeforeEach
    void topics() throws Exception {
        topics = new Topics(SharedInfra.uniquePrefix("archive"));
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
        }
        producer = new KafkaProducer<>(Map.of("bootstrap.servers", infra.bootstrapServers(), "acks", "all"),
                new StringSerializer(), AvroSerde.serializer());
    }

    @AfterEach
    void close() {
        producer.close();
    }

    Map<String, Object> props(Path archive) {
        Map<String, Object> p = new HashMap<>();
        p.put(CommonConfig.BOOTSTRAP_SERVERS, infra.bootstrapServers());
        p.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        p.put(ArchiverConfig.DIR, archive.toString());
        p.put(ArchiverConfig.GROUP_ID, topics.prefix() + "archiver");
        p.put(ArchiverConfig.tierKey(Tier.operational, "flush.ms"), 300L);
        return p;
    }

    static DeadLetter letter(String id, Tier tier, String tenant, String errorClass, Instant at) {
        InferenceRequest req = InferenceRequest.newBuilder().setRequestId(id).setTenant(tenant).setPrompt("The river")
                .setMaxTokens(8).setTier(tier).setCreatedAt(at).build();
        byte[] original = SluiceCodec.get().encode(req);
        return DeadLetter.newBuilder().setRequestId(id).setTenant(tenant).setTier(tier)
                .setOriginal(ByteBuffer.wrap(original)).setOriginalFingerprint(SluiceCodec.fingerprintOf(original))
                .setOrigin(new Origin("sluice.requests", 1, 42L))
                .setAttempts(List.of(new Attempt(0, at, "w-1", errorClass, "device lost")))
                .setFinalError(new ErrorInfo("failed", "device lost", true)).setTraceId("trace-" + id)
                .setDeadLetteredAt(at).build();
    }

    void send(DeadLetter d) throws Exception {
        producer.send(new ProducerRecord<>(topics.dlq(d.getTier()), d.getRequestId(), d)).get();
    }

    static void await(BooleanSupplier done, String what) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out awaiting " + what);
            }
            Thread.sleep(10);
        }
    }

    @Test
    void financialDeadLettersAreDurableWithinOneSecondInFilesStockAvroReadsAndTheManifestChains() throws Exception {
        Path archive = dir.resolve("a");
        try (Archiver archiver = Archiver.start(new ArchiverConfig(props(archive)))) {
            assertThat(archiver.awaitAssignment(WAIT)).isTrue();
            producer.partitionsFor(topics.dlq(Tier.financial)); // metadata fetched before timing
            List<Long> latencies = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                long before = archiver.archived();
                send(letter("fin-" + i, Tier.financial, "acme", IllegalStateException.class.getName(), Instant.now()));
                long t0 = System.nanoTime();
                await(() -> archiver.archived() > before, "archived");
                latencies.add((System.nanoTime() - t0) / 1_000_000);
            }
            System.out.println("Financial dead letter to durable archive file, ms: " + latencies);
            latencies.remove(0); // the first one also waits for the consumer's first fetch after joining
            assertThat(latencies).as("ms from the DLQ ack to the fsync'd, manifested file").allMatch(ms -> ms < 1000);

            DlqArchive reader = new DlqArchive(archive);
            List<DlqArchive.Entry> all = reader.list(DlqArchive.Filter.all());
            assertThat(all).extracting(e -> e.letter().getRequestId()).containsExactly("fin-0", "fin-1", "fin-2", "fin-3", "fin-4", "fin-5");
            assertThat(all.get(0).file()).matches("dlq/tier=financial/date=\\d{4}-\\d{2}-\\d{2}/financial-\\d+-\\d+\\.avro");

            // Stock Avro, no Sluice classes: a generic reader over the container file.
            try (DataFileReader<GenericRecord> r = new DataFileReader<>(archive.resolve(all.get(0).file()).toFile(),
                    new GenericDatumReader<>())) {
                assertThat(r.getMetaString("avro.codec")).isEqualTo("zstandard");
                GenericRecord g = r.next();
                assertThat(g.get("request_id").toString()).isEqualTo("fin-0");
                assertThat(((GenericRecord) g.get("origin")).get("offset")).isEqualTo(42L);
            }
            DlqArchive.Report report = reader.verify();
            assertThat(report.problems()).isEmpty();
            assertThat(report.files()).isEqualTo(6);
            assertThat(report.records()).isEqualTo(6);
        }
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(topics.prefix() + "archiver")
                    .partitionsToOffsetAndMetadata().get();
            assertThat(committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum()).isEqualTo(6);
        }
    }

    @Test
    void listFiltersShowAndExportForAuditors() throws Exception {
        Path archive = dir.resolve("b");
        Instant t0 = Instant.parse("2026-11-20T10:00:00Z");
        try (Archiver archiver = Archiver.start(new ArchiverConfig(props(archive)))) {
            send(letter("a-1", Tier.financial, "acme", "io.sluice.worker.retry.Failures$ProcessingTimeoutException", t0));
            send(letter("a-2", Tier.operational, "acme", IllegalStateException.class.getName(), t0.plusSeconds(3600)));
            send(letter("b-1", Tier.operational, "globex", IllegalStateException.class.getName(), t0.plusSeconds(7200)));
            await(() -> archiver.archived() == 3, "three archived");
        }
        DlqArchive reader = new DlqArchive(archive);
        assertThat(reader.list(new DlqArchive.Filter("operational", null, null, null, null, null)))
                .extracting(e -> e.letter().getRequestId()).containsExactlyInAnyOrder("a-2", "b-1");
        assertThat(reader.list(new DlqArchive.Filter(null, null, null, "acme", null, null)))
                .extracting(e -> e.letter().getRequestId()).containsExactlyInAnyOrder("a-1", "a-2");
        assertThat(reader.list(new DlqArchive.Filter(null, t0.plusSeconds(1800), t0.plusSeconds(5400), null, null, null)))
                .extracting(e -> e.letter().getRequestId()).containsExactly("a-2");
        assertThat(reader.list(new DlqArchive.Filter(null, null, null, null, "ProcessingTimeoutException", null)))
                .extracting(e -> e.letter().getRequestId()).containsExactly("a-1");
        assertThat(reader.list(new DlqArchive.Filter(null, null, null, null, "java.lang.IllegalStateException", null)))
                .hasSize(2);

        List<DlqArchive.Entry> shown = reader.show("b-1");
        ObjectNode json = DlqArchive.toJson(shown.get(0));
        assertThat(json.path("tenant").asText()).isEqualTo("globex");
        assertThat(json.path("attempts").get(0).path("worker").asText()).isEqualTo("w-1");
        assertThat(json.path("request").path("prompt").asText()).isEqualTo("The river");
        assertThat(json.path("trace_id").asText()).isEqualTo("trace-b-1");

        StringWriter csv = new StringWriter();
        DlqArchive.exportCsv(reader.list(DlqArchive.Filter.all()), csv);
        String[] lines = csv.toString().split("\n");
        assertThat(lines[0]).startsWith("dead_lettered_at,tier,request_id,tenant,attempts,error_code,error_class");
        assertThat(lines).hasSize(4);
        StringWriter jsonl = new StringWriter();
        DlqArchive.exportJsonl(reader.list(DlqArchive.Filter.all()), jsonl);
        assertThat(jsonl.toString().lines()).hasSize(3).allMatch(l -> l.startsWith("{\"request_id\""));
    }

    @Test
    void verifyNamesEveryChangedRemovedAddedOrReorderedFile() throws Exception {
        Path archive = dir.resolve("c");
        try (Archiver archiver = Archiver.start(new ArchiverConfig(props(archive)))) {
            for (int i = 0; i < 3; i++) {
                long before = archiver.archived();
                send(letter("t-" + i, Tier.financial, "acme", "X", Instant.now()));
                await(() -> archiver.archived() > before, "archived");
            }
        }
        assertThat(new DlqArchive(archive).verify().ok()).isTrue();
        List<String> files = new DlqArchive(archive).list(DlqArchive.Filter.all()).stream().map(DlqArchive.Entry::file).toList();

        Path changed = copy(archive, "changed");
        byte[] bytes = Files.readAllBytes(changed.resolve(files.get(1)));
        bytes[bytes.length - 3] ^= 1;
        Files.write(changed.resolve(files.get(1)), bytes);
        assertThat(new DlqArchive(changed).verify().problems()).containsExactly(files.get(1)
                + ": changed (SHA-256 differs from the manifest)");

        Path removed = copy(archive, "removed");
        Files.delete(removed.resolve(files.get(0)));
        assertThat(new DlqArchive(removed).verify().problems()).containsExactly(files.get(0)
                + ": missing (removed without a retention entry)");

        Path swapped = copy(archive, "swapped");
        Path tmp = swapped.resolve("tmp");
        Files.move(swapped.resolve(files.get(0)), tmp);
        Files.move(swapped.resolve(files.get(2)), swapped.resolve(files.get(0)));
        Files.move(tmp, swapped.resolve(files.get(2)));
        assertThat(new DlqArchive(swapped).verify().problems()).containsExactlyInAnyOrder(
                files.get(0) + ": changed (SHA-256 differs from the manifest)",
                files.get(2) + ": changed (SHA-256 differs from the manifest)");

        Path reordered = copy(archive, "reordered");
        List<String> lines = new ArrayList<>(Files.readAllLines(reordered.resolve("manifest.jsonl")));
        java.util.Collections.swap(lines, 0, 1);
        Files.write(reordered.resolve("manifest.jsonl"), lines);
        assertThat(new DlqArchive(reordered).verify().problems())
                .anyMatch(p -> p.startsWith("manifest.jsonl line 1: entry number 1 where 0 belongs"))
                .anyMatch(p -> p.contains("chain broken"));

        Path added = copy(archive, "added");
        Files.copy(added.resolve(files.get(0)), added.resolve(files.get(0).replace(".avro", "-copy.avro")));
        assertThat(new DlqArchive(added).verify().problems()).containsExactly(
                files.get(0).replace(".avro", "-copy.avro") + ": not in the manifest (added or renamed)");

        Path edited = copy(archive, "edited");
        String manifest = Files.readString(edited.resolve("manifest.jsonl"));
        Files.writeString(edited.resolve("manifest.jsonl"), manifest.replaceFirst("\"records\":1", "\"records\":0"));
        assertThat(new DlqArchive(edited).verify().problems()).containsExactly(
                "manifest.jsonl line 1: content does not match its hash (entry changed)");
        // Re-hashing the edited entry to hide the change breaks the link to the next one instead.
        List<String> rehashed = new ArrayList<>(Files.readAllLines(edited.resolve("manifest.jsonl")));
        ObjectNode first = (ObjectNode) new com.fasterxml.jackson.databind.ObjectMapper().readTree(rehashed.get(0));
        first.put("hash", io.sluice.archive.internal.ChainedLog.hashOf(first));
        rehashed.set(0, first.toString());
        Files.write(edited.resolve("manifest.jsonl"), rehashed);
        assertThat(new DlqArchive(edited).verify().problems()).containsExactly(
                "manifest.jsonl line 2: does not follow the entry before it (chain broken)");

        // A tampered archive is not appended to: the archiver refuses to start on it.
        assertThatThrownBy(() -> Archiver.start(new ArchiverConfig(props(edited)))).hasMessageContaining("does not verify");
    }

    static Path copy(Path from, String name) throws Exception {
        Path to = from.resolveSibling(from.getFileName() + "-" + name);
        try (var files = Files.walk(from)) {
            for (Path f : files.toList()) {
                Path target = to.resolve(from.relativize(f).toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(target);
                } else if (!f.getFileName().toString().endsWith(".lock")) {
                    Files.copy(f, target);
                }
            }
        }
        return to;
    }

    @Test
    void operationalDaysExpireAfterSevenDaysOfInjectedTimeAndVerifyKnowsTheyWereRemovedOnPurpose() throws Exception {
        Path archive = dir.resolve("d");
        io.sluice.testkit.MutableClock clock = new io.sluice.testkit.MutableClock(Instant.parse("2026-11-01T12:00:00Z"));
        Map<String, Object> p = props(archive);
        p.put(ArchiverConfig.tierKey(Tier.operational, "flush.ms"), 100L);
        p.put(ArchiverConfig.RETENTION_CHECK_MS, 1000L);
        try (Archiver archiver = Archiver.start(new ArchiverConfig(p), clock)) {
            send(letter("old-op", Tier.operational, "acme", "X", clock.instant()));
            send(letter("old-fin", Tier.financial, "acme", "X", clock.instant()));
            await(() -> archiver.archived() == 2, "archived on Nov 1");
            clock.set(Instant.parse("2026-11-07T12:00:00Z"));
            send(letter("new-op", Tier.operational, "acme", "X", clock.instant()));
            await(() -> archiver.archived() == 3, "archived on Nov 7");
            Thread.sleep(1500);
            assertThat(new DlqArchive(archive).list(DlqArchive.Filter.all())).hasSize(3);
            clock.set(Instant.parse("2026-11-08T00:00:01Z")); // Nov 1 is now 8 days back
            await(() -> new DlqArchive(archive).list(DlqArchive.Filter.all()).size() == 2, "Nov 1 operational removed");
        }
        DlqArchive reader = new DlqArchive(archive);
        assertThat(reader.list(DlqArchive.Filter.all())).extracting(e -> e.letter().getRequestId())
                .containsExactlyInAnyOrder("old-fin", "new-op");
        DlqArchive.Report report = reader.verify();
        assertThat(report.problems()).isEmpty();
        assertThat(report.removedByRetention()).isEqualTo(1);
        assertThat(Files.exists(archive.resolve("dlq/tier=operational/date=2026-11-01"))).isFalse();
        assertThat(Files.exists(archive.resolve("dlq/tier=financial/date=2026-11-01"))).as("financial is kept").isTrue();
    }

    @Test
    void killedAndRestartedArchiversArchiveEveryDeadLetterExactlyOnce() throws Exception {
        Path archive = dir.resolve("e");
        int total = 600;
        Thread sender = new Thread(() -> {
            try {
                for (int i = 0; i < total; i++) {
                    send(letter("k-" + i, i % 3 == 0 ? Tier.financial : Tier.operational, "acme", "X", Instant.now()));
                    Thread.sleep(5);
                }
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        sender.start();
        List<String> args = List.of(infra.bootstrapServers(), topics.prefix(), archive.toString());
        Path log = null;
        for (int kill = 0; kill < 3; kill++) {
            log = Path.of("target", "archiver-kill-" + topics.prefix() + kill + ".log");
            ChildJvm child = ChildJvm.start(ArchiverMain.class.getName(), args, Map.of(), log, "256m");
            child.awaitOutput("ARCHIVER READY", 60_000);
            // Killed while it writes: mid-batch, between a file and its commit, or in a flush.
            Thread.sleep(700 + kill * 300L);
            child.kill();
            assertThat(child.isAlive()).isFalse();
        }
        sender.join();
        try (Archiver last = Archiver.start(new ArchiverConfig(props(archive)))) {
            await(() -> new DlqArchive(archive).list(DlqArchive.Filter.all()).size() >= total, "everything archived");
            Thread.sleep(1000);
        }
        List<String> ids = new DlqArchive(archive).list(DlqArchive.Filter.all()).stream()
                .map(e -> e.letter().getRequestId()).toList();
        assertThat(ids).hasSize(total).doesNotHaveDuplicates();
        assertThat(new DlqArchive(archive).verify().problems()).isEmpty();
        assertThat(Files.readString(log)).contains("ARCHIVER READY");
    }

    @Test
    void aFileDurableBeforeItsOffsetCommitWasLostIsNotArchivedAgain() throws Exception {
        Path archive = dir.resolve("h");
        try (Archiver archiver = Archiver.start(new ArchiverConfig(props(archive)))) {
            for (int i = 0; i < 10; i++) {
                send(letter("l-" + i, i % 2 == 0 ? Tier.financial : Tier.operational, "acme", "X", Instant.now()));
            }
            await(() -> archiver.archived() == 10, "ten archived");
        }
        // The group forgets everything it committed, as if each commit had been lost in a crash,
        // and a file was left half-written and another renamed into place but never manifested.
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            String group = topics.prefix() + "archiver";
            var offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, OffsetAndMetadata> back = new HashMap<>();
            offsets.forEach((tp, o) -> back.put(tp, new OffsetAndMetadata(0)));
            admin.alterConsumerGroupOffsets(group, back).all().get();
        }
        String someFile = new DlqArchive(archive).list(DlqArchive.Filter.all()).get(0).file();
        Path day = archive.resolve(someFile).getParent();
        Files.writeString(day.resolve("financial-1-99.avro.tmp"), "half");
        Files.copy(archive.resolve(someFile), day.resolve("financial-2-98.avro"));
        try (Archiver restarted = Archiver.start(new ArchiverConfig(props(archive)))) {
            assertThat(restarted.awaitAssignment(WAIT)).isTrue();
            send(letter("l-10", Tier.financial, "acme", "X", Instant.now()));
            await(() -> restarted.archived() == 1, "only the new one archived");
        }
        assertThat(new DlqArchive(archive).list(DlqArchive.Filter.all())).hasSize(11);
        assertThat(new DlqArchive(archive).verify().problems()).isEmpty();
        assertThat(archive.resolve("recovered").resolve(archive.relativize(day.resolve("financial-2-98.avro")))).exists();
        assertThat(day.resolve("financial-1-99.avro.tmp")).doesNotExist();
    }

    @Test
    void aSecondArchiverOnTheSameDirectoryIsRefused() throws Exception {
        Path archive = dir.resolve("f");
        try (Archiver first = Archiver.start(new ArchiverConfig(props(archive)))) {
            assertThatThrownBy(() -> Archiver.start(new ArchiverConfig(props(archive))))
                    .hasMessageContaining("Another archiver");
        }
    }

    @Test
    void replaysAreRecordedInAChainOfTheirOwn() {
        Path archive = dir.resolve("g");
        ReplayLog replays = new ReplayLog(archive);
        replays.record("r-1", "r-1.replay", "financial", "alice", "acme", "fixed the device", 0, Instant.now());
        replays.record("r-1", "r-1.replay", "financial", "bob", "acme", "again", 1, Instant.now());
        DlqArchive reader = new DlqArchive(archive);
        assertThat(reader.replaysOf("r-1")).extracting(r -> r.path("principal").asText()).containsExactly("alice", "bob");
        assertThat(reader.verify().ok()).isTrue();
        assertThat(new String(replays.log().file().getFileName().toString().getBytes(StandardCharsets.UTF_8),
                StandardCharsets.UTF_8)).isEqualTo("replays.jsonl");
    }
}
