package io.sluice.ops.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.sluice.ops.health.Readiness;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

/**
 * {@code /metrics}, {@code /healthz} and {@code /readyz} for the roles without a web server of
 * their own (worker, archiver, ops), on the JDK's HTTP server: a scrape every few seconds needs
 * nothing more, and Jetty stays in the gateway.
 */
public final class OpsHttpServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpServer server;

    private OpsHttpServer(HttpServer server) {
        this.server = server;
    }

    public static OpsHttpServer start(String host, int port, PrometheusMeterRegistry registry, Readiness readiness)
            throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 64);
        server.setExecutor(Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r, "sluice-ops-http");
            t.setDaemon(true);
            return t;
        }));
        server.createContext("/metrics", ex -> respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", registry.scrape()));
        server.createContext("/healthz", ex -> respond(ex, 200, "text/plain", "ok\n"));
        server.createContext("/readyz", ex -> {
            ObjectNode body = readinessJson(readiness);
            respond(ex, body.path("ready").asBoolean() ? 200 : 503, "application/json", body + "\n");
        });
        server.start();
        return new OpsHttpServer(server);
    }

    /** The {@code /readyz} body: {@code {"ready": bool, "checks": {name: bool}}}. */
    public static ObjectNode readinessJson(Readiness readiness) {
        ObjectNode body = JSON.createObjectNode();
        ObjectNode checks = JSON.createObjectNode();
        readiness.report().forEach(checks::put);
        boolean ready = true;
        for (var it = checks.fields(); it.hasNext(); ) {
            ready &= it.next().getValue().asBoolean();
        }
        body.put("ready", ready);
        body.set("checks", checks);
        return body;
    }

    /** Adds a handler (the ops console's pages and API). */
    public void route(String path, HttpHandler handler) {
        server.createContext(path, handler);
    }

    public int port() {
        return server.getAddress().getPort();
    }

    public static void respond(HttpExchange ex, int status, String contentType, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", contentType);
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
