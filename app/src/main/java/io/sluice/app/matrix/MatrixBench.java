package io.sluice.app.matrix;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.devstack.EmbeddedKafka;
import io.sluice.devstack.RedisProcess;
import io.sluice.ingress.Authenticator;
import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.Topics;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;

/**
 * {@code sluice bench matrix}: the same workloads over polling, SSE and WebSocket at a ladder of
 * concurrent clients, against a gateway and a worker running as processes of their own (so each
 * role's memory is its own), on a broker and Redis this command starts. Per cell: completed
 * requests/s, time to first token and inter-token latency p50/p99, errors, each role's memory;
 * per transport the knee of the throughput curve; per workload the Pareto front; cold start of
 * both roles, step by step, from their own logs.
 */
public final class MatrixBench {
    static final String SECRET = "matrix-bench-secret-0123456789abcdefghij";
    static final Pattern COLD = Pattern.compile("Cold start (\\w+) ([\\w -]+): (\\d+) ms");
    static final Pattern SHAPE = Pattern.compile("\\((\\d+) layers, (\\d+) heads x (\\d+), vocab");

    /** Settings of one run. */
    public record Plan(List<Integer> ladder, List<Transport> transports, List<Workload> workloads, List<Integer> batches,
            Duration duration, Duration pollInterval, String model, String largeModel, String gatewayHeap, String workerHeap,
            Path out, Path report, Path charts, String command) {
    }

    /** A role running as a child process. */
    public static final class Role implements AutoCloseable {
        final String name;
        final Process process;
        final Path log;
        final int port;
        final long startedNanos = System.nanoTime();

        public Role(String name, ProcessBuilder pb, Path log, int port) throws IOException {
            this.name = name;
            this.log = log;
            this.port = port;
            this.process = pb.redirectErrorStream(true).redirectOutput(log.toFile()).start();
        }

        public String metrics() {
            return get("http://127.0.0.1:" + port + "/metrics");
        }

        /** Waits for /readyz; returns ms from process start. */
        public long awaitReady(Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < deadline) {
                if (!process.isAlive()) {
                    throw new IllegalStateException(name + " exited; see " + log);
                }
                try {
                    HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/readyz"))
                            .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
                    if (r.statusCode() == 200) {
                        return (System.nanoTime() - startedNanos) / 1_000_000;
                    }
                } catch (IOException notYet) {
                    // not listening yet
                }
                Thread.sleep(50);
            }
            throw new IllegalStateException(name + " not ready within " + timeout + "; see " + log);
        }

        Map<String, Long> coldStart() throws IOException {
            Map<String, Long> steps = new LinkedHashMap<>();
            Matcher m = COLD.matcher(Files.readString(log));
            while (m.find()) {
                steps.put(m.group(2), Long.parseLong(m.group(3)));
            }
            return steps;
        }

        /** Memory of the process now: RSS from /proc, heap, non-heap and direct buffers from its meters. */
        Map<String, Double> memoryMb() throws IOException {
            Map<String, Double> out = new LinkedHashMap<>();
            for (String line : Files.readAllLines(Path.of("/proc", String.valueOf(process.pid()), "status"))) {
                if (line.startsWith("VmRSS:")) {
                    out.put("rss", Double.parseDouble(line.replaceAll("[^0-9]", "")) / 1024);
                }
            }
            String text = metrics();
            double heap = sum(text, "jvm_memory_used_bytes", "area=\"heap\"");
            double heapCommitted = sum(text, "jvm_memory_committed_bytes", "area=\"heap\"");
            double nonHeap = sum(text, "jvm_memory_committed_bytes", "area=\"nonheap\"");
            double direct = sum(text, "jvm_buffer_memory_used_bytes", "id=\"direct\"");
            out.put("heap_committed", heapCommitted / 1048576);
            out.put("non_heap", nonHeap / 1048576);
            out.put("direct", direct / 1048576);
            // What the JVM's counters do not account for: on a worker mostly ONNX Runtime's weights
            // and arenas, plus thread stacks and malloc. An upper bound on ONNX Runtime's native
            // memory, since committed heap pages that were never touched are not resident.
            out.put("native_other", Math.max(0, out.getOrDefault("rss", 0.0) - (heap + nonHeap + direct) / 1048576));
            out.put("heap_used", heap / 1048576);
            return out;
        }

