package io.sluice.worker.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.worker.engine.StepSink.StepToken;
import io.sluice.worker.model.ModelBundle;
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
 * step so running streams are never stalled for longer; place the newcomers' caches into free
 * slots of the batch cache (copying only their own rows); then one decode step for
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
    private final String[] pastNames;
    private final String[] presentNames;
    private final KvArena arena;
    /** Which arena set holds the batch's current cache. */
    private int cur;
    private final List<StepToken> out = new ArrayList<>();
    private final List<Object[]> finishing = new ArrayList<>();
    private long steps;
    private long decodeNanos;
    private long lastStepNanos;
    private int lastStepBatch;
    private boolean lastStepPure;

    public BatchEngine(ModelBundle model, Limits limits, StepSink sink) {
        this.model = model;
        this.decoder = new Decoder(model);
        this.limits = limits;
        this.sink = sink;
        this.pastNames = new String[model.layers() * 2];
        this.presentNames = new String[model.layers() * 2];
        for (int l = 0; l < model.layers(); l++) {
            pastNames[2 * l] = "past_key_values." + l + ".key";
            pastNames[2 * l + 1] = "past_key_values." + l + ".value";
            presentNames[2 * l] = "present." + l + ".key";
            presentNames[2 * l + 1] = "present." + l + ".value";
        }
        this.arena = new KvArena(pastNames.length);
    }

    /** Generations held (waiting, prefilling or running). */
    public int size() {
        return waiting.size() + prefilling.size() + live();
    }

    private int live() {
        int n = 0;
        for (Generation g : rows) {
            n += g.state() == Generation.State.FINISHED ? 0 : 1;
        }
        return n;
    }

    /** Rows in the running batch. */
    public int batchSize() {
        return live();
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

    /** True when the last step only decoded: no prefill and no cache compaction ran in it. */
    public boolean lastStepPure() {
        return lastStepPure;
    }

    /** Rows in the last decode step. */
    public int lastStepBatch() {
        return lastStepBatch;
    }

    /** Duration of the last decode step (model run, sampling and text), in nanoseconds. */
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

    /**
     * Drops a generation without an outcome: its owner decided what becomes of it (a retry, a
     * dead letter, another worker). Call on the engine's thread, between steps.
     */
    public void abort(Generation g) {
        if (g.state() == Generation.State.FINISHED) {
            return;
        }
        g.state(Generation.State.FINISHED);
        waiting.remove(g);
        if (prefilling.remove(g)) {
            closePrefill(g);
        }
    }

    /** One scheduling step; returns false when there was nothing to do. */
    public boolean step() {
        if (size() == 0) {
            return false;
        }
        applyCancels();
        admit();
        int prefillingBefore = prefilling.size();
        List<Generation> joiners = prefill();
        boolean relaid = place(joiners);
        lastStepPure = !relaid && joiners.isEmpty() && prefillingBefore == prefilling.size()
                && prefilling.stream().allMatch(g -> g.prefilled == 0);
        if (live() > 0) {
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
            inFlight += g.state() == Generation.State.FINISHED ? 0 : g.reservedTokens();
        }
        for (Generation g : prefilling) {
            inFlight += g.reservedTokens();
        }
        while (!waiting.isEmpty()) {
            Generation next = waiting.get(0);
            boolean empty = live() == 0 && prefilling.isEmpty();
            if (!empty && inFlight + next.reservedTokens() > limits.maxTokensInFlight()) {
                break;
            }
            waiting.remove(0);
            prefilling.add(next);
            inFlight += next.reservedTokens();
        }
    }

    /**
     * Prefills within the step's budget and returns the generations whose prefill completed.
     * Newcomers whose whole context fits the remaining budget are prefilled together in one
     * left-padded run; a longer context is prefilled alone, one budget-sized chunk per step.
     */
    private List<Generation> prefill() {
        List<Generation> joiners = new ArrayList<>();
        int budget = limits.prefillBudget();
        List<Generation> together = new ArrayList<>();
        for (Generation g : new ArrayList<>(prefilling)) {
            if (budget == 0) {
                break;
            }
            int remaining = g.context().length - g.prefilled;
            if (g.prefilled == 0 && remaining <= budget) {
                together.add(g);
                budget -= remaining;
                continue;
            }
            int chunk = Math.min(budget, remaining);
            long[] ids = java.util.Arrays.copyOfRange(g.context(), g.prefilled, g.prefilled + chunk);
            if (g.prefill == null) {
                g.prefill = decoder.start(ids);
            } else {
                g.prefill.feed(ids);
            }
            g.prefilled += chunk;
            budget -= chunk;
            if (g.prefilled == g.context().length) {
                Sequence seq = g.prefill;
                FloatBuffer[] kv = new FloatBuffer[pastNames.length];
                for (int n = 0; n < pastNames.length; n++) {
                    kv[n] = seq.past(pastNames[n]).getFloatBuffer();
                }
                g.prefilledKv = new Generation.PrefilledKv(kv, 0, seq.length());
                closePrefill(g);
                started(g, seq.lastLogits(), joiners);
            }
        }
        if (!together.isEmpty()) {
            prefillTogether(together, joiners);
        }
        return joiners;
    }

    private void prefillTogether(List<Generation> gens, List<Generation> joiners) {
        int k = gens.size();
        int width = gens.stream().mapToInt(g -> g.context().length).max().orElseThrow();
        long[] ids = new long[k * width];
        long[] positions = new long[k * width];
        long[] mask = new long[k * width];
        for (int i = 0; i < k; i++) {
            long[] ctx = gens.get(i).context();
            int pad = width - ctx.length;
            for (int j = 0; j < ctx.length; j++) {
                ids[i * width + pad + j] = ctx[j];
                positions[i * width + pad + j] = j;
                mask[i * width + pad + j] = 1L;
            }
        }
        var env = model.env();
        List<OnnxTensor> inputs = new ArrayList<>();
        try {
            Map<String, OnnxTensor> in = new HashMap<>();
            for (String name : pastNames) {
                OnnxTensor empty = OnnxTensor.createTensor(env, FloatBuffer.allocate(0),
                        new long[] {k, model.heads(), 0, model.headSize()});
                inputs.add(empty);
                in.put(name, empty);
            }
            OnnxTensor t1 = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {k, width});
            OnnxTensor t2 = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {k, width});
            OnnxTensor t3 = OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {k, width});
            inputs.addAll(List.of(t1, t2, t3));
            in.put("input_ids", t1);
            in.put("attention_mask", t2);
            in.put("position_ids", t3);
            try (OrtSession.Result result = model.session().run(in)) {
                FloatBuffer[] kv = new FloatBuffer[pastNames.length];
                for (int n = 0; n < pastNames.length; n++) {
                    kv[n] = ((OnnxTensor) result.get(presentNames[n]).orElseThrow()).getFloatBuffer();
                }
                OnnxTensor logitsTensor = (OnnxTensor) result.get("logits").orElseThrow();
                FloatBuffer all = logitsTensor.getFloatBuffer();
                int vocab = (int) logitsTensor.getInfo().getShape()[2];
                for (int i = 0; i < k; i++) {
                    Generation g = gens.get(i);
                    g.prefilled = g.context().length;
                    g.prefilledKv = new Generation.PrefilledKv(kv, i, width);
                    float[] logits = new float[vocab];
                    all.get((i * width + width - 1) * vocab, logits);
                    started(g, logits, joiners);
                }
            }
        } catch (OrtException e) {
            throw new IllegalStateException("Prefill failed: " + e.getMessage(), e);
        } finally {
            inputs.forEach(OnnxTensor::close);
        }
    }

    /** A prefilled generation samples its first token and, unless that ends it, joins the batch. */
    private void started(Generation g, float[] logits, List<Generation> joiners) {
        prefilling.remove(g);
        g.state(Generation.State.RUNNING);
        int seq = g.tokens().size();
        accept(g, seq, Sampler.sample(logits, g.params(), seq), logits, false);
        if (g.state() == Generation.State.FINISHED) {
            g.prefilledKv = null;
        } else {
            joiners.add(g);
        }
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

    /**
     * Positions of left padding the batch may carry before it is compacted. Every step reads the
     * whole cache and writes it out again one longer, so padding costs on every step while a
     * compaction costs one copy: a few positions of slack balance the two.
     */
    static final int TRIM_SLACK = 8;

    /**
     * Puts joiners into the batch. A finished row's slot is reused, or a slot is appended (rows
     * are the outer dimension of the cache, so existing rows do not move), and the joiner's cache
     * is written in place, right-aligned: only its own rows are copied. The whole cache is laid
     * out anew only when a joiner is longer than the cache, when padding has grown past
     * {@link #TRIM_SLACK}, or when finished slots outnumber live rows.
     */
    private boolean place(List<Generation> joiners) {
        while (!rows.isEmpty() && rows.get(rows.size() - 1).state() == Generation.State.FINISHED) {
            rows.remove(rows.size() - 1);
        }
        int longestJoiner = joiners.stream().mapToInt(g -> g.context().length).max().orElse(0);
        int longestLive = 0;
        int dead = 0;
        for (int i = 0; i < rows.size(); i++) {
            if (rows.get(i).state() == Generation.State.FINISHED) {
                dead++;
            } else {
                longestLive = Math.max(longestLive, rowLen[i]);
            }
        }
        int liveRows = rows.size() - dead;
        boolean relayout = longestJoiner > cacheLen
                || (liveRows > 0 && cacheLen - Math.max(longestLive, longestJoiner) > TRIM_SLACK)
                || dead > Math.max(liveRows, joiners.size())
                || (liveRows == 0 && !rows.isEmpty());
        if (relayout) {
            rebuild(joiners);
            return true;
        }
        int heads = model.heads();
        int d = model.headSize();
        for (Generation g : joiners) {
            int slot = -1;
            for (int i = 0; i < rows.size() && slot < 0; i++) {
                if (rows.get(i).state() == Generation.State.FINISHED) {
                    slot = i;
                }
            }
            if (slot < 0) {
                slot = rows.size();
                rows.add(g);
                rowLen = java.util.Arrays.copyOf(rowLen, rows.size());
            } else {
                rows.set(slot, g);
            }
            int len = g.context().length;
            rowLen[slot] = len;
            Generation.PrefilledKv kv = g.prefilledKv;
            for (int n = 0; n < pastNames.length; n++) {
                FloatBuffer dst = arena.view(cur, n, rows.size() * heads * cacheLen * d);
                copyRow(kv.buffers()[n], kv.row(), kv.length(), dst, slot, cacheLen, len, heads, d);
            }
            g.prefilledKv = null;
        }
        return false;
    }

    /**
     * Merges joiners into the batch cache and drops finished rows, writing the new layout into
     * the arena's other set: one copy of the cache, only on steps where the batch changes.
     */
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
            lens.add(g.context().length);
        }
        int b2 = newRows.size();
        int l2 = lens.stream().mapToInt(Integer::intValue).max().orElse(0);
        int heads = model.heads();
        int d = model.headSize();
        int next = 1 - cur;
        for (int n = 0; n < pastNames.length; n++) {
            FloatBuffer dst = arena.view(next, n, b2 * heads * l2 * d);
            if (kept > 0) {
                FloatBuffer src = arena.view(cur, n, rows.size() * heads * cacheLen * d);
                for (int i = 0; i < kept; i++) {
                    copyRow(src, oldIndex.get(i), cacheLen, dst, i, l2, lens.get(i), heads, d);
                }
            }
            for (int j = 0; j < joiners.size(); j++) {
                Generation.PrefilledKv kv = joiners.get(j).prefilledKv;
                copyRow(kv.buffers()[n], kv.row(), kv.length(), dst, kept + j, l2, lens.get(kept + j), heads, d);
            }
        }
        for (Generation g : joiners) {
            g.prefilledKv = null;
        }
        cur = next;
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
        int liveAtStart = live();
        long t0 = System.nanoTime();
        long[] ids = new long[b];
        long[] positions = new long[b];
        long[] mask = new long[b * (cacheLen + 1)];
        for (int i = 0; i < b; i++) {
            Generation g = rows.get(i);
            if (g.state() == Generation.State.FINISHED) {
                // A free slot rides along fully masked until a joiner takes it; its output is ignored.
                continue;
            }
            ids[i] = g.pending;
            positions[i] = rowLen[i];
            int pad = cacheLen - rowLen[i];
            for (int j = pad; j <= cacheLen; j++) {
                mask[i * (cacheLen + 1) + j] = 1L;
            }
        }
        var env = model.env();
        int heads = model.heads();
        int d = model.headSize();
        int vocab = model.vocabSize();
        int next = 1 - cur;
        List<OnnxTensor> views = new ArrayList<>();
        try {
            Map<String, OnnxTensor> inputs = new HashMap<>();
            Map<String, OnnxTensor> outputs = new HashMap<>();
            for (int n = 0; n < pastNames.length; n++) {
                OnnxTensor in = OnnxTensor.createTensor(env, arena.view(cur, n, b * heads * cacheLen * d),
                        new long[] {b, heads, cacheLen, d});
                OnnxTensor out = OnnxTensor.createTensor(env, arena.view(next, n, b * heads * (cacheLen + 1) * d),
                        new long[] {b, heads, cacheLen + 1, d});
                views.add(in);
                views.add(out);
                inputs.put(pastNames[n], in);
                outputs.put(presentNames[n], out);
            }
            FloatBuffer logitsBuffer = arena.logits(b * vocab);
            OnnxTensor logitsOut = OnnxTensor.createTensor(env, logitsBuffer, new long[] {b, 1, vocab});
            OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {b, 1});
            OnnxTensor attention = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {b, cacheLen + 1});
            OnnxTensor positionIds = OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {b, 1});
            views.addAll(List.of(logitsOut, inputIds, attention, positionIds));
            outputs.put("logits", logitsOut);
            inputs.put("input_ids", inputIds);
            inputs.put("attention_mask", attention);
            inputs.put("position_ids", positionIds);
            // Outputs are written in place into the arena: nothing to copy back out of ONNX Runtime.
            model.session().run(inputs, outputs).close();
            cur = next;
            cacheLen++;
            for (int i = 0; i < b; i++) {
                rowLen[i]++;
                Generation g = rows.get(i);
                if (g.state() == Generation.State.FINISHED) {
                    continue;
                }
                float[] logits = new float[vocab];
                logitsBuffer.get(i * vocab, logits);
                int seq = g.tokens().size();
                accept(g, seq, Sampler.sample(logits, g.params(), seq), logits, false);
                if (g.state() != Generation.State.FINISHED && rowLen[i] + 1 > model.maxPositions()) {
                    finish(g, FinishReason.length, null);
                }
            }
            long elapsed = System.nanoTime() - t0;
            decodeNanos += elapsed;
            lastStepNanos = elapsed;
            lastStepBatch = liveAtStart;
            steps++;
        } catch (OrtException e) {
            throw new IllegalStateException("Decode step failed: " + e.getMessage(), e);
        } finally {
            views.forEach(OnnxTensor::close);
        }
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
        decoder.close();
    }

    /** Generations currently held, for tests and metrics. */
    public Set<String> ids() {
        Set<String> ids = new HashSet<>();
        waiting.forEach(g -> ids.add(g.id()));
        prefilling.forEach(g -> ids.add(g.id()));
        rows.stream().filter(g -> g.state() != Generation.State.FINISHED).forEach(g -> ids.add(g.id()));
        return ids;
    }
}
