package io.sluice.worker;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.sluice.idempotency.Claim;
import io.sluice.idempotency.IdempotencyKeys;
import io.sluice.idempotency.IdempotencyStore;
import io.sluice.idempotency.RedisIdempotencyStore;
import io.sluice.schemas.Attempt;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.Cancel;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.OpsEvent;
import io.sluice.schemas.MalformedRecordException;
import io.sluice.schemas.Origin;
import io.sluice.schemas.SluiceCodec;
import io.sluice.schemas.Tier;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.Topics;
import io.sluice.worker.engine.BatchEngine;
import io.sluice.worker.engine.Generation;
import io.sluice.worker.engine.GenerationParams;
import io.sluice.worker.engine.StepSink;
import io.sluice.worker.engine.TextStreamer;
import io.sluice.worker.internal.BackoffGate;
import io.sluice.worker.internal.Circuit;
import io.sluice.worker.internal.OffsetTracker;
import io.sluice.worker.internal.WorkQueue;
import io.sluice.worker.model.ModelBundle;
import io.sluice.worker.retry.Failures;
import io.sluice.worker.retry.RetryHeaders;
import io.sluice.worker.retry.TierPolicy;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.DelayQueue;
import java.util.concurrent.Delayed;
import java.util.concurrent.TimeUnit;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A worker: consumes requests, claims each in Redis, decodes them together in a continuously
 * batched {@link BatchEngine} and publishes their token events and results.
 *
 * <p>Two threads. The consumer thread owns both Kafka consumers (they are not thread-safe): the
 * group consumer of the requests topic, which hands requests to the decode thread through a
 * bounded priority queue, pauses its partitions while the queue is full, and commits per
 * partition only up to the lowest request not yet terminal; and a group-free reader of the
 * control topic, whose cancellations it passes on. The decode thread owns the model: it claims
 * requests, runs engine steps, checkpoints every step's tokens in Redis in one round trip under
 * each claim's fence before any of them is published, and renews leases.
 */
