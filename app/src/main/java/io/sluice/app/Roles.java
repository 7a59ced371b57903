package io.sluice.app;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.sluice.archive.Archiver;
import io.sluice.ops.health.Readiness;
import io.sluice.ops.http.OpsHttpServer;
import io.sluice.schemas.CommonConfig;
import java.io.IOException;
import java.nio.file.Files;
import org.apache.kafka.common.config.AbstractConfig;

/** What every role process gets besides its own work: meters and the health endpoints. */
final class Roles {
    private Roles() {
    }

    /** Serves /metrics, /healthz and /readyz on {@code metrics.port}, or nothing when it is -1. */
    static OpsHttpServer serve(AbstractConfig config, PrometheusMeterRegistry registry, Readiness readiness) throws IOException {
        int port = config.getInt(CommonConfig.METRICS_PORT);
        if (port < 0) {
            return null;
        }
        OpsHttpServer server = OpsHttpServer.start(config.getString(CommonConfig.METRICS_HOST), port, registry, readiness);
        System.out.println("Metrics on http://" + config.getString(CommonConfig.METRICS_HOST) + ":" + server.port() + "/metrics");
        return server;
    }

    /** The archiver's counters. */
    static void meter(Archiver archiver, MeterRegistry registry) {
        FunctionCounter.builder("sluice.archive.records", archiver, Archiver::archived)
                .description("Dead letters written to durable archive files").register(registry);
        FunctionCounter.builder("sluice.archive.duplicates", archiver, Archiver::duplicates)
                .description("Dead letters dropped as repeats of one already archived").register(registry);
    }

    static boolean writable(java.nio.file.Path dir) {
        return Files.isDirectory(dir) && Files.isWritable(dir);
    }
}
