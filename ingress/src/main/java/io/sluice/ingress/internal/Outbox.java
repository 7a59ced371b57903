package io.sluice.ingress.internal;

import io.sluice.schemas.TokenEvent;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * The outbound queue of one socket, bounded in bytes. Frames go out one at a time, in the order
 * they were offered. A client that falls behind first gets the token frames of a request merged
 * into fewer frames (one frame carries {@code seq} .. {@code seq_end} and their joined text); only
 * when even that leaves more than the bound queued is it closed, with a reason saying why. Offering
 * never blocks, so a slow socket never slows the thread that feeds every socket. No callback runs
 * while the lock is held.
 */
public final class Outbox {
    /** Bytes a queued frame costs beyond its text: the JSON around it. */
    static final int FRAME_OVERHEAD = 96;

    private final FrameSink sink;
    private final long maxBytes;
    private final long coalesceAt;
    private final ArrayDeque<Entry> queue = new ArrayDeque<>();
    /** The last queued, not yet written, token entry of each request: where the next token may merge. */
    private final Map<String, Entry> mergeable = new HashMap<>();
    private long queuedBytes;
    private boolean writing;
    private boolean closed;
    private long coalescedTokens;

    /** A frame: fixed text, or a run of one request's tokens. */
    private static final class Entry {
        final String frame;
        final TokenEvent first;
        int seqEnd;
        StringBuilder text;
        long bytes;

        Entry(String frame) {
            this.frame = frame;
            this.first = null;
            this.bytes = frame.length() * 2L;
        }

        Entry(TokenEvent token) {
            this.frame = null;
            this.first = token;
            this.seqEnd = token.getSeq();
            this.text = new StringBuilder(token.getText());
            this.bytes = token.getText().length() * 2L + FRAME_OVERHEAD;
        }

        String render() {
            if (frame != null) {
                return frame;
            }
            return seqEnd == first.getSeq() ? Frames.token(first) : Frames.tokens(first.getRequestId(), first.getSeq(), seqEnd,
                    text.toString());
        }
    }

    public Outbox(FrameSink sink, long maxBytes) {
        this.sink = sink;
        this.maxBytes = maxBytes;
        this.coalesceAt = maxBytes / 4;
    }

    /** Queues a frame that is never merged; false when the socket is closed or was just closed for being too slow. */
    public boolean offer(String frame) {
        return enqueue(new Entry(frame), null);
    }

    /** Queues a token; when the client is behind, it joins the queued frame of the previous seq of its request. */
    public boolean offerToken(TokenEvent token) {
        return enqueue(null, token);
    }

    private boolean enqueue(Entry entry, TokenEvent token) {
        Entry next;
        synchronized (this) {
            if (closed) {
                return false;
            }
            boolean merged = false;
            if (token != null) {
                Entry last = mergeable.get(token.getRequestId());
                if (last != null && queuedBytes > coalesceAt && last.seqEnd == token.getSeq() - 1) {
                    last.seqEnd = token.getSeq();
                    last.text.append(token.getText());
                    long added = token.getText().length() * 2L;
                    last.bytes += added;
                    queuedBytes += added;
                    coalescedTokens++;
                    merged = true;
                } else {
                    entry = new Entry(token);
                }
            }
            if (!merged) {
                queue.add(entry);
                queuedBytes += entry.bytes;
                if (token != null) {
                    mergeable.put(token.getRequestId(), entry);
                }
            }
            if (queuedBytes > maxBytes) {
                closed = true;
                queue.clear();
                mergeable.clear();
                queuedBytes = 0;
                next = null;
            } else if (merged || writing) {
                return true;
            } else {
                writing = true;
                next = takeNext();
            }
        }
        if (next == null) {
            // Over the bound even after merging: the last resort, outside the lock.
            sink.closeTooSlow("client too slow: more than " + maxBytes + " bytes of frames waiting even after merging tokens");
            return false;
        }
        write(next);
        return true;
    }

    /** The head entry, which from now on can no longer be merged into. */
    private Entry takeNext() {
        Entry head = queue.peek();
        if (head != null && head.first != null && mergeable.get(head.first.getRequestId()) == head) {
            mergeable.remove(head.first.getRequestId());
        }
        return head;
    }

    private void write(Entry entry) {
        sink.send(entry.render(), this::written, x -> {
            synchronized (Outbox.this) {
                closed = true;
                queue.clear();
                mergeable.clear();
                queuedBytes = 0;
                writing = false;
            }
        });
    }

    private void written() {
        Entry next;
        synchronized (this) {
            Entry done = queue.poll();
            if (done != null) {
                queuedBytes -= done.bytes;
            }
            next = closed ? null : takeNext();
            writing = next != null;
        }
        if (next != null) {
            write(next);
        }
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    public synchronized void close() {
        closed = true;
        queue.clear();
        mergeable.clear();
        queuedBytes = 0;
    }

    /** Bytes waiting to be written. */
    public synchronized long queuedBytes() {
        return queuedBytes;
    }

    /** Tokens that went out merged into an earlier frame. */
    public synchronized long coalescedTokens() {
        return coalescedTokens;
    }
}
