package io.sluice.ingress.internal;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.ingress.ProtocolError;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.Tier;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Validates a {@code generate} message field by field and builds the request record. */
public final class GenerateParser {
    /** The fields of a generate message, in a list so each has a bit in a mask of those seen. */
    private static final List<String> FAST_FIELDS = List.of("type", "id", "prompt", "max_tokens", "temperature", "top_p",
            "top_k", "seed", "stop", "logprobs", "tier", "priority", "idempotency_key", "metadata");
    static final Set<String> FIELDS = Set.copyOf(FAST_FIELDS);
    static final int MAX_ID = 256;
    static final int MAX_STOPS = 4;
    static final int MAX_STOP_CHARS = 64;
    static final int MAX_METADATA = 32;

    private final int maxPromptChars;
    private final int maxTokensLimit;

    public GenerateParser(int maxPromptChars, int maxTokensLimit) {
        this.maxPromptChars = maxPromptChars;
        this.maxTokensLimit = maxTokensLimit;
    }

    /**
     * The request {@code msg} describes, without its id and creation time (the caller sets both
     * once the request is admitted).
     */
    public InferenceRequest parse(JsonNode msg, String tenant, String principal) throws ProtocolError {
        onlyFields(msg, FIELDS);
        // Every field is set below, so the record is filled directly: a builder would copy the
        // schema's field list and check each field for a default on every request.
        InferenceRequest b = new InferenceRequest();
        b.setTenant(tenant);
        b.setPrincipal(principal);
        b.setClientId(optionalString(msg, "id", MAX_ID));
        JsonNode prompt = msg.get("prompt");
        if (prompt == null || prompt.isNull()) {
            throw ProtocolError.invalid("prompt", "required");
        }
        if (!prompt.isTextual()) {
            throw ProtocolError.invalid("prompt", "must be a string");
        }
        if (prompt.asText().isEmpty()) {
            throw ProtocolError.invalid("prompt", "must not be empty");
        }
        if (prompt.asText().length() > maxPromptChars) {
            throw new ProtocolError(ProtocolError.Code.too_large,
                    "prompt: " + prompt.asText().length() + " characters exceeds the limit of " + maxPromptChars, false);
        }
        b.setPrompt(prompt.asText());
        b.setMaxTokens(intIn(msg, "max_tokens", 1, maxTokensLimit, 64));
        b.setTemperature((float) numberIn(msg, "temperature", 0, 2, 0));
        b.setTopP((float) numberIn(msg, "top_p", 0, 1, 1));
        if (msg.has("top_p") && b.getTopP() == 0f) {
            throw ProtocolError.invalid("top_p", "must be greater than 0 and at most 1");
        }
        b.setTopK(intIn(msg, "top_k", 0, 1_000_000, 0));
        JsonNode seed = msg.get("seed");
        if (seed != null && !seed.isNull()) {
            if (!seed.isIntegralNumber() || !seed.canConvertToLong()) {
                throw ProtocolError.invalid("seed", "must be a 64-bit integer");
            }
            b.setSeed(seed.asLong());
        }
        b.setStop(stops(msg.get("stop")));
        b.setLogprobs(intIn(msg, "logprobs", 0, 5, 0));
        JsonNode tier = msg.get("tier");
        if (tier == null || tier.isNull()) {
            b.setTier(Tier.operational);
        } else {
            try {
                b.setTier(Tier.valueOf(tier.asText()));
            } catch (IllegalArgumentException e) {
                throw ProtocolError.invalid("tier", "must be financial or operational");
            }
            if (!tier.isTextual()) {
                throw ProtocolError.invalid("tier", "must be financial or operational");
            }
        }
        b.setPriority(intIn(msg, "priority", 0, 9, 0));
        b.setIdempotencyKey(optionalString(msg, "idempotency_key", MAX_ID));
        b.setMetadata(metadata(msg.get("metadata")));
        return b;
    }

