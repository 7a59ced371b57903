package io.sluice.worker.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sluice.worker.WorkerConfig;
import java.util.Map;
import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.Test;

/** Execution providers: CUDA when asked for or available, a clean fall back to CPU otherwise. */
class DevicesTest {

    @Test
    void askingForCudaWithoutAGpuRunsOnCpu() throws Exception {
        // These machines have the CPU build of ONNX Runtime and no GPU: CUDA is refused and the session still runs.
        assertThat(Devices.sessionOptions("cuda:0", 1).device()).isEqualTo("cpu");
        assertThat(Devices.sessionOptions("auto", 1).device()).isEqualTo("cpu");
        assertThat(Devices.sessionOptions("cpu", 2).device()).isEqualTo("cpu");
        try (ModelBundle model = ModelBundle.load(ModelBundle.BUNDLED, "cuda", 1)) {
            assertThat(model.device()).isEqualTo("cpu");
            assertThat(model.encode("The river")).isNotEmpty();
        }
    }

    @Test
    void anUnknownDeviceFailsAtStartNamingTheKey() {
        assertThatThrownBy(() -> new WorkerConfig(Map.of(WorkerConfig.DEVICE, "tpu")))
                .isInstanceOf(ConfigException.class).hasMessageContaining("worker.device");
        assertThatThrownBy(() -> Devices.sessionOptions("gpu0", 1)).isInstanceOf(IllegalArgumentException.class);
    }
}
