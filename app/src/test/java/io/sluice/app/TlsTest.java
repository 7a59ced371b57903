package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.websocket.client.WebSocketClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** wss from a keystore or from PEM files, and client certificates when required. */
class TlsTest {
    static final String PASS = "changeit-123";

    static void run(Path dir, String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor()).as("%s: %s", String.join(" ", cmd), out).isZero();
    }

    static String keytool() {
        return Path.of(System.getProperty("java.home"), "bin", "keytool").toString();
    }

    /** A self-signed certificate for 127.0.0.1 in a PKCS12 keystore, plus its certificate as PEM. */
    static void keypair(Path dir, String name) throws Exception {
        run(dir, keytool(), "-genkeypair", "-alias", name, "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=127.0.0.1",
                "-ext", "SAN=ip:127.0.0.1", "-validity", "2", "-storetype", "PKCS12", "-keystore", name + ".p12",
                "-storepass", PASS, "-keypass", PASS);
        run(dir, keytool(), "-exportcert", "-rfc", "-alias", name, "-keystore", name + ".p12", "-storepass", PASS,
                "-file", name + ".pem");
    }

    static WebSocketClient client(Path trust, Path keystore) throws Exception {
        SslContextFactory.Client ssl = new SslContextFactory.Client();
        ssl.setTrustStorePath(trust.toString());
        ssl.setTrustStorePassword(PASS);
        if (keystore != null) {
            ssl.setKeyStorePath(keystore.toString());
            ssl.setKeyStorePassword(PASS);
        }
        HttpClient http = new HttpClient();
        http.setSslContextFactory(ssl);
        return new WebSocketClient(http);
    }

    static Map<String, Object> config(Path dir) throws Exception {
        Map<String, Object> g = GatewayProtocolTest.config(GatewayProtocolTest.topics("tls"));
        return g;
    }

    static void pingPong(WsClient c) throws Exception {
        c.send("{\"type\":\"ping\"}");
        assertThat(c.next(Duration.ofSeconds(10), "pong").path("type").asText()).isEqualTo("pong");
    }

    @Test
    void wssFromAKeystoreAndFromPemFiles(@TempDir Path dir) throws Exception {
        keypair(dir, "server");
        Map<String, Object> g = config(dir);
        g.put(GatewayConfig.TLS_KEYSTORE_FILE, dir.resolve("server.p12").toString());
        g.put(GatewayConfig.TLS_KEYSTORE_PASSWORD, PASS);
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            assertThat(gw.url()).startsWith("wss://");
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            try (WsClient c = WsClient.connect(client(dir.resolve("server.p12"), null), gw.url(), token, null)) {
                pingPong(c);
            }
        }

        run(dir, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1");
        run(dir, keytool(), "-importcert", "-noprompt", "-alias", "pem", "-file", "cert.pem", "-keystore", "pem-trust.p12",
                "-storetype", "PKCS12", "-storepass", PASS);
        Map<String, Object> p = config(dir);
        p.put(GatewayConfig.TLS_CERT_FILE, dir.resolve("cert.pem").toString());
        p.put(GatewayConfig.TLS_KEY_FILE, dir.resolve("key.pem").toString());
        try (Gateway gw = Gateway.start(new GatewayConfig(p))) {
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            try (WsClient c = WsClient.connect(client(dir.resolve("pem-trust.p12"), null), gw.url(), token, null)) {
                pingPong(c);
            }
        }
    }

    @Test
    void whenClientCertificatesAreRequiredOnlyAClientWithOneConnects(@TempDir Path dir) throws Exception {
        keypair(dir, "server");
        keypair(dir, "client");
        Map<String, Object> g = config(dir);
        g.put(GatewayConfig.TLS_KEYSTORE_FILE, dir.resolve("server.p12").toString());
        g.put(GatewayConfig.TLS_KEYSTORE_PASSWORD, PASS);
        g.put(GatewayConfig.TLS_CLIENT_AUTH, "need");
        g.put(GatewayConfig.TLS_CLIENT_CA_FILE, dir.resolve("client.pem").toString());
        try (Gateway gw = Gateway.start(new GatewayConfig(g))) {
            String token = gw.authenticator().mint("u", "acme", List.of("infer"), Duration.ofMinutes(1));
            try (WsClient c = WsClient.connect(client(dir.resolve("server.p12"), dir.resolve("client.p12")), gw.url(), token,
                    null)) {
                pingPong(c);
            }
            assertThatThrownBy(() -> WsClient.connect(client(dir.resolve("server.p12"), null), gw.url(), token, null).close())
                    .as("no client certificate").isInstanceOf(Exception.class);
        }
    }
}
