package io.sluice.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.eclipse.jetty.websocket.client.WebSocketClient;

/** A real WebSocket client over loopback that records every frame it receives. */
public final class WsClient implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();
    private final WebSocketClient client;
    private final BlockingQueue<JsonNode> frames = new LinkedBlockingQueue<>();
    private final BlockingQueue<String> closes = new LinkedBlockingQueue<>();
    private Session session;

    static WsClient connect(String url, String token) throws Exception {
        return connect(url, token, null);
    }

    private WsClient(WebSocketClient client) {
        this.client = client;
    }

    static WsClient connect(String url, String token, String origin) throws Exception {
        return connect(new WebSocketClient(), url, token, origin);
    }

    /** Connects through {@code client} (for example one set up for TLS); the WsClient stops it on close. */
    static WsClient connect(WebSocketClient client, String url, String token, String origin) throws Exception {
        WsClient c = new WsClient(client);
        c.client.start();
        ClientUpgradeRequest req = new ClientUpgradeRequest();
        if (token != null) {
            req.setHeader("Authorization", "Bearer " + token);
        }
        if (origin != null) {
            req.setHeader("Origin", origin);
        }
        req.setSubProtocols("sluice.v1.json");
        c.session = c.client.connect(new Recorder(c.frames, c.closes), URI.create(url), req).get(10, TimeUnit.SECONDS);
        return c;
    }

    /** Jetty invokes listener methods through method handles: the class must be public. */
    public static final class Recorder implements Session.Listener.AutoDemanding {
        private final BlockingQueue<JsonNode> frames;
        private final BlockingQueue<String> closes;

        Recorder(BlockingQueue<JsonNode> frames, BlockingQueue<String> closes) {
            this.frames = frames;
            this.closes = closes;
        }

        @Override
        public void onWebSocketText(String message) {
            try {
                frames.add(JSON.readTree(message));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }

        @Override
        public void onWebSocketClose(int statusCode, String reason) {
            closes.add(statusCode + " " + reason);
        }
    }

    void send(String json) {
        session.sendText(json, Callback.NOOP);
    }

    /** The next frame, or an AssertionError naming what was awaited. */
    JsonNode next(Duration timeout, String awaiting) throws InterruptedException {
        JsonNode n = frames.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (n == null) {
            throw new AssertionError("No frame within " + timeout + " while awaiting " + awaiting);
        }
        return n;
    }

    /** The close code and reason, once the server closed the socket. */
    String awaitClose(Duration timeout) throws InterruptedException {
        String close = closes.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (close == null) {
            throw new AssertionError("socket not closed within " + timeout);
        }
        return close;
    }

    boolean isOpen() {
        return session.isOpen();
    }

    @Override
    public void close() throws Exception {
        if (session != null) {
            session.close();
        }
        client.stop();
    }
}
