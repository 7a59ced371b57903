package io.sluice.worker.engine;

import io.sluice.worker.model.ModelBundle;
import java.util.List;

/**
 * Decides which text each token releases to the client. Text is held back while it ends in an
 * incomplete UTF-8 character or in a prefix of a stop sequence; when a stop sequence appears the
 * text before it is released and the stream ends, so no part of a stop sequence is ever streamed,
 * also when it spans several tokens.
 */
public final class TextAssembler {
    private final TextStreamer streamer;
    private final List<String> stops;
    private final StringBuilder held = new StringBuilder();
    private boolean stopped;

    /** What one token released. */
    public record Release(String text, boolean stopped) {
    }

    public TextAssembler(ModelBundle model, List<String> stops) {
        this.streamer = new TextStreamer(model);
        this.stops = stops;
    }

    /** Adds a token; returns the text it releases and whether a stop sequence completed. */
    public Release push(int tokenId) {
        if (stopped) {
            throw new IllegalStateException("stream already stopped");
        }
        held.append(streamer.push(tokenId));
        int stopAt = -1;
        for (String stop : stops) {
            int i = held.indexOf(stop);
            if (i >= 0 && (stopAt < 0 || i < stopAt)) {
                stopAt = i;
            }
        }
        if (stopAt >= 0) {
            stopped = true;
            String out = held.substring(0, stopAt);
            held.setLength(0);
            return new Release(out, true);
        }
        int keep = longestStopPrefixSuffix();
        String out = held.substring(0, held.length() - keep);
        held.delete(0, held.length() - keep);
        return new Release(out, false);
    }

    /** Releases everything still held: the stream ended without a stop sequence. */
    public String flush() {
        held.append(streamer.flush());
        String out = held.toString();
        held.setLength(0);
        return out;
    }

    public boolean hasHeldText() {
        return held.length() > 0;
    }

    /** Length of the longest suffix of the held text that begins some stop sequence. */
    private int longestStopPrefixSuffix() {
        int best = 0;
        String h = held.toString();
        for (String stop : stops) {
            int max = Math.min(stop.length() - 1, h.length());
            for (int len = max; len > best; len--) {
                if (h.regionMatches(h.length() - len, stop, 0, len)) {
                    best = len;
                    break;
                }
            }
        }
        return best;
    }
}
