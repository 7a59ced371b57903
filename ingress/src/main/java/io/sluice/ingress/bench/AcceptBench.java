package io.sluice.ingress.bench;

import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.eclipse.jetty.websocket.client.WebSocketClient;

/**
 * Accepted requests per second through a gateway: {@code connections} sockets each send
 * {@code perConnection} generate messages back to back and count the {@code accepted} frames,
 * each of which the gateway sends only after Kafka acknowledged the request (acks=all).
 */
public final class AcceptBench {
    /** Jetty calls listener methods through method handles, so the listener is public. */
    public static final class Counter implements Session.Listener.AutoDemanding {
        final CountDownLatch done;
        final AtomicInteger errors;

        Counter(CountDownLatch done, AtomicInteger errors) {
            this.done = done;
            this.errors = errors;
        }

        /**
         * The load generator shares the machine with the gateway, so it reads only the frame type,
         * which the gateway writes first; FramesTest holds the frame to standard JSON.
         */
        @Override
        public void onWebSocketText(String message) {
            if (message.startsWith("{\"type\":\"accepted\"")) {
                done.countDown();
            } else if (message.startsWith("{\"type\":\"error\"")) {
                errors.incrementAndGet();
                done.countDown();
            }
        }
    }

    /** Result of a run. */
    public record Result(int requests, int errors, double seconds) {
        public double perSecond() {
            return requests / seconds;
        }
    }

    private AcceptBench() {
    }

    public static Result run(String url, String token, int connections, int perConnection, String generate) throws Exception {
        WebSocketClient client = new WebSocketClient();
        client.start();
        try {
            CountDownLatch done = new CountDownLatch(connections * perConnection);
            AtomicInteger errors = new AtomicInteger();
            List<Session> sessions = new ArrayList<>();
            for (int i = 0; i < connections; i++) {
                ClientUpgradeRequest req = new ClientUpgradeRequest();
                req.setHeader("Authorization", "Bearer " + token);
                sessions.add(client.connect(new Counter(done, errors), URI.create(url), req).get(10, TimeUnit.SECONDS));
            }
            long t0 = System.nanoTime();
            List<Thread> senders = new ArrayList<>();
            for (Session s : sessions) {
                Thread t = new Thread(() -> {
                    for (int i = 0; i < perConnection; i++) {
                        s.sendText(generate, Callback.NOOP);
                    }
                });
                t.start();
                senders.add(t);
            }
            for (Thread t : senders) {
                t.join();
            }
            if (!done.await(300, TimeUnit.SECONDS)) {
                throw new IllegalStateException("not every request was answered: " + done.getCount() + " left");
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            sessions.forEach(Session::close);
            return new Result(connections * perConnection, errors.get(), seconds);
        } finally {
            client.stop();
        }
    }
}
