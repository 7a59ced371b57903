package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

/**
 * How long the gateway holds what a client opened: a token's lifetime, an unanswered close, a
 * POST waiting for Kafka, and what a browser page of an allowed origin needs (CORS).
 */
class GatewayLifetimeTest {
    static final Duration WAIT = GatewayProtocolTest.WAIT;
    final HttpClient http = HttpClient.newHttpClient();

    @Test
    void aSocketAndAnEventStreamEndWhenTheirTokenExpiresAndTheRequestKeepsRunning() throws Exception {
        Topics t = GatewayProtocolTest.topics("expiry");
        Map<String, Object> g = GatewayProtocolTest.config(t);
        g.put(GatewayConfig.JWT_CLOCK_SKEW_MS, 0L);
        g.put(GatewayConfig.PING_INTERVAL_MS, 200L);
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String lasting = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(5));
            // exp counts whole seconds: this token expires 2 to 3 s from now.
            String brief = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofSeconds(3));
            String id;
            try (WsClient c = WsClient.connect(gw.url(), brief)) {
                c.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
                id = c.next(WAIT, "accepted").path("request_id").asText();
                var events = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gw.port() + "/v1/requests/"
                        + id + "/events")).header("Authorization", "Bearer " + brief).timeout(WAIT).build(),
                        HttpResponse.BodyHandlers.ofString());
                // No worker runs here: only the token's expiry ends this stream.
                assertThat(events.statusCode()).isEqualTo(200);
                assertThat(events.body()).doesNotContain("event: done");
                assertThat(c.awaitClose(WAIT)).startsWith("1008 ").contains("token expired");
            }
            HttpResponse<String> expired = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gw.port()
                    + "/v1/requests/" + id)).header("Authorization", "Bearer " + brief).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(expired.statusCode()).as("the expired token on a new request").isEqualTo(401);
            assertThat(controlRecords(t)).as("cancels sent for a socket closed over its token").isZero();
            // A fresh token opens a socket again.
            try (WsClient again = WsClient.connect(gw.url(), lasting)) {
                again.send("{\"type\":\"generate\",\"prompt\":\"hi\"}");
                again.next(WAIT, "accepted");
            }
            // A socket that closes for any other reason cancels what it followed: the count above could be 1.
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (controlRecords(t) == 0 && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            assertThat(controlRecords(t)).as("the cancel of a socket that went away").isEqualTo(1);
        }
    }

    @Test
    void aClientTooSlowToReadIsDroppedWithoutWaitingForItsCloseReply() throws Exception {
        Topics t = GatewayProtocolTest.topics("closegrace");
        Map<String, Object> g = GatewayProtocolTest.config(t);
        g.put(GatewayConfig.PING_INTERVAL_MS, 200L);
        g.put(GatewayConfig.IDLE_TIMEOUT_MS, 10_000L);
        g.put(GatewayConfig.OUTBOUND_QUEUE_BYTES, 1024);
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            try (java.net.Socket raw = new java.net.Socket()) {
                raw.setReceiveBufferSize(2048);
                raw.connect(new java.net.InetSocketAddress("127.0.0.1", gw.port()));
                raw.setSoTimeout(20_000);
                assertThat(Handshake.upgrade(raw, token)).startsWith("HTTP/1.1 101");
                java.io.OutputStream out = new java.io.BufferedOutputStream(raw.getOutputStream(), 1 << 16);
                // Pings, each answered with a pong frame the client never reads: once the TCP buffers
                // are full the gateway's queue (1 KiB here) overflows and it closes the socket as too
                // slow. Its close cannot be written behind the unread pongs, nor its reply come: the
                // connection must go at once, not hold the tenant's slot until a timeout.
                byte[] ping = "{\"type\":\"ping\"}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
                byte[] frame = new byte[2 + 4 + ping.length];
                frame[0] = (byte) 0x81;
                frame[1] = (byte) (0x80 | ping.length);
                System.arraycopy(ping, 0, frame, 6, ping.length); // mask 0: the payload as it is
                try {
                    for (int i = 0; i < 400_000 && gw.openSockets() > 0; i++) {
                        out.write(frame);
                    }
                    out.flush();
                } catch (java.io.IOException closedUnderUs) {
                    // The gateway dropped the connection while pings were still going out.
                }
                long sent = System.nanoTime();
                while (gw.openSockets() > 0 && System.nanoTime() - sent < WAIT.toNanos()) {
                    Thread.sleep(20);
                }
                long heldMs = (System.nanoTime() - sent) / 1_000_000;
                // Not the idle timeout (10 s here), which a close stuck behind unread frames could wait out.
                assertThat(heldMs).as("ms the socket was held after the client stopped reading").isLessThan(4000);
            }
        }
    }

    @Test
    void aPostThatWaitsForKafkaIsAnsweredPastTheHttpIdleTimeout() throws Exception {
        // The connection's idle timeout is for connections with nothing under way, not for a
        // request being answered: the POST gets its JSON 503, not a dropped connection.
        Topics t = GatewayProtocolTest.topics("slowacks");
        // No requests topic (and no auto-creation): the gateway's producer waits for its metadata,
        // up to max.block.ms (5 s), before Kafka's refusal; the POST waits that long.
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers()))) {
            admin.deleteTopics(List.of(t.requests())).all().get();
        }
        Map<String, Object> g = GatewayProtocolTest.config(t);
        g.put(GatewayConfig.HTTP_IDLE_TIMEOUT_MS, 1000L);
        g.put(GatewayConfig.KAFKA_DELIVERY_TIMEOUT_MS, 3000L);
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            long t0 = System.nanoTime();
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gw.port()
                    + "/v1/requests")).header("Authorization", "Bearer " + token)
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"hi\"}")).timeout(WAIT).build(),
                    HttpResponse.BodyHandlers.ofString());
            long waitedMs = (System.nanoTime() - t0) / 1_000_000;
            assertThat(waitedMs).as("the POST waited past the HTTP idle timeout; %d %s", r.statusCode(), r.body())
                    .isGreaterThanOrEqualTo(2500);
            assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
            assertThat(r.headers().firstValue("content-type").orElse("")).startsWith("application/json");
            assertThat(WsClient.JSON.readTree(r.body()).path("code").asText()).isEqualTo("overloaded");
            assertThat(WsClient.JSON.readTree(r.body()).path("retryable").asBoolean()).isTrue();
            // The connection idles by the plain timeout again once answered: a keep-alive request works.
            HttpResponse<String> status = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gw.port()
                    + "/healthz")).timeout(WAIT).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(status.statusCode()).isEqualTo(200);
        }
    }

    @Test
    void pagesOfAnAllowedOriginGetCorsAndOthersAreRefused() throws Exception {
        Topics t = GatewayProtocolTest.topics("cors");
        Map<String, Object> g = GatewayProtocolTest.config(t);
        g.put(GatewayConfig.ALLOWED_ORIGINS, "https://app.example");
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            String base = "http://127.0.0.1:" + gw.port() + "/v1/requests";
            // The preflight a browser sends before a JSON POST with a token: no token of its own.
            HttpResponse<String> preflight = http.send(HttpRequest.newBuilder(URI.create(base))
                    .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).header("Origin", "https://app.example")
                    .header("Access-Control-Request-Method", "POST")
                    .header("Access-Control-Request-Headers", "authorization,content-type").build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(preflight.statusCode()).isBetween(200, 204);
            assertThat(preflight.headers().firstValue("access-control-allow-origin")).hasValue("https://app.example");
            assertThat(preflight.headers().firstValue("access-control-allow-methods").orElse("")).contains("POST");
            assertThat(preflight.headers().firstValue("access-control-allow-headers").orElse("").toLowerCase())
                    .contains("authorization").contains("content-type");
            HttpResponse<String> posted = http.send(HttpRequest.newBuilder(URI.create(base)).header("Origin", "https://app.example")
                    .header("Authorization", "Bearer " + token).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"hi\"}")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(posted.statusCode()).isEqualTo(202);
            assertThat(posted.headers().firstValue("access-control-allow-origin")).hasValue("https://app.example");
            // An event stream opened as EventSource opens it: the token in the query, no preflight.
            String id = WsClient.JSON.readTree(posted.body()).path("request_id").asText();
            var stream = http.send(HttpRequest.newBuilder(URI.create(base + "/" + id + "/events?access_token=" + token))
                    .header("Origin", "https://app.example").build(), HttpResponse.BodyHandlers.ofInputStream());
            assertThat(stream.statusCode()).isEqualTo(200);
            assertThat(stream.headers().firstValue("access-control-allow-origin")).hasValue("https://app.example");
            stream.body().close();
            // Another origin: no CORS grant, and the routes refuse it.
            HttpResponse<String> foreign = http.send(HttpRequest.newBuilder(URI.create(base))
                    .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).header("Origin", "https://evil.example")
                    .header("Access-Control-Request-Method", "POST").build(), HttpResponse.BodyHandlers.ofString());
            assertThat(foreign.headers().firstValue("access-control-allow-origin")).isEmpty();
            HttpResponse<String> foreignPost = http.send(HttpRequest.newBuilder(URI.create(base))
                    .header("Origin", "https://evil.example").header("Authorization", "Bearer " + token)
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"hi\"}")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(foreignPost.statusCode()).isEqualTo(403);
            assertThat(foreignPost.headers().firstValue("access-control-allow-origin")).isEmpty();
            assertThat(Handshake.status(gw.url(), token, "https://evil.example")).as("the socket's handshake").isEqualTo(403);
        }
    }

    /** Records on the control topic (cancels) so far. */
    private static long controlRecords(Topics t) throws Exception {
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers()))) {
            var partitions = admin.describeTopics(List.of(t.control())).allTopicNames().get().get(t.control()).partitions();
            Map<TopicPartition, OffsetSpec> ends = new java.util.HashMap<>();
            partitions.forEach(p -> ends.put(new TopicPartition(t.control(), p.partition()), OffsetSpec.latest()));
            return admin.listOffsets(ends).all().get().values().stream().mapToLong(o -> o.offset()).sum();
        }
    }
}
