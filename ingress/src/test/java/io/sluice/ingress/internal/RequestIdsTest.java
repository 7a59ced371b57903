package io.sluice.ingress.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.ingress.Authenticator;
import io.sluice.ingress.GatewayConfig;
import io.sluice.testkit.MutableClock;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.Test;

class RequestIdsTest {
    static final byte[] SECRET = "request-id-secret-0123456789abcdef".getBytes(StandardCharsets.UTF_8);
    final RequestIds ids = new RequestIds(SECRET, List.of());

    @Test
    void anIdTellsItsOwnTenantWhenItStartedAndWhereItsEventsGo() {
        String id = ids.mint("acme", 1_764_000_000_123L, 7, false);
        assertThat(id).hasSize(32).matches("[A-Za-z0-9_-]+");
        assertThat(ids.open(id, "acme")).contains(new RequestIds.Sealed(1_764_000_000_123L, 7, false));

        String keyed = ids.mint("acme", 5L, -1, true);
        assertThat(ids.open(keyed, "acme")).contains(new RequestIds.Sealed(5L, -1, true));
        assertThat(ids.open(ids.mint("acme", 0xFFFF_FFFF_FFFFL, 0xFFFE, false), "acme"))
                .contains(new RequestIds.Sealed(0xFFFF_FFFF_FFFFL, 0xFFFE, false));
    }

    @Test
    void anotherTenantAChangedIdOrAnotherSecretFindNothing() {
        String id = ids.mint("acme", 1_764_000_000_123L, 2, false);
        assertThat(ids.open(id, "globex")).isEmpty();
        assertThat(ids.open(id, "acme ")).isEmpty();
        byte[] another = "another-secret-0123456789abcdef012".getBytes(StandardCharsets.UTF_8);
        assertThat(new RequestIds(another, List.of()).open(id, "acme"))
                .isEmpty();
        // Changing any character, in the sealed part (time, partition, flags) or in the seal itself, breaks it.
        for (int i = 0; i < id.length(); i++) {
            char c = id.charAt(i);
            String changed = id.substring(0, i) + (c == 'A' ? 'B' : 'A') + id.substring(i + 1);
            assertThat(ids.open(changed, "acme")).as("changed at %d", i).isEmpty();
        }
    }

