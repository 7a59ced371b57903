package io.sluice.schemas;

import java.util.List;
import java.util.Objects;

/**
 * Topic names of one Sluice deployment. Every name starts with a configurable prefix
 * (default {@code sluice.}), so several deployments or tests can share one cluster.
 */
public final class Topics {
    public static final String DEFAULT_PREFIX = "sluice.";

    private final String prefix;

    public Topics(String prefix) {
        this.prefix = Objects.requireNonNull(prefix, "prefix");
    }

    public static Topics withDefaultPrefix() {
        return new Topics(DEFAULT_PREFIX);
    }

    public String prefix() {
        return prefix;
    }

    /** Requests to decode; {@link InferenceRequest} keyed by request id. */
    public String requests() {
        return prefix + "requests";
    }

    /** Requests waiting for their next attempt in the given tier. */
    public String retry(Tier tier) {
        return prefix + "requests.retry." + tier.name();
    }

    /** Token events and the terminal result of every request, keyed by request id. */
    public String tokens() {
        return prefix + "tokens";
    }

    /** Final result per request, compacted. */
    public String results() {
        return prefix + "results";
    }

    /** Cancellations, keyed by request id. */
    public String control() {
        return prefix + "control";
    }

    /** Dead letters of the given tier. */
    public String dlq(Tier tier) {
        return prefix + "dlq." + tier.name();
    }

    /** Operational events a monitor consumes (a worker's circuit opening, say). */
    public String events() {
        return prefix + "events";
    }

    /** Every topic of the deployment. */
    public List<String> all() {
        return List.of(requests(), retry(Tier.financial), retry(Tier.operational), tokens(), results(), control(),
                dlq(Tier.financial), dlq(Tier.operational), events());
    }
}
