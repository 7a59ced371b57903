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
 * milliseconds (6 bytes), reply partition + 1 (2 bytes, 0 for none), flags (1 byte), 3 random
 * bytes, a 3-byte sequence of the minting thread, 1 random byte, then an 8-byte seal over the
 * first 16 bytes and the tenant (UTF-8). New ids are sealed with SipHash-2-4 under a key
 * derived from the secret, and say so in their flags; ids sealed
 * before that carry the first 8 bytes of HMAC-SHA256(secret, the first 16 bytes, tenant) and are
 * still opened. The flags are inside what either seal covers, so one kind of seal cannot be
 * passed off as the other.
 *
 * <p>The sequence makes the ids one thread mints in a row differ in their 17th to 20th
 * characters by one: the token router hashes its map of followed requests on those characters
 * ({@code TokenRouter}), so the streams subscribed one after another sit side by side in its
 * table instead of each costing a cache miss at a random slot. Uniqueness does not rest on it:
 * the creation time, the partition and 32 random bits still tell ids apart.
 */
public final class RequestIds {
    static final int LENGTH = 32;
    private static final int KEYED = 1;
    /** Sealed with SipHash-2-4 rather than truncated HMAC-SHA256. */
    private static final int SIPHASH = 2;
    /** What the SipHash key of a secret is derived for, so it is never the secret itself. */
    private static final byte[] SIPHASH_KEY_LABEL = "sluice request id seal, SipHash-2-4".getBytes(StandardCharsets.UTF_8);
    /** Per thread: room for the sealed bytes and a tenant name, and the thread's sequence. */
    private static final class Minting {
        final byte[] scratch = new byte[16 + 256];
        /** The id's bytes, then its text: the one array a new id needs is its string's own. */
        final ByteBuffer raw = ByteBuffer.allocate(24);
        final byte[] text = new byte[LENGTH];
        /** Starts anywhere, so threads and gateways follow apart in the router's table. */
        int sequence = ThreadLocalRandom.current().nextInt();
    }

    private static final ThreadLocal<Minting> MINTING = ThreadLocal.withInitial(Minting::new);
    private static final Base64.Encoder ENCODER = Base64.getUrlEncoder().withoutPadding();
    private static final Base64.Decoder DECODER = Base64.getUrlDecoder();

    /** What an id says about its request, once its seal checked out for the asking tenant. */
    public record Sealed(long createdAtMillis, int replyPartition, boolean keyed) {
    }

    /** Per thread: a Mac for the current key, then one for each earlier key still accepted. */
    private final ThreadLocal<Mac[]> macs;
    /** The SipHash keys of the same secrets, in the same order. */
    private final SipHash[] sips;

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
        Mac[] derive = macs.get();
        this.sips = new SipHash[derive.length];
        for (int i = 0; i < derive.length; i++) {
            sips[i] = new SipHash(java.util.Arrays.copyOf(derive[i].doFinal(SIPHASH_KEY_LABEL), 16));
        }
    }

    /** A new id for a request of {@code tenant}; {@code replyPartition} is -1 for none. */
    public String mint(String tenant, long createdAtMillis, int replyPartition, boolean keyed) {
        if (replyPartition < -1 || replyPartition > 0xFFFE) {
            throw new IllegalArgumentException("reply partition out of range: " + replyPartition);
        }
        Minting m = MINTING.get();
        ByteBuffer b = m.raw.clear();
        b.putShort((short) (createdAtMillis >>> 32)).putInt((int) createdAtMillis);
        b.putShort((short) (replyPartition + 1));
        b.put((byte) (SIPHASH | (keyed ? KEYED : 0)));
        int random = ThreadLocalRandom.current().nextInt();
        int sequence = m.sequence++;
        b.put((byte) random).put((byte) (random >>> 8)).put((byte) (random >>> 16));
        b.put((byte) (sequence >>> 16)).put((byte) (sequence >>> 8)).put((byte) sequence);
        b.put((byte) (random >>> 24));
        b.putLong(seal(sips[0], m.scratch, b.array(), tenant));
        ENCODER.encode(b.array(), m.text);
        return new String(m.text, StandardCharsets.ISO_8859_1);
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
        if ((raw[8] & SIPHASH) != 0) {
            byte[] scratch = MINTING.get().scratch;
            for (SipHash sip : sips) {
                byte[] expected = ByteBuffer.allocate(8).putLong(seal(sip, scratch, raw, tenant)).array();
                sealed |= MessageDigest.isEqual(presented, expected);
            }
        } else {
            for (Mac mac : macs.get()) {
                sealed |= MessageDigest.isEqual(presented, java.util.Arrays.copyOf(seal(mac, raw, tenant), 8));
            }
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

    /** SipHash-2-4 of the first 16 bytes of {@code raw} and the tenant's name in UTF-8. */
    private static long seal(SipHash sip, byte[] scratch, byte[] raw, String tenant) {
        int n = tenant.length();
        byte[] message = scratch;
        boolean ascii = n <= message.length - 16;
        for (int i = 0; ascii && i < n; i++) {
            char c = tenant.charAt(i);
            ascii = c < 0x80;
            message[16 + i] = (byte) c;
        }
        if (!ascii) {
            byte[] utf8 = tenant.getBytes(StandardCharsets.UTF_8);
            message = new byte[16 + utf8.length];
            System.arraycopy(utf8, 0, message, 16, utf8.length);
            n = utf8.length;
        }
        System.arraycopy(raw, 0, message, 0, 16);
        return sip.hash(message, 16 + n);
    }

    /** The earlier seal: HMAC-SHA256 of the same bytes. */
    private static byte[] seal(Mac mac, byte[] raw, String tenant) {
        mac.update(raw, 0, 16);
        return mac.doFinal(tenant.getBytes(StandardCharsets.UTF_8));
    }
}
