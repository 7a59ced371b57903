package io.sluice.worker.engine;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * The batch's KV cache in direct memory, twice: ONNX Runtime reads one set as
 * {@code past_key_values.*} and writes the other as {@code present.*} (pinned outputs), then the
 * sets swap. The engine reads and rearranges rows in place, with no copy out of native memory,
 * and buffers are reused across steps, growing only when the batch outgrows them.
 */
final class KvArena {
    private final FloatBuffer[][] sets;
    private FloatBuffer logits;

    KvArena(int names) {
        this.sets = new FloatBuffer[2][names];
    }

    /** A view of the first {@code floats} floats of buffer {@code name} in {@code set}. */
    FloatBuffer view(int set, int name, int floats) {
        FloatBuffer b = sets[set][name];
        if (b == null || b.capacity() < floats) {
            FloatBuffer grown = allocate(Math.max(floats, b == null ? floats : b.capacity() + b.capacity() / 2));
            if (b != null) {
                grown.put(0, b, 0, b.capacity());
            }
            sets[set][name] = grown;
            b = grown;
        }
        return b.slice(0, floats);
    }

    /** A view for {@code floats} floats of logits. */
    FloatBuffer logits(int floats) {
        if (logits == null || logits.capacity() < floats) {
            logits = allocate(floats);
        }
        return logits.slice(0, floats);
    }

    private static FloatBuffer allocate(int floats) {
        return ByteBuffer.allocateDirect(floats * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }
}
