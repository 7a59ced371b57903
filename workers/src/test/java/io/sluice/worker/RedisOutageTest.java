package io.sluice.worker;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.devstack.RedisProcess;
import io.sluice.idempotency.Claim;
import io.sluice.idempotency.RedisIdempotencyStore;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.Tier;
import io.sluice.schemas.TokenEvent;
import io.sluice.worker.model.ModelBundle;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * A real Redis server is frozen (SIGSTOP) for 10 s while requests of both tiers keep arriving:
 * financial requests wait for it (fail-closed), operational ones are decoded without a claim
 * (fail-open) and recorded once it answers again; nothing is lost and nothing decoded twice.
 */
class RedisOutageTest {
    static final Duration WAIT = Duration.ofSeconds(90);

    static void signal(long pid, String sig) throws Exception {
        Process p = new ProcessBuilder("kill", "-" + sig, String.valueOf(pid)).start();
        assertThat(p.waitFor()).as("kill -%s %d", sig, pid).isZero();
    }

    @Test
    void financialWaitsOperationalDecodesWithoutAClaimNothingIsLostOrDoubled() throws Exception {
        Path dir = Files.createTempDirectory("redis-outage");
        try (RedisProcess redis = RedisProcess.start(dir, 0);
             KafkaFixture kafka = new KafkaFixture("outage");
             ModelBundle model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1)) {
            Map<String, Object> props = kafka.workerProps("w-outage");
            props.put(CommonConfig.REDIS_URI, redis.uri());
            props.put(WorkerConfig.LEASE_MS, 3000L);
            props.put(WorkerConfig.REDIS_TIMEOUT_MS, 300);
            Map<String, Tier> tiers = new HashMap<>();
            Map<String, Long> sentAt = new HashMap<>();
            long frozeAt;
            long thawedAt;
            try (Worker worker = Worker.start(new WorkerConfig(props), model)) {
                assertThat(worker.awaitAssignment(WAIT)).isTrue();
                long end = System.currentTimeMillis() + 16_000;
                frozeAt = System.currentTimeMillis() + 3_000;
                thawedAt = frozeAt + 10_000;
                boolean frozen = false;
                boolean thawed = false;
                int i = 0;
                while (System.currentTimeMillis() < end) {
                    long now = System.currentTimeMillis();
                    if (!frozen && now >= frozeAt) {
                        signal(redis.pid(), "STOP");
                        frozeAt = System.currentTimeMillis();
                        thawedAt = frozeAt + 10_000;
                        frozen = true;
                    }
                    if (frozen && !thawed && now >= thawedAt) {
                        signal(redis.pid(), "CONT");
                        thawedAt = System.currentTimeMillis();
                        thawed = true;
                    }
                    Tier tier = i++ % 2 == 0 ? Tier.financial : Tier.operational;
                    InferenceRequest r = KafkaFixture.request("The lock keeper", 20).setTier(tier).build();
                    tiers.put(r.getRequestId(), tier);
                    sentAt.put(r.getRequestId(), System.currentTimeMillis());
                    kafka.send(r);
                    Thread.sleep(150);
                }
                if (!thawed) {
                    signal(redis.pid(), "CONT");
                    thawedAt = System.currentTimeMillis();
                }
                var records = kafka.readUntil(kafka.topics.tokens(),
                        rs -> WorkerKafkaTest.results(rs).keySet().containsAll(tiers.keySet()), WAIT, "every request's result");
                Map<String, List<InferenceResult>> results = WorkerKafkaTest.results(records);
                Map<String, TreeMap<Integer, Set<Integer>>> tokens = WorkerKafkaTest.tokens(records);
                int financialDuring = 0;
                int operationalDuring = 0;
                for (var e : tiers.entrySet()) {
                    String id = e.getKey();
                    InferenceResult r = results.get(id).get(0);
                    assertThat(results.get(id).stream().map(InferenceResult::getText).distinct()).as("one outcome").hasSize(1);
                    assertThat(tokens.get(id).values()).as("one token per seq of %s", id).allMatch(set -> set.size() == 1);
                    assertThat(tokens.get(id).keySet()).hasSize(r.getCompletionTokens());
                    long sent = sentAt.get(id);
                    long done = r.getCompletedAt().toEpochMilli();
                    boolean sentDuring = sent > frozeAt + 500 && sent < thawedAt - 1500;
                    if (sentDuring && e.getValue() == Tier.financial) {
                        financialDuring++;
                        assertThat(done).as("financial %s waited for Redis", id).isGreaterThanOrEqualTo(thawedAt);
                    }
                    if (sentDuring && e.getValue() == Tier.operational) {
                        operationalDuring++;
                        assertThat(done).as("operational %s decoded during the outage", id).isLessThan(thawedAt);
                    }
                }
                assertThat(financialDuring).isGreaterThan(5);
                assertThat(operationalDuring).isGreaterThan(5);
                assertThat(worker.decodedWithoutClaim()).isGreaterThan(0);
                long deadline = System.currentTimeMillis() + 10_000;
                while (worker.reconcileConflicts() == 0 && System.currentTimeMillis() < deadline
                        && !allRecorded(redis, tiers.keySet())) {
                    Thread.sleep(100);
                }
                assertThat(worker.reconcileConflicts()).isZero();
                assertThat(allRecorded(redis, tiers.keySet())).as("every outcome recorded in Redis after the outage").isTrue();
            }
        }
    }

    /** Whether every request's key is DONE in Redis, so none of them can be decoded again. */
    static boolean allRecorded(RedisProcess redis, Set<String> ids) {
        try (var store = RedisIdempotencyStore.connect(URI.create(redis.uri()), "sluice:", Duration.ofHours(1))) {
            for (String id : ids) {
                Claim c = store.claim("acme:r:" + id, id, "probe", Duration.ofMillis(1));
                if (c.state() != Claim.State.DONE) {
                    return false;
                }
            }
            return true;
        }
    }
}
