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
        consumer.wakeup();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
