package io.sluice.schemas;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.avro.Schema;
import org.apache.avro.io.Encoder;

/**
 * Writes an {@link InferenceRequest} body field by field with Avro's encoder: the gateway writes
 * one per accepted request, and Avro's generic writer (the generated class has no custom coders,
 * because of its timestamp field) spent 8 % of a gateway's CPU at load looking up, boxing and
 * resolving each field. The bytes are the generic writer's; {@code SluiceCodecTest} holds the
 * two to that. The order of the writes is the schema's, so this is used only while the schema is
 * the one it was written for: any change to the record's fields turns it off ({@link #MATCHES})
 * and the generic writer takes over until it is brought in line.
 */
final class RequestEncoder {
    /** The fields, in order, with their types, that {@link #write} writes. */
    static final String WRITES = "request_id:string,client_id:[null,string],tenant:string,principal:[null,string],"
            + "prompt:string,max_tokens:int,temperature:float,top_p:float,top_k:int,seed:[null,long],stop:array<string>,"
            + "logprobs:int,tier:enum[financial,operational],priority:int,idempotency_key:[null,string],"
            + "metadata:map<string>,trace_id:[null,string],created_at:long/timestamp-millis,reply_partition:[null,int]";

    static final boolean MATCHES = WRITES.equals(signature(InferenceRequest.getClassSchema()));

    private RequestEncoder() {
    }

    /** The fields of a record schema, in order, with their types, in the notation of {@link #WRITES}. */
    static String signature(Schema record) {
        return record.getFields().stream().map(f -> f.name() + ":" + type(f.schema())).collect(Collectors.joining(","));
    }

    private static String type(Schema s) {
        return switch (s.getType()) {
            case UNION -> s.getTypes().stream().map(RequestEncoder::type).collect(Collectors.joining(",", "[", "]"));
            case ARRAY -> "array<" + type(s.getElementType()) + ">";
            case MAP -> "map<" + type(s.getValueType()) + ">";
            case ENUM -> "enum" + s.getEnumSymbols().stream().collect(Collectors.joining(",", "[", "]"));
            default -> s.getName() + (s.getLogicalType() != null ? "/" + s.getLogicalType().getName() : "");
        };
    }

    static void write(InferenceRequest r, Encoder out) throws IOException {
        out.writeString(r.getRequestId());
        nullableString(r.getClientId(), out);
        out.writeString(r.getTenant());
        nullableString(r.getPrincipal(), out);
        out.writeString(r.getPrompt());
        out.writeInt(r.getMaxTokens());
        out.writeFloat(r.getTemperature());
        out.writeFloat(r.getTopP());
        out.writeInt(r.getTopK());
        if (r.getSeed() == null) {
            out.writeIndex(0);
        } else {
            out.writeIndex(1);
            out.writeLong(r.getSeed());
        }
        List<String> stop = r.getStop();
        out.writeArrayStart();
        out.setItemCount(stop.size());
        for (String s : stop) {
            out.startItem();
            out.writeString(s);
        }
        out.writeArrayEnd();
        out.writeInt(r.getLogprobs());
        out.writeEnum(r.getTier().ordinal());
        out.writeInt(r.getPriority());
        nullableString(r.getIdempotencyKey(), out);
        Map<String, String> metadata = r.getMetadata();
        out.writeMapStart();
        out.setItemCount(metadata.size());
        if (!metadata.isEmpty()) { // most requests have none: no iterator for them
            for (Map.Entry<String, String> e : metadata.entrySet()) {
                out.startItem();
                out.writeString(e.getKey());
                out.writeString(e.getValue());
            }
        }
        out.writeMapEnd();
        nullableString(r.getTraceId(), out);
        out.writeLong(r.getCreatedAt().toEpochMilli());
        if (r.getReplyPartition() == null) {
            out.writeIndex(0);
        } else {
            out.writeIndex(1);
            out.writeInt(r.getReplyPartition());
        }
    }

    private static void nullableString(String value, Encoder out) throws IOException {
        if (value == null) {
            out.writeIndex(0);
        } else {
            out.writeIndex(1);
            out.writeString(value);
        }
    }
}