    @Test
    void afterARotationIdsOfTheEarlierSecretStillOpenAndNewOnesAreSealedWithTheNewOne() {
        byte[] next = "next-secret-0123456789abcdef0123456".getBytes(StandardCharsets.UTF_8);
        String before = ids.mint("acme", 7L, 1, false);
        RequestIds rotated = new RequestIds(next, List.of(SECRET));
        assertThat(rotated.open(before, "acme")).contains(new RequestIds.Sealed(7L, 1, false));
        assertThat(rotated.open(before, "globex")).isEmpty();
        String after = rotated.mint("acme", 8L, 2, true);
        assertThat(new RequestIds(next, List.of()).open(after, "acme")).as("sealed with the new secret only")
                .contains(new RequestIds.Sealed(8L, 2, true));
        assertThat(ids.open(after, "acme")).isEmpty();
        assertThat(new RequestIds(next, List.of()).open(before, "acme")).as("once the earlier secret is dropped").isEmpty();

        String jwt = "jwt-secret-0123456789abcdef0123456789";
        assertThat(new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, jwt)).previousRequestIdKeys()).isEmpty();
        assertThat(new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, jwt, GatewayConfig.REQUEST_ID_PREVIOUS_SECRET,
                new String(SECRET, StandardCharsets.UTF_8))).previousRequestIdKeys()).containsExactly(SECRET);
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, jwt,
                GatewayConfig.REQUEST_ID_PREVIOUS_SECRET, "short"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining(GatewayConfig.REQUEST_ID_PREVIOUS_SECRET);
    }

    @Test
    void idsSealedWithTheEarlierHmacStillOpenAndCannotPassAsTheOtherSeal() throws Exception {
        java.nio.ByteBuffer raw = java.nio.ByteBuffer.allocate(24);
        long created = 1_764_000_000_123L;
        raw.putShort((short) (created >>> 32)).putInt((int) created).putShort((short) (5 + 1)).put((byte) 1);
        raw.put(new byte[] {1, 2, 3, 4, 5, 6, 7});
        javax.crypto.Mac mac = javax.crypto.Mac.getInstance("HmacSHA256");
        mac.init(new javax.crypto.spec.SecretKeySpec(SECRET, "HmacSHA256"));
        mac.update(raw.array(), 0, 16);
        raw.put(mac.doFinal("acme".getBytes(StandardCharsets.UTF_8)), 0, 8);
        java.util.Base64.Encoder b64 = java.util.Base64.getUrlEncoder().withoutPadding();
        String legacy = b64.encodeToString(raw.array());

        assertThat(ids.open(legacy, "acme")).contains(new RequestIds.Sealed(created, 5, true));
        assertThat(ids.open(legacy, "globex")).isEmpty();
        byte[] relabelled = raw.array().clone();
        relabelled[8] |= 2; // claims the SipHash seal for an HMAC one
        assertThat(ids.open(b64.encodeToString(relabelled), "acme")).isEmpty();

        byte[] minted = java.util.Base64.getUrlDecoder().decode(ids.mint("acme", created, 5, true));
        minted[8] &= ~2; // claims the HMAC seal for a SipHash one
        assertThat(ids.open(b64.encodeToString(minted), "acme")).isEmpty();
    }

    @Test
    void aTenantNameOutsideAsciiSealsAndOpensToo() {
        String id = ids.mint("ünïcode-tenant", 9L, 0, false);
        assertThat(ids.open(id, "ünïcode-tenant")).contains(new RequestIds.Sealed(9L, 0, false));
        assertThat(ids.open(id, "unicode-tenant")).isEmpty();
        String longName = "t".repeat(300);
        assertThat(ids.open(ids.mint(longName, 9L, 0, false), longName)).isPresent();
    }

    @Test
    void anythingElseIsNotASealedId() {
        assertThat(RequestIds.isSealed("0b6f5a4e-7c1d-4f3e-9a2b-1c2d3e4f5a6b")).isFalse();
        assertThat(RequestIds.isSealed("nope")).isFalse();
        assertThat(RequestIds.isSealed(null)).isFalse();
        assertThat(RequestIds.isSealed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")).isFalse();
        assertThat(ids.open("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "acme")).isEmpty();
    }

    @Test
    void idsOneThreadMintsInARowCarryItsSequenceInBytes12To14() {
        java.util.Base64.Decoder b64 = java.util.Base64.getUrlDecoder();
        int previous = -1;
        for (int i = 0; i < 100; i++) {
            byte[] raw = b64.decode(ids.mint("acme", 42L, 1, false));
            int sequence = (raw[12] & 0xFF) << 16 | (raw[13] & 0xFF) << 8 | raw[14] & 0xFF;
            if (previous >= 0) {
                assertThat(sequence).isEqualTo((previous + 1) & 0xFF_FFFF);
            }
            previous = sequence;
        }
    }

    @Test
    void idsMintedInTheSameMillisecondDiffer() {
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < 200_000; i++) {
            seen.add(ids.mint("acme", 42L, 1, false));
        }
        assertThat(seen).hasSize(200_000);
    }

    @Test
    void gatewaysWithTheSameJwtSecretShareTheKeyAndAPublicKeyOnlyGatewayMustBeGivenOne() {
        String jwt = "jwt-secret-0123456789abcdef0123456789";
        byte[] a = new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, jwt)).requestIdKey();
        byte[] b = new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, jwt)).requestIdKey();
        assertThat(a).isEqualTo(b).isNotEqualTo(jwt.getBytes(StandardCharsets.UTF_8));
        assertThat(new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, jwt, GatewayConfig.REQUEST_ID_SECRET,
                "explicit-secret-0123456789abcdef0123")).requestIdKey()).isNotEqualTo(a);

        GatewayConfig publicKeysOnly = new GatewayConfig(Map.of(GatewayConfig.JWT_JWKS_FILE, "/keys.json"));
        assertThatThrownBy(publicKeysOnly::requestIdKey).isInstanceOf(ConfigException.class)
                .hasMessageContaining(GatewayConfig.REQUEST_ID_SECRET);
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, jwt, GatewayConfig.REQUEST_ID_SECRET,
                "short"))).isInstanceOf(ConfigException.class).hasMessageContaining(GatewayConfig.REQUEST_ID_SECRET);
    }

    @Test
    void aRequestIsFoundByItsTenantUntilTheAttachRetentionHasPassedWithoutAskingRedis() throws Exception {
        // No registry at all (null): an unkeyed request is submitted and found from its id alone,
        // which is what keeps attach and status working while Redis is down.
        MutableClock clock = new MutableClock(Instant.parse("2026-11-22T10:00:00Z"));
        RequestSubmitter submitter = new RequestSubmitter(new GenerateParser(1000, 100), null, "requests", null,
                Duration.ofHours(1), Duration.ofMinutes(10), Duration.ofSeconds(30), new TenantLimits(10, 100, System::nanoTime), clock, () -> 3, ids);
        try {
            Authenticator.Principal alice = new Authenticator.Principal("alice", "acme", Set.of("infer"));
            ObjectNode generate = Frames.JSON.createObjectNode()
                    .put("type", "generate").put("prompt", "The river");
            RequestSubmitter.Prepared prepared = submitter.prepare(alice, generate);
            String id = prepared.requestId();
            assertThat(prepared.request().getRequestId()).isEqualTo(id);
            assertThat(prepared.request().getTraceId()).isEqualTo(id);
            assertThat(prepared.request().getReplyPartition()).isEqualTo(3);
            assertThat(prepared.indexed()).as("an unkeyed request needs no index entry").isDone();

            assertThat(submitter.find(id, "acme")).hasValueSatisfying(f -> {
                assertThat(f.createdAtMillis()).isEqualTo(clock.millis());
                assertThat(f.replyPartition()).isEqualTo(3);
                assertThat(f.keyed()).isFalse();
            });
            assertThat(submitter.find(id, "globex")).isEmpty();
            clock.advance(Duration.ofMinutes(10));
            assertThat(submitter.find(id, "acme")).isPresent();
            clock.advance(Duration.ofMillis(1));
            assertThat(submitter.find(id, "acme")).as("past the attach retention").isEmpty();
        } finally {
            submitter.close();
        }
    }
}
