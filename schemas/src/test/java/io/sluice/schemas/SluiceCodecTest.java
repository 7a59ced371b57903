package io.sluice.schemas;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.specific.SpecificRecord;
import org.junit.jupiter.api.Test;

class SluiceCodecTest {
    private final SluiceCodec codec = SluiceCodec.get();

    static InferenceRequest request() {
        return InferenceRequest.newBuilder()
                .setRequestId("r-1").setClientId("c-1").setTenant("acme").setPrincipal("alice")
                .setPrompt("The river").setMaxTokens(16).setTemperature(0.7f).setTopP(0.9f).setTopK(40)
                .setSeed(42L).setStop(List.of("\n\n", "END")).setLogprobs(2).setTier(Tier.financial)
                .setPriority(7).setIdempotencyKey("k-1").setMetadata(Map.of("order", "o-9"))
                .setTraceId("t-1").setCreatedAt(Instant.ofEpochMilli(1_700_000_000_123L)).build();
    }

    static List<SpecificRecord> oneOfEach() {
        return List.of(
                request(),
                TokenEvent.newBuilder().setRequestId("r-1").setSeq(3).setTokenId(17).setText(" lock")
                        .setLogprob(-0.25f).setTopLogprobs(List.of(new TokenLogprob(17, " lock", -0.25f)))
                        .setFence(2).setWorkerId("w-1").setProducedAt(Instant.ofEpochMilli(5)).build(),
                InferenceResult.newBuilder().setRequestId("r-1").setTenant("acme").setFinishReason(FinishReason.length)
                        .setText("abc").setTokenIds(List.of(1, 2, 3)).setPromptTokens(2).setCompletionTokens(3)
                        .setFence(1).setWorkerId("w-1").setCompletedAt(Instant.ofEpochMilli(9)).build(),
                Cancel.newBuilder().setRequestId("r-1").setTenant("acme").setRequestedAt(Instant.ofEpochMilli(1)).build(),
                DeadLetter.newBuilder().setRequestId("r-1").setTenant("acme").setTier(Tier.financial)
                        .setOriginal(ByteBuffer.wrap(new byte[] {1, 2, 3})).setOriginalFingerprint(7L)
                        .setOrigin(new Origin("sluice.requests", 2, 99L))
                        .setAttempts(List.of(new Attempt(0, Instant.ofEpochMilli(3), "w-1", "java.io.IOException", "boom")))
                        .setFinalError(new ErrorInfo("failed", "boom", false)).setTraceId("t-1")
                        .setDeadLetteredAt(Instant.ofEpochMilli(4)).build());
    }

    @Test
    void everyRecordTypeRoundTripsAndIsRecognisedByItsFingerprint() {
        for (SpecificRecord record : oneOfEach()) {
            byte[] bytes = codec.encode(record);
            assertThat(bytes[0]).isEqualTo((byte) 0xC3);
            assertThat(bytes[1]).isEqualTo((byte) 0x01);
            assertThat(codec.decode(bytes)).isEqualTo(record);
            assertThat(AvroSerde.deserializer(record.getClass()).deserialize("t", bytes)).isEqualTo(record);
        }
    }

    @Test
    void encodingIsByteForByteWhatAvrosOwnSingleObjectEncoderWrites() throws Exception {
        for (SpecificRecord record : oneOfEach()) {
            var avros = new org.apache.avro.message.BinaryMessageEncoder<SpecificRecord>(
                    org.apache.avro.specific.SpecificData.getForClass(record.getClass()), record.getSchema());
            ByteBuffer expected = avros.encode(record);
            assertThat(ByteBuffer.wrap(codec.encode(record))).as(record.getSchema().getName()).isEqualTo(expected);
        }
        // A record larger than the reused buffer, then a small one: neither keeps bytes of the other.
        InferenceRequest large = InferenceRequest.newBuilder(request()).setPrompt("x".repeat(200_000)).build();
        assertThat(codec.decode(codec.encode(large))).isEqualTo(large);
        assertThat(codec.decode(codec.encode(request()))).isEqualTo(request());
    }

