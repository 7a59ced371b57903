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
}
