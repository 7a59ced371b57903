package io.sluice.app.matrix;

/** How a client follows its request. */
enum Transport {
    /** POST, then GET the request every poll interval until it is done. */
    POLL,
    /** POST, then Server-Sent Events on /v1/requests/{id}/events. */
    SSE,
    /** One WebSocket per client: generate, then token frames. */
    WS
}
