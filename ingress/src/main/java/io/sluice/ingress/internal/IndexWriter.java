package io.sluice.ingress.internal;

import io.sluice.idempotency.SubmissionRegistry;
import io.sluice.idempotency.SubmissionRegistry.IndexEntry;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the request index for attach in batches ({@link Batches}), so submitters never wait on
 * Redis one by one. When the queue is full the entry is written by its caller instead.
 */
final class IndexWriter implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(IndexWriter.class);
    private static final int MAX_BATCH = 512;

    private record Pending(IndexEntry entry, CompletableFuture<Void> done) {
    }

    private final SubmissionRegistry registry;
    private final Duration ttl;
    private final Batches<Pending> batches;

    IndexWriter(SubmissionRegistry registry, Duration ttl) {
        this.registry = registry;
        this.ttl = ttl;
        this.batches = new Batches<>("sluice-request-index", 16_384, MAX_BATCH, this::write);
    }

    /** Completes once the entry is in Redis, or exceptionally when Redis did not take it. */
    CompletableFuture<Void> write(IndexEntry entry) {
        Pending p = new Pending(entry, new CompletableFuture<>());
        if (!batches.offer(p)) {
            write(List.of(p));
        }
        return p.done();
    }

    private void write(List<Pending> batch) {
        try {
            registry.indexAll(batch.stream().map(Pending::entry).toList(), ttl);
            batch.forEach(p -> p.done().complete(null));
        } catch (RuntimeException e) {
            log.warn("Request index unavailable ({}); {} requests cannot be attached to from elsewhere",
                    e.toString(), batch.size());
            batch.forEach(p -> p.done().completeExceptionally(e));
        }
    }

    @Override
    public void close() {
        batches.close();
    }
}
