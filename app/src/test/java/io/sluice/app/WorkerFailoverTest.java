package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Topics;
import io.sluice.testkit.ChildJvm;
import io.sluice.testkit.SharedInfra;
import io.sluice.worker.engine.SeedSearch;
import io.sluice.worker.model.ModelBundle;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.admin.Admin;
import org.junit.jupiter.api.Test;

/**
 * Workers run as real processes and are killed with SIGKILL mid-stream, over and over, while
 * clients stream through a gateway. Every request must reach its client whole: each seq once,
 * in order, no gap, then one done.
 */
class WorkerFailoverTest {
    static final String SECRET = "failover-test-secret-0123456789abcdefghij";
    static final int KILLS = 20;
    static final int CLIENTS = 3;
    static final int MAX_TOKENS = 140;
    /** How long a worker that joined the group lives at least before it is killed. */
    static final long TAKEOVER_MS = 500;

    /** What one client saw of one request. */
    record Seen(String requestId, List<Integer> seqs, List<Long> arrivals, List<String> terminal) {
    }

    @Test
    void killingWorkersMidStreamTwentyTimesLosesNothingDoublesNothingAndReordersNothing() throws Exception {
        SharedInfra infra = SharedInfra.get();
        Topics topics = new Topics(SharedInfra.uniquePrefix("failover"));
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
        }
        long seed;
        try (ModelBundle model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1)) {
            seed = SeedSearch.seedRunning(model, "The river", MAX_TOKENS, 0.8f);
        }
        Map<String, Object> g = new HashMap<>();
        g.put(CommonConfig.BOOTSTRAP_SERVERS, infra.bootstrapServers());
        g.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        g.put(CommonConfig.REDIS_URI, infra.redisUri());
        g.put(GatewayConfig.PORT, 0);
        g.put(GatewayConfig.JWT_SECRET, SECRET);
        Path logs = Path.of("target", "failover-logs");
        List<ChildJvm> workers = new ArrayList<>(Collections.nCopies(2, null));
        List<Long> killedAt = Collections.synchronizedList(new ArrayList<>());
        ConcurrentLinkedQueue<Seen> seen = new ConcurrentLinkedQueue<>();
        AtomicBoolean submitting = new AtomicBoolean(true);
        int[] duringKills = {0};
        try (Gateway gateway = Gateway.start(new GatewayConfig(g))) {
            for (int slot = 0; slot < 2; slot++) {
                workers.set(slot, startWorker(infra, topics, slot, 0, logs));
            }
            for (ChildJvm w : workers) {
                w.awaitOutput("started on", 60_000);
            }
            String token = gateway.authenticator().mint("chaos", "acme", List.of("infer"), Duration.ofMinutes(30));
            String generate = "{\"type\":\"generate\",\"prompt\":\"The river\",\"max_tokens\":" + MAX_TOKENS
                    + ",\"temperature\":0.8,\"seed\":" + seed + "}";
            List<Thread> clients = new ArrayList<>();
            List<Throwable> failures = Collections.synchronizedList(new ArrayList<>());
            Map<String, String> current = new java.util.concurrent.ConcurrentHashMap<>();
            for (int c = 0; c < CLIENTS; c++) {
                String name = "client-" + c;
                Thread t = new Thread(() -> {
                    try (WsClient client = WsClient.connect(gateway.url(), token)) {
                        while (submitting.get()) {
                            seen.add(stream(client, generate, id -> current.put(name, id)));
                        }
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }, name);
                t.start();
                clients.add(t);
            }
            for (int k = 1; k <= KILLS; k++) {
                // Each worker lives at least about 4 s: it starts, takes streams over and is killed mid-way
                // again. It is killed only once it has joined the group and had a moment to resume what it
                // was given: on a loaded two-core machine a worker can take more than 4 s to start, and
                // killing workers on a fixed clock then let a run of them die before joining, which left
                // streams with no worker at all for 30 s and more and tested no takeover.
                Thread.sleep(2_000);
                int slot = k % 2;
                workers.get(slot).awaitOutput("consumer assigned", 60_000);
                Thread.sleep(TAKEOVER_MS);
                // Only this test kills workers: one that died on its own is a bug, not a takeover.
                assertThat(workers.get(slot).isAlive()).as("worker slot %d alive until it is killed", slot).isTrue();
                workers.get(slot).kill();
                killedAt.add(System.nanoTime());
                workers.set(slot, startWorker(infra, topics, slot, k, logs));
            }
            duringKills[0] = seen.size();
            // How many requests finish during the kills depends on the machine's speed; the streams
            // hit mid-way are what this test is about (counted below). Let the clients go on with the
            // last two workers until enough requests went through in all.
            long enough = System.nanoTime() + Duration.ofSeconds(120).toNanos();
            while (seen.size() < KILLS / 2 && failures.isEmpty() && System.nanoTime() < enough) {
                Thread.sleep(100);
            }
            submitting.set(false);
            for (Thread t : clients) {
                t.join(180_000);
                assertThat(t.isAlive()).as("%s finished its last request", t.getName()).isFalse();
            }
            if (!failures.isEmpty()) {
                // Say where each unfinished request got to, so a failure tells a lost request from a lost event.
                StringBuilder where = new StringBuilder();
                for (Thread t : clients) {
                    String id = current.get(t.getName());
                    if (id != null && seen.stream().noneMatch(s -> s.requestId().equals(id))) {
                        where.append(whereIs(infra.bootstrapServers(), topics, topics.prefix() + "workers", id));
                    }
                }
                System.out.println(where);
                assertThat(failures).as("client failures; where their requests are:%n%s", where).isEmpty();
            }
        } finally {
            for (ChildJvm w : workers) {
                if (w != null) {
                    w.close();
                }
            }
        }

        assertThat(seen.size()).as("requests streamed through %d kills", KILLS).isGreaterThanOrEqualTo(KILLS / 2);
        List<Double> stalls = new ArrayList<>();
        for (Seen s : seen) {
            assertThat(s.terminal()).as("terminal frames of %s", s.requestId()).hasSize(1);
            assertThat(s.terminal().get(0)).as("outcome of %s", s.requestId()).startsWith("done:");
            assertThat(s.seqs()).as("seqs of %s: none lost, doubled or out of order", s.requestId())
                    .containsExactlyElementsOf(java.util.stream.IntStream.range(0, s.seqs().size()).boxed().toList());
            assertThat(s.terminal().get(0)).isEqualTo("done:" + s.seqs().size());
            for (int i = 1; i < s.arrivals().size(); i++) {
                stalls.add((s.arrivals().get(i) - s.arrivals().get(i - 1)) / 1e6);
            }
        }
        stalls.sort(null);
        List<Double> takeovers = stalls.stream().filter(ms -> ms > 500).toList();
        assertThat(takeovers.size()).as("kills that hit a stream mid-way (a client saw it pause and resume)")
                .isGreaterThanOrEqualTo(KILLS / 4);
        System.out.printf("failover: %d requests (%d finished before the last kill), %d kills, %d token gaps over 500 ms "
                + "(takeovers): median %.0f ms, max %.0f ms%n", seen.size(), duringKills[0], KILLS, takeovers.size(),
                takeovers.isEmpty() ? 0 : takeovers.get(takeovers.size() / 2),
                takeovers.isEmpty() ? 0 : takeovers.get(takeovers.size() - 1));
    }

    static Seen stream(WsClient client, String generate, java.util.function.Consumer<String> onAccepted)
            throws InterruptedException {
        client.send(generate);
        JsonNode accepted = client.next(Duration.ofSeconds(60), "accepted");
        assertThat(accepted.path("type").asText()).isEqualTo("accepted");
        String id = accepted.path("request_id").asText();
        onAccepted.accept(id);
        List<Integer> seqs = new ArrayList<>();
        List<Long> arrivals = new ArrayList<>();
        List<String> terminal = new ArrayList<>();
        while (true) {
            JsonNode f = client.next(Duration.ofSeconds(180), "token or done of " + id);
            assertThat(f.path("request_id").asText()).isEqualTo(id);
            switch (f.path("type").asText()) {
                case "token" -> {
                    seqs.add(f.path("seq").asInt());
                    arrivals.add(System.nanoTime());
                }
                case "done" -> {
                    terminal.add("done:" + f.path("usage").path("completion_tokens").asInt());
                    return new Seen(id, seqs, arrivals, terminal);
                }
                default -> {
                    terminal.add(f.toString());
                    return new Seen(id, seqs, arrivals, terminal);
                }
            }
        }
    }

    /**
     * Every record keyed {@code requestId} on the deployment's topics (what the tokens topic holds
     * of it: seqs, result), and the workers' committed offsets beside its request's offset.
     */
    static String whereIs(String bootstrap, Topics topics, String group, String requestId) {
        StringBuilder out = new StringBuilder("request " + requestId + ":\n");
        Map<String, Object> props = Map.of("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props);
                var c = new org.apache.kafka.clients.consumer.KafkaConsumer<>(props,
                        new org.apache.kafka.common.serialization.StringDeserializer(),
                        new org.apache.kafka.common.serialization.ByteArrayDeserializer())) {
            var committed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            for (String topic : topics.all()) {
                List<org.apache.kafka.common.TopicPartition> parts = c.partitionsFor(topic).stream()
                        .map(p -> new org.apache.kafka.common.TopicPartition(topic, p.partition())).toList();
                c.assign(parts);
                c.seekToBeginning(parts);
                Map<org.apache.kafka.common.TopicPartition, Long> ends = c.endOffsets(parts);
                List<String> found = new ArrayList<>();
                long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
                while (parts.stream().anyMatch(tp -> c.position(tp) < ends.get(tp)) && System.nanoTime() < deadline) {
                    for (var r : c.poll(Duration.ofMillis(200))) {
                        if (!requestId.equals(r.key())) {
                            continue;
                        }
                        String what;
                        try {
                            var v = io.sluice.schemas.AvroSerde.anyDeserializer().deserialize(topic, r.value());
                            what = v instanceof io.sluice.schemas.TokenEvent te ? "seq " + te.getSeq() + " fence " + te.getFence()
                                    + " " + te.getWorkerId()
                                    : v instanceof io.sluice.schemas.InferenceResult ir ? "result " + ir.getFinishReason() + " "
                                            + ir.getCompletionTokens() + " tokens, " + ir.getWorkerId()
                                    : v.getClass().getSimpleName();
                        } catch (RuntimeException e) {
                            what = e.toString();
                        }
                        var tp = new org.apache.kafka.common.TopicPartition(topic, r.partition());
                        var done = committed.get(tp);
                        found.add(r.partition() + "@" + r.offset() + " " + what
                                + (done == null ? "" : " (workers committed " + done.offset() + ", end " + ends.get(tp) + ")"));
                    }
                }
                if (!found.isEmpty()) {
                    out.append("  ").append(topic).append(": ").append(found.size()).append(" records: ")
                            .append(found.size() > 12 ? found.subList(0, 3) + " ... " + found.subList(found.size() - 6, found.size())
                                    : found).append('\n');
                }
            }
        } catch (Exception e) {
            out.append("  cannot read the topics: ").append(e).append('\n');
        }
        return out.toString();
    }

    static ChildJvm startWorker(SharedInfra infra, Topics topics, int slot, int generation, Path logs) throws Exception {
        Map<String, String> env = new HashMap<>();
        env.put("SLUICE_KAFKA_BOOTSTRAP_SERVERS", infra.bootstrapServers());
        env.put("SLUICE_REDIS_URI", infra.redisUri());
        env.put("SLUICE_TOPIC_PREFIX", topics.prefix());
        env.put("SLUICE_WORKER_GROUP_ID", topics.prefix() + "workers");
        env.put("SLUICE_WORKER_GROUP_INSTANCE_ID", "slot-" + slot);
        env.put("SLUICE_WORKER_ID", "slot-" + slot + "-" + generation);
        env.put("SLUICE_WORKER_LEASE_MS", "1500");
        env.put("SLUICE_WORKER_SESSION_TIMEOUT_MS", "10000");
        env.put("SLUICE_METRICS_PORT", "0"); // two workers share this host
        env.put("SLUICE_WORKER_DEVICE", "cpu");
        return ChildJvm.start("io.sluice.app.Sluice", List.of("worker"), env,
                logs.resolve("worker-slot" + slot + "-" + generation + ".log"), "768m");
    }
}
