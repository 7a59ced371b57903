package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Protocol conformance and limits: every malformed message gets an error with a stable code
 * naming the field, the socket survives, and nothing reaches Kafka.
 */
class GatewayProtocolTest {
    static final Duration WAIT = Duration.ofSeconds(20);
    static Topics topics;
    static Gateway gateway;

    static Map<String, Object> config(Topics topics) {
        Map<String, Object> g = new HashMap<>();
        g.put(CommonConfig.BOOTSTRAP_SERVERS, SharedInfra.get().bootstrapServers());
        g.put(CommonConfig.REDIS_URI, SharedInfra.get().redisUri());
        g.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        g.put(GatewayConfig.PORT, 0);
        g.put(GatewayConfig.JWT_SECRET, InProcessPipeline.SECRET);
        g.put(GatewayConfig.MAX_PROMPT_CHARS, 100);
        return g;
    }

    static Topics topics(String name) throws Exception {
        Topics t = new Topics(SharedInfra.uniquePrefix(name));
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers()))) {
            TopicProvisioner.ensure(admin, t, TopicProvisioner.Layout.singleNode());
        }
        return t;
    }

    @BeforeAll
    static void start() throws Exception {
        topics = topics("protocol");
        gateway = Gateway.start(new GatewayConfig(config(topics)));
    }

    @AfterAll
    static void stop() throws Exception {
        gateway.close();
    }

    static String token(String tenant, List<String> scopes) {
        return gateway.authenticator().mint("u", tenant, scopes, Duration.ofMinutes(10));
    }

    /** Waits, within {@link #WAIT}, until {@code gw} holds no event stream: each one's client went away. */
    static void awaitEventStreamsReleased(Gateway gw) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (gw.openEventStreams() > 0) {
            assertThat(System.nanoTime()).as("event stream released within %s", WAIT).isLessThan(deadline);
            Thread.sleep(20);
        }
    }

    static long requestsOnKafka(Topics t) throws Exception {
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers()))) {
            Map<TopicPartition, OffsetSpec> spec = new HashMap<>();
            for (int p = 0; p < 4; p++) {
                spec.put(new TopicPartition(t.requests(), p), OffsetSpec.latest());
            }
            return admin.listOffsets(spec).all().get().values().stream().mapToLong(i -> i.offset()).sum();
        }
    }

    static Stream<Arguments> malformed() {
        String g = "{\"type\":\"generate\",\"prompt\":\"hi\",";
        return Stream.of(
                Arguments.of("[1,2]", "invalid_request", "message"),
                Arguments.of("{\"prompt\":\"hi\"}", "invalid_request", "type"),
                Arguments.of("{\"type\":\"dance\"}", "invalid_request", "type"),
                Arguments.of("{\"type\":\"generate\"}", "invalid_request", "prompt"),
                Arguments.of("{\"type\":\"generate\",\"prompt\":5}", "invalid_request", "prompt"),
                Arguments.of("{\"type\":\"generate\",\"prompt\":\"\"}", "invalid_request", "prompt"),
                Arguments.of("{\"type\":\"generate\",\"prompt\":\"" + "x".repeat(101) + "\"}", "too_large", "prompt"),
                Arguments.of(g + "\"max_tokens\":\"ten\"}", "invalid_request", "max_tokens"),
                Arguments.of(g + "\"max_tokens\":0}", "invalid_request", "max_tokens"),
                Arguments.of(g + "\"max_tokens\":100000}", "invalid_request", "max_tokens"),
                Arguments.of(g + "\"temperature\":-1}", "invalid_request", "temperature"),
                Arguments.of(g + "\"temperature\":\"hot\"}", "invalid_request", "temperature"),
                Arguments.of(g + "\"top_p\":0}", "invalid_request", "top_p"),
                Arguments.of(g + "\"top_p\":1.5}", "invalid_request", "top_p"),
                Arguments.of(g + "\"top_k\":-1}", "invalid_request", "top_k"),
                Arguments.of(g + "\"seed\":1.5}", "invalid_request", "seed"),
                Arguments.of(g + "\"stop\":\"x\"}", "invalid_request", "stop"),
                Arguments.of(g + "\"stop\":[1]}", "invalid_request", "stop"),
                Arguments.of(g + "\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "invalid_request", "stop"),
                Arguments.of(g + "\"logprobs\":6}", "invalid_request", "logprobs"),
                Arguments.of(g + "\"tier\":\"gold\"}", "invalid_request", "tier"),
                Arguments.of(g + "\"priority\":10}", "invalid_request", "priority"),
                Arguments.of(g + "\"idempotency_key\":5}", "invalid_request", "idempotency_key"),
                Arguments.of(g + "\"metadata\":[]}", "invalid_request", "metadata"),
                Arguments.of(g + "\"metadata\":{\"a\":1}}", "invalid_request", "metadata.a"),
                Arguments.of(g + "\"foo\":1}", "invalid_request", "foo"),
                Arguments.of("{\"type\":\"cancel\"}", "invalid_request", "request_id"),
                Arguments.of("{\"type\":\"cancel\",\"request_id\":\"nope\"}", "not_found", "request_id"),
                Arguments.of("{\"type\":\"attach\",\"request_id\":\"r\",\"after_seq\":\"x\"}", "invalid_request", "after_seq"),
                Arguments.of("{\"type\":\"attach\",\"request_id\":\"nope\",\"after_seq\":-1}", "not_found", "request_id"),
                Arguments.of("{\"type\":\"ping\",\"foo\":1}", "invalid_request", "foo"),
                Arguments.of("{\"type\":\"cancel\",\"id\":5,\"request_id\":\"r\"}", "invalid_request", "id"),
                Arguments.of("{\"type\":\"attach\",\"id\":\"" + "i".repeat(257) + "\",\"request_id\":\"r\"}",
                        "invalid_request", "id"),
                // One message is one object: text after it is refused, not dropped.
                Arguments.of("{\"type\":\"generate\",\"prompt\":\"hi\"} {\"type\":\"generate\",\"prompt\":\"hi\"}",
                        "invalid_request", "message"),
                Arguments.of("{\"type\":\"generate\",\"prompt\":\"hi\"} x", "invalid_request", "message"),
                // ASCII JSON in UTF-16: valid UTF-8, which a JSON reader guessing encodings would take.
                Arguments.of("{\"type\":\"generate\",\"prompt\":\"hi\"}".replaceAll("(.)", "\0$1"), "invalid_request",
                        "message"),
                Arguments.of("{\"type\":\"generate\",", "invalid_request", "message"));
    }

    @ParameterizedTest(name = "{0} -> {1} naming {2}")
    @MethodSource("malformed")
    void aMalformedMessageGetsAStableCodeNamingTheFieldTheSocketSurvivesAndNothingReachesKafka(String message,
            String code, String field) throws Exception {
        long before = requestsOnKafka(topics);
        try (WsClient c = WsClient.connect(gateway.url(), token("acme", List.of("infer")))) {
            c.send(message);
            JsonNode error = c.next(WAIT, "error for " + message);
            assertThat(error.path("type").asText()).isEqualTo("error");
            assertThat(error.path("code").asText()).isEqualTo(code);
            assertThat(error.path("message").asText()).startsWith(field);
            assertThat(error.has("retryable")).isTrue();
            c.send("{\"type\":\"ping\"}");
            assertThat(c.next(WAIT, "pong").path("type").asText()).isEqualTo("pong");
        }
        assertThat(requestsOnKafka(topics)).as("records on the requests topic").isEqualTo(before);
    }

    @Test
    void framesAreReadAsTheWebSocketProtocolHasThem() throws Exception {
        long before = requestsOnKafka(topics);
        try (WsClient c = WsClient.connect(gateway.url(), token("acme", List.of("infer")))) {
            // A message in fragments is one message.
            c.sendFragmented("{\"type\":\"gen", "erate\",\"id\":\"frag\",\"prompt\":\"h", "i\"}");
            JsonNode accepted = c.next(WAIT, "accepted for the fragmented message");
            assertThat(accepted.path("type").asText()).isEqualTo("accepted");
            assertThat(accepted.path("id").asText()).isEqualTo("frag");
            // Text beyond ASCII is read as the client wrote it.
            c.send("{\"type\":\"generate\",\"id\":\"r\u00e9sum\u00e9 \u65e5\u672c \ud83d\ude80\",\"prompt\":\"hi\"}");
            assertThat(c.next(WAIT, "accepted for non-ASCII text").path("id").asText()).isEqualTo("r\u00e9sum\u00e9 \u65e5\u672c \ud83d\ude80");
            // WebSocket pings are answered with their payload.
            assertThat(c.ping("are you there", WAIT)).isEqualTo("are you there");
            // Binary is not part of the protocol: an error naming the message, and the socket stays.
            c.sendBinary(new byte[] {1, 2, 3});
            JsonNode binary = c.next(WAIT, "error for a binary message");
            assertThat(binary.path("code").asText()).isEqualTo("invalid_request");
            assertThat(binary.path("message").asText()).startsWith("message");
            // A binary message in fragments is one message too: one error, its continuations are not read as text.
            c.sendFragmentedBinary("{\"type\":".getBytes(java.nio.charset.StandardCharsets.UTF_8),
                    "\"ping\"}".getBytes(java.nio.charset.StandardCharsets.UTF_8));
            JsonNode fragmented = c.next(WAIT, "error for a fragmented binary message");
            assertThat(fragmented.path("code").asText()).isEqualTo("invalid_request");
            assertThat(fragmented.path("message").asText()).startsWith("message: binary");
            c.send("{\"type\":\"ping\"}");
            assertThat(c.next(WAIT, "pong, the frame right after the error").path("type").asText()).isEqualTo("pong");
        }
        assertThat(requestsOnKafka(topics)).as("records on the requests topic").isEqualTo(before + 2);
    }

    @Test
    void aCloseFromTheClientIsAnsweredAndReleasesTheSocket() throws Exception {
        int before = gateway.openSockets();
        try (WsClient c = WsClient.connect(gateway.url(), token("acme", List.of("infer")))) {
            c.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            assertThat(c.next(WAIT, "accepted").path("type").asText()).isEqualTo("accepted");
            c.closeWith(1000, "done here");
            // The gateway answers the close frame with the client's code: the handshake completes
            // instead of ending in an abnormal close (1006) when the connection times out.
            assertThat(c.awaitClose(WAIT)).isEqualTo("1000 done here");
        }
        long deadline = System.currentTimeMillis() + WAIT.toMillis();
        while (gateway.openSockets() > before && System.currentTimeMillis() < deadline) {
            Thread.sleep(20);
        }
        assertThat(gateway.openSockets()).as("sockets once the closed one is gone").isEqualTo(before);
    }

    @Test
    void aMessageOverTheSizeLimitOrNotUtf8ClosesTheSocketWithItsCode() throws Exception {
        long before = requestsOnKafka(topics);
        String big = "{\"type\":\"generate\",\"prompt\":\"" + "x".repeat(70_000) + "\"}";
        try (WsClient whole = WsClient.connect(gateway.url(), token("acme", List.of("infer")));
             WsClient fragmented = WsClient.connect(gateway.url(), token("acme", List.of("infer")));
             WsClient notUtf8 = WsClient.connect(gateway.url(), token("acme", List.of("infer")))) {
            whole.send(big);
            assertThat(whole.awaitClose(WAIT)).startsWith("1009").contains("gateway.max.frame.bytes");
            fragmented.sendFragmented(big.substring(0, 40_000), big.substring(40_000));
            assertThat(fragmented.awaitClose(WAIT)).startsWith("1009").contains("gateway.max.frame.bytes");
            // An overlong encoding of '"': not UTF-8 (RFC 6455 fails the connection with 1007).
            byte[] bad = "{\"type\":\"generate\",\"prompt\":\"hi?}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            byte[] withOverlong = java.util.Arrays.copyOf(bad, bad.length + 1);
            withOverlong[bad.length - 2] = (byte) 0xC0;
            withOverlong[bad.length - 1] = (byte) 0xA2;
            withOverlong[bad.length] = '}';
            notUtf8.sendTextBytes(withOverlong);
            assertThat(notUtf8.awaitClose(WAIT)).startsWith("1007");
        }
        assertThat(requestsOnKafka(topics)).as("records on the requests topic").isEqualTo(before);
    }

    @Test
    void generateCancelAndAttachWithoutTheInferScopeAreForbidden() throws Exception {
        // A request of the same tenant that exists: without the scope, cancel and attach must say
        // forbidden, where an id not found would say not_found.
        String requestId;
        try (WsClient owner = WsClient.connect(gateway.url(), token("acme", List.of("infer")))) {
            owner.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            requestId = owner.next(WAIT, "accepted").path("request_id").asText();
        }
        long before = requestsOnKafka(topics);
        try (WsClient c = WsClient.connect(gateway.url(), token("acme", List.of("dlq:read", "ops:read")))) {
            for (String[] message : List.of(
                    new String[] {"g", "{\"type\":\"generate\",\"id\":\"g\",\"prompt\":\"hi\"}", "scope: generate"},
                    new String[] {"c", "{\"type\":\"cancel\",\"id\":\"c\",\"request_id\":\"" + requestId + "\"}",
                            "scope: cancel"},
                    new String[] {"a", "{\"type\":\"attach\",\"id\":\"a\",\"request_id\":\"" + requestId
                            + "\",\"after_seq\":-1}", "scope: attach"})) {
                c.send(message[1]);
                JsonNode error = c.next(WAIT, message[2]);
                assertThat(error.path("type").asText()).as(message[2]).isEqualTo("error");
                assertThat(error.path("code").asText()).as(message[2]).isEqualTo("forbidden");
                assertThat(error.path("message").asText()).as(message[2]).startsWith(message[2]);
                assertThat(error.path("id").asText()).as(message[2]).isEqualTo(message[0]);
                assertThat(error.path("retryable").asBoolean()).as(message[2]).isFalse();
            }
            // The socket survives all three, and no request was written for them.
            c.send("{\"type\":\"ping\"}");
            assertThat(c.next(WAIT, "pong").path("type").asText()).isEqualTo("pong");
        }
        assertThat(requestsOnKafka(topics)).as("records on the requests topic").isEqualTo(before);
    }

    @Test
    void aKeyWhoseRequestKafkaRefusedIsFreeForTheRetry() throws Exception {
        Topics t = topics("refused");
        org.apache.kafka.common.config.ConfigResource requests = new org.apache.kafka.common.config.ConfigResource(
                org.apache.kafka.common.config.ConfigResource.Type.TOPIC, t.requests());
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.MAX_INFLIGHT_PER_SOCKET, 1000); // no worker runs: accepted requests stay open
        try (Gateway refusing = Gateway.start(new GatewayConfig(g));
             Admin admin = Admin.create(Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers()));
             WsClient c = WsClient.connect(refusing.url(), refusing.authenticator().mint("u", "acme", List.of("infer"),
                     Duration.ofMinutes(5)))) {
            // A topic that takes no record of a request's size: the broker refuses each write.
            admin.incrementalAlterConfigs(Map.of(requests, List.of(new org.apache.kafka.clients.admin.AlterConfigOp(
                    new org.apache.kafka.clients.admin.ConfigEntry("max.message.bytes", "64"),
                    org.apache.kafka.clients.admin.AlterConfigOp.OpType.SET)))).all().get();
            // The broker applies a topic's new config shortly after the call returns: fresh keys
            // until one is refused.
            String refusedKey = null;
            for (int i = 0; i < 50 && refusedKey == null; i++) {
                String key = "refused-" + i;
                c.send("{\"type\":\"generate\",\"prompt\":\"hi\",\"idempotency_key\":\"" + key + "\"}");
                JsonNode answer = c.next(WAIT, "accepted or refused");
                if (answer.path("type").asText().equals("error")) {
                    assertThat(answer.path("code").asText()).isEqualTo("overloaded");
                    assertThat(answer.path("retryable").asBoolean()).isTrue();
                    refusedKey = key;
                } else {
                    Thread.sleep(100);
                }
            }
            assertThat(refusedKey).as("a request the broker refused").isNotNull();

            admin.incrementalAlterConfigs(Map.of(requests, List.of(new org.apache.kafka.clients.admin.AlterConfigOp(
                    new org.apache.kafka.clients.admin.ConfigEntry("max.message.bytes", ""),
                    org.apache.kafka.clients.admin.AlterConfigOp.OpType.DELETE)))).all().get();
            // The client retries with the same key, as the retryable error invites, until the
            // broker takes it again: the first acceptance is a new request, not a duplicate of the
            // refused one, whose stream would never come.
            JsonNode accepted = null;
            for (int i = 0; i < 50 && accepted == null; i++) {
                c.send("{\"type\":\"generate\",\"prompt\":\"hi\",\"idempotency_key\":\"" + refusedKey + "\"}");
                JsonNode answer = c.next(WAIT, "the retry's answer");
                if (answer.path("type").asText().equals("accepted")) {
                    accepted = answer;
                } else {
                    assertThat(answer.path("code").asText()).isEqualTo("overloaded");
                    Thread.sleep(100);
                }
            }
            assertThat(accepted).as("the retry accepted").isNotNull();
            assertThat(accepted.path("duplicate").asBoolean()).as("the retry is a new request").isFalse();
            // And from now on the key is the retry's: another submit is its duplicate.
            c.send("{\"type\":\"generate\",\"prompt\":\"hi\",\"idempotency_key\":\"" + refusedKey + "\"}");
            JsonNode again = c.next(WAIT, "a duplicate of the retry");
            assertThat(again.path("duplicate").asBoolean()).isTrue();
            assertThat(again.path("request_id").asText()).isEqualTo(accepted.path("request_id").asText());
        }
    }

    @Test
    void aRepeatIsAnsweredOnlyOnceItsFirstRequestIsOnKafkaAndNotAcceptedWhenKafkaRefusesIt() throws Exception {
        Topics t = topics("unacknowledged");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.MAX_INFLIGHT_PER_SOCKET, 1000); // no worker runs: accepted requests stay open
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers()))) {
            // No requests topic: a write waits for it (the producer's max.block.ms, 5 s), then is refused.
            admin.deleteTopics(List.of(t.requests())).all().get();
            try (Gateway first = Gateway.start(new GatewayConfig(g));
                 Gateway second = Gateway.start(new GatewayConfig(g));
                 WsClient a = WsClient.connect(first.url(), first.authenticator().mint("u", "acme", List.of("infer"),
                         Duration.ofMinutes(5)));
                 WsClient b = WsClient.connect(second.url(), second.authenticator().mint("u", "acme", List.of("infer"),
                         Duration.ofMinutes(5)))) {
                String token = second.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(5));
                java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();

                // A first request Kafka refuses: its repeats, on another gateway, by socket and by
                // HTTP, are not told it was accepted; they get a retryable error once it is refused.
                a.send("{\"type\":\"generate\",\"id\":\"one\",\"prompt\":\"hi\",\"idempotency_key\":\"refused\"}");
                Thread.sleep(500);
                b.send("{\"type\":\"generate\",\"id\":\"two\",\"prompt\":\"hi\",\"idempotency_key\":\"refused\"}");
                var posted = http.sendAsync(java.net.http.HttpRequest.newBuilder(java.net.URI.create(
                        "http://127.0.0.1:" + second.port() + "/v1/requests")).header("Authorization", "Bearer " + token)
                        .POST(java.net.http.HttpRequest.BodyPublishers.ofString(
                                "{\"prompt\":\"hi\",\"idempotency_key\":\"refused\"}")).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString());
                JsonNode refused = a.next(WAIT, "the first request's refusal");
                assertThat(refused.path("code").asText()).as("the first request's answer: %s", refused).isEqualTo("overloaded");
                JsonNode repeat = b.next(WAIT, "the repeat's answer");
                assertThat(repeat.path("type").asText()).as("the repeat's answer: %s", repeat).isEqualTo("error");
                assertThat(repeat.path("id").asText()).isEqualTo("two");
                assertThat(repeat.path("code").asText()).isEqualTo("overloaded");
                assertThat(repeat.path("retryable").asBoolean()).isTrue();
                assertThat(repeat.path("message").asText()).contains("idempotency_key");
                var postedAnswer = posted.get(30, java.util.concurrent.TimeUnit.SECONDS);
                assertThat(postedAnswer.statusCode()).as("the repeat by HTTP: %s", postedAnswer.body()).isEqualTo(503);
                assertThat(postedAnswer.body()).contains("overloaded");

                // A first request Kafka takes late: its repeat waits for it, then follows it.
                a.send("{\"type\":\"generate\",\"id\":\"one\",\"prompt\":\"hi\",\"idempotency_key\":\"late\"}");
                Thread.sleep(300);
                b.send("{\"type\":\"generate\",\"id\":\"two\",\"prompt\":\"hi\",\"idempotency_key\":\"late\"}");
                assertThat(b.poll(Duration.ofMillis(700))).as("an answer to the repeat before the first is on Kafka").isNull();
                TopicProvisioner.ensure(admin, t, TopicProvisioner.Layout.singleNode());
                JsonNode accepted = a.next(WAIT, "the first request's acceptance");
                assertThat(accepted.path("type").asText()).as("the first request's answer: %s", accepted).isEqualTo("accepted");
                JsonNode followed = b.next(WAIT, "the repeat's acceptance");
                assertThat(followed.path("type").asText()).as("the repeat's answer: %s", followed).isEqualTo("accepted");
                assertThat(followed.path("id").asText()).isEqualTo("two");
                assertThat(followed.path("duplicate").asBoolean()).isTrue();
                assertThat(followed.path("request_id").asText()).isEqualTo(accepted.path("request_id").asText());

                // The refused key is free: the client's retry is a new request; and a repeat of an
                // acknowledged request is answered at once.
                b.send("{\"type\":\"generate\",\"prompt\":\"hi\",\"idempotency_key\":\"refused\"}");
                JsonNode retry = b.next(WAIT, "the retry's answer");
                assertThat(retry.path("type").asText()).as("the retry's answer: %s", retry).isEqualTo("accepted");
                assertThat(retry.path("duplicate").asBoolean()).isFalse();
                a.send("{\"type\":\"generate\",\"prompt\":\"hi\",\"idempotency_key\":\"refused\"}");
                JsonNode again = a.next(WAIT, "a repeat of the retry");
                assertThat(again.path("duplicate").asBoolean()).as("a repeat of the retry: %s", again).isTrue();
                assertThat(again.path("request_id").asText()).isEqualTo(retry.path("request_id").asText());
            }
        }
    }

    @Test
    void limitsPerSocketAndPerTenantAnswerRateLimited() throws Exception {
        Topics t = topics("limits");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.MAX_INFLIGHT_PER_SOCKET, 1);
        g.put(GatewayConfig.TENANT_REQUESTS_PER_SECOND, 2.0);
        // No worker runs: accepted requests stay unfinished, which is what the in-flight limit counts.
        try (Gateway limited = Gateway.start(new GatewayConfig(g));
             WsClient a = WsClient.connect(limited.url(), limited.authenticator().mint("u", "acme", List.of("infer"),
                     Duration.ofMinutes(1)));
             WsClient b = WsClient.connect(limited.url(), limited.authenticator().mint("u", "acme", List.of("infer"),
                     Duration.ofMinutes(1)))) {
            a.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            JsonNode first = a.next(WAIT, "accepted");
            assertThat(first.path("type").asText()).isEqualTo("accepted");
            a.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            JsonNode inFlight = a.next(WAIT, "in-flight limit");
            assertThat(inFlight.path("code").asText()).isEqualTo("rate_limited");
            assertThat(inFlight.path("message").asText()).startsWith("in_flight");
            assertThat(inFlight.path("retryable").asBoolean()).isTrue();
            // An attach would follow one more stream (here the same request again): the same limit.
            a.send("{\"type\":\"attach\",\"id\":\"att\",\"request_id\":\"" + first.path("request_id").asText()
                    + "\",\"after_seq\":-1}");
            JsonNode attachLimited = a.next(WAIT, "in-flight limit on attach");
            assertThat(attachLimited.path("code").asText()).isEqualTo("rate_limited");
            assertThat(attachLimited.path("message").asText()).startsWith("in_flight");
            assertThat(attachLimited.path("id").asText()).isEqualTo("att");

            // The tenant's bucket holds 2 per second and socket a spent one: of three more sockets'
            // requests in the same instant, at least one is refused.
            List<String> codes = new java.util.ArrayList<>();
            List<String> messages = new java.util.ArrayList<>();
            b.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            JsonNode fb = b.next(WAIT, "b");
            codes.add(fb.path("code").asText(fb.path("type").asText()));
            messages.add(fb.path("message").asText());
            for (int i = 0; i < 2; i++) {
                try (WsClient c = WsClient.connect(limited.url(), limited.authenticator().mint("u", "acme", List.of("infer"),
                        Duration.ofMinutes(1)))) {
                    c.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
                    JsonNode f = c.next(WAIT, "request of the tenant");
                    codes.add(f.path("code").asText(f.path("type").asText()));
                    messages.add(f.path("message").asText());
                }
            }
            assertThat(codes).as("outcomes %s", messages).contains("rate_limited");
            assertThat(messages).anyMatch(m -> m.startsWith("rate"));
        }
    }

    /**
     * A client that sends its messages back to back, with the socket's read and write buffers at
     * their smallest: messages straddle reads, accepted frames fill writes, and every message is
     * still read once and answered once.
     */
    @Test
    void pipelinedMessagesAreEachAnsweredOnceWhateverTheSocketBuffers() throws Exception {
        Topics t = topics("pipelined");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.SOCKET_READ_BUFFER_BYTES, 1024);
        g.put(GatewayConfig.SOCKET_WRITE_BUFFER_BYTES, 1024);
        g.put(GatewayConfig.MAX_INFLIGHT_PER_SOCKET, 1000);
        g.put(GatewayConfig.TENANT_REQUESTS_PER_SECOND, 1e6);
        int n = 300;
        try (Gateway small = Gateway.start(new GatewayConfig(g));
             WsClient c = WsClient.connect(small.url(), small.authenticator().mint("u", "acme", List.of("infer"),
                     Duration.ofMinutes(1)))) {
            for (int i = 0; i < n; i++) {
                // About 150 bytes each: a 1 KiB read ends inside a message six times in seven.
                c.send("{\"type\":\"generate\",\"id\":\"m" + i + "\",\"prompt\":\"" + "p".repeat(80 + i % 7) + "\"}");
            }
            java.util.Set<String> answered = new java.util.HashSet<>();
            for (int i = 0; i < n; i++) {
                JsonNode a = c.next(WAIT, "accepted " + i + " of " + n);
                assertThat(a.path("type").asText()).as("%s", a).isEqualTo("accepted");
                assertThat(answered.add(a.path("id").asText())).as("answered once: %s", a).isTrue();
            }
            assertThat(answered).hasSize(n);
        }
        assertThat(requestsOnKafka(t)).as("records on the requests topic").isEqualTo(n);
    }

    @Test
    void aFinishedRequestNoLongerCountsAgainstTheSocketsInFlightLimit() throws Exception {
        Topics t = topics("inflight");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.MAX_INFLIGHT_PER_SOCKET, 1);
        try (Gateway limited = Gateway.start(new GatewayConfig(g));
             WsClient a = WsClient.connect(limited.url(), limited.authenticator().mint("u", "acme", List.of("infer"),
                     Duration.ofMinutes(1)));
             var producer = new org.apache.kafka.clients.producer.KafkaProducer<String, org.apache.avro.specific.SpecificRecord>(
                     Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers(), "acks", "all"),
                     new org.apache.kafka.common.serialization.StringSerializer(), io.sluice.schemas.AvroSerde.serializer())) {
            a.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            String first = a.next(WAIT, "accepted").path("request_id").asText();
            a.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            assertThat(a.next(WAIT, "in-flight limit").path("code").asText()).isEqualTo("rate_limited");

            // No worker runs: the request's outcome is written as a worker writes it, to every tokens
            // partition so the one its events go to has it.
            int partitions = TopicProvisioner.Layout.singleNode().partitions();
            for (int p = 0; p < partitions; p++) {
                producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(t.tokens(), p, first,
                        io.sluice.schemas.InferenceResult.newBuilder().setRequestId(first)
                                .setFinishReason(io.sluice.schemas.FinishReason.length).setCompletionTokens(0).setFence(1)
                                .setCompletedAt(java.time.Instant.now()).build())).get();
            }
            JsonNode done = a.next(WAIT, "done");
            assertThat(done.path("type").asText()).isEqualTo("done");
            assertThat(done.path("request_id").asText()).isEqualTo(first);

            a.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            JsonNode next = a.next(WAIT, "accepted after the first finished");
            assertThat(next.path("type").asText()).as("%s", next).isEqualTo("accepted");
            assertThat(next.path("request_id").asText()).isNotEqualTo(first);
        }
    }

    @Test
    void originsAndConnectionsPerTenantAreCheckedAtTheHandshake() throws Exception {
        Topics t = topics("handshake");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.ALLOWED_ORIGINS, "https://app.example");
        g.put(GatewayConfig.MAX_CONNECTIONS_PER_TENANT, 2);
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String tok = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            assertThat(Handshake.status(gw.url(), tok, "https://evil.example")).isEqualTo(403);
            try (WsClient ok = WsClient.connect(gw.url(), tok, "https://app.example");
                 WsClient second = WsClient.connect(gw.url(), tok)) {
                assertThat(ok.isOpen()).isTrue();
                assertThat(Handshake.status(gw.url(), tok, null)).as("third socket of the tenant").isEqualTo(429);
                String other = gw.authenticator().mint("u", "globex", List.of("infer"), Duration.ofMinutes(1));
                try (WsClient otherTenant = WsClient.connect(gw.url(), other)) {
                    assertThat(otherTenant.isOpen()).isTrue();
                }
            }
            long deadline = System.currentTimeMillis() + 5000;
            while (gw.openSockets() > 0 && System.currentTimeMillis() < deadline) {
                Thread.sleep(20);
            }
            try (WsClient again = WsClient.connect(gw.url(), tok)) {
                assertThat(again.isOpen()).as("a slot is free again once sockets close").isTrue();
            }
        }
    }

    @Test
    void aTenantsSlotsAreHeldBySocketsAndEventStreamsAndAFailedHandshakeGivesItsSlotBack() throws Exception {
        Topics t = topics("slots");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.MAX_CONNECTIONS_PER_TENANT, 2);
        g.put(GatewayConfig.PING_INTERVAL_MS, 200L);
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String tok = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            // Jetty refuses this offer after the token was read and the endpoint made: no socket opens.
            for (int i = 0; i < 3; i++) {
                assertThat(Handshake.raw(gw.port(), tok, "permessage-deflate; foo=bar")).contains(" 400 ");
                // The slot is given back once the 400 is written, which the client may read first.
                long given = System.nanoTime() + Duration.ofSeconds(5).toNanos();
                while (gw.openSockets() > 0 && System.nanoTime() < given) {
                    Thread.sleep(10);
                }
                assertThat(gw.openSockets()).as("sockets held after a refused handshake").isZero();
            }
            try (WsClient a = WsClient.connect(gw.url(), tok)) {
                assertThat(a.isOpen()).as("a slot after three failed handshakes").isTrue();
                // No worker runs here: the request stays pending and its event stream open.
                a.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
                String id = a.next(WAIT, "accepted").path("request_id").asText();
                var http = java.net.http.HttpClient.newHttpClient();
                var events = java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + gw.port()
                        + "/v1/requests/" + id + "/events")).header("Authorization", "Bearer " + tok).build();
                var stream = http.send(events, java.net.http.HttpResponse.BodyHandlers.ofInputStream());
                assertThat(stream.statusCode()).isEqualTo(200);
                // A socket and an event stream: the tenant's two slots.
                assertThat(Handshake.status(gw.url(), tok, null)).as("a socket past the limit").isEqualTo(429);
                var refused = http.send(events, java.net.http.HttpResponse.BodyHandlers.ofString());
                assertThat(refused.statusCode()).as("an event stream past the limit").isEqualTo(429);
                assertThat(refused.body()).contains("gateway.max.connections.per.tenant");
                // The stream's client goes away: the next keep-alive finds it, and its slot is free.
                stream.body().close();
                awaitEventStreamsReleased(gw);
                try (WsClient b = WsClient.connect(gw.url(), tok)) {
                    assertThat(b.isOpen()).as("the stream's slot, given back").isTrue();
                }
            }
        }
    }

    @Test
    void shutdownDrainsThenClosesSocketsTellingClientsToAttachElsewhere() throws Exception {
        Topics t = topics("drain");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.DRAIN_TIMEOUT_MS, 300L);
        Gateway gw = Gateway.start(new GatewayConfig(g));
        try (WsClient c = WsClient.connect(gw.url(), gw.authenticator().mint("u", "acme", List.of("infer"),
                Duration.ofMinutes(1)))) {
            c.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            String id = c.next(WAIT, "accepted").path("request_id").asText();
            // The same request followed as Server-Sent Events: the stream must end, not hold the shutdown.
            var events = java.net.http.HttpClient.newHttpClient().sendAsync(java.net.http.HttpRequest.newBuilder(
                    java.net.URI.create("http://127.0.0.1:" + gw.port() + "/v1/requests/" + id + "/events"))
                    .header("Authorization", "Bearer " + gw.authenticator().mint("u", "acme", List.of("infer"),
                            Duration.ofMinutes(1))).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            long opened = System.nanoTime() + WAIT.toNanos();
            while (gw.openEventStreams() == 0) {
                assertThat(System.nanoTime()).as("event stream open within %s", WAIT).isLessThan(opened);
                Thread.sleep(10);
            }
            long t0 = System.nanoTime();
            gw.close();
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).as("shutdown with a stream open").isLessThan(Duration.ofSeconds(5));
            String close = c.awaitClose(WAIT);
            assertThat(close).startsWith("1001").contains("attach");
            assertThat(events.get(WAIT.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS).statusCode())
                    .as("event stream ended by the shutdown").isEqualTo(200);
        }
    }

    @Test
    void aDrainingGatewayTakesNoNewRequestOnAnyTransport() throws Exception {
        Topics t = topics("draining");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.DRAIN_TIMEOUT_MS, 4_000L);
        Gateway gw = Gateway.start(new GatewayConfig(g));
        String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
        java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
        String base = "http://127.0.0.1:" + gw.port() + "/v1/requests";
        Thread closing = new Thread(() -> {
            try {
                gw.close();
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        try (WsClient c = WsClient.connect(gw.url(), token)) {
            // A request that never finishes (no worker runs): the drain waits for it to its timeout.
            c.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
            String id = c.next(WAIT, "accepted").path("request_id").asText();
            long before = requestsOnKafka(t);
            closing.start();
            long draining = System.nanoTime() + WAIT.toNanos();
            while (Boolean.TRUE.equals(gw.readiness().report().get("accepting"))) {
                assertThat(System.nanoTime()).as("draining within %s", WAIT).isLessThan(draining);
                Thread.sleep(10);
            }
            c.send("{\"type\":\"generate\",\"id\":\"late\",\"prompt\":\"hi\"}");
            JsonNode refused = c.next(WAIT, "a generate while draining");
            assertThat(refused.path("code").asText()).isEqualTo("overloaded");
            assertThat(refused.path("message").asText()).contains("shutting down");
            assertThat(refused.path("retryable").asBoolean()).isTrue();
            assertThat(refused.path("id").asText()).isEqualTo("late");

            var post = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(base))
                    .header("Authorization", "Bearer " + token).POST(java.net.http.HttpRequest.BodyPublishers.ofString(
                            "{\"prompt\":\"hi\"}")).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            assertThat(post.statusCode()).as("POST while draining").isEqualTo(503);
            assertThat(post.body()).contains("shutting down");
            var events = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(base + "/" + id + "/events"))
                    .header("Authorization", "Bearer " + token).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            assertThat(events.statusCode()).as("a new event stream while draining").isEqualTo(503);
            // A status read is still answered.
            var status = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(base + "/" + id))
                    .header("Authorization", "Bearer " + token).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            assertThat(status.statusCode()).isEqualTo(200);
            assertThat(requestsOnKafka(t)).as("records on the requests topic while draining").isEqualTo(before);
        } finally {
            closing.join(WAIT.toMillis());
        }
    }

    @ParameterizedTest(name = "gateway.ping.interval.ms={0}")
    @org.junit.jupiter.params.provider.ValueSource(longs = {100, 0})
    void anEventStreamWhoseClientWentAwayIsReleasedByTheNextKeepAliveOrJettysNotice(long pingMs) throws Exception {
        Topics t = topics("sse-gone");
        Map<String, Object> g = config(t);
        // With pings off nothing is written to the stream: only the connection's idle timeout finds the client gone.
        g.put(GatewayConfig.PING_INTERVAL_MS, pingMs);
        g.put(GatewayConfig.IDLE_TIMEOUT_MS, 1000L);
        g.put(GatewayConfig.DRAIN_TIMEOUT_MS, 300L);
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            String id;
            try (WsClient c = WsClient.connect(gw.url(), token)) {
                c.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
                id = c.next(WAIT, "accepted").path("request_id").asText();
            }
            // A pending request (no worker runs) followed as events by a client that then vanishes.
            try (java.net.Socket raw = new java.net.Socket("127.0.0.1", gw.port())) {
                raw.setSoTimeout(10_000);
                raw.getOutputStream().write(("GET /v1/requests/" + id + "/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        + "Authorization: Bearer " + token + "\r\n\r\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
                java.io.InputStream in = raw.getInputStream();
                StringBuilder head = new StringBuilder();
                while (!head.toString().endsWith("\r\n\r\n")) {
                    head.append((char) in.read());
                }
                assertThat(head.toString()).startsWith("HTTP/1.1 200");
                assertThat(gw.openEventStreams()).isEqualTo(1);
                raw.setSoLinger(true, 0); // a reset, as from a client that crashed
            }
            awaitEventStreamsReleased(gw);
        }
    }

    @Test
    void idleSocketsArePingedAndOneWhoseClientNeverAnswersIsClosed() throws Exception {
        Topics t = topics("keepalive");
        Map<String, Object> g = config(t);
        g.put(GatewayConfig.PING_INTERVAL_MS, 200L);
        g.put(GatewayConfig.IDLE_TIMEOUT_MS, 1500L);
        g.put(GatewayConfig.DRAIN_TIMEOUT_MS, 300L);
        Gateway gw = Gateway.start(new GatewayConfig(g));
        try {
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            // A client whose own idle timeout (1 s) is far shorter than its silence (3 s): the gateway's
            // pings keep it open, and its automatic pongs keep the gateway from taking it for gone.
            org.eclipse.jetty.websocket.client.WebSocketClient impatient = new org.eclipse.jetty.websocket.client.WebSocketClient();
            impatient.setIdleTimeout(Duration.ofSeconds(1));
            try (WsClient c = WsClient.connect(impatient, gw.url(), token, null)) {
                Thread.sleep(3_000);
                assertThat(c.isOpen()).as("socket open after 3 s of silence from both sides' applications").isTrue();
                c.send("{\"type\":\"ping\"}");
                assertThat(c.next(WAIT, "pong").path("type").asText()).isEqualTo("pong");
            }
            // A peer that completed the handshake and then reads nothing and answers no ping: the
            // pings alone must not keep it open (Jetty counts them as traffic), the missing pongs close it.
            try (java.net.Socket raw = new java.net.Socket("127.0.0.1", gw.port())) {
                raw.setSoTimeout(10_000);
                assertThat(Handshake.upgrade(raw, token)).startsWith("HTTP/1.1 101");
                java.io.DataInputStream in = new java.io.DataInputStream(
                        new java.io.BufferedInputStream(raw.getInputStream()));
                Thread.sleep(2_500); // past the idle timeout, answering nothing
                int pings = 0;
                long deadline = System.nanoTime() + WAIT.toNanos();
                while (true) {
                    assertThat(System.nanoTime()).as("closed within %s, %d pings so far", WAIT, pings).isLessThan(deadline);
                    int opcode = in.readUnsignedByte() & 0x0F;
                    int length = in.readUnsignedByte() & 0x7F; // server frames are unmasked; these are short
                    byte[] payload = in.readNBytes(length);
                    if (opcode == 0x9) {
                        pings++;
                    } else if (opcode == 0x8) {
                        int code = ((payload[0] & 0xFF) << 8) | (payload[1] & 0xFF);
                        String reason = new String(payload, 2, payload.length - 2, java.nio.charset.StandardCharsets.UTF_8);
                        assertThat(code).isEqualTo(1001);
                        assertThat(reason).contains("gateway.idle.timeout.ms");
                        break;
                    }
                }
                assertThat(pings).as("pings before the close").isGreaterThanOrEqualTo(2);
            }
            // An event stream of a request that makes no progress (no worker runs here) gets comments.
            java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
            String base = "http://127.0.0.1:" + gw.port() + "/v1/requests";
            var submitted = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(base))
                    .header("Authorization", "Bearer " + token)
                    .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"prompt\":\"hi\"}")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            assertThat(submitted.statusCode()).isEqualTo(202);
            String id = WsClient.JSON.readTree(submitted.body()).path("request_id").asText();
            var events = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(base + "/" + id + "/events"))
                    .header("Authorization", "Bearer " + token).build(), java.net.http.HttpResponse.BodyHandlers.ofLines());
            assertThat(events.statusCode()).isEqualTo(200);
            long comments;
            try (java.util.stream.Stream<String> lines = events.body()) {
                comments = java.util.concurrent.CompletableFuture.supplyAsync(() -> lines.limit(3).filter(":"::equals).count())
                        .get(WAIT.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
            }
            assertThat(comments).as("keep-alive comments on a silent event stream").isEqualTo(2);
        } finally {
            gw.close();
        }
    }
}
