package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.sluice.archive.Archiver;
import io.sluice.archive.ArchiverConfig;
import io.sluice.archive.DlqArchive;
import io.sluice.ingress.Authenticator;
import io.sluice.ops.OpsConfig;
import io.sluice.ops.TopicProvisioner;
import io.sluice.ops.console.CircuitWatcher;
import io.sluice.ops.health.Readiness;
import io.sluice.ops.http.OpsHttpServer;
import io.sluice.ops.lag.LagSampler;
import io.sluice.ops.metrics.Metrics;
import io.sluice.schemas.Attempt;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.OpsEvent;
import io.sluice.schemas.Origin;
import io.sluice.schemas.Tier;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The console in a real browser (headless Chromium, Debian's {@code chromium} package, which
 * .ci/run installs): the lag chart follows a group falling behind, a circuit that opened and a
 * dead letter show up, and a screenshot is kept in app/target/ops-console.png.
 */
class ConsoleBrowserTest {
    static final String SECRET = "console-browser-secret-0123456789abcdef0123";
    static final Path CHROMIUM = Path.of("/usr/bin/chromium");
    @TempDir
    Path dir;

    @Test
    void theConsoleShowsLagGrowingACircuitOpenAndADeadLetter() throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(CHROMIUM), "needs Debian's chromium (installed by .ci/run)");
        SharedInfra infra = SharedInfra.get();
        Topics topics = new Topics(SharedInfra.uniquePrefix("console"));
        String loadTopic = topics.prefix() + "load";
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
            admin.createTopics(List.of(new NewTopic(loadTopic, 1, (short) 1))).all().get();
        }
        Map<String, Object> common = new HashMap<>();
        common.put(CommonConfig.BOOTSTRAP_SERVERS, infra.bootstrapServers());
        common.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        Map<String, Object> a = new HashMap<>(common);
        a.put(ArchiverConfig.DIR, dir.resolve("archive").toString());
        a.put(ArchiverConfig.GROUP_ID, topics.prefix() + "archiver");
        Map<String, Object> o = new HashMap<>(common);
        o.put(OpsConfig.LAG_INTERVAL_MS, 300L);
        Authenticator auth = new Authenticator(SECRET, "sluice");
        String token = auth.mint("operator", "acme", List.of("ops:read", "dlq:read"), Duration.ofMinutes(10));
        String group = topics.prefix() + "slow-consumers";
        PrometheusMeterRegistry meters = Metrics.create("ops", "test");
        try (KafkaProducer<String, SpecificRecord> avro = new KafkaProducer<>(Map.of("bootstrap.servers",
                     infra.bootstrapServers()), new StringSerializer(), AvroSerde.serializer());
             KafkaProducer<String, String> load = new KafkaProducer<>(Map.of("bootstrap.servers", infra.bootstrapServers()),
                     new StringSerializer(), new StringSerializer());
             Archiver archiver = Archiver.start(new ArchiverConfig(a));
             LagSampler lag = new LagSampler(new OpsConfig(o), meters, Clock.systemUTC());
             CircuitWatcher circuits = new CircuitWatcher(infra.bootstrapServers(), topics.events());
             OpsHttpServer http = OpsHttpServer.start("127.0.0.1", 0, meters, new Readiness())) {
            OpsConsole.mount(http, lag, circuits, archiver.root(), auth);
            String deadId = "dead-" + UUID.randomUUID();
            avro.send(new ProducerRecord<>(topics.dlq(Tier.financial), deadId, DeadLetter.newBuilder().setRequestId(deadId)
                    .setTenant("acme").setTier(Tier.financial).setOriginal(ByteBuffer.wrap(new byte[] {1, 2, 3}))
                    .setOrigin(new Origin(topics.requests(), 0, 7L))
                    .setAttempts(List.of(new Attempt(0, Instant.now(), "w-sick", "java.lang.IllegalStateException", "boom")))
                    .setFinalError(new ErrorInfo("failed", "boom", true)).setDeadLetteredAt(Instant.now()).build())).get();
            avro.send(new ProducerRecord<>(topics.events(), "w-sick", OpsEvent.newBuilder().setType("circuit_opened")
                    .setSource("w-sick").setAt(Instant.now()).setDetail("5 consecutive processing timeouts").build())).get();
            // A group that committed offset 0 and then stopped: every record produced is lag.
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Map.of("bootstrap.servers", infra.bootstrapServers(),
                    "group.id", group), new StringDeserializer(), new StringDeserializer())) {
                c.commitSync(Map.of(new TopicPartition(loadTopic, 0), new OffsetAndMetadata(0)));
            }
            produce(load, loadTopic, 200);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (new DlqArchive(archiver.root()).show(deadId).isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            Thread.sleep(1500);
            String url = "http://127.0.0.1:" + http.port() + "/ops#token=" + token;

            String first = dumpDom(url);
            int points1 = attr(first, "data-points");
            long maxLag1 = attr(first, "data-max-lag");
            assertThat(first).contains(deadId).contains("w-sick").contains("OPEN").contains(loadTopic);
            assertThat(first).contains("class=\"lag-line\"");
            assertThat(maxLag1).isGreaterThanOrEqualTo(200);

            produce(load, loadTopic, 500); // the load goes on; nobody consumes
            Thread.sleep(1500);
            String second = dumpDom(url);
            assertThat(attr(second, "data-points")).as("more samples in the chart").isGreaterThan(points1);
            assertThat(attr(second, "data-max-lag")).as("the chart follows the growing lag").isGreaterThanOrEqualTo(700);
            assertThat(second).contains("STOP");

            Path shot = Path.of("target", "ops-console.png").toAbsolutePath();
            Files.deleteIfExists(shot);
            chromium(List.of("--screenshot=" + shot, "--window-size=1280,1500", "--virtual-time-budget=4000", url));
            assertThat(shot).exists();
            assertThat(Files.size(shot)).isGreaterThan(10_000);

            // Without a token the data is refused; with the wrong scope too.
            HttpClient client = HttpClient.newHttpClient();
            String api = "http://127.0.0.1:" + http.port() + "/ops/api/dlq";
            assertThat(client.send(HttpRequest.newBuilder(URI.create(api)).build(), HttpResponse.BodyHandlers.ofString())
                    .statusCode()).isEqualTo(401);
            String opsOnly = auth.mint("viewer", "acme", List.of("ops:read"), Duration.ofMinutes(5));
            assertThat(client.send(HttpRequest.newBuilder(URI.create(api)).header("Authorization", "Bearer " + opsOnly).build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode()).isEqualTo(403);
            String otherTenant = auth.mint("eve", "globex", List.of("dlq:read"), Duration.ofMinutes(5));
            assertThat(client.send(HttpRequest.newBuilder(URI.create(api)).header("Authorization", "Bearer " + otherTenant)
                    .build(), HttpResponse.BodyHandlers.ofString()).body()).doesNotContain(deadId);
        }
    }

    static void produce(KafkaProducer<String, String> p, String topic, int n) throws Exception {
        for (int i = 0; i < n; i++) {
            p.send(new ProducerRecord<>(topic, 0, "k", "v" + i));
        }
        p.flush();
    }

    static int attr(String dom, String name) {
        Matcher m = Pattern.compile(name + "=\"(\\d+)\"").matcher(dom);
        assertThat(m.find()).as("%s in the page", name).isTrue();
        return Integer.parseInt(m.group(1));
    }

    String dumpDom(String url) throws Exception {
        return chromium(List.of("--dump-dom", "--virtual-time-budget=4000", url));
    }

    String chromium(List<String> args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(CHROMIUM.toString(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--user-data-dir=" + dir.resolve("chromium-profile")));
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        return new String(out, java.nio.charset.StandardCharsets.UTF_8);
    }
}
