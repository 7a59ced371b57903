package io.sluice.worker.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.sluice.worker.model.ModelBundle;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * One sequence decoding with its own KV cache. Each {@link #feed} runs the model on the new
 * tokens only, with the previous step's {@code present.*} outputs fed straight back as
 * {@code past_key_values.*}, so no cache is copied. Not thread-safe; close it to free the native
 * memory its cache holds.
 */
public final class Sequence implements AutoCloseable {
    private final ModelBundle model;
    private OrtSession.Result lastResult;
    private final Map<String, OnnxTensor> past = new HashMap<>();
    private int length;
    private float[] lastLogits;

    Sequence(ModelBundle model, Map<String, OnnxTensor> emptyPast) {
        this.model = model;
        this.past.putAll(emptyPast);
    }

    /** Tokens in the cache (prompt plus everything fed since). */
    public int length() {
        return length;
    }

    /** The current cache tensor of an input name such as {@code past_key_values.0.key}. */
    OnnxTensor past(String name) {
        return past.get(name);
    }

    /** Logits for the token after the last one fed. */
    public float[] lastLogits() {
        return lastLogits;
    }

    /** Runs the model over {@code ids}, appending them to the cache. */
    public float[] feed(long... ids) {
        if (ids.length == 0) {
            throw new IllegalArgumentException("feed needs at least one token");
        }
        if (length + ids.length > model.maxPositions()) {
            throw new ContextOverflowException(length + ids.length, model.maxPositions());
        }
        var env = model.env();
        long[] positions = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            positions[i] = length + i;
        }
        long[] mask = new long[length + ids.length];
        java.util.Arrays.fill(mask, 1L);
        try (OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {1, ids.length});
             OnnxTensor attention = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {1, mask.length});
             OnnxTensor positionIds = OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {1, ids.length})) {
            Map<String, OnnxTensor> inputs = new HashMap<>(past);
            inputs.put("input_ids", inputIds);
            inputs.put("attention_mask", attention);
            inputs.put("position_ids", positionIds);
            OrtSession.Result result = model.session().run(inputs);
            // Closed with the rest of the result; closing it here as well would free it twice.
            OnnxTensor logits = (OnnxTensor) result.get("logits").orElseThrow();
            FloatBuffer all = logits.getFloatBuffer();
            int vocab = (int) logits.getInfo().getShape()[2];
            float[] last = new float[vocab];
            all.position((ids.length - 1) * vocab);
            all.get(last);
            lastLogits = last;
            for (int layer = 0; layer < model.layers(); layer++) {
                past.put("past_key_values." + layer + ".key", present(result, layer, "key"));
                past.put("past_key_values." + layer + ".value", present(result, layer, "value"));
            }
            // The previous step's outputs were this step's inputs; only now may they be freed.
            if (lastResult != null) {
                lastResult.close();
            }
            lastResult = result;
            length += ids.length;
            return lastLogits;
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime step failed at length " + length + ": " + e.getMessage(), e);
        }
    }

    private static OnnxTensor present(OrtSession.Result result, int layer, String kind) {
        Optional<OnnxValue> v = result.get("present." + layer + "." + kind);
        return (OnnxTensor) v.orElseThrow(() -> new IllegalStateException("Model has no output present." + layer + "." + kind));
    }

    @Override
    public void close() {
        if (lastResult != null) {
            lastResult.close();
            lastResult = null;
        }
    }
}
