package io.sluice.ops.lag;

/**
 * The state of one partition of a consumer group, judged over a window of samples the way
 * LinkedIn's Burrow does, not from one lag figure.
 */
public enum LagStatus {
    /** Caught up at some point in the window, or keeping pace. */
    OK,
    /** Committing, but the lag grew in every interval of the window: falling behind. */
    WARN,
    /** Not committing while the lag stays or grows: stuck on something. */
    STALL,
    /** No commit for longer than the window spans, with records waiting: the consumer is gone. */
    STOP,
    /** The committed offset went backwards, or offsets could not be read. */
    ERR;

    /** The worse of two statuses, for a group or a tier. */
    public LagStatus worse(LagStatus other) {
        return other.ordinal() > ordinal() ? other : this;
    }
}
