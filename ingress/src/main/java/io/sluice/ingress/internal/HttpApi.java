package io.sluice.ingress.internal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.egress.StreamListener;
import io.sluice.egress.Subscription;
import io.sluice.egress.TokenRouter;
import io.sluice.ingress.Authenticator;
import io.sluice.ingress.ProtocolError;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.SluiceCodec;
import io.sluice.schemas.TokenEvent;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.function.Consumer;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.Fields;

/**
 * The HTTP transport for clients without WebSocket, under the same authentication, limits and
 * error codes: {@code POST /v1/requests} submits, {@code GET /v1/requests/{id}} tells the state
 * and the result, {@code GET /v1/requests/{id}/events} streams the request as Server-Sent Events
 * (each event's id is its seq, so {@code Last-Event-ID} resumes after it).
 */
public final class HttpApi {
    private static final String PREFIX = "/v1/requests";

    private final Authenticator authenticator;
    private final RequestSubmitter submitter;
    private final TokenRouter router;
    private final int maxBodyBytes;
    private final long outboundBytes;
    /** The event streams open now, for the keep-alive, with whom each is for (its token expires). */
    private final java.util.Map<Outbox, Authenticator.Principal> streams = new java.util.concurrent.ConcurrentHashMap<>();

    /** Browser origins allowed, as for the socket's handshake (gateway.allowed.origins). */
    private final java.util.Set<String> origins;

    /** An event stream is a connection held open as a socket is: it takes one of the tenant's slots. */
    private final TenantLimits limits;

    /** An event stream's connection is idle-timed as a socket is (gateway.idle.timeout.ms), not as a plain request. */
    private final long idleTimeoutMs;

    private final java.time.Clock clock;

    public HttpApi(Authenticator authenticator, RequestSubmitter submitter, TokenRouter router, TenantLimits limits,
            int maxBodyBytes, long outboundBytes, java.util.Set<String> origins, long idleTimeoutMs, java.time.Clock clock) {
        this.idleTimeoutMs = idleTimeoutMs;
        this.clock = clock;
        this.limits = limits;
        this.origins = origins;
        this.authenticator = authenticator;
        this.submitter = submitter;
        this.router = router;
        this.maxBodyBytes = maxBodyBytes;
        this.outboundBytes = outboundBytes;
    }

    /**
     * Writes an SSE comment on every open event stream: a stream silent for a while (a request
     * queued, or resuming on another worker) must not be closed by the idle timeout of the
     * client or of a proxy in between.
     */
    public void keepAlive() {
        long now = clock.millis();
        streams.forEach((o, principal) -> {
            // A stream outlives the token it was opened with no longer than a socket does: it ends,
            // and the client's reconnect needs a fresh token (Last-Event-ID resumes where it was).
            o.offer(principal.expiredAt(now) ? SseSink.END : SseSink.COMMENT);
        });
    }

    /** Event streams open now. */
    public int openStreams() {
        return streams.size();
    }

    /**
     * Ends every open event stream once what is queued for it is written: the gateway is going
     * away, and an event-stream client reconnects by itself, with {@code Last-Event-ID}, to
     * whichever gateway answers.
     */
    public void endStreams() {
        for (Outbox o : streams.keySet()) {
            o.offer(SseSink.END);
        }
    }

