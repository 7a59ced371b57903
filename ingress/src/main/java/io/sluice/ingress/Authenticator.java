package io.sluice.ingress;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.MACSigner;
import com.nimbusds.jose.jwk.JWK;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.OctetSequenceKey;
import com.nimbusds.jose.proc.BadJOSEException;
import com.nimbusds.jose.proc.JWSVerificationKeySelector;
import com.nimbusds.jose.proc.SecurityContext;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import com.nimbusds.jwt.proc.DefaultJWTClaimsVerifier;
import com.nimbusds.jwt.proc.DefaultJWTProcessor;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.ParseException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Set;

/**
 * Checks client JWTs at the handshake: the signature (HS256 with a shared secret; RS256 or ES256
 * with public keys from a JWKS file or a PEM file), {@code exp} and {@code nbf} with a small
 * clock skew, {@code aud}, {@code iss} when one is configured, and the {@code sub} and
 * {@code tenant} claims. Scopes come from the space-separated {@code scope} claim, as OAuth 2
 * writes them. Unsigned tokens ({@code alg: none}) are never accepted.
 *
 * <p>A token that verified is remembered, up to {@code cacheSize} of them, least recently used
 * first out: the sockets of one client, and every client reconnecting after a gateway went away,
 * present the same token again and again, and checking an RS256 or ES256 signature costs far more
 * than the rest of a handshake. Only the exact token string is remembered, so a token differing
 * in any byte (its signature included) is verified anew; a remembered one still has its
 * {@code exp} and {@code nbf} checked, with the same skew, against the time of each use. The keys
 * are fixed for the authenticator's life, so what verified once verifies again.
 */
public final class Authenticator {
    /**
     * Who is on the other end of a socket. {@code validUntilMillis} is the token's {@code exp}
     * plus the clock skew: from then on the token no longer counts.
     */
    public record Principal(String subject, String tenant, Set<String> scopes, long validUntilMillis) {
        /** A principal whose token never expires (tests, tools). */
        public Principal(String subject, String tenant, Set<String> scopes) {
            this(subject, tenant, scopes, Long.MAX_VALUE);
        }

        public boolean may(String scope) {
            return scopes.contains(scope);
        }

        /** Whether the token has expired at {@code nowMillis}, as the handshake's check would find. */
        public boolean expiredAt(long nowMillis) {
            return nowMillis >= validUntilMillis;
        }
    }

    /** The token was missing, malformed, badly signed, expired, not yet valid or for another audience or issuer. */
    public static final class Unauthorized extends Exception {
        private static final long serialVersionUID = 1L;

        Unauthorized(String message) {
            super(message);
        }
    }

    private final DefaultJWTProcessor<SecurityContext> processor = new DefaultJWTProcessor<>();
    private final Clock clock;
    private final long skewMillis;
    private final Verified cache;
    private final byte[] secret;
    private final String audience;
    private final String issuer;

    /**
     * @param hs256Secret shared secret for HS256, or null
     * @param publicKeys RS256/ES256 verification keys (from a JWKS or PEM file), possibly empty
     * @param issuer required {@code iss}, or null to accept any
     */
    public Authenticator(String hs256Secret, List<JWK> publicKeys, String audience, String issuer, Duration clockSkew) {
        this(hs256Secret, publicKeys, audience, issuer, clockSkew, DEFAULT_CACHE_SIZE, Clock.systemUTC());
    }

    /** Tokens remembered after they verified, unless configured otherwise. */
    public static final int DEFAULT_CACHE_SIZE = 10_000;

