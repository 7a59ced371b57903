package io.sluice.archive;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;
import io.sluice.archive.internal.ChainedLog;
import io.sluice.archive.internal.Manifest;
import io.sluice.schemas.Attempt;
import io.sluice.schemas.DeadLetter;
import io.sluice.schemas.InferenceRequest;
import io.sluice.schemas.SluiceCodec;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.avro.file.DataFileReader;
import org.apache.avro.specific.SpecificDatumReader;

/**
 * The auditors' view of an archive directory: listing and filtering dead letters, showing one,
 * exporting them, and verifying that nothing was changed, removed or reordered. Reads files
 * only; needs no broker.
 */
public final class DlqArchive {
    static final ObjectMapper JSON = new ObjectMapper();
    private final Path root;

    public DlqArchive(Path root) {
        this.root = root.toAbsolutePath();
    }

    public Path root() {
        return root;
    }

    /** A dead letter and the archive file holding it. */
    public record Entry(DeadLetter letter, String file) {
    }

    /**
     * What to list; null fields match everything.
     *
     * @param errorClass matches the final error code, or the class of the last attempt's failure
     *     (fully qualified or simple name)
     */
    public record Filter(String tier, Instant since, Instant until, String tenant, String errorClass, String requestId) {
        public static Filter all() {
            return new Filter(null, null, null, null, null, null);
        }

        boolean matches(DeadLetter d) {
            Instant at = d.getDeadLetteredAt();
            return (tier == null || tier.equals(d.getTier().name()))
                    && (since == null || !at.isBefore(since))
                    && (until == null || at.isBefore(until))
                    && (tenant == null || tenant.equals(d.getTenant()))
                    && (requestId == null || requestId.equals(d.getRequestId()))
                    && (errorClass == null || errorClass.equals(d.getFinalError().getCode()) || lastClassMatches(d));
        }

        private boolean lastClassMatches(DeadLetter d) {
            if (d.getAttempts().isEmpty()) {
                return false;
            }
            String c = d.getAttempts().get(d.getAttempts().size() - 1).getErrorClass();
            return c.equals(errorClass) || c.endsWith("." + errorClass) || c.endsWith("$" + errorClass);
        }
    }

    /** Every archived dead letter matching {@code filter}, in archive order. */
    public List<Entry> list(Filter filter) {
        List<Entry> out = new ArrayList<>();
        for (ObjectNode e : new Manifest(root).entries()) {
            if (!"file".equals(e.path("type").asText())) {
                continue;
            }
            String rel = e.path("path").asText();
            Path file = root.resolve(rel);
            if (!Files.exists(file)) {
                continue; // removed by retention (or missing: verify says which)
            }
            try (DataFileReader<DeadLetter> r = new DataFileReader<>(file.toFile(), new SpecificDatumReader<>(DeadLetter.class))) {
                for (DeadLetter d : r) {
                    if (filter.matches(d)) {
                        out.add(new Entry(d, rel));
                    }
                }
            } catch (IOException ex) {
                throw new UncheckedIOException("Cannot read " + file + " (run `sluice dlq verify`)", ex);
            }
        }
        return out;
    }

    /** The dead letters of one request (more than one when a replay of it was dead-lettered too). */
    public List<Entry> show(String requestId) {
        return list(new Filter(null, null, null, null, null, requestId));
    }

    /** Replays recorded for a request. */
    public List<ObjectNode> replaysOf(String requestId) {
        return new ReplayLog(root).entries().stream().filter(r -> requestId.equals(r.path("request_id").asText())).toList();
    }

    /** A dead letter as JSON, with the original request decoded when it can be. */
    public static ObjectNode toJson(Entry entry) {
        DeadLetter d = entry.letter();
        ObjectNode n = JSON.createObjectNode();
        n.put("request_id", d.getRequestId());
        n.put("tenant", d.getTenant());
        n.put("tier", d.getTier().name());
        n.put("dead_lettered_at", d.getDeadLetteredAt().toString());
        n.putObject("origin").put("topic", d.getOrigin().getTopic()).put("partition", d.getOrigin().getPartition())
                .put("offset", d.getOrigin().getOffset());
        n.putObject("final_error").put("code", d.getFinalError().getCode()).put("message", d.getFinalError().getMessage())
                .put("retryable", d.getFinalError().getRetryable());
        ArrayNode attempts = n.putArray("attempts");
        for (Attempt a : d.getAttempts()) {
            attempts.addObject().put("attempt", a.getAttempt()).put("at", a.getAt().toString()).put("worker", a.getWorker())
                    .put("error_class", a.getErrorClass()).put("error_message", a.getErrorMessage());
        }
        n.put("trace_id", d.getTraceId());
        n.put("original_fingerprint", d.getOriginalFingerprint() == null ? null
                : HexFormat.of().toHexDigits(d.getOriginalFingerprint()));
        byte[] original = bytes(d);
        n.put("original_base64", Base64.getEncoder().encodeToString(original));
        try {
            InferenceRequest r = SluiceCodec.get().decode(original, InferenceRequest.class);
            ObjectNode req = n.putObject("request");
            req.put("request_id", r.getRequestId()).put("tenant", r.getTenant()).put("prompt", r.getPrompt())
                    .put("max_tokens", r.getMaxTokens()).put("tier", r.getTier().name())
                    .put("created_at", r.getCreatedAt().toString());
            r.getMetadata().forEach((k, v) -> req.with("metadata").put(k, v));
        } catch (RuntimeException notARequest) {
            n.putNull("request");
        }
        n.put("file", entry.file());
        return n;
    }

