package io.sluice.idempotency;

import java.util.List;

/**
 * The answer to a claim.
 *
 * @param state what the key was found in
 * @param fence the fencing token: the caller's own when {@link State#ACQUIRED}, otherwise the holder's
 * @param requestId the request that first claimed the key (differs from the caller's on a duplicate submit)
 * @param checkpoint token ids already checkpointed under earlier fences, in seq order
 * @param leaseRemainingMs for {@link State#BUSY}, how long the holder's lease still runs
 */
public record Claim(State state, long fence, String requestId, List<Integer> checkpoint, long leaseRemainingMs) {

    /** States of a key. */
    public enum State {
        /** The caller now owns the key and must decode, resuming after {@code checkpoint}. */
        ACQUIRED,
        /** Another worker holds a live lease; try again after it lapses. */
        BUSY,
        /** Finished; the outcome is stored. */
        DONE,
        /** Ended with a permanent failure; the outcome is stored. */
        FAILED
    }

    public Claim {
        checkpoint = List.copyOf(checkpoint);
    }
}
