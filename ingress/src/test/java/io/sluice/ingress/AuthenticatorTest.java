package io.sluice.ingress;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.JWSSigner;
import com.nimbusds.jose.PlainHeader;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jose.crypto.MACSigner;
import com.nimbusds.jose.crypto.RSASSASigner;
import com.nimbusds.jose.jwk.Curve;
import com.nimbusds.jose.jwk.ECKey;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.RSAKey;
import com.nimbusds.jose.jwk.gen.ECKeyGenerator;
import com.nimbusds.jose.jwk.gen.RSAKeyGenerator;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.PlainJWT;
import com.nimbusds.jwt.SignedJWT;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Date;
import java.util.List;
import java.util.Map;
import io.sluice.testkit.MutableClock;
import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The authentication matrix: every way a token can be right or wrong, for each algorithm. */
class AuthenticatorTest {
    static final String SECRET = "auth-matrix-secret-0123456789abcdefghijkl";
    static RSAKey rsa;
    static ECKey ec;
    static RSAKey stranger;

    @BeforeAll
    static void keys() throws Exception {
        rsa = new RSAKeyGenerator(2048).keyID("rsa-1").generate();
        ec = new ECKeyGenerator(Curve.P_256).keyID("ec-1").generate();
        stranger = new RSAKeyGenerator(2048).keyID("rsa-1").generate();
    }

    static JWTClaimsSet.Builder claims() {
        Instant now = Instant.now();
        return new JWTClaimsSet.Builder().subject("alice").audience("sluice").issuer("https://issuer.example")
                .claim("tenant", "acme").claim("scope", "infer dlq:read")
                .notBeforeTime(Date.from(now.minusSeconds(5))).expirationTime(Date.from(now.plusSeconds(300)));
    }

    static String sign(JWSAlgorithm alg, JWSSigner signer, String kid, JWTClaimsSet claims) throws Exception {
        SignedJWT jwt = new SignedJWT(new JWSHeader.Builder(alg).keyID(kid).build(), claims);
        jwt.sign(signer);
        return jwt.serialize();
    }

    static Authenticator authenticator(@SuppressWarnings("unused") Path dir, String issuer) {
        return new Authenticator(SECRET, List.of(rsa.toPublicJWK(), ec.toPublicJWK()), "sluice", issuer, Duration.ofSeconds(30));
    }