    /** Handles the request if it is one of ours; false lets the next handler have it. */
    public boolean handle(Request request, Response response, Callback callback) {
        String path = Request.getPathInContext(request);
        if (!path.equals(PREFIX) && !path.startsWith(PREFIX + "/")) {
            return false;
        }
        // A browser page of another origin is refused here as at the socket's handshake: with a
        // token in access_token it could otherwise submit and read requests in its user's name.
        String origin = refusedOrigin(request, origins);
        if (origin != null) {
            error(response, callback, new ProtocolError(ProtocolError.Code.forbidden, "origin: not allowed (" + origin
                    + "; gateway.allowed.origins)", false));
            return true;
        }
        Authenticator.Principal principal;
        try {
            principal = authenticator.authenticate(bearer(request));
        } catch (Authenticator.Unauthorized e) {
            challenge(response);
            error(response, callback, new ProtocolError(ProtocolError.Code.unauthorized, "token: " + e.getMessage(), false));
            return true;
        }
        String rest = path.substring(PREFIX.length());
        try {
            if (rest.isEmpty() && request.getMethod().equals("POST")) {
                submit(request, response, callback, principal);
            } else if (rest.matches("/[^/]+") && request.getMethod().equals("GET")) {
                status(rest.substring(1), response, callback, principal);
            } else if (rest.matches("/[^/]+/events") && request.getMethod().equals("GET")) {
                events(rest.substring(1, rest.length() - "/events".length()), request, response, callback, principal);
            } else {
                error(response, callback, new ProtocolError(ProtocolError.Code.not_found, "path: no such resource", false));
            }
        } catch (ProtocolError e) {
            error(response, callback, e);
        }
        return true;
    }

    private void submit(Request request, Response response, Callback callback, Authenticator.Principal principal)
            throws ProtocolError {
        if (request.getLength() > maxBodyBytes) {
            throw tooLarge();
        }
        // Read in bytes and bounded: a chunked body has no length to check first, and one read
        // whole before its size is known would hold any amount of memory. The limit is the
        // socket's message limit, so both transports take the same requests.
        Content.Source.asByteArrayAsync(request, maxBodyBytes, org.eclipse.jetty.util.Promise.Invocable.from(
                // Blocking: preparing a request asks Redis for its idempotency key.
                org.eclipse.jetty.util.thread.Invocable.InvocationType.BLOCKING,
                body -> submit(body, response, callback, principal),
                failure -> error(response, callback, failure instanceof IllegalStateException ? tooLarge()
                        : ProtocolError.invalid("body", "unreadable: " + failure))));
    }

    private ProtocolError tooLarge() {
        return new ProtocolError(ProtocolError.Code.too_large, "body: more than " + maxBodyBytes
                + " bytes (gateway.max.frame.bytes)", false);
    }

    private void submit(byte[] body, Response response, Callback callback, Authenticator.Principal principal) {
        try {
            // Worded as the socket words them; a socket closes on invalid UTF-8 (RFC 6455), a body gets a 400.
            if (!Utf8.isValid(body, 0, body.length)) {
                throw ProtocolError.invalid("body", "not valid UTF-8");
            }
            if (Utf8.readAsOtherEncoding(body, 0, body.length)) {
                throw ProtocolError.invalid("body", "not valid JSON (a NUL byte)");
            }
            JsonNode msg;
            try {
                msg = Frames.JSON.readTree(body);
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw ProtocolError.invalid("body", "not valid JSON (" + Frames.why(e) + ")");
            } catch (java.io.IOException cannot) {
                throw new java.io.UncheckedIOException(cannot); // reading an array does no I/O
            }
            if (msg == null || !msg.isObject()) {
                throw ProtocolError.invalid("body", "must be a JSON object");
            }
            ((ObjectNode) msg).put("type", "generate");
            RequestSubmitter.Prepared prepared = submitter.prepare(principal, msg);
            ObjectNode accepted = Frames.JSON.createObjectNode().put("request_id", prepared.requestId())
                    .put("duplicate", prepared.duplicate());
            if (prepared.duplicate()) {
                // As on a socket: answered once the first request is on Kafka.
                java.util.concurrent.CompletableFuture<Void> written = submitter.firstWritten(prepared);
                written.whenComplete((ok, err) -> {
                    if (err != null) {
                        error(response, callback, RequestSubmitter.protocolError(err));
                    } else {
                        json(response, callback, 200, accepted.toString());
                    }
                });
                return;
            }
            submitter.produce(prepared).whenComplete((ok, err) -> {
                if (err != null) {
                    error(response, callback, new ProtocolError(ProtocolError.Code.overloaded,
                            "kafka: request not acknowledged (" + err.getClass().getSimpleName() + ")", true));
                } else {
                    json(response, callback, 202, accepted.toString());
                }
            });
        } catch (ProtocolError e) {
            error(response, callback, e);
        }
    }

