package io.sluice.worker;

import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Tier;
import io.sluice.worker.retry.TierPolicy;
import java.lang.management.ManagementFactory;
import java.util.Map;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Range;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;

/** Every setting of a worker, declared once; {@code sluice config --describe} prints this table. */
public final class WorkerConfig extends AbstractConfig {
    public static final String ID = "worker.id";
    public static final String GROUP_ID = "worker.group.id";
    public static final String MODEL = "worker.model";
    public static final String DEVICE = "worker.device";
    public static final String INTRA_OP_THREADS = "worker.intra.op.threads";
    public static final String QUEUE_CAPACITY = "worker.queue.capacity";
    public static final String LEASE_MS = "worker.lease.ms";
    public static final String MAX_TOKENS_LIMIT = "worker.max.tokens.limit";
    public static final String IDEMPOTENCY_TTL_MS = "idempotency.ttl.ms";
    public static final String MAX_BATCH = "worker.max.batch";
    public static final String REDIS_OUTAGE_FINANCIAL = "worker.redis.outage.financial";
    public static final String REDIS_OUTAGE_OPERATIONAL = "worker.redis.outage.operational";
    public static final String REDIS_TIMEOUT_MS = "worker.redis.timeout.ms";
    public static final String GROUP_INSTANCE_ID = "worker.group.instance.id";
    public static final String SESSION_TIMEOUT_MS = "worker.session.timeout.ms";
    public static final String MAX_TOKENS_IN_FLIGHT = "worker.max.tokens.in.flight";
    public static final String PREFILL_BUDGET = "worker.prefill.budget.tokens";
    public static final String PROCESSING_TIMEOUT_MS = "worker.processing.timeout.ms";
    public static final String CIRCUIT_TIMEOUTS = "worker.circuit.timeouts";
    public static final String CIRCUIT_COOLDOWN_MS = "worker.circuit.cooldown.ms";
    public static final String CIRCUIT_PROBES = "worker.circuit.probes";

    /** Retry settings of a tier: {@code retry.<tier>.max.retries} and so on. */
    public static String retryKey(Tier tier, String setting) {
        return "retry." + tier.name() + "." + setting;
    }

