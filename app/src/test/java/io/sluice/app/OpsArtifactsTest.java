package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.sluice.archive.Archiver;
import io.sluice.archive.ArchiverConfig;
import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.ops.OpsConfig;
import io.sluice.ops.lag.LagSampler;
import io.sluice.ops.metrics.Metrics;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import io.sluice.worker.Faults;
import io.sluice.worker.Worker;
import io.sluice.worker.WorkerConfig;
import io.sluice.worker.model.ModelBundle;
import io.sluice.worker.retry.Failures;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The alert rules and the dashboard in ops/ are well formed, and every metric they query is one
 * the roles really publish: scraped from a running gateway, worker, archiver and lag sampler.
 * Also /readyz: ready with its dependencies up, 503 naming the one that is down.
 */
class OpsArtifactsTest {
    static final Path OPS = Path.of("..", "ops");
    static final Pattern METRIC = Pattern.compile("\\b(sluice_[a-z_]+)");
    static final HttpClient HTTP = HttpClient.newHttpClient();
    @TempDir
    Path dir;

    static Set<String> metricsIn(String expr) {
        Set<String> names = new TreeSet<>();
        Matcher m = METRIC.matcher(expr);
        while (m.find()) {
            names.add(m.group(1));
        }
        return names;
    }

    @Test
    void alertRulesAndDashboardAreWellFormedAndQueryOnlyPublishedMetrics() throws Exception {
        JsonNode rules = new ObjectMapper(new YAMLFactory()).readTree(OPS.resolve("prometheus/alerts.yml").toFile());
        Set<String> queried = new TreeSet<>();
        Set<String> alertNames = new HashSet<>();
        for (JsonNode group : rules.path("groups")) {
            assertThat(group.path("name").asText()).isNotBlank();
            for (JsonNode rule : group.path("rules")) {
                String alert = rule.path("alert").asText();
                assertThat(alertNames.add(alert)).as("alert names are unique: %s", alert).isTrue();
                String expr = rule.path("expr").asText();
                assertThat(expr).as(alert).isNotBlank();
                assertThat(expr.chars().filter(c -> c == '(').count()).as("balanced parentheses in %s", alert)
                        .isEqualTo(expr.chars().filter(c -> c == ')').count());
                assertThat(rule.path("for").asText()).as(alert).matches("\\d+[smh]");
                assertThat(rule.path("labels").path("severity").asText()).as(alert).isIn("critical", "warning");
                assertThat(rule.path("annotations").path("summary").asText()).as(alert).isNotBlank();
                queried.addAll(metricsIn(expr));
            }
        }
        assertThat(alertNames).contains("SluiceFinancialLagHigh", "SluiceConsumerStalled", "SluiceConsumerStopped",
                "SluiceCircuitOpen", "SluiceDeadLetterRateHigh");

        JsonNode dashboard = new ObjectMapper().readTree(OPS.resolve("grafana/dashboards/sluice.json").toFile());
        assertThat(dashboard.path("uid").asText()).isEqualTo("sluice-overview");
        Set<Integer> ids = new HashSet<>();
        for (JsonNode panel : dashboard.path("panels")) {
            assertThat(ids.add(panel.path("id").asInt())).isTrue();
            assertThat(panel.path("gridPos").path("w").asInt()).isPositive();
            assertThat(panel.path("targets")).isNotEmpty();
            for (JsonNode t : panel.path("targets")) {
                queried.addAll(metricsIn(t.path("expr").asText()));
            }
        }

        String scraped = scrapeOfARunningPipeline();
        Set<String> published = new TreeSet<>();
        for (String line : scraped.lines().toList()) {
            if (line.startsWith("sluice_")) {
                published.add(line.substring(0, line.indexOf(line.contains("{") ? '{' : ' ')));
            }
        }
        assertThat(published).as("every metric the alerts and the dashboard query is published").containsAll(queried);
        assertThat(queried).contains("sluice_tier_lag_seconds", "sluice_consumer_lag_status", "sluice_circuit_state",
                "sluice_dlq_records_total", "sluice_time_to_first_token_seconds_bucket");
    }