    private RequestSubmitter.Found known(String requestId, Authenticator.Principal principal) throws ProtocolError {
        // A request's status and events are what attach gives a socket: the same scope, checked
        // before the id so that a token without it learns nothing about which ids exist.
        if (!principal.may("infer")) {
            throw new ProtocolError(ProtocolError.Code.forbidden, "scope: reading a request needs the infer scope", false);
        }
        // Another tenant's request looks exactly like one that does not exist.
        return submitter.find(requestId, principal.tenant())
                .orElseThrow(() -> new ProtocolError(ProtocolError.Code.not_found, "request_id: no such request", false));
    }

    private void status(String requestId, Response response, Callback callback, Authenticator.Principal principal)
            throws ProtocolError {
        Optional<byte[]> outcome = submitter.outcome(known(requestId, principal));
        ObjectNode body = Frames.JSON.createObjectNode().put("request_id", requestId);
        if (outcome.isEmpty()) {
            body.put("status", "pending");
        } else {
            InferenceResult r = SluiceCodec.get().decode(outcome.get(), InferenceResult.class);
            body.put("status", r.getError() == null ? "done" : "failed");
            if (r.getError() == null) {
                body.put("finish_reason", r.getFinishReason().name()).put("text", r.getText());
                body.putObject("usage").put("prompt_tokens", r.getPromptTokens())
                        .put("completion_tokens", r.getCompletionTokens());
            } else {
                body.putObject("error").put("code", r.getError().getCode()).put("message", r.getError().getMessage())
                        .put("retryable", r.getError().getRetryable());
            }
        }
        json(response, callback, 200, body.toString());
    }

