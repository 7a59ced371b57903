package io.sluice.worker.retry;

/**
 * Sorts processing failures into those a retry may fix and those it cannot. Invalid input is
 * permanent and goes to the dead-letter queue at once; everything else (a model error, a
 * timeout, an unavailable dependency) is retried by its tier's policy.
 */
public final class Failures {
    private Failures() {
    }

    /** Whether a retry could succeed where this failure did not. */
    public static boolean retryable(Throwable failure) {
        return !(failure instanceof PermanentFailureException || failure instanceof IllegalArgumentException);
    }

    /** The stable error code a client and an auditor see for this failure. */
    public static String code(Throwable failure) {
        if (failure instanceof ProcessingTimeoutException) {
            return "timeout";
        }
        return retryable(failure) ? "failed" : "invalid_request";
    }

    /** A failure no retry can fix. */
    public static class PermanentFailureException extends RuntimeException {
        public PermanentFailureException(String message) {
            super(message);
        }
    }

    /** A request took longer than the worker's processing timeout. */
    public static class ProcessingTimeoutException extends RuntimeException {
        public ProcessingTimeoutException(String message) {
            super(message);
        }
    }
}
