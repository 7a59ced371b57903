package io.sluice.archive;

import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Tier;
import java.util.Map;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Range;
import org.apache.kafka.common.config.ConfigDef.Type;

/** Every setting of the archiver, declared once; {@code sluice config --describe} prints this table. */
public final class ArchiverConfig extends AbstractConfig {
    public static final String DIR = "archiver.dir";
    public static final String GROUP_ID = "archiver.group.id";
    public static final String CODEC = "archiver.codec";
    public static final String RETENTION_CHECK_MS = "archiver.retention.check.ms";
    public static final String SESSION_TIMEOUT_MS = "archiver.session.timeout.ms";

    /** Per-tier settings: {@code archiver.<tier>.flush.ms} and so on. */
    public static String tierKey(Tier tier, String setting) {
        return "archiver." + tier.name() + "." + setting;
    }

    public static final ConfigDef CONFIG = withTiers(CommonConfig.define()
            .define(DIR, Type.STRING, ".sluice/archive", new ConfigDef.NonEmptyString(), Importance.HIGH,
                    "Directory of the archive: dlq/tier=<tier>/date=<yyyy-mm-dd>/*.avro, manifest.jsonl, replays.jsonl. "
                            + "One archiver writes it at a time (it holds archive.lock).")
            .define(GROUP_ID, Type.STRING, "sluice-archiver", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
                    "Consumer group of the archiver on the DLQ topics.")
            .define(CODEC, Type.STRING, "zstandard", ConfigDef.ValidString.in("zstandard", "deflate", "null"),
                    Importance.MEDIUM, "Block compression of the Avro container files (stock avro-tools reads all three).")
            .define(SESSION_TIMEOUT_MS, Type.INT, 10_000, Range.between(6_000, 300_000), Importance.LOW,
                    "Consumer session timeout: how soon a restarted archiver gets the DLQ partitions of one that died.")
            .define(RETENTION_CHECK_MS, Type.LONG, 3_600_000L, Range.between(1000, 86_400_000), Importance.LOW,
                    "How often expired archive days are removed."));

    private static ConfigDef withTiers(ConfigDef def) {
        for (Tier tier : Tier.values()) {
            boolean financial = tier == Tier.financial;
            def.define(tierKey(tier, "flush.ms"), Type.LONG, financial ? 200L : 60_000L, Range.between(1, 86_400_000),
                    Importance.HIGH, "Longest a " + tier + " dead letter waits before its file is written and fsync'd"
                            + (financial ? " (the contract: in the archive within 1 s)." : " (batched)."))
                    .define(tierKey(tier, "flush.records"), Type.INT, financial ? 1000 : 10_000, Range.between(1, 10_000_000),
                            Importance.MEDIUM, "A " + tier + " file is written as soon as this many dead letters wait.")
                    .define(tierKey(tier, "retention.days"), Type.INT, financial ? 0 : 7, Range.between(0, 100_000),
                            Importance.HIGH, "Days a " + tier + " archive day is kept; 0 keeps it forever. "
                                    + "Removals are recorded in the manifest, so verify tells them from tampering.");
        }
        return def;
    }

    public ArchiverConfig(Map<?, ?> props) {
        super(CONFIG, props);
    }
}
