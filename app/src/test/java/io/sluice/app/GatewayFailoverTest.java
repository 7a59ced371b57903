package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.testkit.ChildJvm;
import io.sluice.testkit.SharedInfra;
import io.sluice.worker.engine.SeedSearch;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * A gateway process is killed with SIGKILL mid-stream; the client re-attaches through another
 * gateway with the last seq it has and gets the rest of the stream, each seq once, then done.
 */
class GatewayFailoverTest {
    static final Duration WAIT = Duration.ofSeconds(60);

    @Test
    void afterAGatewayIsKilledTheClientAttachesElsewhereAndGetsTheRestOfItsStream() throws Exception {
        try (InProcessPipeline pipeline = new InProcessPipeline("gwkill")) {
            long seed = SeedSearch.seedRunning(pipeline.model, "The river", 200, 0.8f);
            SharedInfra infra = SharedInfra.get();
            Map<String, String> env = new HashMap<>();
            env.put("SLUICE_KAFKA_BOOTSTRAP_SERVERS", infra.bootstrapServers());
            env.put("SLUICE_REDIS_URI", infra.redisUri());
            env.put("SLUICE_TOPIC_PREFIX", pipeline.topics.prefix());
            env.put("SLUICE_GATEWAY_PORT", "0");
            env.put("SLUICE_GATEWAY_ID", "doomed");
            env.put("SLUICE_GATEWAY_JWT_HS256_SECRET", InProcessPipeline.SECRET);
            Path log = Path.of("target", "gateway-failover", "gateway.log");
            Files.deleteIfExists(log);
            List<Integer> seqs = new ArrayList<>();
            StringBuilder text = new StringBuilder();
            String requestId;
            try (ChildJvm doomed = ChildJvm.start("io.sluice.app.Sluice", List.of("gateway"), env, log, "384m")) {
                doomed.awaitOutput("listening on", 60_000);
                Matcher m = Pattern.compile("listening on (ws://\\S+)").matcher(Files.readString(log));
                assertThat(m.find()).isTrue();
                String url = m.group(1);
                String token = pipeline.token("acme");
                WsClient first = WsClient.connect(url, token);
                first.send("{\"type\":\"generate\",\"prompt\":\"The river\",\"max_tokens\":200,\"temperature\":0.8,\"seed\":"
                        + seed + "}");
                requestId = first.next(WAIT, "accepted").path("request_id").asText();
                while (seqs.size() < 5) {
                    JsonNode t = first.next(WAIT, "first tokens");
                    seqs.add(t.path("seq").asInt());
                    text.append(t.path("text").asText());
                }
                doomed.kill();
                first.close();
            }
            try (WsClient again = WsClient.connect(pipeline.gateway.url(), pipeline.token("acme"))) {
                again.send("{\"type\":\"attach\",\"request_id\":\"" + requestId + "\",\"after_seq\":"
                        + seqs.get(seqs.size() - 1) + "}");
                JsonNode f;
                do {
                    f = again.next(WAIT, "the rest of the stream");
                    if (f.path("type").asText().equals("token")) {
                        int from = f.path("seq").asInt();
                        int to = f.has("seq_end") ? f.path("seq_end").asInt() : from;
                        for (int s = from; s <= to; s++) {
                            seqs.add(s);
                        }
                        text.append(f.path("text").asText());
                    }
                } while (f.path("type").asText().equals("token"));
                assertThat(f.path("type").asText()).isEqualTo("done");
                assertThat(f.path("finish_reason").asText()).as("killing the gateway did not cancel the request")
                        .isEqualTo("length");
                assertThat(seqs).containsExactlyElementsOf(java.util.stream.IntStream.range(0, 200).boxed().toList());
                assertThat(text.toString()).isEqualTo(
                        ResultsReader.await(infra.bootstrapServers(), pipeline.topics.results(), requestId, WAIT).getText());
            }
        }
    }
}
