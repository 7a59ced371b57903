package io.sluice.worker.engine;

import io.sluice.worker.model.ModelBundle;
import java.util.Arrays;

/**
 * Turns a growing list of token ids into text deltas. A byte-level BPE token may end inside a
 * multi-byte character; decoding then yields U+FFFD, so such text is held back until the
 * character completes. Only a window of recent tokens is re-decoded, never the whole stream.
 */
public final class TextStreamer {
    private final ModelBundle model;
    private long[] ids = new long[64];
    private int size;
    private int prefixOffset;
    private int readOffset;

    public TextStreamer(ModelBundle model) {
        this.model = model;
    }

    /** Adds a token and returns the text it completes (possibly empty). */
    public String push(int tokenId) {
        if (size == ids.length) {
            ids = Arrays.copyOf(ids, size * 2);
        }
        ids[size++] = tokenId;
        String prefix = model.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset));
        String text = model.decode(Arrays.copyOfRange(ids, prefixOffset, size));
        if (text.length() > prefix.length() && !text.endsWith("\uFFFD")) {
            prefixOffset = readOffset;
            readOffset = size;
            return text.substring(prefix.length());
        }
        return "";
    }

    /** Text still held back at the end of the stream. */
    public String flush() {
        String prefix = model.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset));
        String text = model.decode(Arrays.copyOfRange(ids, prefixOffset, size));
        readOffset = size;
        prefixOffset = size;
        return text.length() > prefix.length() ? text.substring(prefix.length()) : "";
    }
}