    /** A gateway, a worker (one request retried, one dead-lettered), an archiver and the lag sampler, scraped. */
    String scrapeOfARunningPipeline() throws Exception {
        Topics topics = InProcessPipeline.provision("opsart");
        Map<String, Object> common = InProcessPipeline.common(topics);
        Map<String, Object> w = new HashMap<>(common);
        w.put(WorkerConfig.GROUP_ID, topics.prefix() + "workers");
        w.put(WorkerConfig.retryKey(io.sluice.schemas.Tier.operational, "backoff.ms"), 100L);
        Map<String, Object> g = new HashMap<>(common);
        g.put(GatewayConfig.PORT, 0);
        g.put(GatewayConfig.JWT_SECRET, "ops-artifacts-secret-0123456789abcdef0123");
        Map<String, Object> a = new HashMap<>(common);
        a.put(ArchiverConfig.DIR, dir.resolve("archive").toString());
        a.put(ArchiverConfig.GROUP_ID, topics.prefix() + "archiver");
        Map<String, Object> o = new HashMap<>(common);
        o.put(OpsConfig.WORKER_GROUP, topics.prefix() + "workers");
        o.put(OpsConfig.LAG_INTERVAL_MS, 300L);
        Faults faults = new Faults() {
            @Override
            public RuntimeException failure(InferenceRequest request, int attempt, int seq) {
                if (request.getPrompt().startsWith("Retry") && attempt == 0) {
                    return new IllegalStateException("transient");
                }
                return request.getPrompt().startsWith("Reject") ? new Failures.PermanentFailureException("rejected") : null;
            }
        };
        PrometheusMeterRegistry meters = Metrics.create("test", "test");
        try (ModelBundle model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
             Worker worker = Worker.builder(new WorkerConfig(w)).model(model).faults(faults).meters(meters).start();
             Gateway gateway = Gateway.start(new GatewayConfig(g), meters);
             Archiver archiver = Archiver.start(new ArchiverConfig(a));
             LagSampler lag = new LagSampler(new OpsConfig(o), meters, Clock.systemUTC())) {
            Roles.meter(archiver, meters);
            assertThat(worker.awaitAssignment(Duration.ofSeconds(60))).isTrue();
            String token = gateway.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(5));
            try (WsClient client = WsClient.connect(gateway.url(), token)) {
                for (String prompt : List.of("The river", "Retry the river", "Reject the river")) {
                    client.send("{\"type\":\"generate\",\"prompt\":\"" + prompt + "\",\"max_tokens\":6}");
                }
                int terminal = 0;
                while (terminal < 3) {
                    String type = client.next(Duration.ofSeconds(60), "three outcomes").path("type").asText();
                    terminal += type.equals("done") || type.equals("error") ? 1 : 0;
                }
            }
            // The same token again: remembered, not verified anew.
            try (WsClient again = WsClient.connect(gateway.url(), token)) {
                again.send("{\"type\":\"ping\"}");
                assertThat(again.next(Duration.ofSeconds(10), "pong").path("type").asText()).isEqualTo("pong");
            }
            String base = "http://127.0.0.1:" + gateway.port();
            HttpResponse<String> ready = HTTP.send(HttpRequest.newBuilder(URI.create(base + "/readyz")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(ready.statusCode()).isEqualTo(200);
            assertThat(ready.body()).contains("\"kafka\":true").contains("\"redis\":true");
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            String scrape = "";
            while (System.nanoTime() < deadline) {
                scrape = HTTP.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(),
                        HttpResponse.BodyHandlers.ofString()).body();
                if (scrape.contains("sluice_consumer_lag_status{") && scrape.contains("sluice_archive_records_total")
                        && scrape.contains("sluice_dlq_records_total")) {
                    break;
                }
                Thread.sleep(200);
            }
            assertThat(scrape).contains("sluice_requests_total{").contains("outcome=\"done\"").contains("outcome=\"retried\"")
                    .contains("outcome=\"dead_lettered\"");
            assertThat(scrape).containsPattern("(?m)^sluice_gateway_jwt_cache_hits_total(\\{[^}]*\\})? [1-9]");
            return scrape;
        }
    }

    @Test
    void readyzIsFalseAndNamesTheDependencyThatIsDown() throws Exception {
        SharedInfra infra = SharedInfra.get();
        Map<String, Object> g = new HashMap<>();
        g.put(CommonConfig.BOOTSTRAP_SERVERS, infra.bootstrapServers());
        int closedPort;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            closedPort = s.getLocalPort();
        }
        g.put(CommonConfig.REDIS_URI, "redis://127.0.0.1:" + closedPort);
        Topics topics = InProcessPipeline.provision("readyz");
        g.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        g.put(GatewayConfig.PORT, 0);
        g.put(GatewayConfig.JWT_SECRET, "ops-artifacts-secret-0123456789abcdef0123");
        try (Gateway gateway = Gateway.start(new GatewayConfig(g))) {
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gateway.port()
                    + "/readyz")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).isEqualTo(503);
            assertThat(r.body()).contains("\"ready\":false").contains("\"redis\":false").contains("\"kafka\":true");
            HttpResponse<String> h = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gateway.port()
                    + "/healthz")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(h.statusCode()).as("alive, though not ready").isEqualTo(200);
        }
    }
}
