package io.sluice.idempotency;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.testkit.SharedInfra;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import redis.clients.jedis.RedisClient;

class RedisIdempotencyStoreTest {
    static RedisIdempotencyStore store;

    @BeforeAll
    static void connect() {
        SharedInfra infra = SharedInfra.get();
        store = new RedisIdempotencyStore(RedisClient.create(infra.redisHost(), infra.redisPort()), "test:", Duration.ofHours(1));
    }

    @AfterAll
    static void close() {
        store.close();
    }

    private static String key() {
        return "acme:k:" + UUID.randomUUID();
    }

    @Test
    void aReleasedSubmissionIsNewAgainButOnlyItsOwnRequestMayReleaseIt() {
        String key = key();
        assertThat(store.register(key, "r1", "d", "acme", 1L, Duration.ofMinutes(1)).isNew()).isTrue();
        assertThat(store.release(key, "r2")).as("another request's release").isFalse();
        assertThat(store.register(key, "r2", "d", "acme", 2L, Duration.ofMinutes(1)).requestId()).isEqualTo("r1");
        assertThat(store.release(key, "r1")).isTrue();
        Submission again = store.register(key, "r3", "d", "acme", 3L, Duration.ofMinutes(1));
        assertThat(again.isNew()).isTrue();
        assertThat(again.requestId()).isEqualTo("r3");
        // A late release of the refused request leaves the retry's submission in place.
        assertThat(store.release(key, "r1")).isFalse();
        assertThat(store.register(key, "r4", "d", "acme", 4L, Duration.ofMinutes(1)).requestId()).isEqualTo("r3");
    }

    @Test
    void aSubmissionIsMarkedAcknowledgedOnlyWhileItHoldsItsKeyAndThenCannotBeReleased() {
        String key = key();
        store.register(key, "r1", "d", "acme", 1L, Duration.ofMinutes(1));
        assertThat(store.standing(key, "r1")).isEqualTo(SubmissionRegistry.Standing.PENDING);
        assertThat(store.register(key, "r2", "d", "acme", 2L, Duration.ofMinutes(1)).acknowledged())
                .as("a repeat before Kafka's acknowledgement").isFalse();
        store.acknowledgeAll(List.of(new SubmissionRegistry.Registration(key, "r1"),
                new SubmissionRegistry.Registration(key, "r2")));
        assertThat(store.standing(key, "r1")).isEqualTo(SubmissionRegistry.Standing.ACKNOWLEDGED);
        assertThat(store.standing(key, "r2")).as("a request that does not hold the key").isEqualTo(SubmissionRegistry.Standing.GONE);
        Submission repeat = store.register(key, "r3", "d", "acme", 3L, Duration.ofMinutes(1));
        assertThat(repeat.acknowledged()).isTrue();
        assertThat(repeat.requestId()).isEqualTo("r1");
        // A request known to be on Kafka keeps its key: a repeat that gives up waiting cannot drop it.
        assertThat(store.release(key, "r1")).isFalse();
        assertThat(store.standing(key, "r1")).isEqualTo(SubmissionRegistry.Standing.ACKNOWLEDGED);

        // A mark for a key that expired, or was never registered, creates nothing.
        String gone = key();
        store.acknowledgeAll(List.of(new SubmissionRegistry.Registration(gone, "r9")));
        assertThat(store.standing(gone, "r9")).isEqualTo(SubmissionRegistry.Standing.GONE);
        assertThat(store.register(gone, "r10", "d", "acme", 4L, Duration.ofMinutes(1)).isNew()).isTrue();
    }

    @Test
    void firstClaimAcquiresWithFenceOneAndASecondClaimantIsBusy() {
        String key = key();
        Claim first = store.claim(key, "r1", "w1", Duration.ofSeconds(30));
        assertThat(first.state()).isEqualTo(Claim.State.ACQUIRED);
        assertThat(first.fence()).isEqualTo(1);
        Claim second = store.claim(key, "r2", "w2", Duration.ofSeconds(30));
        assertThat(second.state()).isEqualTo(Claim.State.BUSY);
        assertThat(second.requestId()).isEqualTo("r1");
        assertThat(second.leaseRemainingMs()).isBetween(1L, 30_000L);
    }

