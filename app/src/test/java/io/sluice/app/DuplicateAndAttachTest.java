package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.Tier;
import io.sluice.schemas.TokenEvent;
import io.sluice.testkit.SharedInfra;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Duplicate submits are decoded once and share one stream; a client can re-attach to any request of its tenant. */
class DuplicateAndAttachTest {
    static final Duration WAIT = Duration.ofSeconds(60);
    static InProcessPipeline pipeline;

    @BeforeAll
    static void start() throws Exception {
        pipeline = new InProcessPipeline("dup");
    }

    @AfterAll
    static void stop() throws Exception {
        pipeline.close();
    }

    /** A whole stream as one client saw it. */
    record Stream(String requestId, boolean duplicate, List<Integer> seqs, String text, JsonNode terminal) {
    }

    static Stream readStream(WsClient c, String requestId, boolean duplicate) throws InterruptedException {
        List<Integer> seqs = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        while (true) {
            JsonNode f = c.next(WAIT, "stream of " + requestId);
            assertThat(f.path("request_id").asText()).isEqualTo(requestId);
            if (!f.path("type").asText().equals("token")) {
                return new Stream(requestId, duplicate, seqs, text.toString(), f);
            }
            seqs.add(f.path("seq").asInt());
            text.append(f.path("text").asText());
        }
    }

    static Stream submit(WsClient c, String generate) throws InterruptedException {
        c.send(generate);
        JsonNode accepted = c.next(WAIT, "accepted");
        assertThat(accepted.path("type").asText()).as("%s", accepted).isEqualTo("accepted");
        return readStream(c, accepted.path("request_id").asText(), accepted.path("duplicate").asBoolean());
    }

    static void assertWhole(Stream s) {
        assertThat(s.seqs()).containsExactlyElementsOf(java.util.stream.IntStream.range(0, s.seqs().size()).boxed().toList());
        assertThat(s.terminal().path("type").asText()).isEqualTo("done");
        assertThat(s.terminal().path("usage").path("completion_tokens").asInt()).isEqualTo(s.seqs().size());
    }

    static String generate(String key, String prompt, int maxTokens) {
        return "{\"type\":\"generate\",\"prompt\":\"" + prompt + "\",\"max_tokens\":" + maxTokens
                + ",\"idempotency_key\":\"" + key + "\"}";
    }

    @Test
    void theSameKeyAgainOnTheSameOrAnotherSocketGetsTheFirstRequestAndItsWholeStream() throws Exception {
        String key = UUID.randomUUID().toString();
        String token = pipeline.token("acme");
        try (WsClient a = WsClient.connect(pipeline.gateway.url(), token);
             WsClient b = WsClient.connect(pipeline.gateway.url(), token)) {
            Stream first = submit(a, generate(key, "The lock keeper", 20));
            assertThat(first.duplicate()).isFalse();
            assertWhole(first);

            Stream again = submit(a, generate(key, "The lock keeper", 20));
            Stream elsewhere = submit(b, generate(key, "The lock keeper", 20));
            for (Stream dup : List.of(again, elsewhere)) {
                assertThat(dup.duplicate()).isTrue();
                assertThat(dup.requestId()).isEqualTo(first.requestId());
                assertWhole(dup);
                assertThat(dup.text()).isEqualTo(first.text());
            }
        }
    }

    @Test
    void theSameKeyWithDifferentParametersIsAnInvalidRequest() throws Exception {
        String key = UUID.randomUUID().toString();
        try (WsClient a = WsClient.connect(pipeline.gateway.url(), pipeline.token("acme"))) {
            assertWhole(submit(a, generate(key, "The lock keeper", 5)));
            a.send(generate(key, "The lock keeper", 6));
            JsonNode error = a.next(WAIT, "error");
            assertThat(error.path("code").asText()).isEqualTo("invalid_request");
            assertThat(error.path("message").asText()).startsWith("idempotency_key");
        }
    }

