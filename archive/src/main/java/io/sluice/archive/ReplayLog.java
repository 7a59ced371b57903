package io.sluice.archive;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.archive.internal.ChainedLog;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.List;

/**
 * Who replayed which dead letter, when and why: {@code replays.jsonl} in the archive, chained
 * like the manifest so an entry cannot be changed or dropped unnoticed. Appends take a lock of
 * their own, so replays recorded from several shells never interleave.
 */
public final class ReplayLog {
    public static final String FILE = "replays.jsonl";
    private final Path root;
    private final ChainedLog log;

    public ReplayLog(Path root) {
        this.root = root;
        this.log = new ChainedLog(root.resolve(FILE));
    }

    public ChainedLog log() {
        return log;
    }

    public List<ObjectNode> entries() {
        return log.read();
    }

    /** Records a replay; returns the entry as written. */
    public ObjectNode record(String requestId, String replayRequestId, String tier, String principal, String tenant,
            String reason, int previousReplays, Instant at) {
        ObjectNode body = DlqArchive.JSON.createObjectNode();
        body.put("type", "replay").put("request_id", requestId).put("replay_request_id", replayRequestId).put("tier", tier)
                .put("principal", principal).put("tenant", tenant).put("reason", reason)
                .put("previous_replays", previousReplays).put("at", at.toString());
        try {
            Files.createDirectories(root);
            try (FileChannel ch = FileChannel.open(root.resolve("replays.lock"), StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE); FileLock ignored = ch.lock()) {
                return log.append(body);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot record the replay in " + root, e);
        }
    }
}
