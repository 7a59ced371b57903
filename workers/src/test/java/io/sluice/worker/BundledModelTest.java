package io.sluice.worker;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sluice.worker.engine.Decoder;
import io.sluice.worker.engine.Sequence;
import io.sluice.worker.engine.TextStreamer;
import io.sluice.worker.model.ModelBundle;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The bundled model, run by real ONNX Runtime, reproduces exactly the greedy continuations the
 * training script computed in PyTorch and saved beside the model.
 */
class BundledModelTest {
    static ModelBundle model;
    static JsonNode reference;

    @BeforeAll
    static void load() throws Exception {
        model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
        try (InputStream in = BundledModelTest.class.getResourceAsStream("/io/sluice/workers/reference/reference.json")) {
            reference = new ObjectMapper().readTree(in);
        }
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static List<Integer> ints(JsonNode array) {
        List<Integer> out = new ArrayList<>();
        array.forEach(n -> out.add(n.asInt()));
        return out;
    }

    @Test
    void kvCacheShapeAndSpecialTokensComeFromTheGraphAndConfig() {
        JsonNode config;
        try (InputStream in = ModelBundle.class.getResourceAsStream("/io/sluice/workers/bundled/sluice-tiny/config.json")) {
            config = new ObjectMapper().readTree(in);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        assertThat(model.layers()).isEqualTo(config.path("n_layer").asInt());
        assertThat(model.heads()).isEqualTo(config.path("n_head").asInt());
        assertThat(model.headSize()).isEqualTo(config.path("n_embd").asInt() / config.path("n_head").asInt());
        assertThat(model.vocabSize()).isEqualTo(config.path("vocab_size").asInt());
        assertThat(model.eosTokenId()).isEqualTo(reference.path("eos_token_id").asInt());
        assertThat(model.device()).isEqualTo("cpu");
    }

    @Test
    void tokenizerMatchesTheTrainingTokenizer() {
        for (JsonNode c : reference.path("cases")) {
            long[] ids = model.encode(c.path("prompt").asText());
            assertThat(ints(c.path("prompt_ids"))).containsExactlyElementsOf(
                    java.util.Arrays.stream(ids).mapToObj(i -> (int) i).toList());
        }
    }

    @Test
    void greedyDecodingWithTheKvCacheReproducesTheReferenceContinuations() {
        assertThat(reference.path("cases").size()).isGreaterThanOrEqualTo(4);
        try (Decoder decoder = new Decoder(model)) {
            for (JsonNode c : reference.path("cases")) {
                List<Integer> expected = ints(c.path("greedy_ids"));
                List<Integer> actual = new ArrayList<>();
                TextStreamer streamer = new TextStreamer(model);
                StringBuilder text = new StringBuilder();
                try (Sequence seq = decoder.start(model.encode(c.path("prompt").asText()))) {
                    float[] logits = seq.lastLogits();
                    while (actual.size() < expected.size()) {
                        int next = Decoder.argmax(logits);
                        actual.add(next);
                        text.append(streamer.push(next));
                        logits = seq.feed(next);
                    }
                }
                text.append(streamer.flush());
                assertThat(actual).as("greedy ids for %s", c.path("prompt").asText()).containsExactlyElementsOf(expected);
                assertThat(text.toString()).isEqualTo(c.path("greedy_text").asText());
            }
        }
    }

    @Test
    void prefillingPromptAndTokensTogetherGivesTheSameNextTokenAsFeedingThemOneByOne() {
        // A takeover rebuilds the cache by prefilling prompt + checkpoint: it must continue the same way.
        JsonNode c = reference.path("cases").get(0);
        long[] prompt = model.encode(c.path("prompt").asText());
        List<Integer> expected = ints(c.path("greedy_ids"));
        long[] context = new long[prompt.length + 5];
        System.arraycopy(prompt, 0, context, 0, prompt.length);
        for (int i = 0; i < 5; i++) {
            context[prompt.length + i] = expected.get(i);
        }
        try (Decoder decoder = new Decoder(model); Sequence seq = decoder.start(context)) {
            assertThat(Decoder.argmax(seq.lastLogits())).isEqualTo(expected.get(5));
            assertThat(seq.length()).isEqualTo(context.length);
        }
    }

    @Test
    void longTextIsNeverTruncatedByTheTokenizer() {
        String text = String.join(" ", java.util.Collections.nCopies(800, "water"));
        assertThat(model.encode(text).length).as("tokens of 800 words").isGreaterThan(512);
    }
}
