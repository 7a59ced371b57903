package io.sluice.idempotency;

import java.time.Duration;
import java.util.List;

/**
 * Exactly-once decoding across duplicate submits, redeliveries and worker crashes.
 *
 * <p>A worker {@linkplain #claim claims} a request's idempotency key before decoding it. A claim
 * carries a lease and a fencing token: while the lease runs no other worker can take the key;
 * when it lapses the next claimant gets a higher fence, and every write under the older fence is
 * refused. Progress is checkpointed ({@link #append}) before each token is published, so a new
 * owner continues from exactly what clients may have seen.
 */
public interface IdempotencyStore extends AutoCloseable {

    /**
     * Tries to take the key for {@code requestId}.
     *
     * @param owner id of the claiming worker
     * @param lease how long the claim holds without renewal
     */
    Claim claim(String key, String requestId, String owner, Duration lease);

    /** Extends a held lease; false when the fence is no longer current (someone else took over). */
    boolean renew(String key, long fence, Duration lease);

    /**
     * Gives a held lease up at once, keeping the checkpoint, so the next claim of the key (a retry,
     * or another worker) takes it over without waiting for the lease to lapse.
     *
     * @return false when the fence is no longer current
     */
    default boolean release(String key, long fence) {
        return renew(key, fence, Duration.ZERO);
    }

    /**
     * Write-ahead checkpoint: records {@code tokenIds} as the tokens at seqs {@code fromSeq ...}
     * if {@code fence} is still current.
     *
     * @return the number of checkpointed tokens after the append, or -1 when the fence is stale
     */
    long append(String key, long fence, int fromSeq, List<Integer> tokenIds);

    /** One checkpoint append of {@link #appendAll}. */
    record Append(String key, long fence, int fromSeq, List<Integer> tokenIds) {
    }

    /**
     * Many appends in one round trip (a whole decode step of a batch).
     *
     * @return per append, as {@link #append}: the checkpoint length, or -1 when its fence is stale
     */
    long[] appendAll(List<Append> appends);

    /**
     * Renews many leases in one round trip.
     *
     * @return per key, whether its fence is still current
     */
    boolean[] renewAll(List<String> keys, List<Long> fences, Duration lease);

    /**
     * Records the terminal outcome under {@code fence}; the key then answers every later claim with
     * {@link Claim.State#DONE} or {@link Claim.State#FAILED} until its TTL ends.
     *
     * @return false when the fence is stale
     */
    boolean complete(String key, long fence, boolean failed, byte[] outcome);

    /**
     * Records an outcome reached without a claim, while Redis was unavailable, so the key is not
     * decoded again once Redis is back. A claim {@code owner} itself made for {@code requestId}
     * (a call that timed out but ran) does not count as a conflict.
     *
     * @return false when the key was claimed in the meantime: a second decode may be under way
     */
    boolean reconcile(String key, String requestId, String owner, boolean failed, byte[] outcome);

    /** The stored outcome of a finished key, or null. */
    byte[] outcome(String key);

    @Override
    void close();

    /** Whether the store answers now (for readiness checks). */
    default boolean available() {
        return true;
    }
}
