package io.sluice.ingress.internal;

import io.sluice.schemas.TokenEvent;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * The outbound queue of one socket, bounded in bytes. Frames go out in the order they were
 * offered, up to {@link FrameSink#maxInFlight()} of them handed to the sink at once so a transport
 * that gathers writes (WebSocket) puts several frames in one system call. Given an executor, the
 * writing happens there rather than on the thread that offered: the threads that feed many sockets
 * (the producer's acknowledgements, the token router) only queue, and frames that queued meanwhile
 * go out together. A client that falls behind first gets the token frames of a request merged
 * into fewer frames (one frame carries {@code seq} .. {@code seq_end} and their joined text); only
 * when even that leaves more than the bound queued is it closed, with a reason saying why. Offering
 * never blocks, so a slow socket never slows the thread that feeds every socket. No callback runs
 * while the lock is held.
 */
public final class Outbox {
    /** Bytes a queued frame costs beyond its text: the JSON around it. */
    static final int FRAME_OVERHEAD = 96;
    /** Bytes a logprob costs in the frame and in memory, for the token and for each alternative. */
    static final int LOGPROB_OVERHEAD = 64;

    private final FrameSink sink;
    private final long maxBytes;
    private final long coalesceAt;
    private final ArrayDeque<Entry> queue = new ArrayDeque<>();
    /** The last queued, not yet written, token entry of each request: where the next token may merge. */
    private final Map<String, Entry> mergeable = new HashMap<>();
    private final int maxInFlight;
    private final java.util.concurrent.Executor executor;
    /** A drain is queued on the executor and has not started. */
    private boolean scheduled;
    /** Bytes offered and not yet written: queued here or handed to the sink. */
    private long queuedBytes;
    /** Frames handed to the sink whose write has not completed. */
    private int inFlight;
    /** A thread is handing frames to the sink; only one does, so the sink sees them in order. */
    private boolean draining;
    private boolean closed;
    private long coalescedTokens;

    /** A frame: fixed text, as a string or already in UTF-8, or a run of one request's tokens. */
    private static final class Entry {
        final String frame;
        final byte[] utf8;
        final TokenEvent first;
        int seqEnd;
        StringBuilder text;
        long bytes;

        Entry(String frame) {
            this.frame = frame;
            this.utf8 = null;
            this.first = null;
            this.bytes = frame.length() * 2L;
        }

        Entry(byte[] utf8) {
            this.frame = null;
            this.utf8 = utf8;
            this.first = null;
            this.bytes = utf8.length + 16L;
        }

        Entry(TokenEvent token) {
            this.frame = null;
            this.utf8 = null;
            this.first = token;
            this.seqEnd = token.getSeq();
            this.text = new StringBuilder(token.getText());
            this.bytes = tokenBytes(token);
        }

        /**
         * A token's cost while it waits: its text and the JSON around it, and, when the request
         * asked for them, its alternatives, each rendered as an object of its own and held as one.
         * Five of them are three times the rest of the frame; counted as text alone, a socket
         * could hold several times the bound before any merge began.
         */
        static long tokenBytes(TokenEvent token) {
            long bytes = token.getText().length() * 2L + FRAME_OVERHEAD;
            if (token.getLogprob() != null) {
                bytes += LOGPROB_OVERHEAD;
                for (io.sluice.schemas.TokenLogprob lp : token.getTopLogprobs()) {
                    bytes += LOGPROB_OVERHEAD + lp.getText().length() * 2L;
                }
            }
            return bytes;
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
        this(sink, maxBytes, null);
    }

    /** With {@code executor} null, the thread that offers a frame also writes it. */
    public Outbox(FrameSink sink, long maxBytes, java.util.concurrent.Executor executor) {
        this.executor = executor;
        this.sink = sink;
        this.maxBytes = maxBytes;
        this.coalesceAt = maxBytes / 4;
        this.maxInFlight = Math.max(1, sink.maxInFlight());
    }

    /** Queues a frame that is never merged; false when the socket is closed or was just closed for being too slow. */
    public boolean offer(String frame) {
        return enqueue(new Entry(frame), null);
    }

    /**
     * Queues a frame already encoded as UTF-8, never merged: the {@code accepted} frame, encoded on
     * the socket's thread, where its ids were just made, and written from the array as it is.
     */
    public boolean offer(byte[] utf8Frame) {
        return enqueue(new Entry(utf8Frame), null);
    }

    /** Queues a token; when the client is behind, it joins the queued frame of the previous seq of its request. */
    public boolean offerToken(TokenEvent token) {
        return enqueue(null, token);
    }

    private boolean enqueue(Entry entry, TokenEvent token) {
        boolean tooSlow = false;
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
                close();
                tooSlow = true;
            } else if (merged) {
                return true;
            }
        }
        if (tooSlow) {
            // Over the bound even after merging: the last resort, outside the lock.
            sink.closeTooSlow("client too slow: more than " + maxBytes + " bytes of frames waiting even after merging tokens");
            return false;
        }
        if (executor == null) {
            drain();
        } else {
            schedule();
        }
        return true;
    }

    private void schedule() {
        synchronized (this) {
            if (draining || scheduled) {
                return;
            }
            scheduled = true;
        }
        try {
            executor.execute(() -> {
                synchronized (this) {
                    scheduled = false;
                }
                drain();
            });
        } catch (java.util.concurrent.RejectedExecutionException stopping) {
            synchronized (this) {
                scheduled = false;
            }
            drain();
        }
    }

    /**
     * Hands queued frames to the sink while it has room. A thread that finds another one draining
     * leaves: the state it changed is seen by the drainer, whose check for more work and whose
     * exit happen under the same lock. A write that completes inside {@code send} therefore only
     * updates counts; it never recurses.
     */
    private void drain() {
        synchronized (this) {
            if (draining) {
                return;
            }
            draining = true;
        }
        while (true) {
            Entry next;
            boolean more;
            synchronized (this) {
                if (closed || inFlight >= maxInFlight || queue.isEmpty()) {
                    draining = false;
                    return;
                }
                next = queue.poll();
                if (next.first != null && mergeable.get(next.first.getRequestId()) == next) {
                    mergeable.remove(next.first.getRequestId());
                }
                inFlight++;
                // Only this thread hands frames over, so a frame sent with more to follow is followed.
                more = !queue.isEmpty() && inFlight < maxInFlight;
            }
            write(next, more);
        }
    }

    private void write(Entry entry, boolean more) {
        Runnable done = () -> written(entry);
        java.util.function.Consumer<Throwable> failed = x -> close();
        if (entry.utf8 != null) {
            sink.send(entry.utf8, more, done, failed);
        } else {
            sink.send(entry.render(), more, done, failed);
        }
    }

    private void written(Entry entry) {
        synchronized (this) {
            inFlight--;
            if (closed) {
                return;
            }
            queuedBytes -= entry.bytes;
        }
        drain();
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
