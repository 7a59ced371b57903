package io.sluice.worker.engine;

import io.sluice.worker.model.ModelBundle;
import java.util.ArrayList;
import java.util.List;

/**
 * One request inside the engine, from admission to its last token. Owned by the engine thread,
 * except {@link #cancel()}, which any thread may call.
 */
public final class Generation {
    /** Lifecycle; each step moves forward only. */
    public enum State { PREFILLING, RUNNING, FINISHED }

    private final String id;
    private final GenerationParams params;
    private final long[] context;
    private final int promptTokens;
    private final List<Integer> tokens = new ArrayList<>();
    private final TextAssembler text;
    private final StringBuilder released = new StringBuilder();
    private final Object attachment;
    private final long admittedNanos;
    private volatile boolean cancelRequested;
    private State state = State.PREFILLING;

    /** Prefill progress and, until it joins the batch, the sequence's own cache. */
    int prefilled;
    Sequence prefill;
    /** A prefilled cache waiting to be merged into the batch: row {@code row} of {@code buffers}, {@code length} positions, right-aligned. */
    record PrefilledKv(java.nio.FloatBuffer[] buffers, int row, int length) {
    }

    PrefilledKv prefilledKv;
    /** The sampled token not yet fed to the model. */
    int pending = -1;
    float[] pendingLogits;

    /**
     * @param promptIds the prompt's token ids
     * @param replay tokens already generated under an earlier claim (a takeover): they are
     *     prefilled with the prompt and replayed through the text state, not sampled again
     * @param attachment whatever the caller needs back with each token
     */
    public Generation(String id, GenerationParams params, long[] promptIds, List<Integer> replay, ModelBundle model,
            Object attachment) {
        this.id = id;
        this.params = params;
        this.promptTokens = promptIds.length;
        this.context = new long[promptIds.length + replay.size()];
        System.arraycopy(promptIds, 0, context, 0, promptIds.length);
        for (int i = 0; i < replay.size(); i++) {
            context[promptIds.length + i] = replay.get(i);
        }
        this.text = new TextAssembler(model, params.stop());
        this.attachment = attachment;
        this.admittedNanos = System.nanoTime();
        this.replay = List.copyOf(replay);
    }

    private final List<Integer> replay;

    /** Tokens generated under an earlier claim, to replay before sampling resumes. */
    List<Integer> replay() {
        return replay;
    }

    public String id() {
        return id;
    }

    public GenerationParams params() {
        return params;
    }

    public int promptTokens() {
        return promptTokens;
    }

    /** Tokens the model must see before sampling: prompt plus replayed tokens. */
    long[] context() {
        return context;
    }

    /** Every token of the stream so far (replayed and new), in seq order. */
    public List<Integer> tokens() {
        return tokens;
    }

    /** Text released to the client so far. */
    public String text() {
        return released.toString();
    }

    public Object attachment() {
        return attachment;
    }

    public long admittedNanos() {
        return admittedNanos;
    }

    public State state() {
        return state;
    }

    void state(State next) {
        if (next.ordinal() < state.ordinal()) {
            throw new IllegalStateException(state + " -> " + next);
        }
        state = next;
    }

    /** Asks the engine to stop this generation at its next step. */
    public void cancel() {
        cancelRequested = true;
    }

    boolean cancelRequested() {
        return cancelRequested;
    }

    TextAssembler assembler() {
        return text;
    }

    void release(String s) {
        released.append(s);
    }

    /** Upper bound of cache positions this generation can occupy. */
    int reservedTokens() {
        return promptTokens + params.maxTokens();
    }
}
