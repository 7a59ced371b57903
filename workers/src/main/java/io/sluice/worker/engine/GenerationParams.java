package io.sluice.worker.engine;

import java.util.List;

/**
 * How one request is decoded.
 *
 * @param maxTokens upper bound on generated tokens
 * @param temperature 0 for greedy decoding
 * @param topP nucleus mass in (0, 1]; 1 keeps every token
 * @param topK 0 keeps every token
 * @param seed sampling seed; token {@code seq} draws from (seed, seq) alone, so a seeded
 *     request samples the same way on any worker and after any restart
 * @param stop stop sequences; the streamed text never contains any part of one
 * @param logprobs how many alternatives (0-5) to report per token
 * @param priority 0-9; higher joins the running batch first
 */
public record GenerationParams(int maxTokens, float temperature, float topP, int topK, long seed, List<String> stop,
        int logprobs, int priority) {

    public GenerationParams {
        if (maxTokens < 1) {
            throw new IllegalArgumentException("maxTokens must be at least 1");
        }
        if (temperature < 0 || Float.isNaN(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0");
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1]");
        }
        if (topK < 0) {
            throw new IllegalArgumentException("topK must be >= 0");
        }
        if (logprobs < 0 || logprobs > 5) {
            throw new IllegalArgumentException("logprobs must be 0-5");
        }
        stop = List.copyOf(stop);
    }

    /** Greedy decoding of up to {@code maxTokens} tokens, no stops, no logprobs. */
    public static GenerationParams greedy(int maxTokens) {
        return new GenerationParams(maxTokens, 0f, 1f, 0, 0L, List.of(), 0, 0);
    }

    public boolean isGreedy() {
        return temperature == 0f;
    }
}
