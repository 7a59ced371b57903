package io.sluice.worker;

import static io.sluice.worker.WorkerKafkaTest.results;
import static io.sluice.worker.WorkerKafkaTest.tokens;
import static org.assertj.core.api.Assertions.assertThat;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.FinishReason;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.OpsEvent;
import io.sluice.schemas.SluiceCodec;
import io.sluice.schemas.Tier;
import io.sluice.worker.model.ModelBundle;
import io.sluice.worker.retry.Failures;
import io.sluice.worker.retry.RetryHeaders;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Retries, dead letters and the circuit breaker on a real broker and a real Redis. */
class GovernanceKafkaTest {
    static final Duration WAIT = Duration.ofSeconds(90);
    static ModelBundle model;

    @BeforeAll
    static void load() {
        model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** Fails chosen attempts of one request at one seq, and notes when each attempt first published. */
    static final class FailAttempts implements Faults {
        final String requestId;
        final int failAtSeq;
        final Set<Integer> failing;
        final RuntimeException failure;
        final Map<Integer, Long> firstSeen = new ConcurrentHashMap<>();
        final Map<Integer, Long> failedAt = new ConcurrentHashMap<>();

        FailAttempts(String requestId, int failAtSeq, Set<Integer> failing, RuntimeException failure) {
            this.requestId = requestId;
            this.failAtSeq = failAtSeq;
            this.failing = failing;
            this.failure = failure;
        }

        @Override
        public RuntimeException failure(InferenceRequest request, int attempt, int seq) {
            if (!request.getRequestId().equals(requestId)) {
                return null;
            }
            firstSeen.putIfAbsent(attempt, System.currentTimeMillis());
            if (failing.contains(attempt) && seq >= failAtSeq) {
                failedAt.putIfAbsent(attempt, System.currentTimeMillis());
                return failure;
            }
            return null;
        }
    }

    static void assertOneContinuousStream(Map<String, TreeMap<Integer, Set<Integer>>> tokens, String id, int count) {
        assertThat(tokens.get(id).keySet()).as("seqs of %s", id)
                .containsExactlyElementsOf(java.util.stream.IntStream.range(0, count).boxed().toList());
        assertThat(tokens.get(id).values()).as("no seq of %s got two different tokens", id).allMatch(s -> s.size() == 1);
    }

    @Test
    void aFailedAttemptIsRetriedAfterItsBackoffAndResumesTheStreamFromItsCheckpoint() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("retry-ok")) {
            Map<String, Object> props = kafka.workerProps("w-retry");
            props.put(WorkerConfig.retryKey(Tier.operational, "backoff"), "fixed");
            props.put(WorkerConfig.retryKey(Tier.operational, "backoff.ms"), 700L);
            InferenceRequest r = KafkaFixture.request("The river", 12).build();
            FailAttempts faults = new FailAttempts(r.getRequestId(), 4, Set.of(0), new IllegalStateException("device lost"));
            try (Worker worker = Worker.builder(new WorkerConfig(props)).model(model).faults(faults).start()) {
                assertThat(worker.awaitAssignment(WAIT)).isTrue();
                kafka.send(r);
                var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).containsKey(r.getRequestId()), WAIT,
                        "the result after a retry");
                InferenceResult result = results(records).get(r.getRequestId()).get(0);
                assertThat(result.getError()).isNull();
                assertThat(result.getFinishReason()).isEqualTo(FinishReason.length);
                assertOneContinuousStream(tokens(records), r.getRequestId(), 12);

