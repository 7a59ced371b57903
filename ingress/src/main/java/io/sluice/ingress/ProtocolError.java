package io.sluice.ingress;

/**
 * A message the gateway refuses, with the stable code the client sees and a message naming the
 * field or limit at fault. The socket stays open.
 */
public final class ProtocolError extends Exception {
    private static final long serialVersionUID = 1L;

    /** Stable codes of the protocol's error frame. */
    public enum Code {
        invalid_request, unauthorized, forbidden, too_large, rate_limited, overloaded, not_found, failed, dead_lettered
    }

    private final Code code;
    private final boolean retryable;

    public ProtocolError(Code code, String message, boolean retryable) {
        super(message, null, false, false);
        this.code = code;
        this.retryable = retryable;
    }

    public static ProtocolError invalid(String field, String problem) {
        return new ProtocolError(Code.invalid_request, field + ": " + problem, false);
    }

    public Code code() {
        return code;
    }

    public boolean retryable() {
        return retryable;
    }
}
