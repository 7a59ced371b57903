package io.sluice.egress;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.FinishReason;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The router against a real broker: which subscriptions of a request get its events, as they come and go. */
class TokenRouterTest {
    static Topics topics;
    static TokenRouter router;
    static KafkaProducer<String, SpecificRecord> producer;

    /** What one listener was handed, in order. */
    static final class Seen implements StreamListener {
        final List<String> events = new CopyOnWriteArrayList<>();

        @Override
        public void onToken(TokenEvent token) {
            events.add(String.valueOf(token.getSeq()));
        }

        @Override
        public void onResult(InferenceResult result) {
            events.add("done");
        }
    }

    @BeforeAll
    static void start() throws Exception {
        SharedInfra infra = SharedInfra.get();
        topics = new Topics(SharedInfra.uniquePrefix("token-router"));
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, infra.bootstrapServers()))) {
            admin.createTopics(List.of(new NewTopic(topics.tokens(), 2, (short) 1))).all().get();
        }
        producer = new KafkaProducer<>(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, infra.bootstrapServers(),
                ProducerConfig.LINGER_MS_CONFIG, 0), new StringSerializer(), AvroSerde.serializer());
        router = TokenRouter.start(infra.bootstrapServers(), topics, topics.prefix() + "gateways", "router-test");
        assertThat(router.homePartitions()).hasSize(2);
    }

    @AfterAll
    static void stop() {
        if (router != null) {
            router.close();
        }
        if (producer != null) {
            producer.close();
        }
    }

    static void token(String requestId, int partition, int seq) throws Exception {
        producer.send(new ProducerRecord<>(topics.tokens(), partition, requestId, TokenEvent.newBuilder().setRequestId(requestId)
                .setSeq(seq).setTokenId(seq).setText("t" + seq).setFence(1).setProducedAt(Instant.now()).build())).get();
    }

    static void result(String requestId, int partition, int tokens) throws Exception {
        producer.send(new ProducerRecord<>(topics.tokens(), partition, requestId, InferenceResult.newBuilder()
                .setRequestId(requestId).setFinishReason(FinishReason.length).setCompletionTokens(tokens).setFence(1)
                .setCompletedAt(Instant.now()).build())).get();
    }

    static void await(Seen seen, String... events) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (seen.events.size() < events.length && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(seen.events).containsExactly(events);
    }

    @Test
    void everySubscriptionOfARequestGetsItsEventsUntilItIsCancelledAndTheOthersKeepTheirs() throws Exception {
        int partition = router.replyPartition();
        String id = "several-followers";
        Seen first = new Seen();
        Seen second = new Seen();
        Seen third = new Seen();
        Subscription a = router.subscribe(id, partition, -1, first);
        Subscription b = router.subscribe(id, partition, -1, second);
        token(id, partition, 0);
        await(first, "0");
        await(second, "0");

        // The first of two goes: the one left gets the rest alone.
        a.cancel();
        Subscription c = router.subscribe(id, partition, 0, third);
        token(id, partition, 1);
        await(second, "0", "1");
        await(third, "1");
        b.cancel();
        b.cancel(); // idempotent: must not take the remaining subscription with it
        token(id, partition, 2);
        result(id, partition, 3);
        await(third, "1", "2", "done");
        assertThat(first.events).containsExactly("0");
        assertThat(second.events).containsExactly("0", "1");
        // A finished subscription removes itself; nothing of the request is followed any more.
        long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (router.activeRequests() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(router.activeRequests()).isZero();
        assertThat(c.isDone()).isTrue();
    }

    @Test
    void aRequestFollowedOnceStopsBeingFollowedWhenItsOnlySubscriptionIsCancelled() throws Exception {
        int partition = router.replyPartition();
        Seen seen = new Seen();
        Seen other = new Seen();
        Subscription s = router.subscribe("followed-once", partition, -1, seen);
        Subscription keep = router.subscribe("followed-alongside", partition, -1, other);
        token("followed-once", partition, 0);
        await(seen, "0");
        s.cancel();
        token("followed-once", partition, 1);
        token("followed-alongside", partition, 0);
        await(other, "0");
        assertThat(seen.events).containsExactly("0");
        keep.cancel();
        assertThat(router.activeRequests()).isZero();
    }

    @Test
    void aReplayThatFailsIsTriedAgainAndEveryWaitingSubscriptionGetsItsHistory() throws Exception {
        String bootstrap = SharedInfra.get().bootstrapServers();
        AtomicInteger built = new AtomicInteger();
        // The first reader of history talks to a port where no broker listens, so its first call
        // times out as it does while the broker is unreachable; the readers after it are sound.
        Supplier<KafkaConsumer<String, byte[]>> readers = () -> new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, built.getAndIncrement() == 0 ? "127.0.0.1:1" : bootstrap,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 500),
                new StringDeserializer(), new ByteArrayDeserializer());
        String id = "replayed-after-a-failure";
        token(id, 0, 0);
        token(id, 0, 1);
        result(id, 0, 2);
        try (TokenRouter other = TokenRouter.start(bootstrap, topics, topics.prefix() + "gateways-replay", "replay-test",
                readers)) {
            Seen first = new Seen();
            Seen joined = new Seen();
            long since = System.currentTimeMillis() - 60_000;
            other.subscribeFromHistory(id, 0, -1, first, since);
            // Joins while the first replay is failing or waiting to be tried again.
            other.subscribeFromHistory(id, 0, 0, joined, since);
            await(first, "0", "1", "done");
            await(joined, "1", "done");
            assertThat(built.get()).as("readers built: the failed one, then a fresh one").isGreaterThanOrEqualTo(2);
        }
    }
}
