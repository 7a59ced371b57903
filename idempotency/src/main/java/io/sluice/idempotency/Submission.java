package io.sluice.idempotency;

/**
 * What a gateway learns when it registers a submission.
 *
 * @param isNew true for the first submission of its key (or of its request id)
 * @param requestId the first submission's request id
 * @param digest the first submission's parameter digest
 * @param tenant the first submission's tenant
 * @param createdAtMillis when the first submission was accepted
 * @param replyPartition the tokens partition its events go to, or -1 when they are routed by request id
 * @param acknowledged whether the first submission's gateway saw Kafka acknowledge it (see
 *        {@link SubmissionRegistry#acknowledgeAll}); a duplicate is answered only once it did
 */
public record Submission(boolean isNew, String requestId, String digest, String tenant, long createdAtMillis,
        int replyPartition, boolean acknowledged) {
}
