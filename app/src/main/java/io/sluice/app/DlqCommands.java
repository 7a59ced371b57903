package io.sluice.app;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.archive.Archiver;
import io.sluice.archive.ArchiverConfig;
import io.sluice.archive.DlqArchive;
import io.sluice.archive.ReplayLog;
import io.sluice.ingress.Authenticator;
import io.sluice.ingress.GatewayConfig;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.SluiceCodec;
import io.sluice.schemas.Topics;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code sluice archiver} and the auditors' {@code sluice dlq ...} commands. */
final class DlqCommands {
    private DlqCommands() {
    }

    @Command(name = "archiver", description = "Archive the DLQ topics into Avro files with a SHA-256 manifest chain.")
    static final class ArchiverCommand implements Callable<Integer> {
        @CommandLine.Mixin
        Sluice.Common common = new Sluice.Common();

        @Override
        public Integer call() throws Exception {
            ArchiverConfig config = new ArchiverConfig(Settings.load(ArchiverConfig.CONFIG, common.configFile, System.getenv(), Map.of()));
            var meters = io.sluice.ops.metrics.Metrics.create("archiver", "archiver");
            var kafka = new io.sluice.ops.health.KafkaProbe(config.getString(CommonConfig.BOOTSTRAP_SERVERS));
            java.nio.file.Path dir = java.nio.file.Path.of(config.getString(ArchiverConfig.DIR)).toAbsolutePath();
            var http = Roles.serve(config, meters, new io.sluice.ops.health.Readiness().add("kafka", kafka)
                    .add("archive", () -> Roles.writable(dir)));
            Archiver archiver = Archiver.start(config);
            System.out.println("Archiver writing " + archiver.root());
            Roles.meter(archiver, meters);
            Sluice.awaitShutdown(() -> {
                if (http != null) {
                    http.close();
                }
            }, archiver, kafka);
            return 0;
        }
    }

    /** Filters shared by list and export. */
    static final class Filters {
        @Option(names = "--archive", defaultValue = ".sluice/archive", description = "Archive directory.")
        Path archive;
        @Option(names = "--tier", description = "financial or operational.")
        String tier;
        @Option(names = "--since", description = "Dead-lettered at or after: an ISO instant or a date (UTC).")
        String since;
        @Option(names = "--until", description = "Dead-lettered before: an ISO instant or a date (UTC).")
        String until;
        @Option(names = "--tenant", description = "Only this tenant's dead letters.")
        String tenant;
        @Option(names = "--error-class", description = "Final error code (timeout, failed, invalid_request) or failure class "
                + "(simple or fully qualified name).")
        String errorClass;

        DlqArchive.Filter filter() {
            if (tier != null && !tier.equals("financial") && !tier.equals("operational")) {
                throw new IllegalArgumentException("--tier: must be financial or operational, not " + tier);
            }
            return new DlqArchive.Filter(tier, instant("--since", since), instant("--until", until), tenant, errorClass, null);
        }

        static Instant instant(String option, String value) {
            if (value == null) {
                return null;
            }
            try {
                return value.length() == 10 ? LocalDate.parse(value).atStartOfDay(ZoneOffset.UTC).toInstant() : Instant.parse(value);
            } catch (RuntimeException e) {
                throw new IllegalArgumentException(option + ": not an ISO instant or date: " + value);
            }
        }
    }

    @Command(name = "dlq", description = "Read, verify and replay the dead-letter archive.",
            subcommands = {ListCommand.class, ShowCommand.class, ExportCommand.class, VerifyCommand.class, ReplayCommand.class})
    static final class Dlq {
    }

    @Command(name = "list", description = "One line per archived dead letter, filtered.")
    static final class ListCommand implements Callable<Integer> {
        @CommandLine.Mixin
        Filters filters = new Filters();

        @Override
        public Integer call() {
            List<DlqArchive.Entry> entries = new DlqArchive(filters.archive).list(filters.filter());
            System.out.printf("%-24s  %-11s  %-36s  %-12s  %8s  %-16s  %s%n", "DEAD_LETTERED_AT", "TIER", "REQUEST_ID",
                    "TENANT", "ATTEMPTS", "ERROR", "MESSAGE");
            for (DlqArchive.Entry e : entries) {
                DeadLetter d = e.letter();
                System.out.printf("%-24s  %-11s  %-36s  %-12s  %8d  %-16s  %s%n", d.getDeadLetteredAt(), d.getTier(),
                        d.getRequestId(), d.getTenant(), d.getAttempts().size(), d.getFinalError().getCode(),
                        d.getFinalError().getMessage());
            }
            System.out.println(entries.size() + " dead letters");
            return 0;
        }
    }

