package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import io.sluice.worker.Worker;
import io.sluice.worker.WorkerConfig;
import io.sluice.worker.model.ModelBundle;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.junit.jupiter.api.Test;

/**
 * Tokens go only to the gateway whose sockets follow them: with 8 gateways, the records all
 * gateways read add up to about the records produced, not 8 times as many; gateways joining and
 * leaving do not break the streams of the others.
 */
class GatewayRoutingTest {
    static final int GATEWAYS = 8;

    @Test
    void eightGatewaysReadEachTokenAboutOnceAndMembershipChangesBreakNoStream() throws Exception {
        SharedInfra infra = SharedInfra.get();
        Topics topics = new Topics(SharedInfra.uniquePrefix("routing"));
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            var single = TopicProvisioner.Layout.singleNode();
            TopicProvisioner.ensure(admin, topics, new TopicProvisioner.Layout(GATEWAYS, (short) 1, single.tokenRetention(),
                    single.dlqRetention()));
        }
        Map<String, Object> common = new HashMap<>();
        common.put(CommonConfig.BOOTSTRAP_SERVERS, infra.bootstrapServers());
        common.put(CommonConfig.REDIS_URI, infra.redisUri());
        common.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        List<Gateway> gateways = new ArrayList<>();
        ExecutorService clients = Executors.newFixedThreadPool(GATEWAYS);
        try (ModelBundle model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1)) {
            Map<String, Object> w = new HashMap<>(common);
            w.put(WorkerConfig.GROUP_ID, topics.prefix() + "workers");
            try (Worker worker = Worker.start(new WorkerConfig(w), model)) {
                for (int i = 0; i < GATEWAYS; i++) {
                    gateways.add(Gateway.start(new GatewayConfig(gatewayConfig(common, i))));
                }
                waitForDisjointHomes(gateways);
                worker.awaitAssignment(Duration.ofSeconds(60));
                long readBefore = gateways.stream().mapToLong(g -> g.router().recordsRead()).sum();

                List<Future<Integer>> streams = new ArrayList<>();
                for (int i = 0; i < GATEWAYS * 4; i++) {
                    Gateway g = gateways.get(i % GATEWAYS);
                    streams.add(clients.submit(() -> stream(g, "The lock keeper", 24)));
                }
                int produced = 0;
                for (Future<Integer> f : streams) {
                    produced += f.get(120, TimeUnit.SECONDS) + 1; // tokens plus the result event
                }
                long read = gateways.stream().mapToLong(g -> g.router().recordsRead()).sum() - readBefore;
                double amplification = read / (double) produced;
                System.out.printf("routing: %d gateways, %d events produced, %d read by all gateways: amplification %.2f%n",
                        GATEWAYS, produced, read, amplification);
                assertThat(amplification).as("read amplification with %d gateways", GATEWAYS).isLessThanOrEqualTo(1.5);

                // Membership changes under live streams: one gateway leaves, a new one joins.
                List<Future<Integer>> live = new ArrayList<>();
                for (int i = 0; i < 6; i++) {
                    Gateway g = gateways.get(i % 3);
                    live.add(clients.submit(() -> stream(g, "The river", 60)));
                }
                Thread.sleep(150);
                gateways.remove(GATEWAYS - 1).close();
                gateways.add(Gateway.start(new GatewayConfig(gatewayConfig(common, GATEWAYS))));
                for (Future<Integer> f : live) {
                    assertThat(f.get(120, TimeUnit.SECONDS)).as("a whole stream through the membership change").isPositive();
                }
            }
        } finally {
            clients.shutdownNow();
            for (Gateway g : gateways) {
                g.close();
            }
        }
    }

    static Map<String, Object> gatewayConfig(Map<String, Object> common, int i) {
        Map<String, Object> g = new HashMap<>(common);
        g.put(GatewayConfig.PORT, 0);
        g.put(GatewayConfig.ID, "gw-" + i);
        g.put(GatewayConfig.JWT_SECRET, InProcessPipeline.SECRET);
        g.put(GatewayConfig.DRAIN_TIMEOUT_MS, 0L);
        return g;
    }

    static void waitForDisjointHomes(List<Gateway> gateways) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline) {
            List<Integer> all = new ArrayList<>();
            gateways.forEach(g -> all.addAll(g.router().homePartitions()));
            if (all.size() == GATEWAYS && all.stream().distinct().count() == GATEWAYS
                    && gateways.stream().allMatch(g -> !g.router().homePartitions().isEmpty())) {
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError("gateways did not settle on disjoint home partitions");
    }

    /** Streams one request through a gateway and returns its token count, checking it is whole. */
    static Integer stream(Gateway g, String prompt, int maxTokens) throws Exception {
        String token = g.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(5));
        try (WsClient c = WsClient.connect(g.url(), token)) {
            c.send("{\"type\":\"generate\",\"prompt\":\"" + prompt + "\",\"max_tokens\":" + maxTokens + "}");
            JsonNode accepted = c.next(Duration.ofSeconds(60), "accepted");
            assertThat(accepted.path("type").asText()).isEqualTo("accepted");
            int seq = 0;
            JsonNode f;
            do {
                f = c.next(Duration.ofSeconds(60), "stream");
                if (f.path("type").asText().equals("token")) {
                    assertThat(f.path("seq").asInt()).isEqualTo(seq);
                    seq = (f.has("seq_end") ? f.path("seq_end").asInt() : seq) + 1;
                }
            } while (f.path("type").asText().equals("token"));
            assertThat(f.path("type").asText()).isEqualTo("done");
            assertThat(f.path("usage").path("completion_tokens").asInt()).isEqualTo(seq);
            return seq;
        }
    }
}
