package io.sluice.ingress.internal;

import io.sluice.schemas.InferenceRequest;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.TreeMap;

/**
 * A digest of everything that decides a request's output, so a repeated submit can be told from
 * a different request under the same idempotency key. The client's own id and the priority are
 * left out: resending with another id or urgency is still the same request.
 */
public final class RequestDigest {
    private RequestDigest() {
    }

    public static String of(InferenceRequest r) {
        StringBuilder sb = new StringBuilder();
        field(sb, r.getPrompt());
        field(sb, String.valueOf(r.getMaxTokens()));
        field(sb, Float.toString(r.getTemperature()));
        field(sb, Float.toString(r.getTopP()));
        field(sb, String.valueOf(r.getTopK()));
        field(sb, String.valueOf(r.getSeed()));
        field(sb, String.valueOf(r.getStop().size()));
        r.getStop().forEach(s -> field(sb, s));
        field(sb, String.valueOf(r.getLogprobs()));
        field(sb, r.getTier().name());
        new TreeMap<>(r.getMetadata()).forEach((k, v) -> {
            field(sb, k);
            field(sb, v);
        });
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(sb.toString().getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(d);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Length-prefixed, so no two different field lists give the same string. */
    private static void field(StringBuilder sb, String value) {
        sb.append(value.length()).append(':').append(value).append(';');
    }
}
