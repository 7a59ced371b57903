package io.sluice.worker.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.schemas.FinishReason;
import io.sluice.schemas.TokenLogprob;
import io.sluice.worker.model.ModelBundle;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Sampling, stop sequences and logprobs, on the bundled model and real ONNX Runtime. */
class SamplingTest {
    static ModelBundle model;

    @BeforeAll
    static void load() {
        model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static GenerationParams sampled(long seed, int maxTokens) {
        return new GenerationParams(maxTokens, 1.0f, 0.95f, 50, seed, List.of(), 0, 0);
    }

    static EngineHarness run(String id, String prompt, GenerationParams p, List<Integer> replay, int batchNeighbours) {
        EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(8, 100_000, 1000));
        for (int i = 0; i < batchNeighbours; i++) {
            h.add("n" + i, "It rained for three days and", sampled(1000 + i, 40));
        }
        h.add(id, prompt, p, replay);
        h.runUntilIdle(1000);
        return h;
    }

    @Test
    void theSameSeedGivesTheSameTextAloneInABatchAndAfterATakeover() {
        GenerationParams p = sampled(42, 40);
        List<Integer> alone;
        try (EngineHarness h = run("s", "The river", p, List.of(), 0)) {
            alone = h.ids("s");
        }
        try (EngineHarness h = run("s", "The river", p, List.of(), 3)) {
            assertThat(h.ids("s")).as("same seed beside other requests").containsExactlyElementsOf(alone);
        }
        try (EngineHarness h = run("s", "The river", p, alone.subList(0, 10), 2)) {
            assertThat(h.ids("s")).as("same seed resumed after 10 tokens on a new engine").containsExactlyElementsOf(alone);
        }
    }

    @Test
    void differentSeedsGiveDifferentTexts() {
        Set<List<Integer>> outputs = new HashSet<>();
        for (long seed = 1; seed <= 4; seed++) {
            try (EngineHarness h = run("s", "The river", sampled(seed, 30), List.of(), 0)) {
                outputs.add(h.ids("s"));
            }
        }
        assertThat(outputs).hasSizeGreaterThan(1);
    }

    @Test
    void topKOfOneAndATinyTopPAreGreedy() {
        List<Integer> greedy;
        try (EngineHarness h = run("g", "The lock keeper", GenerationParams.greedy(25), List.of(), 0)) {
            greedy = h.ids("g");
        }
        try (EngineHarness h = run("k", "The lock keeper", new GenerationParams(25, 1.5f, 1f, 1, 7, List.of(), 0, 0), List.of(), 0)) {
            assertThat(h.ids("k")).containsExactlyElementsOf(greedy);
        }
        try (EngineHarness h = run("p", "The lock keeper", new GenerationParams(25, 1.5f, 1e-6f, 0, 7, List.of(), 0, 0), List.of(), 0)) {
            assertThat(h.ids("p")).containsExactlyElementsOf(greedy);
        }
    }

    @Test
    void aStopSpanningSeveralTokensEndsTheStreamAndNoPartOfItIsEverStreamed() {
        String full;
        List<String> pieces;
        try (EngineHarness h = run("g", "The lock keeper", GenerationParams.greedy(40), List.of(), 0)) {
            full = h.text("g");
            pieces = h.tokens.get("g").stream().map(StepSink.StepToken::text).toList();
        }
        // A stop made of the end of one token and the start of the next, somewhere in the middle.
        int i = 5;
        while (pieces.get(i).length() < 2 || pieces.get(i + 1).length() < 2) {
            i++;
        }
        String a = pieces.get(i);
        String b = pieces.get(i + 1);
        String stop = a.substring(a.length() - 2) + b.substring(0, 2);
        int at = full.indexOf(stop);
        assertThat(at).isPositive();

        GenerationParams p = new GenerationParams(40, 0f, 1f, 0, 0, List.of("never-seen", stop), 0, 0);
        try (EngineHarness h = run("s", "The lock keeper", p, List.of(), 0)) {
            assertThat(h.text("s")).isEqualTo(full.substring(0, at));
            assertThat(h.finish.get("s")).isEqualTo(FinishReason.stop);
            StringBuilder streamed = new StringBuilder();
            for (StepSink.StepToken t : h.tokens.get("s")) {
                streamed.append(t.text());
                assertThat(full.substring(0, at)).as("every prefix streamed is before the stop").startsWith(streamed.toString());
            }
        }
    }

    @Test
    void textHeldBackForAPossibleStopIsReleasedWhenTheStopDoesNotFollow() {
        String full;
        try (EngineHarness h = run("g", "The lock keeper", GenerationParams.greedy(30), List.of(), 0)) {
            full = h.text("g");
        }
        // " the" appears in the text; a stop starting with it but never completed holds text back, then releases it.
        GenerationParams p = new GenerationParams(30, 0f, 1f, 0, 0, List.of(" the never"), 0, 0);
        try (EngineHarness h = run("s", "The lock keeper", p, List.of(), 0)) {
            assertThat(h.text("s")).isEqualTo(full);
            assertThat(h.finish.get("s")).isEqualTo(FinishReason.length);
        }
    }

    @Test
    void logprobsReportTheChosenTokenAndItsTopAlternatives() {
        GenerationParams p = new GenerationParams(10, 0f, 1f, 0, 0, List.of(), 3, 0);
        try (EngineHarness h = run("l", "The river", p, List.of(), 0)) {
            for (StepSink.StepToken t : h.tokens.get("l")) {
                assertThat(t.logprob()).isNotNull().isLessThanOrEqualTo(0f);
                List<TokenLogprob> top = t.top();
                assertThat(top).hasSize(3);
                assertThat(top.get(0).getTokenId()).as("greedy picks the most likely").isEqualTo(t.tokenId());
                assertThat(top.get(0).getLogprob()).isEqualTo(t.logprob());
                assertThat(top.get(0).getLogprob()).isGreaterThanOrEqualTo(top.get(1).getLogprob());
                assertThat(top.get(1).getLogprob()).isGreaterThanOrEqualTo(top.get(2).getLogprob());
            }
        }
        try (EngineHarness h = run("n", "The river", GenerationParams.greedy(3), List.of(), 0)) {
            assertThat(h.tokens.get("n")).allMatch(t -> t.logprob() == null && t.top().isEmpty());
        }
    }

    @Test
    void drawsDependOnSeedAndSeqAloneAndFollowTheDistribution() {
        assertThat(Sampler.uniform(9, 3)).isEqualTo(Sampler.uniform(9, 3));
        assertThat(Sampler.uniform(9, 3)).isNotEqualTo(Sampler.uniform(9, 4));
        float[] logits = {0f, (float) Math.log(3), -100f};
        GenerationParams p = new GenerationParams(1, 1f, 1f, 0, 0, List.of(), 0, 0);
        int ones = 0;
        int n = 20_000;
        for (int seq = 0; seq < n; seq++) {
            int t = Sampler.sample(logits, new GenerationParams(1, 1f, 1f, 0, seq * 31L, List.of(), 0, 0), seq);
            assertThat(t).isNotEqualTo(2);
            ones += t == 1 ? 1 : 0;
        }
        assertThat(ones / (double) n).as("P(token 1) = 0.75").isBetween(0.73, 0.77);
        for (int seq = 0; seq < 200; seq++) {
            assertThat(Sampler.sample(logits, new GenerationParams(1, 1f, 0.7f, 0, seq, List.of(), 0, 0), seq))
                    .as("top_p 0.7 keeps only the 0.75 token").isEqualTo(1);
        }
        assertThat(p.isGreedy()).isFalse();
    }
}
