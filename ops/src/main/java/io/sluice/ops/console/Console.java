package io.sluice.ops.console;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** The console's single page: static HTML and script, no data; the data comes from /ops/api/*. */
public final class Console {
    private Console() {
    }

    public static String page() {
        try (InputStream in = Console.class.getResourceAsStream("index.html")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
