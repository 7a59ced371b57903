package io.sluice.ingress.internal;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.idempotency.IdempotencyKeys;
import io.sluice.idempotency.Submission;
import io.sluice.idempotency.SubmissionRegistry;
import io.sluice.ingress.Authenticator.Principal;
import io.sluice.ingress.ProtocolError;
import io.sluice.schemas.InferenceRequest;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns a client's generate message into a request on Kafka, the same way for every transport
 * (WebSocket, HTTP): scope, validation, the tenant's rate, a sealed request id, duplicate
 * detection by idempotency key, then the write (idempotent producer, acks=all). Also finds a
 * request again for attach and status, from its id.
 */
public final class RequestSubmitter {
    private static final Logger log = LoggerFactory.getLogger(RequestSubmitter.class);
    /** Nothing to wait for (an index entry a request needs none of, a first request known written): one shared future. */
    private static final CompletableFuture<Void> DONE = CompletableFuture.completedFuture(null);

    /**
     * A validated submission. For a duplicate, {@code requestId} is the first request's and
     * nothing is to be produced. {@code registeredKey} is the idempotency key this request
     * registered, to be released if Kafka refuses it, or, for a duplicate, the key whose first
     * request Kafka had not acknowledged yet when it came (see {@link #firstWritten}); null
     * otherwise.
     */
    public record Prepared(String requestId, boolean duplicate, long createdAtMillis, InferenceRequest request,
            int replyPartition, CompletableFuture<Void> indexed, String registeredKey) {
    }

    private final GenerateParser parser;
    private final Producer<String, SpecificRecord> producer;
    private final String requestsTopic;
    private final SubmissionRegistry registry;
    private final Duration idempotencyTtl;
    private final Duration attachRetention;
    private final TenantLimits limits;
    private final Clock clock;
    private final java.util.function.IntSupplier replyPartitions;
    private final IndexWriter indexWriter;
    private final RequestIds ids;
    private final FirstWrites firstWrites;
    /**
     * Marks keyed requests acknowledged in the registry, off the producer's network thread and in
     * batches; a mark that does not fit is dropped (logged): a duplicate of that request then
     * waits until {@link FirstWrites} gives it up, and the client's retry is decoded once all the same.
     */
    private final Batches<SubmissionRegistry.Registration> acknowledgements;
    static final int ACKNOWLEDGEMENTS_QUEUED = 16_384;
    /**
     * Releases the keys of requests Kafka refused. Off the producer's network thread, which
     * calls back with the refusal and must not wait on Redis; bounded, since a broker outage
     * refuses every request at once (a release that does not fit leaves its key, see below).
     */
    private final java.util.concurrent.ThreadPoolExecutor releases;
    /** Releases of refused requests' keys that may wait at once. */
    static final int RELEASES_QUEUED = 4096;
    /** Set when the gateway starts to drain: from then on no new request or stream is taken. */
    private volatile boolean draining;

    public RequestSubmitter(GenerateParser parser, Producer<String, SpecificRecord> producer, String requestsTopic,
            SubmissionRegistry registry, Duration idempotencyTtl, Duration attachRetention, Duration kafkaDeliveryTimeout,
            TenantLimits limits, Clock clock, java.util.function.IntSupplier replyPartitions, RequestIds ids) {
        this.ids = ids;
        // The first request's gateway learns Kafka's answer within the delivery timeout of its
        // start; the margin covers the acknowledgement's own way to Redis and clocks apart.
        this.firstWrites = new FirstWrites(registry, clock, kafkaDeliveryTimeout.plusSeconds(5));
        this.acknowledgements = new Batches<>("sluice-key-acknowledge", ACKNOWLEDGEMENTS_QUEUED, 512, batch -> {
            try {
                registry.acknowledgeAll(batch);
            } catch (RuntimeException redisDown) {
                log.warn("Could not mark {} keyed requests acknowledged: {}", batch.size(), redisDown.toString());
            }
        });
        this.replyPartitions = replyPartitions;
        this.indexWriter = new IndexWriter(registry, attachRetention);
        this.parser = parser;
        this.producer = producer;
        this.requestsTopic = requestsTopic;
        this.registry = registry;
        this.idempotencyTtl = idempotencyTtl;
        this.attachRetention = attachRetention;
        this.limits = limits;
        this.clock = clock;
        this.releases = new java.util.concurrent.ThreadPoolExecutor(1, 1, 0, java.util.concurrent.TimeUnit.MILLISECONDS,
                new java.util.concurrent.ArrayBlockingQueue<>(RELEASES_QUEUED), r -> {
                    Thread t = new Thread(r, "sluice-key-release");
                    t.setDaemon(true);
                    return t;
                });
    }

    /**
     * Stops taking new requests, on every transport: a draining gateway lets the streams it
     * follows finish, and a client that keeps submitting on an open socket would hold the drain
     * to its timeout.
     */
    public void drain() {
        draining = true;
    }

    /** Whether {@link #drain} was called: transports open no new stream either. */
    public boolean draining() {
        return draining;
    }

    public void close() {
        indexWriter.close();
        acknowledgements.close();
        firstWrites.close();
        releases.shutdownNow();
    }

