package io.sluice.app;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.ops.OpsConfig;
import io.sluice.ops.health.KafkaProbe;
import io.sluice.ops.health.Readiness;
import io.sluice.ops.http.OpsHttpServer;
import io.sluice.ops.lag.LagMonitor;
import io.sluice.ops.lag.LagSampler;
import io.sluice.ops.metrics.Metrics;
import io.sluice.schemas.CommonConfig;
import java.time.Clock;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code sluice ops}: samples every group's lag, publishes it as metrics and serves it as JSON. */
@Command(name = "ops", description = "Sample consumer lag of every group and serve it: /metrics (lag per partition and "
        + "per tier), /readyz, and the web console /ops (lag over time, throughput, circuit states, dead letters).")
final class OpsCommand implements Callable<Integer> {
    static final ObjectMapper JSON = new ObjectMapper();
    @CommandLine.Mixin
    Sluice.Common common = new Sluice.Common();

    @Override
    public Integer call() throws Exception {
        OpsConfig config = new OpsConfig(Settings.load(OpsConfig.CONFIG, common.configFile, System.getenv(), Map.of()));
        // The console checks tokens exactly as the gateways do, from the same settings.
        var auth = new io.sluice.ingress.GatewayConfig(Settings.load(io.sluice.ingress.GatewayConfig.CONFIG, common.configFile,
                System.getenv(), Map.of())).authenticator();
        var meters = Metrics.create("ops", "ops");
        LagSampler sampler = new LagSampler(config, meters, Clock.systemUTC());
        KafkaProbe kafka = new KafkaProbe(config.getString(CommonConfig.BOOTSTRAP_SERVERS));
        var circuits = new io.sluice.ops.console.CircuitWatcher(config.getString(CommonConfig.BOOTSTRAP_SERVERS),
                new io.sluice.schemas.Topics(config.getString(CommonConfig.TOPIC_PREFIX)).events());
        OpsHttpServer http = Roles.serve(config, meters, new Readiness().add("kafka", kafka));
        if (http != null) {
            OpsConsole.mount(http, sampler, circuits, java.nio.file.Path.of(config.getString(OpsConfig.ARCHIVE_DIR)), auth);
            System.out.println("Console on http://" + config.getString(CommonConfig.METRICS_HOST) + ":" + http.port() + "/ops");
        }
        Sluice.awaitShutdown(() -> {
            if (http != null) {
                http.close();
            }
        }, sampler, circuits, kafka);
        return 0;
    }

    /** The kept lag samples: {@code {"samples": [{"at", "tiers": {...}, "partitions": [...]}]}}. */
    static ObjectNode history(LagSampler sampler) {
        ObjectNode doc = JSON.createObjectNode();
        ArrayNode samples = doc.putArray("samples");
        for (LagSampler.Snapshot s : sampler.history()) {
            ObjectNode n = samples.addObject();
            n.put("at", s.at().toString());
            ObjectNode tiers = n.putObject("tiers");
            s.tierLagSeconds().forEach(tiers::put);
            ArrayNode parts = n.putArray("partitions");
            for (LagMonitor.PartitionLag p : s.partitions()) {
                parts.addObject().put("group", p.group()).put("topic", p.topic()).put("partition", p.partition())
                        .put("committed", p.committed()).put("end", p.end()).put("lag", p.lag())
                        .put("lag_seconds", p.lagSeconds()).put("status", p.status().name());
            }
        }
        return doc;
    }

}
