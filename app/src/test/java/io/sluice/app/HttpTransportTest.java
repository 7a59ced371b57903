package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Clients without WebSocket: submit over HTTP, poll the result, or follow Server-Sent Events. */
class HttpTransportTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static InProcessPipeline pipeline;
    static HttpClient http;
    static String base;

    @BeforeAll
    static void start() throws Exception {
        pipeline = new InProcessPipeline("http");
        http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        base = "http://127.0.0.1:" + pipeline.gateway.port();
    }

    @AfterAll
    static void stop() throws Exception {
        pipeline.close();
    }

    static HttpResponse<String> post(String token, String body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base + "/v1/requests")).header("Authorization", "Bearer " + token)
                .POST(HttpRequest.BodyPublishers.ofString(body)).timeout(Duration.ofSeconds(30)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> get(String token, String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Authorization", "Bearer " + token)
                .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** Reads an SSE stream to its end: (id, event, data) triples. */
    static List<String[]> events(String token, String requestId, String lastEventId) throws Exception {
        return eventsAt(token, "/v1/requests/" + requestId + "/events", lastEventId);
    }

    /** As {@link #events}, from a path of one's own (a query). */
    static List<String[]> eventsAt(String token, String path, String lastEventId) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                .header("Authorization", "Bearer " + token).timeout(Duration.ofSeconds(60));
        if (lastEventId != null) {
            b.header("Last-Event-ID", lastEventId);
        }
        HttpResponse<java.io.InputStream> r = http.send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("content-type").orElse("")).startsWith("text/event-stream");
        List<String[]> out = new ArrayList<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            String id = null;
            String event = null;
            String line;
            while ((line = in.readLine()) != null) {
                if (line.startsWith("id: ")) {
                    id = line.substring(4);
                } else if (line.startsWith("event: ")) {
                    event = line.substring(7);
                } else if (line.startsWith("data: ")) {
                    out.add(new String[] {id, event, line.substring(6)});
                    id = null;
                }
            }
        }
        return out;
    }

    @Test
    void postThenFollowTheEventsThenGetTheResult() throws Exception {
        String token = pipeline.token("acme");
        HttpResponse<String> accepted = post(token, "{\"prompt\":\"The lock keeper\",\"max_tokens\":15}");
        assertThat(accepted.statusCode()).isEqualTo(202);
        String id = JSON.readTree(accepted.body()).path("request_id").asText();

        List<String[]> events = events(token, id, null);
        StringBuilder text = new StringBuilder();
        int expectedSeq = 0;
        for (String[] e : events.subList(0, events.size() - 1)) {
            assertThat(e[1]).isEqualTo("token");
            JsonNode data = JSON.readTree(e[2]);
            assertThat(data.path("seq").asInt()).isEqualTo(expectedSeq);
            assertThat(e[0]).isEqualTo(String.valueOf(expectedSeq));
            expectedSeq = (data.has("seq_end") ? data.path("seq_end").asInt() : data.path("seq").asInt()) + 1;
            text.append(data.path("text").asText());
        }
        String[] last = events.get(events.size() - 1);
        assertThat(last[1]).isEqualTo("done");
        assertThat(last[0]).as("the terminal event's id").isEqualTo("end");
        assertThat(JSON.readTree(last[2]).path("usage").path("completion_tokens").asInt()).isEqualTo(expectedSeq);

        JsonNode status = JSON.readTree(get(token, "/v1/requests/" + id).body());
        assertThat(status.path("status").asText()).isEqualTo("done");
        assertThat(status.path("text").asText()).isEqualTo(text.toString());

        List<String[]> resumed = events(token, id, "9");
        assertThat(JSON.readTree(resumed.get(0)[2]).path("seq").asInt()).as("Last-Event-ID resumes after it").isEqualTo(10);
        List<String[]> fromQuery = eventsAt(token, "/v1/requests/" + id + "/events?after_seq=11", null);
        assertThat(JSON.readTree(fromQuery.get(0)[2]).path("seq").asInt()).as("after_seq resumes after it").isEqualTo(12);
        List<String[]> headerWins = eventsAt(token, "/v1/requests/" + id + "/events?after_seq=11", "4");
        assertThat(JSON.readTree(headerWins.get(0)[2]).path("seq").asInt()).as("Last-Event-ID over after_seq").isEqualTo(5);
        assertThat(resumed.get(resumed.size() - 1)[1]).isEqualTo("done");
        // The reconnect an EventSource makes after the stream ended, with the terminal event's id:
        // 204 stops it, where a 200 would replay done to it again and again.
        HttpResponse<String> after = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/requests/" + id + "/events"))
                .header("Authorization", "Bearer " + token).header("Last-Event-ID", "end").timeout(Duration.ofSeconds(30))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(after.statusCode()).isEqualTo(204);
        assertThat(after.body()).isEmpty();
        // Still another tenant's request looks like none.
        HttpResponse<String> foreign = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/requests/" + id + "/events"))
                .header("Authorization", "Bearer " + pipeline.token("globex")).header("Last-Event-ID", "end")
                .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(foreign.statusCode()).isEqualTo(404);
    }

    @Test
    void theSameAuthLimitsAndErrorsAsTheSocket() throws Exception {
        String token = pipeline.token("acme");
        HttpResponse<String> noToken = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/requests"))
                .POST(HttpRequest.BodyPublishers.ofString("{}")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(noToken.statusCode()).isEqualTo(401);
        HttpResponse<String> foreignPage = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/requests"))
                .header("Authorization", "Bearer " + token).header("Origin", "https://elsewhere.example")
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"hi\"}")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(foreignPage.statusCode()).as("a page of an origin not allowed").isEqualTo(403);
        assertThat(JSON.readTree(foreignPage.body()).path("message").asText()).startsWith("origin");
        assertThat(JSON.readTree(noToken.body()).path("code").asText()).isEqualTo("unauthorized");

        HttpResponse<String> bad = post(token, "{\"prompt\":\"hi\",\"max_tokens\":-3}");
        assertThat(bad.statusCode()).isEqualTo(400);
        assertThat(JSON.readTree(bad.body()).path("code").asText()).isEqualTo("invalid_request");
        assertThat(JSON.readTree(bad.body()).path("message").asText()).startsWith("max_tokens");

        HttpResponse<String> garbage = post(token, "{\"prompt\":");
        assertThat(garbage.statusCode()).isEqualTo(400);
        assertThat(JSON.readTree(garbage.body()).path("message").asText()).startsWith("body");

        String id = JSON.readTree(post(token, "{\"prompt\":\"The river\",\"max_tokens\":3}").body()).path("request_id").asText();
        String other = pipeline.token("globex");
        assertThat(get(other, "/v1/requests/" + id).statusCode()).as("another tenant's request").isEqualTo(404);
        // The same tenant without the infer scope: forbidden for each route, as on the socket.
        String noInfer = pipeline.gateway.authenticator().mint("user-acme", "acme", List.of("dlq:read", "ops:read"),
                Duration.ofMinutes(5));
        for (HttpResponse<String> r : List.of(post(noInfer, "{\"prompt\":\"hi\"}"), get(noInfer, "/v1/requests/" + id),
                get(noInfer, "/v1/requests/" + id + "/events"))) {
            assertThat(r.statusCode()).as(r.uri().getPath()).isEqualTo(403);
            JsonNode error = JSON.readTree(r.body());
            assertThat(error.path("code").asText()).as(r.uri().getPath()).isEqualTo("forbidden");
            assertThat(error.path("message").asText()).as(r.uri().getPath()).startsWith("scope");
        }
        assertThat(get(token, "/v1/requests/nope").statusCode()).isEqualTo(404);
        for (String last : List.of("-5", "seven")) {
            // Bounded as a whole: a stream accepted by mistake would never end.
            HttpResponse<String> r = http.sendAsync(HttpRequest.newBuilder(URI.create(base + "/v1/requests/" + id + "/events"))
                    .header("Authorization", "Bearer " + token).header("Last-Event-ID", last).build(),
                    HttpResponse.BodyHandlers.ofString()).get(30, java.util.concurrent.TimeUnit.SECONDS);
            assertThat(r.statusCode()).as("Last-Event-ID " + last).isEqualTo(400);
            assertThat(JSON.readTree(r.body()).path("message").asText()).as("Last-Event-ID " + last).startsWith("Last-Event-ID");
        }
        HttpResponse<String> badQuery = http.sendAsync(HttpRequest.newBuilder(URI.create(base + "/v1/requests/" + id
                + "/events?after_seq=x")).header("Authorization", "Bearer " + token).build(),
                HttpResponse.BodyHandlers.ofString()).get(30, java.util.concurrent.TimeUnit.SECONDS);
        assertThat(badQuery.statusCode()).isEqualTo(400);
        assertThat(JSON.readTree(badQuery.body()).path("message").asText()).startsWith("after_seq");

        String key = java.util.UUID.randomUUID().toString();
        HttpResponse<String> first = post(token, "{\"prompt\":\"The river\",\"max_tokens\":4,\"idempotency_key\":\"" + key + "\"}");
        HttpResponse<String> again = post(token, "{\"prompt\":\"The river\",\"max_tokens\":4,\"idempotency_key\":\"" + key + "\"}");
        assertThat(first.statusCode()).isEqualTo(202);
        assertThat(again.statusCode()).isEqualTo(200);
        assertThat(JSON.readTree(again.body()).path("duplicate").asBoolean()).isTrue();
        String keyedId = JSON.readTree(first.body()).path("request_id").asText();
        assertThat(JSON.readTree(again.body()).path("request_id").asText()).isEqualTo(keyedId);
        // A keyed request's outcome is stored under its key: status finds it through the request index.
        long until = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        JsonNode keyedStatus = JSON.readTree(get(token, "/v1/requests/" + keyedId).body());
        while (keyedStatus.path("status").asText().equals("pending") && System.nanoTime() < until) {
            Thread.sleep(100);
            keyedStatus = JSON.readTree(get(token, "/v1/requests/" + keyedId).body());
        }
        assertThat(keyedStatus.path("status").asText()).isEqualTo("done");
        assertThat(keyedStatus.path("usage").path("completion_tokens").asInt()).isBetween(1, 4);
        assertThat(get(other, "/v1/requests/" + keyedId).statusCode()).as("another tenant's keyed request").isEqualTo(404);

        // An id changed by one character, or one no gateway handed out, is not found either.
        String changed = id.substring(0, 10) + (id.charAt(10) == 'A' ? 'B' : 'A') + id.substring(11);
        assertThat(get(token, "/v1/requests/" + changed).statusCode()).isEqualTo(404);
        assertThat(get(token, "/v1/requests/" + java.util.UUID.randomUUID()).statusCode()).isEqualTo(404);
    }

    /**
     * Sends a chunked POST over a plain socket (a chunked body has no length to check first) and
     * reads the answer: its status line, then its body. {@code finish} false leaves the body
     * without its last chunk, as a client that keeps sending would.
     */
    static String[] chunkedPost(String token, byte[] body, boolean finish) throws Exception {
        try (java.net.Socket s = new java.net.Socket("127.0.0.1", pipeline.gateway.port())) {
            s.setSoTimeout(20_000);
            java.io.ByteArrayOutputStream request = new java.io.ByteArrayOutputStream();
            request.writeBytes(("POST /v1/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token
                    + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            for (int at = 0; at < body.length; at += 4096) {
                int n = Math.min(4096, body.length - at);
                request.writeBytes((Integer.toHexString(n) + "\r\n").getBytes(StandardCharsets.US_ASCII));
                request.write(body, at, n);
                request.writeBytes("\r\n".getBytes(StandardCharsets.US_ASCII));
            }
            if (finish) {
                request.writeBytes("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            }
            try {
                s.getOutputStream().write(request.toByteArray());
            } catch (java.io.IOException closedMeanwhile) {
                // The gateway answered past the limit and closed before the rest was sent (a broken
                // pipe): what it answered is still there to read.
            }
            java.io.DataInputStream in = new java.io.DataInputStream(new java.io.BufferedInputStream(s.getInputStream()));
            String status = line(in);
            int length = 0;
            for (String h = line(in); !h.isEmpty(); h = line(in)) {
                if (h.regionMatches(true, 0, "Content-Length:", 0, 15)) {
                    length = Integer.parseInt(h.substring(15).trim());
                }
            }
            byte[] answer = new byte[length];
            in.readFully(answer);
            return new String[] {status, new String(answer, StandardCharsets.UTF_8)};
        }
    }

    private static String line(java.io.DataInputStream in) throws java.io.IOException {
        StringBuilder b = new StringBuilder();
        for (int c = in.read(); c != '\n'; c = in.read()) {
            if (c < 0) {
                throw new java.io.EOFException("connection closed after: " + b);
            }
            if (c != '\r') {
                b.append((char) c);
            }
        }
        return b.toString();
    }

    @Test
    void aBodyIsBoundedInBytesAsItArrivesEvenWithoutALength() throws Exception {
        String token = pipeline.token("acme");
        int max = 65_536; // gateway.max.frame.bytes, its default
        // A body that never ends is answered once it passes the limit, not read on without end.
        String[] endless = chunkedPost(token, ("{\"prompt\":\"" + "x".repeat(max)).getBytes(StandardCharsets.UTF_8), false);
        assertThat(endless[0]).as("a chunked body past the limit, still being sent").contains(" 413 ");
        JsonNode error = JSON.readTree(endless[1]);
        assertThat(error.path("code").asText()).isEqualTo("too_large");
        assertThat(error.path("message").asText()).startsWith("body").contains("gateway.max.frame.bytes");

        // The limit is in bytes, as the socket's: 22,000 three-byte characters are 66,000 bytes.
        String[] wide = chunkedPost(token, ("{\"prompt\":\"" + "\u20ac".repeat(22_000) + "\"}").getBytes(StandardCharsets.UTF_8),
                true);
        assertThat(wide[0]).contains(" 413 ");
        assertThat(JSON.readTree(wide[1]).path("message").asText()).startsWith("body").contains("gateway.max.frame.bytes");

        // Under the limit, a chunked body is a request as any other.
        String[] fine = chunkedPost(token, "{\"prompt\":\"The river\",\"max_tokens\":2}".getBytes(StandardCharsets.UTF_8), true);
        assertThat(fine[0]).contains(" 202 ");
        assertThat(JSON.readTree(fine[1]).path("request_id").asText()).isNotEmpty();

        // UTF-8 only: the same JSON in UTF-16 is refused, not read by a guess at its encoding.
        HttpResponse<String> utf16 = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/requests"))
                .header("Authorization", "Bearer " + token).POST(HttpRequest.BodyPublishers.ofByteArray(
                        "{\"prompt\":\"hi\"}".getBytes(StandardCharsets.UTF_16BE))).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(utf16.statusCode()).isEqualTo(400);
        // The same words as the socket's answer to the same bytes.
        assertThat(JSON.readTree(utf16.body()).path("message").asText()).isEqualTo("body: not valid JSON (a NUL byte)");
        HttpResponse<String> latin1 = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/requests"))
                .header("Authorization", "Bearer " + token).POST(HttpRequest.BodyPublishers.ofByteArray(
                        "{\"prompt\":\"caf\u00e9\"}".getBytes(StandardCharsets.ISO_8859_1))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(latin1.statusCode()).isEqualTo(400);
        assertThat(JSON.readTree(latin1.body()).path("message").asText()).isEqualTo("body: not valid UTF-8");

        // One JSON object and nothing after it: a second object is not quietly dropped.
        HttpResponse<String> two = post(token, "{\"prompt\":\"a\"}{\"prompt\":\"b\"}");
        assertThat(two.statusCode()).isEqualTo(400);
        assertThat(JSON.readTree(two.body()).path("message").asText()).startsWith("body")
                .contains("text after the JSON object");
    }
}
