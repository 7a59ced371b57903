package io.sluice.ingress.bench;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Accepted requests per second through a gateway: {@code connections} sockets each send
 * generate messages back to back and count the {@code accepted} frames, each of which the gateway
 * sends only after Kafka acknowledged the request (acks=all).
 *
 * <p>No worker runs, so no request ever finishes: a socket is closed once its last
 * {@code perSocket} requests are answered and a new one takes its place. That keeps the number of
 * streams the gateway follows bounded, as finishing requests do in a real deployment, instead of
 * measuring a heap that fills with hundreds of thousands of open streams.
 *
 * <p>The load generator shares the machine with the gateway, the broker and Redis, so it is as
 * cheap as ProducerPerformance's own: one selector thread, every frame masked once in advance
 * and written in large chunks, and replies told apart by the frame type the gateway writes first.
 */
public final class AcceptBench {

    /** Result of a run. */
    public record Result(int requests, int errors, double seconds, long cpuNanos) {
        public double perSecond() {
            return requests / seconds;
        }

        /** CPU time of the load generator's thread per request, in microseconds. */
        public double cpuMicrosPerRequest() {
            return cpuNanos / 1e3 / requests;
        }
    }

    /** One socket of a lane: what it still has to write, what it has read, and what it waits for. */
    private static final class Conn {
        final SocketChannel channel;
        final ByteBuffer out;
        final ByteBuffer in = ByteBuffer.allocate(256 * 1024);
        final int expected;
        /** Requests the lane still has to send after this socket's. */
        final int laneRemaining;
        int answered;

        Conn(SocketChannel channel, ByteBuffer out, int expected, int laneRemaining) {
            this.channel = channel;
            this.out = out;
            this.expected = expected;
            this.laneRemaining = laneRemaining;
        }
    }

    private AcceptBench() {
    }

    /**
     * Sends {@code perConnection} requests over each of {@code connections} lanes, each lane a
     * succession of sockets that send at most {@code perSocket} requests each.
     */
    public static Result run(String url, String token, int connections, int perConnection, int perSocket, String generate)
            throws Exception {
        URI uri = URI.create(url);
        byte[] frame = BenchWire.maskedTextFrame(generate.getBytes(StandardCharsets.UTF_8));
        int batch = Math.max(1, Math.min(perSocket, perConnection));
        ByteBuffer frames = ByteBuffer.allocate(frame.length * batch);
        for (int n = 0; n < batch; n++) {
            frames.put(frame);
        }
        List<Conn> open = new ArrayList<>();
        try (Selector selector = Selector.open()) {
            for (int i = 0; i < connections; i++) {
                open.add(connect(uri, token, selector, frames, frame.length, perConnection, batch));
            }
            int expected = connections * perConnection;
            int answered = 0;
            int errors = 0;
            long t0 = System.nanoTime();
            long cpu0 = java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
            long deadline = t0 + 300_000_000_000L;
            while (answered < expected) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("not every request was answered: " + (expected - answered) + " left");
                }
                selector.select(200);
                for (SelectionKey key : selector.selectedKeys()) {
                    Conn c = (Conn) key.attachment();
                    if (key.isValid() && key.isWritable()) {
                        c.channel.write(c.out);
                        if (!c.out.hasRemaining()) {
                            key.interestOps(SelectionKey.OP_READ);
                        }
                    }
                    if (key.isValid() && key.isReadable()) {
                        if (c.channel.read(c.in) < 0) {
                            throw new EOFException("the gateway closed a socket");
                        }
                        int[] counts = readFrames(c.in);
                        answered += counts[0] + counts[1];
                        errors += counts[1];
                        c.answered += counts[0] + counts[1];
                        if (c.answered >= c.expected) {
                            key.cancel();
                            c.channel.close();
                            open.remove(c);
                            if (c.laneRemaining > 0) {
                                open.add(connect(uri, token, selector, frames, frame.length, c.laneRemaining, batch));
                            }
                        }
                    }
                }
                selector.selectedKeys().clear();
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            long cpu = java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() - cpu0;
            return new Result(expected, errors, seconds, cpu);
        } finally {
            for (Conn c : open) {
                c.channel.close();
            }
        }
    }

    /**
     * The median of the trials' ratios: the middle one, or for an even count the mean of the two
     * middle ones. Taking the upper of those two instead made a two-trial run report its better
     * trial as its median.
     */
    public static double median(List<Double> values) {
        if (values.isEmpty()) {
            throw new IllegalArgumentException("no values");
        }
        List<Double> sorted = values.stream().sorted().toList();
        int mid = sorted.size() / 2;
        return sorted.size() % 2 == 1 ? sorted.get(mid) : (sorted.get(mid - 1) + sorted.get(mid)) / 2;
    }

    /** Opens the next socket of a lane that still has {@code remaining} requests to send. */
    private static Conn connect(URI uri, String token, Selector selector, ByteBuffer frames, int frameLength, int remaining,
            int batch) throws IOException {
        int n = Math.min(batch, remaining);
        SocketChannel ch = handshake(uri, token);
        ch.configureBlocking(false);
        ByteBuffer out = frames.duplicate().position(0).limit(n * frameLength);
        Conn c = new Conn(ch, out, n, remaining - n);
        ch.register(selector, SelectionKey.OP_READ | SelectionKey.OP_WRITE, c);
        return c;
    }

    /** Consumes the whole frames in {@code in}; returns how many were accepted and how many errors. */
    static int[] readFrames(ByteBuffer in) {
        int[] counts = new int[2];
        BenchWire.forEachFrame(in, (opcode, buf, start, len) -> {
            if (opcode == 1) {
                if (startsWith(buf, start, len, "{\"type\":\"accepted\"")) {
                    counts[0]++;
                } else if (startsWith(buf, start, len, "{\"type\":\"error\"")) {
                    counts[1]++;
                }
            }
        });
        return counts;
    }

    private static boolean startsWith(ByteBuffer in, int start, long len, String prefix) {
        if (len < prefix.length()) {
            return false;
        }
        for (int i = 0; i < prefix.length(); i++) {
            if (in.get(start + i) != prefix.charAt(i)) {
                return false;
            }
        }
        return true;
    }

    /** Opens a socket and upgrades it to WebSocket with the bearer token, blocking until the 101 arrives. */
    private static SocketChannel handshake(URI uri, String token) throws IOException {
        SocketChannel ch = SocketChannel.open(new InetSocketAddress(uri.getHost(), uri.getPort()));
        ch.write(ByteBuffer.wrap(BenchWire.upgradeRequest(uri.getHost(), uri.getPort(), uri.getRawPath(), token)));
        BenchWire.awaitUpgrade(Channels.newInputStream(ch));
        return ch;
    }
}
