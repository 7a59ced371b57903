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
    private final BlockingQueue<String> pongs = new LinkedBlockingQueue<>();
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
        c.session = c.client.connect(new Recorder(c.frames, c.closes, c.pongs), URI.create(url), req).get(10, TimeUnit.SECONDS);
        return c;
    }

    /** Jetty invokes listener methods through method handles: the class must be public. */
    public static final class Recorder implements Session.Listener.AutoDemanding {
        private final BlockingQueue<JsonNode> frames;
        private final BlockingQueue<String> closes;
        private final BlockingQueue<String> pongs;

        Recorder(BlockingQueue<JsonNode> frames, BlockingQueue<String> closes, BlockingQueue<String> pongs) {
            this.frames = frames;
            this.closes = closes;
            this.pongs = pongs;
        }

        @Override
        public void onWebSocketPong(java.nio.ByteBuffer payload) {
            pongs.add(java.nio.charset.StandardCharsets.UTF_8.decode(payload).toString());
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

    /** One text message sent as several frames, split at {@code parts}' boundaries. */
    void sendFragmented(String... parts) throws Exception {
        for (int i = 0; i < parts.length; i++) {
            session.sendPartialText(parts[i], i == parts.length - 1, Callback.NOOP);
        }
    }

    /** A text frame whose payload is {@code bytes} as they are, valid UTF-8 or not. */
    void sendTextBytes(byte[] bytes) {
        ((org.eclipse.jetty.websocket.common.WebSocketSession) session).getCoreSession().sendFrame(
                new org.eclipse.jetty.websocket.core.Frame(org.eclipse.jetty.websocket.core.OpCode.TEXT,
                        java.nio.ByteBuffer.wrap(bytes)), org.eclipse.jetty.util.Callback.NOOP, false);
    }

    void sendBinary(byte[] bytes) {
        session.sendBinary(java.nio.ByteBuffer.wrap(bytes), Callback.NOOP);
    }

    /** One binary message sent as several frames. */
    void sendFragmentedBinary(byte[]... parts) {
        for (int i = 0; i < parts.length; i++) {
            session.sendPartialBinary(java.nio.ByteBuffer.wrap(parts[i]), i == parts.length - 1, Callback.NOOP);
        }
    }

    /** Sends a WebSocket ping and returns the payload of the pong that answers it. */
    String ping(String payload, Duration timeout) throws InterruptedException {
        session.sendPing(java.nio.ByteBuffer.wrap(payload.getBytes(java.nio.charset.StandardCharsets.UTF_8)), Callback.NOOP);
        String pong = pongs.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (pong == null) {
            throw new AssertionError("no pong within " + timeout);
        }
        return pong;
    }

    /** The next frame within {@code timeout}, or null when none came. */
    JsonNode poll(Duration timeout) throws InterruptedException {
        return frames.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
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

    /** Starts the closing handshake from the client's side; {@link #awaitClose} then has the server's answer. */
    void closeWith(int statusCode, String reason) {
        session.close(statusCode, reason, Callback.NOOP);
    }

    @Override
    public void close() throws Exception {
        if (session != null) {
            session.close();
        }
        client.stop();
    }
}
