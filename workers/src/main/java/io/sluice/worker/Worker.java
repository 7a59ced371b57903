package io.sluice.worker;

import io.sluice.idempotency.Claim;
import io.sluice.idempotency.IdempotencyKeys;
import io.sluice.idempotency.IdempotencyStore;
import io.sluice.idempotency.RedisIdempotencyStore;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.MalformedRecordException;
import io.sluice.schemas.Origin;
import io.sluice.schemas.SluiceCodec;
import io.sluice.schemas.Tier;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.Topics;
import io.sluice.worker.engine.ContextOverflowException;
import io.sluice.worker.engine.Decoder;
import io.sluice.worker.engine.Sequence;
import io.sluice.worker.engine.TextStreamer;
import io.sluice.worker.internal.OffsetTracker;
import io.sluice.worker.model.ModelBundle;
import java.net.URI;
import java.nio.ByteBuffer;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
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
 * A worker: consumes requests, claims each in Redis, decodes it with ONNX Runtime and publishes
 * its token events and result.
 *
 * <p>Two threads. The consumer thread owns the Kafka consumer (it is not thread-safe): it polls,
 * hands requests to the decode thread through a bounded queue, pauses its partitions while the
 * queue is full, and commits per partition only up to the lowest request not yet terminal. The
 * decode thread owns the model. Every token is checkpointed in Redis under the claim's fence
 * before it is published, so whatever a client may have seen survives this worker.
 */
