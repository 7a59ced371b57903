package io.sluice.worker.engine;

import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.schemas.TokenLogprob;
import java.util.List;
import java.util.Set;

/** Where the engine's output goes. Called on the engine thread. */
public interface StepSink {

    /** Drops every token and outcome: for warm-up runs and benchmarks of the engine alone. */
    StepSink DISCARD = new StepSink() {
        @Override
        public Set<Generation> tokens(List<StepToken> tokens) {
            return Set.of();
        }

        @Override
        public void finished(Generation generation, FinishReason reason, ErrorInfo error) {
        }
    };

    /** One token produced by a step. */
    record StepToken(Generation generation, int seq, int tokenId, String text, Float logprob, List<TokenLogprob> top,
            boolean replayed) {
    }

    /**
     * Every token one step produced, across the whole batch, in one call, so the sink can
     * checkpoint them in one round trip before publishing any.
     *
     * @return generations that must stop at once (their claim was taken over)
     */
    Set<Generation> tokens(List<StepToken> tokens);

    /** A generation ended; exactly one call per generation. */
    void finished(Generation generation, FinishReason reason, ErrorInfo error);
}
