package io.sluice.ingress.bench;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The push benchmark's clients check each socket's seqs, since a rate of broken streams is no rate. */
class StreamClientsTest {

    @Test
    void singleSeqsAndCoalescedRangesInOrderPass() {
        StreamClients.Order order = new StreamClients.Order();
        assertThat(order.take(0, 0)).isTrue();
        assertThat(order.take(1, 4)).isTrue();
        assertThat(order.take(5, 5)).isTrue();
        assertThat(order.next()).isEqualTo(6);
    }

    @Test
    void aGapARepeatAndAStepBackAreEachCaught() {
        StreamClients.Order gap = new StreamClients.Order();
        gap.take(0, 0);
        assertThat(gap.take(2, 2)).isFalse();

        StreamClients.Order repeat = new StreamClients.Order();
        repeat.take(0, 1);
        assertThat(repeat.take(1, 1)).isFalse();

        StreamClients.Order back = new StreamClients.Order();
        back.take(0, 3);
        assertThat(back.take(2, 5)).isFalse();
        // What came after the overlap still lines up with what is expected next.
        assertThat(back.next()).isEqualTo(6);
        assertThat(back.take(6, 6)).isTrue();
    }

    @Test
    void theClientReadsTheSeqsOfAFrame() {
        String frame = "{\"type\":\"token\",\"request_id\":\"r\",\"seq\":17,\"seq_end\":19,\"text\":\"1\"}";
        assertThat(StreamClients.intAfter(frame, "\"seq\":")).isEqualTo(17);
        assertThat(StreamClients.intAfter(frame, "\"seq_end\":")).isEqualTo(19);
    }

    @Test
    void aCoalescedFramesLatencyIsItsFirstTokens() {
        assertThat(StreamClients.sentMicros("1764880000000001;")).isEqualTo(1764880000000001L);
        assertThat(StreamClients.sentMicros("1764880000000001;1764880000000002;1764880000000003;"))
                .isEqualTo(1764880000000001L);
    }
}
