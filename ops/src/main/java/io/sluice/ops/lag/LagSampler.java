package io.sluice.ops.lag;

import io.micrometer.core.instrument.MeterRegistry;
import io.sluice.ops.OpsConfig;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Topics;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Samples every consumer group's lag at a fixed interval on a thread of its own, publishes it as
 * gauges and keeps a bounded history for the console.
 */
public final class LagSampler implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LagSampler.class);

    /** One sample of everything. */
    public record Snapshot(Instant at, List<LagMonitor.PartitionLag> partitions, Map<String, Double> tierLagSeconds) {
    }

    private final LagMonitor monitor;
    private final LagMetrics metrics;
    private final Topics topics;
    private final String workerGroup;
    private final long intervalMs;
    private final int historySize;
    private final ArrayDeque<Snapshot> history = new ArrayDeque<>();
    private final Clock clock;
    private final Thread thread;
    private volatile boolean running = true;

    public LagSampler(OpsConfig config, MeterRegistry registry, Clock clock) {
        this.clock = clock;
        this.monitor = new LagMonitor(config.getString(CommonConfig.BOOTSTRAP_SERVERS), clock, config.getInt(OpsConfig.LAG_WINDOW));
        this.metrics = new LagMetrics(registry);
        this.topics = new Topics(config.getString(CommonConfig.TOPIC_PREFIX));
        this.workerGroup = config.getString(OpsConfig.WORKER_GROUP);
        this.intervalMs = config.getLong(OpsConfig.LAG_INTERVAL_MS);
        this.historySize = config.getInt(OpsConfig.HISTORY);
        this.thread = new Thread(this::run, "sluice-lag-sampler");
        thread.setDaemon(true);
        thread.start();
    }

    private void run() {
        while (running) {
            try {
                List<LagMonitor.PartitionLag> rows = monitor.sample(List.of());
                Map<String, Double> tiers = monitor.tierLagSeconds(workerGroup, topics, rows);
                metrics.update(rows, tiers);
                synchronized (history) {
                    history.addLast(new Snapshot(clock.instant(), rows, tiers));
                    while (history.size() > historySize) {
                        history.removeFirst();
                    }
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                log.warn("Lag sample failed: {}", e.getMessage());
            }
            try {
                Thread.sleep(intervalMs);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** The kept samples, oldest first. */
    public List<Snapshot> history() {
        synchronized (history) {
            return List.copyOf(history);
        }
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        monitor.close();
    }
}