    public static final ConfigDef CONFIG = withRetries(CommonConfig.define())
            .define(ID, Type.STRING, "", Importance.MEDIUM,
                    "Id of this worker in claims, token events and logs; empty picks <host>-<pid>.")
            .define(GROUP_ID, Type.STRING, "sluice-workers", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
                    "Kafka consumer group the workers share; partitions of the requests topic are spread over it.")
            .define(MODEL, Type.STRING, "classpath:sluice-tiny", Importance.HIGH,
                    "Model directory in the GPT-2 with-past ONNX layout (model.onnx, tokenizer.json, config.json), "
                            + "or classpath:sluice-tiny for the bundled model.")
            .define(DEVICE, Type.STRING, "auto", ConfigDef.LambdaValidator.with((name, value) -> {
                String v = String.valueOf(value);
                if (!v.equals("auto") && !v.equals("cpu") && !v.matches("cuda(:\\d+)?")) {
                    throw new ConfigException(name, value, "must be auto, cpu or cuda[:N]");
                }
            }, () -> "auto, cpu or cuda[:N]"), Importance.HIGH,
                    "Execution provider: cuda when asked for or available (auto), falling back to CPU with one log line.")
            .define(INTRA_OP_THREADS, Type.INT, 1, Range.between(1, 256), Importance.MEDIUM,
                    "ONNX Runtime intra-op threads; one is steadiest for small models on few cores.")
            .define(QUEUE_CAPACITY, Type.INT, 64, Range.between(1, 100_000), Importance.MEDIUM,
                    "Requests consumed but not yet decoding; partitions pause when it is full and resume as it drains.")
            .define(LEASE_MS, Type.LONG, 10_000L, Range.between(500, 600_000), Importance.MEDIUM,
                    "Lease of a claim in Redis; another worker may take a request over this long after its owner stops renewing.")
            .define(MAX_TOKENS_LIMIT, Type.INT, 1024, Range.between(1, 1_000_000), Importance.LOW,
                    "Largest max_tokens a request may ask for.")
            .define(GROUP_INSTANCE_ID, Type.STRING, "", Importance.MEDIUM,
                    "Static group membership: a worker restarted under the same id gets its partitions back at once, "
                            + "without a rebalance (for example a StatefulSet ordinal). Empty for dynamic membership.")
            .define(SESSION_TIMEOUT_MS, Type.INT, 45_000, Range.between(3_000, 1_800_000), Importance.MEDIUM,
                    "Kafka consumer session timeout: how long a silent worker keeps its partitions before the group "
                            + "moves them.")
            .define(REDIS_OUTAGE_FINANCIAL, Type.STRING, "fail-closed", ConfigDef.ValidString.in("fail-closed", "fail-open"),
                    Importance.HIGH, "While Redis is unavailable, financial requests wait (fail-closed: nothing is decoded "
                            + "without a claim) or decode without a claim and are reconciled after (fail-open).")
            .define(REDIS_OUTAGE_OPERATIONAL, Type.STRING, "fail-open", ConfigDef.ValidString.in("fail-closed", "fail-open"),
                    Importance.HIGH, "The same choice for operational requests.")
            .define(REDIS_TIMEOUT_MS, Type.INT, 500, Range.between(50, 60_000), Importance.MEDIUM,
                    "Longest wait for one Redis call before Redis counts as unavailable.")
            .define(MAX_BATCH, Type.INT, 32, Range.between(1, 4096), Importance.HIGH,
                    "Most sequences decoding together; requests join and leave the batch at every step.")
            .define(MAX_TOKENS_IN_FLIGHT, Type.INT, 32_768, Range.atLeast(1), Importance.MEDIUM,
                    "Bound on prompt + max_tokens summed over the running batch (the KV-cache memory the batch may grow to).")
            .define(PREFILL_BUDGET, Type.INT, 256, Range.between(1, 1_000_000), Importance.MEDIUM,
                    "Prompt tokens prefilled per step; longer prompts are prefilled in chunks so running streams "
                            + "never wait longer than one chunk.")
            .define(IDEMPOTENCY_TTL_MS, Type.LONG, 86_400_000L, Range.atLeast(1000), Importance.MEDIUM,
                    "How long a finished request's key is remembered; the same key within it is not decoded again.")
            .define(PROCESSING_TIMEOUT_MS, Type.LONG, 120_000L, Range.between(100, 86_400_000), Importance.HIGH,
                    "Longest a request may decode on one attempt; past it the attempt fails as a timeout and is "
                            + "retried by its tier's policy.")
            .define(CIRCUIT_TIMEOUTS, Type.INT, 5, Range.between(1, 10_000), Importance.MEDIUM,
                    "Consecutive processing timeouts that open the worker's circuit: it stops taking work and gives "
                            + "its partitions up to healthy workers.")
            .define(CIRCUIT_COOLDOWN_MS, Type.LONG, 30_000L, Range.between(100, 86_400_000), Importance.MEDIUM,
                    "How long an open circuit stays open before the worker probes again (half-open).")
            .define(CIRCUIT_PROBES, Type.INT, 1, Range.between(1, 1000), Importance.LOW,
                    "Outcomes a half-open worker waits for: all successes close the circuit, one timeout opens it again.");

    private static ConfigDef withRetries(ConfigDef def) {
        for (Tier tier : Tier.values()) {
            TierPolicy d = tier == Tier.financial ? TierPolicy.financialDefault() : TierPolicy.operationalDefault();
            def.define(retryKey(tier, "max.retries"), Type.INT, d.maxRetries(), Range.between(0, 1000), Importance.HIGH,
                    "Retries of a " + tier + " request after its first attempt fails with a retryable error; "
                            + "then it goes to " + "the " + tier + " DLQ.")
                    .define(retryKey(tier, "backoff"), Type.STRING, d.backoff().name().toLowerCase(java.util.Locale.ROOT),
                            ConfigDef.ValidString.in("exponential", "linear", "fixed"), Importance.HIGH,
                            "How the wait grows: exponential (base x 2^(n-1)), linear (base x n) or fixed.")
                    .define(retryKey(tier, "backoff.ms"), Type.LONG, d.base().toMillis(), Range.between(0, 86_400_000),
                            Importance.HIGH, "Wait before the first retry of a " + tier + " request.")
                    .define(retryKey(tier, "jitter"), Type.DOUBLE, d.jitter(), Range.between(0.0, 0.99), Importance.MEDIUM,
                            "Each wait is spread uniformly over +/- this fraction of itself.");
        }
        return def;
    }

    public WorkerConfig(Map<?, ?> props) {
        super(CONFIG, props);
    }

    /** The retry policy of a tier. */
    public TierPolicy retryPolicy(Tier tier) {
        return new TierPolicy(getInt(retryKey(tier, "max.retries")),
                TierPolicy.Backoff.parse(getString(retryKey(tier, "backoff"))),
                java.time.Duration.ofMillis(getLong(retryKey(tier, "backoff.ms"))), getDouble(retryKey(tier, "jitter")));
    }

    /** The configured id, or host-pid. */
    public String workerId() {
        String id = getString(ID);
        return id.isBlank() ? ManagementFactory.getRuntimeMXBean().getName().replace('@', '-') : id;
    }
}