    static byte[] bytes(DeadLetter d) {
        var buf = d.getOriginal().duplicate();
        byte[] out = new byte[buf.remaining()];
        buf.get(out);
        return out;
    }

    public static void exportJsonl(List<Entry> entries, Writer out) throws IOException {
        for (Entry e : entries) {
            out.write(toJson(e).toString());
            out.write('\n');
        }
        out.flush();
    }

    public static void exportCsv(List<Entry> entries, Writer out) throws IOException {
        CsvSchema schema = CsvSchema.builder().addColumn("dead_lettered_at").addColumn("tier").addColumn("request_id")
                .addColumn("tenant").addColumn("attempts").addColumn("error_code").addColumn("error_class")
                .addColumn("error_message").addColumn("origin").addColumn("trace_id").addColumn("file")
                .build().withHeader();
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Entry e : entries) {
            DeadLetter d = e.letter();
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("dead_lettered_at", d.getDeadLetteredAt().toString());
            row.put("tier", d.getTier().name());
            row.put("request_id", d.getRequestId());
            row.put("tenant", d.getTenant());
            row.put("attempts", d.getAttempts().size());
            row.put("error_code", d.getFinalError().getCode());
            row.put("error_class", d.getAttempts().isEmpty() ? "" : d.getAttempts().get(d.getAttempts().size() - 1).getErrorClass());
            row.put("error_message", d.getFinalError().getMessage());
            row.put("origin", d.getOrigin().getTopic() + "/" + d.getOrigin().getPartition() + "/" + d.getOrigin().getOffset());
            row.put("trace_id", d.getTraceId());
            row.put("file", e.file());
            rows.add(row);
        }
        new CsvMapper().writer(schema).writeValues(out).writeAll(rows).flush();
    }

    /** What {@link #verify()} found. */
    public record Report(List<String> problems, int files, long records, int removedByRetention, String manifestHead,
            int replays) {
        public boolean ok() {
            return problems.isEmpty();
        }
    }

    /**
     * Checks the archive: the manifest chain (an entry changed, removed, inserted or reordered),
     * every listed file against its SHA-256 (a file changed, or swapped with another), listed
     * files that are gone without a retention entry, files no entry lists, and the replay log's
     * own chain.
     */
    public Report verify() {
        Manifest manifest = new Manifest(root);
        List<String> problems = new ArrayList<>(manifest.log().verifyChain());
        Set<String> listed = new HashSet<>();
        Map<String, String> digests = new LinkedHashMap<>();
        Set<String> removed = new HashSet<>();
        long records = 0;
        for (ObjectNode e : manifest.entries()) {
            switch (e.path("type").asText()) {
                case "file" -> {
                    String path = e.path("path").asText();
                    if (!listed.add(path)) {
                        problems.add(path + ": listed twice in the manifest");
                    }
                    digests.put(path, e.path("sha256").asText());
                    records += e.path("records").asLong();
                }
                case "retention" -> e.path("removed").fieldNames().forEachRemaining(removed::add);
                default -> { }
            }
        }
        for (var d : digests.entrySet()) {
            Path f = root.resolve(d.getKey());
            if (!Files.exists(f)) {
                if (!removed.contains(d.getKey())) {
                    problems.add(d.getKey() + ": missing (removed without a retention entry)");
                }
            } else if (!ChainedLog.sha256(f).equals(d.getValue())) {
                problems.add(d.getKey() + ": changed (SHA-256 differs from the manifest)");
            }
        }
        Path dlq = root.resolve("dlq");
        if (Files.isDirectory(dlq)) {
            try (Stream<Path> files = Files.walk(dlq)) {
                for (Path f : files.filter(Files::isRegularFile).sorted().toList()) {
                    String rel = root.relativize(f).toString().replace('\\', '/');
                    if (!listed.contains(rel)) {
                        problems.add(rel + ": not in the manifest (added or renamed)");
                    } else if (removed.contains(rel)) {
                        problems.add(rel + ": present although the manifest records its removal");
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException("Cannot list " + dlq, e);
            }
        }
        ReplayLog replays = new ReplayLog(root);
        problems.addAll(replays.log().verifyChain());
        return new Report(problems, digests.size(), records, removed.size(), manifest.log().head(), replays.entries().size());
    }
}
