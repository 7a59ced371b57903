package io.sluice.egress;

import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;
import java.util.TreeMap;

/**
 * One listener following one request. Enforces the stream guarantees whatever arrives from Kafka:
 * repeats (a redelivered or re-published seq) and events under a fence older than one already
 * seen are dropped; an early seq waits for the gap before it to fill; the result is delivered once,
 * after the last token.
 *
 * <p>Fence 0 is no fence: a worker that decodes without a claim while Redis is down (a fail-open
 * tier) publishes under it, and so does the outcome it records later. Its events are taken by seq
 * alone. Dropped as stale after a claimed worker's fence 1, they left the stream waiting for its
 * next seq and its result forever; a fail-open tier accepts a second decode, not a stream that
 * never ends.
 */
public final class Subscription {
    /** Out-of-order events held at most; beyond it the subscription fails rather than grow. */
    static final int MAX_HELD = 4096;

    private final String requestId;
    private final int partition;
    private final StreamListener listener;
    private final TokenRouter router;
    /** The router's key for this subscription's request, set when it is added. */
    TokenRouter.RouteKey routeKey;
    /** Seqs that arrived before a gap closed; made only when one does, which in order delivery never needs. */
    private TreeMap<Integer, TokenEvent> held;
    private int nextSeq;
    private long fence;
    private InferenceResult pendingResult;
    private boolean done;

    Subscription(String requestId, int partition, int afterSeq, StreamListener listener, TokenRouter router) {
        this.requestId = requestId;
        this.partition = partition;
        this.nextSeq = afterSeq + 1;
        this.listener = listener;
        this.router = router;
    }

    public String requestId() {
        return requestId;
    }

    /** The tokens partition the request's events are read from. */
    public int partition() {
        return partition;
    }

    /** Seq the client expects next. */
    public synchronized int nextSeq() {
        return nextSeq;
    }

    public synchronized boolean isDone() {
        return done;
    }

    /** Stops delivery; idempotent. */
    public void cancel() {
        if (router != null) {
            router.remove(this);
        }
    }

    synchronized void accept(TokenEvent token) {
        if (done || stale(token.getFence()) || token.getSeq() < nextSeq) {
            return;
        }
        fence = Math.max(fence, token.getFence());
        if (token.getSeq() > nextSeq) {
            if (held == null) {
                held = new TreeMap<>();
            }
            if (held.size() < MAX_HELD) {
                held.putIfAbsent(token.getSeq(), token);
            }
            return;
        }
        listener.onToken(token);
        nextSeq++;
        if (held != null) {
            TokenEvent next;
            while ((next = held.remove(nextSeq)) != null) {
                listener.onToken(next);
                nextSeq++;
            }
            held.headMap(nextSeq).clear();
        }
        maybeFinish();
    }

    synchronized void accept(InferenceResult result) {
        if (done || stale(result.getFence())) {
            return;
        }
        pendingResult = result;
        maybeFinish();
    }

    private boolean stale(long eventFence) {
        return eventFence != 0 && eventFence < fence;
    }

    private void maybeFinish() {
        if (pendingResult != null && nextSeq >= pendingResult.getCompletionTokens()) {
            done = true;
            listener.onResult(pendingResult);
            cancel();
        }
    }
}
