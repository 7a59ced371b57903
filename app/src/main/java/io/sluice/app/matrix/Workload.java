package io.sluice.app.matrix;

/** What a client asks for, each cycle. */
enum Workload {
    /** A short prompt, a short generation. */
    SHORT(1, 16),
    /** A long prompt (most of the bundled model's 256-token context), a few tokens out: prefill-bound. */
    LONG_PROMPT(1, 8),
    /** Three turns; each resends the conversation so far plus a new line. */
    MULTI_TURN(3, 12);

    private static final String[] LINES = {"The river flows past the old mill and", "Then the lock keeper said that",
        "In the evening the barges", "The miller counted the sacks while"};
    private final int turns;
    private final int maxTokens;

    Workload(int turns, int maxTokens) {
        this.turns = turns;
        this.maxTokens = maxTokens;
    }

    int turns() {
        return turns;
    }

    int maxTokens() {
        return maxTokens;
    }

    String prompt(int turn, String history) {
        return switch (this) {
            case SHORT -> LINES[0];
            case LONG_PROMPT -> String.join(" ", java.util.Collections.nCopies(5, String.join(" ", LINES))) + " " + LINES[1];
            case MULTI_TURN -> (history.isEmpty() ? "" : history + " ") + LINES[turn % LINES.length];
        };
    }
}
