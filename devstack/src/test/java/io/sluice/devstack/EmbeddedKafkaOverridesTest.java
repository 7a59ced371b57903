package io.sluice.devstack;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Settings a caller passes replace the broker's own and add to them (`bench accept --broker-in-memory`). */
class EmbeddedKafkaOverridesTest {

    @Test
    void overridesReplaceAndAddBrokerSettings(@TempDir Path dir) throws Exception {
        try (EmbeddedKafka kafka = EmbeddedKafka.start(dir, 0,
                Map.of("log.segment.bytes", String.valueOf(1024 * 1024), "log.retention.check.interval.ms", "2000"));
             Admin admin = Admin.create(Map.of("bootstrap.servers", kafka.bootstrapServers()))) {
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, "1");
            Config config = admin.describeConfigs(List.of(broker)).all().get().get(broker);
            // EmbeddedKafka sets 16 MiB segments itself; the override wins.
            assertThat(config.get("log.segment.bytes").value()).isEqualTo(String.valueOf(1024 * 1024));
            assertThat(config.get("log.retention.check.interval.ms").value()).isEqualTo("2000");
        }
    }
}
