package io.sluice.worker.engine;

import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.worker.model.ModelBundle;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Finds, with the engine itself, a seed whose sampled stream runs the full length without an
 * end-of-text, so tests that must interrupt a running stream have one that does not end first.
 */
public final class SeedSearch {
    private SeedSearch() {
    }

    public static long seedRunning(ModelBundle model, String prompt, int tokens, float temperature) {
        for (long seed = 1; seed < 100; seed++) {
            GenerationParams p = new GenerationParams(tokens, temperature, 1f, 0, seed, List.of(), 0, 0);
            List<Integer> got = new ArrayList<>();
            try (BatchEngine e = new BatchEngine(model, new BatchEngine.Limits(1, 100_000, 1000), new StepSink() {
                @Override
                public Set<Generation> tokens(List<StepToken> step) {
                    step.forEach(t -> got.add(t.tokenId()));
                    return Set.of();
                }

                @Override
                public void finished(Generation g, FinishReason reason, ErrorInfo error) {
                }
            })) {
                e.add(new Generation("probe", p, model.encode(prompt), List.of(), model, null));
                while (e.size() > 0) {
                    e.step();
                }
            }
            if (got.size() == tokens) {
                return seed;
            }
        }
        throw new AssertionError("no seed below 100 samples " + tokens + " tokens from '" + prompt + "'");
    }
}
