package io.sluice.ingress.internal;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.ingress.ProtocolError;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.TokenLogprob;

/** Server-to-client frames of the {@code sluice.v1.json} subprotocol. */
public final class Frames {
    /**
     * Fails on text after the value: a message holding one object and then something else (a
     * second object, a stray token) is refused whole, not read as its first part, so a client
     * never takes a request for accepted that was only half read.
     */
    public static final ObjectMapper JSON = new ObjectMapper()
            .enable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private Frames() {
    }

    /**
     * What is wrong with a message Jackson could not read, in the client's terms: its message for
     * text after the object names Jackson's own setting and binding, which mean nothing to a client.
     */
    static String why(com.fasterxml.jackson.core.JsonProcessingException e) {
        String m = e.getOriginalMessage();
        return m != null && m.startsWith("Trailing token") ? "text after the JSON object" : m;
    }

    /** Written directly: one is sent per request, and a tree per frame costs more than the request's own encoding. */
    public static String accepted(String clientId, String requestId, boolean duplicate) {
        StringBuilder b = new StringBuilder(96).append("{\"type\":\"accepted\",\"id\":");
        quoted(b, clientId).append(",\"request_id\":");
        return quoted(b, requestId).append(",\"duplicate\":").append(duplicate).append('}').toString();
    }

    private static final byte[] ACCEPTED_HEAD = ascii("{\"type\":\"accepted\",\"id\":");
    private static final byte[] ACCEPTED_REQUEST_ID = ascii(",\"request_id\":\"");
    private static final byte[] ACCEPTED_DUPLICATE = ascii("\",\"duplicate\":");
    private static final byte[] NULL = ascii("null");
    private static final byte[] TRUE = ascii("true}");
    private static final byte[] FALSE = ascii("false}");

    private static byte[] ascii(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    }

    /**
     * As {@link #accepted}, in UTF-8: made where the ids are at hand, written later as it is. Ids
     * of printable ASCII that JSON copies as they are (every request id, most client ids) are
     * written straight into the one array the frame needs; a builder, its string and the string's
     * encoding were three copies of it, a tenth of what a request allocates.
     */
    public static byte[] acceptedUtf8(String clientId, String requestId, boolean duplicate) {
        if (!copiedAsIs(clientId) || requestId == null || !copiedAsIs(requestId)) {
            return accepted(clientId, requestId, duplicate).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        }
        byte[] tail = duplicate ? TRUE : FALSE;
        int idBytes = clientId == null ? NULL.length : clientId.length() + 2;
        byte[] b = new byte[ACCEPTED_HEAD.length + idBytes + ACCEPTED_REQUEST_ID.length + requestId.length()
                + ACCEPTED_DUPLICATE.length + tail.length];
        int at = put(b, 0, ACCEPTED_HEAD);
        if (clientId == null) {
            at = put(b, at, NULL);
        } else {
            b[at++] = '"';
            at = put(b, at, clientId);
            b[at++] = '"';
        }
        at = put(b, at, ACCEPTED_REQUEST_ID);
        at = put(b, at, requestId);
        at = put(b, at, ACCEPTED_DUPLICATE);
        put(b, at, tail);
        return b;
    }

    /** Whether {@code s} is null or printable ASCII without a quote or a backslash: its UTF-8 is its JSON. */
    private static boolean copiedAsIs(String s) {
        if (s == null) {
            return true;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c > 0x7E || c == '"' || c == '\\') {
                return false;
            }
        }
        return true;
    }

    private static int put(byte[] b, int at, byte[] bytes) {
        System.arraycopy(bytes, 0, b, at, bytes.length);
        return at + bytes.length;
    }

    private static int put(byte[] b, int at, String ascii) {
        for (int i = 0; i < ascii.length(); i++) {
            b[at++] = (byte) ascii.charAt(i);
        }
        return at;
    }

    private static StringBuilder quoted(StringBuilder b, String s) {
        if (s == null) {
            return b.append("null");
        }
        b.append('"');
        if (needsEscape(s)) {
            com.fasterxml.jackson.core.io.JsonStringEncoder.getInstance().quoteAsString(s, b);
        } else {
            // Request ids, client ids and most token texts: copying beats the encoder's char-by-char table walk.
            b.append(s);
        }
        return b.append('"');
    }

    /** Whether JSON needs anything in {@code s} escaped: a quote, a backslash or a control character. */
    private static boolean needsEscape(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == '"' || c == '\\') {
                return true;
            }
        }
        return false;
    }

    /** Written directly, like {@link #accepted}: every generated token of every stream is one of these. */
    public static String token(TokenEvent t) {
        if (t.getLogprob() != null) {
            ObjectNode n = JSON.createObjectNode().put("type", "token").put("request_id", t.getRequestId())
                    .put("seq", t.getSeq()).put("text", t.getText()).put("token_id", t.getTokenId());
            n.put("logprob", t.getLogprob());
            ArrayNode top = n.putArray("top_logprobs");
            for (TokenLogprob lp : t.getTopLogprobs()) {
                top.addObject().put("token_id", lp.getTokenId()).put("text", lp.getText()).put("logprob", lp.getLogprob());
            }
            return n.toString();
        }
        StringBuilder b = new StringBuilder(64 + t.getRequestId().length() + t.getText().length())
                .append("{\"type\":\"token\",\"request_id\":");
        quoted(b, t.getRequestId()).append(",\"seq\":").append(t.getSeq()).append(",\"text\":");
        return quoted(b, t.getText()).append(",\"token_id\":").append(t.getTokenId()).append('}').toString();
    }

    /** Several tokens of one request in one frame, for a client that fell behind. */
    public static String tokens(String requestId, int seq, int seqEnd, String text) {
        return JSON.createObjectNode().put("type", "token").put("request_id", requestId).put("seq", seq)
                .put("seq_end", seqEnd).put("text", text).toString();
    }

    /** The terminal frame of a request: {@code done}, or {@code error} when it failed. */
    public static String terminal(InferenceResult r) {
        if (r.getError() != null) {
            ObjectNode n = JSON.createObjectNode().put("type", "error").put("request_id", r.getRequestId())
                    .put("code", r.getError().getCode()).put("message", r.getError().getMessage())
                    .put("retryable", r.getError().getRetryable());
            return n.toString();
        }
        ObjectNode n = JSON.createObjectNode().put("type", "done").put("request_id", r.getRequestId())
                .put("finish_reason", r.getFinishReason().name());
        n.putObject("usage").put("prompt_tokens", r.getPromptTokens()).put("completion_tokens", r.getCompletionTokens());
        return n.toString();
    }

    public static String error(String clientId, String requestId, ProtocolError e) {
        ObjectNode n = JSON.createObjectNode().put("type", "error");
        if (clientId != null) {
            n.put("id", clientId);
        }
        if (requestId != null) {
            n.put("request_id", requestId);
        }
        n.put("code", e.code().name()).put("message", e.getMessage()).put("retryable", e.retryable());
        return n.toString();
    }

    public static String pong() {
        return "{\"type\":\"pong\"}";
    }
}
