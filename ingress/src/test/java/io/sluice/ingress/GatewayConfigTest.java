package io.sluice.ingress;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.Test;

class GatewayConfigTest {
    static final String JWT = "gateway-config-test-secret-0123456789abcdef";

    @Test
    void pingsMustComeMoreOftenThanTheIdleTimeoutOrNotAtAll() {
        GatewayConfig defaults = new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT));
        assertThat(defaults.getLong(GatewayConfig.PING_INTERVAL_MS))
                .isLessThan(defaults.getLong(GatewayConfig.IDLE_TIMEOUT_MS))
                .as("below Jetty's client idle timeout of 30 s").isLessThan(30_000L);
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT,
                GatewayConfig.PING_INTERVAL_MS, 60_000L, GatewayConfig.IDLE_TIMEOUT_MS, 60_000L)))
                .isInstanceOf(ConfigException.class).hasMessageContaining(GatewayConfig.PING_INTERVAL_MS)
                .hasMessageContaining(GatewayConfig.IDLE_TIMEOUT_MS);
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT,
                GatewayConfig.PING_INTERVAL_MS, -1L))).isInstanceOf(ConfigException.class)
                .hasMessageContaining(GatewayConfig.PING_INTERVAL_MS);
        // Off: any idle timeout goes, and Jetty's own (traffic either way) applies.
        assertThat(new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT, GatewayConfig.PING_INTERVAL_MS, 0L,
                GatewayConfig.IDLE_TIMEOUT_MS, 1_000L)).getLong(GatewayConfig.PING_INTERVAL_MS)).isZero();
    }

    @Test
    void aTenantRateThatWouldRefuseEveryRequestIsRefusedAtStart() {
        assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT,
                GatewayConfig.TENANT_REQUESTS_PER_SECOND, 0.5)))
                .isInstanceOf(ConfigException.class).hasMessageContaining(GatewayConfig.TENANT_REQUESTS_PER_SECOND);
        assertThat(new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT, GatewayConfig.TENANT_REQUESTS_PER_SECOND, 1.0))
                .getDouble(GatewayConfig.TENANT_REQUESTS_PER_SECOND)).isEqualTo(1.0);
    }

    @Test
    void socketBuffersHaveBoundsNamedInTheError() {
        GatewayConfig defaults = new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT));
        assertThat(defaults.getInt(GatewayConfig.SOCKET_READ_BUFFER_BYTES)).isEqualTo(32 * 1024);
        assertThat(defaults.getInt(GatewayConfig.SOCKET_WRITE_BUFFER_BYTES)).isEqualTo(16 * 1024);
        for (String key : java.util.List.of(GatewayConfig.SOCKET_READ_BUFFER_BYTES, GatewayConfig.SOCKET_WRITE_BUFFER_BYTES)) {
            assertThatThrownBy(() -> new GatewayConfig(Map.of(GatewayConfig.JWT_SECRET, JWT, key, 512)))
                    .isInstanceOf(ConfigException.class).hasMessageContaining(key);
        }
    }
}
