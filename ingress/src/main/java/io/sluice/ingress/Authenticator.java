package io.sluice.ingress;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.MACSigner;
import com.nimbusds.jose.jwk.source.ImmutableSecret;
import com.nimbusds.jose.proc.BadJOSEException;
import com.nimbusds.jose.proc.JWSVerificationKeySelector;
import com.nimbusds.jose.proc.SecurityContext;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import com.nimbusds.jwt.proc.DefaultJWTClaimsVerifier;
import com.nimbusds.jwt.proc.DefaultJWTProcessor;
import java.nio.charset.StandardCharsets;
import java.text.ParseException;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import java.util.Set;

/**
 * Checks client JWTs at the handshake: HS256 signature, {@code exp}, {@code aud}, and the
 * {@code sub} and {@code tenant} claims. Scopes come from the {@code scope} claim
 * (space-separated, as OAuth 2 writes them).
 */
public final class Authenticator {
    /** Who is on the other end of a socket. */
    public record Principal(String subject, String tenant, Set<String> scopes) {
        public boolean may(String scope) {
            return scopes.contains(scope);
        }
    }

    /** The token was missing, malformed, badly signed, expired or for another audience. */
    public static final class Unauthorized extends Exception {
        private static final long serialVersionUID = 1L;

        Unauthorized(String message) {
            super(message);
        }
    }

    private final DefaultJWTProcessor<SecurityContext> processor = new DefaultJWTProcessor<>();
    private final byte[] secret;
    private final String audience;

    public Authenticator(String hs256Secret, String audience) {
        this.secret = hs256Secret.getBytes(StandardCharsets.UTF_8);
        this.audience = audience;
        processor.setJWSKeySelector(new JWSVerificationKeySelector<>(JWSAlgorithm.HS256, new ImmutableSecret<>(secret)));
        processor.setJWTClaimsSetVerifier(new DefaultJWTClaimsVerifier<>(audience, null, Set.of("sub", "exp", "tenant")));
    }

    public Principal authenticate(String token) throws Unauthorized {
        if (token == null || token.isBlank()) {
            throw new Unauthorized("missing bearer token");
        }
        try {
            JWTClaimsSet claims = processor.process(token, null);
            String scope = claims.getStringClaim("scope");
            Set<String> scopes = scope == null ? Set.of() : Set.of(scope.trim().split("\\s+"));
            return new Principal(claims.getSubject(), claims.getStringClaim("tenant"), scopes);
        } catch (ParseException | BadJOSEException | JOSEException e) {
            throw new Unauthorized("invalid token: " + e.getMessage());
        }
    }

    /** Mints a token this authenticator accepts (used by {@code sluice token} and tests). */
    public String mint(String subject, String tenant, List<String> scopes, Duration ttl) {
        Instant now = Instant.now();
        JWTClaimsSet claims = new JWTClaimsSet.Builder().subject(subject).audience(audience)
                .claim("tenant", tenant).claim("scope", String.join(" ", scopes))
                .issueTime(Date.from(now)).expirationTime(Date.from(now.plus(ttl))).build();
        try {
            SignedJWT jwt = new SignedJWT(new JWSHeader(JWSAlgorithm.HS256), claims);
            jwt.sign(new MACSigner(secret));
            return jwt.serialize();
        } catch (JOSEException e) {
            throw new IllegalStateException("Cannot sign token", e);
        }
    }
}
