package io.sluice.egress;

import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;
import java.util.TreeMap;

/**
 * One listener following one request. Enforces the stream guarantees whatever arrives from Kafka:
 * repeats (a redelivered or re-published seq) and events under a fence older than one already
 * seen are dropped; an early seq waits for the gap before it to fill; the result is delivered once,
 * after the last token.
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
        if (done || token.getFence() < fence || token.getSeq() < nextSeq) {
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
        if (done || result.getFence() < fence) {
            return;
        }
        pendingResult = result;
        maybeFinish();
    }

    private void maybeFinish() {
        if (pendingResult != null && nextSeq >= pendingResult.getCompletionTokens()) {
            done = true;
            listener.onResult(pendingResult);
            cancel();
        }
    }
}
