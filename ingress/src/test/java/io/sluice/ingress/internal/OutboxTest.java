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
    final List<String> closes = new ArrayList<>();

    /** Records every frame; holds each write's completion until the test runs it, unless {@code hold} is off. */
    class Recording implements FrameSink {
        final List<String> sent = new ArrayList<>();
        final List<Runnable> held = new ArrayList<>();
        final int maxInFlight;
        boolean hold = true;

        Recording(int maxInFlight) {
            this.maxInFlight = maxInFlight;
        }

        @Override
        public void send(String frame, Runnable written, java.util.function.Consumer<Throwable> failed) {
            sent.add(frame);
            if (hold) {
                held.add(written);
            } else {
                written.run();
            }
        }

        @Override
        public int maxInFlight() {
            return maxInFlight;
        }

        @Override
        public void closeTooSlow(String reason) {
            closes.add("1008 " + reason);
        }
    }

    final Recording stalled = new Recording(1);
    final List<String> sent = stalled.sent;
    final List<Runnable> pending = stalled.held;

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
    void tokensWithTheirAlternativesCountAgainstTheBoundAsTheyAreWritten() {
        Outbox outbox = new Outbox(stalled, 8_000);
        long rendered = 0;
        // One token per request, so none merges: each waits as the frame it will be.
        for (int i = 0; i < 1_000; i++) {
            java.util.List<io.sluice.schemas.TokenLogprob> top = new ArrayList<>();
            for (int k = 0; k < 5; k++) {
                top.add(io.sluice.schemas.TokenLogprob.newBuilder().setTokenId(1000 + k).setText("alt" + k)
                        .setLogprob(-1.2345678f * (k + 1)).build());
            }
            TokenEvent t = TokenEvent.newBuilder().setRequestId("r" + i).setSeq(0).setTokenId(7).setText("tok ")
                    .setLogprob(-0.5f).setTopLogprobs(top).setFence(1).setProducedAt(Instant.EPOCH).build();
            if (!outbox.offerToken(t)) {
                break;
            }
            rendered += Frames.token(t).getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        }
        assertThat(closes).as("closed once past the bound").singleElement().asString().startsWith("1008 client too slow");
        assertThat(rendered).as("bytes of the frames the socket held before it was closed").isLessThanOrEqualTo(8_000);
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

    @Test
    void aSinkThatGathersWritesGetsSeveralFramesAtOnceInOrderAndNoMoreThanItsLimit() {
        Recording gathering = new Recording(4);
        List<String> out = gathering.sent;
        List<Runnable> held = gathering.held;
        Outbox outbox = new Outbox(gathering, 100_000);
        for (int i = 0; i < 10; i++) {
            outbox.offer("{\"n\":" + i + "}");
        }
        assertThat(out).as("handed over without waiting for the first write").hasSize(4);
        held.remove(0).run();
        assertThat(out).hasSize(5);
        while (!held.isEmpty()) {
            held.remove(0).run();
        }
        assertThat(out).containsExactlyElementsOf(java.util.stream.IntStream.range(0, 10).mapToObj(i -> "{\"n\":" + i + "}").toList());
        assertThat(outbox.queuedBytes()).isZero();
    }

    @Test
    void writesThatCompleteInsideSendNeitherRecurseNorReorder() {
        Recording immediate = new Recording(2);
        List<String> out = immediate.sent;
        Outbox outbox = new Outbox(immediate, 100_000_000);
        for (int seq = 0; seq < 50_000; seq++) {
            outbox.offer("{\"type\":\"token\",\"seq\":" + seq + "}");
        }
        assertThat(out).hasSize(2);
        // The backlog now drains with every write completing inside send: one loop, not 50,000 nested calls.
        immediate.hold = false;
        new ArrayList<>(immediate.held).forEach(Runnable::run);
        assertThat(out).hasSize(50_000);
        for (int seq = 0; seq < 50_000; seq += 997) {
            assertThat(out.get(seq)).contains("\"seq\":" + seq + "}");
        }
        assertThat(out.get(49_999)).contains("\"seq\":49999");
        assertThat(outbox.queuedBytes()).isZero();
        assertThat(closes).isEmpty();
    }

    @Test
    void writingOnAnExecutorKeepsEachRequestsOrderUnderConcurrentOffersAndCompletions() throws Exception {
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(4);
        java.util.concurrent.ExecutorService network = java.util.concurrent.Executors.newFixedThreadPool(2);
        List<String> out = java.util.Collections.synchronizedList(new ArrayList<>());
        java.util.concurrent.atomic.AtomicInteger outstanding = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicInteger maxOutstanding = new java.util.concurrent.atomic.AtomicInteger();
        FrameSink async = new FrameSink() {
            @Override
            public void send(String frame, Runnable written, java.util.function.Consumer<Throwable> failed) {
                out.add(frame);
                maxOutstanding.accumulateAndGet(outstanding.incrementAndGet(), Math::max);
                // Some writes complete at once, the rest later on another thread, as on a real socket.
                if (frame.hashCode() % 3 == 0) {
                    outstanding.decrementAndGet();
                    written.run();
                } else {
                    network.execute(() -> {
                        outstanding.decrementAndGet();
                        written.run();
                    });
                }
            }

            @Override
            public int maxInFlight() {
                return 8;
            }

            @Override
            public void closeTooSlow(String reason) {
                closes.add(reason);
            }
        };
        Outbox outbox = new Outbox(async, 100_000_000, pool);
        int perRequest = 20_000;
        List<Thread> feeders = new ArrayList<>();
        for (String request : List.of("a", "b")) {
            Thread t = new Thread(() -> {
                for (int seq = 0; seq < perRequest; seq++) {
                    outbox.offerToken(token(request, seq));
                }
            });
            t.start();
            feeders.add(t);
        }
        for (Thread t : feeders) {
            t.join();
        }
        long until = System.nanoTime() + 30_000_000_000L;
        while (outbox.queuedBytes() > 0 && System.nanoTime() < until) {
            Thread.sleep(10);
        }
        pool.shutdown();
        network.shutdown();
        assertThat(outbox.queuedBytes()).isZero();
        assertThat(maxOutstanding.get()).isLessThanOrEqualTo(8);
        java.util.Map<String, Integer> next = new java.util.HashMap<>(java.util.Map.of("a", 0, "b", 0));
        synchronized (out) {
            for (String frame : out) {
                JsonNode f = Frames.JSON.readTree(frame);
                String request = f.path("request_id").asText();
                int from = f.path("seq").asInt();
                int to = f.has("seq_end") ? f.path("seq_end").asInt() : from;
                assertThat(from).as("request %s continues where it left off", request).isEqualTo(next.get(request));
                next.put(request, to + 1);
            }
        }
        assertThat(next).containsEntry("a", perRequest).containsEntry("b", perRequest);
        assertThat(closes).isEmpty();
    }

    @Test
    void framesAlreadyInUtf8GoOutAsTheyAreInOrderWithTheOthersAndCountAgainstTheBound() {
        List<byte[]> raw = new ArrayList<>();
        Recording sink = new Recording(1) {
            @Override
            public void send(byte[] utf8, boolean more, Runnable written, java.util.function.Consumer<Throwable> failed) {
                raw.add(utf8);
                super.send(new String(utf8, java.nio.charset.StandardCharsets.UTF_8), written, failed);
            }
        };
        Outbox outbox = new Outbox(sink, 1_000);
        byte[] accepted = Frames.acceptedUtf8("c-ü", "req-1", false);
        outbox.offer(accepted);
        outbox.offerToken(token("req-1", 0));
        outbox.offer(Frames.acceptedUtf8("c2", "req-2", true));
        assertThat(raw).as("the array itself reaches the sink, not a copy").containsExactly(accepted);
        sink.held.remove(0).run();
        sink.held.remove(0).run();
        assertThat(sink.sent).hasSize(3);
        assertThat(sink.sent.get(0)).isEqualTo("{\"type\":\"accepted\",\"id\":\"c-ü\",\"request_id\":\"req-1\",\"duplicate\":false}");
        assertThat(sink.sent.get(1)).contains("\"seq\":0");
        assertThat(sink.sent.get(2)).contains("\"duplicate\":true");

        // Held writes keep their bytes counted: enough of them close the socket as too slow.
        for (int i = 0; i < 20 && closes.isEmpty(); i++) {
            outbox.offer(Frames.acceptedUtf8("c" + i, "req-" + i, false));
        }
        assertThat(closes).singleElement().asString().startsWith("1008");
    }
}
