package io.sluice.egress;

import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.MalformedRecordException;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.Topics;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads the tokens topic and hands each event to the subscriptions that follow its request.
 *
 * <p>One thread owns the consumer. The router reads outside any consumer group: it is assigned
 * every partition and starts at the end, positions resolved before {@link #start} returns, so a
 * subscription made after that sees every event produced after it.
 */
public final class TokenRouter implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(TokenRouter.class);

    private final KafkaConsumer<String, byte[]> consumer;
    private final Map<String, List<Subscription>> byRequest = new ConcurrentHashMap<>();
    private final Thread thread;
    private volatile boolean running = true;
    private final String bootstrapServers;
    private final String topic;
    private final int partitions;
    /** Replays of history run here: few threads and a bounded queue, so attach storms cannot exhaust the gateway. */
    private final java.util.concurrent.ThreadPoolExecutor replays = new java.util.concurrent.ThreadPoolExecutor(2, 2,
            30, java.util.concurrent.TimeUnit.SECONDS, new java.util.concurrent.ArrayBlockingQueue<>(256),
            r -> {
                Thread t = new Thread(r, "sluice-token-replay");
                t.setDaemon(true);
                return t;
            });

    private TokenRouter(String bootstrapServers, Topics topics, String clientId) {
        this.consumer = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.CLIENT_ID_CONFIG, clientId,
                ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 10),
                new StringDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> partitions = consumer.partitionsFor(topics.tokens(), Duration.ofSeconds(30)).stream()
                .map(p -> new TopicPartition(p.topic(), p.partition())).toList();
        if (partitions.isEmpty()) {
            throw new IllegalStateException("Topic " + topics.tokens() + " does not exist");
        }
        consumer.assign(partitions);
        consumer.seekToEnd(partitions);
        partitions.forEach(consumer::position);
        this.bootstrapServers = bootstrapServers;
        this.topic = topics.tokens();
        this.partitions = partitions.size();
        this.thread = new Thread(this::run, "sluice-token-router");
    }

    /** Starts a router positioned at the end of the tokens topic. */
    public static TokenRouter start(String bootstrapServers, Topics topics, String clientId) {
        TokenRouter router = new TokenRouter(bootstrapServers, topics, clientId);
        router.thread.start();
        return router;
    }

    /**
     * Follows {@code requestId}, delivering seqs after {@code afterSeq} (-1 for all).
     * Subscribe before the request is produced so no event can slip past.
     */
    public Subscription subscribe(String requestId, int afterSeq, StreamListener listener) {
        Subscription s = new Subscription(requestId, afterSeq, listener, this);
        byRequest.computeIfAbsent(requestId, k -> new CopyOnWriteArrayList<>()).add(s);
        return s;
    }

    /**
     * Follows {@code requestId} from its beginning, also when some or all of its events were
     * produced before this call: the live stream is subscribed first, then the request's
     * partition is read from {@code sinceMillis} up to its end as it was right after subscribing.
     * Everything after that end reaches the live subscription, so nothing falls between the two,
     * and the subscription drops what both deliver.
     *
     * @param sinceMillis a time at or before the request's first event (its creation time)
     * @throws java.util.concurrent.RejectedExecutionException when too many replays are under way
     */
    public Subscription subscribeFromHistory(String requestId, int afterSeq, StreamListener listener, long sinceMillis) {
        Subscription s = subscribe(requestId, afterSeq, listener);
        try {
            replays.execute(() -> replay(s, sinceMillis));
        } catch (java.util.concurrent.RejectedExecutionException e) {
            remove(s);
            throw e;
        }
        return s;
    }

    private void replay(Subscription s, long sinceMillis) {
        TopicPartition tp = new TopicPartition(topic, partitionOf(s.requestId()));
        try (KafkaConsumer<String, byte[]> history = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 2000,
                ConsumerConfig.CLIENT_ID_CONFIG, "sluice-token-replay"),
                new StringDeserializer(), new ByteArrayDeserializer())) {
            history.assign(List.of(tp));
            long end = history.endOffsets(List.of(tp)).get(tp);
            // Producer and broker clocks may differ a little: start somewhat before the creation time.
            var start = history.offsetsForTimes(Map.of(tp, Math.max(0, sinceMillis - 5_000))).get(tp);
            if (start == null) {
                return;
            }
            history.seek(tp, start.offset());
            while (running && !s.isDone() && history.position(tp) < end) {
                for (ConsumerRecord<String, byte[]> record : history.poll(Duration.ofMillis(200))) {
                    if (record.offset() >= end) {
                        break;
                    }
                    if (s.requestId().equals(record.key()) && record.value() != null) {
                        try {
                            dispatch(s, AvroSerde.anyDeserializer().deserialize(topic, record.value()));
                        } catch (MalformedRecordException e) {
                            log.warn("Skipping undecodable event at {}-{}@{}", record.topic(), record.partition(), record.offset());
                        }
                    }
                }
            }
        } catch (RuntimeException e) {
            log.warn("Replay of {} failed: {}", s.requestId(), e.toString());
        }
    }

    /** The tokens partition of a request: Kafka's default partitioner on the request id. */
    int partitionOf(String requestId) {
        byte[] key = requestId.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        return org.apache.kafka.common.utils.Utils.toPositive(org.apache.kafka.common.utils.Utils.murmur2(key)) % partitions;
    }

    void remove(Subscription s) {
        byRequest.computeIfPresent(s.requestId(), (k, list) -> {
            list.remove(s);
            return list.isEmpty() ? null : list;
        });
    }

    /** Requests currently followed. */
    public int activeRequests() {
        return byRequest.size();
    }

    private void run() {
        try {
            while (running) {
                for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(100))) {
                    List<Subscription> subs = byRequest.get(record.key());
                    if (subs == null || record.value() == null) {
                        continue;
                    }
                    SpecificRecord event;
                    try {
                        event = AvroSerde.anyDeserializer().deserialize(record.topic(), record.value());
                    } catch (MalformedRecordException e) {
                        log.warn("Skipping undecodable event at {}-{}@{}: {}", record.topic(), record.partition(),
                                record.offset(), e.getMessage());
                        continue;
                    }
                    for (Subscription s : subs) {
                        dispatch(s, event);
                    }
                }
            }
        } catch (WakeupException e) {
            // closing
        } catch (RuntimeException e) {
            log.error("Token router failed", e);
        } finally {
            consumer.close(Duration.ofSeconds(2));
        }
    }

    private static void dispatch(Subscription s, SpecificRecord event) {
        try {
            if (event instanceof TokenEvent t) {
                s.accept(t);
            } else if (event instanceof InferenceResult r) {
                s.accept(r);
            }
        } catch (RuntimeException e) {
            log.warn("Listener of {} failed; dropping its subscription", s.requestId(), e);
            s.cancel();
        }
    }

    @Override
    public void close() {
        running = false;
        replays.shutdownNow();
        consumer.wakeup();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