public final class Worker implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Worker.class);

    private final WorkerConfig config;
    private final String workerId;
    private final Topics topics;
    private final ModelBundle model;
    private final boolean ownsModel;
    private final IdempotencyStore store;
    private final KafkaProducer<String, SpecificRecord> producer;
    private final KafkaConsumer<String, byte[]> consumer;
    private final BlockingQueue<Work> queue;
    private final DelayQueue<Work> waiting = new DelayQueue<>();
    private final ConcurrentLinkedQueue<Work> finished = new ConcurrentLinkedQueue<>();
    private final Duration lease;
    private final Clock clock;
    private final Thread consumerThread;
    private final Thread decodeThread;
    private final CountDownLatch assigned = new CountDownLatch(1);
    private volatile boolean running = true;

    /** A request taken from a partition, with where it came from. */
    static final class Work implements Delayed {
        final TopicPartition tp;
        final long offset;
        final InferenceRequest request;
        long dueNanos;

        Work(TopicPartition tp, long offset, InferenceRequest request) {
            this.tp = tp;
            this.offset = offset;
            this.request = request;
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

    /** Starts a worker that loads its own model. */
    public static Worker start(WorkerConfig config) {
        ModelBundle model = ModelBundle.load(config.getString(WorkerConfig.MODEL), config.getString(WorkerConfig.DEVICE),
                config.getInt(WorkerConfig.INTRA_OP_THREADS));
        return new Worker(config, model, true, Clock.systemUTC());
    }

    /** Starts a worker on an already loaded model, which stays open when the worker closes. */
    public static Worker start(WorkerConfig config, ModelBundle model) {
        return new Worker(config, model, false, Clock.systemUTC());
    }

    private Worker(WorkerConfig config, ModelBundle model, boolean ownsModel, Clock clock) {
        this.config = config;
        this.workerId = config.workerId();
        this.topics = new Topics(config.getString(CommonConfig.TOPIC_PREFIX));
        this.model = model;
        this.ownsModel = ownsModel;
        this.clock = clock;
        this.lease = Duration.ofMillis(config.getLong(WorkerConfig.LEASE_MS));
        this.queue = new ArrayBlockingQueue<>(config.getInt(WorkerConfig.QUEUE_CAPACITY));
        this.store = RedisIdempotencyStore.connect(URI.create(config.getString(CommonConfig.REDIS_URI)),
                "sluice:", Duration.ofMillis(config.getLong(WorkerConfig.IDEMPOTENCY_TTL_MS)));
        String bootstrap = config.getString(CommonConfig.BOOTSTRAP_SERVERS);
        this.producer = new KafkaProducer<>(Map.of(
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                ProducerConfig.LINGER_MS_CONFIG, 1,
                ProducerConfig.CLIENT_ID_CONFIG, "sluice-worker-" + workerId),
                new StringSerializer(), AvroSerde.serializer());
        this.consumer = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ConsumerConfig.GROUP_ID_CONFIG, config.getString(WorkerConfig.GROUP_ID),
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Math.max(1, config.getInt(WorkerConfig.QUEUE_CAPACITY) / 2),
                ConsumerConfig.CLIENT_ID_CONFIG, "sluice-worker-" + workerId),
                new StringDeserializer(), new ByteArrayDeserializer());
        this.consumerThread = new Thread(this::consumeLoop, "sluice-worker-consumer");
        this.decodeThread = new Thread(this::decodeLoop, "sluice-worker-decode");
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

    // ---- consumer thread -------------------------------------------------------------------

    private void consumeLoop() {
        OffsetTracker tracker = new OffsetTracker();
        ArrayDeque<Work> overflow = new ArrayDeque<>();
        Set<TopicPartition> paused = new HashSet<>();
        consumer.subscribe(List.of(topics.requests()), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                drainFinished(tracker);
                commit(tracker, true);
                for (TopicPartition tp : partitions) {
                    tracker.forget(tp);
                }
                overflow.removeIf(w -> partitions.contains(w.tp));
                queue.removeIf(w -> partitions.contains(w.tp));
                paused.removeAll(partitions);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                // Paused state does not survive a rebalance in our bookkeeping: re-derive it.
                paused.retainAll(consumer.assignment());
                assigned.countDown();
            }
        });
        try {
            while (running) {
                drainFinished(tracker);
                commit(tracker, false);
                while (!overflow.isEmpty() && queue.offer(overflow.peek())) {
                    overflow.poll();
                }
                if (!overflow.isEmpty()) {
                    Set<TopicPartition> toPause = new HashSet<>(consumer.assignment());
                    toPause.removeAll(paused);
                    consumer.pause(toPause);
                    paused.addAll(toPause);
                } else if (!paused.isEmpty()) {
                    consumer.resume(paused);
                    paused.clear();
                }
                for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(50))) {
                    TopicPartition tp = new TopicPartition(record.topic(), record.partition());
                    tracker.started(tp, record.offset());
                    InferenceRequest request;
                    try {
                        request = SluiceCodec.get().decode(record.value(), InferenceRequest.class);
                    } catch (MalformedRecordException e) {
                        deadLetterPoison(record, e, tracker, tp);
                        continue;
                    }
                    Work work = new Work(tp, record.offset(), request);
                    if (!overflow.isEmpty() || !queue.offer(work)) {
                        overflow.add(work);
                    }
                }
            }
        } catch (WakeupException e) {
            // close() woke us up.
        } catch (RuntimeException e) {
            log.error("Worker consumer loop failed", e);
        } finally {
            drainFinished(tracker);
            commit(tracker, true);
            consumer.close(Duration.ofSeconds(5));
        }
    }

    private void drainFinished(OffsetTracker tracker) {
        Work w;
        while ((w = finished.poll()) != null) {
            tracker.finished(w.tp, w.offset);
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

    /** A record that cannot be decoded goes to the DLQ with its raw bytes; its partition moves on. */
    private void deadLetterPoison(ConsumerRecord<String, byte[]> record, MalformedRecordException e,
            OffsetTracker tracker, TopicPartition tp) {
        log.warn("Poison record at {}-{}@{}: {}", record.topic(), record.partition(), record.offset(), e.getMessage());
        DeadLetter letter = DeadLetter.newBuilder()
                .setRequestId(record.key())
                .setTier(Tier.operational)
                .setOriginal(ByteBuffer.wrap(record.value() == null ? new byte[0] : record.value()))
                .setOriginalFingerprint(e.fingerprint())
                .setOrigin(new Origin(record.topic(), record.partition(), record.offset()))
                .setAttempts(List.of())
                .setFinalError(new ErrorInfo("invalid_request", e.getMessage(), false))
                .setDeadLetteredAt(clock.instant())
                .build();
        Work marker = new Work(tp, record.offset(), null);
        producer.send(new ProducerRecord<>(topics.dlq(Tier.operational), record.key(), letter), (md, err) -> {
            if (err == null) {
                finished.add(marker);
            } else {
                log.error("Cannot dead-letter poison record {}-{}@{}; it will be redelivered", record.topic(),
                        record.partition(), record.offset(), err);
            }
        });
    }

    // ---- decode thread ---------------------------------------------------------------------

    private void decodeLoop() {
        try (Decoder decoder = new Decoder(model)) {
            while (running) {
                Work work = waiting.poll();
                if (work == null) {
                    work = queue.poll(20, TimeUnit.MILLISECONDS);
                }
                if (work == null) {
                    continue;
                }
                try {
                    process(decoder, work);
                } catch (RuntimeException e) {
                    log.error("Request {} failed", work.request.getRequestId(), e);
                    finished.add(work);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void process(Decoder decoder, Work work) {
        InferenceRequest req = work.request;
        String key = IdempotencyKeys.keyFor(req.getTenant(), req.getRequestId(), req.getIdempotencyKey(), req.getMetadata());
        Claim claim = store.claim(key, req.getRequestId(), workerId, lease);
        switch (claim.state()) {
            case BUSY -> {
                // Another worker holds a live lease: look again once it could have lapsed.
                work.dueNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(50, claim.leaseRemainingMs() + 10));
                waiting.add(work);
            }
            case DONE, FAILED -> {
                republishOutcome(key, work);
            }
            case ACQUIRED -> decode(decoder, work, key, claim);
            default -> throw new IllegalStateException(claim.state().toString());
        }
    }

    private void republishOutcome(String key, Work work) {
        byte[] outcome = store.outcome(key);
        if (outcome == null) {
            finished.add(work);
            return;
        }
        InferenceResult result = SluiceCodec.get().decode(outcome, InferenceResult.class);
        publishResult(work, result);
    }

    private void decode(Decoder decoder, Work work, String key, Claim claim) {
        InferenceRequest req = work.request;
        long fence = claim.fence();
        long[] prompt = model.encode(req.getPrompt());
        int maxTokens = Math.min(req.getMaxTokens(), config.getInt(WorkerConfig.MAX_TOKENS_LIMIT));
        List<Integer> emitted = new ArrayList<>(claim.checkpoint());
        TextStreamer streamer = new TextStreamer(model);
        StringBuilder text = new StringBuilder();
        for (int s = 0; s < emitted.size(); s++) {
            // The old owner may have checkpointed a token and died before publishing it: publish the
            // whole checkpoint again under the new fence; egress drops the seqs a client already has.
            String delta = streamer.push(emitted.get(s));
            text.append(delta);
            publishToken(req, s, emitted.get(s), delta, fence);
        }
        long[] context = new long[prompt.length + emitted.size()];
        System.arraycopy(prompt, 0, context, 0, prompt.length);
        for (int i = 0; i < emitted.size(); i++) {
            context[prompt.length + i] = emitted.get(i);
        }
        if (!emitted.isEmpty()) {
            log.info("Resuming {} at seq {} under fence {}", req.getRequestId(), emitted.size(), fence);
        }
        FinishReason finish = FinishReason.length;
        ErrorInfo error = null;
        long lastRenew = System.nanoTime();
        try (Sequence seq = decoder.start(context)) {
            float[] logits = seq.lastLogits();
            for (int s = emitted.size(); s < maxTokens; s++) {
                int token = Decoder.argmax(logits);
                if (token == model.eosTokenId()) {
                    finish = FinishReason.stop;
                    break;
                }
                String delta = streamer.push(token);
                // Write-ahead: the checkpoint holds every token before any client can see it.
                if (store.append(key, fence, s, List.of(token)) < 0) {
                    log.warn("Request {} was taken over (fence {} is stale); stopping", req.getRequestId(), fence);
                    finished.add(work);
                    return;
                }
                emitted.add(token);
                text.append(delta);
                publishToken(req, s, token, delta, fence);
                if (s + 1 < maxTokens) {
                    logits = seq.feed(token);
                }
                if (System.nanoTime() - lastRenew > lease.toNanos() / 3) {
                    store.renew(key, fence, lease);
                    lastRenew = System.nanoTime();
                }
            }
        } catch (ContextOverflowException e) {
            finish = null;
            error = new ErrorInfo("invalid_request", "prompt plus max_tokens: " + e.getMessage(), false);
        }
        text.append(streamer.flush());
        InferenceResult result = InferenceResult.newBuilder()
                .setRequestId(req.getRequestId()).setTenant(req.getTenant()).setFinishReason(finish).setError(error)
                .setText(text.toString()).setTokenIds(emitted).setPromptTokens(prompt.length)
                .setCompletionTokens(emitted.size()).setFence(fence).setWorkerId(workerId)
                .setCompletedAt(clock.instant()).build();
        // The outcome is recorded before it is published: a crash in between republishes it, never re-decodes.
        if (!store.complete(key, fence, error != null, SluiceCodec.get().encode(result))) {
            log.warn("Request {} was taken over before it completed (fence {} is stale)", req.getRequestId(), fence);
            finished.add(work);
            return;
        }
        publishResult(work, result);
    }

    private void publishToken(InferenceRequest req, int seq, int token, String text, long fence) {
        producer.send(new ProducerRecord<>(topics.tokens(), req.getRequestId(), TokenEvent.newBuilder()
                .setRequestId(req.getRequestId()).setSeq(seq).setTokenId(token).setText(text)
                .setFence(fence).setWorkerId(workerId).setProducedAt(clock.instant()).build()));
    }

    private void publishResult(Work work, InferenceResult result) {
        producer.send(new ProducerRecord<>(topics.results(), result.getRequestId(), result));
        producer.send(new ProducerRecord<>(topics.tokens(), result.getRequestId(), result), (md, err) -> {
            if (err == null) {
                finished.add(work);
            } else {
                log.error("Cannot publish result of {}; the request will be redelivered", result.getRequestId(), err);
            }
        });
    }

    @Override
    public void close() {
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
