package io.sluice.ingress.internal;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Request ids that carry what a gateway needs to find a request again: when it was created, the
 * tokens partition its events go to, and whether it has an idempotency key, sealed with an
 * HMAC over those and the owning tenant. Any gateway sharing the secret can then answer
 * {@code attach} and {@code GET /v1/requests/{id}} from the id alone, with no per-request write
 * to Redis on the accept path; an id shown with another tenant's token fails the check and is
 * treated exactly like an id that does not exist.
 *
 * <p>Ids sealed with an earlier secret, passed to the constructor, are still opened, so the
 * secret can be rotated without losing the requests of the attach retention.
 *
 * <p>Layout, 24 bytes as 32 characters of unpadded base64url: creation time in epoch
 * milliseconds (6 bytes), reply partition + 1 (2 bytes, 0 for none), flags (1 byte), 7 random
 * bytes, then the first 8 bytes of HMAC-SHA256(secret, the first 16 bytes, tenant).
 */
public final class RequestIds {
    static final int LENGTH = 32;
    private static final int KEYED = 1;
    private static final Base64.Encoder ENCODER = Base64.getUrlEncoder().withoutPadding();
    private static final Base64.Decoder DECODER = Base64.getUrlDecoder();

    /** What an id says about its request, once its seal checked out for the asking tenant. */
    public record Sealed(long createdAtMillis, int replyPartition, boolean keyed) {
    }

    /** Per thread: a Mac for the current key, then one for each earlier key still accepted. */
    private final ThreadLocal<Mac[]> macs;

    /**
     * @param secret the key that seals new ids
     * @param earlier keys of earlier secrets: ids they sealed are still opened, none is sealed with them
     */
    public RequestIds(byte[] secret, java.util.List<byte[]> earlier) {
        java.util.List<SecretKeySpec> keys = new java.util.ArrayList<>();
        keys.add(new SecretKeySpec(secret, "HmacSHA256"));
        for (byte[] k : earlier) {
            keys.add(new SecretKeySpec(k, "HmacSHA256"));
        }
        this.macs = ThreadLocal.withInitial(() -> {
            try {
                Mac[] out = new Mac[keys.size()];
                for (int i = 0; i < out.length; i++) {
                    out[i] = Mac.getInstance("HmacSHA256");
                    out[i].init(keys.get(i));
                }
                return out;
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException("HmacSHA256 unavailable", e);
            }
        });
        macs.get();
    }

    /** A new id for a request of {@code tenant}; {@code replyPartition} is -1 for none. */
    public String mint(String tenant, long createdAtMillis, int replyPartition, boolean keyed) {
        if (replyPartition < -1 || replyPartition > 0xFFFE) {
            throw new IllegalArgumentException("reply partition out of range: " + replyPartition);
        }
        ByteBuffer b = ByteBuffer.allocate(24);
        b.putShort((short) (createdAtMillis >>> 32)).putInt((int) createdAtMillis);
        b.putShort((short) (replyPartition + 1));
        b.put((byte) (keyed ? KEYED : 0));
        long random = ThreadLocalRandom.current().nextLong();
        for (int i = 0; i < 7; i++) {
            b.put((byte) (random >>> (8 * i)));
        }
        b.put(seal(macs.get()[0], b.array(), tenant), 0, 8);
        return ENCODER.encodeToString(b.array());
    }

    /** Whether {@code id} has the shape of an id minted here (it may still belong to another tenant). */
    public static boolean isSealed(String id) {
        if (id == null || id.length() != LENGTH) {
            return false;
        }
        for (int i = 0; i < LENGTH; i++) {
            char c = id.charAt(i);
            if (!(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')) {
                return false;
            }
        }
        return true;
    }

    /** What {@code id} says, if it was minted for {@code tenant} under this secret or an earlier one. */
    public Optional<Sealed> open(String id, String tenant) {
        if (!isSealed(id)) {
            return Optional.empty();
        }
        byte[] raw = DECODER.decode(id);
        byte[] presented = java.util.Arrays.copyOfRange(raw, 16, 24);
        boolean sealed = false;
        for (Mac mac : macs.get()) {
            sealed |= MessageDigest.isEqual(presented, java.util.Arrays.copyOf(seal(mac, raw, tenant), 8));
        }
        if (!sealed) {
            return Optional.empty();
        }
        ByteBuffer b = ByteBuffer.wrap(raw);
        long created = ((b.getShort() & 0xFFFFL) << 32) | (b.getInt() & 0xFFFFFFFFL);
        int partition = (b.getShort() & 0xFFFF) - 1;
        boolean keyed = (b.get() & KEYED) != 0;
        return Optional.of(new Sealed(created, partition, keyed));
    }

    private static byte[] seal(Mac mac, byte[] raw, String tenant) {
        mac.update(raw, 0, 16);
        return mac.doFinal(tenant.getBytes(StandardCharsets.UTF_8));
    }
}
