package io.sluice.egress;

/** Builds subscriptions without a broker, for tests of the delivery rules alone. */
final class TokenRouterAccess {
    private TokenRouterAccess() {
    }

    static Subscription subscription(StreamListener listener, int afterSeq) {
        return new Subscription("r", 0, afterSeq, listener, null);
    }
}
