package io.sluice.worker.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

class OffsetTrackerTest {
    final TopicPartition p0 = new TopicPartition("t", 0);
    final TopicPartition p1 = new TopicPartition("t", 1);

    @Test
    void commitsOnlyUpToTheLowestRequestNotYetTerminal() {
        OffsetTracker t = new OffsetTracker();
        Object i0 = null;
        for (long o = 10; o < 15; o++) {
            i0 = t.started(p0, o);
        }
        Object i1 = t.started(p1, 3);
        assertThat(t.committable()).containsEntry(p0, new OffsetAndMetadata(10)).containsEntry(p1, new OffsetAndMetadata(3));
        t.committed(t.committable());
        t.finished(p0, 12, i0);
        t.finished(p0, 13, i0);
        assertThat(t.committable()).as("10 and 11 still run").isEmpty();
        t.finished(p0, 10, i0);
        assertThat(t.committable()).containsExactly(Map.entry(p0, new OffsetAndMetadata(11)));
        t.committed(t.committable());
        t.finished(p0, 11, i0);
        t.finished(p0, 14, i0);
        t.finished(p1, 3, i1);
        assertThat(t.committable()).containsEntry(p0, new OffsetAndMetadata(15)).containsEntry(p1, new OffsetAndMetadata(4));
        assertThat(t.inFlight()).isZero();
    }

    @Test
    void aRevokedPartitionIsForgottenAndLateCompletionsForItAreIgnored() {
        OffsetTracker t = new OffsetTracker();
        Object before = t.started(p0, 1);
        t.forget(p0);
        t.finished(p0, 1, before);
        assertThat(t.committable()).isEmpty();
    }

    @Test
    void aLateCompletionFromBeforeAReassignmentDoesNotFinishTheRecordPolledAgain() {
        OffsetTracker t = new OffsetTracker();
        Object before = t.started(p0, 7);
        t.forget(p0); // revoked, then assigned back: the record is polled again
        Object after = t.started(p0, 7);
        t.finished(p0, 7, before);
        assertThat(t.committable()).as("offset 7 is still held by the new copy")
                .containsExactly(Map.entry(p0, new OffsetAndMetadata(7)));
        t.finished(p0, 7, after);
        assertThat(t.committable()).containsExactly(Map.entry(p0, new OffsetAndMetadata(8)));
    }

    @Test
    void theWorkQueueIsBoundedAndHandsOutTheMostUrgentFirst() throws Exception {
        WorkQueue<String> q = new WorkQueue<>(3);
        assertThat(q.offer("low", 1)).isTrue();
        assertThat(q.offer("high", 9)).isTrue();
        assertThat(q.offer("low2", 1)).isTrue();
        assertThat(q.offer("over", 9)).as("full").isFalse();
        assertThat(q.isFull()).isTrue();
        assertThat(q.poll(0, TimeUnit.MILLISECONDS)).isEqualTo("high");
        assertThat(q.poll(0, TimeUnit.MILLISECONDS)).isEqualTo("low");
        assertThat(q.poll(0, TimeUnit.MILLISECONDS)).isEqualTo("low2");
        assertThat(q.poll(10, TimeUnit.MILLISECONDS)).isNull();
    }
}
