package io.sluice.worker;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.schemas.Cancel;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.FinishReason;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;
import io.sluice.worker.engine.SeedSearch;
import io.sluice.worker.model.ModelBundle;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Workers against a real broker and a real Redis, fed straight through the requests topic. */
class WorkerKafkaTest {
    static final Duration WAIT = Duration.ofSeconds(60);
    static ModelBundle model;

    @BeforeAll
    static void load() {
        model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static Map<String, List<InferenceResult>> results(List<ConsumerRecord<String, SpecificRecord>> records) {
        Map<String, List<InferenceResult>> out = new HashMap<>();
        for (var r : records) {
            if (r.value() instanceof InferenceResult res) {
                out.computeIfAbsent(res.getRequestId(), k -> new ArrayList<>()).add(res);
            }
        }
        return out;
    }

    /** Per request, each seq with every token id published for it. */
    static Map<String, TreeMap<Integer, Set<Integer>>> tokens(List<ConsumerRecord<String, SpecificRecord>> records) {
        Map<String, TreeMap<Integer, Set<Integer>>> out = new HashMap<>();
        for (var r : records) {
            if (r.value() instanceof TokenEvent t) {
                out.computeIfAbsent(t.getRequestId(), k -> new TreeMap<>())
                        .computeIfAbsent(t.getSeq(), k -> new HashSet<>()).add(t.getTokenId());
            }
        }
        return out;
    }

    @Test
    void requestsWrittenStraightToTheTopicAllFinishOnceThroughAFullQueueAndEveryOffsetIsCommitted() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("overflow")) {
            Map<String, Object> props = kafka.workerProps("w-overflow");
            props.put(WorkerConfig.QUEUE_CAPACITY, 2);
            props.put(WorkerConfig.MAX_BATCH, 2);
            List<String> ids = new ArrayList<>();
            try (Worker worker = Worker.start(new WorkerConfig(props), model)) {
                for (int i = 0; i < 20; i++) {
                    InferenceRequest r = KafkaFixture.request("The river", 8 + i % 5).setPriority(i % 10).build();
                    ids.add(r.getRequestId());
                    kafka.send(r);
                }
                var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).keySet().containsAll(ids), WAIT,
                        "results of 20 requests");
                Map<String, List<InferenceResult>> results = results(records);
                Map<String, TreeMap<Integer, Set<Integer>>> tokens = tokens(records);
                for (String id : ids) {
                    assertThat(results.get(id)).as("one result for %s", id).hasSize(1);
                    InferenceResult res = results.get(id).get(0);
                    assertThat(tokens.get(id).keySet()).as("contiguous seqs").containsExactlyElementsOf(
                            java.util.stream.IntStream.range(0, res.getCompletionTokens()).boxed().toList());
                    assertThat(tokens.get(id).values()).allMatch(s -> s.size() == 1);
                }
                assertAllCommitted(kafka, (String) props.get(WorkerConfig.GROUP_ID));
            }
        }
    }

    static void assertAllCommitted(KafkaFixture kafka, String group) throws Exception {
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", kafka.infra.bootstrapServers()))) {
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (true) {
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                        .partitionsToOffsetAndMetadata().get();
                var latest = admin.listOffsets(committed.keySet().stream().collect(Collectors.toMap(tp -> tp,
                        tp -> org.apache.kafka.clients.admin.OffsetSpec.latest()))).all().get();
                boolean all = !committed.isEmpty() && committed.entrySet().stream()
                        .allMatch(e -> e.getValue().offset() == latest.get(e.getKey()).offset());
                long total = latest.values().stream().mapToLong(i -> i.offset()).sum();
                if (all && total > 0) {
                    return;
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("offsets not committed to the end: " + committed + " vs " + latest);
                }
                Thread.sleep(100);
            }
        }
    }

    @Test
    void aPoisonRecordGoesToTheDlqWithItsBytesAndItsPartitionMovesOn() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("poison");
             Worker worker = Worker.start(new WorkerConfig(kafka.workerProps("w-poison")), model)) {
            byte[] garbage = "{\"prompt\":\"not avro\"}".getBytes(StandardCharsets.UTF_8);
            int partitions = 4;
            for (int p = 0; p < partitions; p++) {
                kafka.rawProducer.send(new ProducerRecord<>(kafka.topics.requests(), p, "poison-" + p, garbage)).get();
            }
            List<String> ids = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                InferenceRequest r = KafkaFixture.request("The lock keeper", 5).build();
                kafka.producer.send(new ProducerRecord<>(kafka.topics.requests(), p, r.getRequestId(), r)).get();
                ids.add(r.getRequestId());
            }
            kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).keySet().containsAll(ids), WAIT,
                    "results behind the poison records");
            var dlq = kafka.readUntil(kafka.topics.dlq(io.sluice.schemas.Tier.operational), rs -> rs.size() >= partitions,
                    WAIT, "dead letters of the poison records");
            for (var r : dlq) {
                DeadLetter d = (DeadLetter) r.value();
                assertThat(d.getOriginal().array()).isEqualTo(garbage);
                assertThat(d.getOrigin().getTopic()).isEqualTo(kafka.topics.requests());
                assertThat(d.getFinalError().getCode()).isEqualTo("invalid_request");
                assertThat(d.getFinalError().getMessage()).contains("single-object");
                assertThat(d.getRequestId()).startsWith("poison-");
            }
            assertThat(dlq.stream().map(r -> ((DeadLetter) r.value()).getOrigin().getPartition()).collect(Collectors.toSet()))
                    .hasSize(partitions);
        }
    }

    @Test
    void aCancelOnTheControlTopicStopsARunningStreamAndOneThatOvertookItsRequestStopsItAtOnce() throws Exception {
        int maxTokens = 200;
        long seed = SeedSearch.seedRunning(model, "The river", maxTokens, 0.8f);
        try (KafkaFixture kafka = new KafkaFixture("cancel");
             Worker worker = Worker.start(new WorkerConfig(kafka.workerProps("w-cancel")), model)) {
            assertThat(worker.awaitAssignment(WAIT)).isTrue();
            InferenceRequest running = KafkaFixture.request("The river", maxTokens).setTemperature(0.8f).setSeed(seed).build();
            kafka.send(running);
            kafka.readUntil(kafka.topics.tokens(), rs -> tokens(rs).containsKey(running.getRequestId()), WAIT,
                    "the first token");
            kafka.producer.send(new ProducerRecord<>(kafka.topics.control(), running.getRequestId(),
                    Cancel.newBuilder().setRequestId(running.getRequestId()).setTenant("acme")
                            .setRequestedAt(Instant.now()).build())).get();

            InferenceRequest overtaken = KafkaFixture.request("The river", maxTokens).build();
            kafka.producer.send(new ProducerRecord<>(kafka.topics.control(), overtaken.getRequestId(),
                    Cancel.newBuilder().setRequestId(overtaken.getRequestId()).setTenant("acme")
                            .setRequestedAt(Instant.now()).build())).get();
            Thread.sleep(300); // let the cancel be read first, as it was written first
            kafka.send(overtaken);

            InferenceRequest otherTenant = KafkaFixture.request("The lock keeper", 6).build();
            kafka.producer.send(new ProducerRecord<>(kafka.topics.control(), otherTenant.getRequestId(),
                    Cancel.newBuilder().setRequestId(otherTenant.getRequestId()).setTenant("mallory")
                            .setRequestedAt(Instant.now()).build())).get();
            kafka.send(otherTenant);

            var records = kafka.readUntil(kafka.topics.results(), rs -> results(rs).keySet().containsAll(
                    List.of(running.getRequestId(), overtaken.getRequestId(), otherTenant.getRequestId())), WAIT, "results");
            InferenceResult r1 = results(records).get(running.getRequestId()).get(0);
            assertThat(r1.getFinishReason()).isEqualTo(FinishReason.cancelled);
            assertThat(r1.getCompletionTokens()).isBetween(1, maxTokens - 1);
            InferenceResult r2 = results(records).get(overtaken.getRequestId()).get(0);
            assertThat(r2.getFinishReason()).isEqualTo(FinishReason.cancelled);
            assertThat(r2.getCompletionTokens()).isZero();
            InferenceResult r3 = results(records).get(otherTenant.getRequestId()).get(0);
            assertThat(r3.getFinishReason()).as("another tenant cannot cancel it").isEqualTo(FinishReason.length);
        }
    }

    @Test
    void whenAWorkerLeavesItsRequestsAreHandedOverAndEachSeqKeepsOneToken() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("handover")) {
            Map<String, Object> a = kafka.workerProps("w-a");
            a.put(WorkerConfig.LEASE_MS, 2000L);
            Map<String, Object> b = kafka.workerProps("w-b");
            b.put(WorkerConfig.LEASE_MS, 2000L);
            List<String> ids = new ArrayList<>();
            Worker first = Worker.start(new WorkerConfig(a), model);
            try (Worker second = Worker.start(new WorkerConfig(b), model)) {
                assertThat(first.awaitAssignment(WAIT)).isTrue();
                for (int i = 0; i < 16; i++) {
                    InferenceRequest r = KafkaFixture.request(i % 2 == 0 ? "The river" : "The lock keeper", 40).build();
                    ids.add(r.getRequestId());
                    kafka.send(r);
                }
                kafka.readUntil(kafka.topics.tokens(), rs -> tokens(rs).size() >= 2, WAIT, "streams under way");
                first.close();
                var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).keySet().containsAll(ids), WAIT,
                        "every request finished after the hand-over");
                Map<String, List<InferenceResult>> results = results(records);
                Map<String, TreeMap<Integer, Set<Integer>>> tokens = tokens(records);
                for (String id : ids) {
                    Set<String> texts = results.get(id).stream().map(InferenceResult::getText).collect(Collectors.toSet());
                    assertThat(texts).as("one outcome for %s (republished copies are identical)", id).hasSize(1);
                    assertThat(tokens.get(id).values()).as("no seq of %s got two different tokens", id)
                            .allMatch(s -> s.size() == 1);
                    assertThat(tokens.get(id).keySet()).containsExactlyElementsOf(java.util.stream.IntStream
                            .range(0, results.get(id).get(0).getCompletionTokens()).boxed().toList());
                }
            } finally {
                first.close();
            }
        }
    }

    /**
     * A worker that stalls past its lease loses the request to another claimant. It must not treat
     * the request as finished: committing past it would leave no one to hand it to if the new
     * holder died. It keeps the offset, waits for the holder, and resumes once that lease lapses.
     */
    @Test
    void aWorkerWhoseRequestIsTakenOverKeepsItsOffsetAndResumesWhenTheNewHolderDies() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("takeover");
             var store = io.sluice.idempotency.RedisIdempotencyStore.connect(java.net.URI.create(kafka.infra.redisUri()),
                     "sluice:", Duration.ofMinutes(10))) {
            Map<String, Object> props = kafka.workerProps("w-stalls");
            props.put(WorkerConfig.LEASE_MS, 1000L);
            java.util.concurrent.atomic.AtomicBoolean stallNext = new java.util.concurrent.atomic.AtomicBoolean();
            Faults faults = new Faults() {
                @Override
                public void beforeStep() throws InterruptedException {
                    // One stall longer than the lease; otherwise steps slow enough that the stream lasts.
                    Thread.sleep(stallNext.compareAndSet(true, false) ? 1_600 : 20);
                }
            };
            try (Worker worker = Worker.builder(new WorkerConfig(props)).model(model).faults(faults).start()) {
                assertThat(worker.awaitAssignment(WAIT)).isTrue();
                InferenceRequest r = KafkaFixture.request("The river", 150).build();
                var sent = kafka.producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(kafka.topics.requests(),
                        r.getRequestId(), r)).get();
                TopicPartition tp = new TopicPartition(sent.topic(), sent.partition());
                kafka.readUntil(kafka.topics.tokens(), rs -> tokens(rs).getOrDefault(r.getRequestId(), new TreeMap<>()).size() >= 5,
                        WAIT, "the stream under way");
                String key = io.sluice.idempotency.IdempotencyKeys.keyFor(r.getTenant(), r.getRequestId(), null, r.getMetadata());
                stallNext.set(true);
                io.sluice.idempotency.Claim taken = null;
                long until = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                while (System.nanoTime() < until) {
                    // The new holder never renews: it dies four seconds after taking the request over.
                    io.sluice.idempotency.Claim c = store.claim(key, r.getRequestId(), "another-worker", Duration.ofSeconds(4));
                    if (c.state() == io.sluice.idempotency.Claim.State.ACQUIRED) {
                        taken = c;
                        break;
                    }
                    Thread.sleep(50);
                }
                assertThat(taken).as("the lease lapsed while the worker stalled").isNotNull();
                // The worker wakes (0.6 s from now), finds its fence stale and stops decoding; the request is
                // not finished, and nothing may be committed past it while the new holder lives.
                Thread.sleep(2_000);
                try (Admin admin = Admin.create(Map.of("bootstrap.servers", kafka.infra.bootstrapServers()))) {
                    OffsetAndMetadata committed = admin.listConsumerGroupOffsets(kafka.topics.prefix() + "workers")
                            .partitionsToOffsetAndMetadata().get().get(tp);
                    assertThat(committed == null ? 0 : committed.offset())
                            .as("no commit past a request another worker holds").isLessThanOrEqualTo(sent.offset());
                }
                // Its lease ends without an outcome: the first worker takes the request back and finishes it.
                var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).containsKey(r.getRequestId()), WAIT,
                        "the request finished after all");
                TreeMap<Integer, Set<Integer>> seqs = tokens(records).get(r.getRequestId());
                assertThat(seqs.values()).as("one token per seq across the takeover").allMatch(s -> s.size() == 1);
                assertThat(seqs.keySet()).containsExactlyElementsOf(java.util.stream.IntStream
                        .range(0, results(records).get(r.getRequestId()).get(0).getCompletionTokens()).boxed().toList());
                assertAllCommitted(kafka, kafka.topics.prefix() + "workers");
            }
        }
    }

    /** Token events of {@code requestId} handed to {@code producer} so far, in order. */
    static List<TokenEvent> tokensSent(org.apache.kafka.clients.producer.MockProducer<String, Object> producer, String requestId) {
        return producer.history().stream().map(ProducerRecord::value)
                .filter(v -> v instanceof TokenEvent t && t.getRequestId().equals(requestId)).map(v -> (TokenEvent) v).toList();
    }

    /**
     * Waits until the request has decoded to its end and the count of its tokens sent to the
     * producer has held for 300 ms; returns that count. The engine lets a finished generation go
     * before its last step's tokens are checkpointed and sent, so an empty engine alone can still
     * leave the last token to come; a token event carries no mark of being the last.
     */
    static int awaitDecoded(Worker worker, org.apache.kafka.clients.producer.MockProducer<String, Object> producer,
            String requestId) throws Exception {
        await(() -> !tokensSent(producer, requestId).isEmpty() && worker.activeGenerations() == 0,
                "the stream decoded to its end");
        int sent;
        do {
            sent = tokensSent(producer, requestId).size();
            Thread.sleep(300);
        } while (tokensSent(producer, requestId).size() != sent);
        return sent;
    }

    static boolean resultSent(org.apache.kafka.clients.producer.MockProducer<String, Object> producer, String requestId) {
        return producer.history().stream().anyMatch(pr -> pr.value() instanceof InferenceResult res
                && res.getRequestId().equals(requestId));
    }

    static void await(java.util.function.BooleanSupplier condition, String awaiting) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            assertThat(System.nanoTime()).as("awaiting %s", awaiting).isLessThan(deadline);
            Thread.sleep(10);
        }
    }

    @Test
    void anOutcomeIsRecordedOnlyOnceKafkaHasEveryTokenItCountsAndRefusedTokensArePublishedAgainFirst() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("acked");
             var store = io.sluice.idempotency.RedisIdempotencyStore.connect(java.net.URI.create(kafka.infra.redisUri()),
                     "sluice:", Duration.ofMinutes(10))) {
            // A real consumer feeds the worker; what it publishes waits until the test acknowledges it.
            var held = kafka.heldProducer();
            Map<String, Object> props = kafka.workerProps("w-acked");
            props.put(WorkerConfig.LEASE_MS, 1000L);
            try (Worker worker = Worker.builder(new WorkerConfig(props)).model(model).producer(held).start()) {
                assertThat(worker.awaitAssignment(WAIT)).isTrue();
                InferenceRequest r = KafkaFixture.request("The river", 12).build();
                kafka.send(r);
                String key = io.sluice.idempotency.IdempotencyKeys.keyFor(r.getTenant(), r.getRequestId(), null, r.getMetadata());
                int decoded = awaitDecoded(worker, held, r.getRequestId());
                Thread.sleep(300);
                assertThat(store.outcome(key)).as("outcome while %d tokens are not acknowledged", decoded).isNull();
                assertThat(resultSent(held, r.getRequestId())).as("result before its tokens are acknowledged").isFalse();

                // Kafka refuses the first token and takes every later one, the last included.
                held.errorNext(new org.apache.kafka.common.errors.TimeoutException("held back by the test"));
                while (held.completeNext()) {
                    // acknowledge the rest
                }
                // No outcome for a stream with a token missing from Kafka: once the lease lapses the worker
                // claims the request again and replays the checkpoint, publishing every token again.
                await(() -> tokensSent(held, r.getRequestId()).size() == 2 * decoded, "the checkpoint replayed");
                Thread.sleep(300);
                assertThat(store.outcome(key)).as("outcome before the replayed tokens are acknowledged").isNull();
                while (held.completeNext()) {
                    // acknowledge the replay
                }
                await(() -> store.outcome(key) != null && resultSent(held, r.getRequestId()),
                        "outcome recorded and result published once Kafka has every token");
                InferenceResult result = io.sluice.schemas.SluiceCodec.get().decode(store.outcome(key), InferenceResult.class);
                assertThat(result.getCompletionTokens()).isEqualTo(decoded);
                List<TokenEvent> replayed = tokensSent(held, r.getRequestId()).subList(decoded, 2 * decoded);
                assertThat(replayed).extracting(TokenEvent::getSeq)
                        .containsExactlyElementsOf(java.util.stream.IntStream.range(0, decoded).boxed().toList());
                int lastToken = held.history().indexOf(held.history().stream()
                        .filter(pr -> pr.value() == replayed.get(decoded - 1)).findFirst().orElseThrow());
                assertThat(held.history().subList(lastToken, held.history().size()))
                        .as("the result published after the last token").anyMatch(pr -> pr.value() instanceof InferenceResult);
            }
        }
    }

    @Test
    void aCopyOfARequestWhoseOutcomeWaitsForKafkaIsAnsweredWithThatOutcomeNotDecodedAgain() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("acked-copy")) {
            var held = kafka.heldProducer();
            try (Worker worker = Worker.builder(new WorkerConfig(kafka.workerProps("w-acked-copy"))).model(model).producer(held)
                    .start()) {
                assertThat(worker.awaitAssignment(WAIT)).isTrue();
                InferenceRequest r = KafkaFixture.request("The river", 12).build();
                kafka.send(r);
                int decoded = awaitDecoded(worker, held, r.getRequestId());
                // The same record again (a producer's retry, a replay) while the outcome waits for Kafka.
                kafka.send(r);
                Thread.sleep(1_000);
                assertThat(tokensSent(held, r.getRequestId())).as("tokens after the copy arrived").hasSize(decoded);
                while (held.completeNext()) {
                    // acknowledge the stream
                }
                await(() -> held.history().stream().filter(pr -> pr.value() instanceof InferenceResult res
                        && res.getRequestId().equals(r.getRequestId()) && pr.topic().equals(kafka.topics.tokens())).count() == 2,
                        "the outcome published for the request and again for its copy");
                assertThat(tokensSent(held, r.getRequestId())).as("decoded once").hasSize(decoded);
            }
        }
    }

    @Test
    void aRepeatOfAFinishedKeyUnderItsOwnIdGetsTheFirstStreamUnderThatIdThenTheOutcomeDecodedOnce() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("repeat-key")) {
            try (Worker worker = Worker.start(new WorkerConfig(kafka.workerProps("w-repeat-key")), model)) {
                InferenceRequest first = KafkaFixture.request("The river", 12).setIdempotencyKey("order-7").build();
                kafka.send(first);
                kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).containsKey(first.getRequestId()), WAIT,
                        "the first request's result");
                // The same key under another id, as a producer's resubmit or a gateway that could not reach Redis writes it.
                InferenceRequest repeat = InferenceRequest.newBuilder(first).setRequestId("repeat-of-" + first.getRequestId())
                        .setCreatedAt(Instant.now()).build();
                kafka.send(repeat);
                var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).containsKey(repeat.getRequestId()),
                        WAIT, "the repeat's result");
                InferenceResult original = results(records).get(first.getRequestId()).get(0);
                assertThat(results(records).get(repeat.getRequestId())).hasSize(1);
                InferenceResult copy = results(records).get(repeat.getRequestId()).get(0);
                assertThat(copy.getText()).isEqualTo(original.getText());
                assertThat(copy.getCompletionTokens()).isEqualTo(original.getCompletionTokens()).isPositive();

                List<TokenEvent> firstStream = new ArrayList<>();
                List<TokenEvent> repeatStream = new ArrayList<>();
                int resultAt = -1;
                for (var r : records) {
                    if (r.value() instanceof TokenEvent t) {
                        (t.getRequestId().equals(first.getRequestId()) ? firstStream : repeatStream).add(t);
                        if (t.getRequestId().equals(repeat.getRequestId())) {
                            assertThat(resultAt).as("every token of the repeat before its result").isEqualTo(-1);
                        }
                    } else if (r.value() instanceof InferenceResult res && res.getRequestId().equals(repeat.getRequestId())) {
                        resultAt = repeatStream.size();
                    }
                }
                // Seqs 0 to completion_tokens - 1, the first stream's tokens, and together the result's text.
                assertThat(repeatStream).extracting(TokenEvent::getSeq).containsExactlyElementsOf(
                        java.util.stream.IntStream.range(0, copy.getCompletionTokens()).boxed().toList());
                assertThat(repeatStream).extracting(TokenEvent::getTokenId)
                        .containsExactlyElementsOf(firstStream.stream().map(TokenEvent::getTokenId).toList());
                assertThat(repeatStream.stream().map(TokenEvent::getText).collect(Collectors.joining()))
                        .isEqualTo(copy.getText());
                assertThat(firstStream).as("decoded once").hasSize(original.getCompletionTokens());
            }
        }
    }
}
