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
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns a client's generate message into a request on Kafka, the same way for every transport
 * (WebSocket, HTTP): scope, validation, the tenant's rate, duplicate detection by idempotency
 * key, the request index for attach, then the write (idempotent producer, acks=all).
 */
public final class RequestSubmitter {
    private static final Logger log = LoggerFactory.getLogger(RequestSubmitter.class);

    /**
     * A validated submission. For a duplicate, {@code requestId} is the first request's and
     * nothing is to be produced.
     */
    public record Prepared(String requestId, boolean duplicate, long createdAtMillis, InferenceRequest request,
            int replyPartition, CompletableFuture<Void> indexed) {
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

    public RequestSubmitter(GenerateParser parser, Producer<String, SpecificRecord> producer, String requestsTopic,
            SubmissionRegistry registry, Duration idempotencyTtl, Duration attachRetention, TenantLimits limits, Clock clock,
            java.util.function.IntSupplier replyPartitions) {
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
    }

    public void close() {
        indexWriter.close();
    }

    /**
     * A random version-4 UUID from a thread-local generator. Request ids must be unique, not
     * secret (every use of one checks the tenant), and SecureRandom's lock would serialize the
     * threads that submit.
     */
    static String newRequestId() {
        java.util.concurrent.ThreadLocalRandom r = java.util.concurrent.ThreadLocalRandom.current();
        long msb = (r.nextLong() & ~0xF000L) | 0x4000L;
        long lsb = (r.nextLong() & 0x3FFFFFFFFFFFFFFFL) | 0x8000000000000000L;
        return new UUID(msb, lsb).toString();
    }

    public SubmissionRegistry registry() {
        return registry;
    }

    /** Checks everything that can be checked before Kafka; throws the client-facing error. */
    public Prepared prepare(Principal principal, JsonNode msg) throws ProtocolError {
        if (!principal.may("infer")) {
            throw new ProtocolError(ProtocolError.Code.forbidden, "scope: generate needs the infer scope", false);
        }
        String requestId = newRequestId();
        InferenceRequest request = parser.parse(msg, requestId, principal.tenant(), principal.subject(), clock.instant());
        if (!limits.admit(principal.tenant())) {
            throw new ProtocolError(ProtocolError.Code.rate_limited,
                    "rate: tenant over its request rate (gateway.tenant.requests.per.second)", true);
        }
        long now = request.getCreatedAt().toEpochMilli();
        boolean keyed = (request.getIdempotencyKey() != null && !request.getIdempotencyKey().isEmpty())
                || request.getMetadata().containsKey(IdempotencyKeys.BUSINESS_ID);
        String key = IdempotencyKeys.keyFor(principal.tenant(), requestId, request.getIdempotencyKey(), request.getMetadata());
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
                int partition = -1;
                try {
                    partition = registry.lookup(first.requestId()).map(Submission::replyPartition).orElse(-1);
                } catch (RuntimeException redisDown) {
                    log.warn("Request index unavailable ({}); following {} by key", redisDown.toString(), first.requestId());
                }
                return new Prepared(first.requestId(), true, first.createdAtMillis(), null, partition,
                        CompletableFuture.completedFuture(null));
            }
        }
        int partition = replyPartitions.getAsInt();
        if (partition >= 0) {
            request.setReplyPartition(partition);
        }
        CompletableFuture<Void> indexed = indexWriter.write(
                new SubmissionRegistry.IndexEntry(requestId, principal.tenant(), key, now, partition));
        return new Prepared(requestId, false, now, request, partition, indexed);
    }

    /**
     * Writes a new request; completes when Kafka acknowledged it (acks=all) and the request index
     * has it (so an attach right after the accepted frame finds it), or with Kafka's error. An
     * index Redis could not take only costs attach from elsewhere; it does not fail the request.
     */
    public CompletableFuture<Void> produce(Prepared prepared) {
        CompletableFuture<Void> acked = new CompletableFuture<>();
        CompletableFuture<Void> indexed = prepared.indexed().exceptionally(e -> null);
        producer.send(new ProducerRecord<>(requestsTopic, prepared.requestId(), prepared.request()), (md, err) -> {
            if (err != null) {
                log.warn("Request {} not accepted by Kafka: {}", prepared.requestId(), err.toString());
                acked.completeExceptionally(err);
            } else {
                acked.complete(null);
            }
        });
        return acked.thenCombine(indexed, (a, b) -> null);
    }
}
