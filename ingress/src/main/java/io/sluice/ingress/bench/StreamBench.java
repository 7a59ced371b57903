package io.sluice.ingress.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.eclipse.jetty.websocket.client.WebSocketClient;

/**
 * Streams requests through a running gateway, one socket per concurrent client, and reports
 * time to first token, per-stream tokens/s and aggregate tokens/s. A benchmark, not a test:
 * it prints figures and asserts nothing.
 */
public final class StreamBench {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What one request saw. */
    public record Sample(long sentNanos, long acceptedNanos, long firstTokenNanos, long doneNanos, int tokens) {
        double ttftMs() {
            return (firstTokenNanos - sentNanos) / 1e6;
        }

        double tokensPerSecond() {
            return tokens <= 1 ? 0 : (tokens - 1) / ((doneNanos - firstTokenNanos) / 1e9);
        }
    }

    /** Jetty calls listener methods through method handles, so the listener is public. */
    public static final class Stream implements Session.Listener.AutoDemanding {
        final CompletableFuture<Sample> result = new CompletableFuture<>();
        volatile long sent;
        long accepted;
        long first;
        int tokens;

        @Override
        public void onWebSocketText(String message) {
            long now = System.nanoTime();
            try {
                JsonNode f = JSON.readTree(message);
                switch (f.path("type").asText()) {
                    case "accepted" -> accepted = now;
                    case "token" -> {
                        if (tokens++ == 0) {
                            first = now;
                        }
                    }
                    case "done" -> result.complete(new Sample(sent, accepted, first, now, tokens));
                    default -> result.completeExceptionally(new IllegalStateException(message));
                }
            } catch (Exception e) {
                result.completeExceptionally(e);
            }
        }

        @Override
        public void onWebSocketClose(int statusCode, String reason) {
            result.completeExceptionally(new IllegalStateException("closed " + statusCode + " " + reason));
        }
    }

    private StreamBench() {
    }

    /** Runs {@code rounds} rounds of {@code concurrency} simultaneous requests. */
    public static List<Sample> run(String url, String token, String prompt, int maxTokens, int concurrency, int rounds)
            throws Exception {
        WebSocketClient client = new WebSocketClient();
        client.start();
        List<Sample> samples = new ArrayList<>();
        try {
            for (int round = 0; round < rounds; round++) {
                List<Stream> streams = new ArrayList<>();
                List<Session> sessions = new ArrayList<>();
                for (int i = 0; i < concurrency; i++) {
                    Stream s = new Stream();
                    ClientUpgradeRequest req = new ClientUpgradeRequest();
                    req.setHeader("Authorization", "Bearer " + token);
                    req.setSubProtocols("sluice.v1.json");
                    sessions.add(client.connect(s, URI.create(url), req).get(10, TimeUnit.SECONDS));
                    streams.add(s);
                }
                String msg = JSON.createObjectNode().put("type", "generate").put("prompt", prompt)
                        .put("max_tokens", maxTokens).toString();
                for (int i = 0; i < concurrency; i++) {
                    streams.get(i).sent = System.nanoTime();
                    sessions.get(i).sendText(msg, Callback.NOOP);
                }
                for (Stream s : streams) {
                    samples.add(s.result.get(120, TimeUnit.SECONDS));
                }
                sessions.forEach(Session::close);
            }
        } finally {
            client.stop();
        }
        return samples;
    }

    static double percentile(double[] sorted, double p) {
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p * sorted.length) - 1)];
    }

    /** Prints the figures of a run. */
    public static String report(List<Sample> samples, int concurrency) {
        double[] ttft = samples.stream().mapToDouble(Sample::ttftMs).sorted().toArray();
        double[] tps = samples.stream().mapToDouble(Sample::tokensPerSecond).sorted().toArray();
        long start = samples.stream().mapToLong(Sample::sentNanos).min().orElse(0);
        long end = samples.stream().mapToLong(Sample::doneNanos).max().orElse(0);
        int tokens = samples.stream().mapToInt(Sample::tokens).sum();
        return String.format("concurrency %d, %d requests, %d tokens%n"
                        + "  time to first token  p50 %.1f ms  p99 %.1f ms%n"
                        + "  per-stream tokens/s  p50 %.1f  min %.1f%n"
                        + "  aggregate tokens/s   %.1f%n",
                concurrency, samples.size(), tokens, percentile(ttft, 0.5), percentile(ttft, 0.99),
                percentile(tps, 0.5), tps.length == 0 ? 0 : tps[0], tokens / ((end - start) / 1e9));
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: StreamBench URL TOKEN [concurrency] [rounds] [max_tokens]");
            System.exit(2);
        }
        int concurrency = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 10;
        int maxTokens = args.length > 4 ? Integer.parseInt(args[4]) : 64;
        System.out.println(Arrays.toString(args).replace(args[1], "<token>"));
        run(args[0], args[1], "The river", maxTokens, concurrency, 1); // warm-up
        System.out.print(report(run(args[0], args[1], "The river", maxTokens, concurrency, rounds), concurrency));
    }
}
