package io.sluice.app;

import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.InferenceResult;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/** Reads the results topic from the start, outside any group, until a request's result appears. */
final class ResultsReader {
    private ResultsReader() {
    }

    static InferenceResult await(String bootstrap, String topic, String requestId, Duration timeout) {
        try (var c = new KafkaConsumer<>(Map.<String, Object>of("bootstrap.servers", bootstrap), new StringDeserializer(),
                AvroSerde.deserializer(InferenceResult.class))) {
            List<TopicPartition> parts = c.partitionsFor(topic).stream().map(p -> new TopicPartition(topic, p.partition())).toList();
            c.assign(parts);
            c.seekToBeginning(parts);
            long deadline = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < deadline) {
                for (var r : c.poll(Duration.ofMillis(100))) {
                    if (requestId.equals(r.key())) {
                        return r.value();
                    }
                }
            }
        }
        throw new AssertionError("No result for " + requestId + " on " + topic + " within " + timeout);
    }
}
