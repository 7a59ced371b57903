package io.sluice.worker.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.schemas.FinishReason;
import io.sluice.worker.model.ModelBundle;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The continuous-batching engine on the bundled model and real ONNX Runtime. */
class BatchEngineTest {
    static final List<String> PROMPTS = List.of(
            "The lock keeper",
            "\"The water is rising,\" said",
            "It rained for three days and",
            "The river",
            "A boat came down the canal past the old mill while the town",
            "Messages");
    static ModelBundle model;

    @BeforeAll
    static void load() {
        model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static List<Integer> alone(String prompt, int maxTokens) {
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(1, 100_000, 10_000))) {
            h.add("alone", prompt, GenerationParams.greedy(maxTokens));
            h.runUntilIdle(1000);
            return h.ids("alone");
        }
    }

    @Test
    void aSequenceInABatchProducesExactlyTheTokensItProducesAloneWhateverItsLengthAndJoinTime() {
        int maxTokens = 24;
        List<List<Integer>> expected = PROMPTS.stream().map(p -> alone(p, maxTokens)).toList();
        // Small prefill budget forces chunked prefill; generations join at different steps, and
        // rows finish (and leave) at different times, so the batch is rebuilt many times.
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(4, 100_000, 5))) {
            int next = 0;
            for (int step = 0; step < 2000 && (next < PROMPTS.size() || h.engine.size() > 0); step++) {
                if (next < PROMPTS.size() && step % 3 == 0) {
                    h.add("g" + next, PROMPTS.get(next), GenerationParams.greedy(maxTokens - next));
                    next++;
                }
                h.engine.step();
            }
            for (int i = 0; i < PROMPTS.size(); i++) {
                assertThat(h.ids("g" + i)).as("tokens of %s in a batch", PROMPTS.get(i))
                        .containsExactlyElementsOf(expected.get(i).subList(0, Math.min(expected.get(i).size(), maxTokens - i)));
                assertThat(h.seqs("g" + i)).containsExactlyElementsOf(
                        IntStream.range(0, h.ids("g" + i).size()).boxed().toList());
            }
            assertThat(h.stepLog.stream().mapToInt(List::size).max().orElse(0)).as("batch actually ran rows together")
                    .isGreaterThan(1);
        }
    }

    @Test
    void aLongPromptIsPrefilledInChunksWhileRunningStreamsKeepGettingATokenEveryStep() {
        String longPrompt = String.join(" ", java.util.Collections.nCopies(30, "The boat went down the river."));
        int promptTokens = model.encode(longPrompt).length;
        int budget = 16;
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(4, 100_000, budget))) {
            h.add("running", "The river", GenerationParams.greedy(60));
            h.engine.step();
            h.engine.step();
            int stepsBefore = h.stepLog.size();
            h.add("long", longPrompt, GenerationParams.greedy(4));
            int steps = 0;
            while (!h.tokens.containsKey("long") && steps < 100) {
                h.engine.step();
                steps++;
            }
            assertThat(steps).as("steps to prefill %d tokens %d at a time", promptTokens, budget)
                    .isGreaterThanOrEqualTo((promptTokens + budget - 1) / budget);
            for (List<String> step : h.stepLog.subList(stepsBefore, h.stepLog.size())) {
                assertThat(step).as("the running stream got its token in every step of the prefill").contains("running");
            }
            h.runUntilIdle(200);
            assertThat(h.ids("running")).containsExactlyElementsOf(alone("The river", 60));
        }
    }

    @Test
    void higherPriorityJoinsFirst() {
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(1, 100_000, 1000))) {
            h.add("low", "The river", new GenerationParams(3, 0, 1, 0, 0, List.of(), 0, 1));
            h.add("high", "The river", new GenerationParams(3, 0, 1, 0, 0, List.of(), 0, 9));
            h.add("mid", "The river", new GenerationParams(3, 0, 1, 0, 0, List.of(), 0, 5));
            h.runUntilIdle(100);
            List<String> order = new ArrayList<>();
            h.stepLog.forEach(step -> step.forEach(id -> {
                if (!order.contains(id)) {
                    order.add(id);
                }
            }));
            assertThat(order).containsExactly("high", "mid", "low");
        }
    }

    @Test
    void aCancelStopsThatSequenceAtTheNextStepAndTheRestGoOn() {
        List<Integer> expected = alone("The lock keeper", 30);
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(4, 100_000, 1000))) {
            Generation victim = h.add("victim", "The river", GenerationParams.greedy(30));
            h.add("other", "The lock keeper", GenerationParams.greedy(30));
            for (int i = 0; i < 5; i++) {
                h.engine.step();
            }
            int before = h.ids("victim").size();
            victim.cancel();
            h.engine.step();
            assertThat(h.finish.get("victim")).isEqualTo(FinishReason.cancelled);
            assertThat(h.ids("victim")).as("no token after the cancel").hasSize(before);
            h.runUntilIdle(100);
            assertThat(h.ids("other")).containsExactlyElementsOf(expected);
            assertThat(h.finish.get("other")).isEqualTo(FinishReason.length);
        }
    }

    @Test
    void aGenerationWhoseClaimWasTakenOverStopsWithoutAnOutcome() {
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(4, 100_000, 1000))) {
            h.add("zombie", "The river", GenerationParams.greedy(30));
            h.engine.step();
            h.engine.step();
            int published = h.ids("zombie").size();
            h.abortNext.add("zombie");
            h.engine.step();
            h.runUntilIdle(10);
            assertThat(h.finish).doesNotContainKey("zombie");
            assertThat(h.ids("zombie")).as("nothing after the refused checkpoint").hasSize(published);
            assertThat(h.engine.size()).isZero();
        }
    }

    @Test
    void aTakeoverReplaysTheCheckpointThenContinuesTheSameStream() {
        List<Integer> full = alone("The lock keeper", 20);
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(4, 100_000, 1000))) {
            h.add("resumed", "The lock keeper", GenerationParams.greedy(20), full.subList(0, 7));
            h.runUntilIdle(100);
            assertThat(h.ids("resumed")).containsExactlyElementsOf(full);
            assertThat(h.tokens.get("resumed").subList(0, 7)).allMatch(StepSink.StepToken::replayed);
            assertThat(h.tokens.get("resumed").subList(7, 20)).noneMatch(StepSink.StepToken::replayed);
            assertThat(h.seqs("resumed")).containsExactlyElementsOf(IntStream.range(0, 20).boxed().toList());
        }
    }

    @Test
    void aPromptThatFillsTheContextIsAnInvalidRequest() {
        String huge = String.join(" ", java.util.Collections.nCopies(400, "water"));
        try (EngineHarness h = new EngineHarness(model, new BatchEngine.Limits(4, 100_000, 1000))) {
            h.add("huge", huge, GenerationParams.greedy(5));
            assertThat(h.errors.get("huge").getCode()).isEqualTo("invalid_request");
            assertThat(h.errors.get("huge").getMessage()).startsWith("prompt");
            assertThat(h.engine.size()).isZero();
        }
    }
}
