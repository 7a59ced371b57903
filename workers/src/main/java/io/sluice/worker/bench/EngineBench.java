package io.sluice.worker.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.worker.engine.BatchEngine;
import io.sluice.worker.engine.Decoder;
import io.sluice.worker.engine.Generation;
import io.sluice.worker.engine.GenerationParams;
import io.sluice.worker.engine.StepSink;
import io.sluice.worker.model.ModelBundle;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The engine beside a bare ONNX Runtime loop over the same model, in the same run. A benchmark,
 * not a test: it prints a table and asserts nothing.
 *
 * <p>The bare loop is the ceiling: one static batch of {@code c} equal prompts, prefilled together,
 * then decode steps feeding {@code present.*} straight back, greedy argmax, nothing else. The
 * engine gets the same prompts from {@code c} clients arriving staggered (one more every
 * {@code stagger} steps) and each sending its next request when the last one ends, as a server
 * sees them, and does everything it does in production: admission, chunked prefill, cache
 * merges, sampling, text assembly, per-step output. Step latency is the whole step either way:
 * the model run plus everything around it.
 */
public final class EngineBench {
    /** One row of the table. */
    public record Row(int concurrency, double bareTokensPerSec, double bareStepMs, double engineTokensPerSec,
            double engineDecodeStepMs, double engineStepMsP50, double engineStepMsP99, int engineTokens) {
    }

    private EngineBench() {
    }

