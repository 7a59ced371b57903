package io.sluice.ingress;

import io.sluice.egress.TokenRouter;
import io.sluice.idempotency.RedisIdempotencyStore;
import io.sluice.idempotency.SubmissionRegistry;
import io.sluice.ingress.internal.GenerateParser;
import io.sluice.ingress.internal.HttpApi;
import io.sluice.ingress.internal.RequestIds;
import io.sluice.ingress.internal.RequestSubmitter;
import io.sluice.ingress.internal.StreamEndpoint;
import io.sluice.ingress.internal.TenantLimits;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.CommonConfig;
import org.apache.avro.specific.SpecificRecord;
import io.sluice.schemas.Topics;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.sluice.ops.health.KafkaProbe;
import io.sluice.ops.health.Readiness;
import io.sluice.ops.http.OpsHttpServer;
import io.sluice.ops.metrics.Metrics;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.StringSerializer;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.server.WebSocketNegotiator;
import org.eclipse.jetty.websocket.core.server.WebSocketServerComponents;
import org.eclipse.jetty.websocket.core.server.WebSocketUpgradeHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The WebSocket gateway: {@code /v1/stream} with the {@code sluice.v1.json} subprotocol, and
 * {@code /healthz}. Authenticates at the handshake, validates every message, writes requests to
 * Kafka (idempotent producer, acks=all) and answers {@code accepted} only after Kafka's ack, then
 * streams the request's events back through the {@link TokenRouter}.
 */
