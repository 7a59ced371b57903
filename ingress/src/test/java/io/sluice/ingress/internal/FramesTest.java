package io.sluice.ingress.internal;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

/** The accepted frame is written by hand; clients read it with any JSON parser. */
class FramesTest {

    @Test
    void acceptedFrameCarriesAnyClientIdIntactThroughAStandardParser() throws Exception {
        String awkward = "q\"uo\\te\n\t\u0001 é 🚀 </script>";
        JsonNode f = Frames.JSON.readTree(Frames.accepted(awkward, "3f1c-id", true));
        assertThat(f.path("type").asText()).isEqualTo("accepted");
        assertThat(f.path("id").asText()).isEqualTo(awkward);
        assertThat(f.path("request_id").asText()).isEqualTo("3f1c-id");
        assertThat(f.path("duplicate").isBoolean()).isTrue();
        assertThat(f.path("duplicate").asBoolean()).isTrue();
        assertThat(f.size()).isEqualTo(4);
    }

    @Test
    void eachCharacterJsonMustEscapeIsEscapedAloneAndPlainIdsAreCopiedAsTheyAre() throws Exception {
        for (String id : java.util.List.of("plain-id_42", "a\"b", "a\\b", "a\u001fb", "\u0000", "a\u007fb", "é 🚀 </x>", "")) {
            String frame = Frames.accepted(id, "r1", false);
            assertThat(Frames.JSON.readTree(frame).path("id").asText()).as(frame).isEqualTo(id);
        }
        assertThat(Frames.accepted("plain-id_42", "r1", false))
                .isEqualTo("{\"type\":\"accepted\",\"id\":\"plain-id_42\",\"request_id\":\"r1\",\"duplicate\":false}");
    }

    @Test
    void acceptedFrameInUtf8IsByteForByteTheFrameAsText() {
        java.util.List<String> ids = java.util.Arrays.asList(null, "", "plain-id_42", "m-0001", "a\"b", "a\\b", "a\u001fb",
                "a\u007fb", "~ !#$%&'()*+,-./:;<=>?@[]^`{|}", "é 🚀 </x>", "tab\tnew\nline");
        for (String clientId : ids) {
            for (String requestId : java.util.List.of("AZ09-_azAZ09-_azAZ09-_azAZ09-_az", "r\"1", "ré")) {
                for (boolean duplicate : new boolean[] {false, true}) {
                    assertThat(new String(Frames.acceptedUtf8(clientId, requestId, duplicate), java.nio.charset.StandardCharsets.UTF_8))
                            .as("client id %s, request id %s", clientId, requestId)
                            .isEqualTo(Frames.accepted(clientId, requestId, duplicate));
                }
            }
        }
    }

    @Test
    void acceptedFrameWithoutAClientIdSaysNull() throws Exception {
        JsonNode f = Frames.JSON.readTree(Frames.accepted(null, "r1", false));
        assertThat(f.path("id").isNull()).isTrue();
        assertThat(f.path("duplicate").asBoolean()).isFalse();
    }

    @Test
    void tokenFrameIsTheSameJsonATreeWouldWrite() throws Exception {
        io.sluice.schemas.TokenEvent t = io.sluice.schemas.TokenEvent.newBuilder().setRequestId("r-\"1\"").setSeq(41)
                .setTokenId(50256).setText(" \"quoted\"\n\ttab \\ é 🚀\u0000").setFence(1)
                .setProducedAt(java.time.Instant.EPOCH).build();
        JsonNode expected = Frames.JSON.createObjectNode().put("type", "token").put("request_id", t.getRequestId())
                .put("seq", 41).put("text", t.getText()).put("token_id", 50256);
        assertThat(Frames.JSON.readTree(Frames.token(t))).isEqualTo(expected);
    }
}
