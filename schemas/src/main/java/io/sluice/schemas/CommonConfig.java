package io.sluice.schemas;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;

/**
 * Keys every role shares: where Kafka and Redis are and which topic prefix the deployment uses.
 * Each role's own table starts from {@link #define()}.
 */
public final class CommonConfig {
    public static final String BOOTSTRAP_SERVERS = "kafka.bootstrap.servers";
    public static final String REDIS_URI = "redis.uri";
    public static final String TOPIC_PREFIX = "topic.prefix";
    public static final String METRICS_PORT = "metrics.port";
    public static final String METRICS_HOST = "metrics.host";

    private CommonConfig() {
    }

    /** A new table holding the shared keys. */
    public static ConfigDef define() {
        return new ConfigDef()
                .define(BOOTSTRAP_SERVERS, Type.STRING, "127.0.0.1:9092", new ConfigDef.NonEmptyString(), Importance.HIGH,
                        "Kafka bootstrap servers, host:port[,host:port...].")
                .define(REDIS_URI, Type.STRING, "redis://127.0.0.1:6379", new ConfigDef.NonEmptyString(), Importance.HIGH,
                        "Redis server, redis://host:port.")
                .define(TOPIC_PREFIX, Type.STRING, Topics.DEFAULT_PREFIX, new ConfigDef.NonNullValidator(), Importance.MEDIUM,
                        "Prefix of every topic name (requests, tokens, results, control, dlq.<tier>, requests.retry.<tier>).")
                .define(METRICS_PORT, Type.INT, 9404, ConfigDef.Range.between(-1, 65535), Importance.MEDIUM,
                        "Port of /metrics, /healthz and /readyz for roles without a web server of their own (worker, "
                                + "archiver, ops); 0 picks a free port, -1 turns them off. The gateway serves them on its own port.")
                .define(METRICS_HOST, Type.STRING, "0.0.0.0", new ConfigDef.NonEmptyString(), Importance.LOW,
                        "Interface /metrics listens on.");
    }
}