public final class Gateway implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Gateway.class);
    public static final String SUBPROTOCOL = "sluice.v1.json";
    public static final String PATH = "/v1/stream";
    /** The request attribute holding the endpoint a handshake made, until the socket opens. */
    private static final String HANDSHAKING = "io.sluice.ingress.endpoint";

    private final Server server;
    private final KafkaProducer<String, SpecificRecord> producer;
    private final TokenRouter router;
    private final Authenticator authenticator;
    private final ServerConnector connector;
    private final boolean secure;
    private final SubmissionRegistry registry;
    private final RequestSubmitter submitter;
    private final java.util.Set<StreamEndpoint> endpoints = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final Duration drainTimeout;
    private volatile boolean draining;
    private final HttpApi http;
    /** Pings every socket each gateway.ping.interval.ms; null when pings are off. */
    private final java.util.concurrent.ScheduledExecutorService keepAlive;

    private final PrometheusMeterRegistry meters;
    private final Readiness readiness;
    private final KafkaProbe kafkaProbe;

    private Gateway(GatewayConfig config, Clock clock, PrometheusMeterRegistry meters) throws Exception {
        long t0 = System.nanoTime();
        String id = config.getString(GatewayConfig.ID).isBlank()
                ? ManagementFactory.getRuntimeMXBean().getName().replace('@', '-') : config.getString(GatewayConfig.ID);
        Topics topics = new Topics(config.getString(CommonConfig.TOPIC_PREFIX));
        String bootstrap = config.getString(CommonConfig.BOOTSTRAP_SERVERS);
        this.authenticator = config.authenticator();
        RequestIds requestIds = new RequestIds(config.requestIdKey(), config.previousRequestIdKeys());
        Duration deliveryTimeout = Duration.ofMillis(config.getLong(GatewayConfig.KAFKA_DELIVERY_TIMEOUT_MS));
        int lingerMs = 5;
        this.producer = new KafkaProducer<>(Map.of(
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                // Kafka 4's own default; at load it fills batches, idle it adds at most 5 ms to accepted.
                ProducerConfig.LINGER_MS_CONFIG, lingerMs,
                // Requests stay keyed by request id, spread evenly over the partitions: a request is
                // expensive and its partition picks its worker, so sticky batches (a run of up to
                // batch.size bytes, ~70 requests, to one partition) would pile work on one worker.
                // Keyed requests split each linger's worth over every partition; 64 KiB lets a batch
                // close on linger rather than on size at load (steady state 54k -> 59-66k accepted/s
                // in bench accept), for 64 KiB per partition of the producer's 32 MiB.
                ProducerConfig.BATCH_SIZE_CONFIG, 65536,
                ProducerConfig.MAX_BLOCK_MS_CONFIG, 5000,
                // Kafka requires delivery.timeout.ms >= linger.ms + request.timeout.ms.
                ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) Math.min(10_000, deliveryTimeout.toMillis() - lingerMs),
                ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) deliveryTimeout.toMillis(),
                ProducerConfig.CLIENT_ID_CONFIG, "sluice-gateway-" + id),
                new StringSerializer(), AvroSerde.serializer());
        this.router = TokenRouter.start(bootstrap, topics, topics.prefix() + "gateways", "sluice-gateway-router-" + id);
        GenerateParser parser = new GenerateParser(config.getInt(GatewayConfig.MAX_PROMPT_CHARS),
                config.getInt(GatewayConfig.MAX_TOKENS_LIMIT));
        long outboundBytes = config.getInt(GatewayConfig.OUTBOUND_QUEUE_BYTES);
        boolean cancelOnDisconnect = config.getBoolean(GatewayConfig.CANCEL_ON_DISCONNECT);
        this.registry = RedisIdempotencyStore.connect(java.net.URI.create(config.getString(CommonConfig.REDIS_URI)), "sluice:",
                Duration.ofMillis(config.getLong(GatewayConfig.IDEMPOTENCY_TTL_MS)));
        Duration idempotencyTtl = Duration.ofMillis(config.getLong(GatewayConfig.IDEMPOTENCY_TTL_MS));
        Duration attachRetention = Duration.ofMillis(config.getLong(GatewayConfig.ATTACH_RETENTION_MS));
        TenantLimits limits = new TenantLimits(config.getInt(GatewayConfig.MAX_CONNECTIONS_PER_TENANT),
                config.getDouble(GatewayConfig.TENANT_REQUESTS_PER_SECOND), System::nanoTime);
        int maxInFlight = config.getInt(GatewayConfig.MAX_INFLIGHT_PER_SOCKET);
        java.util.Set<String> origins = java.util.Set.copyOf(config.getList(GatewayConfig.ALLOWED_ORIGINS));
        this.submitter = new RequestSubmitter(parser, producer, topics.requests(), registry, idempotencyTtl,
                attachRetention, deliveryTimeout, limits, clock, router::replyPartition, requestIds);
        this.http = new HttpApi(authenticator, submitter, router, limits, config.getInt(GatewayConfig.MAX_FRAME_BYTES),
                outboundBytes, origins, config.getLong(GatewayConfig.IDLE_TIMEOUT_MS), clock);
        this.drainTimeout = Duration.ofMillis(config.getLong(GatewayConfig.DRAIN_TIMEOUT_MS));
        this.meters = meters != null ? meters : Metrics.create("gateway", id);
        Gauge.builder("sluice.gateway.sockets", endpoints, java.util.Set::size).description("Open WebSocket connections")
                .register(this.meters);
        io.micrometer.core.instrument.FunctionCounter.builder("sluice.gateway.jwt.cache.hits", authenticator,
                Authenticator::cacheHits).description("Client tokens found among those that verified before").register(this.meters);
        this.kafkaProbe = new KafkaProbe(bootstrap);
        SubmissionRegistry redis = registry;
        this.readiness = new Readiness().add("kafka", kafkaProbe).add("redis", redis::available)
                .add("accepting", () -> !draining);

        QueuedThreadPool threads = new QueuedThreadPool(200, 8);
        threads.setName("sluice-gateway");
        this.server = new Server(threads);
        var tls = config.tls();
        if (tls == null) {
            this.connector = new ServerConnector(server);
        } else {
            org.eclipse.jetty.server.HttpConfiguration https = new org.eclipse.jetty.server.HttpConfiguration();
            https.addCustomizer(new org.eclipse.jetty.server.SecureRequestCustomizer(false));
            this.connector = new ServerConnector(server, new org.eclipse.jetty.server.SslConnectionFactory(tls, "http/1.1"),
                    new org.eclipse.jetty.server.HttpConnectionFactory(https));
        }
        this.secure = tls != null;
        connector.setIdleTimeout(config.getLong(GatewayConfig.HTTP_IDLE_TIMEOUT_MS));
        connector.setHost(config.getString(GatewayConfig.HOST));
        connector.setPort(config.getInt(GatewayConfig.PORT));
        // Bursts of handshakes (a fleet of clients reconnecting) must not overflow the accept queue.
        connector.setAcceptQueueSize(4096);
        server.addConnector(connector);

        int maxMessageBytes = config.getInt(GatewayConfig.MAX_FRAME_BYTES);
        // Clients that pipeline generate messages (hundreds per socket in flight) were read 4 KiB,
        // some thirty messages, per system call at Jetty's defaults, and their accepted frames
        // written some twenty-five per call; bench accept: 0.047 -> 0.023 reads and 0.038 -> 0.025
        // writes per request (docs/benchmarks.md).
        int readBufferBytes = config.getInt(GatewayConfig.SOCKET_READ_BUFFER_BYTES);
        int writeBufferBytes = config.getInt(GatewayConfig.SOCKET_WRITE_BUFFER_BYTES);
        // Jetty's core WebSocket layer: the socket's endpoint is a core frame handler (see StreamEndpoint).
        WebSocketUpgradeHandler ws = new WebSocketUpgradeHandler(WebSocketServerComponents.ensureWebSocketComponents(server));
        Duration idleTimeout = Duration.ofMillis(config.getLong(GatewayConfig.IDLE_TIMEOUT_MS));
        ws.addMapping(PATH, WebSocketNegotiator.from((req, resp, cb) -> {
            if (draining) {
                Response.writeError(req, resp, cb, 503, "gateway shutting down");
                return null;
            }
            String origin = HttpApi.refusedOrigin(req, origins);
            if (origin != null) {
                Response.writeError(req, resp, cb, 403, "origin not allowed: " + origin);
                return null;
            }
            List<String> offered = req.getSubProtocols();
            if (!offered.isEmpty() && !offered.contains(SUBPROTOCOL)) {
                Response.writeError(req, resp, cb, 400, "unsupported subprotocol; use " + SUBPROTOCOL);
                return null;
            }
            Authenticator.Principal principal;
            try {
                principal = authenticator.authenticate(HttpApi.bearer(req));
            } catch (Authenticator.Unauthorized e) {
                HttpApi.challenge(resp);
                Response.writeError(req, resp, cb, 401, e.getMessage());
                return null;
            }
            if (!limits.connect(principal.tenant())) {
                Response.writeError(req, resp, cb, 429, "tenant has too many open sockets (gateway.max.connections.per.tenant)");
                return null;
            }
            if (!offered.isEmpty()) {
                resp.setAcceptedSubProtocol(SUBPROTOCOL);
            }
            StreamEndpoint endpoint = new StreamEndpoint(principal, submitter, producer, topics, router, outboundBytes,
                    cancelOnDisconnect, maxInFlight, clock, closed -> {
                        limits.disconnect(principal.tenant());
                        endpoints.remove(closed);
                    }, server.getThreadPool(), maxMessageBytes);
            endpoints.add(endpoint);
            req.setAttribute(HANDSHAKING, endpoint);
            return endpoint;
        }, (endpoint, req, resp) -> (FrameHandler) endpoint, configuration -> {
            configuration.setIdleTimeout(idleTimeout);
            configuration.setInputBufferSize(readBufferBytes);
            configuration.setOutputBufferSize(writeBufferBytes);
        }));
        ws.setHandler(new Handler.Abstract() {
            @Override
            public boolean handle(Request request, Response response, Callback callback) {
                if (http.handle(request, response, callback)) {
                    return true;
                }
                String path = Request.getPathInContext(request);
                if ("/healthz".equals(path)) {
                    reply(response, callback, 200, "text/plain", "ok\n");
                    return true;
                }
                if ("/readyz".equals(path)) {
                    var body = OpsHttpServer.readinessJson(readiness);
                    reply(response, callback, body.path("ready").asBoolean() ? 200 : 503, "application/json", body + "\n");
                    return true;
                }
                if ("/metrics".equals(path)) {
                    reply(response, callback, 200, "text/plain; version=0.0.4; charset=utf-8", Gateway.this.meters.scrape());
                    return true;
                }
                return false;
            }
        });
        // Jetty may still refuse the upgrade once the negotiator made the endpoint: with an error
        // response (an extension offer it cannot take), by throwing, or by failing the request's
        // callback (the 101 not written). Then the endpoint never opens; its slot is given back here.
        server.setHandler(new Handler.Wrapper(crossOrigin(origins, ws)) {
            @Override
            public boolean handle(Request request, Response response, Callback callback) throws Exception {
                Callback upgrade = new Callback.Nested(callback) {
                    @Override
                    public void succeeded() {
                        // 101 upgrades HTTP/1.1; an HTTP/2 connect (RFC 8441) is accepted with a 2xx.
                        int status = response.getStatus();
                        if (status != 101 && (status < 200 || status > 299)) {
                            abandon(request);
                        }
                        super.succeeded();
                    }

                    @Override
                    public void failed(Throwable x) {
                        abandon(request);
                        super.failed(x);
                    }
                };
                try {
                    return super.handle(request, response, upgrade);
                } catch (Throwable t) {
                    abandon(request);
                    throw t;
                }
            }
        });
        server.setStopTimeout(5000);
        server.start();
        long pingMs = config.getLong(GatewayConfig.PING_INTERVAL_MS);
        long idleNanos = Duration.ofMillis(config.getLong(GatewayConfig.IDLE_TIMEOUT_MS)).toNanos();
        this.keepAlive = pingMs == 0 ? null : java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "sluice-gateway-ping");
            t.setDaemon(true);
            return t;
        });
        if (keepAlive != null) {
            keepAlive.scheduleAtFixedRate(() -> {
                long now = System.nanoTime();
                for (StreamEndpoint e : endpoints) {
                    try {
                        e.keepAlive(now, idleNanos);
                    } catch (RuntimeException failed) {
                        // One socket's failure must not end the timer for all the others.
                        log.debug("Keep-alive of a socket failed", failed);
                    }
                }
                http.keepAlive();
            }, pingMs, pingMs, java.util.concurrent.TimeUnit.MILLISECONDS);
        }
        log.info("Gateway {} listening on {}", id, url());
        log.info("Cold start gateway accepting: {} ms", (System.nanoTime() - t0) / 1_000_000);
    }

    /**
     * CORS for the pages of {@code gateway.allowed.origins}: a browser asks before a POST with a
     * JSON body or an Authorization header (the preflight carries no token, so it is answered
     * here), and reads no response that does not name its origin. Requests of other origins go
     * on to the routes, which refuse them with 403 as the handshake does.
     */
    private static Handler crossOrigin(java.util.Set<String> origins, Handler next) {
        org.eclipse.jetty.server.handler.CrossOriginHandler cors = new org.eclipse.jetty.server.handler.CrossOriginHandler();
        cors.setAllowedOriginPatterns(origins.stream().map(java.util.regex.Pattern::quote)
                .collect(java.util.stream.Collectors.toSet()));
        cors.setAllowedMethods(java.util.Set.of("GET", "POST"));
        cors.setAllowedHeaders(java.util.Set.of("Authorization", "Content-Type", "Last-Event-ID"));
        cors.setExposedHeaders(java.util.Set.of("WWW-Authenticate"));
        // Bearer tokens, never cookies: nothing of the browser's own is sent along.
        cors.setAllowCredentials(false);
        cors.setPreflightMaxAge(Duration.ofMinutes(10));
        cors.setDeliverNonAllowedOriginRequests(true);
        cors.setDeliverNonAllowedOriginWebSocketUpgradeRequests(true);
        cors.setHandler(next);
        return cors;
    }

    /** Gives back what a handshake's endpoint took, if the handshake made one. */
    private static void abandon(Request request) {
        if (request.getAttribute(HANDSHAKING) instanceof StreamEndpoint endpoint) {
            endpoint.abandon();
        }
    }

    private static void reply(Response response, Callback callback, int status, String type, String body) {
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, type);
        response.write(true, java.nio.ByteBuffer.wrap(body.getBytes(StandardCharsets.UTF_8)), callback);
    }

    /** Starts a gateway with a registry of its own. */
    public static Gateway start(GatewayConfig config) throws Exception {
        return new Gateway(config, Clock.systemUTC(), null);
    }

    /** Starts a gateway whose meters go to {@code meters}, served on its {@code /metrics}. */
    public static Gateway start(GatewayConfig config, PrometheusMeterRegistry meters) throws Exception {
        return new Gateway(config, Clock.systemUTC(), meters);
    }

    /** What {@code /readyz} checks. */
    public Readiness readiness() {
        return readiness;
    }

    public int port() {
        return connector.getLocalPort();
    }

    public String url() {
        return (secure ? "wss://" : "ws://") + connector.getHost() + ":" + port() + PATH;
    }

    /** The token router, for read-amplification figures. */
    public TokenRouter router() {
        return router;
    }

    public Authenticator authenticator() {
        return authenticator;
    }

    /** Server-Sent Event streams open on this gateway. */
    public int openEventStreams() {
        return http.openStreams();
    }

    /** Sockets open on this gateway. */
    public int openSockets() {
        return endpoints.size();
    }

    /**
     * Drains, then stops: new handshakes, new requests on any transport and new event streams
     * are refused (503, or {@code overloaded} on a socket), open streams get up to
     * {@code gateway.drain.timeout.ms} to finish, then every socket is closed with 1001 and a
     * reason telling the client to attach on another gateway, and every event stream is ended
     * (its client reconnects with {@code Last-Event-ID}, to any gateway).
     */
    @Override
    public void close() throws Exception {
        // The transports first, so that once readiness says "not accepting" nothing is taken.
        submitter.drain();
        draining = true;
        long deadline = System.nanoTime() + drainTimeout.toNanos();
        while (System.nanoTime() < deadline && (endpoints.stream().anyMatch(e -> e.followed() > 0) || http.openStreams() > 0)) {
            Thread.sleep(20);
        }
        endpoints.forEach(StreamEndpoint::goAway);
        http.endStreams();
        if (keepAlive != null) {
            keepAlive.shutdownNow();
        }
        server.stop();
        submitter.close();
        router.close();
        registry.close();
        kafkaProbe.close();
        producer.close(Duration.ofSeconds(5));
    }
}
