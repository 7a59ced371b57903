package io.sluice.ingress.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import java.util.Collection;
import org.eclipse.jetty.util.ssl.SslContextFactory;

/**
 * TLS for {@code wss} from a keystore (PKCS12 or JKS) or from PEM files (certificate chain and
 * unencrypted PKCS#8 key), read with the JDK alone; optional client certificates checked
 * against CA certificates in a PEM file.
 */
public final class TlsSetup {
    private TlsSetup() {
    }

    /** The server side, or null when none of the TLS settings is given. */
    public static SslContextFactory.Server server(String keystoreFile, String keystorePassword, String certFile,
            String keyFile, String clientAuth, String clientCaFile) throws IOException, GeneralSecurityException {
        if (keystoreFile.isBlank() && certFile.isBlank()) {
            return null;
        }
        SslContextFactory.Server ssl = new SslContextFactory.Server();
        if (!keystoreFile.isBlank()) {
            ssl.setKeyStorePath(keystoreFile);
            ssl.setKeyStorePassword(keystorePassword);
        } else {
            String password = "in-memory";
            KeyStore ks = KeyStore.getInstance("PKCS12");
            ks.load(null, null);
            Certificate[] chain = certificates(Path.of(certFile)).toArray(Certificate[]::new);
            ks.setKeyEntry("sluice", privateKey(Path.of(keyFile)), password.toCharArray(), chain);
            ssl.setKeyStore(ks);
            ssl.setKeyStorePassword(password);
        }
        switch (clientAuth) {
            case "need" -> ssl.setNeedClientAuth(true);
            case "want" -> ssl.setWantClientAuth(true);
            default -> {
            }
        }
        if (!clientCaFile.isBlank()) {
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            int i = 0;
            for (Certificate ca : certificates(Path.of(clientCaFile))) {
                trust.setCertificateEntry("ca-" + i++, ca);
            }
            ssl.setTrustStore(trust);
        }
        return ssl;
    }

    static Collection<? extends Certificate> certificates(Path pem) throws IOException, GeneralSecurityException {
        try (InputStream in = Files.newInputStream(pem)) {
            Collection<? extends Certificate> certs = CertificateFactory.getInstance("X.509").generateCertificates(in);
            if (certs.isEmpty()) {
                throw new GeneralSecurityException("no certificate in " + pem);
            }
            return certs;
        }
    }

    static PrivateKey privateKey(Path pem) throws IOException, GeneralSecurityException {
        String text = Files.readString(pem);
        int begin = text.indexOf("-----BEGIN PRIVATE KEY-----");
        int end = text.indexOf("-----END PRIVATE KEY-----");
        if (begin < 0 || end < begin) {
            throw new GeneralSecurityException(pem + " holds no unencrypted PKCS#8 key (BEGIN PRIVATE KEY)");
        }
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getMimeDecoder().decode(text.substring(begin + 27, end)));
        try {
            return KeyFactory.getInstance("RSA").generatePrivate(spec);
        } catch (GeneralSecurityException notRsa) {
            return KeyFactory.getInstance("EC").generatePrivate(spec);
        }
    }
}
