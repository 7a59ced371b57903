package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.ops.lag.LagMonitor;
import io.sluice.ops.lag.LagStatus;
import io.sluice.testkit.ChildJvm;
import io.sluice.testkit.SharedInfra;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code sluice lag} against Kafka's own {@code kafka-consumer-groups --describe} on a real broker. */
class LagCommandTest {
    final SharedInfra infra = SharedInfra.get();
    @TempDir
    Path dir;

    String topic(int partitions) throws Exception {
        String name = "lag-" + UUID.randomUUID();
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", infra.bootstrapServers()))) {
            admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get();
        }
        return name;
    }

    KafkaConsumer<String, String> consumer(String group, String isolation) {
        return new KafkaConsumer<>(Map.of("bootstrap.servers", infra.bootstrapServers(), "group.id", group,
                "enable.auto.commit", false, "auto.offset.reset", "earliest", "isolation.level", isolation),
                new StringDeserializer(), new StringDeserializer());
    }

    @Test
    void offsetsAndLagAgreeWithKafkaConsumerGroupsDescribe() throws Exception {
        String topic = topic(3);
        try (KafkaProducer<String, String> p = new KafkaProducer<>(Map.of("bootstrap.servers", infra.bootstrapServers()),
                new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < 60; i++) {
                p.send(new ProducerRecord<>(topic, i % 3, "k" + i, "v" + i));
            }
            p.flush();
        }
        String group = "lag-group-" + UUID.randomUUID();
        try (KafkaConsumer<String, String> c = consumer(group, "read_uncommitted")) {
            // Commit a different position on each partition: 7, 12 and 20 of 20.
            Map<TopicPartition, OffsetAndMetadata> commits = new HashMap<>();
            commits.put(new TopicPartition(topic, 0), new OffsetAndMetadata(7));
            commits.put(new TopicPartition(topic, 1), new OffsetAndMetadata(12));
            commits.put(new TopicPartition(topic, 2), new OffsetAndMetadata(20));
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (c.assignment().isEmpty() && System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(100));
            }
            c.commitSync(commits);
        }
        List<LagMonitor.PartitionLag> ours;
        try (LagMonitor monitor = new LagMonitor(infra.bootstrapServers(), Clock.systemUTC(), 10)) {
            monitor.sample(List.of(group));
            ours = monitor.sample(List.of(group));
        }
        Path log = dir.resolve("describe.log");
        try (ChildJvm describe = ChildJvm.start("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                List.of("--bootstrap-server", infra.bootstrapServers(), "--describe", "--group", group), Map.of(), log, "256m")) {
            describe.awaitOutput("LOG-END-OFFSET", 60_000);
            long end = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (Files.readString(log).lines().filter(l -> l.startsWith(group)).count() < 3 && System.nanoTime() < end) {
                Thread.sleep(50);
            }
        }
        Map<Integer, long[]> theirs = new HashMap<>();
        for (String line : Files.readAllLines(log)) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 6 && f[0].equals(group)) {
                theirs.put(Integer.parseInt(f[2]), new long[] {Long.parseLong(f[3]), Long.parseLong(f[4]), Long.parseLong(f[5])});
            }
        }
        assertThat(theirs).as("kafka-consumer-groups --describe output: %s", Files.readString(log)).hasSize(3);
        assertThat(ours).hasSize(3);
        for (LagMonitor.PartitionLag r : ours) {
            long[] t = theirs.get(r.partition());
            assertThat(new long[] {r.committed(), r.end(), r.lag()}).as("partition %d", r.partition()).containsExactly(t);
        }
        assertThat(ours).extracting(LagMonitor.PartitionLag::lag).containsExactly(13L, 8L, 0L);
        assertThat(ours).extracting(LagMonitor.PartitionLag::status)
                .as("nobody consumes: the lagging partitions are stopped").containsExactly(LagStatus.STOP, LagStatus.STOP, LagStatus.OK);
        assertThat(ours.get(0).lagSeconds()).isGreaterThanOrEqualTo(0);

        String out = GovernanceEndToEndTest.run("lag", "--bootstrap-servers", infra.bootstrapServers(), "--group", group,
                "--samples", "1", "--json");
        assertThat(out).startsWith("0|").contains("\"lag\":13").contains("\"status\":\"STOP\"");
    }

    @Test
    void transactionMarkersAreNotLag() throws Exception {
        String topic = topic(1);
        try (KafkaProducer<String, String> p = new KafkaProducer<>(Map.of("bootstrap.servers", infra.bootstrapServers(),
                "transactional.id", "lag-tx-" + UUID.randomUUID()), new StringSerializer(), new StringSerializer())) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "v" + i));
            }
            p.commitTransaction();
        }
        String group = "lag-tx-group-" + UUID.randomUUID();
        try (KafkaConsumer<String, String> c = consumer(group, "read_committed")) {
            c.subscribe(List.of(topic));
            long last = -1;
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (last < 4 && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                    last = r.offset();
                }
            }
            // As many frameworks do: commit the offset after the last record processed, which
            // leaves the commit marker at offset 5 between it and the end.
            c.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(last + 1)));
        }
        try (LagMonitor monitor = new LagMonitor(infra.bootstrapServers(), Clock.systemUTC(), 10)) {
            monitor.sample(List.of(group));
            LagMonitor.PartitionLag r = monitor.sample(List.of(group)).get(0);
            assertThat(r.committed()).isEqualTo(5);
            assertThat(r.end()).isEqualTo(6);
            assertThat(r.rawLag()).as("what kafka-consumer-groups shows").isEqualTo(1);
            assertThat(r.lag()).as("only a marker is left: no lag").isZero();
            assertThat(r.status()).isEqualTo(LagStatus.OK);
            assertThat(r.lagSeconds()).isZero();
        }
    }
}
