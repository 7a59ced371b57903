package io.sluice.worker.model;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A decoder-only language model in the layout Hugging Face Optimum exports for GPT-2:
 * {@code model.onnx} with inputs {@code input_ids}, {@code attention_mask}, {@code position_ids},
 * {@code past_key_values.{i}.key|value} and outputs {@code logits}, {@code present.{i}.key|value};
 * {@code tokenizer.json}; {@code config.json}. The shape of the KV cache (layers, heads, head size)
 * is read from the ONNX graph itself, so any model exported this way loads.
 */
public final class ModelBundle implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ModelBundle.class);
    /** The project's own small model, shipped inside the jar. */
    public static final String BUNDLED = "classpath:sluice-tiny";
    private static final String BUNDLED_RESOURCE = "/io/sluice/workers/bundled/sluice-tiny/";

    private final String name;
    private final OrtEnvironment env;
    private final OrtSession session;
    private final HuggingFaceTokenizer tokenizer;
    private final int layers;
    private final int heads;
    private final int headSize;
    private final int vocabSize;
    private final int eosTokenId;
    private final int maxPositions;
    private final String device;
    private final long loadMillis;

    private ModelBundle(String name, OrtEnvironment env, OrtSession session, HuggingFaceTokenizer tokenizer,
            JsonNode config, String device, long loadMillis) throws OrtException {
        this.name = name;
        this.env = env;
        this.session = session;
        this.tokenizer = tokenizer;
        this.device = device;
        this.loadMillis = loadMillis;
        Map<String, NodeInfo> inputs = session.getInputInfo();
        int n = 0;
        while (inputs.containsKey("past_key_values." + n + ".key")) {
            n++;
        }
        if (n == 0 || !inputs.containsKey("input_ids") || !inputs.containsKey("attention_mask")
                || !inputs.containsKey("position_ids")) {
            throw new IllegalArgumentException("Model " + name + " is not in the GPT-2 with-past layout; inputs are "
                    + inputs.keySet());
        }
        long[] kvShape = ((TensorInfo) inputs.get("past_key_values.0.key").getInfo()).getShape();
        this.layers = n;
        this.heads = (int) kvShape[1];
        this.headSize = (int) kvShape[3];
        this.vocabSize = config.path("vocab_size").asInt();
        this.eosTokenId = config.path("eos_token_id").asInt(-1);
        this.maxPositions = config.path("n_positions").asInt(config.path("max_position_embeddings").asInt(1024));
    }

    /**
     * Loads a model.
     *
     * @param location a directory in the layout above, or {@link #BUNDLED}
     * @param device {@code auto}, {@code cpu} or {@code cuda[:N]}
     * @param intraOpThreads ONNX Runtime intra-op threads (1 is steadiest for small models on few cores)
     */
    public static ModelBundle load(String location, String device, int intraOpThreads) {
        // The native tokenizer and session builders recurse deeply; a JVM's default thread stack
        // is not always enough (seen as a SIGSEGV with no Java frame), so load on a thread with room.
        ModelBundle[] loaded = new ModelBundle[1];
        RuntimeException[] failed = new RuntimeException[1];
        Thread loader = new Thread(null, () -> {
            try {
                loaded[0] = loadHere(location, device, intraOpThreads);
            } catch (RuntimeException e) {
                failed[0] = e;
            }
        }, "sluice-model-load", NATIVE_STACK_BYTES);
        loader.start();
        try {
            loader.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while loading " + location, e);
        }
        if (failed[0] != null) {
            throw failed[0];
        }
        return loaded[0];
    }

    /** Stack for threads that call into ONNX Runtime and the tokenizer. */
    public static final long NATIVE_STACK_BYTES = 64L * 1024 * 1024;

    private static ModelBundle loadHere(String location, String device, int intraOpThreads) {
        long t0 = System.nanoTime();
        try {
            OrtEnvironment env = OrtEnvironment.getEnvironment();
            JsonNode config;
            OrtSession session;
            HuggingFaceTokenizer tokenizer;
            long tSession;
            // No special tokens added, and no silent truncation: the context limit is checked by the engine.
            Map<String, String> tokOptions = Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false");
            Devices.Selected selected = Devices.sessionOptions(device, intraOpThreads);
            if (BUNDLED.equals(location) || location == null || location.isBlank()) {
                config = new ObjectMapper().readTree(resource("config.json"));
                session = env.createSession(resource("model.onnx"), selected.options());
                tSession = System.nanoTime();
                try (InputStream in = ModelBundle.class.getResourceAsStream(BUNDLED_RESOURCE + "tokenizer.json")) {
                    tokenizer = HuggingFaceTokenizer.newInstance(in, tokOptions);
                }
                location = BUNDLED;
            } else {
                Path dir = Path.of(location);
                config = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
                // From the file, not through the heap: larger models are hundreds of megabytes.
                session = env.createSession(dir.resolve("model.onnx").toString(), selected.options());
                tSession = System.nanoTime();
                tokenizer = HuggingFaceTokenizer.newInstance(dir.resolve("tokenizer.json"), tokOptions);
            }
            long tTokenizer = System.nanoTime();
            long ms = (System.nanoTime() - t0) / 1_000_000;
            log.info("Cold start worker model load: {} ms", (tSession - t0) / 1_000_000);
            log.info("Cold start worker tokenizer init: {} ms", (tTokenizer - tSession) / 1_000_000);
            ModelBundle bundle = new ModelBundle(location, env, session, tokenizer, config, selected.device(), ms);
            log.info("Model {} loaded on {} in {} ms ({} layers, {} heads x {}, vocab {})", location, selected.device(),
                    ms, bundle.layers, bundle.heads, bundle.headSize, bundle.vocabSize);
            return bundle;
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot read model " + location, e);
        } catch (OrtException e) {
            throw new IllegalStateException("Cannot load model " + location + ": " + e.getMessage(), e);
        }
    }

    private static byte[] resource(String file) throws IOException {
        try (InputStream in = ModelBundle.class.getResourceAsStream(BUNDLED_RESOURCE + file)) {
            if (in == null) {
                throw new IOException("Bundled model file missing: " + file);
            }
            return in.readAllBytes();
        }
    }

    public String name() {
        return name;
    }

    public OrtEnvironment env() {
        return env;
    }

    public OrtSession session() {
        return session;
    }

    public HuggingFaceTokenizer tokenizer() {
        return tokenizer;
    }

    public int layers() {
        return layers;
    }

    public int heads() {
        return heads;
    }

    public int headSize() {
        return headSize;
    }

    public int vocabSize() {
        return vocabSize;
    }

    public int eosTokenId() {
        return eosTokenId;
    }

    public int maxPositions() {
        return maxPositions;
    }

    /** The device the session actually runs on. */
    public String device() {
        return device;
    }

    public long loadMillis() {
        return loadMillis;
    }

    /** Prompt text to token ids, without special tokens. */
    public long[] encode(String text) {
        return tokenizer.encode(text, false, false).getIds();
    }

    public String decode(long[] ids) {
        return tokenizer.decode(ids, false);
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException e) {
            log.warn("Closing session of {} failed", name, e);
        }
        tokenizer.close();
    }
}
