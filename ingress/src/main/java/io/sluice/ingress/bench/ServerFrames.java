package io.sluice.ingress.bench;

import java.nio.ByteBuffer;

/** Server-to-client WebSocket frames (RFC 6455, unmasked) as the benchmark clients read them off a socket. */
final class ServerFrames {

    /** One whole frame: its payload is {@code buf}'s bytes {@code start} .. {@code start + length}. */
    @FunctionalInterface
    interface Visitor {
        void frame(int opcode, ByteBuffer buf, int start, int length);
    }

    private ServerFrames() {
    }

    /**
     * Hands every whole frame in {@code buf} (in write mode, as a channel read left it) to
     * {@code visitor} and keeps the trailing partial frame for the next read.
     */
    static void forEach(ByteBuffer buf, Visitor visitor) {
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
