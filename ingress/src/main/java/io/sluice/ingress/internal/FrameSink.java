package io.sluice.ingress.internal;

/**
 * Where an {@link Outbox} writes: a WebSocket session or a Server-Sent Events response. One write
 * is outstanding at a time; the sink reports its end through exactly one of the two callbacks.
 */
public interface FrameSink {

    /** Writes one JSON frame. */
    void send(String frame, Runnable written, java.util.function.Consumer<Throwable> failed);

    /** Ends the connection because the client is too slow, saying so. */
    void closeTooSlow(String reason);
}
