package io.sluice.app;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.ops.lag.LagMonitor;
import io.sluice.schemas.CommonConfig;
import java.io.PrintStream;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code sluice lag}: consumer lag per group, topic and partition, in records and seconds, with a status. */
@Command(name = "lag", description = "Consumer lag per group, topic and partition: committed and end offsets, lag in "
        + "records and seconds, and a status (OK, WARN, STALL, STOP, ERR) judged over a window of samples.")
final class LagCommand implements Callable<Integer> {
    @CommandLine.Mixin
    Sluice.Common common = new Sluice.Common();
    @Option(names = "--bootstrap-servers", description = "Kafka; default from --config / SLUICE_KAFKA_BOOTSTRAP_SERVERS.")
    String bootstrap;
    @Option(names = "--group", description = "Only this group (repeatable); default every consumer group.")
    List<String> groups = List.of();
    @Option(names = "--watch", description = "Print again every --interval until stopped.")
    boolean watch;
    @Option(names = "--json", description = "One JSON document per sample instead of a table.")
    boolean json;
    @Option(names = "--interval", defaultValue = "PT1S", description = "Time between samples (ISO-8601 duration).")
    Duration interval;
    @Option(names = "--samples", defaultValue = "3", description = "Samples taken before the first report; "
            + "a status needs a window of them.")
    int samples;
    @Option(names = "--window", defaultValue = "10", description = "Samples a status is judged over.")
    int window;

    @Override
    public Integer call() throws Exception {
        String servers = bootstrap != null ? bootstrap : String.valueOf(Settings.load(CommonConfig.define(), common.configFile,
                System.getenv(), Map.of()).get(CommonConfig.BOOTSTRAP_SERVERS));
        try (LagMonitor monitor = new LagMonitor(servers, Clock.systemUTC(), Math.max(2, window))) {
            List<LagMonitor.PartitionLag> rows = List.of();
            for (int i = 0; i < Math.max(1, samples); i++) {
                if (i > 0) {
                    Thread.sleep(interval.toMillis());
                }
                rows = monitor.sample(groups);
            }
            print(rows, System.out, json);
            while (watch) {
                Thread.sleep(interval.toMillis());
                rows = monitor.sample(groups);
                print(rows, System.out, json);
            }
        }
        return 0;
    }

    static void print(List<LagMonitor.PartitionLag> rows, PrintStream out, boolean json) {
        if (json) {
            ObjectMapper m = new ObjectMapper();
            ObjectNode doc = m.createObjectNode();
            doc.put("at", java.time.Instant.now().toString());
            ArrayNode parts = doc.putArray("partitions");
            for (LagMonitor.PartitionLag r : rows) {
                parts.addObject().put("group", r.group()).put("topic", r.topic()).put("partition", r.partition())
                        .put("committed", r.committed()).put("end", r.end()).put("lag", r.lag()).put("raw_lag", r.rawLag())
                        .put("lag_seconds", r.lagSeconds()).put("status", r.status().name())
                        .put("group_active", r.groupActive());
            }
            out.println(doc);
            return;
        }
        out.printf("%-32s %-36s %9s %12s %12s %10s %9s  %s%n", "GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG",
                "LAG_S", "STATUS");
        for (LagMonitor.PartitionLag r : rows) {
            out.printf("%-32s %-36s %9d %12d %12d %10d %9s  %s%n", r.group(), r.topic(), r.partition(), r.committed(),
                    r.end(), r.lag(), r.lagSeconds() < 0 ? "?" : String.format("%.1f", r.lagSeconds()), r.status());
        }
        out.println();
    }
}
