package io.sluice.ingress.internal;

import io.sluice.idempotency.SubmissionRegistry;
import io.sluice.idempotency.SubmissionRegistry.Standing;
import io.sluice.ingress.ProtocolError;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Holds the answer to a duplicate until the first request with its key is known to be on Kafka.
 * A duplicate's {@code accepted} says that the stream it follows will come; while the first
 * request is still waiting for Kafka's acknowledgement (on this gateway or another) that is not
 * known yet, and a first request Kafka then refuses has no stream at all. So the submission is
 * read back from the registry, at growing intervals, until its gateway marked it acknowledged
 * (answer {@code accepted}) or released it after a refusal (answer {@code overloaded}: the
 * client's retry then finds the key free).
 *
 * <p>A first request whose gateway never says (it stopped between registering and Kafka's
 * answer, or its mark was lost) is given up once Kafka's delivery timeout and a margin have
 * passed since it started: its key is released and the duplicate answered {@code overloaded}.
 * That is safe even if the first request did reach Kafka: the retry is a new request under the
 * same key, and the workers' claim on the key decodes it once and gives the retry the first
 * request's stream under its own id.
 */
final class FirstWrites implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(FirstWrites.class);
    /** Duplicates that may wait at once; each costs a timer entry and a Redis read per interval. */
    static final int MAX_WAITING = 4096;
    private static final long FIRST_INTERVAL_MS = 10;
    private static final long MAX_INTERVAL_MS = 500;

    private final SubmissionRegistry registry;
    private final Clock clock;
    private final long patienceMillis;
    private final ScheduledThreadPoolExecutor timer;
    private final AtomicInteger waiting = new AtomicInteger();

    /** @param patience how long after a first request's start its gateway may still learn Kafka's answer */
    FirstWrites(SubmissionRegistry registry, Clock clock, Duration patience) {
        this.registry = registry;
        this.clock = clock;
        this.patienceMillis = patience.toMillis();
        this.timer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "sluice-first-writes");
            t.setDaemon(true);
            return t;
        });
        timer.setRemoveOnCancelPolicy(true);
    }

    /**
     * Completes once the request {@code firstId}, registered under {@code key} at
     * {@code firstCreatedAtMillis}, is acknowledged by Kafka; fails with the client-facing error
     * when it was not written, or cannot be waited for.
     *
     * @throws ProtocolError overloaded, when {@link #MAX_WAITING} repeats wait already
     */
    CompletableFuture<Void> await(String key, String firstId, long firstCreatedAtMillis) throws ProtocolError {
        if (waiting.incrementAndGet() > MAX_WAITING) {
            waiting.decrementAndGet();
            throw overloaded("too many repeats waiting for their first request's write");
        }
        CompletableFuture<Void> written = new CompletableFuture<>();
        written.whenComplete((ok, err) -> waiting.decrementAndGet());
        schedule(new Watch(key, firstId, firstCreatedAtMillis + patienceMillis, written), FIRST_INTERVAL_MS);
        return written;
    }

    private record Watch(String key, String firstId, long deadlineMillis, CompletableFuture<Void> written) {
    }

    private void schedule(Watch w, long intervalMs) {
        try {
            timer.schedule(() -> check(w, intervalMs), intervalMs, TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException closed) {
            w.written().completeExceptionally(new ProtocolError(ProtocolError.Code.overloaded,
                    "gateway shutting down; submit on another gateway", true));
        }
    }

    private void check(Watch w, long intervalMs) {
        Standing standing = null;
        try {
            standing = registry.standing(w.key(), w.firstId());
        } catch (RuntimeException redisDown) {
            log.debug("Registry unavailable while a repeat of {} waits: {}", w.firstId(), redisDown.toString());
        }
        if (standing == Standing.ACKNOWLEDGED) {
            w.written().complete(null);
            return;
        }
        if (standing == Standing.GONE) {
            w.written().completeExceptionally(overloaded("the first request with this key was not written to Kafka"));
            return;
        }
        if (clock.millis() >= w.deadlineMillis()) {
            boolean released;
            try {
                released = registry.release(w.key(), w.firstId());
            } catch (RuntimeException redisDown) {
                w.written().completeExceptionally(overloaded("the first request with this key cannot be looked up"));
                return;
            }
            if (released) {
                log.warn("Request {} got no answer from Kafka within {} ms of its start; its idempotency key is released",
                        w.firstId(), patienceMillis);
                w.written().completeExceptionally(overloaded("the first request with this key got no answer from Kafka in time"));
                return;
            }
            // Not released: it was acknowledged or released meanwhile, which the next read tells.
        }
        schedule(w, Math.min(intervalMs * 2, MAX_INTERVAL_MS));
    }

    private static ProtocolError overloaded(String why) {
        return new ProtocolError(ProtocolError.Code.overloaded, "idempotency_key: " + why + "; retry", true);
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
