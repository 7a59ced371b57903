package io.sluice.ops;

import io.sluice.schemas.CommonConfig;
import java.util.Map;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Range;
import org.apache.kafka.common.config.ConfigDef.Type;

/** Every setting of the ops role, declared once; {@code sluice config --describe} prints this table. */
public final class OpsConfig extends AbstractConfig {
    public static final String LAG_INTERVAL_MS = "ops.lag.interval.ms";
    public static final String LAG_WINDOW = "ops.lag.window";
    public static final String WORKER_GROUP = "ops.worker.group";
    public static final String HISTORY = "ops.history.samples";
    public static final String ARCHIVE_DIR = "ops.archive.dir";

    public static final ConfigDef CONFIG = CommonConfig.define()
            .define(LAG_INTERVAL_MS, Type.LONG, 5_000L, Range.between(200, 3_600_000), Importance.MEDIUM,
                    "How often consumer lag is sampled (and its gauges updated).")
            .define(LAG_WINDOW, Type.INT, 10, Range.between(2, 1000), Importance.MEDIUM,
                    "Samples a lag status (OK, WARN, STALL, STOP, ERR) is judged over.")
            .define(WORKER_GROUP, Type.STRING, "sluice-workers", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
                    "Consumer group of the workers, whose per-tier lag is the autoscaling signal.")
            .define(HISTORY, Type.INT, 720, Range.between(1, 100_000), Importance.LOW,
                    "Lag samples kept in memory for the console's charts (720 x 5 s = one hour).")
            .define(ARCHIVE_DIR, Type.STRING, ".sluice/archive", Importance.MEDIUM,
                    "The DLQ archive the console's dead-letter browser reads (the archiver's archiver.dir).");

    public OpsConfig(Map<?, ?> props) {
        super(CONFIG, props);
    }
}
