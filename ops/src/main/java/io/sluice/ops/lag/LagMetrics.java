package io.sluice.ops.lag;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Publishes the latest lag sample as gauges: {@code sluice_consumer_lag_records},
 * {@code sluice_consumer_lag_seconds} and {@code sluice_consumer_lag_status} (0 OK … 4 ERR) per
 * group, topic and partition, and {@code sluice_tier_lag_seconds} per tier — how long the oldest
 * request of the tier that could run has been waiting, the input an autoscaler scales workers on.
 */
public final class LagMetrics {
    private final MultiGauge records;
    private final MultiGauge seconds;
    private final MultiGauge status;
    private final MultiGauge tiers;

    public LagMetrics(MeterRegistry registry) {
        records = MultiGauge.builder("sluice.consumer.lag.records").description("Records behind the end of the log")
                .register(registry);
        seconds = MultiGauge.builder("sluice.consumer.lag.seconds").description("Seconds behind the end of the log")
                .register(registry);
        status = MultiGauge.builder("sluice.consumer.lag.status")
                .description("Burrow-style status: 0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERR").register(registry);
        tiers = MultiGauge.builder("sluice.tier.lag.seconds")
                .description("Age of the oldest request of the tier that is due and not yet taken by a worker; "
                        + "the autoscaling signal").register(registry);
    }

    public void update(List<LagMonitor.PartitionLag> rows, Map<String, Double> tierLag) {
        List<MultiGauge.Row<?>> r = new ArrayList<>();
        List<MultiGauge.Row<?>> s = new ArrayList<>();
        List<MultiGauge.Row<?>> st = new ArrayList<>();
        for (LagMonitor.PartitionLag p : rows) {
            Tags tags = Tags.of("group", p.group(), "topic", p.topic(), "partition", String.valueOf(p.partition()));
            r.add(MultiGauge.Row.of(tags, p.lag()));
            s.add(MultiGauge.Row.of(tags, Math.max(0, p.lagSeconds())));
            st.add(MultiGauge.Row.of(tags, p.status().ordinal()));
        }
        records.register(r, true);
        seconds.register(s, true);
        status.register(st, true);
        List<MultiGauge.Row<?>> t = new ArrayList<>();
        tierLag.forEach((tier, value) -> t.add(MultiGauge.Row.of(Tags.of("tier", tier), value)));
        tiers.register(t, true);
    }
}
