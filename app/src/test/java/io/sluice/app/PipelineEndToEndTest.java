package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.ingress.Gateway;
import io.sluice.schemas.FinishReason;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import io.sluice.worker.engine.Decoder;
import io.sluice.worker.engine.SeedSearch;
import io.sluice.worker.engine.Sequence;
import io.sluice.worker.model.ModelBundle;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The thin path, all real: a WebSocket client over loopback, the gateway, Kafka, a worker with the
 * bundled ONNX model and Redis claims, and back.
 */
class PipelineEndToEndTest {
    static final Duration WAIT = Duration.ofSeconds(30);
    static InProcessPipeline pipeline;
    static ModelBundle model;
    static Gateway gateway;
    static Topics topics;
    static String token;
    static long longSeed;

    @BeforeAll
    static void startPipeline() throws Exception {
        pipeline = new InProcessPipeline("e2e");
        model = pipeline.model;
        gateway = pipeline.gateway;
        topics = pipeline.topics;
        token = pipeline.token("acme");
        longSeed = SeedSearch.seedRunning(model, "The river", 200, 0.8f);
    }

    @AfterAll
    static void stopPipeline() throws Exception {
        pipeline.close();
    }

    /** What the worker's engine produces for the prompt when called directly. */
    static String directGreedy(String prompt, int maxTokens) {
        try (Decoder decoder = new Decoder(model); Sequence seq = decoder.start(model.encode(prompt))) {
            List<Long> ids = new ArrayList<>();
            float[] logits = seq.lastLogits();
            for (int i = 0; i < maxTokens; i++) {
                int next = Decoder.argmax(logits);
                if (next == model.eosTokenId()) {
                    break;
                }
                ids.add((long) next);
                logits = seq.feed(next);
            }
            return model.decode(ids.stream().mapToLong(Long::longValue).toArray());
        }
    }

    @Test
    void aPromptStreamsContiguousTokensThenOneDoneWithTheModelsGreedyText() throws Exception {
        String prompt = "The river";
        try (WsClient client = WsClient.connect(gateway.url(), token)) {
            client.send("{\"type\":\"generate\",\"id\":\"c-1\",\"prompt\":\"" + prompt + "\",\"max_tokens\":20}");
            JsonNode accepted = client.next(WAIT, "accepted");
            assertThat(accepted.path("type").asText()).isEqualTo("accepted");
            assertThat(accepted.path("id").asText()).isEqualTo("c-1");
            assertThat(accepted.path("duplicate").asBoolean()).isFalse();
            String requestId = accepted.path("request_id").asText();
            assertThat(requestId).isNotBlank();

            StringBuilder text = new StringBuilder();
            int expectedSeq = 0;
            JsonNode frame;
            while (true) {
                frame = client.next(WAIT, "token or done");
                if (!frame.path("type").asText().equals("token")) {
                    break;
                }
                assertThat(frame.path("request_id").asText()).isEqualTo(requestId);
                assertThat(frame.path("seq").asInt()).as("seq").isEqualTo(expectedSeq++);
                text.append(frame.path("text").asText());
            }
            assertThat(frame.path("type").asText()).isEqualTo("done");
            assertThat(frame.path("request_id").asText()).isEqualTo(requestId);
            assertThat(frame.path("usage").path("completion_tokens").asInt()).isEqualTo(expectedSeq);
            assertThat(frame.path("finish_reason").asText()).isIn("stop", "length");
            assertThat(expectedSeq).isPositive();
            assertThat(text.toString()).isEqualTo(directGreedy(prompt, 20));

            client.send("{\"type\":\"ping\"}");
            assertThat(client.next(WAIT, "pong").path("type").asText()).as("no frame after done but the pong")
                    .isEqualTo("pong");
        }
    }

