package io.sluice.ingress.internal;

import java.util.function.Consumer;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.api.StatusCode;
import org.eclipse.jetty.websocket.common.WebSocketSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.OpCode;

/** Frames as WebSocket text messages. */
public final class WebSocketSink implements FrameSink {
    private final Session session;

    public WebSocketSink(Session session) {
        this.session = session;
    }

    @Override
    public void send(String frame, Runnable written, Consumer<Throwable> failed) {
        session.sendText(frame, Callback.from(written, failed));
    }

    /**
     * A frame with more to follow goes through Jetty's core session in batch mode: it is copied
     * into the connection's aggregate buffer and written with the frames after it, when the last
     * of the run (sent without batching) flushes. The Jetty API session offers no batching itself.
     */
    @Override
    public void send(String frame, boolean more, Runnable written, Consumer<Throwable> failed) {
        if (more && session instanceof WebSocketSession s) {
            s.getCoreSession().sendFrame(new Frame(OpCode.TEXT, frame), org.eclipse.jetty.util.Callback.from(written, failed),
                    true);
        } else {
            send(frame, written, failed);
        }
    }

    /**
     * Jetty queues frames sent before earlier ones completed and writes them gathered, so a busy
     * socket costs one system call for several frames instead of one each.
     */
    @Override
    public int maxInFlight() {
        return 16;
    }

    @Override
    public void closeTooSlow(String reason) {
        session.close(StatusCode.POLICY_VIOLATION, reason, Callback.NOOP);
    }
}