    @Test
    void validTokensOfEveryAlgorithmAuthenticateWithTheirTenantAndScopes(@TempDir Path dir) throws Exception {
        Authenticator auth = authenticator(dir, "https://issuer.example");
        for (String token : List.of(
                sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null, claims().build()),
                sign(JWSAlgorithm.RS256, new RSASSASigner(rsa), "rsa-1", claims().build()),
                sign(JWSAlgorithm.ES256, new ECDSASigner(ec), "ec-1", claims().build()))) {
            Authenticator.Principal p = auth.authenticate(token);
            assertThat(p.subject()).isEqualTo("alice");
            assertThat(p.tenant()).isEqualTo("acme");
            assertThat(p.scopes()).containsExactlyInAnyOrder("infer", "dlq:read");
        }
    }

    @Test
    void everyKindOfBadTokenIsRefused(@TempDir Path dir) throws Exception {
        Authenticator auth = authenticator(dir, "https://issuer.example");
        Instant now = Instant.now();
        MACSigner hs = new MACSigner(SECRET.getBytes());
        Map<String, String> bad = Map.ofEntries(
                Map.entry("expired", sign(JWSAlgorithm.HS256, hs, null,
                        claims().expirationTime(Date.from(now.minusSeconds(120))).build())),
                Map.entry("not yet valid", sign(JWSAlgorithm.HS256, hs, null,
                        claims().notBeforeTime(Date.from(now.plusSeconds(120))).build())),
                Map.entry("wrong audience", sign(JWSAlgorithm.HS256, hs, null, claims().audience("other").build())),
                Map.entry("wrong issuer", sign(JWSAlgorithm.HS256, hs, null, claims().issuer("https://evil.example").build())),
                Map.entry("no tenant", sign(JWSAlgorithm.HS256, hs, null, claims().claim("tenant", null).build())),
                Map.entry("empty tenant", sign(JWSAlgorithm.HS256, hs, null, claims().claim("tenant", "").build())),
                // Its keys could be another tenant's: acme:k with key z and acme with business_id k,
                // op k, version z are both acme:k:k:z.
                Map.entry("tenant with a colon", sign(JWSAlgorithm.HS256, hs, null, claims().claim("tenant", "acme:k").build())),
                Map.entry("no expiry", sign(JWSAlgorithm.HS256, hs, null, claims().expirationTime(null).build())),
                Map.entry("wrong secret", sign(JWSAlgorithm.HS256, new MACSigner("x".repeat(40).getBytes()), null,
                        claims().build())),
                Map.entry("unknown RSA key", sign(JWSAlgorithm.RS256, new RSASSASigner(stranger), "rsa-1", claims().build())),
                Map.entry("unsigned", new PlainJWT(new PlainHeader(), claims().build()).serialize()),
                Map.entry("garbage", "not.a.jwt"),
                Map.entry("empty", ""));
        bad.forEach((what, token) -> assertThatThrownBy(() -> auth.authenticate(token)).as(what)
                .isInstanceOf(Authenticator.Unauthorized.class));
        // A tampered payload: same header and signature, another tenant.
        String good = sign(JWSAlgorithm.HS256, hs, null, claims().build());
        String[] parts = good.split("\\.");
        String forged = parts[0] + "." + Base64.getUrlEncoder().withoutPadding().encodeToString(
                claims().claim("tenant", "globex").build().toString().getBytes()) + "." + parts[2];
        assertThatThrownBy(() -> auth.authenticate(forged)).isInstanceOf(Authenticator.Unauthorized.class);
    }

    @Test
    void aSmallClockSkewIsTolerated(@TempDir Path dir) throws Exception {
        Authenticator auth = authenticator(dir, null);
        Instant now = Instant.now();
        String justExpired = sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null,
                claims().expirationTime(Date.from(now.minusSeconds(10))).build());
        String almostValid = sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null,
                claims().notBeforeTime(Date.from(now.plusSeconds(10))).build());
        assertThat(auth.authenticate(justExpired).tenant()).isEqualTo("acme");
        assertThat(auth.authenticate(almostValid).tenant()).isEqualTo("acme");
    }

    @Test
    void keysComeFromJwksAndPemFilesNamedInTheConfig(@TempDir Path dir) throws Exception {
        Path jwks = dir.resolve("keys.json");
        Files.writeString(jwks, new JWKSet(List.of(rsa.toPublicJWK())).toString());
        Path pem = dir.resolve("ec.pem");
        Files.writeString(pem, "-----BEGIN PUBLIC KEY-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes()).encodeToString(ec.toECPublicKey().getEncoded())
                + "\n-----END PUBLIC KEY-----\n");
        GatewayConfig config = new GatewayConfig(Map.of(GatewayConfig.JWT_JWKS_FILE, jwks.toString(),
                GatewayConfig.JWT_PUBLIC_KEY_FILE, pem.toString()));
        Authenticator auth = config.authenticator();
        assertThat(auth.authenticate(sign(JWSAlgorithm.RS256, new RSASSASigner(rsa), "rsa-1", claims().build())).tenant())
                .isEqualTo("acme");
        assertThat(auth.authenticate(sign(JWSAlgorithm.ES256, new ECDSASigner(ec), "ec-1", claims().build())).tenant())
                .isEqualTo("acme");
        assertThatThrownBy(() -> auth.authenticate(sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null,
                claims().build()))).as("no HS256 secret configured").isInstanceOf(Authenticator.Unauthorized.class);
    }

    @Test
    void aGatewayWithoutAnyKeyOrWithAShortSecretFailsAtStartNamingTheKey() {
        assertThatThrownBy(() -> new GatewayConfig(Map.of())).isInstanceOf(ConfigException.class)
                .hasMessageContaining(GatewayConfig.JWT_SECRET);
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, "short")))
                .isInstanceOf(ConfigException.class).hasMessageContaining(GatewayConfig.JWT_SECRET);
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_JWKS_FILE, "/nonexistent.json")).authenticator())
                .isInstanceOf(ConfigException.class).hasMessageContaining(GatewayConfig.JWT_JWKS_FILE);
    }

    /** Claims valid from {@code now - 5 s} until {@code now + ttl}, at second resolution as JWTs carry them. */
    static JWTClaimsSet claimsAt(Instant now, Duration ttl) {
        return claims().notBeforeTime(Date.from(now.minusSeconds(5))).expirationTime(Date.from(now.plus(ttl))).build();
    }

    @Test
    void aRememberedTokenIsStillRefusedOnceItExpires() throws Exception {
        MutableClock clock = new MutableClock(Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS));
        Authenticator auth = new Authenticator(SECRET, List.of(rsa.toPublicJWK()), "sluice", null, Duration.ofSeconds(30), 100,
                clock);
        for (String token : List.of(sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null,
                        claimsAt(clock.instant(), Duration.ofSeconds(60))),
                sign(JWSAlgorithm.RS256, new RSASSASigner(rsa), "rsa-1", claimsAt(clock.instant(), Duration.ofSeconds(60))))) {
            Instant start = clock.instant();
            assertThat(auth.authenticate(token).tenant()).isEqualTo("acme");
            // Within exp plus the skew: still valid, from memory.
            clock.set(start.plusSeconds(60 + 29));
            long hits = auth.cacheHits();
            assertThat(auth.authenticate(token).tenant()).isEqualTo("acme");
            assertThat(auth.cacheHits()).isEqualTo(hits + 1);
            clock.set(start.plusSeconds(60 + 31));
            assertThatThrownBy(() -> auth.authenticate(token)).isInstanceOf(Authenticator.Unauthorized.class)
                    .hasMessageContaining("xpired");
            clock.set(start);
        }
        assertThat(auth.cachedTokens()).isEqualTo(2);
    }

    @Test
    void aTokenChangedInAnyPartIsVerifiedAnewWhileTheOriginalIsRemembered() throws Exception {
        Authenticator auth = authenticator(null, null);
        MACSigner hs = new MACSigner(SECRET.getBytes());
        String good = sign(JWSAlgorithm.HS256, hs, null, claims().build());
        assertThat(auth.authenticate(good).tenant()).isEqualTo("acme");
        assertThat(auth.cachedTokens()).isEqualTo(1);
        String[] parts = good.split("\\.");
        String otherTenant = Base64.getUrlEncoder().withoutPadding().encodeToString(
                claims().claim("tenant", "globex").build().toString().getBytes());
        // A character in the middle: the last one of a signature also carries padding bits.
        char mid = parts[2].charAt(10);
        for (String forged : List.of(parts[0] + "." + otherTenant + "." + parts[2],
                parts[0] + "." + parts[1] + "." + parts[2].substring(0, 10) + (mid == 'A' ? 'B' : 'A') + parts[2].substring(11),
                good + "x")) {
            assertThatThrownBy(() -> auth.authenticate(forged)).as(forged).isInstanceOf(Authenticator.Unauthorized.class);
        }
        assertThat(auth.authenticate(good).tenant()).isEqualTo("acme");
        assertThat(auth.cachedTokens()).as("refused tokens are not remembered").isEqualTo(1);
    }

    @Test
    void theCacheHoldsAtMostItsSizeAndNoneWhenOff() throws Exception {
        MACSigner hs = new MACSigner(SECRET.getBytes());
        List<String> tokens = new java.util.ArrayList<>();
        for (int i = 0; i < 5; i++) {
            tokens.add(sign(JWSAlgorithm.HS256, hs, null, claims().subject("user-" + i).build()));
        }
        Authenticator small = new Authenticator(SECRET, List.of(), "sluice", null, Duration.ofSeconds(30), 3,
                java.time.Clock.systemUTC());
        Authenticator off = new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, SECRET, GatewayConfig.JWT_CACHE_SIZE, 0))
                .authenticator();
        for (String token : tokens) {
            assertThat(small.authenticate(token).subject()).isEqualTo(off.authenticate(token).subject());
        }
        assertThat(small.cachedTokens()).isEqualTo(3);
        assertThat(off.cachedTokens()).isZero();
        // The last three are served from memory; the first two, evicted, verify again in full.
        for (String token : tokens.subList(2, 5)) {
            small.authenticate(token);
        }
        assertThat(small.cacheHits()).isEqualTo(3);
        assertThat(small.authenticate(tokens.get(0)).subject()).isEqualTo("user-0");
        assertThat(small.cacheHits()).isEqualTo(3);
        // A token without nbf is remembered too.
        String noNbf = sign(JWSAlgorithm.HS256, hs, null, claims().notBeforeTime(null).build());
        small.authenticate(noNbf);
        small.authenticate(noNbf);
        assertThat(small.cacheHits()).isEqualTo(4);
    }

    @Test
    void aScopeNamedTwiceIsThatScope(@TempDir Path dir) throws Exception {
        Authenticator auth = authenticator(dir, null);
        Authenticator.Principal p = auth.authenticate(sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null,
                claims().claim("scope", "infer  infer dlq:read").build()));
        assertThat(p.scopes()).containsExactlyInAnyOrder("infer", "dlq:read");
    }

    @Test
    void anEs256TokenFindsItsKeyAmongKeysOfOtherCurves() throws Exception {
        // No alg and no kid on the keys: the header's ES256 must pick the P-256 key, not stop at
        // the P-384 one ahead of it.
        ECKey p384 = new ECKeyGenerator(Curve.P_384).generate();
        ECKey p256 = new ECKeyGenerator(Curve.P_256).generate();
        Authenticator auth = new Authenticator(null, List.of(p384.toPublicJWK(), p256.toPublicJWK()), "sluice", null,
                Duration.ofSeconds(30));
        assertThat(auth.authenticate(sign(JWSAlgorithm.ES256, new ECDSASigner(p256), null, claims().build())).tenant())
                .isEqualTo("acme");
        ECKey other = new ECKeyGenerator(Curve.P_256).generate();
        assertThatThrownBy(() -> auth.authenticate(sign(JWSAlgorithm.ES256, new ECDSASigner(other), null, claims().build())))
                .as("a P-256 key the set does not hold").isInstanceOf(Authenticator.Unauthorized.class);
    }

    @Test
    void aPrincipalKnowsWhenItsTokenStopsCounting() throws Exception {
        MutableClock clock = new MutableClock(Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS));
        Authenticator auth = new Authenticator(SECRET, List.of(), "sluice", null, Duration.ofSeconds(30), 0, clock);
        Instant exp = clock.instant().plusSeconds(60);
        Authenticator.Principal p = auth.authenticate(sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null,
                claims().notBeforeTime(null).expirationTime(Date.from(exp)).build()));
        // As the handshake's check: exp give or take the skew.
        assertThat(p.expiredAt(exp.plusSeconds(29).toEpochMilli())).isFalse();
        assertThat(p.expiredAt(exp.plusSeconds(30).toEpochMilli())).isTrue();
        clock.set(exp.plusSeconds(29));
        assertThat(auth.authenticate(sign(JWSAlgorithm.HS256, new MACSigner(SECRET.getBytes()), null,
                claims().notBeforeTime(null).expirationTime(Date.from(exp)).build())).tenant()).isEqualTo("acme");
    }

    @Test
    void theSkewIsWholeSecondsAndClientCertificatesNeedTheirCa() {
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, SECRET, GatewayConfig.JWT_CLOCK_SKEW_MS,
                "999"))).isInstanceOf(ConfigException.class).hasMessageContaining(GatewayConfig.JWT_CLOCK_SKEW_MS)
                .hasMessageContaining("whole number of seconds");
        assertThat(new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, SECRET, GatewayConfig.JWT_CLOCK_SKEW_MS, "5000"))
                .getLong(GatewayConfig.JWT_CLOCK_SKEW_MS)).isEqualTo(5000);
        for (String mode : List.of("want", "need")) {
            assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, SECRET, GatewayConfig.TLS_CLIENT_AUTH,
                    mode))).as(mode).isInstanceOf(ConfigException.class).hasMessageContaining(GatewayConfig.TLS_CLIENT_CA_FILE);
        }
    }
}