    @Test
    void requestsAreWrittenFieldByFieldExactlyAsAvrosGenericWriterWritesThem() throws Exception {
        assertThat(RequestEncoder.signature(InferenceRequest.getClassSchema()))
                .as("the request schema changed: bring RequestEncoder in line (until then Avro's writer is used)")
                .isEqualTo(RequestEncoder.WRITES);
        assertThat(RequestEncoder.MATCHES).isTrue();
        java.util.Random random = new java.util.Random(7);
        List<InferenceRequest> requests = new java.util.ArrayList<>(List.of(request(),
                // Every nullable field null, every collection empty, the smallest values.
                InferenceRequest.newBuilder().setRequestId("").setTenant("").setPrompt("").setMaxTokens(Integer.MIN_VALUE)
                        .setTemperature(-0f).setTopP(Float.NaN).setTopK(0).setLogprobs(0).setPriority(0)
                        .setCreatedAt(Instant.ofEpochMilli(Long.MIN_VALUE / 1000)).build()));
        for (int i = 0; i < 500; i++) {
            InferenceRequest.Builder b = InferenceRequest.newBuilder().setRequestId(text(random)).setTenant(text(random))
                    .setPrompt(text(random)).setMaxTokens(random.nextInt()).setTemperature(random.nextFloat() * 1e6f)
                    .setTopP(Float.intBitsToFloat(random.nextInt())).setTopK(random.nextInt()).setLogprobs(random.nextInt())
                    .setTier(Tier.values()[random.nextInt(2)]).setPriority(random.nextInt())
                    .setCreatedAt(Instant.ofEpochMilli(random.nextLong() >> 12));
            if (random.nextBoolean()) {
                b.setClientId(text(random)).setPrincipal(text(random)).setIdempotencyKey(text(random)).setTraceId(text(random))
                        .setSeed(random.nextLong()).setReplyPartition(random.nextInt());
            }
            List<String> stop = new java.util.ArrayList<>();
            Map<String, String> metadata = new java.util.LinkedHashMap<>();
            for (int n = random.nextInt(4); n > 0; n--) {
                stop.add(text(random));
                metadata.put(text(random), text(random));
            }
            requests.add(b.setStop(stop).setMetadata(metadata).build());
        }
        org.apache.avro.io.BinaryEncoder reused = null;
        for (InferenceRequest r : requests) {
            ByteArrayOutputStream generic = new ByteArrayOutputStream();
            generic.write(SluiceCodec.header(InferenceRequest.getClassSchema()));
            reused = EncoderFactory.get().binaryEncoder(generic, reused);
            new org.apache.avro.specific.SpecificDatumWriter<InferenceRequest>(InferenceRequest.class).write(r, reused);
            reused.flush();
            byte[] bytes = codec.encode(r);
            assertThat(bytes).as(r.toString()).isEqualTo(generic.toByteArray());
            InferenceRequest back = codec.decode(bytes, InferenceRequest.class);
            assertThat(back.getMetadata()).isEqualTo(r.getMetadata());
            assertThat(List.of(back.getPrompt(), back.getStop(), back.getCreatedAt(), Float.floatToIntBits(back.getTopP())))
                    .isEqualTo(List.of(r.getPrompt(), r.getStop(), r.getCreatedAt(), Float.floatToIntBits(r.getTopP())));
        }
        // A required field left null is refused as Avro's writer refuses it, and the thread's next
        // record is whole (the refused one's first fields stayed in the reused encoder before).
        InferenceRequest noPrompt = InferenceRequest.newBuilder(request()).build();
        noPrompt.setPrompt(null);
        assertThatThrownBy(() -> codec.encode(noPrompt)).hasMessageContaining("prompt");
        assertThat(codec.decode(codec.encode(request()))).isEqualTo(request());
        TokenEvent noText = TokenEvent.newBuilder((TokenEvent) oneOfEach().get(1)).build();
        noText.setText(null);
        assertThatThrownBy(() -> codec.encode(noText)).hasMessageContaining("text");
        assertThat(codec.decode(codec.encode(oneOfEach().get(1)))).isEqualTo(oneOfEach().get(1));
    }