    private void events(String requestId, Request request, Response response, Callback callback,
            Authenticator.Principal principal) throws ProtocolError {
        RequestSubmitter.Found known = known(requestId, principal);
        int afterSeq = -1;
        String last = request.getHeaders().get("Last-Event-ID");
        if (last != null && last.trim().equals(SseSink.END_ID)) {
            // The client had the terminal event: an EventSource reconnects by itself after a stream
            // ends, and 204 is what tells it to stop, rather than replaying done forever.
            response.setStatus(204);
            response.write(true, ByteBuffer.allocate(0), callback);
            return;
        }
        // An EventSource sets Last-Event-ID only on its own reconnects; a page opening a stream anew
        // (reloaded, say) resumes with ?after_seq=n, as attach does. The header, when sent, is newer.
        String field = "Last-Event-ID";
        if (last == null) {
            last = Request.extractQueryParameters(request).getValue("after_seq");
            field = "after_seq";
        }
        if (last != null) {
            try {
                afterSeq = Integer.parseInt(last.trim());
            } catch (NumberFormatException e) {
                afterSeq = Integer.MIN_VALUE;
            }
            // -1 as attach's after_seq: from the start.
            if (afterSeq < -1) {
                throw ProtocolError.invalid(field, "must be the seq of the last event received (at least -1)");
            }
        }
        // A draining gateway opens no new stream (503, retryable): each would be one more for the
        // drain to wait for. Status reads are still answered.
        if (submitter.draining()) {
            throw new ProtocolError(ProtocolError.Code.overloaded, "gateway shutting down; follow the request on another gateway",
                    true);
        }
        if (!limits.connect(principal.tenant())) {
            throw new ProtocolError(ProtocolError.Code.rate_limited,
                    "connections: the tenant has too many open sockets and event streams (gateway.max.connections.per.tenant)",
                    true);
        }
        response.setStatus(200);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/event-stream;charset=utf-8");
        response.getHeaders().put(HttpHeader.CACHE_CONTROL, "no-cache");
        SseSink sink = new SseSink(response, callback);
        // Writes on the server's pool, as for sockets: the router's thread only queues.
        Outbox outbox = new Outbox(sink, outboundBytes, request.getComponents().getExecutor());
        // A client gone while nothing is written (pings off, a request waiting its turn) is found
        // by Jetty at the connection's idle timeout; without this its slot would wait for the
        // request's next event. With pings on, the keep-alive comments keep a live stream from idling.
        org.eclipse.jetty.io.EndPoint connection = request.getConnectionMetaData().getConnection().getEndPoint();
        long plainIdleMs = connection.getIdleTimeout();
        connection.setIdleTimeout(idleTimeoutMs);
        // Released once, by whichever comes first: the stream's end (its last write, or any that
        // failed), Jetty failing the request, or a replay that could not be scheduled.
        java.util.concurrent.atomic.AtomicReference<Subscription> sub = new java.util.concurrent.atomic.AtomicReference<>();
        java.util.concurrent.atomic.AtomicBoolean released = new java.util.concurrent.atomic.AtomicBoolean();
        Runnable release = () -> {
            if (released.compareAndSet(false, true)) {
                connection.setIdleTimeout(plainIdleMs); // the connection may carry plain requests again
                limits.disconnect(principal.tenant());
                streams.remove(outbox);
                outbox.close();
                Subscription s = sub.get();
                if (s != null) {
                    s.cancel();
                }
            }
        };
        sink.onEnd(release);
        request.addFailureListener(sink::fail);
        Subscription subscribed;
        try {
            subscribed = router.subscribeFromHistory(requestId, known.replyPartition(), afterSeq, new StreamListener() {
                @Override
                public void onToken(TokenEvent token) {
                    outbox.offerToken(token);
                }

                @Override
                public void onResult(InferenceResult result) {
                    outbox.offer(Frames.terminal(result));
                    outbox.offer(SseSink.END);
                }
            }, known.createdAtMillis());
        } catch (java.util.concurrent.RejectedExecutionException busy) {
            release.run();
            if (!sink.preempt()) {
                return; // the stream ended meanwhile, through the sink, which completed the response
            }
            throw new ProtocolError(ProtocolError.Code.overloaded, "events: too many replays under way, retry shortly", true);
        }
        sub.set(subscribed);
        if (released.get()) {
            subscribed.cancel(); // the stream ended before the subscription was known to it
            return;
        }
        // Only now among the open streams: a keep-alive comment written before the subscription
        // was taken would have committed the 200 that a refused replay answers with 503.
        streams.put(outbox, principal);
        if (released.get()) {
            streams.remove(outbox); // ended meanwhile; its release found nothing to remove
            return;
        }
        // The status and headers go out now, with a comment: a request that waits its turn would
        // otherwise leave the client without even a 200 until its first event. Not before the
        // subscription: a replay refused must still be answered 503.
        outbox.offer(SseSink.COMMENT);
    }

    /** The client's token: the Authorization bearer, or {@code access_token} for browsers that cannot set headers. */
    public static String bearer(Request req) {
        String header = req.getHeaders().get(HttpHeader.AUTHORIZATION);
        if (header != null && header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return header.substring(7).trim();
        }
        Fields query = Request.extractQueryParameters(req);
        return query.getValue("access_token");
    }

    /**
     * The request's {@code Origin} when it is not among {@code allowed}, else null (also when the
     * client sends none: only browsers do). One rule for the handshake and the HTTP routes.
     */
    public static String refusedOrigin(Request req, java.util.Set<String> allowed) {
        String origin = req.getHeaders().get(HttpHeader.ORIGIN);
        return origin != null && !allowed.contains(origin) ? origin : null;
    }

