package io.sluice.schemas;

import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serializer;

/**
 * Kafka serializers for Sluice records, in Avro single-object encoding. Any producer with a stock
 * Avro library and the {@code .avsc} files can write records Sluice reads.
 */
public final class AvroSerde {
    private AvroSerde() {
    }

    /** Serializes any Sluice record; null stays null (a tombstone). */
    public static <T extends SpecificRecord> Serializer<T> serializer() {
        return (topic, value) -> value == null ? null : SluiceCodec.get().encode(value);
    }

    /**
     * Serializes Sluice records, and passes {@code byte[]} through untouched: a retry or a dead
     * letter carries the request exactly as its producer wrote it, in whatever schema version.
     */
    public static Serializer<Object> passThroughSerializer() {
        return (topic, value) -> {
            if (value == null || value instanceof byte[]) {
                return (byte[]) value;
            }
            return SluiceCodec.get().encode((SpecificRecord) value);
        };
    }

    /** Deserializes a record of any Sluice type, chosen by the fingerprint in its header. */
    public static Deserializer<SpecificRecord> anyDeserializer() {
        return (topic, bytes) -> bytes == null ? null : SluiceCodec.get().decode(bytes);
    }

    /** Deserializes a record that must be of {@code type}; anything else is a {@link MalformedRecordException}. */
    public static <T extends SpecificRecord> Deserializer<T> deserializer(Class<T> type) {
        return (topic, bytes) -> bytes == null ? null : SluiceCodec.get().decode(bytes, type);
    }
}
