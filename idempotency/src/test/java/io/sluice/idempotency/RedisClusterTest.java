package io.sluice.idempotency;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.devstack.RedisProcess;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import redis.clients.jedis.Protocol;
import redis.clients.jedis.RedisClient;

/**
 * The store on a real Redis Cluster (one node holding every slot). Cluster mode refuses a script
 * whose keys hash to different slots, so this proves the hash tags keep a request's keys together.
 */
class RedisClusterTest {

    @Test
    void everyOperationWorksOnAClusterBecauseARequestsKeysShareOneSlot() throws Exception {
        Path dir = Files.createTempDirectory("redis-cluster");
        try (RedisProcess node = RedisProcess.start(dir, 0, List.of("--cluster-enabled", "yes",
                "--cluster-config-file", dir.resolve("nodes.conf").toString()))) {
            try (RedisClient admin = RedisClient.create("127.0.0.1", node.port())) {
                String[] slots = new String[16384 + 1];
                slots[0] = "ADDSLOTS";
                for (int i = 0; i < 16384; i++) {
                    slots[i + 1] = String.valueOf(i);
                }
                admin.sendCommand(Protocol.Command.CLUSTER, slots);
                long deadline = System.currentTimeMillis() + 20_000;
                while (!new String((byte[]) admin.sendCommand(Protocol.Command.CLUSTER, "INFO"),
                        java.nio.charset.StandardCharsets.UTF_8).contains("cluster_state:ok")) {
                    assertThat(System.currentTimeMillis()).as("cluster state ok").isLessThan(deadline);
                    Thread.sleep(100);
                }
            }
            try (RedisIdempotencyStore store = RedisIdempotencyStore.connect(
                    URI.create("redis-cluster://127.0.0.1:" + node.port()), "sluice:", Duration.ofHours(1))) {
                String key = "acme:k:" + UUID.randomUUID();
                Claim c = store.claim(key, "r1", "w1", Duration.ofSeconds(30));
                assertThat(c.state()).isEqualTo(Claim.State.ACQUIRED);
                assertThat(store.append(key, c.fence(), 0, List.of(1, 2))).isEqualTo(2);
                String other = "acme:k:" + UUID.randomUUID();
                Claim c2 = store.claim(other, "r2", "w1", Duration.ofSeconds(30));
                assertThat(store.appendAll(List.of(new IdempotencyStore.Append(key, c.fence(), 2, List.of(3)),
                        new IdempotencyStore.Append(other, c2.fence(), 0, List.of(9))))).containsExactly(3, 1);
                assertThat(store.renewAll(List.of(key, other), List.of(c.fence(), c2.fence()), Duration.ofSeconds(30)))
                        .containsExactly(true, true);
                assertThat(store.complete(key, c.fence(), false, new byte[] {7})).isTrue();
                assertThat(store.claim(key, "r1", "w2", Duration.ofSeconds(1)).checkpoint()).containsExactly(1, 2, 3);
                assertThat(store.register("acme:k:x-" + UUID.randomUUID(), "r3", "d", "acme", 1L, Duration.ofMinutes(1))
                        .isNew()).isTrue();
            }
        }
    }
}