    /** The header a 401 must carry, for the WebSocket handshake and HTTP alike. */
    public static void challenge(Response response) {
        response.getHeaders().put(HttpHeader.WWW_AUTHENTICATE, "Bearer realm=\"sluice\", error=\"invalid_token\"");
    }

    static int statusOf(ProtocolError.Code code) {
        return switch (code) {
            case invalid_request -> 400;
            case unauthorized -> 401;
            case forbidden -> 403;
            case not_found -> 404;
            case too_large -> 413;
            case rate_limited -> 429;
            case overloaded -> 503;
            case failed, dead_lettered -> 500;
        };
    }

    private static void error(Response response, Callback callback, ProtocolError e) {
        json(response, callback, statusOf(e.code()), Frames.error(null, null, e));
    }

    private static void json(Response response, Callback callback, int status, String body) {
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
        response.write(true, ByteBuffer.wrap(body.getBytes(StandardCharsets.UTF_8)), callback);
    }

    /** Frames as Server-Sent Events on one HTTP response. */
    static final class SseSink implements FrameSink {
        /** Queued after the terminal frame: ends the response once everything before it is written. */
        static final String END = "\u0000end";
        /** Queued by the keep-alive: an SSE comment line, which clients skip. */
        static final String COMMENT = "\u0000comment";
        private static final byte[] COMMENT_BYTES = ":\n\n".getBytes(StandardCharsets.US_ASCII);
        /** The id of the terminal event: a reconnect with it as Last-Event-ID has nothing left to get. */
        static final String END_ID = "end";
        private final Response response;
        private final Callback done;
        private volatile Runnable onEnd = () -> { };
        private final java.util.concurrent.atomic.AtomicBoolean ended = new java.util.concurrent.atomic.AtomicBoolean();

        SseSink(Response response, Callback done) {
            this.response = response;
            this.done = done;
        }

        void onEnd(Runnable r) {
            this.onEnd = r;
        }

        /**
         * Completes the response once, whichever write ends it: the last one, or any that failed.
         * A client that went away is found by the next write, often a keep-alive comment; ending
         * the stream there is what releases its subscription and its place among open streams,
         * which a shutdown's drain waits for.
         */
        private void end(Throwable failure) {
            if (ended.compareAndSet(false, true)) {
                if (failure == null) {
                    done.succeeded();
                } else {
                    done.failed(failure);
                }
                onEnd.run();
            }
        }

        /** Ends the stream over a failure Jetty reported on the request. */
        void fail(Throwable failure) {
            end(failure);
        }

        /**
         * Marks the stream ended without completing the response, for a caller that answers the
         * request itself; false when the stream had ended already.
         */
        boolean preempt() {
            return ended.compareAndSet(false, true);
        }

        private Callback writing(Runnable written, Consumer<Throwable> failed) {
            return Callback.from(written, x -> {
                failed.accept(x);
                end(x);
            });
        }

        @Override
        public void send(String frame, Runnable written, Consumer<Throwable> failed) {
            if (END.equals(frame)) {
                response.write(true, ByteBuffer.allocate(0), Callback.from(() -> end(null), this::end));
                return;
            }
            if (COMMENT.equals(frame)) {
                response.write(false, ByteBuffer.wrap(COMMENT_BYTES), writing(written, failed));
                return;
            }
            String event;
            try {
                JsonNode f = Frames.JSON.readTree(frame);
                String type = f.path("type").asText();
                String id = f.has("seq_end") ? f.path("seq_end").asText() : f.has("seq") ? f.path("seq").asText()
                        : type.equals("done") || type.equals("error") ? END_ID : null;
                event = (id == null ? "" : "id: " + id + "\n") + "event: " + type + "\ndata: " + frame + "\n\n";
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                failed.accept(e);
                end(e);
                return;
            }
            response.write(false, ByteBuffer.wrap(event.getBytes(StandardCharsets.UTF_8)), writing(written, failed));
        }

        @Override
        public void closeTooSlow(String reason) {
            end(new IllegalStateException(reason));
        }
    }
}
