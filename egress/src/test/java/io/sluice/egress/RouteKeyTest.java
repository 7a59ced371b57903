package io.sluice.egress;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Base64;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RouteKeyTest {
    /** A 24-byte id as a gateway lays it out, with {@code sequence} in bytes 12 to 14. */
    static String id(int sequence, byte fill) {
        byte[] raw = new byte[24];
        java.util.Arrays.fill(raw, fill);
        raw[12] = (byte) (sequence >>> 16);
        raw[13] = (byte) (sequence >>> 8);
        raw[14] = (byte) sequence;
        return Base64.getUrlEncoder().withoutPadding().encodeToString(raw);
    }

    @Test
    void idsMintedOneAfterAnotherHashToNeighbouringValues() {
        int start = 0xFFFF_F0; // across the wrap of the 3-byte sequence, too
        for (int n = 0; n < 32; n++) {
            int sequence = (start + n) & 0xFF_FFFF;
            assertThat(TokenRouter.RouteKey.hashOf(id(sequence, (byte) 7))).as("sequence %d", sequence).isEqualTo(sequence);
        }
    }

    @Test
    void keysAreEqualExactlyWhenTheirIdsAre() {
        String a = id(5, (byte) 1);
        String b = id(5, (byte) 2); // same sequence, another id: same hash, not equal
        assertThat(new TokenRouter.RouteKey(a)).isEqualTo(new TokenRouter.RouteKey(new String(a.toCharArray())))
                .hasSameHashCodeAs(new TokenRouter.RouteKey(a));
        assertThat(new TokenRouter.RouteKey(a)).isNotEqualTo(new TokenRouter.RouteKey(b));
        assertThat(new TokenRouter.RouteKey(a).hashCode()).isEqualTo(new TokenRouter.RouteKey(b).hashCode());
    }

    @Test
    void idsOfAnotherShapeHashAsStrings() {
        Set<Integer> hashes = new HashSet<>();
        for (int i = 0; i < 1000; i++) {
            String producerChosen = "order-" + i;
            assertThat(TokenRouter.RouteKey.hashOf(producerChosen)).isEqualTo(producerChosen.hashCode());
            hashes.add(TokenRouter.RouteKey.hashOf(producerChosen));
        }
        assertThat(hashes).hasSize(1000);
        // 32 characters outside base64url still hash, deterministically.
        String odd = "!".repeat(32);
        assertThat(TokenRouter.RouteKey.hashOf(odd)).isEqualTo(TokenRouter.RouteKey.hashOf(new String(odd.toCharArray())));
    }
}
