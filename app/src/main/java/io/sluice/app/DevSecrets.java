package io.sluice.app;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.Base64;

/** The dev signing key: made once per data directory, readable by its owner only. */
final class DevSecrets {
    static final String FILE = "dev-signing.key";

    private DevSecrets() {
    }

    static String signingKey(Path dataDir) throws IOException {
        Path file = dataDir.resolve(FILE);
        if (Files.exists(file)) {
            return Files.readString(file).trim();
        }
        Files.createDirectories(dataDir);
        byte[] bytes = new byte[36];
        new SecureRandom().nextBytes(bytes);
        String key = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
        Files.writeString(file, key + "\n");
        try {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        } catch (UnsupportedOperationException notPosix) {
            // Best effort on file systems without POSIX permissions.
        }
        return key;
    }
}