    /** Checks everything that can be checked before Kafka; throws the client-facing error. */
    public Prepared prepare(Principal principal, JsonNode msg) throws ProtocolError {
        // Scope first: a caller who may not generate learns that, not what is wrong with the message.
        mayGenerate(principal);
        return admit(principal, parser.parse(msg, principal.tenant(), principal.subject()));
    }

    /** As {@link #prepare(Principal, JsonNode)}, for a request {@link GenerateParser#tryParse} read. */
    public Prepared prepare(Principal principal, InferenceRequest request) throws ProtocolError {
        mayGenerate(principal);
        return admit(principal, request);
    }

    /** Everything after scope and parsing: rate, id, duplicate detection, the index entry. */
    private Prepared admit(Principal principal, InferenceRequest request) throws ProtocolError {
        if (draining) {
            throw new ProtocolError(ProtocolError.Code.overloaded, "gateway shutting down; submit on another gateway", true);
        }
        java.time.Instant created = clock.instant();
        request.setCreatedAt(created);
        if (!limits.admit(principal.tenant())) {
            throw new ProtocolError(ProtocolError.Code.rate_limited,
                    "rate: tenant over its request rate (gateway.tenant.requests.per.second)", true);
        }
        long now = created.toEpochMilli();
        boolean keyed = IdempotencyKeys.hasClientKey(request.getIdempotencyKey(), request.getMetadata());
        int partition = replyPartitions.getAsInt();
        String requestId = ids.mint(principal.tenant(), now, partition, keyed);
        request.setRequestId(requestId);
        request.setTraceId(requestId);
        String key = keyed ? IdempotencyKeys.keyFor(principal.tenant(), requestId, request.getIdempotencyKey(),
                request.getMetadata()) : null;
        String registeredKey = null;
        if (keyed) {
            String digest = RequestDigest.of(request);
            Submission first = null;
            try {
                first = registry.register(key, requestId, digest, principal.tenant(), now, idempotencyTtl);
            } catch (RuntimeException redisDown) {
                // Without the registry the submit goes ahead; the workers' claim still decodes the key once.
                log.warn("Idempotency registry unavailable ({}); submitting {} without it", redisDown.toString(), requestId);
            }
            if (first != null && !first.isNew()) {
                if (!first.digest().equals(digest)) {
                    throw ProtocolError.invalid("idempotency_key", "already used with different parameters");
                }
                int firstPartition = -1;
                try {
                    firstPartition = find(first.requestId(), principal.tenant()).map(Found::replyPartition).orElse(-1);
                } catch (ProtocolError indexDown) {
                    log.warn("Request index unavailable; following {} by key", first.requestId());
                }
                return new Prepared(first.requestId(), true, first.createdAtMillis(), null, firstPartition,
                        DONE, first.acknowledged() ? null : key);
            }
            registeredKey = first != null ? key : null;
        }
        if (partition >= 0) {
            request.setReplyPartition(partition);
        }
        // The id alone finds an unkeyed request again; a keyed one's outcome is stored under its
        // idempotency key, which only the index can tell from the id.
        CompletableFuture<Void> indexed = keyed
                ? indexWriter.write(new SubmissionRegistry.IndexEntry(requestId, principal.tenant(), key, now, partition))
                : DONE;
        return new Prepared(requestId, false, now, request, partition, indexed, registeredKey);
    }

    private static void mayGenerate(Principal principal) throws ProtocolError {
        if (!principal.may("infer")) {
            throw new ProtocolError(ProtocolError.Code.forbidden, "scope: generate needs the infer scope", false);
        }
    }

    /** The parser of generate messages, for transports that read them without a tree first. */
    public GenerateParser parser() {
        return parser;
    }

    /** A request a tenant may see: when it started and where its events go. */
    public record Found(String requestId, String tenant, long createdAtMillis, int replyPartition, boolean keyed) {
    }

    /**
     * The request {@code requestId} of {@code tenant}, if it exists and was started within the
     * attach retention. Another tenant's request is not found, exactly like one that never was.
     * Ids not sealed by a gateway (handed out before ids were sealed) are looked up in the index.
     *
     * @throws ProtocolError overloaded, when such an id needs the index and Redis does not answer
     */
    public java.util.Optional<Found> find(String requestId, String tenant) throws ProtocolError {
        if (RequestIds.isSealed(requestId)) {
            return ids.open(requestId, tenant)
                    .filter(s -> clock.millis() - s.createdAtMillis() <= attachRetention.toMillis())
                    .map(s -> new Found(requestId, tenant, s.createdAtMillis(), s.replyPartition(), s.keyed()));
        }
        java.util.Optional<Submission> known;
        try {
            known = registry.lookup(requestId);
        } catch (RuntimeException redisDown) {
            throw new ProtocolError(ProtocolError.Code.overloaded, "request index unavailable, retry shortly", true);
        }
        return known.filter(k -> k.tenant().equals(tenant))
                .map(k -> new Found(requestId, tenant, k.createdAtMillis(), k.replyPartition(), true));
    }