    @Command(name = "show", description = "Everything archived about one request: dead letters, attempts, the original, replays.")
    static final class ShowCommand implements Callable<Integer> {
        @Parameters(paramLabel = "REQUEST_ID")
        String requestId;
        @Option(names = "--archive", defaultValue = ".sluice/archive", description = "Archive directory.")
        Path archive;

        @Override
        public Integer call() {
            DlqArchive reader = new DlqArchive(archive);
            List<DlqArchive.Entry> entries = reader.show(requestId);
            if (entries.isEmpty()) {
                System.err.println("sluice: no dead letter of " + requestId + " in " + archive);
                return 1;
            }
            for (DlqArchive.Entry e : entries) {
                ObjectNode json = DlqArchive.toJson(e);
                json.putArray("replays").addAll(reader.replaysOf(requestId));
                System.out.println(json.toPrettyString());
            }
            return 0;
        }
    }

    @Command(name = "export", description = "Export dead letters as JSON lines or CSV.")
    static final class ExportCommand implements Callable<Integer> {
        @CommandLine.Mixin
        Filters filters = new Filters();
        @Option(names = "--format", required = true, description = "jsonl or csv.")
        String format;
        @Option(names = "--out", description = "Output file; default standard output.")
        Path out;

        @Override
        public Integer call() throws Exception {
            if (!format.equals("jsonl") && !format.equals("csv")) {
                throw new IllegalArgumentException("--format: must be jsonl or csv, not " + format);
            }
            List<DlqArchive.Entry> entries = new DlqArchive(filters.archive).list(filters.filter());
            // Standard output is flushed, never closed; a file is closed.
            Writer w = out == null ? new OutputStreamWriter(System.out, StandardCharsets.UTF_8) : Files.newBufferedWriter(out);
            try {
                if (format.equals("jsonl")) {
                    DlqArchive.exportJsonl(entries, w);
                } else {
                    DlqArchive.exportCsv(entries, w);
                }
                w.flush();
            } finally {
                if (out != null) {
                    w.close();
                }
            }
            return 0;
        }
    }

    @Command(name = "verify", description = "Check the manifest chain and every file's SHA-256; exit 1 on any problem.")
    static final class VerifyCommand implements Callable<Integer> {
        @Option(names = "--archive", defaultValue = ".sluice/archive", description = "Archive directory.")
        Path archive;

        @Override
        public Integer call() {
            DlqArchive.Report r = new DlqArchive(archive).verify();
            for (String p : r.problems()) {
                System.out.println("PROBLEM  " + p);
            }
            System.out.printf("%s: %d files, %d dead letters, %d files removed by retention, %d replays; manifest head %s%n",
                    r.ok() ? "OK" : "TAMPERED", r.files(), r.records(), r.removedByRetention(), r.replays(), r.manifestHead());
            return r.ok() ? 0 : 1;
        }
    }

    @Command(name = "replay", description = "Submit an archived dead letter again (needs the dlq:replay scope); "
            + "the replay is recorded with who, when and why.")
    static final class ReplayCommand implements Callable<Integer> {
        @Parameters(paramLabel = "REQUEST_ID")
        String requestId;
        @Option(names = "--reason", required = true, description = "Why it is replayed (recorded in the archive).")
        String reason;
        @Option(names = "--token", description = "JWT with the dlq:replay scope; default: $SLUICE_TOKEN.")
        String token;
        @Option(names = "--archive", defaultValue = ".sluice/archive", description = "Archive directory.")
        Path archive;
        @Option(names = "--data-dir", defaultValue = ".sluice", description = "Dev data directory: its signing key verifies "
                + "the token when no --config is given.")
        Path dataDir;
        @Option(names = "--bootstrap-servers", description = "Kafka; default from --config / SLUICE_KAFKA_BOOTSTRAP_SERVERS.")
        String bootstrap;
        @CommandLine.Mixin
        Sluice.Common common = new Sluice.Common();

