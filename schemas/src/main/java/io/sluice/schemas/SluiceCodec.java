package io.sluice.schemas;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.message.BadHeaderException;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.MissingSchemaException;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumWriter;
import org.apache.avro.specific.SpecificRecord;
import org.apache.avro.util.ClassSecurityValidator;

/**
 * Encodes and decodes every Sluice record in Avro single-object encoding
 * ({@code C3 01}, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema, then the body).
 *
 * <p>Decoding picks the record type from the fingerprint, so one topic may carry several record
 * types (the tokens topic carries {@link TokenEvent} and {@link InferenceResult}). Every schema
 * version listed in {@link ReleasedSchemas} is known to the decoder, so records written by older
 * producers are read into the current classes through Avro schema resolution.
 */
public final class SluiceCodec {

    /** The record types Sluice writes to Kafka. */
    public static final List<Class<? extends SpecificRecord>> RECORD_TYPES = List.of(
            InferenceRequest.class, TokenEvent.class, InferenceResult.class, Cancel.class, DeadLetter.class,
            AttemptHistory.class, OpsEvent.class);

    private static final SluiceCodec INSTANCE = new SluiceCodec();

    private final Map<Class<?>, Writer> writers = new HashMap<>();
    private final Map<Long, BinaryMessageDecoder<SpecificRecord>> decodersByFingerprint = new HashMap<>();
    private final Map<Long, Class<?>> typesByFingerprint = new HashMap<>();

    private SluiceCodec() {
        // Avro 1.12 refuses to instantiate classes it was not told to trust; trust exactly ours.
        ClassSecurityValidator.Builder trusted = ClassSecurityValidator.builder();
        for (Class<?> type : List.of(InferenceRequest.class, TokenEvent.class, InferenceResult.class, Cancel.class,
                DeadLetter.class, TokenLogprob.class, ErrorInfo.class, Origin.class, Attempt.class, Tier.class,
                FinishReason.class, AttemptHistory.class, OpsEvent.class)) {
            trusted.add(type);
        }
        ClassSecurityValidator.setGlobal(ClassSecurityValidator.composite(ClassSecurityValidator.getGlobal(), trusted.build()));
        for (Class<? extends SpecificRecord> type : RECORD_TYPES) {
            Schema current = SpecificData.get().getSchema(type);
            writers.put(type, new Writer(header(current), new SpecificDatumWriter<>(current, SpecificData.getForClass(type))));
            BinaryMessageDecoder<SpecificRecord> decoder = new BinaryMessageDecoder<>(SpecificData.getForClass(type), current);
            register(decoder, type, current);
            for (Schema released : ReleasedSchemas.versionsOf(type.getSimpleName())) {
                decoder.addSchema(released);
                register(decoder, type, released);
            }
        }
    }

    private void register(BinaryMessageDecoder<SpecificRecord> decoder, Class<?> type, Schema schema) {
        long fp = SchemaNormalization.parsingFingerprint64(schema);
        decodersByFingerprint.put(fp, decoder);
        typesByFingerprint.put(fp, type);
    }

    /** The shared codec; it is immutable after construction and safe for concurrent use. */
    public static SluiceCodec get() {
        return INSTANCE;
    }

