package io.sluice.idempotency.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** The Lua scripts of the Redis store, kept as resources so they read as Lua. */
public final class Scripts {
    public static final String CLAIM = load("claim.lua");
    public static final String RENEW = load("renew.lua");
    public static final String APPEND = load("append.lua");
    public static final String COMPLETE = load("complete.lua");
    public static final String REGISTER = load("register.lua");
    public static final String RELEASE = load("release.lua");
    public static final String ACKNOWLEDGE = load("acknowledge.lua");
    public static final String RECONCILE = load("reconcile.lua");

    private Scripts() {
    }

    private static String load(String name) {
        try (InputStream in = Scripts.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("Missing script " + name);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
