package io.sluice.worker.engine;

import io.sluice.schemas.TokenLogprob;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntFunction;

/**
 * Picks the next token from a row of logits: greedy, or temperature with top-k and top-p.
 * Randomness for token {@code seq} comes from a hash of (seed, seq) alone, never from a running
 * generator, so a seeded request resumes on another worker exactly where it left off.
 */
public final class Sampler {
    /** Tokens less likely than this under the sampling distribution are never drawn. */
    static final double NEGLIGIBLE = 1e-9;

    private Sampler() {
    }

    /** The uniform draw in [0, 1) for token {@code seq} of a request with {@code seed}. */
    public static double uniform(long seed, int seq) {
        long z = seed + 0x9E3779B97F4A7C15L * (seq + 1L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z = z ^ (z >>> 31);
        return (z >>> 11) * 0x1.0p-53;
    }

    /** The next token id. */
    public static int sample(float[] logits, GenerationParams p, int seq) {
        if (p.isGreedy()) {
            return Decoder.argmax(logits);
        }
        int n = logits.length;
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] probs = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            probs[i] = Math.exp((logits[i] - max) / p.temperature());
            sum += probs[i];
        }
        // Candidates, most likely first: (probability bits, index) packed so a primitive sort orders them.
        long[] packed = new long[n];
        int m = 0;
        for (int i = 0; i < n; i++) {
            double q = probs[i] / sum;
            if (q >= NEGLIGIBLE) {
                packed[m++] = ((long) Float.floatToIntBits((float) q) << 32) | (0xFFFFFFFFL - i);
            }
        }
        packed = Arrays.copyOf(packed, m);
        Arrays.sort(packed);
        int keep = p.topK() > 0 ? Math.min(p.topK(), m) : m;
        double mass = 0;
        int cut = 0;
        for (int j = m - 1; j >= m - keep; j--) {
            mass += probs[index(packed[j])] / sum;
            cut++;
            if (mass >= p.topP()) {
                break;
            }
        }
        double u = uniform(p.seed(), seq) * mass;
        double acc = 0;
        for (int j = m - 1; j >= m - cut; j--) {
            int id = index(packed[j]);
            acc += probs[id] / sum;
            if (u < acc) {
                return id;
            }
        }
        return index(packed[m - cut]);
    }

    private static int index(long packed) {
        return (int) (0xFFFFFFFFL - (packed & 0xFFFFFFFFL));
    }

    /** Natural-log softmax of the raw logits at {@code id}, and the {@code n} most likely alternatives. */
    public static Logprobs logprobs(float[] logits, int id, int n, IntFunction<String> text) {
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp(l - max);
        }
        double lse = max + Math.log(sum);
        List<TokenLogprob> top = new ArrayList<>(n);
        if (n > 0) {
            int[] best = new int[n];
            Arrays.fill(best, -1);
            for (int i = 0; i < logits.length; i++) {
                for (int k = 0; k < n; k++) {
                    if (best[k] < 0 || logits[i] > logits[best[k]]) {
                        System.arraycopy(best, k, best, k + 1, n - k - 1);
                        best[k] = i;
                        break;
                    }
                }
            }
            for (int b : best) {
                if (b >= 0) {
                    top.add(new TokenLogprob(b, text.apply(b), (float) (logits[b] - lse)));
                }
            }
        }
        return new Logprobs((float) (logits[id] - lse), top);
    }

    /** A token's log-probability and its top alternatives. */
    public record Logprobs(float logprob, List<TokenLogprob> top) {
    }
}
