package io.sluice.app;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import io.sluice.archive.DlqArchive;
import io.sluice.ingress.Authenticator;
import io.sluice.ops.console.CircuitWatcher;
import io.sluice.ops.console.Console;
import io.sluice.ops.http.OpsHttpServer;
import io.sluice.ops.lag.LagSampler;
import java.io.IOException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The web console at {@code /ops}: the page, and its JSON behind scopes — lag history and
 * circuit states need {@code ops:read}, the dead-letter browser {@code dlq:read} and shows only
 * the caller's tenant.
 */
final class OpsConsole {
    private OpsConsole() {
    }

    static void mount(OpsHttpServer server, LagSampler lag, CircuitWatcher circuits, Path archive, Authenticator auth) {
        server.route("/ops", ex -> {
            try {
                handle(ex, lag, circuits, archive, auth);
            } catch (RuntimeException e) {
                OpsHttpServer.respond(ex, 500, "application/json", error("internal", e.toString()));
            }
        });
    }

    private static void handle(HttpExchange ex, LagSampler lag, CircuitWatcher circuits, Path archive, Authenticator auth)
            throws IOException {
        String path = ex.getRequestURI().getPath();
        if (path.equals("/ops") || path.equals("/ops/")) {
            OpsHttpServer.respond(ex, 200, "text/html; charset=utf-8", Console.page());
            return;
        }
        Map<String, String> query = query(ex.getRequestURI().getRawQuery());
        Authenticator.Principal who;
        try {
            String header = ex.getRequestHeaders().getFirst("Authorization");
            String token = header != null && header.startsWith("Bearer ") ? header.substring(7) : query.get("access_token");
            who = auth.authenticate(token);
        } catch (Authenticator.Unauthorized e) {
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer");
            OpsHttpServer.respond(ex, 401, "application/json", error("unauthorized", e.getMessage()));
            return;
        }
        String scope = path.startsWith("/ops/api/dlq") ? "dlq:read" : "ops:read";
        if (!who.may(scope)) {
            OpsHttpServer.respond(ex, 403, "application/json", error("forbidden", "needs the " + scope + " scope"));
            return;
        }
        switch (path) {
            case "/ops/api/lag" -> OpsHttpServer.respond(ex, 200, "application/json", OpsCommand.history(lag).toString());
            case "/ops/api/circuits" -> {
                ObjectNode doc = OpsCommand.JSON.createObjectNode();
                ArrayNode workers = doc.putArray("workers");
                for (CircuitWatcher.State s : circuits.states()) {
                    workers.addObject().put("worker", s.worker()).put("state", s.state()).put("at", s.at().toString())
                            .put("detail", s.detail());
                }
                OpsHttpServer.respond(ex, 200, "application/json", doc.toString());
            }
            case "/ops/api/dlq" -> {
                String tier = blankToNull(query.get("tier"));
                int limit = Math.min(1000, Integer.parseInt(query.getOrDefault("limit", "100")));
                List<DlqArchive.Entry> entries = new DlqArchive(archive)
                        .list(new DlqArchive.Filter(tier, null, null, who.tenant(), null, null));
                ObjectNode doc = OpsCommand.JSON.createObjectNode();
                ArrayNode list = doc.putArray("dead_letters");
                // Newest first.
                for (int i = entries.size() - 1; i >= 0 && list.size() < limit; i--) {
                    ObjectNode n = DlqArchive.toJson(entries.get(i));
                    n.remove("original_base64");
                    list.add(n);
                }
                OpsHttpServer.respond(ex, 200, "application/json", doc.toString());
            }
            default -> {
                if (path.startsWith("/ops/api/dlq/")) {
                    String id = URLDecoder.decode(path.substring("/ops/api/dlq/".length()), StandardCharsets.UTF_8);
                    DlqArchive reader = new DlqArchive(archive);
                    List<DlqArchive.Entry> found = reader.show(id).stream()
                            .filter(e -> who.tenant().equals(e.letter().getTenant())).toList();
                    if (found.isEmpty()) {
                        OpsHttpServer.respond(ex, 404, "application/json", error("not_found", "no dead letter " + id));
                        return;
                    }
                    ObjectNode n = DlqArchive.toJson(found.get(found.size() - 1));
                    n.putArray("replays").addAll(reader.replaysOf(id));
                    OpsHttpServer.respond(ex, 200, "application/json", n.toString());
                } else {
                    OpsHttpServer.respond(ex, 404, "application/json", error("not_found", path));
                }
            }
        }
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s;
    }

    private static String error(String code, String message) {
        return OpsCommand.JSON.createObjectNode().put("code", code).put("message", message).toString();
    }

    static Map<String, String> query(String raw) {
        Map<String, String> out = new HashMap<>();
        if (raw == null) {
            return out;
        }
        for (String pair : raw.split("&")) {
            int eq = pair.indexOf('=');
            if (eq > 0) {
                out.put(URLDecoder.decode(pair.substring(0, eq), StandardCharsets.UTF_8),
                        URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
            }
        }
        return out;
    }
}