    /**
     * The request a well-formed {@code generate} message describes, read in one pass without
     * building a tree: the gateway's per-request path. Anything else — another message type,
     * an unknown or repeated field, a value of the wrong type or out of range, trailing text —
     * returns null, and the caller takes the tree path, which accepts exactly the same requests
     * and names the field at fault for the rest. {@code GenerateParserTest} holds the two to
     * the same answers. It reads the UTF-8 bytes of a WebSocket text message (valid UTF-8, which
     * the caller checked), so no string of the whole message is made.
     */
    public InferenceRequest tryParse(byte[] utf8, int offset, int length, String tenant, String principal) {
        try (JsonParser p = Frames.JSON.getFactory().createParser(utf8, offset, length)) {
            return tryParse(p, tenant, principal);
        } catch (java.io.IOException | RuntimeException notPlain) {
            return null;
        }
    }

    private InferenceRequest tryParse(JsonParser p, String tenant, String principal) throws java.io.IOException {
        if (p.nextToken() != JsonToken.START_OBJECT) {
            return null;
        }
        InferenceRequest b = new InferenceRequest();
        b.setTenant(tenant);
        b.setPrincipal(principal);
        b.setMaxTokens(64);
        b.setTemperature(0f);
        b.setTopP(1f);
        b.setTopK(0);
        b.setStop(new ArrayList<>());
        b.setLogprobs(0);
        b.setTier(Tier.operational);
        b.setPriority(0);
        b.setMetadata(new HashMap<>());
        boolean generate = false;
        int seen = 0;
        String field;
        while ((field = p.nextFieldName()) != null) {
            int bit = FAST_FIELDS.indexOf(field);
            if (bit < 0 || (seen & (1 << bit)) != 0) {
                return null;
            }
            seen |= 1 << bit;
            JsonToken t = p.nextToken();
            if (t == JsonToken.VALUE_NULL && !field.equals("type") && !field.equals("prompt")) {
                continue;
            }
            switch (field) {
                case "type" -> {
                    if (t != JsonToken.VALUE_STRING || !p.getText().equals("generate")) {
                        return null;
                    }
                    generate = true;
                }
                case "id" -> {
                    if (t != JsonToken.VALUE_STRING || p.getTextLength() > MAX_ID) {
                        return null;
                    }
                    b.setClientId(p.getText());
                }
                case "prompt" -> {
                    if (t != JsonToken.VALUE_STRING || p.getTextLength() == 0 || p.getTextLength() > maxPromptChars) {
                        return null;
                    }
                    b.setPrompt(p.getText());
                }
                case "max_tokens" -> {
                    Integer v = intIn(p, t, 1, maxTokensLimit);
                    if (v == null) {
                        return null;
                    }
                    b.setMaxTokens(v);
                }
                case "temperature" -> {
                    if (!t.isNumeric() || !(p.getDoubleValue() >= 0 && p.getDoubleValue() <= 2)) {
                        return null;
                    }
                    b.setTemperature((float) p.getDoubleValue());
                }
                case "top_p" -> {
                    if (!t.isNumeric() || !(p.getDoubleValue() > 0 && p.getDoubleValue() <= 1)
                            || (float) p.getDoubleValue() == 0f) {
                        return null;
                    }
                    b.setTopP((float) p.getDoubleValue());
                }
                case "top_k" -> {
                    Integer v = intIn(p, t, 0, 1_000_000);
                    if (v == null) {
                        return null;
                    }
                    b.setTopK(v);
                }
                case "seed" -> {
                    if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                        return null;
                    }
                    b.setSeed(p.getLongValue());
                }
                case "stop" -> {
                    if (t != JsonToken.START_ARRAY) {
                        return null;
                    }
                    while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                        if (t != JsonToken.VALUE_STRING || p.getTextLength() == 0 || p.getTextLength() > MAX_STOP_CHARS
                                || b.getStop().size() == MAX_STOPS) {
                            return null;
                        }
                        b.getStop().add(p.getText());
                    }
                }
                case "logprobs" -> {
                    Integer v = intIn(p, t, 0, 5);
                    if (v == null) {
                        return null;
                    }
                    b.setLogprobs(v);
                }
                case "tier" -> {
                    if (t != JsonToken.VALUE_STRING) {
                        return null;
                    }
                    String tier = p.getText();
                    if (tier.equals("operational")) {
                        b.setTier(Tier.operational);
                    } else if (tier.equals("financial")) {
                        b.setTier(Tier.financial);
                    } else {
                        return null;
                    }
                }
                case "priority" -> {
                    Integer v = intIn(p, t, 0, 9);
                    if (v == null) {
                        return null;
                    }
                    b.setPriority(v);
                }
                case "idempotency_key" -> {
                    if (t != JsonToken.VALUE_STRING || p.getTextLength() > MAX_ID) {
                        return null;
                    }
                    b.setIdempotencyKey(p.getText());
                }
                case "metadata" -> {
                    if (t != JsonToken.START_OBJECT) {
                        return null;
                    }
                    String key;
                    while ((key = p.nextFieldName()) != null) {
                        if (p.nextToken() != JsonToken.VALUE_STRING || key.length() > MAX_ID || p.getTextLength() > 1024) {
                            return null;
                        }
                        b.getMetadata().put(key, p.getText());
                    }
                    if (b.getMetadata().size() > MAX_METADATA) {
                        return null;
                    }
                }
                default -> {
                    return null;
                }
            }
        }
        if (!generate || b.getPrompt() == null || p.nextToken() != null) {
            return null;
        }
        return b;
    }

    /** The current value if it is a JSON integer within [min, max], else null. */
    private static Integer intIn(JsonParser p, JsonToken t, int min, int max) throws java.io.IOException {
        if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT) {
            return null;
        }
        int v = p.getIntValue();
        return v < min || v > max ? null : v;
    }

    /** Refuses a message carrying a field outside {@code allowed}, naming it. */
    static void onlyFields(JsonNode msg, Set<String> allowed) throws ProtocolError {
        for (Iterator<String> it = msg.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!allowed.contains(name)) {
                throw ProtocolError.invalid(name, "unknown field");
            }
        }
    }

    static String optionalString(JsonNode msg, String field, int max) throws ProtocolError {
        JsonNode v = msg.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isTextual()) {
            throw ProtocolError.invalid(field, "must be a string");
        }
        if (v.asText().length() > max) {
            throw ProtocolError.invalid(field, "longer than " + max + " characters");
        }
        return v.asText();
    }

    private static int intIn(JsonNode msg, String field, int min, int max, int dflt) throws ProtocolError {
        JsonNode v = msg.get(field);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < min || v.asInt() > max) {
            throw ProtocolError.invalid(field, "must be an integer from " + min + " to " + max);
        }
        return v.asInt();
    }

    private static double numberIn(JsonNode msg, String field, double min, double max, double dflt) throws ProtocolError {
        JsonNode v = msg.get(field);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isNumber() || Double.isNaN(v.asDouble()) || v.asDouble() < min || v.asDouble() > max) {
            throw ProtocolError.invalid(field, "must be a number from " + min + " to " + max);
        }
        return v.asDouble();
    }

    private static List<String> stops(JsonNode v) throws ProtocolError {
        List<String> out = new ArrayList<>();
        if (v == null || v.isNull()) {
            return out;
        }
        if (!v.isArray()) {
            throw ProtocolError.invalid("stop", "must be a list of strings");
        }
        if (v.size() > MAX_STOPS) {
            throw ProtocolError.invalid("stop", "at most " + MAX_STOPS + " sequences");
        }
        for (JsonNode s : v) {
            if (!s.isTextual() || s.asText().isEmpty() || s.asText().length() > MAX_STOP_CHARS) {
                throw ProtocolError.invalid("stop", "each must be a non-empty string of at most " + MAX_STOP_CHARS + " characters");
            }
            out.add(s.asText());
        }
        return out;
    }

    private static Map<String, String> metadata(JsonNode v) throws ProtocolError {
        Map<String, String> out = new HashMap<>();
        if (v == null || v.isNull()) {
            return out;
        }
        if (!v.isObject()) {
            throw ProtocolError.invalid("metadata", "must be an object of strings");
        }
        if (v.size() > MAX_METADATA) {
            throw ProtocolError.invalid("metadata", "at most " + MAX_METADATA + " entries");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
            var e = it.next();
            if (!e.getValue().isTextual() || e.getKey().length() > MAX_ID || e.getValue().asText().length() > 1024) {
                throw ProtocolError.invalid("metadata." + e.getKey(), "must be a string of at most 1024 characters");
            }
            out.put(e.getKey(), e.getValue().asText());
        }
        return out;
    }
}
