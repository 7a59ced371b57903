package io.sluice.egress;

import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;

/**
 * Receives one request's stream: every seq once, in order, without gaps, then exactly one result.
 * Called from the router's thread; implementations must not block.
 */
public interface StreamListener {
    void onToken(TokenEvent token);

    void onResult(InferenceResult result);
}
