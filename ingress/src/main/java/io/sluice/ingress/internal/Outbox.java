package io.sluice.ingress.internal;

import java.util.ArrayDeque;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.api.StatusCode;

/**
 * The outbound queue of one socket: frames go out one at a time, in the order they were
 * offered, and the queue is bounded in bytes. A client that lets more than the bound pile up is
 * too slow and is closed with a clear reason; it never holds memory without limit. The callback
 * of a write is never run while the lock is held.
 */
public final class Outbox {
    private final Session session;
    private final long maxBytes;
    private final ArrayDeque<String> queue = new ArrayDeque<>();
    private long queuedBytes;
    private boolean writing;
    private boolean closed;

    public Outbox(Session session, long maxBytes) {
        this.session = session;
        this.maxBytes = maxBytes;
    }

    /** Queues a frame; false when the socket is closed or was just closed for being too slow. */
    public boolean offer(String frame) {
        String next;
        synchronized (this) {
            if (closed) {
                return false;
            }
            long size = frame.length() * 2L;
            if (queuedBytes + size > maxBytes) {
                closed = true;
                queue.clear();
                queuedBytes = 0;
                next = null;
            } else {
                queue.add(frame);
                queuedBytes += size;
                if (writing) {
                    return true;
                }
                writing = true;
                next = queue.peek();
            }
        }
        if (next == null) {
            session.close(StatusCode.POLICY_VIOLATION, "client too slow: outbound queue over " + maxBytes + " bytes",
                    Callback.NOOP);
            return false;
        }
        write(next);
        return true;
    }

    private void write(String frame) {
        session.sendText(frame, new Callback() {
            @Override
            public void succeed() {
                String next;
                synchronized (Outbox.this) {
                    String done = queue.poll();
                    if (done != null) {
                        queuedBytes -= done.length() * 2L;
                    }
                    next = queue.peek();
                    writing = next != null && !closed;
                }
                if (next != null && !isClosed()) {
                    write(next);
                }
            }

            @Override
            public void fail(Throwable x) {
                synchronized (Outbox.this) {
                    closed = true;
                    queue.clear();
                    queuedBytes = 0;
                    writing = false;
                }
            }
        });
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    public synchronized void close() {
        closed = true;
        queue.clear();
        queuedBytes = 0;
    }

    /** Bytes waiting to be written. */
    public synchronized long queuedBytes() {
        return queuedBytes;
    }

}
