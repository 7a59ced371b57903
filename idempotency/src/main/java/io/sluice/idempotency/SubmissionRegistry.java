package io.sluice.idempotency;

import java.time.Duration;
import java.util.Optional;

/**
 * The gateways' shared memory of what was submitted: by idempotency key, so a repeated submit is
 * answered with the first request instead of a second decode; and by request id, for requests
 * whose id alone does not lead to their outcome (those with an idempotency key).
 */
public interface SubmissionRegistry extends AutoCloseable {

    /**
     * Records a submission under {@code key} unless one is there; atomic across gateways.
     *
     * @param digest a digest of the request's parameters, to tell a retry from a different request
     */
    Submission register(String key, String requestId, String digest, String tenant, long createdAtMillis, Duration ttl);

    /**
     * Forgets the submission under {@code key} if {@code requestId} made it and it is not
     * {@linkplain #acknowledgeAll acknowledged}: for a request Kafka refused, so that the client's
     * retry with the same key is a new submission, not a duplicate of a request that never reached
     * a worker.
     *
     * @return whether the submission was forgotten (false when another request holds the key, or
     *         Kafka acknowledged this one)
     */
    boolean release(String key, String requestId);

    /** A submission a gateway registered and Kafka then acknowledged. */
    record Registration(String key, String requestId) {
    }

    /**
     * Marks each submission as written to Kafka, in one round trip; a submission whose key another
     * request now holds, or that expired, is left as it is.
     */
    void acknowledgeAll(java.util.List<Registration> registrations);

    /** Where the submission of {@code requestId} under {@code key} stands. */
    enum Standing {
        /** Registered; Kafka's answer to its gateway is not known yet. */
        PENDING,
        /** Kafka acknowledged it: it will be decoded. */
        ACKNOWLEDGED,
        /** The key no longer names it: Kafka refused it and the key was released, or it expired. */
        GONE
    }

    /** Where {@code requestId}'s submission under {@code key} stands now. */
    Standing standing(String key, String requestId);

    /** Remembers a request by its id (tenant, idempotency key, start time, reply partition) for {@code ttl}. */
    void index(String requestId, String tenant, String key, long createdAtMillis, int replyPartition, Duration ttl);

    /** One entry of {@link #indexAll}. */
    record IndexEntry(String requestId, String tenant, String key, long createdAtMillis, int replyPartition) {
    }

    /** Many {@link #index} calls in one round trip. */
    void indexAll(java.util.List<IndexEntry> entries, Duration ttl);

    /** The stored outcome of a request remembered by {@link #index}, once it has one. */
    Optional<byte[]> outcomeOf(String requestId);

    /** The stored outcome recorded under idempotency key {@code key}, once there is one. */
    Optional<byte[]> outcomeByKey(String key);

    /** A request remembered by {@link #index}, if still known. */
    Optional<Submission> lookup(String requestId);

    @Override
    void close();

    /** Whether the store answers now (for readiness checks). */
    default boolean available() {
        return true;
    }
}