    @Test
    void malformedJsonGetsInvalidRequestAndTheSocketStaysOpen() throws Exception {
        try (WsClient client = WsClient.connect(gateway.url(), token)) {
            client.send("{\"type\": \"generate\", \"prompt\": ");
            JsonNode error = client.next(WAIT, "error");
            assertThat(error.path("type").asText()).isEqualTo("error");
            assertThat(error.path("code").asText()).isEqualTo("invalid_request");
            assertThat(error.path("message").asText()).contains("JSON");

            client.send("{\"type\":\"generate\",\"id\":\"x\",\"prompt\":\"hi\",\"max_tokens\":0}");
            JsonNode bad = client.next(WAIT, "error naming max_tokens");
            assertThat(bad.path("code").asText()).isEqualTo("invalid_request");
            assertThat(bad.path("id").asText()).isEqualTo("x");
            assertThat(bad.path("message").asText()).startsWith("max_tokens");

            client.send("{\"type\":\"ping\"}");
            assertThat(client.next(WAIT, "pong").path("type").asText()).isEqualTo("pong");
            assertThat(client.isOpen()).isTrue();
        }
    }

    @Test
    void aHandshakeWithoutAValidTokenIsRefused() {
        String forged = new io.sluice.ingress.Authenticator("some-other-secret-0123456789abcdefghij", "sluice")
                .mint("mallory", "acme", List.of("infer"), Duration.ofMinutes(1));
        for (String bad : new String[] {null, "not-a-jwt", forged}) {
            Exception failure = null;
            try (WsClient ignored = WsClient.connect(gateway.url(), bad)) {
                // connected: the assertion below fails
            } catch (Exception e) {
                failure = e;
            }
            assertThat(failure).as("handshake with token %s", bad).isNotNull();
            Throwable cause = failure;
            while (cause != null && !(cause instanceof org.eclipse.jetty.websocket.api.exceptions.UpgradeException)) {
                cause = cause.getCause();
            }
            assertThat(cause).as("upgrade refused for token %s: %s", bad, failure).isNotNull();
            assertThat(((org.eclipse.jetty.websocket.api.exceptions.UpgradeException) cause).getResponseStatusCode())
                    .isEqualTo(401);
        }
    }

    @Test
    void aCancelMessageEndsTheStreamWithDoneCancelledAndUnknownIdsAreNotFound() throws Exception {
        try (WsClient client = WsClient.connect(gateway.url(), token)) {
            client.send(longGenerate());
            String requestId = client.next(WAIT, "accepted").path("request_id").asText();
            assertThat(client.next(WAIT, "first token").path("type").asText()).isEqualTo("token");
            client.send("{\"type\":\"cancel\",\"request_id\":\"" + requestId + "\"}");
            JsonNode frame;
            int tokens = 1;
            do {
                frame = client.next(WAIT, "done after cancel");
                tokens += frame.path("type").asText().equals("token") ? 1 : 0;
            } while (frame.path("type").asText().equals("token"));
            assertThat(frame.path("type").asText()).isEqualTo("done");
            assertThat(frame.path("finish_reason").asText()).isEqualTo("cancelled");
            assertThat(frame.path("usage").path("completion_tokens").asInt()).isEqualTo(tokens).isLessThan(200);

            client.send("{\"type\":\"cancel\",\"request_id\":\"no-such-request\"}");
            JsonNode error = client.next(WAIT, "not_found");
            assertThat(error.path("code").asText()).isEqualTo("not_found");
            assertThat(error.path("message").asText()).startsWith("request_id");
        }
    }

    @Test
    void closingTheSocketCancelsItsRequests() throws Exception {
        String requestId;
        try (WsClient client = WsClient.connect(gateway.url(), token)) {
            client.send(longGenerate());
            requestId = client.next(WAIT, "accepted").path("request_id").asText();
            client.next(WAIT, "first token");
        }
        InferenceResult result = ResultsReader.await(SharedInfra.get().bootstrapServers(), topics.results(), requestId, WAIT);
        assertThat(result.getFinishReason()).isEqualTo(FinishReason.cancelled);
        assertThat(result.getCompletionTokens()).isLessThan(200);
    }

    /** A sampled request that runs the full 200 tokens unless something stops it. */
    static String longGenerate() {
        return "{\"type\":\"generate\",\"prompt\":\"The river\",\"max_tokens\":200,\"temperature\":0.8,\"seed\":"
                + longSeed + "}";
    }
}
