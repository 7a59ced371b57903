package io.sluice.app;

import io.sluice.devstack.EmbeddedKafka;
import io.sluice.devstack.RedisProcess;
import io.sluice.ingress.Authenticator;
import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Topics;
import io.sluice.worker.Worker;
import io.sluice.worker.WorkerConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.config.ConfigException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The {@code sluice} command. */
// INHERIT: every subcommand answers --help and --version too, not only the top one.
@Command(name = "sluice", mixinStandardHelpOptions = true, scope = CommandLine.ScopeType.INHERIT, version = "sluice 0.1.0",
        description = "Kafka-backed asynchronous inference pipeline.",
        subcommands = {Sluice.Dev.class, Sluice.GatewayCommand.class, Sluice.WorkerCommand.class, Sluice.TopicsCommand.class,
                Sluice.Token.class, Sluice.Config.class, Sluice.Bench.class, DlqCommands.ArchiverCommand.class,
                DlqCommands.Dlq.class, LagCommand.class, OpsCommand.class})
public final class Sluice {

    public static void main(String[] args) {
        // Avro refuses to build classes it was not told to trust; ours are the only ones it builds.
        System.setProperty("org.apache.avro.SERIALIZABLE_PACKAGES", "io.sluice.schemas");
        int code = commandLine().execute(args);
        if (code != 0) {
            System.exit(code);
        }
    }

    /** The command line {@link #main} runs: settings errors are one line and exit code 2. */
    static CommandLine commandLine() {
        return new CommandLine(new Sluice())
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setExecutionExceptionHandler((ex, cmd, parsed) -> {
                    if (ex instanceof ConfigException || ex instanceof IllegalArgumentException) {
                        cmd.getErr().println("sluice: " + ex.getMessage());
                        return 2;
                    }
                    throw ex;
                });
    }

    static final class Common {
        @Option(names = "--config", description = "Properties file with settings (see `sluice config --describe`).")
        Path configFile;
    }

