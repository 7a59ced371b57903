package io.sluice.ingress.bench;

import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
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
        byte[] request = BenchWire.upgradeRequest(host, port, path, token);
        int failed = 0;
        for (int i = 0; i < count; i++) {
            Socket s = new Socket();
            try {
                s.connect(new InetSocketAddress(host, port), 10_000);
                OutputStream out = s.getOutputStream();
                out.write(request);
                out.flush();
                BenchWire.awaitUpgrade(s.getInputStream());
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
