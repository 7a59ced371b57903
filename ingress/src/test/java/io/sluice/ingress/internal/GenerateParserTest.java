package io.sluice.ingress.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sluice.ingress.ProtocolError;
import io.sluice.schemas.InferenceRequest;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The one-pass reader of generate messages must answer exactly as the tree path does, or step aside. */
class GenerateParserTest {
    final GenerateParser parser = new GenerateParser(100, 50);

    InferenceRequest viaTree(String text) throws Exception {
        return parser.parse(Frames.JSON.readTree(text), "acme", "alice");
    }

    static final List<String> PLAIN = List.of(
            "{\"type\":\"generate\",\"prompt\":\"The river\"}",
            "{\"prompt\":\"The river\",\"type\":\"generate\"}",
            "{\"type\":\"generate\",\"id\":\"q1\",\"prompt\":\"The \\\"river\\\"\\n\\u00e9\\ud83d\\ude00\",\"max_tokens\":50,"
                    + "\"temperature\":0.7,\"top_p\":0.9,\"top_k\":40,\"seed\":9007199254740993,\"stop\":[\"\\n\\n\",\"END\"],"
                    + "\"logprobs\":5,\"tier\":\"financial\",\"priority\":9,\"idempotency_key\":\"k-1\","
                    + "\"metadata\":{\"order\":\"o-9\",\"x\":\"\"}}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"temperature\":2,\"top_p\":1,\"seed\":-9223372036854775808}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"temperature\":1e-3,\"top_p\":0.5e0,\"max_tokens\":1,\"top_k\":0}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"id\":null,\"max_tokens\":null,\"temperature\":null,\"top_p\":null,"
                    + "\"top_k\":null,\"seed\":null,\"stop\":null,\"logprobs\":null,\"tier\":null,\"priority\":null,"
                    + "\"idempotency_key\":null,\"metadata\":null}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"stop\":[],\"metadata\":{},\"tier\":\"operational\"}",
            "  {\"type\" : \"generate\" ,\n \"prompt\" : \"p\" }  ",
            "{\"type\":\"generate\",\"prompt\":\"" + "x".repeat(100) + "\",\"id\":\"" + "i".repeat(256) + "\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"stop\":[\"a\",\"b\",\"c\",\"" + "s".repeat(64) + "\"]}");

    @Test
    void everyPlainGenerateReadsTheSameInOnePassAsThroughTheTree() throws Exception {
        for (String text : PLAIN) {
            assertThat(fromBytes(text)).as(text).isNotNull().isEqualTo(viaTree(text));
        }
    }

    /** Messages the one-pass reader leaves to the tree path: all invalid, or unusual but valid. */
    static final List<String> INVALID = List.of(
            "", "nope", "[]", "null", "{}", "{\"type\":\"ping\"}",
            "{\"type\":\"generate\"}",
            "{\"type\":\"generate\",\"prompt\":\"\"}",
            "{\"type\":\"generate\",\"prompt\":null}",
            "{\"type\":\"generate\",\"prompt\":5}",
            "{\"type\":\"generate\",\"prompt\":\"" + "x".repeat(101) + "\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"bogus\":1}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"max_tokens\":0}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"max_tokens\":51}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"max_tokens\":5.0}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"max_tokens\":\"5\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"max_tokens\":4294967296}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"temperature\":2.01}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"temperature\":-0.1}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"temperature\":\"hot\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"top_p\":0}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"top_p\":1e-60}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"top_p\":1.5}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"top_k\":1000001}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"seed\":1.5}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"seed\":9223372036854775808}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"stop\":\"END\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"stop\":[\"\"]}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"stop\":[1]}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"stop\":[\"" + "s".repeat(65) + "\"]}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"logprobs\":6}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"tier\":\"gold\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"tier\":1}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"priority\":10}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"idempotency_key\":7}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"idempotency_key\":\"" + "k".repeat(257) + "\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"id\":\"" + "i".repeat(257) + "\"}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"metadata\":[]}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"metadata\":{\"a\":1}}",
            "{\"type\":\"generate\",\"prompt\":\"p\",\"metadata\":{\"a\":\"" + "v".repeat(1025) + "\"}}");

    @Test
    void everyInvalidGenerateIsLeftToTheTreePathWhichNamesTheFault() {
        for (String text : INVALID) {
            assertThat(fromBytes(text)).as(text).isNull();
        }
        for (String text : INVALID.subList(6, INVALID.size())) {
            assertThatThrownBy(() -> viaTree(text)).as(text).isInstanceOf(ProtocolError.class);
        }
    }

    @Test
    void unusualButValidMessagesAreLeftToTheTreePathToo() throws Exception {
        // A repeated field (the tree keeps the last), repeated metadata keys.
        for (String text : List.of(
                "{\"type\":\"generate\",\"prompt\":\"a\",\"prompt\":\"b\"}",
                "{\"type\":\"generate\",\"prompt\":\"p\",\"metadata\":{\"a\":1,\"a\":\"x\"}}")) {
            assertThat(fromBytes(text)).as(text).isNull();
            assertThat(viaTree(text)).as(text).isNotNull();
        }
    }

    @Test
    void textAfterTheObjectIsRefusedOnBothPaths() {
        // Read as its first object, a message holding two would have its second dropped unseen.
        for (String text : List.of("{\"type\":\"generate\",\"prompt\":\"p\"} {}",
                "{\"type\":\"generate\",\"prompt\":\"p\"} x", "{\"type\":\"generate\",\"prompt\":\"p\"}]")) {
            assertThat(fromBytes(text)).as(text).isNull();
            assertThatThrownBy(() -> Frames.JSON.readTree(text)).as(text)
                    .isInstanceOf(com.fasterxml.jackson.core.JsonProcessingException.class);
        }
    }

    /** The socket's way in: the UTF-8 bytes of the message, at an offset inside a larger array. */
    InferenceRequest fromBytes(String text) {
        byte[] utf8 = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        byte[] framed = new byte[utf8.length + 7];
        java.util.Arrays.fill(framed, (byte) '{');
        System.arraycopy(utf8, 0, framed, 3, utf8.length);
        return parser.tryParse(framed, 3, utf8.length, "acme", "alice");
    }

    @Test
    void utf8IsCheckedAsTheWebSocketProtocolRequires() {
        for (String valid : List.of("", "plain ascii {\"a\":1}", "r\u00e9sum\u00e9", "\u65e5\u672c\u8a9e", "\ud83d\ude80 rocket")) {
            byte[] b = valid.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            assertThat(Utf8.isValid(b, 0, b.length)).as(valid).isTrue();
        }
        int[][] invalid = {
            {'a', 0xC0, 0xA2},             // overlong '"'
            {0xED, 0xA0, 0x80},            // a UTF-16 surrogate
            {'x', 0xE6, 0x97},             // truncated
            {0xF4, 0x90, 0x80, 0x80},      // above U+10FFFF
            {0x80},                        // a lone continuation byte
            {0xFF}};
        for (int[] seq : invalid) {
            byte[] b = new byte[seq.length];
            for (int i = 0; i < seq.length; i++) {
                b[i] = (byte) seq[i];
            }
            assertThat(Utf8.isValid(b, 0, b.length)).as(java.util.Arrays.toString(seq)).isFalse();
        }
        // Only the given range counts.
        byte[] mixed = {(byte) 0xFF, 'o', 'k', (byte) 0xFF};
        assertThat(Utf8.isValid(mixed, 1, 2)).isTrue();
    }
}