    /** Bare loop: tokens/s and mean decode-step latency at a static batch of {@code c}. */
    static double[] bare(ModelBundle model, long[] prompt, int c, int steps) throws OrtException {
        var env = model.env();
        Map<String, OnnxTensor> past = new HashMap<>();
        List<OnnxTensor> empties = new ArrayList<>();
        for (int l = 0; l < model.layers(); l++) {
            for (String kind : new String[] {"key", "value"}) {
                OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.allocate(0),
                        new long[] {c, model.heads(), 0, model.headSize()});
                empties.add(t);
                past.put("past_key_values." + l + "." + kind, t);
            }
        }
        long t0 = System.nanoTime();
        long[] ids = new long[c * prompt.length];
        long[] pos = new long[c * prompt.length];
        for (int b = 0; b < c; b++) {
            System.arraycopy(prompt, 0, ids, b * prompt.length, prompt.length);
            for (int i = 0; i < prompt.length; i++) {
                pos[b * prompt.length + i] = i;
            }
        }
        long[] mask = new long[c * prompt.length];
        Arrays.fill(mask, 1L);
        OrtSession.Result last = run(model, past, ids, pos, mask, c, prompt.length);
        int len = prompt.length;
        long decodeStart = System.nanoTime();
        for (int s = 0; s < steps; s++) {
            long[] next = argmaxRows(last, c);
            long[] p = new long[c];
            Arrays.fill(p, len);
            long[] m = new long[c * (len + 1)];
            Arrays.fill(m, 1L);
            for (int l = 0; l < model.layers(); l++) {
                for (String kind : new String[] {"key", "value"}) {
                    past.put("past_key_values." + l + "." + kind,
                            (OnnxTensor) last.get("present." + l + "." + kind).orElseThrow());
                }
            }
            OrtSession.Result r = run(model, past, next, p, m, c, 1);
            last.close();
            last = r;
            len++;
        }
        long end = System.nanoTime();
        last.close();
        empties.forEach(OnnxTensor::close);
        return new double[] {(double) c * steps / ((end - t0) / 1e9), (end - decodeStart) / 1e6 / steps};
    }

    private static OrtSession.Result run(ModelBundle model, Map<String, OnnxTensor> past, long[] ids, long[] pos,
            long[] mask, int b, int t) throws OrtException {
        var env = model.env();
        try (OnnxTensor i = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {b, t});
             OnnxTensor p = OnnxTensor.createTensor(env, LongBuffer.wrap(pos), new long[] {b, t});
             OnnxTensor m = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {b, mask.length / b})) {
            Map<String, OnnxTensor> in = new HashMap<>(past);
            in.put("input_ids", i);
            in.put("position_ids", p);
            in.put("attention_mask", m);
            return model.session().run(in);
        }
    }

    private static long[] argmaxRows(OrtSession.Result r, int b) throws OrtException {
        OnnxTensor logits = (OnnxTensor) r.get("logits").orElseThrow();
        long[] shape = logits.getInfo().getShape();
        int t = (int) shape[1];
        int v = (int) shape[2];
        FloatBuffer all = logits.getFloatBuffer();
        long[] out = new long[b];
        float[] row = new float[v];
        for (int i = 0; i < b; i++) {
            all.get(((i * t) + t - 1) * v, row);
            out[i] = Decoder.argmax(row);
        }
        return out;
    }

    /**
     * The engine under a closed loop of {@code c} clients: client i first arrives at step
     * {@code i * stagger}, and each submits its next request as soon as its previous one ends,
     * until {@code rounds * c} requests have run. Returns whole-run tokens/s, the median of
     * decode-only steps at a full batch (no prefill, no compaction), the p50 and p99 of all steps,
     * and the token count.
     */
    static double[] engine(ModelBundle model, String prompt, int c, int maxTokens, int stagger, int rounds) {
        List<Long> stepNanos = new ArrayList<>();
        int[] tokens = {0};
        int[] ended = {0};
        StepSink sink = new StepSink() {
            @Override
            public Set<Generation> tokens(List<StepToken> step) {
                tokens[0] += step.size();
                return Set.of();
            }

            @Override
            public void finished(Generation g, FinishReason reason, ErrorInfo error) {
                ended[0]++;
            }
        };
        long[] ids = model.encode(prompt);
        List<Long> pure = new ArrayList<>();
        int total = rounds * c;
        long t0 = System.nanoTime();
        try (BatchEngine e = new BatchEngine(model, new BatchEngine.Limits(c, Integer.MAX_VALUE, 512), sink)) {
            int added = 0;
            int started = 0;
            for (int step = 0; ended[0] < total; step++) {
                if (started < c && step % stagger == 0) {
                    started++;
                }
                // Every client that has arrived keeps one request in the engine.
                while (added < total && e.size() < started) {
                    e.add(new Generation("g" + added, GenerationParams.greedy(maxTokens), ids, List.of(), model, null));
                    added++;
                }
                long before = e.steps();
                long s0 = System.nanoTime();
                e.step();
                long took = System.nanoTime() - s0;
                if (e.steps() > before) {
                    // The whole step: admission, prefill, cache merge, decode, sampling, output.
                    stepNanos.add(took);
                    if (e.lastStepBatch() == c && e.lastStepPure()) {
                        pure.add(took);
                    }
                }
            }
        }
        long end = System.nanoTime();
        long[] sorted = stepNanos.stream().mapToLong(Long::longValue).sorted().toArray();
        double p50 = sorted.length == 0 ? 0 : sorted[sorted.length / 2] / 1e6;
        double p99 = sorted.length == 0 ? 0 : sorted[Math.min(sorted.length - 1, (int) (sorted.length * 0.99))] / 1e6;
        double decodeStep = pure.isEmpty() ? 0 : pure.stream().mapToLong(Long::longValue).sorted()
                .skip(pure.size() / 2).findFirst().orElse(0L) / 1e6;
        return new double[] {tokens[0] / ((end - t0) / 1e9), decodeStep, p50, p99, tokens[0]};
    }

    /**
     * Median decode-only step of the engine with {@code c} requests arriving together, so that
     * every step after the first is a plain decode at the full batch: the engine's own overhead
     * per step, beside the bare loop's step at the same batch.
     */
    static double engineDecodeStepMs(ModelBundle model, String prompt, int c, int maxTokens) {
        List<Long> pure = new ArrayList<>();
        StepSink sink = StepSink.DISCARD;
        long[] ids = model.encode(prompt);
        try (BatchEngine e = new BatchEngine(model, new BatchEngine.Limits(c, Integer.MAX_VALUE, Integer.MAX_VALUE), sink)) {
            for (int i = 0; i < c; i++) {
                e.add(new Generation("s" + i, GenerationParams.greedy(maxTokens), ids, List.of(), model, null));
            }
            while (e.size() > 0) {
                long s0 = System.nanoTime();
                e.step();
                long took = System.nanoTime() - s0;
                if (e.lastStepPure() && e.lastStepBatch() == c) {
                    pure.add(took);
                }
            }
        }
        return pure.isEmpty() ? 0 : pure.stream().mapToLong(Long::longValue).sorted().skip(pure.size() / 2)
                .findFirst().orElse(0L) / 1e6;
    }

    /** Runs every concurrency level and returns the table rows. */
    public static List<Row> run(ModelBundle model, String prompt, int[] concurrency, int maxTokens, int stagger)
            throws OrtException {
        long[] ids = model.encode(prompt);
        bare(model, ids, 1, 8); // warm-up
        engine(model, prompt, 2, 8, 1, 2);
        List<Row> rows = new ArrayList<>();
        for (int c : concurrency) {
            double[] b = bare(model, ids, c, maxTokens);
            double[] e = engine(model, prompt, c, maxTokens, stagger, 4);
            double decodeStep = engineDecodeStepMs(model, prompt, c, maxTokens);
            rows.add(new Row(c, b[0], b[1], e[0], decodeStep, e[2], e[3], (int) e[4]));
        }
        return rows;
    }

    /** The table as text. */
    public static String table(String modelName, List<Row> rows) {
        StringBuilder sb = new StringBuilder();
        sb.append("model ").append(modelName).append('\n');
        sb.append(String.format("%-5s %11s %10s %12s %13s %15s %11s %10s %10s%n", "conc", "bare tok/s", "bare step",
                "engine tok/s", "engine/bare", "engine decode", "decode/bare", "step p50", "step p99"));
        for (Row r : rows) {
            sb.append(String.format("%-5d %11.1f %8.2fms %12.1f %12.2fx %13.2fms %10.2fx %8.2fms %8.2fms%n",
                    r.concurrency(), r.bareTokensPerSec(), r.bareStepMs(), r.engineTokensPerSec(),
                    r.engineTokensPerSec() / r.bareTokensPerSec(), r.engineDecodeStepMs(),
                    r.engineDecodeStepMs() == 0 ? 0 : r.bareStepMs() / r.engineDecodeStepMs(),
                    r.engineStepMsP50(), r.engineStepMsP99()));
        }
        if (rows.size() > 1) {
            Row first = rows.get(0);
            Row last = rows.get(rows.size() - 1);
            sb.append(String.format("engine tok/s at concurrency %d is %.1fx concurrency %d (bare loop: %.1fx)%n",
                    last.concurrency(), last.engineTokensPerSec() / first.engineTokensPerSec(), first.concurrency(),
                    last.bareTokensPerSec() / first.bareTokensPerSec()));
        }
        sb.append("engine/bare: whole-run tokens/s, prefill included; decode/bare: bare step time over the engine's "
                + "decode-only step time at the same batch (1.00x = no engine overhead)\n");
        return sb.toString();
    }
}
