package io.sluice.schemas;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SchemaCompatibility.SchemaCompatibilityType;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/**
 * The compatibility gate: the current schema of every record must read data written with every
 * released version (backward) and every released reader must read data written with the current
 * schema (forward). A change that breaks either fails the build.
 */
class SchemaCompatibilityGateTest {

    static List<Class<? extends SpecificRecord>> recordTypes() {
        return SluiceCodec.RECORD_TYPES;
    }

    static List<String> problems(Schema current, List<Schema> released) {
        List<String> problems = new ArrayList<>();
        for (int i = 0; i < released.size(); i++) {
            Schema old = released.get(i);
            var backward = SchemaCompatibility.checkReaderWriterCompatibility(current, old);
            if (backward.getType() != SchemaCompatibilityType.COMPATIBLE) {
                problems.add("current cannot read v" + (i + 1) + ": " + backward.getResult().getIncompatibilities());
            }
            var forward = SchemaCompatibility.checkReaderWriterCompatibility(old, current);
            if (forward.getType() != SchemaCompatibilityType.COMPATIBLE) {
                problems.add("v" + (i + 1) + " cannot read current: " + forward.getResult().getIncompatibilities());
            }
        }
        return problems;
    }

    @ParameterizedTest
    @MethodSource("recordTypes")
    void currentSchemaIsBackwardAndForwardCompatibleWithEveryReleasedVersion(Class<? extends SpecificRecord> type) {
        List<Schema> released = ReleasedSchemas.versionsOf(type.getSimpleName());
        assertThat(released).as("released versions of %s", type.getSimpleName()).isNotEmpty();
        Schema current = SpecificData.get().getSchema(type);
        assertThat(problems(current, released)).isEmpty();
    }

    @Test
    void releasedVersionsAreKnownToTheDecoder() {
        for (Class<? extends SpecificRecord> type : SluiceCodec.RECORD_TYPES) {
            for (Schema released : ReleasedSchemas.versionsOf(type.getSimpleName())) {
                assertThat(SluiceCodec.get().typeOf(SchemaNormalization.parsingFingerprint64(released)))
                        .isEqualTo(type);
            }
        }
    }

    @Test
    void gateRejectsARequiredFieldAddedWithoutDefault() {
        Schema v1 = ReleasedSchemas.versionsOf("Cancel").get(0);
        Schema broken = new Schema.Parser().parse(v1.toString().replace(
                "\"fields\":[", "\"fields\":[{\"name\":\"new_required\",\"type\":\"int\"},"));
        assertThat(problems(broken, List.of(v1))).anyMatch(p -> p.startsWith("current cannot read v1"));
    }

    @Test
    void gateRejectsARemovedFieldThatOldReadersNeed() {
        Schema v1 = ReleasedSchemas.versionsOf("Cancel").get(0);
        String json = v1.toString();
        int start = json.indexOf("{\"name\":\"tenant\"");
        int end = json.indexOf("{\"name\":\"reason\"");
        Schema broken = new Schema.Parser().parse(json.substring(0, start) + json.substring(end));
        assertThat(problems(broken, List.of(v1))).anyMatch(p -> p.startsWith("v1 cannot read current"));
    }

    @Test
    void gateRejectsAChangedFieldType() {
        Schema v1 = ReleasedSchemas.versionsOf("TokenEvent").get(0);
        Schema broken = new Schema.Parser().parse(v1.toString().replace(
                "{\"name\":\"seq\",\"type\":\"int\"", "{\"name\":\"seq\",\"type\":\"string\""));
        assertThat(problems(broken, List.of(v1))).isNotEmpty();
    }
}
