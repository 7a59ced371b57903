package io.sluice.ingress.bench;

import java.time.Duration;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.server.WebSocketNegotiator;
import org.eclipse.jetty.websocket.core.server.WebSocketServerComponents;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;

/**
 * The baseline for socket benchmarks: Jetty with a WebSocket endpoint that does nothing, configured
 * like the gateway. On Jetty's API layer (an endpoint as a Jetty user writes one) or on its core
 * layer, which the gateway's own sockets use, so a benchmark can show what each layer costs.
 */
public final class RawJettyServer implements AutoCloseable {
    /** Which of Jetty's WebSocket layers the no-op endpoint is written against. */
    public enum Layer {
        API, CORE
    }

    /** A core frame handler that holds its session and nothing else. */
    static final class CoreNoop implements FrameHandler {
        volatile CoreSession session;

        @Override
        public void onOpen(CoreSession session, org.eclipse.jetty.util.Callback callback) {
            this.session = session;
            OPEN.add(session);
            callback.succeeded();
            session.demand();
        }

        @Override
        public void onFrame(Frame frame, org.eclipse.jetty.util.Callback callback) {
            callback.succeeded();
            if (frame.getOpCode() != OpCode.CLOSE) {
                session.demand();
            }
        }

        @Override
        public void onError(Throwable cause, org.eclipse.jetty.util.Callback callback) {
            callback.succeeded();
        }

        @Override
        public void onClosed(CloseStatus status, org.eclipse.jetty.util.Callback callback) {
            OPEN.remove(session);
            callback.succeeded();
        }
    }

    /** An endpoint that holds its session and nothing else. */
    public static final class Noop implements Session.Listener.AutoDemanding {
        volatile Session session;

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
            OPEN.add(session);
        }

        @Override
        public void onWebSocketClose(int statusCode, String reason) {
            OPEN.remove(session);
        }

        @Override
        public void onWebSocketError(Throwable cause) {
            // A client process ending its connections is the normal end of a benchmark.
        }
    }

    /** Sessions (API or core) open on any raw server of this JVM (a benchmark runs one at a time). */
    static final java.util.Set<Object> OPEN = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * Sends {@code frame} to every open session, without waiting. The sessions are split in one
     * slice per core, each pushed by a task on the server's own pool, so the baseline uses the
     * cores the way a broadcast written with Jetty would, not one thread for every write. It returns
     * once every session has the frame queued, so the frames of successive calls stay in order.
     */
    public void pushToAll(String frame) throws InterruptedException {
        java.util.List<Object> all = java.util.List.copyOf(OPEN);
        int slices = Math.max(1, Runtime.getRuntime().availableProcessors());
        int per = Math.max(1, (all.size() + slices - 1) / slices);
        java.util.concurrent.CountDownLatch queued = new java.util.concurrent.CountDownLatch((all.size() + per - 1) / per);
        for (int from = 0; from < all.size(); from += per) {
            java.util.List<Object> slice = all.subList(from, Math.min(all.size(), from + per));
            server.getThreadPool().execute(() -> {
                try {
                    for (Object s : slice) {
                        if (s instanceof Session api) {
                            api.sendText(frame, org.eclipse.jetty.websocket.api.Callback.NOOP);
                        } else {
                            ((CoreSession) s).sendFrame(new Frame(OpCode.TEXT, frame), org.eclipse.jetty.util.Callback.NOOP, false);
                        }
                    }
                } finally {
                    queued.countDown();
                }
            });
        }
        queued.await();
    }

    public int openSessions() {
        return OPEN.size();
    }

    private final Server server;
    private final ServerConnector connector;

    public RawJettyServer(Duration idleTimeout) throws Exception {
        this(idleTimeout, Layer.API);
    }

    public RawJettyServer(Duration idleTimeout, Layer layer) throws Exception {
        QueuedThreadPool threads = new QueuedThreadPool(200, 8);
        threads.setName("raw-jetty");
        server = new Server(threads);
        connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        connector.setAcceptQueueSize(4096);
        server.addConnector(connector);
        if (layer == Layer.API) {
            server.setHandler(WebSocketUpgradeHandler.from(server, container -> {
                container.setIdleTimeout(idleTimeout);
                container.addMapping("/v1/stream", (req, resp, cb) -> new Noop());
            }));
        } else {
            var core = new org.eclipse.jetty.websocket.core.server.WebSocketUpgradeHandler(
                    WebSocketServerComponents.ensureWebSocketComponents(server));
            core.addMapping("/v1/stream", WebSocketNegotiator.from((req, resp, cb) -> new CoreNoop(),
                    (endpoint, req, resp) -> (FrameHandler) endpoint, c -> c.setIdleTimeout(idleTimeout)));
            server.setHandler(core);
        }
        server.start();
    }

    public int port() {
        return connector.getLocalPort();
    }

    @Override
    public void close() throws Exception {
        server.stop();
    }
}
