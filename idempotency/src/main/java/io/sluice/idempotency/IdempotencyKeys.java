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
        String businessId = metadata == null ? null : metadata.get(BUSINESS_ID);
        if (businessId != null && !businessId.isEmpty()) {
            return tenant + ":" + businessId + ":" + metadata.getOrDefault(OPERATION, "generate") + ":"
                    + metadata.getOrDefault(VERSION, "1");
        }
        return tenant + ":r:" + requestId;
    }
}
