package io.sluice.app.matrix;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.Flow;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Closed-loop clients for one cell of the matrix: each of {@code clients} runs its workload
 * (one request, or the turns of a conversation) over one transport, again and again, until the
 * cell's time is up. Everything is asynchronous on the JDK's HTTP client, so thousands of
 * clients need a handful of threads. Times are measured at the client, from just before the
 * request is sent.
 */
final class LoadRunner {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(120);

    /** What a cell measured. */
    record Result(int clients, double seconds, long completed, long errors, double[] ttftMs, double[] itlMs,
            double meanContextTokens) {
        double completedPerSecond() {
            return completed / seconds;
        }

        double ttft(double q) {
            return quantile(ttftMs, q);
        }

        double itl(double q) {
            return quantile(itlMs, q);
        }

        static double quantile(double[] sorted, double q) {
            return sorted.length == 0 ? Double.NaN : sorted[Math.min(sorted.length - 1, (int) (q * sorted.length))];
        }
    }

    private final HttpClient http;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "matrix-timer");
        t.setDaemon(true);
        return t;
    });
    private final String base;
    private final String token;
    private final Duration pollInterval;
    private final ConcurrentLinkedQueue<Double> ttft = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<Double> itl = new ConcurrentLinkedQueue<>();
    private final AtomicLong completed = new AtomicLong();
    private final AtomicLong errors = new AtomicLong();
    private final AtomicLong contextTokens = new AtomicLong();
    private final AtomicLong contexts = new AtomicLong();

    void usage(JsonNode usage) {
        if (usage.has("prompt_tokens")) {
            contextTokens.addAndGet(usage.path("prompt_tokens").asLong() + usage.path("completion_tokens").asLong());
            contexts.incrementAndGet();
        }
    }

    LoadRunner(String base, String token, Duration pollInterval) {
        this.base = base;
        this.token = token;
        this.pollInterval = pollInterval;
        this.http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(30))
                .executor(Executors.newFixedThreadPool(4, r -> {
                    Thread t = new Thread(r, "matrix-http");
                    t.setDaemon(true);
                    return t;
                })).build();
    }

    Result run(Transport transport, Workload workload, int clients, Duration duration) throws InterruptedException {
        long end = System.nanoTime() + duration.toNanos();
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            Client c = new Client(i, transport, workload, end);
            all.add(c.start());
            if (i % 200 == 199) {
                Thread.sleep(20); // do not open thousands of connections in the same millisecond
            }
        }
        try {
            CompletableFuture.allOf(all.toArray(CompletableFuture[]::new))
                    .get(duration.toMillis() + REQUEST_TIMEOUT.toMillis() + 30_000, TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            // clients still stuck count as errors below
        }
        long stuck = all.stream().filter(f -> !f.isDone()).count();
        double[] t = ttft.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        double[] g = itl.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return new Result(clients, duration.toNanos() / 1e9, completed.get(), errors.get() + stuck, t, g,
                contexts.get() == 0 ? 0 : (double) contextTokens.get() / contexts.get());
    }

    void close() {
        timer.shutdownNow();
    }

    /** One virtual client. */
    private final class Client {
        final int index;
        final Transport transport;
        final Workload workload;
        final long end;
        final CompletableFuture<Void> finished = new CompletableFuture<>();
        WebSocket socket;
        volatile Pending pending;
        final StringBuilder wsBuffer = new StringBuilder();

        Client(int index, Transport transport, Workload workload, long end) {
            this.index = index;
            this.transport = transport;
            this.workload = workload;
            this.end = end;
        }

        CompletableFuture<Void> start() {
            if (transport == Transport.WS) {
                http.newWebSocketBuilder().header("Authorization", "Bearer " + token).connectTimeout(Duration.ofSeconds(30))
                        .buildAsync(URI.create(base.replace("http", "ws") + "/v1/stream"), new Listener())
                        .whenComplete((ws, err) -> {
                            if (err != null) {
                                errors.incrementAndGet();
                                finished.complete(null);
                            } else {
                                socket = ws;
                                loop();
                            }
                        });
            } else {
                loop();
            }
            return finished;
        }

        void loop() {
            if (System.nanoTime() >= end) {
                if (socket != null) {
                    socket.sendClose(WebSocket.NORMAL_CLOSURE, "done");
                }
                finished.complete(null);
                return;
            }
            conversation(0, "").whenComplete((r, e) -> loop());
        }

        /** Turn {@code turn} of the workload, whose prompt extends the conversation so far. */
        CompletableFuture<Void> conversation(int turn, String history) {
            String prompt = workload.prompt(turn, history);
            return request(prompt, workload.maxTokens()).handle((text, err) -> {
                if (err != null) {
                    errors.incrementAndGet();
                    return null;
                }
                // Throughput counts what completed within the cell's window; the requests still
                // running at its end finish (their latencies count) but add nothing to the rate.
                if (System.nanoTime() <= end) {
                    completed.incrementAndGet();
                }
                return text;
            }).thenCompose(text -> text != null && turn + 1 < workload.turns()
                    ? conversation(turn + 1, prompt + text) : CompletableFuture.completedFuture(null));
        }

        CompletableFuture<String> request(String prompt, int maxTokens) {
            Pending p = new Pending(System.nanoTime());
            timer.schedule(() -> p.done.completeExceptionally(new IllegalStateException("timeout")),
                    REQUEST_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            String body = JSON.createObjectNode().put("prompt", prompt).put("max_tokens", maxTokens).toString();
            switch (transport) {
                case WS -> {
                    pending = p;
                    socket.sendText(JSON.createObjectNode().put("type", "generate").put("id", "c" + index)
                            .put("prompt", prompt).put("max_tokens", maxTokens).toString(), true);
                }
                case SSE -> submit(body).thenCompose(id -> http.sendAsync(get("/v1/requests/" + id + "/events"),
                        HttpResponse.BodyHandlers.fromLineSubscriber(new SseLines(p)))).whenComplete((r, e) -> {
                            if (e != null) {
                                p.done.completeExceptionally(e);
                            }
                        });
                case POLL -> submit(body).whenComplete((id, e) -> {
                    if (e != null) {
                        p.done.completeExceptionally(e);
                    } else {
                        poll(id, p);
                    }
                });
                default -> throw new IllegalStateException();
            }
            return p.done;
        }

        CompletableFuture<String> submit(String body) {
            HttpRequest post = HttpRequest.newBuilder(URI.create(base + "/v1/requests")).timeout(REQUEST_TIMEOUT)
                    .header("Authorization", "Bearer " + token).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build();
            return http.sendAsync(post, HttpResponse.BodyHandlers.ofString()).thenApply(r -> {
                if (r.statusCode() / 100 != 2) {
                    throw new IllegalStateException("POST " + r.statusCode() + " " + r.body());
                }
                return read(r.body()).path("request_id").asText();
            });
        }

        void poll(String id, Pending p) {
            timer.schedule(() -> http.sendAsync(get("/v1/requests/" + id), HttpResponse.BodyHandlers.ofString())
                    .whenComplete((r, e) -> {
                        if (p.done.isDone()) {
                            return;
                        }
                        if (e != null || r.statusCode() != 200) {
                            p.done.completeExceptionally(e != null ? e : new IllegalStateException("GET " + r.statusCode()));
                            return;
                        }
                        JsonNode n = read(r.body());
                        switch (n.path("status").asText()) {
                            case "done" -> {
                                // Polling sees no token before the whole result: its first text is the last.
                                ttft.add((System.nanoTime() - p.startNanos) / 1e6);
                                usage(n.path("usage"));
                                p.done.complete(n.path("text").asText());
                            }
                            case "failed" -> p.done.completeExceptionally(new IllegalStateException(n.toString()));
                            default -> poll(id, p);
                        }
                    }), pollInterval.toMillis(), TimeUnit.MILLISECONDS);
        }

        HttpRequest get(String path) {
            return HttpRequest.newBuilder(URI.create(base + path)).timeout(REQUEST_TIMEOUT)
                    .header("Authorization", "Bearer " + token).GET().build();
        }

        /** WebSocket frames: accepted, token, done, error. */
        final class Listener implements WebSocket.Listener {
            @Override
            public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
                wsBuffer.append(data);
                if (last) {
                    JsonNode f = read(wsBuffer.toString());
                    wsBuffer.setLength(0);
                    Pending p = pending;
                    if (p != null) {
                        switch (f.path("type").asText()) {
                            case "token" -> p.token(f.path("text").asText());
                            case "done" -> {
                                usage(f.path("usage"));
                                p.finish();
                            }
                            case "error" -> p.done.completeExceptionally(new IllegalStateException(f.toString()));
                            default -> { }
                        }
                    }
                }
                ws.request(1);
                return null;
            }

            @Override
            public CompletionStage<?> onClose(WebSocket ws, int code, String reason) {
                Pending p = pending;
                if (p != null) {
                    p.done.completeExceptionally(new IllegalStateException("closed " + code + " " + reason));
                }
                return null;
            }

            @Override
            public void onError(WebSocket ws, Throwable error) {
                Pending p = pending;
                if (p != null) {
                    p.done.completeExceptionally(error);
                }
            }
        }
    }

    /** One request in flight: tokens seen so far and their timing. */
    private final class Pending {
        final long startNanos;
        long lastNanos;
        final StringBuilder text = new StringBuilder();
        final CompletableFuture<String> done = new CompletableFuture<>();

        Pending(long startNanos) {
            this.startNanos = startNanos;
        }

        synchronized void token(String piece) {
            long now = System.nanoTime();
            if (lastNanos == 0) {
                ttft.add((now - startNanos) / 1e6);
            } else {
                itl.add((now - lastNanos) / 1e6);
            }
            lastNanos = now;
            text.append(piece);
        }

        void finish() {
            done.complete(text.toString());
        }
    }

    /** Server-Sent Events, line by line. */
    private final class SseLines implements Flow.Subscriber<String> {
        final Pending p;
        String event = "";
        Flow.Subscription sub;

        SseLines(Pending p) {
            this.p = p;
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            sub = s;
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(String line) {
            if (line.startsWith("event:")) {
                event = line.substring(6).trim();
            } else if (line.startsWith("data:")) {
                JsonNode f = read(line.substring(5).trim());
                switch (event) {
                    case "token" -> p.token(f.path("text").asText());
                    case "done" -> {
                        usage(f.path("usage"));
                        p.finish();
                        sub.cancel();
                    }
                    case "error" -> {
                        p.done.completeExceptionally(new IllegalStateException(f.toString()));
                        sub.cancel();
                    }
                    default -> { }
                }
            }
        }

        @Override
        public void onError(Throwable t) {
            p.done.completeExceptionally(t);
        }

        @Override
        public void onComplete() {
            p.done.completeExceptionally(new IllegalStateException("event stream ended before done"));
        }
    }

    static JsonNode read(String s) {
        try {
            return JSON.readTree(s);
        } catch (Exception e) {
            throw new IllegalStateException("not JSON: " + s, e);
        }
    }

    static double[] sorted(List<Double> values) {
        double[] a = values.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(a);
        return a;
    }
}