    static void awaitShutdown(AutoCloseable... parts) throws InterruptedException {
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (AutoCloseable part : parts) {
                try {
                    part.close();
                } catch (Exception e) {
                    System.err.println("sluice: error while stopping: " + e);
                }
            }
            stopped.countDown();
        }, "sluice-shutdown"));
        stopped.await();
    }

    @Command(name = "dev", description = "Run the whole pipeline on this machine: a real Kafka broker (KRaft), a real "
            + "Redis server, a gateway and a worker with the bundled model. Ctrl-C stops all of it.")
    static final class Dev implements Callable<Integer> {
        @Option(names = "--data-dir", defaultValue = ".sluice", description = "Where Kafka, Redis and the dev key keep state.")
        Path dataDir;
        @Option(names = "--port", defaultValue = "8080", description = "Gateway port.")
        int port;
        @Option(names = "--kafka-port", defaultValue = "0", description = "Kafka port; 0 picks a free one.")
        int kafkaPort;
        @Option(names = "--ops-port", defaultValue = "8090", description = "Port of the ops console (/ops) and its metrics.")
        int opsPort;
        @Option(names = "--redis-port", defaultValue = "0", description = "Redis port; 0 picks a free one.")
        int redisPort;
        @Option(names = "--model", defaultValue = "classpath:sluice-tiny", description = "Model directory or classpath:sluice-tiny.")
        String model;

        @Override
        public Integer call() throws Exception {
            long t0 = System.nanoTime();
            String secret = DevSecrets.signingKey(dataDir);
            EmbeddedKafka kafka = EmbeddedKafka.start(dataDir.resolve("kafka"), kafkaPort);
            RedisProcess redis;
            try {
                redis = RedisProcess.start(dataDir.resolve("redis"), redisPort);
            } catch (Exception e) {
                kafka.close();
                throw e;
            }
            Topics topics = Topics.withDefaultPrefix();
            try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers()))) {
                TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
            }
            Map<String, Object> common = new HashMap<>();
            common.put(CommonConfig.BOOTSTRAP_SERVERS, kafka.bootstrapServers());
            common.put(CommonConfig.REDIS_URI, redis.uri());
            common.put(CommonConfig.TOPIC_PREFIX, topics.prefix());

            Map<String, Object> workerProps = new HashMap<>(common);
            workerProps.put(WorkerConfig.MODEL, model);
            workerProps.put(WorkerConfig.ID, "dev-worker");
            io.micrometer.prometheusmetrics.PrometheusMeterRegistry meters = io.sluice.ops.metrics.Metrics.create("dev", "dev");
            Worker worker = Worker.builder(new WorkerConfig(workerProps)).meters(meters).start();

            Map<String, Object> gatewayProps = new HashMap<>(common);
            gatewayProps.put(GatewayConfig.PORT, port);
            gatewayProps.put(GatewayConfig.JWT_SECRET, secret);
            gatewayProps.put(GatewayConfig.ID, "dev-gateway");
            Gateway gateway = Gateway.start(new GatewayConfig(gatewayProps), meters);
            gateway.readiness().add("worker-redis", worker::redisAvailable);

            Map<String, Object> archiverProps = new HashMap<>(common);
            archiverProps.put(io.sluice.archive.ArchiverConfig.DIR, dataDir.resolve("archive").toString());
            io.sluice.archive.Archiver archiver = io.sluice.archive.Archiver.start(
                    new io.sluice.archive.ArchiverConfig(archiverProps));
            Roles.meter(archiver, meters);
            Map<String, Object> opsProps = new HashMap<>(common);
            opsProps.put(io.sluice.ops.OpsConfig.WORKER_GROUP, new WorkerConfig(workerProps).getString(WorkerConfig.GROUP_ID));
            opsProps.put(io.sluice.ops.OpsConfig.LAG_INTERVAL_MS, 2000L);
            io.sluice.ops.lag.LagSampler lag = new io.sluice.ops.lag.LagSampler(new io.sluice.ops.OpsConfig(opsProps), meters,
                    java.time.Clock.systemUTC());
            var circuits = new io.sluice.ops.console.CircuitWatcher(kafka.bootstrapServers(), topics.events());
            var opsHttp = io.sluice.ops.http.OpsHttpServer.start("127.0.0.1", opsPort, meters, gateway.readiness());
            OpsConsole.mount(opsHttp, lag, circuits, archiver.root(), gateway.authenticator());
            worker.awaitAssignment(Duration.ofSeconds(30));
            String token = gateway.authenticator().mint("dev", "dev", List.of("infer", "dlq:read", "dlq:replay", "ops:read"),
                    Duration.ofDays(30));
            long readyMs = (System.nanoTime() - t0) / 1_000_000;
            System.out.printf("%nSluice dev is ready in %d ms.%n%n"
                            + "  WebSocket   %s   (subprotocol %s)%n"
                            + "  Health      http://127.0.0.1:%d/healthz, /readyz, /metrics%n"
                            + "  Console     http://127.0.0.1:%d/ops#token=<dev token>%n"
                            + "  Kafka       %s%n"
                            + "  Redis       %s%n"
                            + "  Data        %s%n"
                            + "  DLQ archive %s   (sluice dlq list --archive %s)%n%n"
                            + "  Dev token (tenant dev, 30 days):%n  %s%n%n"
                            + "  Try it:%n  websocat -H 'Authorization: Bearer %s' %s%n"
                            + "  {\"type\":\"generate\",\"id\":\"1\",\"prompt\":\"The river\",\"max_tokens\":24}%n%n"
                            + "Ctrl-C stops everything.%n",
                    readyMs, gateway.url(), Gateway.SUBPROTOCOL, gateway.port(), opsHttp.port(), kafka.bootstrapServers(), redis.uri(),
                    dataDir.toAbsolutePath(), archiver.root(), archiver.root(), token, token, gateway.url());
            awaitShutdown(opsHttp, gateway, worker, archiver, lag, circuits, redis, kafka);
            return 0;
        }
    }

    @Command(name = "gateway", description = "Run a gateway against external Kafka and Redis.")
    static final class GatewayCommand implements Callable<Integer> {
        @CommandLine.Mixin
        Common common = new Common();

        @Override
        public Integer call() throws Exception {
            GatewayConfig config = new GatewayConfig(Settings.load(GatewayConfig.CONFIG, common.configFile, System.getenv(), Map.of()));
            Gateway gateway = Gateway.start(config);
            System.out.println("Gateway listening on " + gateway.url());
            awaitShutdown(gateway);
            return 0;
        }
    }

    @Command(name = "worker", description = "Run a worker against external Kafka and Redis.")
    static final class WorkerCommand implements Callable<Integer> {
        @CommandLine.Mixin
        Common common = new Common();

        @Override
        public Integer call() throws Exception {
            WorkerConfig config = new WorkerConfig(Settings.load(WorkerConfig.CONFIG, common.configFile, System.getenv(), Map.of()));
            var meters = io.sluice.ops.metrics.Metrics.create("worker", config.workerId());
            var kafka = new io.sluice.ops.health.KafkaProbe(config.getString(CommonConfig.BOOTSTRAP_SERVERS));
            java.util.concurrent.atomic.AtomicReference<Worker> started = new java.util.concurrent.atomic.AtomicReference<>();
            // The port is taken before the worker joins its group: a port in use stops the process
            // before it holds any partition, instead of after.
            var http = Roles.serve(config, meters, new io.sluice.ops.health.Readiness().add("kafka", kafka)
                    .add("redis", () -> started.get() != null && started.get().redisAvailable())
                    .add("model", () -> started.get() != null));
            Worker worker = Worker.builder(config).meters(meters).start();
            started.set(worker);
            awaitShutdown(() -> {
                if (http != null) {
                    http.close();
                }
            }, worker, kafka);
            return 0;
        }
    }

    @Command(name = "topics", description = "Create the deployment's topics that do not exist yet (idempotent).")
    static final class TopicsCommand implements Callable<Integer> {
        @CommandLine.Mixin
        Common common = new Common();
        @Option(names = "--partitions", defaultValue = "4", description = "Partitions per topic.")
        int partitions;
        @Option(names = "--replication-factor", defaultValue = "1", description = "Replicas per partition.")
        short replicationFactor;

        @Override
        public Integer call() throws Exception {
            var props = Settings.load(CommonConfig.define(), common.configFile, System.getenv(), Map.of());
            var config = new org.apache.kafka.common.config.AbstractConfig(CommonConfig.define(), props);
            Topics topics = new Topics(config.getString(CommonConfig.TOPIC_PREFIX));
            var single = TopicProvisioner.Layout.singleNode();
            var layout = new TopicProvisioner.Layout(partitions, replicationFactor, single.tokenRetention(), single.dlqRetention());
            try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG,
                    config.getString(CommonConfig.BOOTSTRAP_SERVERS)))) {
                List<String> created = TopicProvisioner.ensure(admin, topics, layout);
                System.out.println(created.isEmpty() ? "All topics exist." : "Created " + created);
            }
            return 0;
        }
    }

    @Command(name = "token", description = "Mint a JWT signed with the dev signing key (or the configured HS256 secret).")
    static final class Token implements Callable<Integer> {
        @Option(names = "--tenant", required = true, description = "Tenant claim.")
        String tenant;
        @Option(names = "--scopes", defaultValue = "infer", split = ",", description = "Scopes, comma-separated: infer, dlq:read, dlq:replay, ops:read.")
        List<String> scopes;
        @Option(names = "--subject", defaultValue = "dev", description = "Subject (sub) claim.")
        String subject;
        @Option(names = "--ttl", defaultValue = "PT24H", description = "Lifetime as an ISO-8601 duration.")
        Duration ttl;
        @Option(names = "--data-dir", defaultValue = ".sluice", description = "Data directory holding the dev signing key.")
        Path dataDir;
        @Option(names = "--audience", defaultValue = "sluice", description = "Audience (aud) claim.")
        String audience;

        @Override
        public Integer call() throws Exception {
            String secret = System.getenv(Settings.envName(GatewayConfig.JWT_SECRET));
            if (secret == null) {
                secret = DevSecrets.signingKey(dataDir);
            }
            System.out.println(new Authenticator(secret, audience).mint(subject, tenant, scopes, ttl));
            return 0;
        }
    }

    @Command(name = "bench", description = "Benchmarks that print figures (they assert nothing).",
            subcommands = {Sluice.BenchStream.class, Sluice.BenchEngine.class, Sluice.BenchCheckpoint.class,
                Sluice.BenchAccept.class, Sluice.BenchSockets.class, Sluice.BenchPush.class, BenchMatrixCommand.class})
    static final class Bench {
    }

    @Command(name = "engine", description = "The batching engine beside a bare ONNX Runtime loop over the same model.")
    static final class BenchEngine implements Callable<Integer> {
        @Option(names = "--model", defaultValue = "classpath:sluice-tiny", description = "Model directory or classpath:sluice-tiny.")
        String model;
        @Option(names = "--concurrency", defaultValue = "1,8,32", split = ",", description = "Concurrency levels.")
        int[] concurrency;
        @Option(names = "--max-tokens", defaultValue = "64", description = "Tokens per request.")
        int maxTokens;
        @Option(names = "--stagger", defaultValue = "2", description = "A new request arrives every this many steps.")
        int stagger;
        @Option(names = "--threads", defaultValue = "1", description = "ONNX Runtime intra-op threads.")
        int threads;
        @Option(names = "--prompt", defaultValue = "The river flows past the old mill and", description = "Prompt of every request.")
        String prompt;

        @Override
        public Integer call() throws Exception {
            System.out.printf("sluice bench engine --model %s --concurrency %s --max-tokens %d --stagger %d --threads %d%n",
                    model, java.util.Arrays.toString(concurrency).replaceAll("[\\[\\] ]", ""), maxTokens, stagger, threads);
            try (var bundle = io.sluice.worker.model.ModelBundle.load(model, "cpu", threads)) {
                var rows = io.sluice.worker.bench.EngineBench.run(bundle, prompt, concurrency, maxTokens, stagger);
                System.out.print(io.sluice.worker.bench.EngineBench.table(model, rows));
            }
            return 0;
        }
    }

    @Command(name = "checkpoint", description = "Latency a decode step pays for its write-ahead checkpoint in Redis.")
    static final class BenchCheckpoint implements Callable<Integer> {
        @Option(names = "--redis", description = "Redis URI; default: start a local redis-server for the run.")
        String redis;
        @Option(names = "--batch", defaultValue = "1,8,32", split = ",", description = "Sequences per step.")
        int[] batch;
        @Option(names = "--steps", defaultValue = "2000", description = "Steps measured per batch size.")
        int steps;

        @Override
        public Integer call() throws Exception {
            System.out.printf("sluice bench checkpoint --batch %s --steps %d%n",
                    java.util.Arrays.toString(batch).replaceAll("[\\[\\] ]", ""), steps);
            java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("sluice-bench-redis");
            RedisProcess local = redis == null ? RedisProcess.start(dir, 0) : null;
            String uri = redis != null ? redis : local.uri();
            try (var store = io.sluice.idempotency.RedisIdempotencyStore.connect(java.net.URI.create(uri), "bench:",
                    Duration.ofMinutes(10))) {
                System.out.printf("%-6s %12s %12s %14s%n", "batch", "p50 us", "p99 us", "per token us");
                for (int b : batch) {
                    List<String> keys = new java.util.ArrayList<>();
                    List<Long> fences = new java.util.ArrayList<>();
                    for (int i = 0; i < b; i++) {
                        String key = "bench:" + java.util.UUID.randomUUID();
                        keys.add(key);
                        fences.add(store.claim(key, key, "bench", Duration.ofMinutes(10)).fence());
                    }
                    long[] nanos = new long[steps];
                    for (int s = -200; s < steps; s++) {
                        List<io.sluice.idempotency.IdempotencyStore.Append> appends = new java.util.ArrayList<>();
                        int seq = s + 200;
                        for (int i = 0; i < b; i++) {
                            appends.add(new io.sluice.idempotency.IdempotencyStore.Append(keys.get(i), fences.get(i), seq,
                                    List.of(seq % 1000)));
                        }
                        long t0 = System.nanoTime();
                        store.appendAll(appends);
                        if (s >= 0) {
                            nanos[s] = System.nanoTime() - t0;
                        }
                    }
                    java.util.Arrays.sort(nanos);
                    double p50 = nanos[steps / 2] / 1e3;
                    double p99 = nanos[(int) (steps * 0.99)] / 1e3;
                    System.out.printf("%-6d %12.0f %12.0f %14.1f%n", b, p50, p99, p50 / b);
                }
            } finally {
                if (local != null) {
                    local.close();
                }
            }
            return 0;
        }
    }

    /**
     * What the gateway benchmarks run against: a broker and Redis of their own in a temporary
     * directory, the default topics, and gateway settings without the limits a benchmark would hit.
     */
    static final class BenchStack implements AutoCloseable {
        static final String SECRET = "bench-secret-0123456789abcdefghijklmnop";
        final EmbeddedKafka kafka;
        final RedisProcess redis;
        final Topics topics = Topics.withDefaultPrefix();
        final String token = new Authenticator(SECRET, "sluice").mint("bench", "bench", List.of("infer"), Duration.ofHours(1));

        /** The broker's log and Redis's files: gigabytes after a run, deleted on close. */
        private final java.nio.file.Path dir;

        BenchStack(String name) throws Exception {
            this(name, false);
        }

        /**
         * With {@code inMemory}, the broker's log is on the tmpfs at /dev/shm (where there is one)
         * and the requests topic keeps only its last 256 MiB per partition, deleted a second after
         * it rolls off, so a run that writes ten gigabytes is not also a measure of the kernel's
         * writeback to a disk (40-150 MB/s on these two cores, with a fifth to a third of their
         * time in the kernel).
         */
        BenchStack(String name, boolean inMemory) throws Exception {
            java.nio.file.Path shm = java.nio.file.Path.of("/dev/shm");
            dir = inMemory && java.nio.file.Files.isDirectory(shm) && java.nio.file.Files.isWritable(shm)
                    ? java.nio.file.Files.createTempDirectory(shm, name)
                    : java.nio.file.Files.createTempDirectory(name);
            kafka = EmbeddedKafka.start(dir.resolve("kafka"), 0, inMemory
                    ? Map.of("log.retention.check.interval.ms", "2000", "log.segment.delete.delay.ms", "1000")
                    : Map.of());
            redis = RedisProcess.start(dir.resolve("redis"), 0);
            try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers()))) {
                TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
                if (inMemory) {
                    var requests = new org.apache.kafka.common.config.ConfigResource(
                            org.apache.kafka.common.config.ConfigResource.Type.TOPIC, topics.requests());
                    admin.incrementalAlterConfigs(Map.of(requests, List.of(new org.apache.kafka.clients.admin.AlterConfigOp(
                            new org.apache.kafka.clients.admin.ConfigEntry("retention.bytes", String.valueOf(256L << 20)),
                            org.apache.kafka.clients.admin.AlterConfigOp.OpType.SET)))).all().get();
                }
            }
        }

        /** Where the broker's log and Redis's files are. */
        java.nio.file.Path dir() {
            return dir;
        }

        GatewayConfig gatewayConfig() {
            Map<String, Object> g = new HashMap<>();
            g.put(CommonConfig.BOOTSTRAP_SERVERS, kafka.bootstrapServers());
            g.put(CommonConfig.REDIS_URI, redis.uri());
            g.put(GatewayConfig.PORT, 0);
            g.put(GatewayConfig.JWT_SECRET, SECRET);
            g.put(GatewayConfig.TENANT_REQUESTS_PER_SECOND, 1e9);
            g.put(GatewayConfig.MAX_INFLIGHT_PER_SOCKET, 100_000);
            g.put(GatewayConfig.MAX_CONNECTIONS_PER_TENANT, 1_000_000);
            g.put(GatewayConfig.IDLE_TIMEOUT_MS, 600_000L);
            g.put(GatewayConfig.DRAIN_TIMEOUT_MS, 0L);
            return new GatewayConfig(g);
        }

        /** A JVM running {@code mainClass} on this process's class path. */
        static ProcessBuilder java(String heap, String mainClass, String... args) {
            return java(heap, List.of(), mainClass, args);
        }

        /** As {@link #java(String, String, String...)}, with more options for the JVM. */
        static ProcessBuilder java(String heap, List<String> jvmOptions, String mainClass, String... args) {
            List<String> cmd = new java.util.ArrayList<>(List.of(
                    java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx" + heap));
            cmd.addAll(jvmOptions);
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass));
            cmd.addAll(List.of(args));
            return new ProcessBuilder(cmd);
        }

        @Override
        public void close() throws java.io.IOException {
            redis.close();
            kafka.close();
            try (var paths = java.nio.file.Files.walk(dir)) {
                for (java.nio.file.Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    java.nio.file.Files.deleteIfExists(p);
                }
            }
        }
    }

    @Command(name = "accept", description = "Accepted requests/s through a gateway beside Kafka's own ProducerPerformance "
            + "with the same record size, on a broker and Redis this command starts.")
    static final class BenchAccept implements Callable<Integer> {
        @Option(names = "--requests", defaultValue = "2000000", description = "Measured requests per side and trial. "
                + "ProducerPerformance writes 500,000 in about a second on a warm broker, too short a window to "
                + "measure it steadily; 2,000,000 gives it several seconds.")
        int requests;
        @Option(names = "--connections", defaultValue = "8", description = "Sockets sending requests.")
        int connections;
        @Option(names = "--warmup", defaultValue = "6000000", description = "At most this many requests are sent, "
                + "unmeasured, through the gateway before each trial's measured ones, in rounds of --warmup-round, until "
                + "a round in which the JITs of the gateway and of the broker together compiled for less than --jit-quiet "
                + "of the round's time: both sides are compared at steady state, not while the JIT compiles them. "
                + "Each ProducerPerformance run gets as many (its --warmup-records). On two cores shared with the broker, "
                + "a gateway's JIT takes 5-10 million requests to settle, which the trials 0 and the first trial's "
                + "warm-up give it; the rounds are printed.")
        int warmup;
        @Option(names = "--jit-quiet", defaultValue = "0.2", description = "Warm-up ends after a round in which the "
                + "compile time of the gateway's JIT and the broker's together was below this fraction of the round's "
                + "duration.")
        double jitQuiet;
        @Option(names = "--trials", defaultValue = "3", description = "Trials, each a fresh ProducerPerformance run "
                + "beside a measured window of the one gateway process every trial shares; the median ratio is the result.")
        int trials;
        @Option(names = "--requests-per-socket", defaultValue = "5000", description = "Requests a socket sends before "
                + "it is closed and a new one takes its place. No worker runs, so requests never finish; this bounds the "
                + "streams the gateway follows (connections x this), as finishing requests do in a deployment.")
        int perSocket;
        // A plain flag, not a negatable option: picocli gives the negated form of a negatable option
        // the default's value, so --no-broker-warmup-trial with a default of true left trial 0 on.
        @Option(names = "--no-broker-warmup-trial", description = "Skip trial 0, which runs before the others, gateway "
                + "side only and not counted: the broker's warm-up with the gateway's traffic (and more of the gateway's own), "
                + "repeated (at most three times) until the broker compiled for under 3 %% of its measured window.")
        boolean noBrokerWarmupTrial;
        @Option(names = "--in-process", description = "Run the gateway inside this JVM, beside the broker, instead of "
                + "as a process of its own (which is how it is deployed, with its own JIT and heap). Its CPU and JIT "
                + "time cannot be told from the broker's then, so the warm-up runs the whole --warmup.")
        boolean inProcess;
        @Option(names = "--gateway-heap", defaultValue = "1g", description = "Heap of the gateway process.")
        String gatewayHeap;
        @Option(names = "--gateway-jvm-options", defaultValue = "", description = "More options for the gateway's JVM, "
                + "space-separated, to measure a deployment's own flags.")
        String gatewayJvmOptions;
        @Option(names = "--gc", defaultValue = "parallel", description = "Collector of both the gateway's and "
                + "ProducerPerformance's JVMs: parallel, with half the heap young (how docker-compose.yml runs gateways), or g1 "
                + "(the JVM's default). "
                + "Both sides get the same one, so the collector is not what the ratio compares (with --in-process the "
                + "gateway has this JVM's).")
        Collector gc;
        @Option(names = "--no-huge-pages", description = "Leave both JVMs on the kernel's small pages. By default the "
                + "gateway's and ProducerPerformance's heaps are both madvised for transparent huge pages "
                + "(-XX:+UseTransparentHugePages), as docker-compose.yml runs gateways; where the kernel has them off the "
                + "JVMs say so and go on without.")
        boolean noHugePages;
        @Option(names = "--broker-in-memory", description = "Put the broker's log on the tmpfs at /dev/shm (where "
                + "there is one), the requests topic keeping its last 256 MiB per partition, instead of a temporary "
                + "directory on disk. A run writes about ten gigabytes; on disk the kernel's writeback of them throttles "
                + "the broker's appends, which ProducerPerformance, one producer waiting on its acknowledgements, feels "
                + "far more than the gateway, whose sockets keep thousands of requests in flight.")
        boolean brokerInMemory;
        @Option(names = "--warmup-round", defaultValue = "500000", description = "The warm-up is sent in rounds of this "
                + "many requests; each round's rate, the gateway's CPU per request and its JIT time are printed, so a "
                + "run shows the measured requests met a gateway at steady state.")
        int warmupRound;

        @Override
        public Integer call() throws Exception {
            System.out.printf("sluice bench accept --requests %d --warmup %d --warmup-round %d --jit-quiet %.2f --trials %d "
                    + "--connections %d --requests-per-socket %d --gc %s%s%n", requests, warmup, warmupRound, jitQuiet, trials,
                    connections, perSocket, gc.name().toLowerCase(java.util.Locale.ROOT), (noHugePages ? " --no-huge-pages" : "")
                    + (brokerInMemory ? " --broker-in-memory" : ""));
            try (BenchStack stack = new BenchStack("sluice-bench-accept", brokerInMemory)) {
                System.out.printf("broker's log in %s%n", stack.dir());
                EmbeddedKafka kafka = stack.kafka;
                Topics topics = stack.topics;
                String prompt = "The river flows past the old mill and the boats wait at the lock for the keeper";
                String generate = "{\"type\":\"generate\",\"prompt\":\"" + prompt + "\",\"max_tokens\":64}";
                // The record the gateway writes for that message: keyed by its 32-character request id,
                // which is also the value's request and trace id. ProducerPerformance writes unkeyed
                // records, so its values are as long as the gateway's key and value together: both sides
                // put the same bytes per record on the broker, which parses and copies every one.
                String id = "x".repeat(32);
                int valueSize = io.sluice.schemas.SluiceCodec.get().encode(io.sluice.schemas.InferenceRequest.newBuilder()
                        .setRequestId(id).setTenant("bench").setPrincipal("bench").setPrompt(prompt).setTraceId(id)
                        .setCreatedAt(java.time.Instant.now()).setReplyPartition(0).build()).length;
                int recordSize = id.getBytes(java.nio.charset.StandardCharsets.UTF_8).length + valueSize;
                System.out.printf("record size %d bytes (the gateway's: key %d, value %d); gateway %s%n", recordSize,
                        recordSize - valueSize, valueSize, inProcess ? "in this JVM" : "in its own JVM (-Xmx" + gatewayHeap + ")");

                // The broker is part of both measurements: warm it up first, so that neither side pays
                // for compiling the broker's produce path (its own JIT keeps gaining for millions of records).
                perf(kafka, topics, recordSize, BROKER_WARMUP, 0, sideFlags());

                String token = stack.token;
                Map<String, Object> settings = new HashMap<>(stack.gatewayConfig().originals());
                // No worker runs here, so every request stays open; closing a socket (the warm-up's, or
                // one replaced after --requests-per-socket) would otherwise write a cancel for each.
                settings.put(GatewayConfig.CANCEL_ON_DISCONNECT, false);
                List<Double> ratios = new java.util.ArrayList<>();
                System.out.printf("%-6s %28s %28s %7s%n", "trial", "ProducerPerformance rec/s", "gateway accepted req/s", "ratio");
                // Trial 0 warms the broker with the gateway's traffic as ProducerPerformance warmed it with
                // its own, and is not counted: its keyed records over every partition, consumer group and
                // fetches run broker code ProducerPerformance's do not, and a first measured run recompiled
                // the broker's produce path (3.3-4.2 s of this JVM's JIT in four runs, under 0.4 s in later
                // trials), at 2.7-3.0 us of broker CPU per request against 1.7-2.0.
                int brokerWarmups = 0;
                // One gateway process serves every trial, as a deployed gateway serves for days: on two
                // cores its JIT needs tens of seconds of this traffic to settle (C2 reaches Kafka's
                // per-batch code, run a few thousand times a second, late, and rare branches keep
                // sending hot methods back to be compiled again), so a fresh process per trial was
                // measured while still compiling, at 6-6.7 us per request against 5.1-5.5 once settled.
                try (GatewayUnderTest gateway = inProcess ? GatewayUnderTest.inProcess(new GatewayConfig(settings))
                        : GatewayUnderTest.process(settings, gatewayHeap, gatewayJvmOptions())) {
                    for (int trial = noBrokerWarmupTrial ? 1 : 0; trial <= trials; trial++) {
                        Measured m = measure(gateway, kafka, topics, token, generate, trial);
                        if (trial == 0) {
                            System.out.printf("%-6s %28s %28.0f %7s  (the broker's warm-up, not counted)%n", "0", "-",
                                    m.perSecond(), "-");
                            // One such trial did not always settle the broker: in runs of five trials the first
                            // counted one still had 0.4-0.5 s of broker JIT and 2.2-2.4 us of broker and load
                            // generator CPU per request, the later ones 0.2-0.35 s and 1.6-1.7 us. Trial 0 is
                            // repeated, at most three times, until the broker compiled for under 3 % of its window.
                            if (++brokerWarmups < MAX_BROKER_WARMUPS && m.brokerJitShare() > BROKER_JIT_QUIET) {
                                trial--;
                            }
                            continue;
                        }
                        // Kafka's own producer benchmark, same broker, acks, idempotence, linger and record
                        // size, in a fresh JVM warmed with --warmup records: its steady-state figure is compared.
                        double baseline = perf(kafka, topics, recordSize, requests, warmup, sideFlags());
                        ratios.add(m.perSecond() / baseline);
                        System.out.printf("%-6d %28.0f %28.0f %6.2fx%n", trial, baseline, m.perSecond(),
                                m.perSecond() / baseline);
                    }
                }
                List<Double> sorted = ratios.stream().sorted().toList();
                System.out.printf("every accepted frame matched a request on %s (acks=all, idempotent, linger 5 ms, batch.size 64 KiB both sides)%n",
                        topics.requests());
                System.out.printf("gateway / ProducerPerformance, median of %d trials: %.2fx (min %.2fx, max %.2fx)%n", trials,
                        io.sluice.ingress.bench.AcceptBench.median(ratios), sorted.get(0), sorted.get(sorted.size() - 1));
            }
            return 0;
        }

        /** A trial's measured window: accepted requests/s, and the share of it the broker's JIT compiled for. */
        record Measured(double perSecond, double brokerJitShare) {
        }

        /**
         * Warms the gateway up in rounds of --warmup-round until its JIT and the broker's are quiet
         * (at most --warmup requests), then sends the measured requests and checks that every
         * accepted frame stands for a request on the topic.
         */
        private Measured measure(GatewayUnderTest gateway, EmbeddedKafka kafka, Topics topics, String token, String generate,
                int trial) throws Exception {
            int warmed = 0;
            for (int round = 1; warmed < warmup; round++) {
                int n = Math.min(warmupRound, warmup - warmed);
                Usage u0 = gateway.usage();
                long ownJit0 = ownCompileMillis();
                var w = io.sluice.ingress.bench.AcceptBench.run(gateway.url(), token, connections,
                        Math.max(1, n / connections), perSocket, generate);
                Usage u1 = gateway.usage();
                long ownJit = ownCompileMillis() - ownJit0;
                System.out.printf("  warm-up %-3d %26.0f req/s  %s; broker's JIT %5d ms%n", round, w.perSecond(),
                        u1.since(u0, w.requests()), ownJit);
                warmed += w.requests();
                awaitClosed(gateway);
                // The broker's JIT counts too: until the broker code the gateway's traffic runs
                // is compiled (see trial 0), it takes the two cores the gateway is measured on.
                if (u1.compileMillis() - u0.compileMillis() + ownJit < jitQuiet * w.seconds() * 1000) {
                    break;
                }
            }
            long before = endOffsets(kafka.bootstrapServers(), topics.requests());
            Usage u0 = gateway.usage();
            long own0 = ownCpuNanos();
            long ownJit0 = ownCompileMillis();
            long[] machine0 = machineJiffies();
            var r = io.sluice.ingress.bench.AcceptBench.run(gateway.url(), token, connections, requests / connections,
                    perSocket, generate);
            // This JVM is the broker and the load generator: what the rest of the machine spent per request.
            System.out.printf("  measured %29.0f req/s  %s; broker and load generator %.1f us/request, of which the "
                    + "load generator %.1f; broker's JIT %d ms; machine idle %s%n", r.perSecond(),
                    gateway.usage().since(u0, r.requests()), (ownCpuNanos() - own0) / 1e3 / r.requests(),
                    r.cpuMicrosPerRequest(), ownCompileMillis() - ownJit0, idleSince(machine0));
            long written = endOffsets(kafka.bootstrapServers(), topics.requests()) - before;
            // Every accepted frame counted must stand for a request on the topic.
            if (written != r.requests() - r.errors() || r.errors() > 0) {
                throw new IllegalStateException("trial " + trial + ": " + r.errors() + " errors; " + written
                        + " requests on " + topics.requests() + " for " + (r.requests() - r.errors()) + " accepted");
            }
            awaitClosed(gateway);
            return new Measured(r.perSecond(), (ownCompileMillis() - ownJit0) / (r.seconds() * 1000));
        }

        /**
         * The collectors a benchmark's JVMs may run. A gateway's heap is almost all short-lived
         * per-request garbage around a small live set of sockets and streams; the parallel collector
         * copies that live set with no write barriers or concurrent refinement in the threads that
         * serve the sockets, which on two cores leaves them more CPU than G1 does. It gets half the
         * heap for its young generation, as docker-compose.yml gives it: every young collection copies
         * the same live set (the streams followed), so their cost falls with how often they run.
         */
        enum Collector {
            PARALLEL("-XX:+UseParallelGC", "-XX:NewRatio=1"), G1("-XX:+UseG1GC");

            final List<String> flags;

            Collector(String... flags) {
                this.flags = List.of(flags);
            }
        }

        /** The gateway JVM's options: those both sides get ({@link #sideFlags}), then those of --gateway-jvm-options. */
        private List<String> gatewayJvmOptions() {
            List<String> options = new java.util.ArrayList<>(sideFlags());
            if (!gatewayJvmOptions.isBlank()) {
                options.addAll(List.of(gatewayJvmOptions.trim().split("\\s+")));
            }
            return options;
        }

        /** Trial 0 runs again while the broker compiled for more than this share of its measured window. */
        static final double BROKER_JIT_QUIET = 0.03;
        /** At most this many trials 0. */
        static final int MAX_BROKER_WARMUPS = 3;

        /** Records ProducerPerformance writes, unmeasured, before the first trial. */
        static final int BROKER_WARMUP = 3_000_000;

        /** Waits until the sockets of a run are gone, so the next run starts with none open. */
        private static void awaitClosed(GatewayUnderTest gateway) throws Exception {
            long quietBy = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (gateway.openSockets() > 0 && System.nanoTime() < quietBy) {
                Thread.sleep(50);
            }
        }

        /** JIT compile time of this JVM (the broker, the load generator) so far. */
        private static long ownCompileMillis() {
            return java.lang.management.ManagementFactory.getCompilationMXBean().getTotalCompilationTime();
        }

        /** CPU time this JVM (the broker, the load generator) has used. */
        private static long ownCpuNanos() {
            return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                    .getProcessCpuTime();
        }

        /** Idle and total jiffies of the whole machine from /proc/stat; null where there is none. */
        private static long[] machineJiffies() {
            try {
                String[] f = java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/stat")).get(0).trim().split("\\s+");
                long total = 0;
                for (int i = 1; i < f.length; i++) {
                    total += Long.parseLong(f[i]);
                }
                return new long[] {Long.parseLong(f[4]) + Long.parseLong(f[5]), total};
            } catch (Exception notLinux) {
                return null;
            }
        }

        /** The machine's idle share since {@code earlier}: whether a side had the cores to itself or shared them up. */
        private static String idleSince(long[] earlier) {
            long[] now = machineJiffies();
            if (earlier == null || now == null || now[1] == earlier[1]) {
                return "n/a";
            }
            return String.format("%.0f %%", 100.0 * (now[0] - earlier[0]) / (now[1] - earlier[1]));
        }

        /**
         * The flags both sides' JVMs get, so neither is what the ratio compares: the collector and,
         * unless --no-huge-pages, transparent huge pages for the heap. The gateway's per-request
         * work reaches into tens of megabytes of streams, sockets and Kafka's in-flight batches;
         * on 4 KiB pages much of it is TLB misses (docs/benchmarks.md, bench accept).
         */
        private List<String> sideFlags() {
            List<String> flags = new java.util.ArrayList<>(gc.flags);
            if (!noHugePages) {
                flags.add("-XX:+UseTransparentHugePages");
            }
            return flags;
        }

        /**
         * Runs ProducerPerformance for {@code warmup + records} records and returns its records/s
         * after the warm-up ones (all of them when there is no warm-up).
         */
        private static double perf(EmbeddedKafka kafka, Topics topics, int recordSize, int records, int warmup,
                List<String> jvmFlags)
                throws Exception {
            long own0 = ownCpuNanos();
            long ownJit0 = ownCompileMillis();
            long[] machine0 = machineJiffies();
            Process perf = BenchStack.java("512m", jvmFlags, "org.apache.kafka.tools.ProducerPerformance", "--topic", topics.requests(),
                    "--num-records", String.valueOf(records + warmup), "--warmup-records", String.valueOf(warmup),
                    "--record-size", String.valueOf(recordSize), "--throughput", "-1", "--command-property",
                    "bootstrap.servers=" + kafka.bootstrapServers(), "acks=all", "enable.idempotence=true", "linger.ms=5", "batch.size=65536")
                    .redirectErrorStream(true).start();
            String out = new String(perf.getInputStream().readAllBytes());
            if (perf.waitFor() != 0) {
                throw new IllegalStateException("ProducerPerformance failed:\n" + out);
            }
            // Its own progress lines (every 5 s, then the totals), so a run shows how steady it was.
            List<String> lines = out.lines().filter(l -> l.contains("records sent")).toList();
            if (lines.isEmpty()) {
                throw new IllegalStateException("no summary from ProducerPerformance:\n" + out);
            }
            lines.forEach(l -> System.out.println("  ProducerPerformance: " + l));
            System.out.printf("  broker during ProducerPerformance: %.1f us/record (all %d records); broker's JIT %d ms; "
                    + "machine idle %s%n", (ownCpuNanos() - own0) / 1e3 / (records + warmup), records + warmup,
                    ownCompileMillis() - ownJit0, idleSince(machine0));
            // With a warm-up, the last summary line is the steady-state one.
            return Double.parseDouble(lines.get(lines.size() - 1).replaceAll(".*records sent, ([0-9.]+) records/sec.*", "$1"));
        }
    }

    /**
     * CPU time, JIT compile time and heap allocated that a gateway process has used so far (NaN when
     * it shares this JVM, whose figures would be the broker's too). The allocation is counted at each
     * young collection, a few a second at load, so over a measured window it is close; it moves
     * less from run to run than the CPU time does, which the rest of the machine shares.
     */
    record Usage(double cpuNanos, double compileMillis, double allocatedBytes) {
        static final Usage UNKNOWN = new Usage(Double.NaN, Double.NaN, Double.NaN);

        /** What the gateway used since {@code earlier}, for {@code requests} requests. */
        String since(Usage earlier, int requests) {
            if (Double.isNaN(cpuNanos)) {
                return "";
            }
            return String.format("gateway CPU %5.1f us/request, JIT %5.0f ms, heap %4.2f KB/request",
                    (cpuNanos - earlier.cpuNanos) / 1e3 / requests, compileMillis - earlier.compileMillis,
                    (allocatedBytes - earlier.allocatedBytes) / 1e3 / requests);
        }
    }

    /** The gateway a benchmark measures: in this JVM, or a process of its own configured the same way. */
    interface GatewayUnderTest extends AutoCloseable {
        String url();

        int openSockets() throws Exception;

        Usage usage();

        static GatewayUnderTest inProcess(GatewayConfig config) throws Exception {
            Gateway g = Gateway.start(config);
            return new GatewayUnderTest() {
                public String url() {
                    return g.url();
                }

                public int openSockets() {
                    return g.openSockets();
                }

                public Usage usage() {
                    return Usage.UNKNOWN;
                }

                public void close() throws Exception {
                    g.close();
                }
            };
        }

        /** Runs {@code sluice gateway} with {@code settings} passed as the SLUICE_* variables it reads. */
        static GatewayUnderTest process(Map<String, Object> settings, String heap, List<String> jvmOptions) throws Exception {
            int port = io.sluice.app.matrix.MatrixBench.freePort();
            ProcessBuilder pb = BenchStack.java(heap, jvmOptions, "io.sluice.app.Sluice", "gateway");
            settings.forEach((k, v) -> pb.environment().put(Settings.envName(k), String.valueOf(v)));
            pb.environment().put(Settings.envName(GatewayConfig.PORT), String.valueOf(port));
            java.nio.file.Path log = java.nio.file.Files.createTempFile("sluice-bench-gateway", ".log");
            var role = new io.sluice.app.matrix.MatrixBench.Role("gateway", pb, log, port);
            role.awaitReady(Duration.ofMinutes(2));
            return new GatewayUnderTest() {
                public String url() {
                    return "ws://127.0.0.1:" + port + Gateway.PATH;
                }

                public int openSockets() {
                    return (int) io.sluice.app.matrix.MatrixBench.sum(role.metrics(), "sluice_gateway_sockets", "");
                }

                public Usage usage() {
                    String m = role.metrics();
                    return new Usage(io.sluice.app.matrix.MatrixBench.sum(m, "process_cpu_time_ns_total", ""),
                            io.sluice.app.matrix.MatrixBench.sum(m, "jvm_compilation_time_ms_total", ""),
                            io.sluice.app.matrix.MatrixBench.sum(m, "jvm_gc_memory_allocated_bytes_total", ""));
                }

                public void close() throws Exception {
                    role.close();
                }
            };
        }
    }

    /** The sum of the end offsets of {@code topic}'s partitions: how many records it has had. */
    static long endOffsets(String bootstrap, String topic) throws Exception {
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            var partitions = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions();
            Map<org.apache.kafka.common.TopicPartition, org.apache.kafka.clients.admin.OffsetSpec> latest = new HashMap<>();
            for (var p : partitions) {
                latest.put(new org.apache.kafka.common.TopicPartition(topic, p.partition()),
                        org.apache.kafka.clients.admin.OffsetSpec.latest());
            }
            return admin.listOffsets(latest).all().get().values().stream().mapToLong(i -> i.offset()).sum();
        }
    }

    @Command(name = "sockets", description = "Idle sockets one gateway holds and heap per socket, beside raw Jetty "
            + "holding the same number; clients run in child processes.")
    static final class BenchSockets implements Callable<Integer> {
        @Option(names = "--sockets", defaultValue = "19000", description = "Sockets to open against each server.")
        int sockets;
        @Option(names = "--processes", defaultValue = "4", description = "Client processes to spread them over.")
        int processes;

        @Override
        public Integer call() throws Exception {
            System.out.printf("sluice bench sockets --sockets %d --processes %d%n", sockets, processes);
            try (BenchStack stack = new BenchStack("sluice-bench-sockets")) {
                String token = stack.token;
                // Raw Jetty twice: an endpoint on Jetty's API, as a Jetty user writes one, and a frame
                // handler on its core layer, which the gateway's own sockets use.
                var layers = io.sluice.ingress.bench.RawJettyServer.Layer.values();
                double[] raw = new double[layers.length];
                int[] rawHeld = new int[layers.length];
                for (int i = 0; i < layers.length; i++) {
                    try (var jetty = new io.sluice.ingress.bench.RawJettyServer(Duration.ofMinutes(10), layers[i])) {
                        long[] r = hold(jetty.port(), token, () -> -1);
                        rawHeld[i] = (int) r[0];
                        raw[i] = r[1] / (double) Math.max(1, r[0]);
                    }
                }
                try (Gateway gateway = Gateway.start(stack.gatewayConfig())) {
                    long[] r = hold(gateway.port(), token, gateway::openSockets);
                    double perSocket = r[1] / (double) Math.max(1, r[0]);
                    System.out.printf("%-16s %10s %16s%n", "server", "held", "heap per socket");
                    System.out.printf("%-16s %10d %14.0f B%n", "raw Jetty (API)", rawHeld[0], raw[0]);
                    System.out.printf("%-16s %10d %14.0f B%n", "raw Jetty (core)", rawHeld[1], raw[1]);
                    System.out.printf("%-16s %10d %14.0f B%n", "gateway", r[0], perSocket);
                    System.out.printf("gateway / raw Jetty heap per socket: %.2fx (API), %.2fx (core)%n", perSocket / raw[0],
                            perSocket / raw[1]);
                }
            }
            return 0;
        }

        /** Opens the sockets from child processes; returns {sockets held, heap they added}. */
        long[] hold(int port, String token, java.util.function.IntSupplier serverCount) throws Exception {
            long before = heapAfterGc();
            List<Process> children = new java.util.ArrayList<>();
            int held = 0;
            try {
                for (int p = 0; p < processes; p++) {
                    int count = sockets / processes + (p < sockets % processes ? 1 : 0);
                    children.add(BenchStack.java("256m", "io.sluice.ingress.bench.IdleClients", "127.0.0.1",
                            String.valueOf(port), "/v1/stream", String.valueOf(count), token)
                            .redirectError(ProcessBuilder.Redirect.INHERIT).start());
                }
                for (Process child : children) {
                    String line = new java.io.BufferedReader(new java.io.InputStreamReader(child.getInputStream())).readLine();
                    if (line == null || !line.startsWith("connected ")) {
                        throw new IllegalStateException("client process said: " + line);
                    }
                    held += Integer.parseInt(line.split(" ")[1]);
                }
                long after = heapAfterGc();
                int serverSide = serverCount.getAsInt();
                if (serverSide >= 0 && serverSide != held) {
                    System.out.printf("(server counts %d sockets, clients %d)%n", serverSide, held);
                }
                return new long[] {held, after - before};
            } finally {
                for (Process child : children) {
                    child.getOutputStream().close();
                }
                for (Process child : children) {
                    if (!child.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
                        child.destroyForcibly();
                    }
                }
                Thread.sleep(2000);
            }
        }

        static long heapAfterGc() throws InterruptedException {
            for (int i = 0; i < 3; i++) {
                System.gc();
                Thread.sleep(200);
            }
            var mem = java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
            return mem.getUsed();
        }
    }

    @Command(name = "push", description = "Sockets on one gateway receiving tokens: delivered frames/s and delivery "
            + "latency, beside raw Jetty pushing the same frames to the same number of sockets.")
    static final class BenchPush implements Callable<Integer> {
        @Option(names = "--sockets", defaultValue = "10000", description = "Receiving sockets.")
        int sockets;
        @Option(names = "--processes", defaultValue = "4", description = "Client processes.")
        int processes;
        @Option(names = "--rounds", defaultValue = "20", description = "Tokens per socket.")
        int rounds;
        @Option(names = "--interval-ms", defaultValue = "100", description = "Pause between rounds.")
        int intervalMs;

        static long micros() {
            java.time.Instant i = java.time.Instant.now();
            return i.getEpochSecond() * 1_000_000L + i.getNano() / 1000;
        }

        /**
         * A token's text: the sender's clock, ended by ';' so that a coalesced frame's joined text
         * still starts with its first token's clock.
         */
        static String clockText() {
            return micros() + ";";
        }

        @Override
        public Integer call() throws Exception {
            System.out.printf("sluice bench push --sockets %d --processes %d --rounds %d --interval-ms %d%n", sockets,
                    processes, rounds, intervalMs);
            try (BenchStack stack = new BenchStack("sluice-bench-push")) {
                EmbeddedKafka kafka = stack.kafka;
                Topics topics = stack.topics;
                String token = stack.token;
                // Raw Jetty on its API layer (as a Jetty user writes an endpoint) and on its core layer
                // (which the gateway's sockets use).
                var layers = io.sluice.ingress.bench.RawJettyServer.Layer.values();
                String[][] raws = new String[layers.length][];
                for (int l = 0; l < layers.length; l++) {
                    try (var jetty = new io.sluice.ingress.bench.RawJettyServer(Duration.ofMinutes(10), layers[l])) {
                        List<Process> clients = clients(jetty.port(), token, "-");
                        for (int r = 0; r < rounds; r++) {
                            jetty.pushToAll("{\"type\":\"token\",\"request_id\":\"raw\",\"seq\":" + r + ",\"text\":\""
                                    + clockText() + "\",\"token_id\":1}");
                            Thread.sleep(intervalMs);
                        }
                        jetty.pushToAll("{\"type\":\"pushdone\"}");
                        raws[l] = collect(clients);
                    }
                }

                String[] gw;
                try (Gateway gateway = Gateway.start(stack.gatewayConfig());
                     var registry = io.sluice.idempotency.RedisIdempotencyStore.connect(java.net.URI.create(stack.redis.uri()),
                             "sluice:", Duration.ofHours(1));
                     var producer = new org.apache.kafka.clients.producer.KafkaProducer<String,
                             org.apache.avro.specific.SpecificRecord>(Map.of("bootstrap.servers", kafka.bootstrapServers(),
                             "acks", "1", "linger.ms", 2), new org.apache.kafka.common.serialization.StringSerializer(),
                             io.sluice.schemas.AvroSerde.serializer())) {
                    int partitions = TopicProvisioner.Layout.singleNode().partitions();
                    List<String> ids = new java.util.ArrayList<>();
                    List<io.sluice.idempotency.SubmissionRegistry.IndexEntry> entries = new java.util.ArrayList<>();
                    long now = System.currentTimeMillis();
                    for (int p = 0; p < processes; p++) {
                        int count = sockets / processes + (p < sockets % processes ? 1 : 0);
                        for (int i = 0; i < count; i++) {
                            String id = "push-" + p + "-" + i;
                            ids.add(id);
                            entries.add(new io.sluice.idempotency.SubmissionRegistry.IndexEntry(id, "bench", "bench:r:" + id,
                                    now, ids.size() % partitions));
                        }
                    }
                    registry.indexAll(entries, Duration.ofHours(1));
                    List<Process> clients = clientsAttaching(gateway.port(), token);
                    long until = System.currentTimeMillis() + 120_000;
                    while (gateway.router().activeRequests() < ids.size() && System.currentTimeMillis() < until) {
                        Thread.sleep(50);
                    }
                    Thread.sleep(1000);
                    for (int r = 0; r < rounds; r++) {
                        String ts = clockText();
                        for (int i = 0; i < ids.size(); i++) {
                            producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(topics.tokens(),
                                    (i + 1) % partitions, ids.get(i), io.sluice.schemas.TokenEvent.newBuilder()
                                            .setRequestId(ids.get(i)).setSeq(r).setTokenId(1).setText(ts).setFence(1)
                                            .setProducedAt(java.time.Instant.now()).build()));
                        }
                        Thread.sleep(intervalMs);
                    }
                    for (int i = 0; i < ids.size(); i++) {
                        producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(topics.tokens(), (i + 1) % partitions,
                                ids.get(i), io.sluice.schemas.InferenceResult.newBuilder().setRequestId(ids.get(i))
                                        .setFinishReason(io.sluice.schemas.FinishReason.length).setCompletionTokens(rounds)
                                        .setFence(1).setCompletedAt(java.time.Instant.now()).build()));
                    }
                    producer.flush();
                    gw = collect(clients);
                }
                System.out.printf("%-16s %10s %14s %12s %12s %12s %8s%n", "server", "tokens", "tokens/s", "p50 ms", "p99 ms",
                        "misordered", "short");
                print("raw Jetty (API)", raws[0]);
                print("raw Jetty (core)", raws[1]);
                print("gateway", gw);
                System.out.printf("gateway / raw Jetty tokens/s: %.2fx (API), %.2fx (core)%n", rate(gw) / rate(raws[0]),
                        rate(gw) / rate(raws[1]));
                // A rate of frames that came with gaps, twice or out of order would not be the rate users get.
                for (String[] r : List.of(raws[0], raws[1], gw)) {
                    if (!r[4].equals("0") || !r[5].equals("0")) {
                        System.out.println("not every socket got seqs 0.." + (rounds - 1) + " once each, in order: "
                                + r[4] + " frames out of order, " + r[5] + " sockets short");
                        return 1;
                    }
                }
                System.out.println("every socket got seqs 0.." + (rounds - 1) + " once each, in order, from every server");
            }
            return 0;
        }

        List<Process> clients(int port, String token, String prefix) throws Exception {
            List<Process> out = new java.util.ArrayList<>();
            for (int p = 0; p < processes; p++) {
                int count = sockets / processes + (p < sockets % processes ? 1 : 0);
                out.add(BenchStack.java("512m", "io.sluice.ingress.bench.StreamClients", "127.0.0.1", String.valueOf(port),
                        String.valueOf(count), token, prefix.equals("-") ? "-" : prefix + p + "-", String.valueOf(rounds))
                        .redirectError(ProcessBuilder.Redirect.INHERIT).start());
            }
            for (Process c : out) {
                String line = new java.io.BufferedReader(new java.io.InputStreamReader(c.getInputStream())).readLine();
                if (line == null || !line.startsWith("connected")) {
                    throw new IllegalStateException("client said " + line);
                }
            }
            return out;
        }

        List<Process> clientsAttaching(int port, String token) throws Exception {
            return clients(port, token, "push-");
        }

        /**
         * Sums the clients' figures: tokens, seconds (longest), p50 and p99 (worst client), frames
         * out of order and sockets short of their seqs.
         */
        static String[] collect(List<Process> clients) throws Exception {
            long tokens = 0;
            double seconds = 0;
            long p50 = 0;
            long p99 = 0;
            long misordered = 0;
            long shortSockets = 0;
            for (Process c : clients) {
                String line = null;
                var in = new java.io.BufferedReader(new java.io.InputStreamReader(c.getInputStream()));
                for (String l = in.readLine(); l != null; l = in.readLine()) {
                    if (l.startsWith("tokens ")) {
                        line = l;
                        break;
                    }
                }
                c.getOutputStream().close();
                c.waitFor(30, java.util.concurrent.TimeUnit.SECONDS);
                c.destroyForcibly();
                if (line == null) {
                    throw new IllegalStateException("a client process reported nothing");
                }
                String[] f = line.split(" ");
                tokens += Long.parseLong(f[1]);
                seconds = Math.max(seconds, Double.parseDouble(f[5]));
                p50 = Math.max(p50, Long.parseLong(f[7]));
                p99 = Math.max(p99, Long.parseLong(f[9]));
                misordered += Long.parseLong(f[13]);
                shortSockets += Long.parseLong(f[15]);
            }
            Thread.sleep(2000);
            return new String[] {String.valueOf(tokens), String.valueOf(seconds), String.valueOf(p50), String.valueOf(p99),
                String.valueOf(misordered), String.valueOf(shortSockets)};
        }

        static double rate(String[] r) {
            return Long.parseLong(r[0]) / Math.max(1e-9, Double.parseDouble(r[1]));
        }

        static void print(String name, String[] r) {
            System.out.printf("%-16s %10s %14.0f %12.1f %12.1f %12s %8s%n", name, r[0], rate(r), Long.parseLong(r[2]) / 1000.0,
                    Long.parseLong(r[3]) / 1000.0, r[4], r[5]);
        }
    }

    @Command(name = "stream", description = "Stream requests through a running gateway: time to first token and tokens/s.")
    static final class BenchStream implements Callable<Integer> {
        @Option(names = "--url", defaultValue = "ws://127.0.0.1:8080/v1/stream", description = "Gateway WebSocket URL.")
        String url;
        @Option(names = "--token", description = "JWT; default: minted with the dev key in --data-dir.")
        String token;
        @Option(names = "--data-dir", defaultValue = ".sluice", description = "Data directory holding the dev signing key.")
        Path dataDir;
        @Option(names = "--concurrency", defaultValue = "1", description = "Simultaneous requests, one socket each.")
        int concurrency;
        @Option(names = "--rounds", defaultValue = "10", description = "Rounds measured after one warm-up round.")
        int rounds;
        @Option(names = "--max-tokens", defaultValue = "64", description = "max_tokens of every request.")
        int maxTokens;
        @Option(names = "--prompt", defaultValue = "The river", description = "Prompt of every request.")
        String prompt;

        @Override
        public Integer call() throws Exception {
            String jwt = token != null ? token : new Authenticator(DevSecrets.signingKey(dataDir), "sluice")
                    .mint("bench", "bench", List.of("infer"), Duration.ofHours(1));
            System.out.printf("sluice bench stream --url %s --concurrency %d --rounds %d --max-tokens %d%n",
                    url, concurrency, rounds, maxTokens);
            io.sluice.ingress.bench.StreamBench.run(url, jwt, prompt, maxTokens, concurrency, 1);
            System.out.print(io.sluice.ingress.bench.StreamBench.report(
                    io.sluice.ingress.bench.StreamBench.run(url, jwt, prompt, maxTokens, concurrency, rounds), concurrency));
            return 0;
        }
    }

    @Command(name = "config", description = "Show the settings of every role.")
    static final class Config implements Callable<Integer> {
        @Option(names = "--describe", description = "Print every key with its type, default, valid values and meaning.")
        boolean describe;

        @Override
        public Integer call() {
            System.out.println(Settings.describe("gateway", GatewayConfig.CONFIG));
            System.out.println(Settings.describe("worker", WorkerConfig.CONFIG));
            System.out.println(Settings.describe("archiver", io.sluice.archive.ArchiverConfig.CONFIG));
            System.out.println(Settings.describe("ops", io.sluice.ops.OpsConfig.CONFIG));
            return 0;
        }
    }
}
