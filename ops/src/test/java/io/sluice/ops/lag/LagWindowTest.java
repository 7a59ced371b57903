package io.sluice.ops.lag;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class LagWindowTest {

    static LagWindow window(long[][] samples) {
        LagWindow w = new LagWindow(10, 64);
        for (long[] s : samples) {
            w.add(new LagWindow.Sample(s[0], s[1], s[2], s[2] - s[1]));
        }
        return w;
    }

    @Test
    void burrowsRules() {
        // {at, committed, end}
        assertThat(window(new long[][] {{0, 10, 20}, {1000, 20, 20}, {2000, 25, 40}}).status(true))
                .as("caught up once in the window").isEqualTo(LagStatus.OK);
        assertThat(window(new long[][] {{0, 10, 20}, {1000, 10, 25}, {2000, 10, 30}}).status(true))
                .as("members present, nothing committed, lag growing").isEqualTo(LagStatus.STALL);
        assertThat(window(new long[][] {{0, 10, 20}, {1000, 10, 20}}).status(true))
                .as("lag held, nothing committed").isEqualTo(LagStatus.STALL);
        assertThat(window(new long[][] {{0, 10, 20}, {1000, 10, 20}}).status(false))
                .as("no member left, records waiting").isEqualTo(LagStatus.STOP);
        assertThat(window(new long[][] {{0, 10, 20}, {1000, 15, 30}, {2000, 20, 45}}).status(true))
                .as("committing but the lag grows every interval").isEqualTo(LagStatus.WARN);
        assertThat(window(new long[][] {{0, 10, 20}, {1000, 15, 30}, {2000, 30, 40}}).status(true))
                .as("the lag shrank once: keeping pace").isEqualTo(LagStatus.OK);
        assertThat(window(new long[][] {{0, 10, 20}, {1000, 5, 30}}).status(true))
                .as("committed offset went backwards").isEqualTo(LagStatus.ERR);
        assertThat(window(new long[][] {{0, 10, 10}, {1000, 10, 10}}).status(false))
                .as("an idle, caught-up group is fine").isEqualTo(LagStatus.OK);
    }

    @Test
    void lagInSecondsInterpolatesWhenTheEndPassedTheCommittedOffset() {
        LagWindow w = new LagWindow(10, 64);
        w.add(new LagWindow.Sample(0, 100, 100, 0));
        w.add(new LagWindow.Sample(10_000, 100, 200, 100));
        w.add(new LagWindow.Sample(20_000, 150, 200, 50));
        // Offset 150 was appended halfway between 0 s (end 100) and 10 s (end 200).
        assertThat(w.lagSeconds(20_000)).isEqualTo(15.0);
        assertThat(w.lagSeconds(30_000)).isEqualTo(25.0);

        LagWindow caughtUp = new LagWindow(10, 64);
        caughtUp.add(new LagWindow.Sample(0, 100, 100, 0));
        assertThat(caughtUp.lagSeconds(5_000)).isZero();

        LagWindow older = new LagWindow(10, 64);
        older.add(new LagWindow.Sample(0, 10, 100, 90));
        assertThat(older.lagSeconds(1_000)).as("before every sample: the caller reads the record's timestamp")
                .isEqualTo(-1);
    }
}
