package io.sluice.app;

import org.eclipse.jetty.websocket.api.exceptions.UpgradeException;

/** The HTTP status a refused WebSocket handshake was answered with. */
final class Handshake {
    private Handshake() {
    }

    static int status(String url, String token, String origin) {
        try (WsClient ignored = WsClient.connect(url, token, origin)) {
            return 101;
        } catch (Exception e) {
            Throwable cause = e;
            while (cause != null && !(cause instanceof UpgradeException)) {
                cause = cause.getCause();
            }
            if (cause == null) {
                throw new AssertionError("handshake failed without an HTTP status", e);
            }
            return ((UpgradeException) cause).getResponseStatusCode();
        }
    }

    /**
     * Sends a handshake by hand, with {@code extensions} offered as they are written, and returns
     * the answer's status line: the way to offer what a client library would not.
     */
    static String raw(int port, String token, String extensions) throws Exception {
        try (java.net.Socket s = new java.net.Socket("127.0.0.1", port)) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(request(token, "Sec-WebSocket-Extensions: " + extensions + "\r\n"));
            return new java.io.BufferedReader(new java.io.InputStreamReader(s.getInputStream(),
                    java.nio.charset.StandardCharsets.US_ASCII)).readLine();
        }
    }

    /**
     * Upgrades {@code s} by hand, as a client that then does what it likes with the socket (reads
     * nothing, answers no ping), and returns the answer's head. The head is read a byte at a time,
     * so the frames after it are still in the socket for the caller.
     */
    static String upgrade(java.net.Socket s, String token) throws java.io.IOException {
        s.getOutputStream().write(request(token, ""));
        java.io.InputStream in = s.getInputStream();
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                throw new java.io.EOFException("connection closed in the handshake's answer: " + head);
            }
            head.append((char) b);
        }
        return head.toString();
    }

    /** A handshake request for the gateway's path with the bearer {@code token} and {@code moreHeaders} (each line ended by CRLF). */
    private static byte[] request(String token, String moreHeaders) {
        return ("GET " + io.sluice.ingress.Gateway.PATH + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + "Authorization: Bearer " + token + "\r\n" + moreHeaders + "\r\n")
                .getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    }
}
