package io.sluice.ingress.internal;

/**
 * Where an {@link Outbox} writes: a WebSocket session or a Server-Sent Events response. At most
 * {@link #maxInFlight()} writes are outstanding at a time; the sink reports the end of each through
 * exactly one of the two callbacks, in the order they were sent.
 */
public interface FrameSink {

    /** Writes one JSON frame. */
    void send(String frame, Runnable written, java.util.function.Consumer<Throwable> failed);

    /**
     * Writes one JSON frame; {@code more} says another follows at once, so a sink that can hold
     * it back and write both together may. The last frame of a run is sent with {@code more} false.
     */
    default void send(String frame, boolean more, Runnable written, java.util.function.Consumer<Throwable> failed) {
        send(frame, written, failed);
    }

    /**
     * Writes the sink accepts before earlier ones complete. A response stream takes one at a time;
     * a WebSocket session queues frames and gathers them into one write.
     */
    default int maxInFlight() {
        return 1;
    }

    /**
     * As {@link #send(String, boolean, Runnable, java.util.function.Consumer)}, for a frame already
     * encoded as UTF-8 by the thread that made it; the sink must not change the array.
     */
    default void send(byte[] utf8, boolean more, Runnable written, java.util.function.Consumer<Throwable> failed) {
        send(new String(utf8, java.nio.charset.StandardCharsets.UTF_8), more, written, failed);
    }

    /** Ends the connection because the client is too slow, saying so. */
    void closeTooSlow(String reason);
}
