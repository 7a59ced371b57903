package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import org.junit.jupiter.api.Test;

/** A client that stops reading never slows another client of the same gateway. */
class SlowClientTest {

    /** A WebSocket client over a raw TCP socket that sends one frame and then never reads again. */
    static Socket stalledClient(String url, String token, String message) throws Exception {
        URI uri = URI.create(url);
        Socket s = new Socket();
        s.setReceiveBufferSize(4096);
        s.connect(new java.net.InetSocketAddress(uri.getHost(), uri.getPort()));
        OutputStream out = s.getOutputStream();
        String key = Base64.getEncoder().encodeToString("0123456789abcdef".getBytes(StandardCharsets.UTF_8));
        out.write(("GET " + uri.getPath() + " HTTP/1.1\r\nHost: " + uri.getHost() + ":" + uri.getPort()
                + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
                + "\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + token + "\r\n\r\n").getBytes(StandardCharsets.UTF_8));
        InputStream in = s.getInputStream();
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
            head.append((char) in.read());
        }
        assertThat(head.toString()).startsWith("HTTP/1.1 101");
        byte[] payload = message.getBytes(StandardCharsets.UTF_8);
        byte[] mask = {1, 2, 3, 4};
        out.write(0x81);
        out.write(0x80 | 126);
        out.write(payload.length >> 8);
        out.write(payload.length & 0xff);
        out.write(mask);
        for (int i = 0; i < payload.length; i++) {
            out.write(payload[i] ^ mask[i % 4]);
        }
        out.flush();
        return s;
    }

    @Test
    void aClientThatStopsReadingDoesNotDelayAnotherClientsStream() throws Exception {
        try (InProcessPipeline pipeline = new InProcessPipeline("slow")) {
            String token = pipeline.token("acme");
            String generate = "{\"type\":\"generate\",\"prompt\":\"The river\",\"max_tokens\":60}";
            try (Socket stalled = stalledClient(pipeline.gateway.url(), token, generate);
                 WsClient fast = WsClient.connect(pipeline.gateway.url(), token)) {
                long t0 = System.nanoTime();
                fast.send(generate);
                assertThat(fast.next(Duration.ofSeconds(30), "accepted").path("type").asText()).isEqualTo("accepted");
                int tokens = 0;
                JsonNode f;
                do {
                    f = fast.next(Duration.ofSeconds(30), "fast client's stream");
                    tokens += f.path("type").asText().equals("token") ? 1 : 0;
                } while (f.path("type").asText().equals("token"));
                assertThat(f.path("type").asText()).isEqualTo("done");
                assertThat(f.path("usage").path("completion_tokens").asInt()).isEqualTo(tokens);
                assertThat(Duration.ofNanos(System.nanoTime() - t0)).as("the fast stream was not held up")
                        .isLessThan(Duration.ofSeconds(20));
                assertThat(stalled.isClosed()).isFalse();
            }
        }
    }
}
