package io.sluice.ingress.internal;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.egress.StreamListener;
import io.sluice.egress.Subscription;
import io.sluice.egress.TokenRouter;
import io.sluice.ingress.Authenticator.Principal;
import io.sluice.ingress.ProtocolError;
import io.sluice.schemas.Cancel;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.Topics;
import org.apache.avro.specific.SpecificRecord;
import java.nio.ByteBuffer;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.OpCode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client socket: parses its messages, submits requests and streams their events back.
 *
 * <p>A Jetty core frame handler rather than a Jetty API endpoint: the API calls an endpoint
 * through method handles bound to each instance, which the JVM customizes and compiles anew for
 * every socket once it has taken some frames, and wraps every frame in futures of its own. Here
 * each frame is one interface call. The duties the API took on are kept here: frames are asked
 * for one at a time ({@link CoreSession#demand()} after each), pings are answered, and a close
 * frame is acknowledged so the session answers it and then calls {@link #onClosed}.
 */
public final class StreamEndpoint implements FrameHandler {
    private static final Logger log = LoggerFactory.getLogger(StreamEndpoint.class);

    private static final java.util.Set<String> PING_FIELDS = java.util.Set.of("type", "id");
    private static final java.util.Set<String> CANCEL_FIELDS = java.util.Set.of("type", "id", "request_id");
    private static final java.util.Set<String> ATTACH_FIELDS = java.util.Set.of("type", "id", "request_id", "after_seq");

    private final Principal principal;
    private final RequestSubmitter submitter;
    private final Producer<String, SpecificRecord> producer;
    private final String controlTopic;
    private final boolean cancelOnDisconnect;
    private final int maxInFlight;
    /** Set when the socket opens; read by the keep-alive and drain threads too. */
    private volatile CoreSession session;
    /** Closed by a draining gateway: its streams are left running for the client to attach to elsewhere. */
    private volatile boolean leaving;
    private final java.util.function.Consumer<StreamEndpoint> onClose;
    private final java.util.concurrent.atomic.AtomicBoolean released = new java.util.concurrent.atomic.AtomicBoolean();
    private final TokenRouter router;
    private final long outboundBytes;
    private final Clock clock;
    /**
     * The requests this socket follows, as a list threaded through their {@link PendingStream}s
     * under {@link #followedLock}, newest first. Every request is added and removed once, from
     * different threads (the socket's reader, the router or Kafka's acknowledgement); a list
     * does both in place, where a concurrent map hashed, allocated a node and grew its table for
     * every socket anew. Finding one by id (cancel, attach) walks it; {@code
     * gateway.max.inflight.per.socket} bounds that walk.
     */
    private PendingStream followedHead;
    private int followedCount;
    /** The socket closed: what would be added now is let go at once instead. */
    private boolean followingEnded;
    private final Object followedLock = new Object();
    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);
    /** Messages up to this size are copied out of a direct buffer into the thread's scratch array. */
    private static final int SCRATCH_BYTES = 8192;
    private static final ThreadLocal<byte[]> SCRATCH = ThreadLocal.withInitial(() -> new byte[SCRATCH_BYTES]);
    private final int maxMessageBytes;
    /** The fragments of a text message so far; null between messages (almost all arrive whole). */
    private java.io.ByteArrayOutputStream fragments;
    /** The continuation frames of a binary message (refused at its first frame) are being passed over. */
    private boolean skippingBinary;
    /** A message was refused (too large, not UTF-8) and the socket is closing: no more are read. */
    private boolean refusing;
    private Outbox outbox;
    private final java.util.concurrent.Executor writer;
    /** Set by every frame the client sends; read and cleared by the gateway's keep-alive tick. */
    private volatile boolean heard;
    /** Keep-alive tick's own: when it last found {@link #heard} set. */
    private long lastHeardNanos = System.nanoTime();

    public StreamEndpoint(Principal principal, RequestSubmitter submitter, Producer<String, SpecificRecord> producer,
            Topics topics, TokenRouter router, long outboundBytes, boolean cancelOnDisconnect, int maxInFlight, Clock clock,
            java.util.function.Consumer<StreamEndpoint> onClose, java.util.concurrent.Executor writer, int maxMessageBytes) {
        this.writer = writer;
        this.maxMessageBytes = maxMessageBytes;
        this.principal = principal;
        this.submitter = submitter;
        this.producer = producer;
        this.controlTopic = topics.control();
        this.cancelOnDisconnect = cancelOnDisconnect;
        this.maxInFlight = maxInFlight;
        this.onClose = onClose;
        this.router = router;
        this.outboundBytes = outboundBytes;
        this.clock = clock;
    }

    /**
     * The handshake failed after this endpoint was made for it (an extension Jetty could not
     * negotiate, or the client gone before its 101 was written): the socket never opens, so
     * {@link #onClosed} never comes, and the tenant's slot and the gateway's count are given
     * back here instead. A socket that did open is left to its close.
     */
    public void abandon() {
        if (session == null) {
            released();
        }
    }

    /** Runs {@code onClose} once, from whichever of close and abandon comes. */
    private void released() {
        if (released.compareAndSet(false, true)) {
            onClose.accept(this);
        }
    }

    @Override
    public void onOpen(CoreSession session, Callback callback) {
        this.session = session;
        this.outbox = new Outbox(new WebSocketSink(session), outboundBytes, writer);
        callback.succeeded();
        session.demand();
    }

    /** Requests this socket still follows. */
    public int followed() {
        synchronized (followedLock) {
            return followedCount;
        }
    }

    /**
     * Adds {@code s} to the requests followed, unless its request already ended. A socket that
     * closed meanwhile (from another thread) has cancelled what it followed; {@code s}'s
     * subscription is cancelled too, so the router keeps nothing for a socket that is gone.
     */
    private void link(PendingStream s) {
        boolean late;
        synchronized (followedLock) {
            late = followingEnded;
            if (!late && !s.ended) {
                s.next = followedHead;
                if (followedHead != null) {
                    followedHead.prev = s;
                }
                followedHead = s;
                s.linked = true;
                followedCount++;
            }
        }
        if (late) {
            s.subscription.cancel();
        }
    }

    /** Removes {@code s} from the requests followed, and marks it ended so it is not added later. */
    private void unlink(PendingStream s) {
        synchronized (followedLock) {
            s.ended = true;
            if (!s.linked) {
                return;
            }
            if (s.prev != null) {
                s.prev.next = s.next;
            } else {
                followedHead = s.next;
            }
            if (s.next != null) {
                s.next.prev = s.prev;
            }
            s.prev = null;
            s.next = null;
            s.linked = false;
            followedCount--;
        }
    }

    /** The stream of {@code requestId} this socket follows, or null. */
    private PendingStream followed(String requestId) {
        synchronized (followedLock) {
            for (PendingStream s = followedHead; s != null; s = s.next) {
                if (s.requestId.equals(requestId)) {
                    return s;
                }
            }
            return null;
        }
    }

    /**
     * Takes every followed stream off the list, for the socket's close, and returns the first of
     * them: the rest follow through {@code next}. Each is marked ended and unlinked here, under the
     * lock, so no other thread touches its links again; the chain is left for the caller to walk
     * outside the lock, which a copy into a list (thousands of streams on a busy socket) only cost.
     */
    private PendingStream unlinkAll() {
        synchronized (followedLock) {
            PendingStream first = followedHead;
            for (PendingStream s = first; s != null; s = s.next) {
                s.prev = null;
                s.linked = false;
                s.ended = true;
            }
            followedHead = null;
            followedCount = 0;
            followingEnded = true;
            return first;
        }
    }

    /** Closes the socket telling the client to re-attach elsewhere (the gateway is going away). */
    public void goAway() {
        leaving = true;
        CoreSession s = session;
        if (s != null && s.isOutputOpen()) {
            s.close(CloseStatus.SHUTDOWN, "gateway shutting down; attach on another gateway to resume", Callback.NOOP);
        }
    }

    /**
     * Frames, not messages: a text message is read from the bytes Jetty parsed, without a
     * builder or a string of the whole message. Fragments are joined up to
     * {@code gateway.max.frame.bytes} (more closes the socket with 1009), the text must be valid
     * UTF-8 (else 1007), and pings are answered. The next frame is asked for once this one is
     * handled; a close frame is only acknowledged, the session answers it.
     */
    @Override
    public void onFrame(Frame frame, Callback callback) {
        if (!heard) {
            heard = true; // a volatile write (a fence) only once per keep-alive tick, not on every frame
        }
        byte opCode = frame.getOpCode();
        if (opCode == OpCode.CLOSE) {
            callback.succeeded();
            return;
        }
        try {
            switch (opCode) {
                case OpCode.TEXT -> text(frame);
                case OpCode.CONTINUATION -> {
                    if (skippingBinary) {
                        skippingBinary = !frame.isFin();
                    } else {
                        text(frame);
                    }
                }
                case OpCode.BINARY -> {
                    // One error per binary message, however many frames it comes in.
                    skippingBinary = !frame.isFin();
                    outbox.offer(Frames.error(null, null, ProtocolError.invalid("message",
                            "binary messages are not part of " + io.sluice.ingress.Gateway.SUBPROTOCOL + "; send JSON text")));
                }
                case OpCode.PING -> {
                    ByteBuffer payload = ByteBuffer.allocate(frame.getPayloadLength());
                    if (frame.hasPayload()) {
                        payload.put(frame.getPayload().slice()).flip();
                    }
                    session.sendFrame(new Frame(OpCode.PONG, payload), Callback.NOOP, false);
                }
                default -> {
                    // PONG needs nothing.
                }
            }
        } catch (RuntimeException e) {
            callback.failed(e);
            return;
        }
        callback.succeeded();
        session.demand();
    }

    /**
     * One tick of the gateway's keep-alive, on its timer thread: closes the socket when nothing
     * came from the client for {@code idleNanos} (not even a pong to the earlier pings), else
     * sends a ping. Jetty's own idle timeout cannot tell a dead peer once pings are written,
     * since writes count as traffic for it; the client's pongs are what show it is there. A
     * socket whose token expired is closed here too, idle or not.
     */
    public void keepAlive(long nowNanos, long idleNanos) {
        CoreSession s = session;
        if (s == null || !s.isOutputOpen()) {
            return;
        }
        if (principal.expiredAt(clock.millis())) {
            tokenExpired(s);
            return;
        }
        if (heard) {
            heard = false;
            lastHeardNanos = nowNanos;
        } else if (nowNanos - lastHeardNanos > idleNanos) {
            s.close(CloseStatus.SHUTDOWN, "nothing from the client, not even a pong, for "
                    + java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(idleNanos) + " ms (gateway.idle.timeout.ms)",
                    Callback.NOOP);
            return;
        }
        s.sendFrame(new Frame(OpCode.PING), Callback.NOOP, false);
    }

    private void text(Frame frame) {
        if (refusing) {
            return; // the socket is closing over an earlier message; the rest of it is not read
        }
        ByteBuffer payload = frame.hasPayload() ? frame.getPayload() : EMPTY;
        if (fragments == null && frame.isFin()) {
            // A whole message in one frame: the common case, read where it lies.
            int length = payload.remaining();
            if (length > maxMessageBytes) {
                tooLarge(length);
                return;
            }
            if (payload.hasArray()) {
                message(payload.array(), payload.arrayOffset() + payload.position(), length);
            } else {
                byte[] scratch = length <= SCRATCH_BYTES ? SCRATCH.get() : new byte[length];
                payload.get(payload.position(), scratch, 0, length); // absolute: no slice per message
                message(scratch, 0, length);
            }
            return;
        }
        if (fragments == null) {
            fragments = new java.io.ByteArrayOutputStream();
        }
        if ((long) fragments.size() + payload.remaining() > maxMessageBytes) {
            tooLarge((long) fragments.size() + payload.remaining());
            return;
        }
        byte[] part = new byte[payload.remaining()];
        payload.slice().get(part);
        fragments.writeBytes(part);
        if (frame.isFin()) {
            byte[] whole = fragments.toByteArray();
            fragments = null;
            message(whole, 0, whole.length);
        }
    }

    private void tooLarge(long bytes) {
        fragments = null;
        refusing = true;
        session.close(CloseStatus.MESSAGE_TOO_LARGE, "message of " + bytes + " bytes or more is over gateway.max.frame.bytes ("
                + maxMessageBytes + ")", Callback.NOOP);
    }

    /**
     * The token was checked at the handshake; a socket that outlives its {@code exp} (and the
     * skew) is closed with 1008, its requests left running, as a draining gateway leaves them:
     * the client reconnects with a fresh token and attaches to resume.
     */
    private void tokenExpired(CoreSession s) {
        leaving = true;
        s.close(CloseStatus.POLICY_VIOLATION, "token expired; reconnect with a fresh token and attach to resume",
                Callback.NOOP);
    }

    /** One text message, as UTF-8. */
    private void message(byte[] utf8, int offset, int length) {
        if (principal.expiredAt(clock.millis())) {
            refusing = true;
            tokenExpired(session);
            return;
        }
        if (!Utf8.isValid(utf8, offset, length)) {
            refusing = true;
            session.close(CloseStatus.BAD_PAYLOAD, "text message is not valid UTF-8", Callback.NOOP);
            return;
        }
        if (Utf8.readAsOtherEncoding(utf8, offset, length)) {
            outbox.offer(Frames.error(null, null, ProtocolError.invalid("message", "not valid JSON (a NUL byte)")));
            return;
        }
        // The common case, a well-formed generate, is read without a tree; all else takes the tree path.
        InferenceRequest plain = submitter.parser().tryParse(utf8, offset, length, principal.tenant(), principal.subject());
        if (plain != null) {
            try {
                generate(null, plain, plain.getClientId());
            } catch (ProtocolError e) {
                outbox.offer(Frames.error(plain.getClientId(), null, e));
            }
            return;
        }
        JsonNode msg;
        try {
            msg = Frames.JSON.readTree(utf8, offset, length);
        } catch (JsonProcessingException e) {
            outbox.offer(Frames.error(null, null, new ProtocolError(ProtocolError.Code.invalid_request,
                    "message: not valid JSON (" + Frames.why(e) + ")", false)));
            return;
        } catch (java.io.IOException cannot) {
            throw new java.io.UncheckedIOException(cannot); // reading an array does no I/O
        }
        String clientId = msg != null && msg.path("id").isTextual() ? msg.get("id").asText() : null;
        try {
            if (msg == null || !msg.isObject()) {
                throw ProtocolError.invalid("message", "must be a JSON object");
            }
            JsonNode type = msg.get("type");
            if (type == null || !type.isTextual()) {
                throw ProtocolError.invalid("type", "required: generate, cancel, attach or ping");
            }
            switch (type.asText()) {
                case "generate" -> generate(msg, null, clientId);
                case "ping" -> {
                    onlyFields(msg, PING_FIELDS);
                    outbox.offer(Frames.pong());
                }
                case "cancel" -> cancel(msg, clientId);
                case "attach" -> attach(msg);
                default -> throw ProtocolError.invalid("type", "unknown message type '" + type.asText()
                        + "'; expected generate, cancel, attach or ping");
            }
        } catch (ProtocolError e) {
            outbox.offer(Frames.error(clientId, null, e));
        }
    }

    /**
     * Refuses a field outside {@code allowed}, and an {@code id} that is not a string of at most
     * {@link GenerateParser#MAX_ID} characters, as {@code generate} does: the checks every other
     * message type shares.
     */
    private static void onlyFields(JsonNode msg, java.util.Set<String> allowed) throws ProtocolError {
        GenerateParser.onlyFields(msg, allowed);
        GenerateParser.optionalString(msg, "id", GenerateParser.MAX_ID);
    }

    /** The in-flight limit, for every message that adds a stream this socket follows. */
    private void mayFollowOneMore() throws ProtocolError {
        if (followed() >= maxInFlight) {
            throw new ProtocolError(ProtocolError.Code.rate_limited, "in_flight: this socket already follows " + maxInFlight
                    + " unfinished requests (gateway.max.inflight.per.socket)", true);
        }
    }

    /** Submits the request {@code msg} describes, or {@code parsed} when it was read already. */
    private void generate(JsonNode msg, InferenceRequest parsed, String clientId) throws ProtocolError {
        mayFollowOneMore();
        RequestSubmitter.Prepared prepared = parsed != null ? submitter.prepare(principal, parsed)
                : submitter.prepare(principal, msg);
        String requestId = prepared.requestId();
        if (prepared.duplicate()) {
            // Its accepted frame waits, as a new request's does, until the first request is on Kafka.
            follow(requestId, prepared.replyPartition(), -1, prepared.createdAtMillis(),
                    Frames.acceptedUtf8(clientId, requestId, true), submitter.firstWritten(prepared), clientId);
            return;
        }
        // Subscribe before producing so no event of this request can pass unseen; hold events until
        // the client has its accepted frame.
        PendingStream stream = new PendingStream(requestId);
        stream.subscription = router.subscribe(requestId, prepared.replyPartition(), -1, stream);
        link(stream);
        // Encoded here, where the ids were just read and made, rather than on the producer's
        // network thread or the writer, which would fetch each id back from memory to write it.
        stream.clientId = clientId;
        stream.acceptedFrame = Frames.acceptedUtf8(clientId, requestId, false);
        submitter.produce(prepared, stream);
    }

    /**
     * Streams a request that already exists, from its history on, after {@code firstFrame} (if
     * any), which goes out once {@code firstWritten} completes; if that fails, the client with
     * {@code clientId} gets its error instead and the stream is dropped.
     */
    private void follow(String requestId, int replyPartition, int afterSeq, long sinceMillis, byte[] firstFrame,
            java.util.concurrent.CompletableFuture<Void> firstWritten, String clientId) throws ProtocolError {
        PendingStream stream = new PendingStream(requestId);
        stream.clientId = clientId;
        if (firstFrame == null) {
            stream.accept(null);
        }
        try {
            stream.subscription = router.subscribeFromHistory(requestId, replyPartition, afterSeq, stream, sinceMillis);
        } catch (java.util.concurrent.RejectedExecutionException busy) {
            throw new ProtocolError(ProtocolError.Code.overloaded, "attach: too many replays under way, retry shortly", true);
        }
        // Attaching again to a request this socket follows replaces the earlier stream.
        PendingStream previous = followed(requestId);
        link(stream);
        if (previous != null) {
            unlink(previous);
            previous.subscription.cancel();
        }
        if (firstFrame == null) {
            return;
        }
        if (firstWritten.isDone()) {
            stream.accept(firstFrame);
            return;
        }
        firstWritten.whenComplete((ok, err) -> {
            if (err == null) {
                stream.accept(firstFrame);
            } else {
                stream.refuse(null, RequestSubmitter.protocolError(err));
            }
        });
    }

    private void attach(JsonNode msg) throws ProtocolError {
        if (!principal.may("infer")) {
            throw new ProtocolError(ProtocolError.Code.forbidden, "scope: attach needs the infer scope", false);
        }
        onlyFields(msg, ATTACH_FIELDS);
        // An attached stream is followed as a submitted one is, and held as long: the same limit.
        mayFollowOneMore();
        JsonNode id = msg.get("request_id");
        if (id == null || !id.isTextual() || id.asText().isEmpty()) {
            throw ProtocolError.invalid("request_id", "required: the request_id to attach to");
        }
        JsonNode after = msg.get("after_seq");
        int afterSeq = -1;
        if (after != null && !after.isNull()) {
            if (!after.isIntegralNumber() || !after.canConvertToInt() || after.asInt() < -1) {
                throw ProtocolError.invalid("after_seq", "must be an integer of at least -1");
            }
            afterSeq = after.asInt();
        }
        // Another tenant's request looks exactly like one that does not exist.
        RequestSubmitter.Found known = submitter.find(id.asText(), principal.tenant())
                .orElseThrow(() -> new ProtocolError(ProtocolError.Code.not_found, "request_id: no such request", false));
        follow(id.asText(), known.replyPartition(), afterSeq, known.createdAtMillis(), null, null, null);
    }

    private void cancel(JsonNode msg, String clientId) throws ProtocolError {
        // Scope first, as for generate and attach: without it a caller would learn only that the
        // id is not among this socket's, which reads as a wrong id rather than a missing grant.
        if (!principal.may("infer")) {
            throw new ProtocolError(ProtocolError.Code.forbidden, "scope: cancel needs the infer scope", false);
        }
        JsonNode id = msg.get("request_id");
        if (id == null || !id.isTextual() || id.asText().isEmpty()) {
            throw ProtocolError.invalid("request_id", "required: the request_id of an accepted request");
        }
        onlyFields(msg, CANCEL_FIELDS);
        // Only requests this socket follows: another tenant's request looks exactly like a missing one.
        if (followed(id.asText()) == null) {
            throw new ProtocolError(ProtocolError.Code.not_found, "request_id: no such request on this socket", false);
        }
        sendCancel(id.asText(), "client");
    }

    private void sendCancel(String requestId, String reason) {
        Cancel c = Cancel.newBuilder().setRequestId(requestId).setTenant(principal.tenant()).setReason(reason)
                .setRequestedAt(clock.instant()).build();
        producer.send(new ProducerRecord<>(controlTopic, requestId, c), (md, err) -> {
            if (err != null) {
                log.warn("Cancel of {} not written: {}", requestId, err.toString());
            }
        });
    }

    /**
     * One request this socket follows: buffers its frames until its accepted frame has gone out,
     * is a node of the socket's list of followed requests, and is what Kafka calls back when it
     * acknowledged the request, so that callback brings one object back from memory, not three.
     */
    private final class PendingStream implements StreamListener, org.apache.kafka.clients.producer.Callback {
        final String requestId;
        /** The client's id and the accepted frame to send once Kafka acknowledged; set before producing or following. */
        String clientId;
        byte[] acceptedFrame;
        /** Set right after subscribing, before the stream is linked. */
        Subscription subscription;
        /**
         * Guarded by {@link #followedLock}: the list's links, whether this is on it, whether its
         * request ended. Once {@link #unlinkAll} ended it, {@code next} is the closing thread's alone.
         */
        PendingStream prev;
        PendingStream next;
        boolean linked;
        boolean ended;
        private boolean released;
        /** Frames that came before the accepted frame went out; rare, so made only when one does. */
        private List<Runnable> early;

        PendingStream(String requestId) {
            this.requestId = requestId;
        }

        @Override
        public void onCompletion(org.apache.kafka.clients.producer.RecordMetadata metadata, Exception err) {
            if (err != null) {
                log.warn("Request {} not accepted by Kafka: {}", requestId, err.toString());
                refuse(requestId, new ProtocolError(ProtocolError.Code.overloaded,
                        "kafka: request not acknowledged (" + err.getClass().getSimpleName() + ")", true));
            } else {
                byte[] frame = acceptedFrame;
                acceptedFrame = null;
                accept(frame);
            }
        }

        /**
         * Drops the stream before its accepted frame went out and tells the client why, naming
         * {@code answeredRequestId} (null when the request it asked for has no id to give).
         */
        void refuse(String answeredRequestId, ProtocolError why) {
            subscription.cancel();
            unlink(this);
            outbox.offer(Frames.error(clientId, answeredRequestId, why));
        }

        /** Releases the stream, after {@code acceptedFrame} when there is one. */
        synchronized void accept(byte[] acceptedFrame) {
            if (released) {
                return;
            }
            released = true;
            if (acceptedFrame != null) {
                outbox.offer(acceptedFrame);
            }
            if (early != null) {
                early.forEach(Runnable::run);
                early = null;
            }
        }

        private synchronized void send(Runnable frame) {
            if (released) {
                frame.run();
                return;
            }
            if (early == null) {
                early = new ArrayList<>();
            }
            early.add(frame);
        }

        @Override
        public void onToken(TokenEvent token) {
            send(() -> outbox.offerToken(token));
        }

        @Override
        public void onResult(InferenceResult result) {
            unlink(this);
            String frame = Frames.terminal(result);
            send(() -> outbox.offer(frame));
        }
    }

    @Override
    public void onClosed(CloseStatus status, Callback callback) {
        for (PendingStream s = unlinkAll(), next; s != null; s = next) {
            next = s.next;
            s.next = null;
            if (cancelOnDisconnect && !leaving) {
                sendCancel(s.requestId, "disconnect");
            }
            s.subscription.cancel();
        }
        if (outbox != null) {
            outbox.close();
        }
        released();
        callback.succeeded();
    }

    @Override
    public void onError(Throwable cause, Callback callback) {
        log.debug("Socket error", cause);
        callback.succeeded();
    }
}
