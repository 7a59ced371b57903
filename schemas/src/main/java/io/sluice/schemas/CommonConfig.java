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
                        "Prefix of every topic name (requests, tokens, results, control, dlq.<tier>, requests.retry.<tier>).");
    }
}
