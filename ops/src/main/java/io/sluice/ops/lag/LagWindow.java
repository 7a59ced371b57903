package io.sluice.ops.lag;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * The recent samples of one partition of one group: committed offset, end offset and when each
 * was read. Judges a {@link LagStatus} over them with Burrow's rules, and converts a lag in
 * records to a lag in seconds by interpolating over when the end offset passed each point.
 * Not thread-safe; times are the caller's (injected).
 */
public final class LagWindow {
    /** One observation. {@code lag} excludes offsets taken by transaction markers. */
    public record Sample(long atMillis, long committed, long end, long lag) {
    }

    private final int capacity;
    private final ArrayDeque<Sample> samples = new ArrayDeque<>();
    /** (end offset, first time it was seen) pairs, oldest first, for the time lag. */
    private final ArrayDeque<long[]> timeline = new ArrayDeque<>();
    private final int timelineCapacity;

    public LagWindow(int capacity, int timelineCapacity) {
        if (capacity < 2) {
            throw new IllegalArgumentException("a window needs at least 2 samples: " + capacity);
        }
        this.capacity = capacity;
        this.timelineCapacity = timelineCapacity;
    }

    public void add(Sample s) {
        samples.addLast(s);
        while (samples.size() > capacity) {
            samples.removeFirst();
        }
        if (timeline.isEmpty() || timeline.peekLast()[0] != s.end()) {
            timeline.addLast(new long[] {s.end(), s.atMillis()});
            while (timeline.size() > timelineCapacity) {
                timeline.removeFirst();
            }
        }
    }

    public List<Sample> samples() {
        return new ArrayList<>(samples);
    }

    public Sample last() {
        return samples.peekLast();
    }

    /**
     * Seconds the consumer is behind: how long ago the end of the log stood where the committed
     * offset stands now, interpolated linearly between the samples around it; 0 when caught up;
     * -1 when the committed offset is older than every sample (the caller then reads the
     * timestamp of the record at the committed offset instead).
     */
    public double lagSeconds(long nowMillis) {
        Sample s = last();
        if (s == null || s.lag() <= 0) {
            return 0;
        }
        long target = s.end() - s.lag(); // the first offset still to consume
        long[] before = null;
        for (long[] point : timeline) {
            if (point[0] > target) {
                if (before == null) {
                    return -1;
                }
                // The end moved from before[0] (at before[1]) to point[0] (at point[1]); the
                // record at target was appended somewhere in between.
                double f = (double) (target - before[0]) / (point[0] - before[0]);
                double appendedAt = before[1] + f * (point[1] - before[1]);
                return Math.max(0, (nowMillis - appendedAt) / 1000.0);
            }
            before = point;
        }
        return 0;
    }

    /**
     * Burrow's rules over the window, in order: the committed offset going backwards is ERR;
     * any sample with no lag is OK; a group with no live member and records waiting is STOP;
     * a committed offset that did not move while the lag held or grew is STALL; commits that
     * moved while the lag grew in every interval is WARN; otherwise OK.
     *
     * @param groupActive whether the group has members now (from the group coordinator)
     */
    public LagStatus status(boolean groupActive) {
        List<Sample> w = samples();
        if (w.isEmpty()) {
            return LagStatus.OK;
        }
        for (int i = 1; i < w.size(); i++) {
            if (w.get(i).committed() < w.get(i - 1).committed()) {
                return LagStatus.ERR;
            }
        }
        if (w.stream().anyMatch(s -> s.lag() <= 0)) {
            return LagStatus.OK;
        }
        if (!groupActive) {
            return LagStatus.STOP;
        }
        if (w.size() < 2) {
            return LagStatus.OK;
        }
        boolean committedMoved = w.get(w.size() - 1).committed() != w.get(0).committed();
        boolean heldOrGrew = true;
        boolean grewEveryInterval = true;
        for (int i = 1; i < w.size(); i++) {
            heldOrGrew &= w.get(i).lag() >= w.get(i - 1).lag();
            grewEveryInterval &= w.get(i).lag() > w.get(i - 1).lag();
        }
        if (!committedMoved) {
            return heldOrGrew ? LagStatus.STALL : LagStatus.OK;
        }
        return grewEveryInterval ? LagStatus.WARN : LagStatus.OK;
    }
}
