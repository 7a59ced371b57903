package io.sluice.egress;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.schemas.FinishReason;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.TokenEvent;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SubscriptionTest {
    final List<String> seen = new ArrayList<>();
    final StreamListener listener = new StreamListener() {
        @Override
        public void onToken(TokenEvent token) {
            seen.add(token.getSeq() + ":" + token.getText());
        }

        @Override
        public void onResult(InferenceResult result) {
            seen.add("done:" + result.getCompletionTokens());
        }
    };

    static TokenEvent token(int seq, long fence, String text) {
        return TokenEvent.newBuilder().setRequestId("r").setSeq(seq).setTokenId(seq).setText(text).setFence(fence)
                .setProducedAt(Instant.EPOCH).build();
    }

    static InferenceResult result(int tokens, long fence) {
        return InferenceResult.newBuilder().setRequestId("r").setFinishReason(FinishReason.length)
                .setCompletionTokens(tokens).setFence(fence).setCompletedAt(Instant.EPOCH).build();
    }

    @Test
    void deliversEachSeqOnceInOrderThenOneResult() {
        Subscription s = TokenRouterAccess.subscription(listener, -1);
        s.accept(token(0, 1, "a"));
        s.accept(token(0, 1, "a"));
        s.accept(token(2, 1, "c"));
        s.accept(token(1, 1, "b"));
        s.accept(result(3, 1));
        s.accept(result(3, 1));
        s.accept(token(3, 1, "late"));
        assertThat(seen).containsExactly("0:a", "1:b", "2:c", "done:3");
    }

    @Test
    void dropsEventsUnderAStaleFenceAfterATakeover() {
        Subscription s = TokenRouterAccess.subscription(listener, -1);
        s.accept(token(0, 1, "a"));
        s.accept(token(1, 2, "b"));
        s.accept(token(2, 1, "zombie"));
        s.accept(token(2, 2, "c"));
        s.accept(result(3, 1));
        assertThat(seen).containsExactly("0:a", "1:b", "2:c");
        s.accept(result(3, 2));
        assertThat(seen).endsWith("done:3");
    }

    @Test
    void holdsTheResultUntilTheLastTokenArrives() {
        Subscription s = TokenRouterAccess.subscription(listener, 0);
        s.accept(result(2, 1));
        assertThat(seen).isEmpty();
        s.accept(token(0, 1, "seen before attach"));
        s.accept(token(1, 1, "b"));
        assertThat(seen).containsExactly("1:b", "done:2");
    }

    @Test
    void aClaimlessWorkersEventsUnderFenceZeroContinueAStreamBegunUnderAClaim() {
        Subscription s = TokenRouterAccess.subscription(listener, -1);
        s.accept(token(0, 1, "a"));
        s.accept(token(1, 1, "b"));
        // The claimed worker died; another decodes the request again without a claim (Redis down).
        s.accept(token(0, 0, "a"));
        s.accept(token(1, 0, "b"));
        s.accept(token(2, 0, "c"));
        assertThat(seen).containsExactly("0:a", "1:b", "2:c");
        // Fence 0 does not lower the fence: a zombie under fence 1 after a takeover under 2 is still stale.
        s.accept(token(3, 2, "d"));
        s.accept(token(4, 1, "zombie"));
        s.accept(result(4, 0));
        assertThat(seen).containsExactly("0:a", "1:b", "2:c", "3:d", "done:4");
    }
}