    /**
     * @param cacheSize verified tokens remembered; 0 verifies every token in full
     * @param clock the time {@code exp} and {@code nbf} are checked against
     */
    public Authenticator(String hs256Secret, List<JWK> publicKeys, String audience, String issuer, Duration clockSkew,
            int cacheSize, Clock clock) {
        if (cacheSize < 0) {
            throw new IllegalArgumentException("cache size must not be negative: " + cacheSize);
        }
        this.clock = clock;
        // Whole seconds, as the claims verifier below takes it.
        this.skewMillis = clockSkew.toSeconds() * 1000;
        this.cache = new Verified(cacheSize);
        this.secret = hs256Secret == null ? null : hs256Secret.getBytes(StandardCharsets.UTF_8);
        this.audience = audience;
        this.issuer = issuer == null || issuer.isBlank() ? null : issuer;
        List<JWK> keys = new ArrayList<>(publicKeys);
        if (secret != null) {
            keys.add(new OctetSequenceKey.Builder(secret).build());
        }
        if (keys.isEmpty()) {
            throw new IllegalArgumentException("no key to verify tokens with");
        }
        JWKSet set = new JWKSet(keys);
        // A key from a PEM file has no kid; let it verify tokens whose header names one, as long as
        // no key with that very kid exists.
        com.nimbusds.jose.jwk.source.JWKSource<SecurityContext> source = (selector, context) -> {
            List<JWK> found = selector.select(set);
            if (!found.isEmpty()) {
                return found;
            }
            com.nimbusds.jose.jwk.JWKMatcher anyKid = new com.nimbusds.jose.jwk.JWKMatcher.Builder(selector.getMatcher())
                    .keyIDs((Set<String>) null).build();
            return new com.nimbusds.jose.jwk.JWKSelector(anyKid).select(set).stream().filter(k -> k.getKeyID() == null).toList();
        };
        JWSVerificationKeySelector<SecurityContext> byHeader = new JWSVerificationKeySelector<>(
                Set.of(JWSAlgorithm.HS256, JWSAlgorithm.RS256, JWSAlgorithm.ES256), source);
        // The header's alg picks EC keys by type, not by curve, and the processor stops at the first
        // key that cannot verify: a P-384 key ahead of the P-256 one would fail every ES256 token.
        processor.setJWSKeySelector((header, context) -> byHeader.selectJWSKeys(header, context).stream()
                .filter(k -> !(k instanceof java.security.interfaces.ECPublicKey ec)
                        || com.nimbusds.jose.jwk.Curve.forJWSAlgorithm(header.getAlgorithm())
                                .contains(com.nimbusds.jose.jwk.Curve.forECParameterSpec(ec.getParams())))
                .toList());
        JWTClaimsSet exact = this.issuer == null ? null : new JWTClaimsSet.Builder().issuer(this.issuer).build();
        DefaultJWTClaimsVerifier<SecurityContext> verifier = new DefaultJWTClaimsVerifier<>(Set.of(audience), exact,
                Set.of("sub", "exp", "tenant"), null) {
            @Override
            protected Date currentTime() {
                return Date.from(clock.instant());
            }
        };
        verifier.setMaxClockSkew((int) clockSkew.toSeconds());
        processor.setJWTClaimsSetVerifier(verifier);
    }

    /** An HS256-only authenticator, as `sluice dev` runs it. */
    public Authenticator(String hs256Secret, String audience) {
        this(hs256Secret, List.of(), audience, null, Duration.ofSeconds(30));
    }

    /** The verification keys in a JWKS file (public keys only are kept). */
    public static List<JWK> jwksFile(Path file) throws IOException {
        try {
            return JWKSet.load(file.toFile()).toPublicJWKSet().getKeys();
        } catch (ParseException e) {
            throw new IOException("Not a JWKS file: " + file + " (" + e.getMessage() + ")", e);
        }
    }

    /** The public key in a PEM file ({@code -----BEGIN PUBLIC KEY-----}, RSA or EC), read with the JDK alone. */
    public static List<JWK> pemFile(Path file) throws IOException {
        String pem = Files.readString(file);
        int begin = pem.indexOf("-----BEGIN PUBLIC KEY-----");
        int end = pem.indexOf("-----END PUBLIC KEY-----");
        if (begin < 0 || end < begin) {
            throw new IOException("Not a PEM public key (no BEGIN/END PUBLIC KEY): " + file);
        }
        byte[] der = java.util.Base64.getMimeDecoder().decode(pem.substring(begin + 26, end));
        var spec = new java.security.spec.X509EncodedKeySpec(der);
        try {
            var key = java.security.KeyFactory.getInstance("RSA").generatePublic(spec);
            return List.of(new com.nimbusds.jose.jwk.RSAKey.Builder((java.security.interfaces.RSAPublicKey) key).build());
        } catch (java.security.GeneralSecurityException notRsa) {
            try {
                var key = (java.security.interfaces.ECPublicKey) java.security.KeyFactory.getInstance("EC").generatePublic(spec);
                return List.of(new com.nimbusds.jose.jwk.ECKey.Builder(
                        com.nimbusds.jose.jwk.Curve.forECParameterSpec(key.getParams()), key).build());
            } catch (java.security.GeneralSecurityException notEc) {
                throw new IOException("Not an RSA or EC public key: " + file, notEc);
            }
        }
    }

