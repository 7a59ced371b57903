package io.sluice.ingress.internal;

import java.util.function.Consumer;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.api.StatusCode;

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

    @Override
    public void closeTooSlow(String reason) {
        session.close(StatusCode.POLICY_VIOLATION, reason, Callback.NOOP);
    }
}