        @Override
        public void close() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(15, java.util.concurrent.TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
        }
    }

    static final HttpClient HTTP = HttpClient.newHttpClient();

    static String get(String url) {
        try {
            return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5)).build(),
                    HttpResponse.BodyHandlers.ofString()).body();
        } catch (Exception e) {
            return "";
        }
    }

    public static double sum(String metrics, String name, String label) {
        double total = 0;
        for (String line : metrics.split("\n")) {
            if (line.startsWith(name + "{") && line.contains(label)) {
                total += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return total;
    }

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static ProcessBuilder java(String heap, String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx" + heap, "-XX:+UseSerialGC", "-Dorg.apache.avro.SERIALIZABLE_PACKAGES=io.sluice.schemas",
                "-cp", System.getProperty("java.class.path"), "io.sluice.app.Sluice"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd);
    }

    /** A plan from command-line values; names are matched case-insensitively. */
    public static Plan plan(List<Integer> ladder, List<String> transports, List<String> workloads, List<Integer> batches,
            Duration duration, Duration pollInterval, String model, String largeModel, String gatewayHeap, String workerHeap,
            Path out, Path report, Path charts, String command) {
        List<Transport> ts = transports.stream().map(t -> {
            try {
                return Transport.valueOf(t.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--transports: " + t + " is not poll, sse or ws");
            }
        }).toList();
        List<Workload> ws = workloads.stream().map(w -> {
            try {
                return Workload.valueOf(w.trim().toUpperCase(Locale.ROOT).replace('-', '_'));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--workloads: " + w + " is not short, long_prompt or multi_turn");
            }
        }).toList();
        return new Plan(ladder, ts, ws, batches, duration, pollInterval, model, largeModel, gatewayHeap, workerHeap, out,
                report, charts, command);
    }

    public static int run(Plan plan) throws Exception {
        System.out.println("# " + plan.command());
        System.out.printf("# machine: %d cores, %s, Java %s%n", Runtime.getRuntime().availableProcessors(), osLine(),
                System.getProperty("java.version"));
        Path dir = Files.createTempDirectory("sluice-matrix");
        ObjectNode report = LoadRunner.JSON.createObjectNode();
        report.put("command", plan.command());
        report.put("machine", Runtime.getRuntime().availableProcessors() + " cores, " + osLine());
        report.put("started", java.time.Instant.now().toString());
        ArrayNode cells = report.putArray("cells");
        ObjectNode cold = report.putObject("cold_start");
        try (EmbeddedKafka kafka = EmbeddedKafka.start(dir.resolve("kafka"), 0);
             RedisProcess redis = RedisProcess.start(dir.resolve("redis"), 0)) {
            Topics topics = Topics.withDefaultPrefix();
            try (Admin admin = Admin.create(Map.of("bootstrap.servers", kafka.bootstrapServers()))) {
                TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
            }
            String token = new Authenticator(SECRET, "sluice").mint("matrix", "matrix", List.of("infer"), Duration.ofHours(6));
            Map<String, String> env = new HashMap<>(Map.of("SLUICE_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrapServers(),
                    "SLUICE_REDIS_URI", redis.uri(), "SLUICE_GATEWAY_JWT_HS256_SECRET", SECRET,
                    "SLUICE_GATEWAY_TENANT_REQUESTS_PER_SECOND", "1000000000", "SLUICE_GATEWAY_MAX_CONNECTIONS_PER_TENANT", "1000000",
                    "SLUICE_GATEWAY_MAX_INFLIGHT_PER_SOCKET", "100000", "SLUICE_GATEWAY_IDLE_TIMEOUT_MS", "600000",
                    "SLUICE_GATEWAY_DRAIN_TIMEOUT_MS", "0"));
            double kvBytesPerToken = 0;
            for (int batch : plan.batches()) {
                int gatewayPort = freePort();
                int workerPort = freePort();
                Map<String, String> w = new HashMap<>(env);
                w.put("SLUICE_METRICS_PORT", String.valueOf(workerPort));
                w.put("SLUICE_WORKER_MAX_BATCH", String.valueOf(batch));
                w.put("SLUICE_WORKER_MODEL", plan.model());
                w.put("SLUICE_WORKER_ID", "matrix-worker");
                ProcessBuilder wp = java(plan.workerHeap(), "worker");
                wp.environment().putAll(w);
                Map<String, String> g = new HashMap<>(env);
                g.put("SLUICE_GATEWAY_PORT", String.valueOf(gatewayPort));
                g.put("SLUICE_GATEWAY_ID", "matrix-gateway");
                ProcessBuilder gp = java(plan.gatewayHeap(), "gateway");
                gp.environment().putAll(g);
                try (Role worker = new Role("worker", wp, dir.resolve("worker-" + batch + ".log"), workerPort);
                     Role gateway = new Role("gateway", gp, dir.resolve("gateway-" + batch + ".log"), gatewayPort)) {
                    long workerReady = worker.awaitReady(Duration.ofMinutes(3));
                    long gatewayReady = gateway.awaitReady(Duration.ofMinutes(3));
                    awaitLog(worker, "Cold start worker consumer assigned", Duration.ofMinutes(2));
                    if (!cold.has("bundled")) {
                        ObjectNode c = cold.putObject("bundled");
                        c.set("worker", steps(worker.coldStart(), workerReady));
                        c.set("gateway", steps(gateway.coldStart(), gatewayReady));
                        System.out.printf("cold start (bundled model): worker %s, ready %d ms; gateway %s, ready %d ms%n",
                                worker.coldStart(), workerReady, gateway.coldStart(), gatewayReady);
                    }
                    Matcher shape = SHAPE.matcher(Files.readString(worker.log));
                    if (shape.find()) {
                        kvBytesPerToken = 2.0 * Integer.parseInt(shape.group(1)) * Integer.parseInt(shape.group(2))
                                * Integer.parseInt(shape.group(3)) * 4;
                    }
                    String base = "http://127.0.0.1:" + gatewayPort;
                    // Warm-up, not measured: every transport's code path through the JIT first, so the
                    // first cell is not the one that pays for it.
                    for (Transport t : Transport.values()) {
                        LoadRunner warm = new LoadRunner(base, token, plan.pollInterval());
                        LoadRunner.Result r = warm.run(t, Workload.SHORT, 50, Duration.ofSeconds(5));
                        warm.close();
                        System.out.printf("warm-up %s: %d requests%n", t, r.completed());
                        drain(worker);
                    }
                    Map<String, Double> idleGateway = gateway.memoryMb();
                    for (Workload workload : plan.workloads()) {
                        for (Transport transport : plan.transports()) {
                            double previous = 0;
                            for (int clients : plan.ladder()) {
                                ObjectNode cell = runCell(plan, base, token, worker, gateway, idleGateway, workload,
                                        transport, clients, batch, kvBytesPerToken);
                                cells.add(cell);
                                double rate = cell.path("completed_per_s").asDouble();
                                long errors = cell.path("errors").asLong();
                                long completed = cell.path("completed").asLong();
                                drain(worker);
                                if (errors > 0.1 * Math.max(1, completed + errors) || rate < 0.5 * previous) {
                                    System.out.printf("  %s/%s: the machine gives out at %d clients; not going higher%n",
                                            workload, transport, clients);
                                    break;
                                }
                                previous = Math.max(previous, rate);
                            }
                        }
                    }
                }
            }
            if (plan.largeModel() != null && Files.isDirectory(Path.of(plan.largeModel()))) {
                int port = freePort();
                Map<String, String> w = new HashMap<>(env);
                w.put("SLUICE_METRICS_PORT", String.valueOf(port));
                w.put("SLUICE_WORKER_MODEL", plan.largeModel());
                w.put("SLUICE_WORKER_GROUP_ID", "matrix-cold-start");
                ProcessBuilder wp = java("3g", "worker");
                wp.environment().putAll(w);
                try (Role worker = new Role("worker", wp, dir.resolve("worker-large.log"), port)) {
                    long ready = worker.awaitReady(Duration.ofMinutes(5));
                    awaitLog(worker, "Cold start worker consumer assigned", Duration.ofMinutes(2));
                    ObjectNode c = cold.putObject("large");
                    c.put("model", plan.largeModel());
                    c.set("worker", steps(worker.coldStart(), ready));
                    Map<String, Double> mem = worker.memoryMb();
                    c.put("worker_rss_mb", mem.get("rss"));
                    System.out.printf("cold start (%s): worker %s, ready %d ms, RSS %.0f MB%n", plan.largeModel(),
                            worker.coldStart(), ready, mem.get("rss"));
                }
            }
        }
        MatrixReport.finish(report, plan);
        return 0;
    }

    static ObjectNode steps(Map<String, Long> steps, long readyMs) {
        ObjectNode n = LoadRunner.JSON.createObjectNode();
        steps.forEach(n::put);
        n.put("process start to /readyz", readyMs);
        return n;
    }

    static void awaitLog(Role role, String text, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!Files.readString(role.log).contains(text)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(role.name + " never logged '" + text + "'; see " + role.log);
            }
            Thread.sleep(50);
        }
    }

    /** Waits until the worker holds nothing, so a cell does not start behind the last one's backlog. */
    static void drain(Role worker) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofMinutes(3).toNanos();
        while (System.nanoTime() < deadline) {
            String m = worker.metrics();
            if (sum(m, "sluice_queue_depth", "") == 0 && sum(m, "sluice_active_sequences", "") == 0) {
                return;
            }
            Thread.sleep(200);
        }
    }

    static ObjectNode runCell(Plan plan, String base, String token, Role worker, Role gateway, Map<String, Double> idleGateway,
            Workload workload, Transport transport, int clients, int batch, double kvBytesPerToken) throws Exception {
        LoadRunner runner = new LoadRunner(base, token, plan.pollInterval());
        Map<String, Map<String, Double>> memory = new HashMap<>();
        Thread sampler = new Thread(() -> {
            try {
                Thread.sleep((long) (plan.duration().toMillis() * 0.7));
                memory.put("worker", worker.memoryMb());
                memory.put("gateway", gateway.memoryMb());
                String m = worker.metrics();
                memory.put("engine", Map.of("active_sequences", sum(m, "sluice_active_sequences", ""),
                        "mean_batch", sum(m, "sluice_batch_size_sum", "") / Math.max(1, sum(m, "sluice_batch_size_count", ""))));
            } catch (Exception e) {
                // figures stay empty
            }
        });
        sampler.start();
        LoadRunner.Result r = runner.run(transport, workload, clients, plan.duration());
        sampler.join();
        runner.close();
        ObjectNode cell = LoadRunner.JSON.createObjectNode();
        cell.put("workload", workload.name().toLowerCase(Locale.ROOT)).put("transport", transport.name().toLowerCase(Locale.ROOT))
                .put("clients", clients).put("batch", batch).put("seconds", r.seconds()).put("completed", r.completed())
                .put("errors", r.errors()).put("completed_per_s", r.completedPerSecond())
                .put("ttft_p50_ms", r.ttft(0.5)).put("ttft_p99_ms", r.ttft(0.99))
                .put("itl_p50_ms", r.itl(0.5)).put("itl_p99_ms", r.itl(0.99)).put("mean_context_tokens", r.meanContextTokens());
        ObjectNode mem = cell.putObject("memory_mb");
        memory.forEach((role, figures) -> {
            ObjectNode n = mem.putObject(role);
            figures.forEach(n::put);
        });
        if (memory.containsKey("gateway") && idleGateway.containsKey("heap_used") && transport != Transport.POLL) {
            double perClient = (memory.get("gateway").get("heap_used") - idleGateway.get("heap_used")) * 1024 / clients;
            cell.put("gateway_heap_kb_per_client", Math.max(0, perClient));
        }
        cell.put("kv_cache_bytes_per_token", kvBytesPerToken);
        cell.put("kv_cache_bytes_per_sequence", kvBytesPerToken * r.meanContextTokens());
        System.out.printf("%-12s %-5s %6d clients  %8.1f done/s  %6d err  TTFT p50 %7.0f p99 %7.0f ms  ITL p50 %5.1f p99 %6.1f ms"
                        + "  worker RSS %s MB  gateway RSS %s MB%n", workload, transport, clients, r.completedPerSecond(),
                r.errors(), r.ttft(0.5), r.ttft(0.99), r.itl(0.5), r.itl(0.99),
                memory.containsKey("worker") ? String.format("%.0f", memory.get("worker").get("rss")) : "?",
                memory.containsKey("gateway") ? String.format("%.0f", memory.get("gateway").get("rss")) : "?");
        return cell;
    }

    static String osLine() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim() + ", " + Runtime.getRuntime().maxMemory() / (1 << 20)
                            + " MB max heap here, " + System.getProperty("os.name") + " " + System.getProperty("os.arch");
                }
            }
        } catch (IOException e) {
            // not Linux
        }
        return System.getProperty("os.name") + " " + System.getProperty("os.arch");
    }
}
