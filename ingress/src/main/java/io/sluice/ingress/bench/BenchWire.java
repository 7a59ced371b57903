package io.sluice.ingress.bench;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * WebSocket (RFC 6455) as the benchmark clients speak it on bare sockets: they share the cores
 * with the server they measure, so they do the least a client can: one fixed upgrade request,
 * frames masked once in advance, server frames read in place.
 */
final class BenchWire {

    /** One whole frame: its payload is {@code buf}'s bytes {@code start} .. {@code start + length}. */
    @FunctionalInterface
    interface Visitor {
        void frame(int opcode, ByteBuffer buf, int start, int length);
    }

    private BenchWire() {
    }

    /** The upgrade request for {@code path} with the bearer token. */
    static byte[] upgradeRequest(String host, int port, String path, String token) {
        return ("GET " + path + " HTTP/1.1\r\nHost: " + host + ":" + port + "\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n"
                + "Authorization: Bearer " + token + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
    }

    /** Reads the upgrade response up to its blank line, byte by byte so no frame is read with it; fails unless 101. */
    static void awaitUpgrade(InputStream in) throws IOException {
        StringBuilder status = new StringBuilder();
        int matched = 0;
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                throw new EOFException("closed during handshake");
            }
            if (status.length() < 12) {
                status.append((char) b);
            }
            matched = (b == '\r' && (matched == 0 || matched == 2)) || (b == '\n' && (matched == 1 || matched == 3))
                    ? matched + 1 : 0;
        }
        if (!status.toString().startsWith("HTTP/1.1 101")) {
            throw new IOException("handshake answered " + status);
        }
    }

    /** A client-to-server text frame (clients must mask), masked once so it can be sent many times. */
    static byte[] maskedTextFrame(byte[] payload) {
        ByteBuffer f = ByteBuffer.allocate(payload.length + 14);
        f.put((byte) 0x81);
        if (payload.length < 126) {
            f.put((byte) (0x80 | payload.length));
        } else if (payload.length <= 0xffff) {
            f.put((byte) (0x80 | 126)).putShort((short) payload.length);
        } else {
            f.put((byte) (0x80 | 127)).putLong(payload.length);
        }
        byte[] mask = {0x1b, 0x2c, 0x3d, 0x4e};
        f.put(mask);
        for (int i = 0; i < payload.length; i++) {
            f.put((byte) (payload[i] ^ mask[i & 3]));
        }
        f.flip();
        byte[] out = new byte[f.remaining()];
        f.get(out);
        return out;
    }

    /**
     * Hands every whole frame in {@code buf} (in write mode, as a channel read left it) to
     * {@code visitor} and keeps the trailing partial frame for the next read.
     */
    static void forEachFrame(ByteBuffer buf, Visitor visitor) {
        buf.flip();
        while (buf.remaining() >= 2) {
            buf.mark();
            int opcode = buf.get() & 0x0f;
            long len = buf.get() & 0x7f;
            if (len == 126) {
                if (buf.remaining() < 2) {
                    buf.reset();
                    break;
                }
                len = buf.getShort() & 0xffff;
            } else if (len == 127) {
                if (buf.remaining() < 8) {
                    buf.reset();
                    break;
                }
                len = buf.getLong();
            }
            if (buf.remaining() < len) {
                buf.reset();
                break;
            }
            int start = buf.position();
            visitor.frame(opcode, buf, start, (int) len);
            buf.position(start + (int) len);
        }
        buf.compact();
    }
}
