package io.sluice.ingress.internal;

import java.util.function.Consumer;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.OpCode;

/** Frames as WebSocket text messages. */
public final class WebSocketSink implements FrameSink {
    private final CoreSession session;

    public WebSocketSink(CoreSession session) {
        this.session = session;
    }

    @Override
    public void send(String frame, Runnable written, Consumer<Throwable> failed) {
        send(frame, false, written, failed);
    }

    /**
     * A frame with more to follow is sent in batch mode: it is copied into the connection's
     * aggregate buffer and written with the frames after it, when the last of the run (sent
     * without batching) flushes.
     */
    @Override
    public void send(String frame, boolean more, Runnable written, Consumer<Throwable> failed) {
        session.sendFrame(new Frame(OpCode.TEXT, frame), Callback.from(written, failed), more);
    }

    /** The bytes go out as they are: no string to read back and encode on the writing thread. */
    @Override
    public void send(byte[] utf8, boolean more, Runnable written, Consumer<Throwable> failed) {
        session.sendFrame(new Frame(OpCode.TEXT, java.nio.ByteBuffer.wrap(utf8)), Callback.from(written, failed), more);
    }

    /**
     * Jetty queues frames sent before earlier ones completed and writes them gathered, so a busy
     * socket costs one system call for several frames instead of one each. Sixty-four accepted
     * frames (about 90 bytes each) about fill {@code gateway.socket.write.buffer.bytes} at its
     * default; sixteen had a socket answering pipelined requests write every twenty-five or so.
     */
    @Override
    public int maxInFlight() {
        return 64;
    }

    @Override
    public void closeTooSlow(String reason) {
        session.close(CloseStatus.POLICY_VIOLATION, reason, Callback.NOOP);
    }
}
