package io.sluice.worker.engine;

/** The prompt plus generated tokens would exceed the model's context window. Permanent. */
public class ContextOverflowException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ContextOverflowException(int needed, int limit) {
        super("sequence of " + needed + " tokens exceeds the model's context of " + limit);
    }
}