    /**
     * The stored outcome (an encoded {@code InferenceResult}) of a request {@link #find} found, once
     * it has one.
     *
     * @throws ProtocolError overloaded, when Redis does not answer
     */
    public java.util.Optional<byte[]> outcome(Found request) throws ProtocolError {
        try {
            return request.keyed() ? registry.outcomeOf(request.requestId())
                    : registry.outcomeByKey(IdempotencyKeys.keyFor(request.tenant(), request.requestId(), null, null));
        } catch (RuntimeException redisDown) {
            throw new ProtocolError(ProtocolError.Code.overloaded, "result store unavailable, retry shortly", true);
        }
    }

    /**
     * For a duplicate: completes once the first request is known to be on Kafka, at once when it
     * was at submit; fails with the client-facing error ({@code overloaded}, retryable) when Kafka
     * refused it or its gateway never told (see {@link #protocolError}). The duplicate's
     * {@code accepted} waits for this, as a new request's waits for Kafka.
     *
     * @throws ProtocolError overloaded, when too many duplicates wait already
     */
    public CompletableFuture<Void> firstWritten(Prepared duplicate) throws ProtocolError {
        if (!duplicate.duplicate() || duplicate.registeredKey() == null) {
            return DONE;
        }
        return firstWrites.await(duplicate.registeredKey(), duplicate.requestId(), duplicate.createdAtMillis());
    }

    /** The client-facing error of a {@link #firstWritten} that failed with {@code failure}. */
    public static ProtocolError protocolError(Throwable failure) {
        Throwable cause = failure instanceof java.util.concurrent.CompletionException ? failure.getCause() : failure;
        if (cause instanceof ProtocolError p) {
            return p;
        }
        log.warn("Repeat not answered", cause);
        return new ProtocolError(ProtocolError.Code.overloaded, "idempotency_key: the first request with this key "
                + "cannot be looked up; retry", true);
    }

    /**
     * Writes a new request; completes when Kafka acknowledged it (acks=all) and, for a keyed
     * request, the request index has it (so a status call right after the accepted frame finds its
     * outcome), or with Kafka's error. An index entry Redis could not take only costs that status
     * lookup; it does not fail the request.
     */
    public CompletableFuture<Void> produce(Prepared prepared) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        produce(prepared, (md, err) -> {
            if (err != null) {
                log.warn("Request {} not accepted by Kafka: {}", prepared.requestId(), err.toString());
                done.completeExceptionally(err);
            } else {
                done.complete(null);
            }
        });
        return done;
    }

    /**
     * As {@link #produce(Prepared)}, calling {@code acknowledged} with Kafka's metadata or error
     * instead of completing a future: the socket path, where a future and its continuation per
     * request were more objects for the producer's network thread to fetch back from memory once
     * Kafka answers. The caller reports an error; an unkeyed request's callback is handed to
     * Kafka as it is.
     */
    public void produce(Prepared prepared, Callback callback) {
        Callback acknowledged = prepared.registeredKey() == null ? callback : settlingTheKey(prepared, callback);
        CompletableFuture<Void> indexed = prepared.indexed();
        ProducerRecord<String, SpecificRecord> record = new ProducerRecord<>(requestsTopic, prepared.requestId(),
                prepared.request());
        if (indexed.isDone()) {
            producer.send(record, acknowledged); // unkeyed, or indexed already: nothing to wait for but Kafka
            return;
        }
        producer.send(record, (md, err) -> {
            if (err != null || indexed.isDone()) {
                acknowledged.onCompletion(md, err);
            } else {
                // An index entry Redis could not take only costs a status lookup; it does not fail the request.
                indexed.whenComplete((ok, indexDown) -> acknowledged.onCompletion(md, null));
            }
        });
    }

    /**
     * A request Kafka acknowledged is marked so in the registry, which is what lets its duplicates
     * (on any gateway) be answered {@code accepted}.
     *
     * <p>A request Kafka refused never reaches a worker, but its idempotency key stays registered:
     * the client's retry with that key, which the retryable error invites, would be answered as a
     * duplicate of it and wait for a stream that never comes, until the key expires. So the key is
     * released first, and the refusal reported after, so that the retry finds it free. When the
     * release cannot run (its queue is full, or Redis does not answer) the key stays, as before.
     */
    private Callback settlingTheKey(Prepared prepared, Callback callback) {
        return (md, err) -> {
            if (err == null) {
                if (!acknowledgements.offer(new SubmissionRegistry.Registration(prepared.registeredKey(),
                        prepared.requestId()))) {
                    log.warn("Request {} not marked acknowledged: too many at once; its repeats wait for it to be given up",
                            prepared.requestId());
                }
                callback.onCompletion(md, null);
                return;
            }
            try {
                releases.execute(() -> {
                    try {
                        registry.release(prepared.registeredKey(), prepared.requestId());
                    } catch (RuntimeException redisDown) {
                        log.warn("Could not release the idempotency key of refused request {}: {}", prepared.requestId(),
                                redisDown.toString());
                    } finally {
                        callback.onCompletion(md, err);
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException full) {
                log.warn("Idempotency key of refused request {} not released: too many refusals at once", prepared.requestId());
                callback.onCompletion(md, err);
            }
        };
    }
}
