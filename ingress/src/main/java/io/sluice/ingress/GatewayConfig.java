package io.sluice.ingress;

import io.sluice.schemas.CommonConfig;
import java.util.Map;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Range;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;

/** Every setting of a gateway, declared once; {@code sluice config --describe} prints this table. */
public final class GatewayConfig extends AbstractConfig {
    public static final String ID = "gateway.id";
    public static final String HOST = "gateway.host";
    public static final String PORT = "gateway.port";
    public static final String JWT_SECRET = "gateway.jwt.hs256.secret";
    public static final String JWT_AUDIENCE = "gateway.jwt.audience";
    public static final String MAX_PROMPT_CHARS = "gateway.max.prompt.chars";
    public static final String MAX_TOKENS_LIMIT = "gateway.max.tokens.limit";
    public static final String MAX_FRAME_BYTES = "gateway.max.frame.bytes";
    public static final String OUTBOUND_QUEUE_BYTES = "gateway.outbound.queue.bytes";
    public static final String IDLE_TIMEOUT_MS = "gateway.idle.timeout.ms";
    public static final String CANCEL_ON_DISCONNECT = "gateway.cancel.on.disconnect";
    public static final String IDEMPOTENCY_TTL_MS = "gateway.idempotency.ttl.ms";
    public static final String ATTACH_RETENTION_MS = "gateway.attach.retention.ms";

    public static final ConfigDef CONFIG = CommonConfig.define()
            .define(ID, Type.STRING, "", Importance.LOW, "Id of this gateway in logs and client ids; empty picks <host>-<pid>.")
            .define(HOST, Type.STRING, "127.0.0.1", new ConfigDef.NonEmptyString(), Importance.HIGH,
                    "Address the gateway listens on.")
            .define(PORT, Type.INT, 8080, Range.between(0, 65535), Importance.HIGH,
                    "Port of the WebSocket endpoint /v1/stream and of /healthz; 0 picks a free one.")
            .define(JWT_SECRET, Type.PASSWORD, ConfigDef.NO_DEFAULT_VALUE, ConfigDef.LambdaValidator.with((name, value) -> {
                if (value == null || ((org.apache.kafka.common.config.types.Password) value).value().length() < 32) {
                    throw new ConfigException(name, "[hidden]", "an HS256 secret of at least 32 characters is required");
                }
            }, () -> "at least 32 characters"), Importance.HIGH,
                    "HS256 secret that signs client JWTs (the dev signing key in dev mode).")
            .define(JWT_AUDIENCE, Type.STRING, "sluice", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
                    "Required aud claim of client JWTs.")
            .define(MAX_PROMPT_CHARS, Type.INT, 16_384, Range.between(1, 10_000_000), Importance.MEDIUM,
                    "Longest prompt accepted, in characters; longer is answered with too_large.")
            .define(MAX_TOKENS_LIMIT, Type.INT, 1024, Range.between(1, 1_000_000), Importance.MEDIUM,
                    "Largest max_tokens a request may ask for.")
            .define(MAX_FRAME_BYTES, Type.INT, 65_536, Range.between(1024, 64 * 1024 * 1024), Importance.MEDIUM,
                    "Largest WebSocket text message accepted from a client; larger closes the socket with 1009.")
            .define(OUTBOUND_QUEUE_BYTES, Type.INT, 4 * 1024 * 1024, Range.atLeast(1024), Importance.MEDIUM,
                    "Bytes queued for one socket before it counts as too slow and is closed.")
            .define(IDLE_TIMEOUT_MS, Type.LONG, 300_000L, Range.atLeast(1000), Importance.MEDIUM,
                    "A socket with no traffic either way for this long is closed.")
            .define(CANCEL_ON_DISCONNECT, Type.BOOLEAN, true, Importance.MEDIUM,
                    "Cancel a socket's unfinished requests when it closes, so no decode runs for a client that left.")
            .define(IDEMPOTENCY_TTL_MS, Type.LONG, 86_400_000L, Range.atLeast(1000), Importance.MEDIUM,
                    "How long an idempotency key is remembered: a repeated submit within it gets the first request.")
            .define(ATTACH_RETENTION_MS, Type.LONG, 86_400_000L, Range.atLeast(1000), Importance.MEDIUM,
                    "How long after its start a request can be attached to (keep it within the tokens topic's retention).");

    public GatewayConfig(Map<?, ?> props) {
        super(CONFIG, props);
    }
}
