package io.sluice.ingress.bench;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A client process for the idle-socket benchmark: opens {@code count} WebSocket connections over
 * plain TCP (handshake only), prints {@code connected N}, and holds them until its standard input
 * closes. Plain sockets keep the client side small, so a few processes can hold tens of thousands.
 */
public final class IdleClients {
    private IdleClients() {
    }

    public static void main(String[] args) throws Exception {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String path = args[2];
        int count = Integer.parseInt(args[3]);
        String token = args[4];
        List<Socket> sockets = new ArrayList<>(count);
        byte[] request = ("GET " + path + " HTTP/1.1\r\nHost: " + host + ":" + port
                + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
                + "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer " + token + "\r\n\r\n").getBytes(StandardCharsets.UTF_8);
        int failed = 0;
        for (int i = 0; i < count; i++) {
            Socket s = new Socket();
            try {
                s.connect(new InetSocketAddress(host, port), 10_000);
                OutputStream out = s.getOutputStream();
                out.write(request);
                out.flush();
                InputStream in = s.getInputStream();
                int matched = 0;
                StringBuilder status = new StringBuilder();
                while (matched < 4) {
                    int b = in.read();
                    if (b < 0) {
                        throw new java.io.EOFException("closed during handshake");
                    }
                    if (status.length() < 12) {
                        status.append((char) b);
                    }
                    matched = (b == '\r' && (matched == 0 || matched == 2)) || (b == '\n' && (matched == 1 || matched == 3))
                            ? matched + 1 : 0;
                }
                if (!status.toString().startsWith("HTTP/1.1 101")) {
                    throw new java.io.IOException("handshake answered " + status);
                }
                sockets.add(s);
            } catch (java.io.IOException e) {
                failed++;
                s.close();
            }
        }
        System.out.println("connected " + sockets.size() + " failed " + failed);
        System.out.flush();
        while (System.in.read() >= 0) {
            // hold the sockets until the parent closes our input
        }
        for (Socket s : sockets) {
            s.close();
        }
    }
}