    @Test
    void aLapsedLeaseIsTakenOverUnderAHigherFenceWithTheCheckpointAndTheZombieIsRefused() throws Exception {
        String key = key();
        Claim first = store.claim(key, "r1", "w1", Duration.ofMillis(50));
        assertThat(store.append(key, first.fence(), 0, List.of(11, 12, 13))).isEqualTo(3);
        Thread.sleep(80); // the lease is Redis-server time; let it lapse for real
        Claim takeover = store.claim(key, "r1", "w2", Duration.ofSeconds(30));
        assertThat(takeover.state()).isEqualTo(Claim.State.ACQUIRED);
        assertThat(takeover.fence()).isEqualTo(2);
        assertThat(takeover.checkpoint()).containsExactly(11, 12, 13);

        assertThat(store.append(key, first.fence(), 3, List.of(99))).as("zombie append").isEqualTo(-1);
        assertThat(store.renew(key, first.fence(), Duration.ofSeconds(1))).as("zombie renew").isFalse();
        assertThat(store.complete(key, first.fence(), false, new byte[0])).as("zombie complete").isFalse();
        assertThat(store.append(key, takeover.fence(), 3, List.of(14))).isEqualTo(4);
    }

    @Test
    void aRepeatedAppendOfTheSameStepKeepsTheFirstTokens() {
        String key = key();
        Claim c = store.claim(key, "r1", "w1", Duration.ofSeconds(30));
        store.append(key, c.fence(), 0, List.of(1, 2));
        assertThat(store.append(key, c.fence(), 1, List.of(7, 3))).isEqualTo(3);
        assertThat(store.claim(key, "r1", "w9", Duration.ofSeconds(1)).state()).isEqualTo(Claim.State.BUSY);
        store.complete(key, c.fence(), false, "x".getBytes(StandardCharsets.UTF_8));
        assertThat(store.claim(key, "r1", "w9", Duration.ofSeconds(1)).checkpoint()).containsExactly(1, 2, 3);
    }

    @Test
    void aCompletedKeyAnswersDoneWithItsOutcomeToEveryLaterClaim() {
        String key = key();
        Claim c = store.claim(key, "r1", "w1", Duration.ofSeconds(30));
        assertThat(store.complete(key, c.fence(), false, "result".getBytes(StandardCharsets.UTF_8))).isTrue();
        Claim again = store.claim(key, "r2", "w2", Duration.ofSeconds(30));
        assertThat(again.state()).isEqualTo(Claim.State.DONE);
        assertThat(again.requestId()).isEqualTo("r1");
        assertThat(new String(store.outcome(key), StandardCharsets.UTF_8)).isEqualTo("result");
        assertThat(store.append(key, c.fence(), 0, List.of(1))).as("no appends after completion").isEqualTo(-1);
    }

    @Test
    void keysFollowTheClientKeyThenTheBusinessIdThenTheRequestId() {
        assertThat(IdempotencyKeys.keyFor("t", "r", "k", Map.of("business_id", "b"))).isEqualTo("t:k:k");
        assertThat(IdempotencyKeys.keyFor("t", "r", null, Map.of("business_id", "b", "op", "summarise", "version", "3")))
                .isEqualTo("t:b:summarise:3");
        assertThat(IdempotencyKeys.keyFor("t", "r", "", Map.of())).isEqualTo("t:r:r");
        // The client named a key exactly when the key is not the request id's own.
        namesItsKey("k", Map.of(), true);
        namesItsKey(null, Map.of("business_id", "b"), true);
        namesItsKey("", Map.of("business_id", "b"), true);
        namesItsKey(null, Map.of(), false);
        namesItsKey("", Map.of("business_id", ""), false);
        namesItsKey(null, Map.of("op", "x"), false);
    }

    private static void namesItsKey(String idempotencyKey, Map<String, String> metadata, boolean named) {
        assertThat(IdempotencyKeys.hasClientKey(idempotencyKey, metadata)).as("%s %s", idempotencyKey, metadata).isEqualTo(named);
        assertThat(IdempotencyKeys.keyFor("t", "r", idempotencyKey, metadata).equals("t:r:r")).isEqualTo(!named);
    }

