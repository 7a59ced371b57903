package io.sluice.worker;

import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.Tier;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.Predicate;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** A fresh topic prefix on the shared broker, with a producer and group-free readers. */
final class KafkaFixture implements AutoCloseable {
    final SharedInfra infra = SharedInfra.get();
    final Topics topics;
    final KafkaProducer<String, SpecificRecord> producer;
    final KafkaProducer<String, byte[]> rawProducer;

    KafkaFixture(String name) throws Exception {
        topics = new Topics(SharedInfra.uniquePrefix(name));
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
        }
        producer = new KafkaProducer<>(Map.of("bootstrap.servers", infra.bootstrapServers(), "acks", "all"),
                new StringSerializer(), AvroSerde.serializer());
        rawProducer = new KafkaProducer<>(Map.of("bootstrap.servers", infra.bootstrapServers(), "acks", "all"),
                new StringSerializer(), new ByteArraySerializer());
    }

    Map<String, Object> workerProps(String id) {
        Map<String, Object> p = new HashMap<>();
        p.put(CommonConfig.BOOTSTRAP_SERVERS, infra.bootstrapServers());
        p.put(CommonConfig.REDIS_URI, infra.redisUri());
        p.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        p.put(WorkerConfig.GROUP_ID, topics.prefix() + "workers");
        p.put(WorkerConfig.ID, id);
        return p;
    }

    /**
     * A producer for a worker that acknowledges nothing until the test says so ({@code completeNext},
     * {@code errorNext}), as records wait in a real producer's buffer: a worker killed meanwhile takes
     * them along. It knows this fixture's topics and partitions.
     */
    org.apache.kafka.clients.producer.MockProducer<String, Object> heldProducer() {
        List<org.apache.kafka.common.PartitionInfo> partitions = new ArrayList<>();
        for (String topic : topics.all()) {
            partitions.addAll(producer.partitionsFor(topic));
        }
        return new org.apache.kafka.clients.producer.MockProducer<>(new org.apache.kafka.common.Cluster("held",
                List.of(partitions.get(0).leader()), partitions, java.util.Set.of(), java.util.Set.of()), false, null,
                new StringSerializer(), AvroSerde.passThroughSerializer());
    }

    static InferenceRequest.Builder request(String prompt, int maxTokens) {
        return InferenceRequest.newBuilder().setRequestId(UUID.randomUUID().toString()).setTenant("acme")
                .setPrompt(prompt).setMaxTokens(maxTokens).setTier(Tier.operational).setCreatedAt(Instant.now());
    }

    void send(InferenceRequest r) throws Exception {
        producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(topics.requests(), r.getRequestId(), r)).get();
    }

    /** Reads a whole topic from the start until {@code done} holds for what was read, or fails after the timeout. */
    List<ConsumerRecord<String, SpecificRecord>> readUntil(String topic, Predicate<List<ConsumerRecord<String, SpecificRecord>>> done,
            Duration timeout, String awaiting) {
        List<ConsumerRecord<String, SpecificRecord>> all = new ArrayList<>();
        try (KafkaConsumer<String, SpecificRecord> c = new KafkaConsumer<>(Map.of("bootstrap.servers", infra.bootstrapServers()),
                new StringDeserializer(), AvroSerde.anyDeserializer())) {
            List<TopicPartition> parts = c.partitionsFor(topic).stream().map(p -> new TopicPartition(topic, p.partition())).toList();
            c.assign(parts);
            c.seekToBeginning(parts);
            long deadline = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(100)).forEach(all::add);
                if (done.test(all)) {
                    return all;
                }
            }
        }
        throw new AssertionError("Timed out after " + timeout + " awaiting " + awaiting + "; read " + all.size() + " records");
    }

    @Override
    public void close() {
        producer.close();
        rawProducer.close();
    }
}
