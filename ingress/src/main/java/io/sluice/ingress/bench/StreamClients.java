package io.sluice.ingress.bench;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Arrays;

/**
 * A client process for the push benchmark: opens {@code count} WebSocket connections, optionally
 * sends each one text frame ({@code attach} with its own request id), then reads every frame on
 * one selector thread. Token frames carry the sender's clock (epoch microseconds) as their text;
 * the process prints how many tokens arrived and the delivery latency percentiles once
 * {@code expected} tokens per socket (and a done) arrived, or its input closes. It also checks
 * what the figures rest on: that each socket got seqs {@code 0..expected-1}, each once, in order
 * (a frame's seq range counted as its seqs), and prints how many frames broke that and how many
 * sockets ended short.
 */
public final class StreamClients {
    private StreamClients() {
    }

    /**
     * The integer after {@code key}. This process shares the cores with the server it measures, so
     * it reads the two numbers it needs by position instead of with a regular expression per frame.
     */
    static int intAfter(String json, String key) {
        int i = json.indexOf(key) + key.length();
        int end = i;
        while (end < json.length() && Character.isDigit(json.charAt(end))) {
            end++;
        }
        return Integer.parseInt(json, i, end, 10);
    }

    /**
     * The sender's clock in a token frame's text, each token's ended by {@code ';'}: a coalesced
     * frame joins the texts of its tokens, and its latency is its first (oldest) token's.
     */
    static long sentMicros(String text) {
        int end = text.indexOf(';');
        return Long.parseLong((end < 0 ? text : text.substring(0, end)).trim());
    }

    public static void main(String[] args) throws Exception {
        run(args[0], Integer.parseInt(args[1]), Integer.parseInt(args[2]), args[3], args[4], Integer.parseInt(args[5]));
    }

    /** Connects, reads until every socket saw its done, prints the figures. */
    public static void run(String host, int port, int count, String token, String attachPrefix, int expected)
            throws Exception {
        Selector selector = Selector.open();
        java.util.List<Socket> sockets = new java.util.ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            SocketChannel ch = SocketChannel.open(new InetSocketAddress(host, port));
            ch.write(ByteBuffer.wrap(BenchWire.upgradeRequest(host, port, "/v1/stream", token)));
            BenchWire.awaitUpgrade(java.nio.channels.Channels.newInputStream(ch));
            if (!attachPrefix.equals("-")) {
                ByteBuffer frame = ByteBuffer.wrap(BenchWire.maskedTextFrame(("{\"type\":\"attach\",\"request_id\":\""
                        + attachPrefix + i + "\",\"after_seq\":-1}").getBytes(StandardCharsets.UTF_8)));
                while (frame.hasRemaining()) {
                    ch.write(frame);
                }
            }
            ch.configureBlocking(false);
            Socket socket = new Socket();
            sockets.add(socket);
            ch.register(selector, SelectionKey.OP_READ, socket);
        }
        System.out.println("connected " + count);
        System.out.flush();
        Tally tally = new Tally();
        long deadline = System.nanoTime() + 600_000_000_000L;
        while (tally.dones < count && System.nanoTime() < deadline) {
            if (System.in.available() > 0 && System.in.read() < 0) {
                break;
            }
            selector.select(200);
            for (SelectionKey key : selector.selectedKeys()) {
                SocketChannel ch = (SocketChannel) key.channel();
                Socket socket = (Socket) key.attachment();
                if (ch.read(socket.in) < 0) {
                    key.cancel();
                    continue;
                }
                BenchWire.forEachFrame(socket.in, (opcode, in, start, len) -> {
                    if (opcode == 1) {
                        tally.text(new String(in.array(), in.arrayOffset() + start, len, StandardCharsets.UTF_8),
                                socket.order);
                    }
                });
            }
            selector.selectedKeys().clear();
        }
        long[] sorted = Arrays.copyOf(tally.latencies, tally.samples);
        Arrays.sort(sorted);
        int samples = tally.samples;
        long p50 = samples == 0 ? 0 : sorted[samples / 2];
        long p99 = samples == 0 ? 0 : sorted[Math.min(samples - 1, (int) (samples * 0.99))];
        int shortSockets = 0;
        for (Socket socket : sockets) {
            if (socket.order.next() != expected) {
                shortSockets++;
            }
        }
        System.out.printf("tokens %d frames %d seconds %.3f p50us %d p99us %d done %d misordered %d short %d%n",
                tally.tokens, samples, (tally.lastNanos - tally.firstNanos) / 1e9, p50, p99, tally.dones,
                tally.misordered, shortSockets);
        System.out.flush();
    }

    /** One socket's read buffer and the seqs it got. */
    private static final class Socket {
        final ByteBuffer in = ByteBuffer.allocate(32 * 1024);
        final Order order = new Order();
    }

    /**
     * The seqs one socket got, which must come as 0, 1, 2, ... with no gap, repeat or step back; a
     * frame may carry a range {@code seq..seqEnd} (coalesced tokens).
     */
    static final class Order {
        private int next;

        /** Takes a frame's range; false when it is not the one that had to come next. */
        boolean take(int seq, int seqEnd) {
            boolean inOrder = seq == next && seqEnd >= seq;
            next = Math.max(next, seqEnd + 1);
            return inOrder;
        }

        /** The seq that has to come next: how many came in order, when none broke it. */
        int next() {
            return next;
        }
    }

    /** What the text frames said: tokens (with their delivery latency), ends, and frames out of order. */
    private static final class Tally {
        final long[] latencies = new long[1 << 20];
        int samples;
        long tokens;
        long dones;
        long misordered;
        long firstNanos;
        long lastNanos;

        void text(String json, Order order) {
            long now = System.nanoTime();
            if (json.contains("\"type\":\"token\"")) {
                int t = json.indexOf("\"text\":\"") + 8;
                long sent = sentMicros(json.substring(t, json.indexOf('"', t)));
                Instant i = Instant.now();
                long nowMicros = i.getEpochSecond() * 1_000_000L + i.getNano() / 1000;
                int seq = intAfter(json, "\"seq\":");
                int seqEnd = json.contains("\"seq_end\"") ? intAfter(json, "\"seq_end\":") : seq;
                tokens += seqEnd - seq + 1;
                if (!order.take(seq, seqEnd)) {
                    misordered++;
                }
                if (samples < latencies.length) {
                    latencies[samples++] = nowMicros - sent;
                }
                if (firstNanos == 0) {
                    firstNanos = now;
                }
                lastNanos = now;
            } else if (json.contains("\"type\":\"done\"") || json.contains("\"type\":\"pushdone\"")) {
                dones++;
            }
        }
    }
}
