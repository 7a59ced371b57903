package io.sluice.idempotency;

import java.util.Map;

/**
 * Which key makes two requests "the same": the client's {@code idempotency_key}; else, when the
 * metadata carries a business id, {@code tenant:business_id:op:version}; else the request id.
 * The key is always scoped by tenant so tenants never collide.
 */
public final class IdempotencyKeys {
    public static final String BUSINESS_ID = "business_id";
    public static final String OPERATION = "op";
    public static final String VERSION = "version";

    private IdempotencyKeys() {
    }

    public static String keyFor(String tenant, String requestId, String idempotencyKey, Map<String, String> metadata) {
        if (idempotencyKey != null && !idempotencyKey.isEmpty()) {
            return tenant + ":k:" + idempotencyKey;
        }
        if (hasBusinessId(metadata)) {
            return tenant + ":" + metadata.get(BUSINESS_ID) + ":" + metadata.getOrDefault(OPERATION, "generate") + ":"
                    + metadata.getOrDefault(VERSION, "1");
        }
        return tenant + ":r:" + requestId;
    }

    /**
     * Whether the client named the request's key ({@code idempotency_key}, or a business id in
     * the metadata): only then can two submits be the same request. Otherwise {@link #keyFor} is
     * the request id's own key.
     */
    public static boolean hasClientKey(String idempotencyKey, Map<String, String> metadata) {
        return idempotencyKey != null && !idempotencyKey.isEmpty() || hasBusinessId(metadata);
    }

    private static boolean hasBusinessId(Map<String, String> metadata) {
        String businessId = metadata == null ? null : metadata.get(BUSINESS_ID);
        return businessId != null && !businessId.isEmpty();
    }
}
