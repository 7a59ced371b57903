package io.sluice.ingress.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The benchmark's hand-rolled WebSocket framing, against RFC 6455's layout, and how it sums up its trials. */
class AcceptBenchTest {

    @Test
    void maskedFrameUnmasksToThePayload() {
        byte[] payload = ("{\"type\":\"generate\",\"prompt\":\"" + "x".repeat(200) + "\"}").getBytes(StandardCharsets.UTF_8);
        byte[] frame = BenchWire.maskedTextFrame(payload);
        assertThat(frame[0] & 0xff).isEqualTo(0x81);
        assertThat(frame[1] & 0xff).isEqualTo(0x80 | 126);
        int len = ((frame[2] & 0xff) << 8) | (frame[3] & 0xff);
        assertThat(len).isEqualTo(payload.length);
        byte[] unmasked = new byte[len];
        for (int i = 0; i < len; i++) {
            unmasked[i] = (byte) (frame[8 + i] ^ frame[4 + (i & 3)]);
        }
        assertThat(unmasked).isEqualTo(payload);
    }

    @Test
    void repliesSplitAcrossReadsAreCountedOnceEachWhenWhole() {
        ByteBuffer in = ByteBuffer.allocate(4096);
        byte[] accepted = serverFrame("{\"type\":\"accepted\",\"id\":null,\"request_id\":\"r\",\"duplicate\":false}");
        byte[] error = serverFrame("{\"type\":\"error\",\"code\":\"rate_limited\"}");
        byte[] pong = serverFrame("{\"type\":\"pong\"}");
        in.put(accepted).put(pong).put(error, 0, 5);
        assertThat(AcceptBench.readFrames(in)).containsExactly(1, 0);
        in.put(error, 5, error.length - 5).put(accepted);
        assertThat(AcceptBench.readFrames(in)).containsExactly(1, 1);
        assertThat(in.position()).isZero();
    }

    @Test
    void medianOfAnEvenNumberOfTrialsIsTheMeanOfTheMiddleTwo() {
        assertThat(AcceptBench.median(java.util.List.of(0.54, 0.45))).isCloseTo(0.495, org.assertj.core.data.Offset.offset(1e-9));
        assertThat(AcceptBench.median(java.util.List.of(0.52, 0.49, 0.50))).isEqualTo(0.50);
        assertThat(AcceptBench.median(java.util.List.of(0.40, 0.30, 0.60, 0.50))).isCloseTo(0.45,
                org.assertj.core.data.Offset.offset(1e-9));
    }

    private static byte[] serverFrame(String text) {
        byte[] p = text.getBytes(StandardCharsets.UTF_8);
        ByteBuffer f = ByteBuffer.allocate(p.length + 4).put((byte) 0x81);
        if (p.length < 126) {
            f.put((byte) p.length);
        } else {
            f.put((byte) 126).putShort((short) p.length);
        }
        f.put(p).flip();
        byte[] out = new byte[f.remaining()];
        f.get(out);
        return out;
    }
}
