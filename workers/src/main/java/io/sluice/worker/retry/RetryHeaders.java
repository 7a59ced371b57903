package io.sluice.worker.retry;

import io.sluice.schemas.Attempt;
import io.sluice.schemas.AttemptHistory;
import io.sluice.schemas.Origin;
import io.sluice.schemas.SluiceCodec;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;

/**
 * Headers of a record on a retry topic. The value stays the original request, byte for byte;
 * what the retry needs to know travels beside it: which attempt this is, when it is due, where
 * the request first came from, and the attempts that failed so far (Avro {@link AttemptHistory}).
 */
public final class RetryHeaders {
    public static final String ATTEMPT = "sluice.attempt";
    public static final String DUE = "sluice.due";
    public static final String ORIGIN = "sluice.origin";
    public static final String ATTEMPTS = "sluice.attempts";

    private RetryHeaders() {
    }

    /** What a record's headers say of its retry; attempt 0 and no history for a first submission. */
    public record Retry(int attempt, long dueMillis, Origin origin, List<Attempt> history) {
    }

    public static Headers write(int attempt, long dueMillis, Origin origin, List<Attempt> history) {
        RecordHeaders h = new RecordHeaders();
        h.add(ATTEMPT, ByteBuffer.allocate(4).putInt(attempt).array());
        h.add(DUE, ByteBuffer.allocate(8).putLong(dueMillis).array());
        h.add(ORIGIN, (origin.getTopic() + "/" + origin.getPartition() + "/" + origin.getOffset())
                .getBytes(StandardCharsets.UTF_8));
        h.add(ATTEMPTS, SluiceCodec.get().encode(new AttemptHistory(history)));
        return h;
    }

    /**
     * Reads the retry headers, or null when the record carries none (a first submission).
     *
     * @throws IllegalArgumentException when they are present but malformed
     */
    public static Retry read(Headers headers) {
        Header attempt = headers.lastHeader(ATTEMPT);
        if (attempt == null) {
            return null;
        }
        Header due = headers.lastHeader(DUE);
        Header origin = headers.lastHeader(ORIGIN);
        Header attempts = headers.lastHeader(ATTEMPTS);
        if (attempt.value().length != 4 || due == null || due.value().length != 8 || origin == null || attempts == null) {
            throw new IllegalArgumentException("malformed retry headers");
        }
        String[] o = new String(origin.value(), StandardCharsets.UTF_8).split("/");
        if (o.length < 3) {
            throw new IllegalArgumentException("malformed " + ORIGIN + " header");
        }
        String topic = String.join("/", java.util.Arrays.copyOf(o, o.length - 2));
        Origin from = new Origin(topic, Integer.parseInt(o[o.length - 2]), Long.parseLong(o[o.length - 1]));
        List<Attempt> history = SluiceCodec.get().decode(attempts.value(), AttemptHistory.class).getAttempts();
        return new Retry(ByteBuffer.wrap(attempt.value()).getInt(), ByteBuffer.wrap(due.value()).getLong(), from, history);
    }

    /** The due time alone, cheap enough to read for every polled record; -1 without the header. */
    public static long due(Headers headers) {
        Header due = headers.lastHeader(DUE);
        return due == null || due.value().length != 8 ? -1 : ByteBuffer.wrap(due.value()).getLong();
    }
}
