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
    public static final String JWT_JWKS_FILE = "gateway.jwt.jwks.file";
    public static final String JWT_PUBLIC_KEY_FILE = "gateway.jwt.public.key.file";
    public static final String JWT_ISSUER = "gateway.jwt.issuer";
    public static final String JWT_CLOCK_SKEW_MS = "gateway.jwt.clock.skew.ms";
    public static final String JWT_CACHE_SIZE = "gateway.jwt.cache.size";
    public static final String MAX_PROMPT_CHARS = "gateway.max.prompt.chars";
    public static final String MAX_TOKENS_LIMIT = "gateway.max.tokens.limit";
    public static final String MAX_FRAME_BYTES = "gateway.max.frame.bytes";
    public static final String OUTBOUND_QUEUE_BYTES = "gateway.outbound.queue.bytes";
    public static final String SOCKET_READ_BUFFER_BYTES = "gateway.socket.read.buffer.bytes";
    public static final String SOCKET_WRITE_BUFFER_BYTES = "gateway.socket.write.buffer.bytes";
    public static final String IDLE_TIMEOUT_MS = "gateway.idle.timeout.ms";
    public static final String PING_INTERVAL_MS = "gateway.ping.interval.ms";
    public static final String HTTP_IDLE_TIMEOUT_MS = "gateway.http.idle.timeout.ms";
    public static final String CANCEL_ON_DISCONNECT = "gateway.cancel.on.disconnect";
    public static final String IDEMPOTENCY_TTL_MS = "gateway.idempotency.ttl.ms";
    public static final String KAFKA_DELIVERY_TIMEOUT_MS = "gateway.kafka.delivery.timeout.ms";
    public static final String ALLOWED_ORIGINS = "gateway.allowed.origins";
    public static final String MAX_INFLIGHT_PER_SOCKET = "gateway.max.inflight.per.socket";
    public static final String TENANT_REQUESTS_PER_SECOND = "gateway.tenant.requests.per.second";
    public static final String MAX_CONNECTIONS_PER_TENANT = "gateway.max.connections.per.tenant";
    public static final String DRAIN_TIMEOUT_MS = "gateway.drain.timeout.ms";
    public static final String TLS_KEYSTORE_FILE = "gateway.tls.keystore.file";
    public static final String TLS_KEYSTORE_PASSWORD = "gateway.tls.keystore.password";
    public static final String TLS_CERT_FILE = "gateway.tls.cert.file";
    public static final String TLS_KEY_FILE = "gateway.tls.key.file";
    public static final String TLS_CLIENT_AUTH = "gateway.tls.client.auth";
    public static final String TLS_CLIENT_CA_FILE = "gateway.tls.client.ca.file";
    public static final String ATTACH_RETENTION_MS = "gateway.attach.retention.ms";
    public static final String REQUEST_ID_SECRET = "gateway.request.id.secret";
    public static final String REQUEST_ID_PREVIOUS_SECRET = "gateway.request.id.previous.secret";

    public static final ConfigDef CONFIG = CommonConfig.define()
            .define(ID, Type.STRING, "", Importance.LOW, "Id of this gateway in logs and client ids; empty picks <host>-<pid>.")
            .define(HOST, Type.STRING, "127.0.0.1", new ConfigDef.NonEmptyString(), Importance.HIGH,
                    "Address the gateway listens on.")
            .define(PORT, Type.INT, 8080, Range.between(0, 65535), Importance.HIGH,
                    "Port of the WebSocket endpoint /v1/stream and of /healthz; 0 picks a free one.")
            .define(JWT_SECRET, Type.PASSWORD, null, secretOfAtLeast32("an HS256 secret"), Importance.HIGH,
                    "HS256 secret that signs client JWTs (the dev signing key in dev mode). At least one of this, "
                            + JWT_JWKS_FILE + " and " + JWT_PUBLIC_KEY_FILE + " is required.")
            .define(JWT_JWKS_FILE, Type.STRING, "", Importance.HIGH,
                    "JWKS file with the RS256/ES256 public keys that verify client JWTs.")
            .define(JWT_PUBLIC_KEY_FILE, Type.STRING, "", Importance.HIGH,
                    "PEM file with an RSA or EC public key that verifies client JWTs (RS256/ES256).")
            .define(JWT_ISSUER, Type.STRING, "", Importance.MEDIUM, "Required iss claim of client JWTs; empty accepts any.")
            .define(JWT_CLOCK_SKEW_MS, Type.LONG, 30_000L, Range.between(0, 600_000), Importance.LOW,
                    "Clock difference tolerated when checking exp and nbf, in whole seconds (the JWT claims check "
                            + "counts seconds, as exp and nbf do).")
            .define(JWT_CACHE_SIZE, Type.INT, io.sluice.ingress.Authenticator.DEFAULT_CACHE_SIZE, Range.between(0, 1_000_000),
                    Importance.LOW, "Client JWTs remembered after their signature verified, so the next socket with the "
                            + "same token (a client's other sockets, a reconnect) skips the signature check; exp and nbf "
                            + "are still checked on every use. 0 verifies every token in full.")
            .define(JWT_AUDIENCE, Type.STRING, "sluice", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
                    "Required aud claim of client JWTs.")
            .define(MAX_PROMPT_CHARS, Type.INT, 16_384, Range.between(1, 10_000_000), Importance.MEDIUM,
                    "Longest prompt accepted, in characters; longer is answered with too_large.")
            .define(MAX_TOKENS_LIMIT, Type.INT, 1024, Range.between(1, 1_000_000), Importance.MEDIUM,
                    "Largest max_tokens a request may ask for.")
            .define(MAX_FRAME_BYTES, Type.INT, 65_536, Range.between(1024, 64 * 1024 * 1024), Importance.MEDIUM,
                    "Largest WebSocket text message accepted from a client, all its fragments together; larger closes the "
                            + "socket with 1009. Also the largest POST /v1/requests body, counted as it arrives; larger "
                            + "is answered 413.")
            .define(OUTBOUND_QUEUE_BYTES, Type.INT, 4 * 1024 * 1024, Range.atLeast(1024), Importance.MEDIUM,
                    "Bytes queued for one socket before it counts as too slow and is closed.")
            .define(SOCKET_READ_BUFFER_BYTES, Type.INT, 32 * 1024, Range.between(1024, 4 * 1024 * 1024), Importance.LOW,
                    "Bytes a WebSocket reads from the network at once (Jetty's default is 4 KiB). A client that sends "
                            + "messages back to back has them read and parsed in one system call per this many bytes; "
                            + "the buffer is pooled and held only while it has unparsed bytes, so idle sockets hold none.")
            .define(SOCKET_WRITE_BUFFER_BYTES, Type.INT, 16 * 1024, Range.between(1024, 4 * 1024 * 1024), Importance.LOW,
                    "Bytes of small frames a WebSocket gathers into one write (Jetty's default is 4 KiB): queued "
                            + "frames go out together up to this many bytes. Pooled, and held only while frames wait in it.")
            .define(IDLE_TIMEOUT_MS, Type.LONG, 300_000L, Range.atLeast(1000), Importance.MEDIUM,
                    "A socket from which nothing (a message, a ping, a pong to the gateway's pings) arrives for this long "
                            + "is closed with 1001: a client that went away without closing. With " + PING_INTERVAL_MS
                            + " at 0, a socket with no traffic either way for this long is closed.")
            .define(HTTP_IDLE_TIMEOUT_MS, Type.LONG, 30_000L, Range.atLeast(1000), Importance.LOW,
                    "An HTTP connection with nothing going either way for this long is closed: a keep-alive "
                            + "connection between requests, a body that stopped arriving. A request being answered (a "
                            + "POST waiting for Kafka's acknowledgement) is not cut off by it. Sockets and event streams "
                            + "have " + IDLE_TIMEOUT_MS + ".")
            .define(PING_INTERVAL_MS, Type.LONG, 15_000L, Range.atLeast(0), Importance.MEDIUM,
                    "How often the gateway sends a WebSocket ping on every open socket (and an SSE comment on every "
                            + "open event stream), so that a connection whose stream "
                            + "waits (queued behind other requests, or resuming on another worker) is not closed by the "
                            + "idle timeout of the client or of a proxy in between (Jetty's client: 30 s; many load "
                            + "balancers: 60 s). Clients answer with a pong, as WebSocket libraries do by themselves. "
                            + "0 sends none. Must be below " + IDLE_TIMEOUT_MS + ".")
            .define(CANCEL_ON_DISCONNECT, Type.BOOLEAN, true, Importance.MEDIUM,
                    "Cancel a socket's unfinished requests when it closes, so no decode runs for a client that left.")
            .define(ALLOWED_ORIGINS, Type.LIST, "", Importance.HIGH,
                    "Origins (scheme://host[:port]) whose browser pages may open sockets or call the HTTP routes; a "
                            + "handshake or HTTP request with any other Origin header is refused with 403. Clients that "
                            + "send no Origin (not browsers) are not affected.")
            .define(MAX_INFLIGHT_PER_SOCKET, Type.INT, 64, Range.between(1, 100_000), Importance.MEDIUM,
                    "Unfinished requests one socket may follow; more are answered with rate_limited.")
            .define(TENANT_REQUESTS_PER_SECOND, Type.DOUBLE, 200.0, Range.atLeast(1.0), Importance.MEDIUM,
                    "Requests per second one tenant may submit through this gateway (bursts of one second's worth); "
                            + "more are answered with rate_limited. At least 1: a second's worth of less than one "
                            + "request would refuse every request.")
            .define(MAX_CONNECTIONS_PER_TENANT, Type.INT, 10_000, Range.between(1, 10_000_000), Importance.MEDIUM,
                    "Open sockets and Server-Sent Event streams one tenant may hold on this gateway, together; "
                            + "more handshakes and event streams are refused with 429.")
            .define(DRAIN_TIMEOUT_MS, Type.LONG, 10_000L, Range.atLeast(0), Importance.MEDIUM,
                    "On shutdown, how long unfinished streams may run before their sockets are closed (1001, with a "
                            + "reason telling the client to attach elsewhere).")
            .define(TLS_KEYSTORE_FILE, Type.STRING, "", Importance.HIGH,
                    "Keystore (PKCS12 or JKS) with the server certificate and key; serves wss:// and https://.")
            .define(TLS_KEYSTORE_PASSWORD, Type.PASSWORD, "", Importance.HIGH, "Password of the keystore.")
            .define(TLS_CERT_FILE, Type.STRING, "", Importance.HIGH,
                    "PEM certificate chain of the server, instead of a keystore (with " + TLS_KEY_FILE + ").")
            .define(TLS_KEY_FILE, Type.STRING, "", Importance.HIGH, "PEM private key (unencrypted PKCS#8) of the server.")
            .define(TLS_CLIENT_AUTH, Type.STRING, "none", ConfigDef.ValidString.in("none", "want", "need"), Importance.MEDIUM,
                    "Client certificates: none, want (checked when sent) or need (required).")
            .define(TLS_CLIENT_CA_FILE, Type.STRING, "", Importance.MEDIUM,
                    "PEM file of the CA certificates that client certificates must chain to; required with "
                            + TLS_CLIENT_AUTH + " want or need.")
            .define(IDEMPOTENCY_TTL_MS, Type.LONG, 86_400_000L, Range.atLeast(1000), Importance.MEDIUM,
                    "How long an idempotency key is remembered: a repeated submit within it gets the first request.")
            .define(KAFKA_DELIVERY_TIMEOUT_MS, Type.LONG, 30_000L, Range.between(1000, 600_000), Importance.LOW,
                    "How long Kafka may take to acknowledge a request (the producer's delivery.timeout.ms) before the "
                            + "client gets overloaded; a repeat of a key whose first request got no answer this long "
                            + "(plus 5 s) after its start gives the key up.")
            .define(ATTACH_RETENTION_MS, Type.LONG, 86_400_000L, Range.atLeast(1000), Importance.MEDIUM,
                    "How long after its start a request can be attached to (keep it within the tokens topic's retention).")
            .define(REQUEST_ID_SECRET, Type.PASSWORD, null, secretOfAtLeast32("a request id secret"), Importance.HIGH,
                    "Secret that seals the request ids gateways hand out (tenant, start time, reply partition), so any "
                            + "gateway can answer attach and GET for an id without a lookup. Every gateway of a deployment "
                            + "needs the same one. Empty derives it from " + JWT_SECRET + "; required when client JWTs "
                            + "are verified with public keys only.")
            .define(REQUEST_ID_PREVIOUS_SECRET, Type.PASSWORD, null, secretOfAtLeast32("a request id secret"), Importance.LOW,
                    "An earlier " + REQUEST_ID_SECRET + " whose ids are still accepted (none is sealed with it), so that "
                            + "rotating the secret leaves the requests of the last " + ATTACH_RETENTION_MS
                            + " findable. Drop it once that retention has passed.");

    /** Accepts no secret, or one of at least 32 characters; the message never shows the value. */
    private static ConfigDef.Validator secretOfAtLeast32(String what) {
        return ConfigDef.LambdaValidator.with((name, value) -> {
            if (value != null && ((org.apache.kafka.common.config.types.Password) value).value().length() < 32) {
                throw new ConfigException(name, "[hidden]", what + " must have at least 32 characters");
            }
        }, () -> "at least 32 characters");
    }

    public GatewayConfig(Map<?, ?> props) {
        super(CONFIG, props);
        if (getPassword(JWT_SECRET) == null && getString(JWT_JWKS_FILE).isBlank() && getString(JWT_PUBLIC_KEY_FILE).isBlank()) {
            throw new ConfigException("No key to verify client JWTs: set " + JWT_SECRET + ", " + JWT_JWKS_FILE + " or "
                    + JWT_PUBLIC_KEY_FILE);
        }
        if (getLong(JWT_CLOCK_SKEW_MS) % 1000 != 0) {
            throw new ConfigException(JWT_CLOCK_SKEW_MS, getLong(JWT_CLOCK_SKEW_MS), "must be a whole number of seconds");
        }
        // Without its own CA file the server would take the JDK's public CAs (PEM) or its own
        // keystore as the client certificates' trust: any certificate those vouch for would pass.
        if (!getString(TLS_CLIENT_AUTH).equals("none") && getString(TLS_CLIENT_CA_FILE).isBlank()) {
            throw new ConfigException(TLS_CLIENT_CA_FILE, "", "required when " + TLS_CLIENT_AUTH + " is "
                    + getString(TLS_CLIENT_AUTH) + ": the CA certificates client certificates must chain to");
        }
        long ping = getLong(PING_INTERVAL_MS);
        if (ping > 0 && ping >= getLong(IDLE_TIMEOUT_MS)) {
            throw new ConfigException(PING_INTERVAL_MS, ping, "must be below " + IDLE_TIMEOUT_MS + " ("
                    + getLong(IDLE_TIMEOUT_MS) + "), or a client's pongs could not keep its socket open");
        }
    }

    /**
     * The key that seals request ids: {@link #REQUEST_ID_SECRET}, or else one derived from the HS256
     * JWT secret (HMAC-SHA256 under a fixed label, so the JWT secret itself never signs ids).
     */
    public byte[] requestIdKey() {
        var explicit = getPassword(REQUEST_ID_SECRET);
        if (explicit != null) {
            return explicit.value().getBytes(java.nio.charset.StandardCharsets.UTF_8);
        }
        var jwt = getPassword(JWT_SECRET);
        if (jwt == null) {
            throw new ConfigException(REQUEST_ID_SECRET, null, "required when client JWTs are verified with public keys "
                    + "only: every gateway must share it so that any of them can check the request ids the others hand out");
        }
        try {
            javax.crypto.Mac mac = javax.crypto.Mac.getInstance("HmacSHA256");
            mac.init(new javax.crypto.spec.SecretKeySpec(jwt.value().getBytes(java.nio.charset.StandardCharsets.UTF_8),
                    "HmacSHA256"));
            return mac.doFinal("sluice request ids".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 unavailable", e);
        }
    }

    /** The keys of earlier secrets whose ids are still opened: {@link #REQUEST_ID_PREVIOUS_SECRET}, if set. */
    public java.util.List<byte[]> previousRequestIdKeys() {
        var previous = getPassword(REQUEST_ID_PREVIOUS_SECRET);
        return previous == null ? java.util.List.of()
                : java.util.List.of(previous.value().getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    /** TLS for the connector, or null for plain ws:// and http://; fails naming the key at fault. */
    public org.eclipse.jetty.util.ssl.SslContextFactory.Server tls() {
        if (getString(TLS_CERT_FILE).isBlank() != getString(TLS_KEY_FILE).isBlank()) {
            throw new ConfigException(TLS_KEY_FILE, getString(TLS_KEY_FILE), TLS_CERT_FILE + " and " + TLS_KEY_FILE
                    + " go together");
        }
        try {
            return io.sluice.ingress.internal.TlsSetup.server(getString(TLS_KEYSTORE_FILE),
                    getPassword(TLS_KEYSTORE_PASSWORD).value(), getString(TLS_CERT_FILE), getString(TLS_KEY_FILE),
                    getString(TLS_CLIENT_AUTH), getString(TLS_CLIENT_CA_FILE));
        } catch (java.io.IOException | java.security.GeneralSecurityException e) {
            String key = getString(TLS_KEYSTORE_FILE).isBlank() ? TLS_CERT_FILE : TLS_KEYSTORE_FILE;
            throw new ConfigException(key, getString(key), "cannot load TLS material: " + e.getMessage());
        }
    }

    /** The authenticator these settings describe; fails naming the key when a key file cannot be read. */
    public Authenticator authenticator() {
        java.util.List<com.nimbusds.jose.jwk.JWK> keys = new java.util.ArrayList<>();
        try {
            if (!getString(JWT_JWKS_FILE).isBlank()) {
                keys.addAll(Authenticator.jwksFile(java.nio.file.Path.of(getString(JWT_JWKS_FILE))));
            }
        } catch (java.io.IOException e) {
            throw new ConfigException(JWT_JWKS_FILE, getString(JWT_JWKS_FILE), e.getMessage());
        }
        try {
            if (!getString(JWT_PUBLIC_KEY_FILE).isBlank()) {
                keys.addAll(Authenticator.pemFile(java.nio.file.Path.of(getString(JWT_PUBLIC_KEY_FILE))));
            }
        } catch (java.io.IOException e) {
            throw new ConfigException(JWT_PUBLIC_KEY_FILE, getString(JWT_PUBLIC_KEY_FILE), e.getMessage());
        }
        var secret = getPassword(JWT_SECRET);
        return new Authenticator(secret == null ? null : secret.value(), keys, getString(JWT_AUDIENCE),
                getString(JWT_ISSUER), java.time.Duration.ofMillis(getLong(JWT_CLOCK_SKEW_MS)), getInt(JWT_CACHE_SIZE),
                java.time.Clock.systemUTC());
    }
}
