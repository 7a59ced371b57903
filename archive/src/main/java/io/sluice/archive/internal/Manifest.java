package io.sluice.archive.internal;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The archive's manifest: one chained entry per archive file (its path, SHA-256, record count
 * and the DLQ offsets it holds) and one per retention removal. The offsets make the archive the
 * source of truth for where the archiver resumes: a file that became durable before a crash is
 * never written again, even if the offset commit after it was lost.
 */
public final class Manifest {
    public static final String FILE = "manifest.jsonl";
    private final ChainedLog log;

    public Manifest(Path root) {
        this.log = new ChainedLog(root.resolve(FILE));
    }

    public ChainedLog log() {
        return log;
    }

    public List<ObjectNode> entries() {
        return log.read();
    }

    /** Records a durable archive file holding offsets {@code [first, last]} of each partition. */
    public ObjectNode appendFile(String path, String sha256, int records, String tier, Map<String, long[]> offsets,
            Instant at) {
        ObjectNode body = ChainedLog.JSON.createObjectNode();
        body.put("type", "file").put("path", path).put("sha256", sha256).put("records", records).put("tier", tier);
        ObjectNode o = body.putObject("offsets");
        offsets.entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> o.putArray(e.getKey()).add(e.getValue()[0]).add(e.getValue()[1]));
        body.put("at", at.toString());
        return log.append(body);
    }

    /** Records files removed by retention, with their digests. */
    public ObjectNode appendRetention(String tier, Map<String, String> removed, Instant at) {
        ObjectNode body = ChainedLog.JSON.createObjectNode();
        body.put("type", "retention").put("tier", tier);
        ObjectNode r = body.putObject("removed");
        removed.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> r.put(e.getKey(), e.getValue()));
        body.put("at", at.toString());
        return log.append(body);
    }

    /** Per partition ("topic-partition"), the offset after the last one archived. */
    public Map<String, Long> nextOffsets() {
        Map<String, Long> next = new HashMap<>();
        for (ObjectNode e : entries()) {
            if (!"file".equals(e.path("type").asText())) {
                continue;
            }
            e.path("offsets").fields().forEachRemaining(f -> next.merge(f.getKey(), f.getValue().get(1).asLong() + 1, Math::max));
        }
        return next;
    }
}
