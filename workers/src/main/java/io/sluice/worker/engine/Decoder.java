package io.sluice.worker.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import io.sluice.worker.model.ModelBundle;
import java.nio.FloatBuffer;
import java.util.HashMap;
import java.util.Map;

/** Starts sequences on a model. Thread-confined: one decode thread owns a decoder. */
public final class Decoder implements AutoCloseable {
    private final ModelBundle model;
    private final Map<String, OnnxTensor> emptyPast = new HashMap<>();

    public Decoder(ModelBundle model) {
        this.model = model;
        try {
            long[] shape = {1, model.heads(), 0, model.headSize()};
            for (int layer = 0; layer < model.layers(); layer++) {
                emptyPast.put("past_key_values." + layer + ".key", OnnxTensor.createTensor(model.env(), FloatBuffer.allocate(0), shape));
                emptyPast.put("past_key_values." + layer + ".value", OnnxTensor.createTensor(model.env(), FloatBuffer.allocate(0), shape));
            }
        } catch (OrtException e) {
            throw new IllegalStateException("Cannot create empty KV cache", e);
        }
    }

    public ModelBundle model() {
        return model;
    }

    /** Prefills {@code promptIds} and returns the sequence, ready for its first token. */
    public Sequence start(long[] promptIds) {
        Sequence seq = new Sequence(model, emptyPast);
        try {
            seq.feed(promptIds);
            return seq;
        } catch (RuntimeException e) {
            seq.close();
            throw e;
        }
    }

    /** Index of the largest logit (greedy decoding); ties go to the lowest id. */
    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    @Override
    public void close() {
        emptyPast.values().forEach(OnnxTensor::close);
    }
}
