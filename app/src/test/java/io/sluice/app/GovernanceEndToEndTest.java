package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.archive.Archiver;
import io.sluice.archive.ArchiverConfig;
import io.sluice.archive.DlqArchive;
import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.Tier;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import io.sluice.worker.Faults;
import io.sluice.worker.Worker;
import io.sluice.worker.WorkerConfig;
import io.sluice.worker.model.ModelBundle;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * From a client's socket to the auditor's archive: a request that keeps failing is retried,
 * dead-lettered (the client is told), archived, listed, shown, verified and replayed once.
 */
class GovernanceEndToEndTest {
    static final Duration WAIT = Duration.ofSeconds(90);
    static final String SECRET = "governance-e2e-secret-0123456789abcdef0123";
    @TempDir
    Path dir;

    /** The device fails every request about the broken valve, except replays. */
    static final class BrokenValve implements Faults {
        @Override
        public RuntimeException failure(InferenceRequest request, int attempt, int seq) {
            boolean original = !request.getRequestId().endsWith(".replay");
            return original && request.getPrompt().contains("broken valve") && seq >= 3
                    ? new IllegalStateException("CUDA error: an illegal memory access was encountered") : null;
        }
    }

    @Test
    void aRequestThatKeepsFailingIsDeadLetteredArchivedAuditedAndReplayedOnce() throws Exception {
        SharedInfra infra = SharedInfra.get();
        Topics topics = InProcessPipeline.provision("governance");
        Map<String, Object> common = InProcessPipeline.common(topics);
        Map<String, Object> w = new HashMap<>(common);
        w.put(WorkerConfig.GROUP_ID, topics.prefix() + "workers");
        w.put(WorkerConfig.retryKey(Tier.financial, "max.retries"), 2);
        w.put(WorkerConfig.retryKey(Tier.financial, "backoff.ms"), 150L);
        Map<String, Object> g = new HashMap<>(common);
        g.put(GatewayConfig.PORT, 0);
        g.put(GatewayConfig.JWT_SECRET, SECRET);
        Map<String, Object> a = new HashMap<>(common);
        Path archiveDir = dir.resolve("archive");
        a.put(ArchiverConfig.DIR, archiveDir.toString());
        a.put(ArchiverConfig.GROUP_ID, topics.prefix() + "archiver");
        try (ModelBundle model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
             Worker worker = Worker.builder(new WorkerConfig(w)).model(model).faults(new BrokenValve()).start();
             Gateway gateway = Gateway.start(new GatewayConfig(g));
             Archiver archiver = Archiver.start(new ArchiverConfig(a))) {
            assertThat(worker.awaitAssignment(WAIT)).isTrue();
            String token = gateway.authenticator().mint("alice", "acme", List.of("infer"), Duration.ofMinutes(10));

            String requestId;
            List<Integer> seqs = new ArrayList<>();
            try (WsClient client = WsClient.connect(gateway.url(), token)) {
                client.send("{\"type\":\"generate\",\"id\":\"v-1\",\"prompt\":\"The broken valve\",\"max_tokens\":20,"
                        + "\"tier\":\"financial\"}");
                JsonNode accepted = client.next(WAIT, "accepted");
                assertThat(accepted.path("type").asText()).isEqualTo("accepted");
                requestId = accepted.path("request_id").asText();
                JsonNode f;
                while ((f = client.next(WAIT, "tokens, then the dead letter")).path("type").asText().equals("token")) {
                    seqs.add(f.path("seq").asInt());
                }
                assertThat(f.path("type").asText()).isEqualTo("error");
                assertThat(f.path("code").asText()).isEqualTo("dead_lettered");
                assertThat(f.path("request_id").asText()).isEqualTo(requestId);
                assertThat(f.path("message").asText()).contains("after 3 attempts").contains("illegal memory access");
                assertThat(f.path("retryable").asBoolean()).isFalse();
            }
            assertThat(seqs).as("the tokens before the failure, each once, across three attempts").containsExactly(0, 1, 2);

            // In the archive within a second of the dead letter (financial).
            DlqArchive archive = new DlqArchive(archiveDir);
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (archive.show(requestId).isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            DeadLetter d = archive.show(requestId).get(0).letter();
            assertThat(d.getAttempts()).hasSize(3);
            assertThat(d.getTenant()).isEqualTo("acme");
            assertThat(d.getFinalError().getMessage()).contains("illegal memory access");

            // The auditors' commands.
            assertThat(run("dlq", "verify", "--archive", archiveDir.toString())).startsWith("0|").contains("OK: 1 files");
            assertThat(run("dlq", "list", "--archive", archiveDir.toString(), "--tier", "financial", "--tenant", "acme"))
                    .contains(requestId).contains("1 dead letters");
            assertThat(run("dlq", "list", "--archive", archiveDir.toString(), "--tenant", "globex")).contains("0 dead letters");
            assertThat(run("dlq", "show", requestId, "--archive", archiveDir.toString()))
                    .contains("\"error_class\" : \"java.lang.IllegalStateException\"").contains("The broken valve");
            assertThat(run("dlq", "export", "--format", "csv", "--archive", archiveDir.toString()))
                    .contains("dead_lettered_at,tier,request_id").contains(requestId);

            // Replay needs dlq:replay; twice submits twice and decodes once.
            String reader = gateway.authenticator().mint("carol", "acme", List.of("dlq:read"), Duration.ofMinutes(10));
            String replayer = gateway.authenticator().mint("bob", "acme", List.of("dlq:replay"), Duration.ofMinutes(10));
            String otherTenant = gateway.authenticator().mint("eve", "globex", List.of("dlq:replay"), Duration.ofMinutes(10));
            assertThatThrownBy(() -> DlqCommands.replay(archive, gateway.authenticator(), reader, requestId, "fixed",
                    infra.bootstrapServers(), topics, Clock.systemUTC())).hasMessageContaining("dlq:replay scope is required");
            assertThatThrownBy(() -> DlqCommands.replay(archive, gateway.authenticator(), otherTenant, requestId, "fixed",
                    infra.bootstrapServers(), topics, Clock.systemUTC())).hasMessageContaining("no dead letter");
            var first = DlqCommands.replay(archive, gateway.authenticator(), replayer, requestId, "driver fixed",
                    infra.bootstrapServers(), topics, Clock.systemUTC());
            var second = DlqCommands.replay(archive, gateway.authenticator(), replayer, requestId, "again, to be sure",
                    infra.bootstrapServers(), topics, Clock.systemUTC());
            assertThat(second.replayRequestId()).isEqualTo(first.replayRequestId());
            assertThat(second.previousReplays()).isEqualTo(1);

            List<ConsumerRecord<String, SpecificRecord>> out = readUntil(topics.tokens(), rs -> rs.stream()
                    .filter(r -> r.value() instanceof InferenceResult res && res.getRequestId().equals(first.replayRequestId()))
                    .count() >= 2, "two outcomes of the replay");
            List<TokenEvent> tokens = out.stream().map(ConsumerRecord::value).filter(v -> v instanceof TokenEvent t
                    && t.getRequestId().equals(first.replayRequestId())).map(v -> (TokenEvent) v).toList();
            InferenceResult result = (InferenceResult) out.stream().map(ConsumerRecord::value)
                    .filter(v -> v instanceof InferenceResult r && r.getRequestId().equals(first.replayRequestId()))
                    .findFirst().orElseThrow();
            assertThat(result.getError()).isNull();
            assertThat(tokens).as("decoded once: one token event per seq").hasSize(result.getCompletionTokens());
            assertThat(tokens.stream().map(TokenEvent::getSeq).distinct().count()).isEqualTo(result.getCompletionTokens());

            assertThat(archive.replaysOf(requestId)).extracting(r -> r.path("principal").asText()).containsExactly("bob", "bob");
            assertThat(archive.replaysOf(requestId).get(0).path("reason").asText()).isEqualTo("driver fixed");
            assertThat(run("dlq", "show", requestId, "--archive", archiveDir.toString())).contains("driver fixed");
            assertThat(archive.verify().problems()).isEmpty();
        }
    }

    /** Runs the CLI in this JVM; returns "exit|stdout". */
    static String run(String... args) {
        PrintStream saved = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true));
        try {
            int code = Sluice.commandLine().execute(args);
            return code + "|" + buf;
        } finally {
            System.setOut(saved);
        }
    }

    static List<ConsumerRecord<String, SpecificRecord>> readUntil(String topic,
            java.util.function.Predicate<List<ConsumerRecord<String, SpecificRecord>>> done, String what) {
        List<ConsumerRecord<String, SpecificRecord>> all = new ArrayList<>();
        try (KafkaConsumer<String, SpecificRecord> c = new KafkaConsumer<>(Map.of("bootstrap.servers",
                SharedInfra.get().bootstrapServers()), new StringDeserializer(), AvroSerde.anyDeserializer())) {
            List<TopicPartition> parts = c.partitionsFor(topic).stream().map(p -> new TopicPartition(topic, p.partition())).toList();
            c.assign(parts);
            c.seekToBeginning(parts);
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(100)).forEach(all::add);
                if (done.test(all)) {
                    return all;
                }
            }
        }
        throw new AssertionError("timed out awaiting " + what);
    }
}
