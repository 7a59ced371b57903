package io.sluice.worker;

import io.sluice.schemas.InferenceRequest;

/**
 * Points where a fault test or a game day makes a worker misbehave on purpose: a slow device, a
 * request that fails on some attempts. A worker in production runs with {@link #NONE}.
 */
public interface Faults {
    Faults NONE = new Faults() {
    };

    /** Runs before every engine step; sleeping here makes every step that much slower. */
    default void beforeStep() throws InterruptedException {
    }

    /**
     * A failure to raise when attempt {@code attempt} (0 = the first) of {@code request} is about
     * to publish the token at {@code seq}, or null to let it through.
     */
    default RuntimeException failure(InferenceRequest request, int attempt, int seq) {
        return null;
    }
}