    /** The single-object header of {@code schema}: {@code C3 01} and its fingerprint, little-endian. */
    static byte[] header(Schema schema) {
        return ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN).put((byte) 0xC3).put((byte) 0x01)
                .putLong(SchemaNormalization.parsingFingerprint64(schema)).array();
    }

    /** The header and the (thread-safe) datum writer of one record type. */
    private record Writer(byte[] header, SpecificDatumWriter<SpecificRecord> datumWriter) {
    }

    /**
     * One thread's output buffer and encoder, reused for every record it encodes. Avro's own
     * {@code BinaryMessageEncoder} writes through a direct encoder into a locked stream, one small
     * write per field, and copies the result twice; this is the same bytes with one buffered
     * encoder and one copy, which matters on the gateway's and the workers' per-record paths.
     */
    private static final class Scratch extends java.io.OutputStream {
        /** A buffer grown past this by a large record is not kept for the thread's next one. */
        private static final int KEEP = 64 * 1024;
        byte[] buf = new byte[1024];
        int count;
        BinaryEncoder encoder;

        @Override
        public void write(int b) {
            ensure(1);
            buf[count++] = (byte) b;
        }

        @Override
        public void write(byte[] b, int off, int len) {
            ensure(len);
            System.arraycopy(b, off, buf, count, len);
            count += len;
        }

        private void ensure(int more) {
            if (count + more > buf.length) {
                buf = java.util.Arrays.copyOf(buf, Math.max(buf.length * 2, count + more));
            }
        }

        byte[] take() {
            byte[] out = java.util.Arrays.copyOf(buf, count);
            count = 0;
            if (buf.length > KEEP) {
                buf = new byte[1024];
            }
            return out;
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** Encodes {@code record} with the current schema of its type. */
    public byte[] encode(SpecificRecord record) {
        Writer writer = writers.get(record.getClass());
        if (writer == null) {
            throw new IllegalArgumentException("Not a Sluice record type: " + record.getClass().getName());
        }
        Scratch scratch = SCRATCH.get();
        if (record instanceof InferenceRequest request && RequestEncoder.MATCHES) {
            try {
                return encode(writer, scratch, request, true);
            } catch (RuntimeException incomplete) {
                // A required field left null: let Avro's writer refuse it, naming the field.
            }
        }
        return encode(writer, scratch, record, false);
    }

    private static byte[] encode(Writer writer, Scratch scratch, SpecificRecord record, boolean request) {
        scratch.count = 0;
        try {
            scratch.write(writer.header(), 0, writer.header().length);
            // The thread's encoder always writes to its scratch and was left flushed (empty): used as
            // it is. Handing it back to the factory would make it a new sink and channel per record.
            BinaryEncoder encoder = scratch.encoder;
            if (encoder == null) {
                encoder = EncoderFactory.get().binaryEncoder(scratch, null);
                scratch.encoder = encoder;
            }
            try {
                if (request) {
                    RequestEncoder.write((InferenceRequest) record, encoder);
                } else {
                    writer.datumWriter().write(record, encoder);
                }
            } catch (RuntimeException refused) {
                // The encoder still buffers the refused record's first fields; reused, it would put
                // them into the thread's next record.
                scratch.encoder = null;
                throw refused;
            }
            encoder.flush();
        } catch (IOException e) {
            scratch.encoder = null;
            throw new UncheckedIOException(e);
        }
        return scratch.take();
    }

    /**
     * Decodes a single-object encoded record of any Sluice type.
     *
     * @throws MalformedRecordException when the bytes are not single-object Avro, carry an unknown
     *     fingerprint, or the body does not match the schema
     */
    public SpecificRecord decode(byte[] bytes) {
        long fp = fingerprintOf(bytes);
        BinaryMessageDecoder<SpecificRecord> decoder = decodersByFingerprint.get(fp);
        if (decoder == null) {
            throw new MalformedRecordException("Unknown schema fingerprint " + Long.toHexString(fp), fp);
        }
        try {
            return decoder.decode(bytes);
        } catch (BadHeaderException | MissingSchemaException e) {
            throw new MalformedRecordException(e.getMessage(), fp);
        } catch (IOException | RuntimeException e) {
            throw new MalformedRecordException("Body does not match schema " + Long.toHexString(fp) + ": " + e, fp);
        }
    }

    /** Decodes a record that must be of {@code type}. */
    public <T extends SpecificRecord> T decode(byte[] bytes, Class<T> type) {
        SpecificRecord record = decode(bytes);
        if (!type.isInstance(record)) {
            throw new MalformedRecordException("Expected " + type.getSimpleName() + " but got "
                    + record.getClass().getSimpleName(), fingerprintOf(bytes));
        }
        return type.cast(record);
    }

    /** The record type a fingerprint stands for, or null. */
    public Class<?> typeOf(long fingerprint) {
        return typesByFingerprint.get(fingerprint);
    }

    /**
     * Reads the writer-schema fingerprint from a single-object header.
     *
     * @throws MalformedRecordException when the header is missing
     */
    public static long fingerprintOf(byte[] bytes) {
        if (bytes == null || bytes.length < 10 || bytes[0] != (byte) 0xC3 || bytes[1] != (byte) 0x01) {
            throw new MalformedRecordException("Not Avro single-object encoding (missing C3 01 header)", null);
        }
        return ByteBuffer.wrap(bytes, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    static Schema parse(InputStream in) throws IOException {
        return new Schema.Parser().parse(in);
    }
}