public final class Worker implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Worker.class);
    /** Cancellations remembered for requests not yet seen, so a cancel may overtake its request. */
    private static final int RECENT_CANCELS = 10_000;

    private final WorkerConfig config;
    private final String workerId;
    private final Topics topics;
    private final ModelBundle model;
    private final boolean ownsModel;
    private final IdempotencyStore store;
    private final Producer<String, Object> producer;
    private final KafkaConsumer<String, byte[]> consumer;
    private final KafkaConsumer<String, byte[]> control;
    private final int tokenPartitions;
    private final WorkQueue<Work> queue;
    private final DelayQueue<Work> waiting = new DelayQueue<>();
    private final ConcurrentLinkedQueue<Work> finished = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<Cancel> cancels = new ConcurrentLinkedQueue<>();
    private final Duration lease;
    private final Clock clock;
    private final Faults faults;
    private final MeterRegistry meters;
    private final Map<Tier, TierPolicy> retryPolicy = new java.util.EnumMap<>(Tier.class);
    private final long processingTimeoutNanos;
    private final CircuitBreaker circuit;
    private final Timer ttft;
    private final Timer interToken;
    private final Timer checkpointLatency;
    private final Timer claimLatency;
    private final DistributionSummary batchSize;
    /** Looked up once, not per token: this counter is on the decode thread's hot path. */
    private final Map<Tier, Counter> tokensGenerated = new java.util.EnumMap<>(Tier.class);

    /** Set when the circuit opens; the decode thread then hands back everything it holds. */
    private volatile boolean handBack;
    private final long createdNanos = System.nanoTime();
    private final Thread consumerThread;
    private final Thread decodeThread;
    private final CountDownLatch assigned = new CountDownLatch(1);
    private volatile boolean running = true;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    private volatile BatchEngine engine;

    /** A request taken from a partition, with where it came from. */
    static final class Work implements Delayed {
        final TopicPartition tp;
        final long offset;
        final InferenceRequest request;
        /** The partition's incarnation in the offset tracker when this record was polled. */
        final Object incarnation;
        /** The record value as read, kept for a retry or a dead letter. */
        final byte[] original;
        /** 0 for a request read from the requests topic, n for its n-th retry. */
        final int attempt;
        /** Where the request was first read, before any retry. */
        final Origin origin;
        /** Attempts that failed before this one, oldest first. */
        final List<Attempt> history;
        long dueNanos;

        Work(TopicPartition tp, long offset, InferenceRequest request, Object incarnation) {
            this(tp, offset, request, incarnation, null, 0, new Origin(tp.topic(), tp.partition(), offset), List.of());
        }

        Work(TopicPartition tp, long offset, InferenceRequest request, Object incarnation, byte[] original, int attempt,
                Origin origin, List<Attempt> history) {
            this.tp = tp;
            this.offset = offset;
            this.request = request;
            this.incarnation = incarnation;
            this.original = original;
            this.attempt = attempt;
            this.origin = origin;
            this.history = history;
        }

        @Override
        public long getDelay(TimeUnit unit) {
            return unit.convert(dueNanos - System.nanoTime(), TimeUnit.NANOSECONDS);
        }

        @Override
        public int compareTo(Delayed o) {
            return Long.compare(getDelay(TimeUnit.NANOSECONDS), o.getDelay(TimeUnit.NANOSECONDS));
        }
    }

    /**
     * What the decode thread keeps for a generation it owns. {@code streamId} is the request the
     * key was first claimed for: a duplicate submitted straight to the topic decodes (if it must)
     * under that id, so there is one stream, and gets a copy of the outcome under its own id.
     */
    private static final class Active {
        final Work work;
        final String key;
        final long fence;
        final String streamId;
        /** False once this generation runs without a claim (a Redis outage under fail-open). */
        boolean claimed;
        /** When this attempt started decoding, for the processing timeout. */
        final long startedNanos = System.nanoTime();
        /** When this attempt last published a token, for the inter-token latency. */
        long lastTokenNanos;
        /** The send of the last token event this attempt published; its outcome waits for it. */
        java.util.concurrent.Future<RecordMetadata> lastSent;
        /**
         * Set when Kafka refused an earlier token event of this attempt. The tokens of a stream go
         * to one partition, so that failure is known by the time the last one is acknowledged.
         */
        volatile boolean sendFailed;

        Active(Work work, String key, long fence, String streamId, boolean claimed) {
            this.work = work;
            this.key = key;
            this.fence = fence;
            this.streamId = streamId;
            this.claimed = claimed;
        }

        Work work() {
            return work;
        }

        String key() {
            return key;
        }

        long fence() {
            return fence;
        }

        String streamId() {
            return streamId;
        }
    }

    /** An outcome reached without a claim, to record in Redis once it answers again. */
    private record Reconcile(String key, String requestId, boolean failed, byte[] outcome) {
    }

    /** What to do with a request while Redis is unavailable. */
    private enum OutagePolicy { FAIL_CLOSED, FAIL_OPEN }

    private static final long REDIS_PROBE_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final int MAX_RECONCILE = 100_000;
    private final Map<Tier, OutagePolicy> outagePolicy = new java.util.EnumMap<>(Tier.class);
    private final ArrayDeque<Reconcile> reconcile = new ArrayDeque<>();
    private long redisDownSince = -1;
    private long redisProbeAt;
    private long decodedWithoutClaim;
    private long reconcileConflicts;

    /** Starts a worker that loads its own model. */
    public static Worker start(WorkerConfig config) {
        return builder(config).start();
    }

    /** Starts a worker on an already loaded model, which stays open when the worker closes. */
    public static Worker start(WorkerConfig config, ModelBundle model) {
        return builder(config).model(model).start();
    }

    public static Builder builder(WorkerConfig config) {
        return new Builder(config);
    }

    /** What a worker runs with besides its settings; each has a production default. */
    public static final class Builder {
        private final WorkerConfig config;
        private ModelBundle model;
        private Faults faults = Faults.NONE;
        private MeterRegistry meters = new SimpleMeterRegistry();
        private Clock clock = Clock.systemUTC();
        private Producer<String, Object> producer;

        private Builder(WorkerConfig config) {
            this.config = config;
        }

        /** An already loaded model, which stays open when the worker closes; default: load the configured one. */
        public Builder model(ModelBundle model) {
            this.model = model;
            return this;
        }

        public Builder faults(Faults faults) {
            this.faults = faults;
            return this;
        }

        public Builder meters(MeterRegistry meters) {
            this.meters = meters;
            return this;
        }

        /**
         * The producer of token events, results, retries and dead letters (values already encoded
         * or Avro records), which the worker closes; default: one of its own on the configured
         * bootstrap servers.
         */
        public Builder producer(Producer<String, Object> producer) {
            this.producer = producer;
            return this;
        }

        /** Wall clock of due times, attempts and events. */
        public Builder clock(Clock clock) {
            this.clock = clock;
            return this;
        }

        public Worker start() {
            if (model != null) {
                return new Worker(config, model, false, this);
            }
            ModelBundle loaded = ModelBundle.load(config.getString(WorkerConfig.MODEL), config.getString(WorkerConfig.DEVICE),
                    config.getInt(WorkerConfig.INTRA_OP_THREADS));
            return new Worker(config, loaded, true, this);
        }
    }

    private Worker(WorkerConfig config, ModelBundle model, boolean ownsModel, Builder with) {
        Clock clock = with.clock;
        this.faults = with.faults;
        this.meters = with.meters;
        this.config = config;
        this.workerId = config.workerId();
        this.topics = new Topics(config.getString(CommonConfig.TOPIC_PREFIX));
        this.model = model;
        this.ownsModel = ownsModel;
        this.clock = clock;
        this.lease = Duration.ofMillis(config.getLong(WorkerConfig.LEASE_MS));
        this.queue = new WorkQueue<>(config.getInt(WorkerConfig.QUEUE_CAPACITY));
        this.store = RedisIdempotencyStore.connect(URI.create(config.getString(CommonConfig.REDIS_URI)),
                "sluice:", Duration.ofMillis(config.getLong(WorkerConfig.IDEMPOTENCY_TTL_MS)),
                Duration.ofMillis(config.getInt(WorkerConfig.REDIS_TIMEOUT_MS)));
        outagePolicy.put(Tier.financial, policy(config.getString(WorkerConfig.REDIS_OUTAGE_FINANCIAL)));
        outagePolicy.put(Tier.operational, policy(config.getString(WorkerConfig.REDIS_OUTAGE_OPERATIONAL)));
        String bootstrap = config.getString(CommonConfig.BOOTSTRAP_SERVERS);
        this.producer = with.producer != null ? with.producer : new KafkaProducer<>(Map.of(
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                ProducerConfig.LINGER_MS_CONFIG, 1,
                ProducerConfig.CLIENT_ID_CONFIG, "sluice-worker-" + workerId),
                new StringSerializer(), AvroSerde.passThroughSerializer());
        Map<String, Object> consumerProps = new HashMap<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ConsumerConfig.GROUP_ID_CONFIG, config.getString(WorkerConfig.GROUP_ID),
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Math.max(1, config.getInt(WorkerConfig.QUEUE_CAPACITY) / 2),
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, config.getInt(WorkerConfig.SESSION_TIMEOUT_MS),
                // Members learn of a rebalance at their next heartbeat: Kafka's 3 s default at most, so a
                // worker joining (or a circuit closing) gets partitions within seconds.
                ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG,
                Math.max(1000, Math.min(3000, config.getInt(WorkerConfig.SESSION_TIMEOUT_MS) / 3)),
                ConsumerConfig.CLIENT_ID_CONFIG, "sluice-worker-" + workerId));
        String instance = config.getString(WorkerConfig.GROUP_INSTANCE_ID);
        if (!instance.isBlank()) {
            consumerProps.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        }
        this.consumer = new KafkaConsumer<>(consumerProps, new StringDeserializer(), new ByteArrayDeserializer());
        this.tokenPartitions = producer.partitionsFor(topics.tokens()).size();
        this.control = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.CLIENT_ID_CONFIG, "sluice-worker-control-" + workerId),
                new StringDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> controlPartitions = control.partitionsFor(topics.control(), Duration.ofSeconds(30)).stream()
                .map(p -> new TopicPartition(p.topic(), p.partition())).toList();
        control.assign(controlPartitions);
        control.seekToEnd(controlPartitions);
        controlPartitions.forEach(control::position);
        for (Tier tier : Tier.values()) {
            retryPolicy.put(tier, config.retryPolicy(tier));
        }
        this.processingTimeoutNanos = TimeUnit.MILLISECONDS.toNanos(config.getLong(WorkerConfig.PROCESSING_TIMEOUT_MS));
        this.circuit = Circuit.create(workerId, config, this::circuitChanged);
        this.ttft = Timer.builder("sluice.time.to.first.token").description("From submission to the first token published")
                .publishPercentileHistogram().register(meters);
        this.interToken = Timer.builder("sluice.inter.token.latency").description("Between two tokens of one stream")
                .publishPercentileHistogram().register(meters);
        this.checkpointLatency = Timer.builder("sluice.redis.latency").tag("op", "checkpoint")
                .description("One write-ahead checkpoint round trip for a whole decode step").publishPercentileHistogram()
                .register(meters);
        this.claimLatency = Timer.builder("sluice.redis.latency").tag("op", "claim").publishPercentileHistogram()
                .register(meters);
        for (Tier tier : Tier.values()) {
            tokensGenerated.put(tier, meters.counter("sluice.tokens.generated", "tier", tier.name()));
        }
        this.batchSize = DistributionSummary.builder("sluice.batch.size").description("Sequences in each decode step")
                .register(meters);
        Gauge.builder("sluice.queue.depth", this, w -> w.queue.size() + w.waiting.size())
                .description("Requests taken from Kafka and waiting to decode").register(meters);
        Gauge.builder("sluice.active.sequences", this, Worker::activeGenerations).register(meters);
        Gauge.builder("sluice.circuit.state", circuit, c -> Circuit.gaugeValue(c.getState()))
                .description("Circuit breaker of this worker: 0 closed, 1 open, 2 half-open")
                .tag("worker", workerId).register(meters);
        this.consumerThread = new Thread(this::consumeLoop, "sluice-worker-consumer");
        this.decodeThread = new Thread(null, this::decodeLoop, "sluice-worker-decode", ModelBundle.NATIVE_STACK_BYTES);
        consumerThread.start();
        decodeThread.start();
        log.info("Worker {} started on {} ({}), group {}", workerId, model.name(), model.device(),
                config.getString(WorkerConfig.GROUP_ID));
    }

    public String id() {
        return workerId;
    }

    /** Waits until the consumer group gave this worker its first assignment. */
    public boolean awaitAssignment(Duration timeout) throws InterruptedException {
        return assigned.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Generations the engine holds right now. */
    public int activeGenerations() {
        BatchEngine e = engine;
        return e == null ? 0 : e.size();
    }

    // ---- consumer thread -------------------------------------------------------------------

    private void consumeLoop() {
        OffsetTracker tracker = new OffsetTracker();
        ArrayDeque<Work> overflow = new ArrayDeque<>();
        BackoffGate gate = new BackoffGate();
        Set<TopicPartition> paused = new HashSet<>();
        Set<String> retryTopics = Set.of(topics.retry(Tier.financial), topics.retry(Tier.operational));
        List<String> sources = List.of(topics.requests(), topics.retry(Tier.financial), topics.retry(Tier.operational));
        ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                drainFinished(tracker);
                commit(tracker, true);
                for (TopicPartition tp : partitions) {
                    tracker.forget(tp);
                }
                // Queued work of a revoked partition goes to its new owner; what is already decoding
                // finishes here under its claim, and the new owner finds the outcome stored.
                overflow.removeIf(w -> partitions.contains(w.tp));
                queue.removeIf(w -> partitions.contains(w.tp));
                gate.revoked(partitions);
                paused.removeAll(partitions);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                if (assigned.getCount() > 0) {
                    log.info("Cold start worker consumer assigned: {} ms", (System.nanoTime() - createdNanos) / 1_000_000);
                }
                // Pause state is re-derived after every rebalance, never carried over: a retry
                // partition is polled afresh and paused again only if its head is still not due.
                paused.retainAll(consumer.paused());
                gate.retain(consumer.assignment());
                assigned.countDown();
            }
        };
        boolean subscribed = false;
        try {
            while (running) {
                boolean takesWork = Circuit.takesWork(circuit.getState());
                if (takesWork && !subscribed) {
                    consumer.subscribe(sources, listener);
                    subscribed = true;
                } else if (!takesWork && subscribed) {
                    // The circuit opened: leave the group, so healthy workers take these partitions.
                    consumer.unsubscribe();
                    subscribed = false;
                    paused.clear();
                    log.warn("Worker {} left the group while its circuit is open", workerId);
                }
                drainFinished(tracker);
                commit(tracker, false);
                if (!subscribed) {
                    overflow.clear();
                    Thread.sleep(50);
                    pollControl();
                    continue;
                }
                while (!overflow.isEmpty() && queue.offer(overflow.peek(), overflow.peek().request.getPriority())) {
                    overflow.poll();
                }
                gate.release(clock.millis());
                Set<TopicPartition> want = new HashSet<>();
                if (!overflow.isEmpty()) {
                    want.addAll(consumer.assignment());
                }
                want.addAll(gate.held());
                want.retainAll(consumer.assignment());
                Set<TopicPartition> toPause = new HashSet<>(want);
                toPause.removeAll(paused);
                Set<TopicPartition> toResume = new HashSet<>(paused);
                toResume.removeAll(want);
                consumer.pause(toPause);
                consumer.resume(toResume);
                paused.clear();
                paused.addAll(want);
                Set<TopicPartition> waitingHead = new HashSet<>();
                for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(20))) {
                    TopicPartition tp = new TopicPartition(record.topic(), record.partition());
                    if (waitingHead.contains(tp)) {
                        continue; // behind a retry that is not due yet; read again after it
                    }
                    if (retryTopics.contains(record.topic())
                            && gate.hold(tp, RetryHeaders.due(record.headers()), clock.millis())) {
                        consumer.seek(tp, record.offset());
                        waitingHead.add(tp);
                        continue;
                    }
                    Object incarnation = tracker.started(tp, record.offset());
                    Work work = decodeRecord(record, tp, incarnation);
                    if (work == null) {
                        continue;
                    }
                    if (!overflow.isEmpty() || !queue.offer(work, work.request.getPriority())) {
                        overflow.add(work);
                    }
                }
                pollControl();
            }
        } catch (WakeupException e) {
            // close() woke us up.
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            log.error("Worker consumer loop failed", e);
        } finally {
            drainFinished(tracker);
            commit(tracker, true);
            consumer.close(Duration.ofSeconds(5));
            control.close(Duration.ofSeconds(1));
        }
    }

    /** A polled record as work, or null when it went straight to the DLQ (it cannot be decoded). */
    private Work decodeRecord(ConsumerRecord<String, byte[]> record, TopicPartition tp, Object incarnation) {
        RetryHeaders.Retry retry;
        InferenceRequest request;
        try {
            retry = RetryHeaders.read(record.headers());
            request = SluiceCodec.get().decode(record.value(), InferenceRequest.class);
        } catch (MalformedRecordException e) {
            deadLetter(record.topic(), record.partition(), record.offset(), record.key(), record.value(),
                    e.fingerprint(), null, new ErrorInfo("invalid_request", e.getMessage(), false),
                    new Work(tp, record.offset(), null, incarnation));
            return null;
        } catch (RuntimeException e) {
            deadLetter(record.topic(), record.partition(), record.offset(), record.key(), record.value(),
                    null, null, new ErrorInfo("invalid_request", "headers: " + e.getMessage(), false),
                    new Work(tp, record.offset(), null, incarnation));
            return null;
        }
        if (retry == null) {
            return new Work(tp, record.offset(), request, incarnation, record.value(), 0,
                    new Origin(record.topic(), record.partition(), record.offset()), List.of());
        }
        return new Work(tp, record.offset(), request, incarnation, record.value(), retry.attempt(), retry.origin(),
                retry.history());
    }

    private void pollControl() {
        for (ConsumerRecord<String, byte[]> record : control.poll(Duration.ZERO)) {
            try {
                cancels.add(SluiceCodec.get().decode(record.value(), Cancel.class));
            } catch (MalformedRecordException e) {
                log.warn("Ignoring undecodable control record at {}-{}@{}", record.topic(), record.partition(),
                        record.offset());
            }
        }
    }

    private void drainFinished(OffsetTracker tracker) {
        Work w;
        while ((w = finished.poll()) != null) {
            tracker.finished(w.tp, w.offset, w.incarnation);
        }
    }

    private void commit(OffsetTracker tracker, boolean sync) {
        var offsets = tracker.committable();
        if (offsets.isEmpty()) {
            return;
        }
        try {
            if (sync) {
                consumer.commitSync(offsets);
                tracker.committed(offsets);
            } else {
                consumer.commitAsync(offsets, (done, error) -> {
                    if (error == null) {
                        tracker.committed(done);
                    }
                });
            }
        } catch (RuntimeException e) {
            log.warn("Offset commit failed; the offsets are committed again later", e);
        }
    }

    /** A request no retry can fix goes to its tier's DLQ with its original bytes; its partition moves on. */
    private void deadLetter(String topic, int partition, long offset, String key, byte[] original, Long fingerprint,
            InferenceRequest request, ErrorInfo error, Work work) {
        deadLetter(topic, partition, offset, key, original, fingerprint, request, error, List.of(), work);
    }

    /**
     * Writes a dead letter; {@code work}, when given, is finished once it is durable (a request
     * that has an outcome is finished by the outcome's publication instead).
     */
    private void deadLetter(String topic, int partition, long offset, String key, byte[] original, Long fingerprint,
            InferenceRequest request, ErrorInfo error, List<Attempt> attempts, Work work) {
        log.warn("Dead-lettering {}-{}@{}: {}", topic, partition, offset, error.getMessage());
        if (fingerprint == null && original != null) {
            try {
                fingerprint = SluiceCodec.fingerprintOf(original);
            } catch (MalformedRecordException notAvro) {
                // stays null: the original carried no schema fingerprint
            }
        }
        Tier tier = request == null ? Tier.operational : request.getTier();
        DeadLetter letter = DeadLetter.newBuilder()
                .setRequestId(request == null ? key : request.getRequestId())
                .setTenant(request == null ? null : request.getTenant())
                .setTier(tier)
                .setOriginal(ByteBuffer.wrap(original == null ? new byte[0] : original))
                .setOriginalFingerprint(fingerprint)
                .setOrigin(new Origin(topic, partition, offset))
                .setAttempts(attempts)
                .setFinalError(error)
                .setTraceId(request == null ? null : request.getTraceId())
                .setDeadLetteredAt(clock.instant())
                .build();
        meters.counter("sluice.dlq.records", "tier", tier.name()).increment();
        producer.send(new ProducerRecord<>(topics.dlq(tier), key, letter), (md, err) -> {
            if (err == null) {
                if (work != null) {
                    finished.add(work);
                }
            } else {
                log.error("Cannot dead-letter {}-{}@{}; it will be redelivered", topic, partition, offset, err);
            }
        });
    }

    // ---- decode thread ---------------------------------------------------------------------

    private final Map<String, Generation> byRequest = new HashMap<>();
    private final LinkedHashMap<String, String> recentCancels = new LinkedHashMap<>(16, 0.75f, false) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, String> eldest) {
            return size() > RECENT_CANCELS;
        }
    };

    /** An attempt failed inside an engine step; handled once the step is over. */
    private record Failed(Generation generation, int seq, RuntimeException cause) {
    }

    private final List<Failed> failures = new ArrayList<>();

    private void decodeLoop() {
        BatchEngine.Limits limits = new BatchEngine.Limits(config.getInt(WorkerConfig.MAX_BATCH),
                config.getInt(WorkerConfig.MAX_TOKENS_IN_FLIGHT), config.getInt(WorkerConfig.PREFILL_BUDGET));
        long lastRenew = System.nanoTime();
        warmUp(limits);
        BatchEngine e = new BatchEngine(model, limits, new Sink());
        engine = e;
        try {
            while (running) {
                if (handBack) {
                    handBack = false;
                    handBackAll(e);
                }
                applyCancels(e);
                admit(e);
                try {
                    faults.beforeStep();
                    if (e.step()) {
                        batchSize.record(e.lastStepBatch());
                    }
                } catch (RuntimeException failure) {
                    // A failed step may leave the batch cache half written: every request in it
                    // fails this attempt (retried by its tier's policy) and a fresh engine takes over.
                    log.error("Engine step failed; retrying its {} requests on a fresh batch", byRequest.size(), failure);
                    for (Generation g : new ArrayList<>(byRequest.values())) {
                        failAttempt(e, g, (Active) g.attachment(), failure);
                    }
                    e.close();
                    e = new BatchEngine(model, limits, new Sink());
                    engine = e;
                }
                for (Failed f : failures) {
                    failAttempt(e, f.generation(), (Active) f.generation().attachment(), f.cause(), f.seq());
                }
                failures.clear();
                completeAcknowledged();
                expireTimedOut(e);
                if (System.nanoTime() - lastRenew > lease.toNanos() / 3) {
                    renewLeases();
                    lastRenew = System.nanoTime();
                }
                reconcilePending();
            }
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException ex) {
            log.error("Decode loop stopped", ex);
        } finally {
            if (!completions.isEmpty()) {
                // Stopping: finish what only waits for Kafka, rather than leave it to be decoded again.
                producer.flush();
                completeAcknowledged();
            }
            e.close();
        }
    }

    /**
     * One short generation through a throwaway engine before the first request: ONNX Runtime
     * allocates and plans on its first runs, and that cost belongs to start-up, not to a client.
     */
    private void warmUp(BatchEngine.Limits limits) {
        long t0 = System.nanoTime();
        try (BatchEngine warm = new BatchEngine(model, limits, StepSink.DISCARD)) {
            warm.add(new Generation("warm-up", GenerationParams.greedy(4),
                    model.encode("The river"), List.of(), model, null));
            for (int i = 0; i < 8 && warm.step(); i++) {
                // a few steps: prefill, then decode
            }
        } catch (RuntimeException e) {
            log.warn("Warm-up failed ({}); the first request pays the start-up cost", e.toString());
        }
        log.info("Cold start worker session warm-up: {} ms", (System.nanoTime() - t0) / 1_000_000);
    }

    /** Fails, as a timeout, every attempt that has decoded longer than the processing timeout. */
    private void expireTimedOut(BatchEngine e) {
        if (byRequest.isEmpty()) {
            return;
        }
        long now = System.nanoTime();
        for (Generation g : new ArrayList<>(byRequest.values())) {
            Active a = (Active) g.attachment();
            long took = now - a.startedNanos;
            if (took > processingTimeoutNanos) {
                var timeout = new Failures.ProcessingTimeoutException("request " + a.work().request.getRequestId()
                        + " decoded for " + TimeUnit.NANOSECONDS.toMillis(took) + " ms, over the processing timeout of "
                        + TimeUnit.NANOSECONDS.toMillis(processingTimeoutNanos) + " ms");
                failAttempt(e, g, a, timeout);
            }
        }
    }

    /**
     * One attempt of a request failed. A retryable failure with retries left goes to the tier's
     * retry topic, due after the tier's backoff, with the claim given up so the retry resumes from
     * the checkpoint at once; anything else is dead-lettered. The source offset is finished only
     * once the retry record or the outcome is durable in Kafka.
     */
    private void failAttempt(BatchEngine e, Generation g, Active a, RuntimeException cause) {
        failAttempt(e, g, a, cause, g == null ? 0 : g.tokens().size());
    }

    /** @param published tokens of {@code g} that reached the tokens topic (the outcome counts only those) */
    private void failAttempt(BatchEngine e, Generation g, Active a, RuntimeException cause, int published) {
        if (g != null) {
            e.abort(g);
            byRequest.remove(g.id());
        }
        if (cause instanceof Failures.ProcessingTimeoutException timeout) {
            Circuit.timeout(circuit, System.nanoTime() - a.startedNanos, timeout);
        }
        Work work = a.work();
        InferenceRequest req = work.request;
        List<Attempt> history = new ArrayList<>(work.history);
        // One instant for the attempt and its retry's due time: the backoff is exact from the failure.
        java.time.Instant failedAt = clock.instant();
        history.add(new Attempt(work.attempt, failedAt, workerId, cause.getClass().getName(),
                String.valueOf(cause.getMessage())));
        TierPolicy policy = retryPolicy.get(req.getTier());
        if (Failures.retryable(cause) && policy.retriesLeftAfter(work.attempt)) {
            int next = work.attempt + 1;
            long due = failedAt.toEpochMilli()
                    + policy.delay(next, java.util.concurrent.ThreadLocalRandom.current().nextDouble()).toMillis();
            if (a.claimed) {
                try {
                    store.release(a.key(), a.fence());
                } catch (RuntimeException unavailable) {
                    redisFailed(unavailable); // the retry waits for the lease to lapse instead
                }
            }
            log.warn("Attempt {} of {} failed ({}); retry {} of {} due in {} ms", work.attempt, req.getRequestId(),
                    cause.toString(), next, policy.maxRetries(), due - clock.millis());
            meters.counter("sluice.retries", "tier", req.getTier().name()).increment();
            meters.counter("sluice.requests", "tier", req.getTier().name(), "outcome", "retried").increment();
            ProducerRecord<String, Object> retry = new ProducerRecord<>(topics.retry(req.getTier()), null,
                    req.getRequestId(), rawValue(work), RetryHeaders.write(next, due, work.origin, history));
            producer.send(retry, (md, err) -> {
                if (err == null) {
                    finished.add(work);
                } else {
                    log.error("Cannot write retry of {}; the request will be redelivered", req.getRequestId(), err);
                }
            });
            return;
        }
        ErrorInfo finalError = new ErrorInfo(Failures.code(cause), String.valueOf(cause.getMessage()),
                Failures.retryable(cause));
        String why = Failures.retryable(cause) ? "after " + history.size() + " attempts" : "not retryable";
        ErrorInfo clientError = new ErrorInfo("dead_lettered", "request " + req.getRequestId() + " was dead-lettered ("
                + why + "): " + finalError.getMessage(), false);
        // The outcome lists the tokens clients may have seen: those checkpointed before the failure.
        List<Integer> tokens = g == null ? List.of() : List.copyOf(g.tokens().subList(0, Math.min(published, g.tokens().size())));
        complete(a, req, null, clientError, tokens, "", g == null ? 0 : g.promptTokens(),
                () -> deadLetter(work.origin.getTopic(), work.origin.getPartition(), work.origin.getOffset(),
                        req.getRequestId(), work.original, null, req, finalError, history, null));
    }

    /** The request as it was read, byte for byte, for a retry record. */
    private static Object rawValue(Work work) {
        return work.original != null ? work.original : work.request;
    }

    /**
     * The circuit opened: every generation this worker holds is dropped and its claim given up, so
     * the workers that take the partitions over resume each from its checkpoint at once.
     */
    private void handBackAll(BatchEngine e) {
        int n = 0;
        for (Generation g : new ArrayList<>(byRequest.values())) {
            Active a = (Active) g.attachment();
            e.abort(g);
            byRequest.remove(g.id());
            if (a.claimed) {
                try {
                    store.release(a.key(), a.fence());
                } catch (RuntimeException unavailable) {
                    redisFailed(unavailable);
                }
            }
            n++;
        }
        waiting.clear();
        log.warn("Circuit open: handed back {} requests in progress", n);
    }

    private void circuitChanged(io.github.resilience4j.circuitbreaker.event.CircuitBreakerOnStateTransitionEvent event) {
        CircuitBreaker.State to = event.getStateTransition().getToState();
        String type = switch (to) {
            case OPEN, FORCED_OPEN -> "circuit_opened";
            case HALF_OPEN -> "circuit_half_open";
            default -> "circuit_closed";
        };
        String detail = switch (to) {
            case OPEN, FORCED_OPEN -> config.getInt(WorkerConfig.CIRCUIT_TIMEOUTS) + " consecutive processing timeouts: "
                    + "worker " + workerId + " stops taking work and gives its partitions up; it probes again in "
                    + config.getLong(WorkerConfig.CIRCUIT_COOLDOWN_MS) + " ms";
            case HALF_OPEN -> "worker " + workerId + " takes work again to probe";
            default -> "worker " + workerId + " is healthy again";
        };
        if (to == CircuitBreaker.State.OPEN || to == CircuitBreaker.State.FORCED_OPEN) {
            handBack = true;
            log.error("ALERT circuit open: {}", detail);
        } else {
            log.warn("Circuit {}: {}", to, detail);
        }
        OpsEvent ev = OpsEvent.newBuilder().setType(type).setSource(workerId).setAt(clock.instant()).setDetail(detail)
                .setAttributes(Map.of("from", event.getStateTransition().getFromState().name(), "to", to.name(),
                        "cooldown_ms", String.valueOf(config.getLong(WorkerConfig.CIRCUIT_COOLDOWN_MS))))
                .build();
        producer.send(new ProducerRecord<>(topics.events(), workerId, ev), (md, err) -> {
            if (err != null) {
                log.warn("Cannot publish the {} event", type, err);
            }
        });
    }

    /** Whether Redis answers now (for readiness). */
    public boolean redisAvailable() {
        return store.available();
    }

    /** State of this worker's circuit breaker. */
    public CircuitBreaker.State circuitState() {
        return circuit.getState();
    }

    private static OutagePolicy policy(String value) {
        return "fail-open".equals(value) ? OutagePolicy.FAIL_OPEN : OutagePolicy.FAIL_CLOSED;
    }

    /** Whether to call Redis now: always while it answers, once a second while it does not. */
    private boolean redisWorth() {
        return redisDownSince < 0 || System.nanoTime() >= redisProbeAt;
    }

    private void redisFailed(RuntimeException e) {
        if (redisDownSince < 0) {
            redisDownSince = System.nanoTime();
            log.warn("Redis unavailable ({}): financial requests {}, operational requests {}", e.toString(),
                    describe(outagePolicy.get(Tier.financial)), describe(outagePolicy.get(Tier.operational)));
        }
        redisProbeAt = System.nanoTime() + REDIS_PROBE_NANOS;
    }

    private static String describe(OutagePolicy p) {
        return p == OutagePolicy.FAIL_CLOSED ? "wait (fail-closed)" : "decode without claims (fail-open)";
    }

    private void redisAnswered() {
        if (redisDownSince >= 0) {
            log.info("Redis answers again after {} ms; {} outcomes decoded without a claim to reconcile",
                    (System.nanoTime() - redisDownSince) / 1_000_000, reconcile.size());
            redisDownSince = -1;
        }
    }

    /** Requests decoded without a claim during Redis outages (fail-open), since start. */
    public long decodedWithoutClaim() {
        return decodedWithoutClaim;
    }

    /** Outcomes decoded without a claim whose key was claimed by someone else before they could be recorded. */
    public long reconcileConflicts() {
        return reconcileConflicts;
    }

    /**
     * Another worker took the request over: it is not finished, so its offset stays in flight here.
     * Marking it finished would let this worker commit past it while the new holder may still die
     * without finishing it; then no one would be handed it again. Instead the claim is looked at
     * again once the new holder's lease could have lapsed: its stored outcome, its live lease, or a
     * lapsed lease to take over and resume from the checkpoint.
     */
    private void lookAgainAfterTakeover(Work work) {
        retryLater(work, lease.toMillis() + 10);
    }

    private void retryLater(Work work, long millis) {
        work.dueNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        waiting.add(work);
    }

    private void reconcilePending() {
        while (!reconcile.isEmpty() && redisWorth()) {
            Reconcile r = reconcile.peek();
            try {
                if (!store.reconcile(r.key(), r.requestId(), workerId, r.failed(), r.outcome())) {
                    reconcileConflicts++;
                    log.error("Request {} was decoded without a claim while Redis was unavailable and its key was "
                            + "claimed again since: it may have been decoded twice", r.requestId());
                }
                reconcile.poll();
                redisAnswered();
            } catch (RuntimeException e) {
                redisFailed(e);
            }
        }
    }

    private void applyCancels(BatchEngine e) {
        Cancel c;
        while ((c = cancels.poll()) != null) {
            Generation g = byRequest.get(c.getRequestId());
            if (g != null) {
                Active a = (Active) g.attachment();
                if (a.work().request.getTenant().equals(c.getTenant())) {
                    g.cancel();
                }
            } else {
                recentCancels.put(c.getRequestId(), c.getTenant());
            }
        }
    }

    private void admit(BatchEngine e) throws InterruptedException {
        while (e.hasRoom()) {
            Work work = waiting.poll();
            if (work == null) {
                if (waiting.size() >= config.getInt(WorkerConfig.QUEUE_CAPACITY)) {
                    // Enough requests wait for a retry (a Redis outage, leases held elsewhere): take no
                    // more, so the queue fills and the partitions pause instead of memory growing.
                    Thread.sleep(5);
                    return;
                }
                // Block briefly only when there is nothing to decode; otherwise never stall the batch.
                work = queue.poll(e.size() == 0 ? 20 : 0, TimeUnit.MILLISECONDS);
            }
            if (work == null) {
                return;
            }
            try {
                start(e, work);
            } catch (RuntimeException failure) {
                log.error("Cannot start request {}", work.request.getRequestId(), failure);
                work.dueNanos = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
                waiting.add(work);
                return;
            }
        }
    }

    private void start(BatchEngine e, Work work) {
        InferenceRequest req = work.request;
        String key = IdempotencyKeys.keyFor(req.getTenant(), req.getRequestId(), req.getIdempotencyKey(), req.getMetadata());
        if (byRequest.containsKey(req.getRequestId()) || completing(key)) {
            // Redelivered while this worker still decodes it, or waits to record its outcome: look
            // again once that ends.
            retryLater(work, 200);
            return;
        }
        Claim claim = null;
        if (redisWorth()) {
            try {
                long t0 = System.nanoTime();
                claim = store.claim(key, req.getRequestId(), workerId, lease);
                claimLatency.record(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
                redisAnswered();
            } catch (RuntimeException unavailable) {
                redisFailed(unavailable);
            }
        }
        if (claim == null) {
            startWithoutClaim(e, work, key);
            return;
        }
        switch (claim.state()) {
            case BUSY -> {
                // Another worker holds a live lease: look again once it could have lapsed.
                work.dueNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(50, claim.leaseRemainingMs() + 10));
                waiting.add(work);
            }
            case DONE, FAILED -> republishOutcome(key, work, claim.checkpoint());
            case ACQUIRED -> {
                Active active = new Active(work, key, claim.fence(), claim.requestId(), true);
                GenerationParams params;
                try {
                    params = paramsOf(req);
                } catch (IllegalArgumentException invalid) {
                    failAttempt(e, null, active, new Failures.PermanentFailureException(invalid.getMessage()));
                    return;
                }
                if (!claim.checkpoint().isEmpty()) {
                    log.info("Resuming {} at seq {} under fence {}", req.getRequestId(), claim.checkpoint().size(), claim.fence());
                }
                Generation g = new Generation(active.streamId(), params, model.encode(req.getPrompt()), claim.checkpoint(),
                        model, active);
                byRequest.put(active.streamId(), g);
                String cancelledBy = recentCancels.remove(active.streamId());
                if (req.getTenant().equals(cancelledBy)) {
                    g.cancel();
                }
                e.add(g);
            }
            default -> throw new IllegalStateException(claim.state().toString());
        }
    }

    /** Redis did not answer the claim: wait (fail-closed) or decode without a claim (fail-open). */
    private void startWithoutClaim(BatchEngine e, Work work, String key) {
        InferenceRequest req = work.request;
        if (outagePolicy.get(req.getTier()) == OutagePolicy.FAIL_CLOSED) {
            retryLater(work, 500);
            return;
        }
        GenerationParams params;
        try {
            params = paramsOf(req);
        } catch (IllegalArgumentException invalid) {
            retryLater(work, 500); // decided once Redis can record the outcome
            return;
        }
        decodedWithoutClaim++;
        log.warn("Decoding {} without a claim (Redis unavailable, {} tier is fail-open)", req.getRequestId(), req.getTier());
        Active active = new Active(work, key, 0L, req.getRequestId(), false);
        Generation g = new Generation(req.getRequestId(), params, model.encode(req.getPrompt()), List.of(), model, active);
        byRequest.put(req.getRequestId(), g);
        e.add(g);
    }

    GenerationParams paramsOf(InferenceRequest req) {
        int maxTokens = Math.min(req.getMaxTokens(), config.getInt(WorkerConfig.MAX_TOKENS_LIMIT));
        // Without a seed, the request id seeds sampling: a takeover still continues the same way.
        long seed = req.getSeed() != null ? req.getSeed()
                : java.util.UUID.nameUUIDFromBytes(req.getRequestId().getBytes(StandardCharsets.UTF_8)).getMostSignificantBits();
        return new GenerationParams(maxTokens, req.getTemperature(), req.getTopP(), req.getTopK(), seed, req.getStop(),
                req.getLogprobs(), req.getPriority());
    }

    private void renewLeases() {
        if (byRequest.isEmpty()) {
            return;
        }
        List<Generation> gens = new ArrayList<>(byRequest.values());
        List<String> keys = new ArrayList<>();
        List<Long> fences = new ArrayList<>();
        gens.removeIf(g -> !((Active) g.attachment()).claimed);
        for (Generation g : gens) {
            Active a = (Active) g.attachment();
            keys.add(a.key());
            fences.add(a.fence());
        }
        if (gens.isEmpty() || !redisWorth()) {
            return;
        }
        try {
            boolean[] current = store.renewAll(keys, fences, lease);
            redisAnswered();
            for (int i = 0; i < current.length; i++) {
                if (!current[i]) {
                    log.warn("Lost the claim on {}; stopping it", gens.get(i).id());
                    gens.get(i).cancel();
                }
            }
        } catch (RuntimeException e) {
            redisFailed(e);
        }
    }

    /**
     * Publishes the stored outcome of a finished key again.
     *
     * @param checkpoint the key's checkpointed token ids, which the first request's stream carried
     */
    private void republishOutcome(String key, Work work, List<Integer> checkpoint) {
        byte[] outcome;
        try {
            outcome = store.outcome(key);
        } catch (RuntimeException unavailable) {
            redisFailed(unavailable);
            retryLater(work, 500);
            return;
        }
        if (outcome == null) {
            finished.add(work);
            return;
        }
        InferenceResult stored = SluiceCodec.get().decode(outcome, InferenceResult.class);
        if (!stored.getRequestId().equals(work.request.getRequestId())) {
            // A duplicate of a finished key under its own id (written straight to the topic, or
            // accepted by a gateway that could not reach Redis): it gets the first request's
            // outcome, without a second decode. Its followers wait for seqs 0 to completion_tokens
            // - 1 before the result, so the stream is published under its id first.
            InferenceResult copy = InferenceResult.newBuilder(stored).setRequestId(work.request.getRequestId()).build();
            republishStream(work, copy, checkpoint);
            publishResult(work, copy);
            return;
        }
        if (stored.getError() != null && "dead_lettered".equals(stored.getError().getCode())) {
            // Dead-lettered, but the offset was not committed: the dead letter may not have reached
            // its topic before a crash, so it is written again (the archiver drops the repeat).
            deadLetter(work.origin.getTopic(), work.origin.getPartition(), work.origin.getOffset(),
                    work.request.getRequestId(), work.original, null, work.request, stored.getError(), work.history, null);
        }
        publishResult(work, stored);
    }

    /**
     * Publishes {@code result}'s stream under its request id from the checkpointed token ids. The
     * texts are the tokens' own, cut so that together they are exactly the result's text (a stop
     * sequence the first stream held back and dropped is dropped here too); what the tokens do
     * not account for goes on the last one. Logprobs are not checkpointed and are left out.
     */
    private void republishStream(Work work, InferenceResult result, List<Integer> checkpoint) {
        int n = result.getCompletionTokens();
        if (checkpoint.size() < n) {
            // Reached without a claim (fail-open through a Redis outage): no token ids to publish.
            log.warn("Outcome of {} counts {} tokens but {} are checkpointed; publishing the result alone",
                    result.getRequestId(), n, checkpoint.size());
            return;
        }
        String text = result.getText();
        TextStreamer streamer = new TextStreamer(model);
        int at = 0;
        for (int seq = 0; seq < n; seq++) {
            String piece = streamer.push(checkpoint.get(seq));
            String out;
            if (seq == n - 1) {
                out = text.substring(at);
            } else if (text.startsWith(piece, at)) {
                out = piece;
            } else {
                // The piece is not what follows in the text (a held-back stop sequence, a split
                // character): release only what matches, the rest comes later.
                int match = 0;
                while (match < piece.length() && at + match < text.length() && piece.charAt(match) == text.charAt(at + match)) {
                    match++;
                }
                out = piece.substring(0, match);
            }
            at += out.length();
            producer.send(toTokens(work.request, result.getRequestId(), TokenEvent.newBuilder()
                    .setRequestId(result.getRequestId()).setSeq(seq).setTokenId(checkpoint.get(seq)).setText(out)
                    .setFence(result.getFence()).setWorkerId(workerId).setProducedAt(clock.instant()).build()));
        }
    }

    private final class Sink implements StepSink {
        @Override
        public Set<Generation> tokens(List<StepToken> tokens) {
            List<IdempotencyStore.Append> appends = new ArrayList<>();
            List<StepToken> checkpointed = new ArrayList<>();
            Set<Generation> failed = new HashSet<>();
            for (StepToken t : tokens) {
                Active a = (Active) t.generation().attachment();
                if (!t.replayed() && !failed.contains(t.generation())) {
                    RuntimeException injected = faults.failure(a.work().request, a.work().attempt, t.seq());
                    if (injected != null) {
                        failed.add(t.generation());
                        failures.add(new Failed(t.generation(), t.seq(), injected));
                    }
                }
                if (failed.contains(t.generation())) {
                    continue;
                }
                if (!t.replayed() && a.claimed) {
                    appends.add(new IdempotencyStore.Append(a.key(), a.fence(), t.seq(), List.of(t.tokenId())));
                    checkpointed.add(t);
                }
            }
            Set<Generation> aborted = new HashSet<>(failed);
            if (!appends.isEmpty()) {
                long[] results = null;
                if (redisWorth()) {
                    try {
                        // Write-ahead: one round trip for the whole step, before any of its tokens is published.
                        long t0 = System.nanoTime();
                        results = store.appendAll(appends);
                        checkpointLatency.record(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
                        redisAnswered();
                    } catch (RuntimeException unavailable) {
                        redisFailed(unavailable);
                    }
                }
                for (int i = 0; i < checkpointed.size(); i++) {
                    Generation g = checkpointed.get(i).generation();
                    Active a = (Active) g.attachment();
                    if (results != null && results[i] < 0) {
                        log.warn("Request {} was taken over by another worker; stopping it here", g.id());
                        aborted.add(g);
                        lookAgainAfterTakeover(a.work());
                    } else if (results == null) {
                        if (outagePolicy.get(a.work().request.getTier()) == OutagePolicy.FAIL_CLOSED) {
                            // Nothing is published without its checkpoint: stop, and resume from the
                            // checkpoint once Redis answers (the claim is ours to take again at once).
                            aborted.add(g);
                            retryLater(a.work(), 500);
                        } else {
                            a.claimed = false;
                            decodedWithoutClaim++;
                            log.warn("Continuing {} without a claim (Redis unavailable, fail-open)", g.id());
                        }
                    }
                }
            }
            for (StepToken t : tokens) {
                if (aborted.contains(t.generation())) {
                    continue;
                }
                Active a = (Active) t.generation().attachment();
                if (!t.replayed()) {
                    long now = System.nanoTime();
                    if (t.seq() == 0) {
                        ttft.record(Math.max(0, clock.millis() - a.work().request.getCreatedAt().toEpochMilli()),
                                TimeUnit.MILLISECONDS);
                    } else if (a.lastTokenNanos != 0) {
                        interToken.record(now - a.lastTokenNanos, TimeUnit.NANOSECONDS);
                    }
                    a.lastTokenNanos = now;
                    tokensGenerated.get(a.work().request.getTier()).increment();
                }
                a.lastSent = producer.send(toTokens(a.work().request, t.generation().id(), TokenEvent.newBuilder()
                        .setRequestId(t.generation().id()).setSeq(t.seq()).setTokenId(t.tokenId()).setText(t.text())
                        .setLogprob(t.logprob()).setTopLogprobs(t.top())
                        .setFence(a.fence()).setWorkerId(workerId).setProducedAt(clock.instant()).build()),
                        (md, err) -> {
                            if (err != null) {
                                a.sendFailed = true;
                            }
                        });
            }
            for (Generation g : aborted) {
                byRequest.remove(g.id());
            }
            return aborted;
        }

        @Override
        public void finished(Generation g, FinishReason reason, ErrorInfo error) {
            byRequest.remove(g.id());
            Active a = (Active) g.attachment();
            if (error == null) {
                Circuit.success(circuit, System.nanoTime() - a.startedNanos);
            }
            complete(a, a.work().request, reason, error, g.tokens(), g.text(), g.promptTokens(), null);
        }
    }

    /** A terminal outcome waiting for Kafka to acknowledge the last token event it counts. */
    private record Completion(Active active, InferenceRequest req, FinishReason reason, ErrorInfo error,
            List<Integer> tokens, String text, int promptTokens, Runnable onPublished) {
    }

    /** Outcomes waiting for their tokens; decode thread only. */
    private final List<Completion> completions = new ArrayList<>();

    /**
     * Whether an outcome of {@code key} waits for its tokens. Its claim is still this worker's: a
     * copy of the request redelivered meanwhile must wait for the outcome, not claim the key again
     * and decode it twice.
     */
    private boolean completing(String key) {
        for (Completion c : completions) {
            if (c.active().key().equals(key)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Records and publishes a terminal outcome, once every token event it counts is in Kafka.
     * Recorded earlier, a worker dying with its last tokens still in the producer's buffer would
     * leave an outcome whose tokens never reached the topic: the next worker finds the outcome,
     * republishes only the result, and clients wait for the missing seqs forever. Recorded after,
     * a worker dying in between leaves the claim without an outcome, and the next one replays the
     * checkpoint, publishing those tokens again.
     *
     * @param onPublished run once the outcome is published (not when the claim was lost, or Redis
     *     must answer first); may be null
     */
    private void complete(Active a, InferenceRequest req, FinishReason reason, ErrorInfo error, List<Integer> tokens,
            String text, int promptTokens, Runnable onPublished) {
        Completion c = new Completion(a, req, reason, error, List.copyOf(tokens), text, promptTokens, onPublished);
        if (a.lastSent != null && !a.lastSent.isDone()) {
            completions.add(c);
        } else {
            complete(c);
        }
    }

    /** Completes the outcomes whose tokens Kafka has acknowledged since the last look. */
    private void completeAcknowledged() {
        for (java.util.Iterator<Completion> it = completions.iterator(); it.hasNext(); ) {
            Completion c = it.next();
            if (c.active().lastSent.isDone()) {
                it.remove();
                complete(c);
            }
        }
    }

    private void complete(Completion c) {
        Active a = c.active();
        if (a.lastSent != null) {
            String notSent = null;
            try {
                a.lastSent.get();
                if (a.sendFailed) {
                    notSent = "an earlier token was refused";
                }
            } catch (java.util.concurrent.ExecutionException refused) {
                notSent = refused.getCause().toString();
            } catch (InterruptedException stopping) {
                Thread.currentThread().interrupt();
                return;
            }
            if (notSent != null) {
                // Its checkpoint holds what Kafka did not take: claim it again once the lease lapses
                // and replay, which publishes those tokens again, rather than record an outcome.
                log.error("Tokens of {} did not reach Kafka ({}); it resumes from its checkpoint", c.req().getRequestId(),
                        notSent);
                lookAgainAfterTakeover(a.work());
                return;
            }
        }
        if (publish(a, c.req(), c.reason(), c.error(), c.tokens(), c.text(), c.promptTokens()) && c.onPublished() != null) {
            c.onPublished().run();
        }
    }

    /**
     * Records and publishes a terminal outcome.
     *
     * @return false when it was not published: the claim was lost, or Redis must answer first
     */
    private boolean publish(Active a, InferenceRequest req, FinishReason reason, ErrorInfo error, List<Integer> tokens,
            String text, int promptTokens) {
        InferenceResult result = InferenceResult.newBuilder()
                .setRequestId(a.streamId()).setTenant(req.getTenant()).setFinishReason(error == null ? reason : null)
                .setError(error).setText(text).setTokenIds(new ArrayList<>(tokens)).setPromptTokens(promptTokens)
                .setCompletionTokens(tokens.size()).setFence(a.fence()).setWorkerId(workerId)
                .setCompletedAt(clock.instant()).build();
        byte[] encoded = SluiceCodec.get().encode(result);
        if (!a.claimed) {
            reconcileLater(new Reconcile(a.key(), a.streamId(), error != null, encoded));
        } else {
            // The outcome is recorded before it is published: a crash in between republishes it, never re-decodes.
            Boolean recorded = null;
            if (redisWorth()) {
                try {
                    recorded = store.complete(a.key(), a.fence(), error != null, encoded);
                    redisAnswered();
                } catch (RuntimeException unavailable) {
                    redisFailed(unavailable);
                }
            }
            if (recorded == null) {
                if (outagePolicy.get(req.getTier()) == OutagePolicy.FAIL_CLOSED) {
                    // Claim it again when Redis answers: the checkpoint replays to the same end.
                    retryLater(a.work(), 500);
                    return false;
                }
                reconcileLater(new Reconcile(a.key(), a.streamId(), error != null, encoded));
            } else if (!recorded) {
                log.warn("Request {} was taken over before it completed (fence {} is stale)", req.getRequestId(), a.fence());
                lookAgainAfterTakeover(a.work());
                return false;
            }
        }
        if (!a.streamId().equals(req.getRequestId())) {
            producer.send(toTokens(req, a.streamId(), result));
            producer.send(new ProducerRecord<>(topics.results(), a.streamId(), result));
            result = InferenceResult.newBuilder(result).setRequestId(req.getRequestId()).build();
        }
        publishResult(a.work(), result);
        String outcome = error != null ? error.getCode() : reason == FinishReason.cancelled ? "cancelled" : "done";
        meters.counter("sluice.requests", "tier", req.getTier().name(), "outcome", outcome).increment();
        return true;
    }

    /** A record for the tokens topic: to the request's reply partition when it names one, else by key. */
    private ProducerRecord<String, Object> toTokens(InferenceRequest request, String key, SpecificRecord value) {
        Integer reply = request == null ? null : request.getReplyPartition();
        if (reply != null && reply >= 0 && reply < tokenPartitions) {
            return new ProducerRecord<>(topics.tokens(), reply, key, value);
        }
        return new ProducerRecord<>(topics.tokens(), key, value);
    }

    private void reconcileLater(Reconcile r) {
        if (reconcile.size() >= MAX_RECONCILE) {
            Reconcile dropped = reconcile.poll();
            log.error("Too many outcomes waiting for Redis; {} will not be recorded and may be decoded again",
                    dropped.requestId());
        }
        reconcile.add(r);
    }

    private void publishResult(Work work, InferenceResult result) {
        producer.send(new ProducerRecord<>(topics.results(), result.getRequestId(), result));
        producer.send(toTokens(work.request, result.getRequestId(), result), (md, err) -> {
            if (err == null) {
                finished.add(work);
            } else {
                log.error("Cannot publish result of {}; the request will be redelivered", result.getRequestId(), err);
            }
        });
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        running = false;
        consumer.wakeup();
        try {
            decodeThread.join(30_000);
            consumerThread.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        producer.close(Duration.ofSeconds(5));
        store.close();
        if (ownsModel) {
            model.close();
        }
        log.info("Worker {} stopped", workerId);
    }
}
