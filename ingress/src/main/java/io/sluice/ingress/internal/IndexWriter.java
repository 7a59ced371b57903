package io.sluice.ingress.internal;

import io.sluice.idempotency.SubmissionRegistry;
import io.sluice.idempotency.SubmissionRegistry.IndexEntry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the request index for attach in batches: one thread drains a bounded queue and sends
 * everything waiting in one pipelined round trip, so submitters never wait on Redis one by one.
 * When the queue is full the entry is written by its caller instead.
 */
final class IndexWriter implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(IndexWriter.class);
    private static final int MAX_BATCH = 512;

    private record Pending(IndexEntry entry, CompletableFuture<Void> done) {
    }

    private final SubmissionRegistry registry;
    private final Duration ttl;
    private final BlockingQueue<Pending> queue = new ArrayBlockingQueue<>(16_384);
    private final Thread thread;
    private volatile boolean running = true;

    IndexWriter(SubmissionRegistry registry, Duration ttl) {
        this.registry = registry;
        this.ttl = ttl;
        this.thread = new Thread(this::run, "sluice-request-index");
        thread.setDaemon(true);
        thread.start();
    }

    /** Completes once the entry is in Redis, or exceptionally when Redis did not take it. */
    CompletableFuture<Void> write(IndexEntry entry) {
        Pending p = new Pending(entry, new CompletableFuture<>());
        if (!queue.offer(p)) {
            try {
                registry.indexAll(List.of(entry), ttl);
                p.done().complete(null);
            } catch (RuntimeException e) {
                p.done().completeExceptionally(e);
            }
        }
        return p.done();
    }

    private void run() {
        List<Pending> batch = new ArrayList<>(MAX_BATCH);
        while (running) {
            try {
                Pending first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                queue.drainTo(batch, MAX_BATCH - 1);
                try {
                    registry.indexAll(batch.stream().map(Pending::entry).toList(), ttl);
                    batch.forEach(p -> p.done().complete(null));
                } catch (RuntimeException e) {
                    log.warn("Request index unavailable ({}); {} requests cannot be attached to from elsewhere",
                            e.toString(), batch.size());
                    batch.forEach(p -> p.done().completeExceptionally(e));
                }
                batch.clear();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
    }
}
