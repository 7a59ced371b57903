package io.sluice.worker.model;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Chooses the ONNX Runtime execution provider: CUDA when asked for or available, else CPU. */
final class Devices {
    private static final Logger log = LoggerFactory.getLogger(Devices.class);

    record Selected(OrtSession.SessionOptions options, String device) {
    }

    private Devices() {
    }

    static Selected sessionOptions(String device, int intraOpThreads) throws OrtException {
        String d = device == null ? "auto" : device.trim().toLowerCase(java.util.Locale.ROOT);
        if (!d.equals("auto") && !d.equals("cpu") && !d.matches("cuda(:\\d+)?")) {
            throw new IllegalArgumentException("worker.device must be auto, cpu or cuda[:N], not " + device);
        }
        OrtSession.SessionOptions options = cpuOptions(intraOpThreads);
        if (d.equals("cpu")) {
            return new Selected(options, "cpu");
        }
        int ordinal = d.startsWith("cuda:") ? Integer.parseInt(d.substring(5)) : 0;
        try {
            options.addCUDA(ordinal);
            return new Selected(options, "cuda:" + ordinal);
        } catch (OrtException | RuntimeException | UnsatisfiedLinkError e) {
            // The CPU build of ONNX Runtime, or a machine without a GPU: one clear line, then CPU.
            options.close();
            log.info("CUDA execution provider unavailable ({}); running on CPU", e.getMessage());
            return new Selected(cpuOptions(intraOpThreads), "cpu");
        }
    }

    private static OrtSession.SessionOptions cpuOptions(int intraOpThreads) throws OrtException {
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(Math.max(1, intraOpThreads));
        options.setInterOpNumThreads(1);
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
        return options;
    }
}
