package io.sluice.ingress.internal;

/**
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed pseudorandom function for short inputs with
 * a 128-bit key and a 64-bit result, made to authenticate short messages such as a request id
 * and its tenant. It seals ids in a few dozen nanoseconds where HMAC-SHA256, truncated to the
 * same 64 bits, ran four SHA-256 compressions through the JCA for each request.
 *
 * <p>Immutable and allocation-free: {@link #hash} reads the message where it lies. The
 * rounds are written out because this is the accept path of every request; the tests check them
 * against the paper's vectors and another implementation.
 */
final class SipHash {
    private final long k0;
    private final long k1;

    /** @param key 16 bytes; the two words are read little-endian, as the reference reads them */
    SipHash(byte[] key) {
        if (key.length != 16) {
            throw new IllegalArgumentException("SipHash takes a 16-byte key, not " + key.length);
        }
        this.k0 = word(key, 0);
        this.k1 = word(key, 8);
    }

    /** SipHash-2-4 of {@code message[0..length)}. */
    long hash(byte[] message, int length) {
        long v0 = k0 ^ 0x736f6d6570736575L;
        long v1 = k1 ^ 0x646f72616e646f6dL;
        long v2 = k0 ^ 0x6c7967656e657261L;
        long v3 = k1 ^ 0x7465646279746573L;
        int whole = length & ~7;
        for (int i = 0; i < whole; i += 8) {
            long m = word(message, i);
            v3 ^= m;
            for (int r = 0; r < 2; r++) {
                v0 += v1; v1 = Long.rotateLeft(v1, 13); v1 ^= v0; v0 = Long.rotateLeft(v0, 32);
                v2 += v3; v3 = Long.rotateLeft(v3, 16); v3 ^= v2;
                v0 += v3; v3 = Long.rotateLeft(v3, 21); v3 ^= v0;
                v2 += v1; v1 = Long.rotateLeft(v1, 17); v1 ^= v2; v2 = Long.rotateLeft(v2, 32);
            }
            v0 ^= m;
        }
        long last = ((long) length & 0xFF) << 56;
        for (int i = whole; i < length; i++) {
            last |= (message[i] & 0xFFL) << (8 * (i - whole));
        }
        v3 ^= last;
        for (int r = 0; r < 2; r++) {
            v0 += v1; v1 = Long.rotateLeft(v1, 13); v1 ^= v0; v0 = Long.rotateLeft(v0, 32);
            v2 += v3; v3 = Long.rotateLeft(v3, 16); v3 ^= v2;
            v0 += v3; v3 = Long.rotateLeft(v3, 21); v3 ^= v0;
            v2 += v1; v1 = Long.rotateLeft(v1, 17); v1 ^= v2; v2 = Long.rotateLeft(v2, 32);
        }
        v0 ^= last;
        v2 ^= 0xFF;
        for (int r = 0; r < 4; r++) {
            v0 += v1; v1 = Long.rotateLeft(v1, 13); v1 ^= v0; v0 = Long.rotateLeft(v0, 32);
            v2 += v3; v3 = Long.rotateLeft(v3, 16); v3 ^= v2;
            v0 += v3; v3 = Long.rotateLeft(v3, 21); v3 ^= v0;
            v2 += v1; v1 = Long.rotateLeft(v1, 17); v1 ^= v2; v2 = Long.rotateLeft(v2, 32);
        }
        return v0 ^ v1 ^ v2 ^ v3;
    }

    private static long word(byte[] b, int at) {
        return (b[at] & 0xFFL) | (b[at + 1] & 0xFFL) << 8 | (b[at + 2] & 0xFFL) << 16 | (b[at + 3] & 0xFFL) << 24
                | (b[at + 4] & 0xFFL) << 32 | (b[at + 5] & 0xFFL) << 40 | (b[at + 6] & 0xFFL) << 48
                | (b[at + 7] & 0xFFL) << 56;
    }
}