    @Test
    void theHolderItselfMayClaimAgainAtOnceUnderAHigherFence() {
        String key = key();
        Claim first = store.claim(key, "r1", "w1", Duration.ofSeconds(30));
        store.append(key, first.fence(), 0, List.of(5, 6));
        Claim again = store.claim(key, "r1", "w1", Duration.ofSeconds(30));
        assertThat(again.state()).isEqualTo(Claim.State.ACQUIRED);
        assertThat(again.fence()).isEqualTo(2);
        assertThat(again.checkpoint()).containsExactly(5, 6);
        assertThat(store.append(key, first.fence(), 2, List.of(7))).as("the old fence is refused").isEqualTo(-1);
        assertThat(store.claim(key, "another-request", "w1", Duration.ofSeconds(30)).state())
                .as("another request of the key waits, even on the same worker").isEqualTo(Claim.State.BUSY);
    }

    @Test
    void anOutcomeReachedWithoutAClaimIsRecordedUnlessTheKeyWasClaimedMeanwhile() {
        String unclaimed = key();
        assertThat(store.reconcile(unclaimed, "r1", "w1", false, "out".getBytes(StandardCharsets.UTF_8))).isTrue();
        assertThat(store.claim(unclaimed, "r2", "w2", Duration.ofSeconds(1)).state()).isEqualTo(Claim.State.DONE);
        String claimed = key();
        store.claim(claimed, "r1", "w1", Duration.ofSeconds(30));
        assertThat(store.reconcile(claimed, "r1", "w9", false, new byte[0])).as("conflict reported").isFalse();
        // A claim whose call timed out but ran once Redis answered is the reconciler's own.
        String own = key();
        store.claim(own, "r1", "w1", Duration.ofSeconds(30));
        assertThat(store.reconcile(own, "r1", "w1", false, "out".getBytes(StandardCharsets.UTF_8))).isTrue();
        assertThat(store.claim(own, "r1", "w2", Duration.ofSeconds(1)).state()).isEqualTo(Claim.State.DONE);
    }

    @Test
    void theRequestIndexGivesBackTenantTimePartitionAndOutcomeWhateverTheirCharacters() {
        String id = UUID.randomUUID().toString();
        String tenant = "12|acme|";
        String key = "acme|k:" + UUID.randomUUID() + "\n|7|";
        store.indexAll(List.of(new SubmissionRegistry.IndexEntry(id, tenant, key, 1_700_000_000_123L, 3),
                new SubmissionRegistry.IndexEntry(id + "-b", "b", "b:k", 5L, -1)), Duration.ofMinutes(5));

        Submission known = store.lookup(id).orElseThrow();
        assertThat(known.tenant()).isEqualTo(tenant);
        assertThat(known.createdAtMillis()).isEqualTo(1_700_000_000_123L);
        assertThat(known.replyPartition()).isEqualTo(3);
        assertThat(store.lookup(id + "-b").orElseThrow().replyPartition()).isEqualTo(-1);
        assertThat(store.lookup(UUID.randomUUID().toString())).isEmpty();

        assertThat(store.outcomeOf(id)).isEmpty();
        Claim claim = store.claim(key, id, "w1", Duration.ofSeconds(30));
        store.complete(key, claim.fence(), false, "result".getBytes(StandardCharsets.UTF_8));
        assertThat(store.outcomeOf(id)).hasValueSatisfying(o -> assertThat(new String(o, StandardCharsets.UTF_8)).isEqualTo("result"));

        try (RedisClient raw = RedisClient.create(SharedInfra.get().redisHost(), SharedInfra.get().redisPort())) {
            assertThat(raw.pttl("test:req:{" + id + "}")).as("entries expire with the retention").isBetween(1L, 300_000L);
        }
    }

    @Test
    void anIndexEntryStoredAsAHashByAnEarlierVersionIsStillFound() {
        String id = UUID.randomUUID().toString();
        try (RedisClient raw = RedisClient.create(SharedInfra.get().redisHost(), SharedInfra.get().redisPort())) {
            raw.hset("test:req:{" + id + "}", Map.of("tenant", "acme", "created_at", "42", "key", "acme:r:" + id, "partition", "2"));
        }
        Submission known = store.lookup(id).orElseThrow();
        assertThat(known.tenant()).isEqualTo("acme");
        assertThat(known.createdAtMillis()).isEqualTo(42);
        assertThat(known.replyPartition()).isEqualTo(2);
    }
}
