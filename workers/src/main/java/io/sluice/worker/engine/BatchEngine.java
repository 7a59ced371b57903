package io.sluice.worker.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.worker.engine.StepSink.StepToken;
import io.sluice.worker.model.ModelBundle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Continuous batching on ONNX Runtime. Generations join and leave the running batch at every
 * step. Each step: apply cancels; admit waiting generations by priority while the batch and the
 * token budget allow; prefill newcomers in chunks, no more than {@code prefillBudget} tokens per
 * step so running streams are never stalled for longer; merge the newcomers' caches into the
 * batch and drop finished rows (one copy, only when the batch changes); then one decode step for
 * every row, all left-padded to a common cache length with per-row attention masks and position
 * ids, so each row produces the tokens it would produce alone.
 *
 * <p>Single-threaded: only the engine thread calls {@link #add} and {@link #step};
 * {@link Generation#cancel()} is the one call from elsewhere.
 */
public final class BatchEngine implements AutoCloseable {
    /** Limits of the engine. */
    public record Limits(int maxBatch, int maxTokensInFlight, int prefillBudget) {
        public Limits {
            if (maxBatch < 1 || maxTokensInFlight < 1 || prefillBudget < 1) {
                throw new IllegalArgumentException("engine limits must be positive");
            }
        }
    }

    private static final Comparator<Generation> BY_PRIORITY = Comparator
            .comparingInt((Generation g) -> -g.params().priority())
            .thenComparingLong(Generation::admittedNanos);

    private final ModelBundle model;
    private final Decoder decoder;
    private final Limits limits;
    private final StepSink sink;
    private final List<Generation> waiting = new ArrayList<>();
    private final List<Generation> prefilling = new ArrayList<>();
    private List<Generation> rows = new ArrayList<>();
    private int[] rowLen = new int[0];
    private int cacheLen;
    private final Map<String, OnnxTensor> past = new HashMap<>();
    private final List<OnnxTensor> built = new ArrayList<>();
    private OrtSession.Result lastResult;
    private final List<StepToken> out = new ArrayList<>();
    private final List<Object[]> finishing = new ArrayList<>();
    private long steps;
    private long decodeNanos;
    private long lastStepNanos;

    public BatchEngine(ModelBundle model, Limits limits, StepSink sink) {
        this.model = model;
        this.decoder = new Decoder(model);
        this.limits = limits;
        this.sink = sink;
    }

    /** Generations held (waiting, prefilling or running). */
    public int size() {
        return waiting.size() + prefilling.size() + rows.size();
    }

    /** Rows in the running batch. */
    public int batchSize() {
        return rows.size();
    }

    /** True while the engine can take one more generation without exceeding its batch size. */
    public boolean hasRoom() {
        return size() < limits.maxBatch();
    }

    public long steps() {
        return steps;
    }

    /** Time spent in decode steps (the batched model runs), in nanoseconds. */
    public long decodeNanos() {
        return decodeNanos;
    }

    /** Duration of the last decode step, in nanoseconds. */
    public long lastStepNanos() {
        return lastStepNanos;
    }

    /**
     * Takes a generation. Tokens it replays (a takeover) are handed to the sink again, marked
     * replayed, at the next step, so whatever the client may have missed is published again.
     */
    public void add(Generation g) {
        if (g.context().length >= model.maxPositions()) {
            finish(g, null, new ErrorInfo("invalid_request", "prompt: " + g.context().length
                    + " tokens leave no room in the model's context of " + model.maxPositions(), false));
            flushOutput();
            return;
        }
        int seq = 0;
        for (int token : g.replay()) {
            if (g.state() == Generation.State.FINISHED) {
                break;
            }
            accept(g, seq++, token, null, true);
        }
        if (g.state() != Generation.State.FINISHED) {
            waiting.add(g);
            waiting.sort(BY_PRIORITY);
        }
        flushOutput();
    }

    /** One scheduling step; returns false when there was nothing to do. */
    public boolean step() {
        if (size() == 0) {
            return false;
        }
        applyCancels();
        admit();
        List<Generation> joiners = prefill();
        boolean leavers = rows.stream().anyMatch(g -> g.state() == Generation.State.FINISHED);
        if (!joiners.isEmpty() || leavers) {
            rebuild(joiners);
        }
        if (!rows.isEmpty()) {
            decode();
        }
        flushOutput();
        return true;
    }

    private void applyCancels() {
        for (List<Generation> list : List.of(waiting, prefilling, rows)) {
            for (Generation g : list) {
                if (g.cancelRequested() && g.state() != Generation.State.FINISHED) {
                    finish(g, FinishReason.cancelled, null);
                }
            }
        }
        waiting.removeIf(g -> g.state() == Generation.State.FINISHED);
        prefilling.removeIf(g -> {
            if (g.state() == Generation.State.FINISHED) {
                closePrefill(g);
                return true;
            }
            return false;
        });
    }

    private void admit() {
        int inFlight = 0;
        for (Generation g : rows) {
            inFlight += g.reservedTokens();
        }
        for (Generation g : prefilling) {
            inFlight += g.reservedTokens();
        }
        while (!waiting.isEmpty()) {
            Generation next = waiting.get(0);
            boolean empty = rows.isEmpty() && prefilling.isEmpty();
            if (!empty && inFlight + next.reservedTokens() > limits.maxTokensInFlight()) {
                break;
            }
            waiting.remove(0);
            prefilling.add(next);
            inFlight += next.reservedTokens();
        }
    }

    /** Prefills within the step's budget; returns the generations whose prefill completed. */
    private List<Generation> prefill() {
        List<Generation> joiners = new ArrayList<>();
        int budget = limits.prefillBudget();
        for (Generation g : new ArrayList<>(prefilling)) {
            if (budget == 0) {
                break;
            }
            long[] context = g.context();
            int chunk = Math.min(budget, context.length - g.prefilled);
            long[] ids = java.util.Arrays.copyOfRange(context, g.prefilled, g.prefilled + chunk);
            if (g.prefill == null) {
                g.prefill = decoder.start(ids);
            } else {
                g.prefill.feed(ids);
            }
            g.prefilled += chunk;
            budget -= chunk;
            if (g.prefilled == context.length) {
                prefilling.remove(g);
                g.state(Generation.State.RUNNING);
                float[] logits = g.prefill.lastLogits();
                int seq = g.tokens().size();
                accept(g, seq, Sampler.sample(logits, g.params(), seq), logits, false);
                if (g.state() == Generation.State.FINISHED) {
                    closePrefill(g);
                } else {
                    joiners.add(g);
                }
            }
        }
        return joiners;
    }

    /** Handles one sampled (or replayed) token: text, stops, limits. */
    private void accept(Generation g, int seq, int token, float[] logits, boolean replayed) {
        Float logprob = null;
        List<io.sluice.schemas.TokenLogprob> top = List.of();
        if (logits != null && g.params().logprobs() > 0) {
            Sampler.Logprobs lp = Sampler.logprobs(logits, token, g.params().logprobs(),
                    id -> model.decode(new long[] {id}));
            logprob = lp.logprob();
            top = lp.top();
        }
        if (token == model.eosTokenId()) {
            if (g.assembler().hasHeldText()) {
                // The stream ends holding text back for a stop that never came: release it now.
                String rest = g.assembler().flush();
                g.release(rest);
                g.tokens().add(token);
                out.add(new StepToken(g, seq, token, rest, logprob, top, replayed));
            }
            finish(g, FinishReason.stop, null);
            return;
        }
        TextAssembler.Release r = g.assembler().push(token);
        g.tokens().add(token);
        String text = r.text();
        boolean atLimit = g.tokens().size() >= g.params().maxTokens();
        if (!r.stopped() && atLimit) {
            text += g.assembler().flush();
        }
        g.release(text);
        out.add(new StepToken(g, seq, token, text, logprob, top, replayed));
        if (r.stopped()) {
            finish(g, FinishReason.stop, null);
        } else if (atLimit) {
            finish(g, FinishReason.length, null);
        } else {
            g.pending = token;
        }
    }

    private void finish(Generation g, FinishReason reason, ErrorInfo error) {
        if (g.state() == Generation.State.FINISHED) {
            return;
        }
        g.state(Generation.State.FINISHED);
        finishing.add(new Object[] {g, reason, error});
    }

    private void flushOutput() {
        Set<Generation> aborted = out.isEmpty() ? Set.of() : sink.tokens(new ArrayList<>(out));
        out.clear();
        for (Generation g : aborted) {
            // Taken over by another worker: stop without an outcome; the new owner writes it.
            g.state(Generation.State.FINISHED);
        }
        List<Object[]> done = new ArrayList<>(finishing);
        finishing.clear();
        for (Object[] f : done) {
            Generation g = (Generation) f[0];
            if (!aborted.contains(g)) {
                sink.finished(g, (FinishReason) f[1], (ErrorInfo) f[2]);
            }
        }
    }

    /** Merges joiners into the batch cache and drops finished rows: one copy per changed batch. */
    private void rebuild(List<Generation> joiners) {
        List<Generation> newRows = new ArrayList<>();
        List<Integer> lens = new ArrayList<>();
        List<Integer> oldIndex = new ArrayList<>();
        for (int i = 0; i < rows.size(); i++) {
            if (rows.get(i).state() != Generation.State.FINISHED) {
                newRows.add(rows.get(i));
                lens.add(rowLen[i]);
                oldIndex.add(i);
            }
        }
        int kept = newRows.size();
        for (Generation g : joiners) {
            newRows.add(g);
            lens.add(g.prefill.length());
        }
        int b2 = newRows.size();
        int l2 = lens.stream().mapToInt(Integer::intValue).max().orElse(0);
        int heads = model.heads();
        int d = model.headSize();
        Map<String, OnnxTensor> next = new HashMap<>();
        List<OnnxTensor> nextBuilt = new ArrayList<>();
        try {
            if (b2 > 0) {
                for (int layer = 0; layer < model.layers(); layer++) {
                    for (String kind : new String[] {"key", "value"}) {
                        String name = "past_key_values." + layer + "." + kind;
                        FloatBuffer dst = ByteBuffer.allocateDirect(b2 * heads * l2 * d * Float.BYTES)
                                .order(ByteOrder.nativeOrder()).asFloatBuffer();
                        if (kept > 0) {
                            FloatBuffer src = past.get(name).getFloatBuffer();
                            for (int i = 0; i < kept; i++) {
                                copyRow(src, oldIndex.get(i), cacheLen, dst, i, l2, lens.get(i), heads, d);
                            }
                        }
                        for (int j = 0; j < joiners.size(); j++) {
                            Generation g = joiners.get(j);
                            FloatBuffer src = g.prefill.past(name).getFloatBuffer();
                            copyRow(src, 0, g.prefill.length(), dst, kept + j, l2, lens.get(kept + j), heads, d);
                        }
                        OnnxTensor t = OnnxTensor.createTensor(model.env(), dst, new long[] {b2, heads, l2, d});
                        next.put(name, t);
                        nextBuilt.add(t);
                    }
                }
            }
        } catch (OrtException e) {
            nextBuilt.forEach(OnnxTensor::close);
            throw new IllegalStateException("Cannot rebuild the batch cache: " + e.getMessage(), e);
        }
        releaseCache();
        past.putAll(next);
        built.addAll(nextBuilt);
        for (Generation g : joiners) {
            closePrefill(g);
        }
        rows = newRows;
        rowLen = lens.stream().mapToInt(Integer::intValue).toArray();
        cacheLen = l2;
    }

    /** Copies the last {@code len} positions of one row, right-aligned, into a row of {@code dst}. */
    private static void copyRow(FloatBuffer src, int srcRow, int srcLen, FloatBuffer dst, int dstRow, int dstLen,
            int len, int heads, int d) {
        for (int h = 0; h < heads; h++) {
            int from = ((srcRow * heads + h) * srcLen + (srcLen - len)) * d;
            int to = ((dstRow * heads + h) * dstLen + (dstLen - len)) * d;
            dst.put(to, src, from, len * d);
        }
    }

    private void decode() {
        int b = rows.size();
        long t0 = System.nanoTime();
        long[] ids = new long[b];
        long[] positions = new long[b];
        long[] mask = new long[b * (cacheLen + 1)];
        for (int i = 0; i < b; i++) {
            Generation g = rows.get(i);
            ids[i] = g.pending;
            positions[i] = rowLen[i];
            int pad = cacheLen - rowLen[i];
            for (int j = pad; j <= cacheLen; j++) {
                mask[i * (cacheLen + 1) + j] = 1L;
            }
        }
        var env = model.env();
        try (OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {b, 1});
             OnnxTensor attention = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {b, cacheLen + 1});
             OnnxTensor positionIds = OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {b, 1})) {
            Map<String, OnnxTensor> inputs = new HashMap<>(past);
            inputs.put("input_ids", inputIds);
            inputs.put("attention_mask", attention);
            inputs.put("position_ids", positionIds);
            OrtSession.Result result = model.session().run(inputs);
            OnnxTensor logitsTensor = (OnnxTensor) result.get("logits").orElseThrow();
            FloatBuffer all = logitsTensor.getFloatBuffer();
            int vocab = (int) logitsTensor.getInfo().getShape()[2];
            releaseCache();
            lastResult = result;
            for (int layer = 0; layer < model.layers(); layer++) {
                for (String kind : new String[] {"key", "value"}) {
                    past.put("past_key_values." + layer + "." + kind,
                            (OnnxTensor) result.get("present." + layer + "." + kind).orElseThrow());
                }
            }
            cacheLen++;
            long elapsed = System.nanoTime() - t0;
            decodeNanos += elapsed;
            lastStepNanos = elapsed;
            steps++;
            for (int i = 0; i < b; i++) {
                rowLen[i]++;
                Generation g = rows.get(i);
                if (g.state() == Generation.State.FINISHED) {
                    continue;
                }
                float[] logits = new float[vocab];
                all.get(i * vocab, logits);
                int seq = g.tokens().size();
                accept(g, seq, Sampler.sample(logits, g.params(), seq), logits, false);
                if (g.state() != Generation.State.FINISHED && rowLen[i] + 1 > model.maxPositions()) {
                    finish(g, FinishReason.length, null);
                }
            }
        } catch (OrtException e) {
            throw new IllegalStateException("Decode step failed: " + e.getMessage(), e);
        }
    }

    private void releaseCache() {
        if (lastResult != null) {
            lastResult.close();
            lastResult = null;
        }
        built.forEach(OnnxTensor::close);
        built.clear();
        past.clear();
    }

    private static void closePrefill(Generation g) {
        if (g.prefill != null) {
            g.prefill.close();
            g.prefill = null;
        }
    }

    /** Ends every generation still held, as failed, and frees the cache. */
    @Override
    public void close() {
        for (List<Generation> list : List.of(waiting, prefilling, rows)) {
            for (Generation g : list) {
                closePrefill(g);
            }
        }
        releaseCache();
        decoder.close();
    }

    /** Generations currently held, for tests and metrics. */
    public Set<String> ids() {
        Set<String> ids = new HashSet<>();
        waiting.forEach(g -> ids.add(g.id()));
        prefilling.forEach(g -> ids.add(g.id()));
        rows.forEach(g -> ids.add(g.id()));
        return ids;
    }
}
