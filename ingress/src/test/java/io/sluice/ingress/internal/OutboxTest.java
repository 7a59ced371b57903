package io.sluice.ingress.internal;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.schemas.TokenEvent;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The outbound queue against a client whose network does not drain: the sink holds every write
 * completion, standing in for a peer whose TCP window stays shut (a state a test on loopback
 * cannot reach in reasonable time; SlowClientTest covers a real stalled socket).
 */
class OutboxTest {
    final List<String> sent = new ArrayList<>();
    final List<Runnable> pending = new ArrayList<>();
    final List<String> closes = new ArrayList<>();
    final FrameSink stalled = new FrameSink() {
        @Override
        public void send(String frame, Runnable written, java.util.function.Consumer<Throwable> failed) {
            sent.add(frame);
            pending.add(written);
        }

        @Override
        public void closeTooSlow(String reason) {
            closes.add("1008 " + reason);
        }
    };

    static TokenEvent token(String request, int seq) {
        return TokenEvent.newBuilder().setRequestId(request).setSeq(seq).setTokenId(seq).setText("tok" + seq + " ")
                .setFence(1).setProducedAt(Instant.EPOCH).build();
    }

    void drain() {
        while (!pending.isEmpty()) {
            pending.remove(0).run();
        }
    }

    @Test
    void aClientThatFallsBehindGetsItsTokensMergedInOrderWithNothingLost() throws Exception {
        Outbox outbox = new Outbox(stalled, 8_000);
        for (int seq = 0; seq < 200; seq++) {
            assertThat(outbox.offerToken(token("a", seq))).isTrue();
            if (seq % 3 == 0) {
                outbox.offerToken(token("b", seq / 3));
            }
        }
        assertThat(outbox.coalescedTokens()).as("tokens merged while behind").isPositive();
        assertThat(outbox.queuedBytes()).isLessThanOrEqualTo(8_000);
        drain();
        List<Integer> seenA = new ArrayList<>();
        List<Integer> seenB = new ArrayList<>();
        StringBuilder textA = new StringBuilder();
        for (String frame : sent) {
            JsonNode f = Frames.JSON.readTree(frame);
            List<Integer> seen = f.path("request_id").asText().equals("a") ? seenA : seenB;
            int from = f.path("seq").asInt();
            int to = f.has("seq_end") ? f.path("seq_end").asInt() : from;
            for (int s = from; s <= to; s++) {
                seen.add(s);
            }
            if (f.path("request_id").asText().equals("a")) {
                textA.append(f.path("text").asText());
            }
        }
        assertThat(seenA).containsExactlyElementsOf(java.util.stream.IntStream.range(0, 200).boxed().toList());
        assertThat(seenB).containsExactlyElementsOf(java.util.stream.IntStream.range(0, 67).boxed().toList());
        StringBuilder expected = new StringBuilder();
        for (int seq = 0; seq < 200; seq++) {
            expected.append("tok").append(seq).append(' ');
        }
        assertThat(textA.toString()).isEqualTo(expected.toString());
        assertThat(sent.size()).as("fewer frames than tokens").isLessThan(267);
        assertThat(closes).isEmpty();
    }

    @Test
    void onlyAsALastResortIsTheClientClosedWithAReasonAndNothingGrowsPastTheBound() {
        Outbox outbox = new Outbox(stalled, 2_000);
        boolean accepted = true;
        for (int i = 0; i < 100 && accepted; i++) {
            accepted = outbox.offer("{\"type\":\"pong\",\"pad\":\"" + "x".repeat(50) + "\"}");
        }
        assertThat(accepted).isFalse();
        assertThat(closes).singleElement().asString().startsWith("1008 client too slow");
        assertThat(outbox.queuedBytes()).isZero();
        assertThat(outbox.offerToken(token("a", 0))).as("closed for good").isFalse();
    }

    @Test
    void framesOfAClientThatKeepsUpAreNeverMerged() {
        Outbox outbox = new Outbox(stalled, 100_000);
        for (int seq = 0; seq < 50; seq++) {
            outbox.offerToken(token("a", seq));
            drain();
        }
        assertThat(sent).hasSize(50);
        assertThat(sent).noneMatch(f -> f.contains("seq_end"));
        assertThat(outbox.coalescedTokens()).isZero();
    }
}