    @Test
    void aHundredConcurrentSubmitsOfOneKeyAreDecodedOnce() throws Exception {
        String key = UUID.randomUUID().toString();
        String token = pipeline.token("acme");
        int n = 100;
        ExecutorService pool = Executors.newFixedThreadPool(20);
        List<Future<Stream>> futures = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                futures.add(pool.submit(() -> {
                    try (WsClient c = WsClient.connect(pipeline.gateway.url(), token)) {
                        return submit(c, generate(key, "The river", 30));
                    }
                }));
            }
            Set<String> ids = new HashSet<>();
            int firsts = 0;
            Set<String> texts = new HashSet<>();
            for (Future<Stream> f : futures) {
                Stream s = f.get(120, java.util.concurrent.TimeUnit.SECONDS);
                assertWhole(s);
                ids.add(s.requestId());
                texts.add(s.text());
                firsts += s.duplicate() ? 0 : 1;
            }
            assertThat(ids).as("one request for the key").hasSize(1);
            assertThat(firsts).as("exactly one submit was the first").isEqualTo(1);
            assertThat(texts).hasSize(1);
            String id = ids.iterator().next();
            Map<Integer, Set<String>> published = publishedTokens(id);
            assertThat(published.values()).as("each seq published by one decode").allMatch(s -> s.size() == 1);
        } finally {
            pool.shutdownNow();
        }
    }

    /** Per seq of a request, the distinct (fence, worker, token) triples on the tokens topic. */
    static Map<Integer, Set<String>> publishedTokens(String requestId) {
        Map<Integer, Set<String>> out = new HashMap<>();
        String topic = pipeline.topics.tokens();
        try (var c = new KafkaConsumer<>(Map.<String, Object>of("bootstrap.servers", SharedInfra.get().bootstrapServers()),
                new StringDeserializer(), AvroSerde.anyDeserializer())) {
            List<TopicPartition> parts = c.partitionsFor(topic).stream().map(p -> new TopicPartition(topic, p.partition())).toList();
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> end = c.endOffsets(parts);
            while (parts.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                for (var r : c.poll(Duration.ofMillis(200))) {
                    if (requestId.equals(r.key()) && r.value() instanceof TokenEvent t) {
                        out.computeIfAbsent(t.getSeq(), k -> new HashSet<>())
                                .add(t.getFence() + "/" + t.getWorkerId() + "/" + t.getTokenId());
                    }
                }
            }
        }
        return out;
    }

    @Test
    void duplicatesWrittenStraightToTheTopicGetTheFirstOutcomeUnderTheirOwnIds() throws Exception {
        String key = UUID.randomUUID().toString();
        List<String> ids = new ArrayList<>();
        try (var producer = new KafkaProducer<String, SpecificRecord>(Map.of("bootstrap.servers",
                SharedInfra.get().bootstrapServers(), "acks", "all"), new StringSerializer(), AvroSerde.serializer())) {
            for (int i = 0; i < 3; i++) {
                InferenceRequest r = InferenceRequest.newBuilder().setRequestId(UUID.randomUUID().toString())
                        .setTenant("acme").setPrompt("The lock keeper").setMaxTokens(12).setTier(Tier.operational)
                        .setIdempotencyKey(key).setCreatedAt(Instant.now()).build();
                ids.add(r.getRequestId());
                producer.send(new ProducerRecord<>(pipeline.topics.requests(), r.getRequestId(), r)).get();
            }
        }
        Set<String> texts = new HashSet<>();
        int completion = 0;
        for (String id : ids) {
            InferenceResult r = ResultsReader.await(SharedInfra.get().bootstrapServers(), pipeline.topics.results(), id, WAIT);
            assertThat(r.getRequestId()).isEqualTo(id);
            texts.add(r.getText());
            completion = r.getCompletionTokens();
        }
        assertThat(texts).as("one outcome shared by all three").hasSize(1);
        // Each id gets a whole stream (its followers wait for every seq), and all three carry the
        // same fence and token at every seq: one decode under one claim, published under each id.
        // A second decode would claim a newer fence.
        List<Map<Integer, Set<String>>> streams = new ArrayList<>();
        long deadline = System.nanoTime() + WAIT.toNanos();
        for (String id : ids) {
            // The results topic is another topic than the tokens: a result read there does not
            // mean the tokens before it on the tokens topic are readable yet.
            Map<Integer, Set<String>> published = publishedTokens(id);
            while (published.size() < completion && System.nanoTime() < deadline) {
                Thread.sleep(100);
                published = publishedTokens(id);
            }
            Map<Integer, Set<String>> stream = new HashMap<>();
            published.forEach((seq, triples) -> stream.put(seq, triples.stream()
                    .map(t -> t.substring(0, t.indexOf('/')) + t.substring(t.lastIndexOf('/')))
                    .collect(java.util.stream.Collectors.toSet())));
            streams.add(stream);
        }
        assertThat(streams.get(0)).as("the first stream").isNotEmpty()
                .allSatisfy((seq, tokens) -> assertThat(tokens).as("seq " + seq).hasSize(1));
        assertThat(streams.get(0).keySet()).containsExactlyInAnyOrderElementsOf(
                java.util.stream.IntStream.range(0, completion).boxed().toList());
        assertThat(streams).as("the streams of the three ids").allSatisfy(s -> assertThat(s).isEqualTo(streams.get(0)));
    }

    @Test
    void attachResumesAfterTheGivenSeqOnAnySocketAndHidesOtherTenantsRequests() throws Exception {
        Stream original;
        try (WsClient a = WsClient.connect(pipeline.gateway.url(), pipeline.token("acme"))) {
            original = submit(a, "{\"type\":\"generate\",\"prompt\":\"The lock keeper\",\"max_tokens\":20}");
            assertWhole(original);
        }
        int after = 4;
        try (WsClient b = WsClient.connect(pipeline.gateway.url(), pipeline.token("acme"))) {
            b.send("{\"type\":\"attach\",\"request_id\":\"" + original.requestId() + "\",\"after_seq\":" + after + "}");
            Stream rest = readStream(b, original.requestId(), false);
            assertThat(rest.seqs()).containsExactlyElementsOf(
                    java.util.stream.IntStream.range(after + 1, original.seqs().size()).boxed().toList());
            assertThat(rest.terminal().path("type").asText()).isEqualTo("done");
            assertThat(original.text()).endsWith(rest.text());
        }
        try (WsClient other = WsClient.connect(pipeline.gateway.url(), pipeline.token("globex"))) {
            other.send("{\"type\":\"attach\",\"request_id\":\"" + original.requestId() + "\",\"after_seq\":-1}");
            JsonNode hidden = other.next(WAIT, "not_found for another tenant");
            other.send("{\"type\":\"attach\",\"request_id\":\"" + UUID.randomUUID() + "\",\"after_seq\":-1}");
            JsonNode missing = other.next(WAIT, "not_found for an unknown id");
            assertThat(hidden.path("code").asText()).isEqualTo("not_found");
            assertThat(hidden.path("message").asText()).isEqualTo(missing.path("message").asText());
        }
    }

    @Test
    void aRepeatThroughAnotherGatewayAndAnAttachThereGetTheSameRequest() throws Exception {
        java.util.Map<String, Object> g = new java.util.HashMap<>();
        g.put(io.sluice.schemas.CommonConfig.BOOTSTRAP_SERVERS, SharedInfra.get().bootstrapServers());
        g.put(io.sluice.schemas.CommonConfig.REDIS_URI, SharedInfra.get().redisUri());
        g.put(io.sluice.schemas.CommonConfig.TOPIC_PREFIX, pipeline.topics.prefix());
        g.put(io.sluice.ingress.GatewayConfig.PORT, 0);
        g.put(io.sluice.ingress.GatewayConfig.JWT_SECRET, InProcessPipeline.SECRET);
        String key = UUID.randomUUID().toString();
        String token = pipeline.token("acme");
        try (io.sluice.ingress.Gateway second = io.sluice.ingress.Gateway.start(new io.sluice.ingress.GatewayConfig(g));
             WsClient a = WsClient.connect(pipeline.gateway.url(), token);
             WsClient b = WsClient.connect(second.url(), token)) {
            Stream first = submit(a, generate(key, "The river", 15));
            Stream repeat = submit(b, generate(key, "The river", 15));
            assertThat(repeat.duplicate()).isTrue();
            assertThat(repeat.requestId()).isEqualTo(first.requestId());
            assertThat(repeat.text()).isEqualTo(first.text());
            assertWhole(repeat);
            b.send("{\"type\":\"attach\",\"request_id\":\"" + first.requestId() + "\",\"after_seq\":-1}");
            Stream attached = readStream(b, first.requestId(), false);
            assertWhole(attached);
            assertThat(attached.text()).isEqualTo(first.text());
        }
    }
}