    /** Up to 40 characters from ASCII to astral planes. */
    private static String text(java.util.Random random) {
        StringBuilder sb = new StringBuilder();
        for (int n = random.nextInt(40); n > 0; n--) {
            int kind = random.nextInt(4);
            sb.appendCodePoint(kind == 0 ? 0x20 + random.nextInt(95) : kind == 1 ? 0xA0 + random.nextInt(0x700)
                    : kind == 2 ? 0x4E00 + random.nextInt(0x5000) : 0x1F300 + random.nextInt(0x300));
        }
        return sb.toString();
    }

    @Test
    void kafkaSerdesRoundTripAndKeepTombstones() {
        var serializer = AvroSerde.<InferenceRequest>serializer();
        var deserializer = AvroSerde.deserializer(InferenceRequest.class);
        assertThat(deserializer.deserialize("t", serializer.serialize("t", request()))).isEqualTo(request());
        assertThat(serializer.serialize("t", null)).isNull();
        assertThat(deserializer.deserialize("t", null)).isNull();
    }

    @Test
    void aStockAvroProducerCanWriteARequestThatSluiceReads() throws Exception {
        // What a producer in another language does: generic record, plain binary encoder, the header by hand.
        Schema schema = new Schema.Parser().parse(InferenceRequest.getClassSchema().toString());
        GenericRecord r = new GenericData.Record(schema);
        r.put("request_id", "ext-1");
        r.put("tenant", "acme");
        r.put("prompt", "hello");
        r.put("max_tokens", 8);
        r.put("temperature", 0f);
        r.put("top_p", 1f);
        r.put("top_k", 0);
        r.put("stop", List.of());
        r.put("logprobs", 0);
        r.put("tier", new GenericData.EnumSymbol(schema.getField("tier").schema(), "operational"));
        r.put("priority", 0);
        r.put("metadata", Map.of());
        r.put("created_at", 12L);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0xC3);
        out.write(0x01);
        long fp = SchemaNormalization.parsingFingerprint64(schema);
        for (int i = 0; i < 8; i++) {
            out.write((int) (fp >>> (8 * i)) & 0xff);
        }
        BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(schema).write(r, enc);
        enc.flush();

        InferenceRequest decoded = codec.decode(out.toByteArray(), InferenceRequest.class);
        assertThat(decoded.getRequestId()).isEqualTo("ext-1");
        assertThat(decoded.getTier()).isEqualTo(Tier.operational);
        assertThat(decoded.getMaxTokens()).isEqualTo(8);
    }

    @Test
    void garbageIsAMalformedRecordNotACrash() {
        assertThatThrownBy(() -> codec.decode("{\"prompt\":\"hi\"}".getBytes()))
                .isInstanceOf(MalformedRecordException.class).hasMessageContaining("C3 01");
        byte[] unknown = {(byte) 0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0};
        assertThatThrownBy(() -> codec.decode(unknown))
                .isInstanceOf(MalformedRecordException.class).hasMessageContaining("Unknown schema fingerprint");
        byte[] truncated = codec.encode(request());
        byte[] cut = java.util.Arrays.copyOf(truncated, 14);
        assertThatThrownBy(() -> codec.decode(cut)).isInstanceOf(MalformedRecordException.class);
    }

    @Test
    void aRecordOfTheWrongTypeIsRejected() {
        byte[] cancel = codec.encode(oneOfEach().get(3));
        assertThatThrownBy(() -> codec.decode(cancel, InferenceRequest.class))
                .isInstanceOf(MalformedRecordException.class).hasMessageContaining("Expected InferenceRequest");
    }

    @Test
    void topicNamesFollowTheContract() {
        Topics t = Topics.withDefaultPrefix();
        assertThat(t.all()).containsExactly("sluice.requests", "sluice.requests.retry.financial",
                "sluice.requests.retry.operational", "sluice.tokens", "sluice.results", "sluice.control",
                "sluice.dlq.financial", "sluice.dlq.operational", "sluice.events");
    }
}
