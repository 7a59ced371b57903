package io.sluice.archive.internal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * An append-only JSON-lines log whose entries are chained by SHA-256: each entry carries its
 * number {@code n}, the hash of the entry before it ({@code prev}) and its own {@code hash} over
 * {@code prev} and its body. Changing, removing, inserting or reordering an entry breaks the
 * chain from that entry on. Each append is fsync'd before it returns.
 */
public final class ChainedLog {
    public static final String GENESIS = "0".repeat(64);
    static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    /** The tail as last read or written: the log is read again only when its size changed since. */
    private long knownSize = -1;
    private long knownCount;
    private String knownHead = GENESIS;

    public ChainedLog(Path file) {
        this.file = file;
    }

    public Path file() {
        return file;
    }

    /** Every entry as written, oldest first; empty when the file does not exist. */
    public List<ObjectNode> read() {
        List<ObjectNode> entries = new ArrayList<>();
        if (!Files.exists(file)) {
            return entries;
        }
        try {
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node = JSON.readTree(line);
                entries.add(node instanceof ObjectNode o ? o : JSON.createObjectNode().put("unreadable", line));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot read " + file, e);
        }
        return entries;
    }

    /** The hash of the last entry, or {@link #GENESIS} for an empty log. */
    public synchronized String head() {
        refreshTail();
        return knownHead;
    }

    /** How many entries the log holds. */
    public synchronized long count() {
        refreshTail();
        return knownCount;
    }

    /**
     * Reads the log again only if its size is not the one this instance last saw: a writer that
     * appends alone (the archiver, under its lock) never re-reads it, one that shares it with
     * other processes (replays, under theirs) sees their entries.
     */
    private void refreshTail() {
        long size = sizeOnDisk();
        if (size == knownSize) {
            return;
        }
        List<ObjectNode> entries = read();
        knownCount = entries.size();
        knownHead = entries.isEmpty() ? GENESIS : entries.get(entries.size() - 1).path("hash").asText();
        knownSize = size;
    }

    private long sizeOnDisk() {
        try {
            return Files.exists(file) ? Files.size(file) : 0;
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot read " + file, e);
        }
    }

    /** Appends {@code body} (its fields in a fixed order) as the next entry and fsyncs the log. */
    public synchronized ObjectNode append(ObjectNode body) {
        refreshTail();
        ObjectNode entry = JSON.createObjectNode();
        entry.put("n", knownCount);
        entry.put("prev", knownHead);
        entry.setAll(body);
        entry.put("hash", hashOf(entry));
        byte[] line = (entry.toString() + "\n").getBytes(StandardCharsets.UTF_8);
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.APPEND)) {
                ByteBuffer buf = ByteBuffer.wrap(line);
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                ch.force(true);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot append to " + file, e);
        }
        knownCount++;
        knownHead = entry.path("hash").asText();
        knownSize = sizeOnDisk();
        return entry;
    }

    /** The hash an entry must carry: SHA-256 over its JSON without the hash field. */
    public static String hashOf(ObjectNode entry) {
        ObjectNode body = entry.deepCopy();
        body.remove("hash");
        return sha256(body.toString().getBytes(StandardCharsets.UTF_8));
    }

    /** Problems in the chain, one line each, naming the entry; empty when it holds. */
    public List<String> verifyChain() {
        List<String> problems = new ArrayList<>();
        String prev = GENESIS;
        List<ObjectNode> entries = read();
        for (int i = 0; i < entries.size(); i++) {
            ObjectNode e = entries.get(i);
            String where = file.getFileName() + " line " + (i + 1);
            if (e.has("unreadable")) {
                problems.add(where + ": not a JSON object (edited by hand?)");
                prev = "";
                continue;
            }
            if (e.path("n").asLong(-1) != i) {
                problems.add(where + ": entry number " + e.path("n").asText() + " where " + i
                        + " belongs (entries reordered, removed or inserted)");
            }
            if (!e.path("prev").asText().equals(prev)) {
                problems.add(where + ": does not follow the entry before it (chain broken)");
            }
            if (!hashOf(e).equals(e.path("hash").asText())) {
                problems.add(where + ": content does not match its hash (entry changed)");
            }
            prev = e.path("hash").asText();
        }
        return problems;
    }

    public static String sha256(byte[] bytes) {
        return HexFormat.of().formatHex(digest().digest(bytes));
    }

    public static String sha256(Path file) {
        MessageDigest md = digest();
        try (var in = Files.newInputStream(file)) {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot read " + file, e);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static MessageDigest digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