        @Override
        public Integer call() throws Exception {
            Map<String, Object> overrides = new HashMap<>();
            if (bootstrap != null) {
                overrides.put(CommonConfig.BOOTSTRAP_SERVERS, bootstrap);
            }
            if (common.configFile == null && System.getenv("SLUICE_GATEWAY_JWT_HS256_SECRET") == null) {
                overrides.put(GatewayConfig.JWT_SECRET, DevSecrets.signingKey(dataDir));
            }
            GatewayConfig config = new GatewayConfig(Settings.load(GatewayConfig.CONFIG, common.configFile, System.getenv(), overrides));
            String jwt = token != null ? token : System.getenv("SLUICE_TOKEN");
            if (jwt == null) {
                throw new IllegalArgumentException("--token: required (or set SLUICE_TOKEN)");
            }
            Replay r = replay(new DlqArchive(archive), config.authenticator(), jwt, requestId, reason,
                    config.getString(CommonConfig.BOOTSTRAP_SERVERS), new Topics(config.getString(CommonConfig.TOPIC_PREFIX)),
                    Clock.systemUTC());
            System.out.printf("Replayed %s as %s (replay %d of this dead letter; a repeat is not decoded again). "
                    + "Recorded in %s.%n", requestId, r.replayRequestId(), r.previousReplays() + 1,
                    archive.resolve(ReplayLog.FILE));
            return 0;
        }
    }

    /** What a replay did. */
    record Replay(String replayRequestId, int previousReplays, ObjectNode recorded) {
    }

    /**
     * Re-submits an archived dead letter to the requests topic under a new lineage: request id
     * {@code <id>.replay} and idempotency key {@code replay:<id>}, so replaying the same dead letter
     * twice submits twice but decodes once. The replay is recorded before it is submitted, so there
     * is no replay the archive does not know of.
     */
    static Replay replay(DlqArchive archive, Authenticator auth, String token, String requestId, String reason,
            String bootstrap, Topics topics, Clock clock) throws Exception {
        Authenticator.Principal who;
        try {
            who = auth.authenticate(token);
        } catch (Authenticator.Unauthorized e) {
            throw new IllegalArgumentException("--token: " + e.getMessage());
        }
        if (!who.may("dlq:replay")) {
            throw new IllegalArgumentException("--token: the dlq:replay scope is required to replay (token has " + who.scopes() + ")");
        }
        if (reason == null || reason.isBlank()) {
            throw new IllegalArgumentException("--reason: required, and recorded with the replay");
        }
        List<DlqArchive.Entry> letters = archive.show(requestId);
        DlqArchive.Entry entry = letters.stream().filter(e -> who.tenant().equals(e.letter().getTenant())).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("REQUEST_ID: no dead letter of " + requestId
                        + " for tenant " + who.tenant() + " in " + archive.root()));
        DeadLetter d = entry.letter();
        byte[] original = new byte[d.getOriginal().remaining()];
        d.getOriginal().duplicate().get(original);
        InferenceRequest orig;
        try {
            orig = SluiceCodec.get().decode(original, InferenceRequest.class);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("REQUEST_ID: the dead letter of " + requestId
                    + " does not hold a readable request (" + e.getMessage() + "); nothing to replay");
        }
        String replayId = requestId + ".replay";
        Map<String, String> metadata = new HashMap<>(orig.getMetadata());
        metadata.put("replay_of", requestId);
        metadata.put("replayed_by", who.subject());
        metadata.put("replay_reason", reason);
        InferenceRequest replay = InferenceRequest.newBuilder(orig).setRequestId(replayId)
                .setIdempotencyKey("replay:" + requestId).setMetadata(metadata).setReplyPartition(null)
                .setCreatedAt(clock.instant()).build();
        int previous = archive.replaysOf(requestId).size();
        ObjectNode recorded = new ReplayLog(archive.root()).record(requestId, replayId, d.getTier().name(), who.subject(),
                who.tenant(), reason, previous, clock.instant());
        try (KafkaProducer<String, SpecificRecord> producer = new KafkaProducer<>(Map.of(
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap, ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true), new StringSerializer(), AvroSerde.serializer())) {
            producer.send(new ProducerRecord<>(topics.requests(), replayId, replay)).get();
        }
        return new Replay(replayId, previous, recorded);
    }
}
