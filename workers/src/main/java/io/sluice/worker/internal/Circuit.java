package io.sluice.worker.internal;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.github.resilience4j.circuitbreaker.event.CircuitBreakerOnStateTransitionEvent;
import io.sluice.worker.WorkerConfig;
import io.sluice.worker.retry.Failures;
import java.time.Duration;
import java.util.function.Consumer;

/**
 * The worker's circuit breaker, on Resilience4j. Only processing timeouts count as failures and
 * only completed requests as successes: a count-based window of the last N outcomes that opens
 * at a 100 % failure rate is exactly "N consecutive timeouts". After the cool-down it turns
 * half-open by itself; the next outcomes decide between closed and open again.
 */
public final class Circuit {
    private Circuit() {
    }

    public static CircuitBreaker create(String workerId, WorkerConfig config,
            Consumer<CircuitBreakerOnStateTransitionEvent> onTransition) {
        int timeouts = config.getInt(WorkerConfig.CIRCUIT_TIMEOUTS);
        CircuitBreakerConfig c = CircuitBreakerConfig.custom()
                .slidingWindowType(CircuitBreakerConfig.SlidingWindowType.COUNT_BASED)
                .slidingWindowSize(timeouts)
                .minimumNumberOfCalls(timeouts)
                .failureRateThreshold(100f)
                .waitDurationInOpenState(Duration.ofMillis(config.getLong(WorkerConfig.CIRCUIT_COOLDOWN_MS)))
                .permittedNumberOfCallsInHalfOpenState(config.getInt(WorkerConfig.CIRCUIT_PROBES))
                .automaticTransitionFromOpenToHalfOpenEnabled(true)
                .recordExceptions(Failures.ProcessingTimeoutException.class)
                .build();
        CircuitBreaker breaker = CircuitBreaker.of("worker-" + workerId, c);
        breaker.getEventPublisher().onStateTransition(onTransition::accept);
        return breaker;
    }

    /** The state as a number for a gauge: 0 closed, 1 open, 2 half-open, 3 anything else. */
    public static double gaugeValue(CircuitBreaker.State state) {
        return switch (state) {
            case CLOSED -> 0;
            case OPEN -> 1;
            case HALF_OPEN -> 2;
            default -> 3;
        };
    }

    /** Whether a worker in this state takes work from its partitions. */
    public static boolean takesWork(CircuitBreaker.State state) {
        return state == CircuitBreaker.State.CLOSED || state == CircuitBreaker.State.HALF_OPEN;
    }

    /** Records a request that completed on this worker. */
    public static void success(CircuitBreaker breaker, long nanos) {
        if (takesWork(breaker.getState())) {
            breaker.onSuccess(nanos, java.util.concurrent.TimeUnit.NANOSECONDS);
        }
    }

    /** Records a processing timeout. */
    public static void timeout(CircuitBreaker breaker, long nanos, Failures.ProcessingTimeoutException e) {
        if (takesWork(breaker.getState())) {
            breaker.onError(nanos, java.util.concurrent.TimeUnit.NANOSECONDS, e);
        }
    }
}