    public Principal authenticate(String token) throws Unauthorized {
        if (token == null || token.isBlank()) {
            throw new Unauthorized("missing bearer token");
        }
        long now = clock.millis();
        Verified.Entry known = cache.get(token);
        if (known != null && known.validAt(now, skewMillis)) {
            return known.principal();
        }
        // Unknown, or remembered but outside its validity now: the full check says why.
        try {
            JWTClaimsSet claims = processor.process(token, null);
            String scope = claims.getStringClaim("scope");
            // copyOf, not of: a scope named twice is still that scope, not a malformed token.
            Set<String> scopes = scope == null || scope.isBlank() ? Set.of()
                    : Set.copyOf(java.util.Arrays.asList(scope.trim().split("\\s+")));
            String tenant = claims.getStringClaim("tenant");
            // ':' separates the parts of an idempotency key (tenant:k:key, tenant:business_id:op:version):
            // a tenant holding one could build another tenant's key and see or join its request.
            if (tenant.isEmpty() || tenant.indexOf(':') >= 0) {
                throw new Unauthorized("invalid token: tenant must be non-empty and must not contain ':'");
            }
            long exp = claims.getExpirationTime().getTime();
            Principal principal = new Principal(claims.getSubject(), tenant, scopes,
                    exp > Long.MAX_VALUE - skewMillis ? Long.MAX_VALUE : exp + skewMillis);
            Date nbf = claims.getNotBeforeTime();
            cache.put(token, new Verified.Entry(principal, exp,
                    nbf == null ? Long.MIN_VALUE : nbf.getTime()));
            return principal;
        } catch (ParseException | BadJOSEException | JOSEException e) {
            throw new Unauthorized("invalid token: " + e.getMessage());
        }
    }

    /** Tokens that verified: a bounded map, least recently used first out. */
    private static final class Verified {
        /** What a token verified to, and the times it is valid between. */
        record Entry(Principal principal, long expiresAtMillis, long notBeforeMillis) {
            /** As the claims verifier decides: {@code exp} after, {@code nbf} before, now, each give or take the skew. */
            boolean validAt(long now, long skew) {
                return now - skew < expiresAtMillis && now + skew > notBeforeMillis;
            }
        }

        private final int capacity;
        private final java.util.LinkedHashMap<String, Entry> entries;
        private long hits;

        Verified(int capacity) {
            this.capacity = capacity;
            this.entries = new java.util.LinkedHashMap<>(16, 0.75f, true) {
                private static final long serialVersionUID = 1L;

                @Override
                protected boolean removeEldestEntry(java.util.Map.Entry<String, Entry> eldest) {
                    return size() > Verified.this.capacity;
                }
            };
        }

        synchronized Entry get(String token) {
            Entry e = capacity == 0 ? null : entries.get(token);
            if (e != null) {
                hits++;
            }
            return e;
        }

        synchronized long hits() {
            return hits;
        }

        synchronized void put(String token, Entry entry) {
            if (capacity > 0) {
                entries.put(token, entry);
            }
        }

        synchronized int size() {
            return entries.size();
        }
    }

    /** Verified tokens remembered now. */
    public int cachedTokens() {
        return cache.size();
    }

    /** Tokens presented that were found remembered (whether or not still within their validity). */
    public long cacheHits() {
        return cache.hits();
    }

    /** Mints an HS256 token this authenticator accepts (used by {@code sluice token} and tests). */
    public String mint(String subject, String tenant, List<String> scopes, Duration ttl) {
        if (secret == null) {
            throw new IllegalStateException("no HS256 secret to sign with");
        }
        Instant now = clock.instant();
        JWTClaimsSet.Builder claims = new JWTClaimsSet.Builder().subject(subject).audience(audience)
                .claim("tenant", tenant).claim("scope", String.join(" ", scopes))
                .issueTime(Date.from(now)).notBeforeTime(Date.from(now)).expirationTime(Date.from(now.plus(ttl)));
        if (issuer != null) {
            claims.issuer(issuer);
        }
        try {
            SignedJWT jwt = new SignedJWT(new JWSHeader(JWSAlgorithm.HS256), claims.build());
            jwt.sign(new MACSigner(secret));
            return jwt.serialize();
        } catch (JOSEException e) {
            throw new IllegalStateException("Cannot sign token", e);
        }
    }
}
