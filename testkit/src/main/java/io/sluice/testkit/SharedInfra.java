package io.sluice.testkit;

import io.sluice.devstack.EmbeddedKafka;
import io.sluice.devstack.RedisProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.kafka.KafkaContainer;

/**
 * One Kafka broker and one Redis server per test JVM, shared by every test in it and started on
 * first use. Where a Docker engine answers, both run in Testcontainers (Apache Kafka's own image
 * and the official Redis image); otherwise the broker runs in this JVM from Kafka's jars and Redis
 * as a child process. Neither path skips: tests always get real infrastructure.
 *
 * <p>Tests share the infrastructure but not state: each takes its own topic prefix
 * ({@link #uniquePrefix(String)}) and its own request ids.
 */
public final class SharedInfra {
    private static final Logger log = LoggerFactory.getLogger(SharedInfra.class);
    private static SharedInfra instance;

    private final String bootstrapServers;
    private final String redisHost;
    private final int redisPort;
    private final RedisProcess redisProcess;

    private SharedInfra(String bootstrapServers, String redisHost, int redisPort, RedisProcess redisProcess) {
        this.bootstrapServers = bootstrapServers;
        this.redisHost = redisHost;
        this.redisPort = redisPort;
        this.redisProcess = redisProcess;
    }

    /** The shared infrastructure, started on first call. */
    public static synchronized SharedInfra get() {
        if (instance == null) {
            try {
                instance = dockerAnswers() ? startContainers() : startInJvm();
            } catch (Exception e) {
                throw new IllegalStateException("Cannot start test infrastructure", e);
            }
        }
        return instance;
    }

    private static boolean dockerAnswers() {
        // Probing costs seconds when nothing listens; only ask when an engine may be configured.
        boolean configured = System.getenv("DOCKER_HOST") != null || Files.exists(Path.of("/var/run/docker.sock"));
        if (!configured) {
            return false;
        }
        try {
            return DockerClientFactory.instance().isDockerAvailable();
        } catch (RuntimeException e) {
            return false;
        }
    }

    @SuppressWarnings("resource") // Containers live for the JVM; Testcontainers' reaper removes them.
    private static SharedInfra startContainers() {
        KafkaContainer kafka = new KafkaContainer("apache/kafka:4.1.0");
        kafka.start();
        GenericContainer<?> redis = new GenericContainer<>("redis:7-alpine").withExposedPorts(6379);
        redis.start();
        log.info("Test infrastructure in containers: Kafka {}, Redis {}:{}", kafka.getBootstrapServers(),
                redis.getHost(), redis.getMappedPort(6379));
        return new SharedInfra(kafka.getBootstrapServers(), redis.getHost(), redis.getMappedPort(6379), null);
    }

    private static SharedInfra startInJvm() throws Exception {
        Path dir = Files.createTempDirectory("sluice-test-infra");
        EmbeddedKafka kafka = EmbeddedKafka.start(dir.resolve("kafka"), 0);
        RedisProcess redis = RedisProcess.start(dir.resolve("redis"), 0);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            redis.close();
            kafka.close();
        }, "test-infra-shutdown"));
        log.info("Test infrastructure in this JVM: Kafka {}, Redis {}", kafka.bootstrapServers(), redis.uri());
        return new SharedInfra(kafka.bootstrapServers(), "127.0.0.1", redis.port(), redis);
    }

    public String bootstrapServers() {
        return bootstrapServers;
    }

    public String redisHost() {
        return redisHost;
    }

    public int redisPort() {
        return redisPort;
    }

    public String redisUri() {
        return "redis://" + redisHost + ":" + redisPort;
    }

    /** True when Redis is a child process of this JVM (and so can be stopped and restarted by a test). */
    public boolean redisIsLocalProcess() {
        return redisProcess != null;
    }

    /** A topic prefix no other test uses, e.g. {@code t-e2e-1a2b3c4d.}. */
    public static String uniquePrefix(String testName) {
        return "t-" + testName + "-" + UUID.randomUUID().toString().substring(0, 8) + ".";
    }
}
