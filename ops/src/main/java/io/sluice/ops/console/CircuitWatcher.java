package io.sluice.ops.console;

import io.sluice.schemas.MalformedRecordException;
import io.sluice.schemas.OpsEvent;
import io.sluice.schemas.SluiceCodec;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * The latest circuit state of every worker, read from the events topic from its beginning with
 * a group-free reader, so a restarted console knows the state at once.
 */
public final class CircuitWatcher implements AutoCloseable {
    /** A worker's last known circuit state. */
    public record State(String worker, String state, Instant at, String detail) {
    }

    private final KafkaConsumer<String, byte[]> consumer;
    private final Map<String, State> states = new TreeMap<>();
    private final Thread thread;
    private volatile boolean running = true;

    public CircuitWatcher(String bootstrapServers, String eventsTopic) {
        this.consumer = new KafkaConsumer<>(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false, ConsumerConfig.CLIENT_ID_CONFIG, "sluice-ops-events"),
                new StringDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> parts = consumer.partitionsFor(eventsTopic, Duration.ofSeconds(30)).stream()
                .map(p -> new TopicPartition(p.topic(), p.partition())).toList();
        consumer.assign(parts);
        consumer.seekToBeginning(parts);
        this.thread = new Thread(this::run, "sluice-ops-events");
        thread.setDaemon(true);
        thread.start();
    }

    private void run() {
        try {
            while (running) {
                for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    try {
                        OpsEvent e = SluiceCodec.get().decode(r.value(), OpsEvent.class);
                        String state = switch (e.getType()) {
                            case "circuit_opened" -> "OPEN";
                            case "circuit_half_open" -> "HALF_OPEN";
                            case "circuit_closed" -> "CLOSED";
                            default -> null;
                        };
                        if (state != null) {
                            synchronized (states) {
                                states.put(e.getSource(), new State(e.getSource(), state, e.getAt(), e.getDetail()));
                            }
                        }
                    } catch (MalformedRecordException ignored) {
                        // not an event this console knows
                    }
                }
            }
        } catch (WakeupException e) {
            // closing
        } finally {
            consumer.close(Duration.ofSeconds(1));
        }
    }

    /** Workers that ever reported a circuit change, by id. */
    public List<State> states() {
        synchronized (states) {
            return List.copyOf(states.values());
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