                var retries = kafka.readUntil(kafka.topics.retry(Tier.operational), rs -> !rs.isEmpty(), WAIT, "the retry");
                assertThat(retries).hasSize(1);
                RetryHeaders.Retry retry = RetryHeaders.read(retries.get(0).headers());
                assertThat(retry.attempt()).isEqualTo(1);
                assertThat(retry.origin().getTopic()).isEqualTo(kafka.topics.requests());
                assertThat(retry.history()).singleElement().satisfies(a -> {
                    assertThat(a.getAttempt()).isZero();
                    assertThat(a.getWorker()).isEqualTo("w-retry");
                    assertThat(a.getErrorClass()).isEqualTo(IllegalStateException.class.getName());
                    assertThat(a.getErrorMessage()).isEqualTo("device lost");
                });
                assertThat(retry.dueMillis() - retry.history().get(0).getAt().toEpochMilli()).isEqualTo(700L);
                assertThat(faults.firstSeen.get(1)).as("the retry did not run before it was due")
                        .isGreaterThanOrEqualTo(retry.dueMillis());
                WorkerKafkaTest.assertAllCommitted(kafka, (String) props.get(WorkerConfig.GROUP_ID));
            }
        }
    }

    @Test
    void retriesExhaustedGoToTheDlqWithEveryAttemptAndTheClientGetsDeadLettered() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("retry-dlq")) {
            Map<String, Object> props = kafka.workerProps("w-dlq");
            props.put(WorkerConfig.retryKey(Tier.financial, "max.retries"), 2);
            props.put(WorkerConfig.retryKey(Tier.financial, "backoff.ms"), 200L);
            InferenceRequest r = KafkaFixture.request("The lock keeper", 10).setTier(Tier.financial)
                    .setTraceId("trace-42").build();
            FailAttempts faults = new FailAttempts(r.getRequestId(), 2, Set.of(0, 1, 2), new IllegalStateException("device lost"));
            try (Worker worker = Worker.builder(new WorkerConfig(props)).model(model).faults(faults).start()) {
                assertThat(worker.awaitAssignment(WAIT)).isTrue();
                kafka.send(r);
                var dlq = kafka.readUntil(kafka.topics.dlq(Tier.financial), rs -> !rs.isEmpty(), WAIT, "the dead letter");
                DeadLetter d = (DeadLetter) dlq.get(0).value();
                assertThat(d.getRequestId()).isEqualTo(r.getRequestId());
                assertThat(d.getTier()).isEqualTo(Tier.financial);
                assertThat(d.getTraceId()).isEqualTo("trace-42");
                assertThat(d.getOriginal().array()).isEqualTo(SluiceCodec.get().encode(r));
                assertThat(d.getOriginalFingerprint()).isEqualTo(SluiceCodec.fingerprintOf(SluiceCodec.get().encode(r)));
                assertThat(d.getOrigin().getTopic()).isEqualTo(kafka.topics.requests());
                assertThat(d.getAttempts()).extracting(a -> a.getAttempt()).containsExactly(0, 1, 2);
                assertThat(d.getAttempts()).allMatch(a -> a.getWorker().equals("w-dlq")
                        && a.getErrorClass().equals(IllegalStateException.class.getName()));
                // Exponential 200 ms x 2^n with +/-20 % jitter between the attempts.
                long gap1 = d.getAttempts().get(1).getAt().toEpochMilli() - d.getAttempts().get(0).getAt().toEpochMilli();
                long gap2 = d.getAttempts().get(2).getAt().toEpochMilli() - d.getAttempts().get(1).getAt().toEpochMilli();
                assertThat(gap1).isGreaterThanOrEqualTo(160);
                assertThat(gap2).isGreaterThanOrEqualTo(320);
                assertThat(d.getFinalError().getCode()).isEqualTo("failed");
                assertThat(d.getFinalError().getMessage()).isEqualTo("device lost");

                var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).containsKey(r.getRequestId()), WAIT,
                        "the dead-lettered outcome");
                InferenceResult result = results(records).get(r.getRequestId()).get(0);
                assertThat(result.getError().getCode()).isEqualTo("dead_lettered");
                assertThat(result.getError().getMessage()).contains(r.getRequestId()).contains("after 3 attempts");
                assertOneContinuousStream(tokens(records), r.getRequestId(), 2);
                assertThat(kafka.readUntil(kafka.topics.retry(Tier.financial), rs -> rs.size() >= 2, WAIT, "retries"))
                        .hasSize(2);
                WorkerKafkaTest.assertAllCommitted(kafka, (String) props.get(WorkerConfig.GROUP_ID));
            }
        }
    }

    @Test
    void aPermanentFailureIsDeadLetteredAtOnceWithoutARetry() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("permanent")) {
            InferenceRequest r = KafkaFixture.request("The river", 10).build();
            FailAttempts faults = new FailAttempts(r.getRequestId(), 0, Set.of(0),
                    new Failures.PermanentFailureException("prompt: rejected by the content policy"));
            InferenceRequest ok = KafkaFixture.request("The river", 4).build();
            try (Worker worker = Worker.builder(new WorkerConfig(kafka.workerProps("w-perm"))).model(model).faults(faults)
                    .start()) {
                kafka.send(r);
                kafka.send(ok);
                var dlq = kafka.readUntil(kafka.topics.dlq(Tier.operational), rs -> !rs.isEmpty(), WAIT, "the dead letter");
                DeadLetter d = (DeadLetter) dlq.get(0).value();
                assertThat(d.getAttempts()).hasSize(1);
                assertThat(d.getFinalError().getCode()).isEqualTo("invalid_request");
                assertThat(d.getFinalError().getRetryable()).isFalse();
                var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).keySet().containsAll(
                        List.of(r.getRequestId(), ok.getRequestId())), WAIT, "both outcomes");
                assertThat(results(records).get(r.getRequestId()).get(0).getError().getMessage()).contains("not retryable");
                assertThat(results(records).get(ok.getRequestId()).get(0).getError()).isNull();
                assertThat(kafka.readUntil(kafka.topics.retry(Tier.operational), rs -> true, Duration.ofSeconds(2), "none"))
                        .isEmpty();
            }
        }
    }

    @Test
    void aWaitingRetryIsProcessedWhenDueAcrossARebalanceAndAWorkerLeaving() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("retry-rebalance")) {
            Map<String, Object> a = kafka.workerProps("w-first");
            Map<String, Object> b = kafka.workerProps("w-second");
            for (Map<String, Object> p : List.of(a, b)) {
                p.put(WorkerConfig.retryKey(Tier.operational, "backoff"), "fixed");
                p.put(WorkerConfig.retryKey(Tier.operational, "backoff.ms"), 6000L);
                p.put(WorkerConfig.LEASE_MS, 2000L);
            }
            InferenceRequest r = KafkaFixture.request("The river", 10).build();
            FailAttempts failFirst = new FailAttempts(r.getRequestId(), 3, Set.of(0), new IllegalStateException("device lost"));
            FailAttempts watchSecond = new FailAttempts(r.getRequestId(), 0, Set.of(), null);
            Worker first = Worker.builder(new WorkerConfig(a)).model(model).faults(failFirst).start();
            try {
                assertThat(first.awaitAssignment(WAIT)).isTrue();
                kafka.send(r);
                var retries = kafka.readUntil(kafka.topics.retry(Tier.operational), rs -> !rs.isEmpty(), WAIT, "the retry");
                long due = RetryHeaders.read(retries.get(0).headers()).dueMillis();
                Thread.sleep(500); // the first worker reads the retry and pauses its partition
                try (Worker second = Worker.builder(new WorkerConfig(b)).model(model).faults(watchSecond).start()) {
                    assertThat(second.awaitAssignment(WAIT)).as("a rebalance while the retry waits").isTrue();
                    first.close(); // and another one: every partition moves to the second worker
                    var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).containsKey(r.getRequestId()),
                            WAIT, "the result");
                    assertThat(results(records).get(r.getRequestId()).get(0).getError()).isNull();
                    assertOneContinuousStream(tokens(records), r.getRequestId(), 10);
                    assertThat(watchSecond.firstSeen).as("the second worker ran the retry").containsKey(1);
                    assertThat(watchSecond.firstSeen.get(1)).isGreaterThanOrEqualTo(due);
                    assertThat(failFirst.firstSeen).doesNotContainKey(1);
                }
            } finally {
                first.close();
            }
        }
    }

    @Test
    void fiveTimeoutsOpenTheCircuitThePartitionsMoveToAHealthyWorkerAndAProbeClosesItAgain() throws Exception {
        try (KafkaFixture kafka = new KafkaFixture("circuit")) {
            Map<String, Object> a = kafka.workerProps("w-slow");
            a.put(WorkerConfig.PROCESSING_TIMEOUT_MS, 1000L);
            a.put(WorkerConfig.CIRCUIT_COOLDOWN_MS, 3000L);
            Map<String, Object> b = kafka.workerProps("w-healthy");
            for (Map<String, Object> p : List.of(a, b)) {
                p.put(WorkerConfig.retryKey(Tier.operational, "backoff"), "fixed");
                p.put(WorkerConfig.retryKey(Tier.operational, "backoff.ms"), 200L);
                p.put(WorkerConfig.LEASE_MS, 2000L);
            }
            AtomicBoolean slow = new AtomicBoolean(true);
            Faults slowDevice = new Faults() {
                @Override
                public void beforeStep() throws InterruptedException {
                    if (slow.get()) {
                        Thread.sleep(150);
                    }
                }
            };
            List<String> ids = new ArrayList<>();
            Worker sick = Worker.builder(new WorkerConfig(a)).model(model).faults(slowDevice).start();
            try {
                assertThat(sick.awaitAssignment(WAIT)).isTrue();
                for (int i = 0; i < 6; i++) {
                    InferenceRequest r = KafkaFixture.request("The river", 40).build();
                    ids.add(r.getRequestId());
                    kafka.send(r);
                }
                awaitState(sick, CircuitBreaker.State.OPEN);
                var events = kafka.readUntil(kafka.topics.events(), rs -> rs.stream()
                        .anyMatch(e -> ((OpsEvent) e.value()).getType().equals("circuit_opened")), WAIT, "the alert event");
                OpsEvent opened = (OpsEvent) events.stream().filter(e -> ((OpsEvent) e.value()).getType()
                        .equals("circuit_opened")).findFirst().orElseThrow().value();
                assertThat(opened.getSource()).isEqualTo("w-slow");
                assertThat(opened.getDetail()).contains("5 consecutive processing timeouts");

                try (Worker healthy = Worker.start(new WorkerConfig(b), model)) {
                    var records = kafka.readUntil(kafka.topics.tokens(), rs -> results(rs).keySet().containsAll(ids), WAIT,
                            "every request finished on the healthy worker");
                    for (String id : ids) {
                        List<InferenceResult> res = results(records).get(id);
                        assertThat(res).allMatch(x -> x.getError() == null && x.getWorkerId().equals("w-healthy"));
                        assertOneContinuousStream(tokens(records), id, 40);
                    }
                    assertThat(records.stream().filter(x -> x.value() instanceof io.sluice.schemas.TokenEvent t
                            && t.getWorkerId().equals("w-slow")).count()).as("the sick worker streamed before it opened")
                            .isPositive();

                    // The device recovers: after the cool-down the worker probes, and a completed request closes it.
                    slow.set(false);
                    awaitState(sick, CircuitBreaker.State.HALF_OPEN);
                    long deadline = System.nanoTime() + WAIT.toNanos();
                    while (sick.circuitState() != CircuitBreaker.State.CLOSED && System.nanoTime() < deadline) {
                        kafka.send(KafkaFixture.request("The lock keeper", 4).build());
                        Thread.sleep(300);
                    }
                    assertThat(sick.circuitState()).isEqualTo(CircuitBreaker.State.CLOSED);
                    kafka.readUntil(kafka.topics.events(), rs -> rs.stream()
                            .anyMatch(e -> ((OpsEvent) e.value()).getType().equals("circuit_closed")), WAIT, "closed event");
                }
            } finally {
                sick.close();
            }
        }
    }

    static void awaitState(Worker w, CircuitBreaker.State state) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (w.circuitState() != state) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("circuit of " + w.id() + " stayed " + w.circuitState() + ", expected " + state);
            }
            Thread.sleep(20);
        }
    }
}
