package io.sluice.schemas;

/**
 * A record on a topic that cannot be decoded. It is permanent: no retry can fix it, so such a
 * record goes to the dead-letter queue with its raw bytes and never stops its partition.
 */
public class MalformedRecordException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final Long fingerprint;

    public MalformedRecordException(String message, Long fingerprint) {
        super(message);
        this.fingerprint = fingerprint;
    }

    /** Writer-schema fingerprint from the record's header, or null when it had none. */
    public Long fingerprint() {
        return fingerprint;
    }
}
