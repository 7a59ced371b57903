package io.sluice.app;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** Every command answers {@code --help}, and its help text is printed as written. */
class CommandLineHelpTest {

    @Test
    void everyCommandAnswersHelp() {
        for (List<String> path : commands()) {
            List<String> args = new ArrayList<>(path);
            args.add("--help");
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            int code = Sluice.commandLine()
                    .setOut(new PrintWriter(out))
                    .setErr(new PrintWriter(err))
                    .execute(args.toArray(String[]::new));
            assertThat(code).as("sluice %s exit code; stderr: %s", args, err).isZero();
            assertThat(out.toString()).as("sluice %s", args).startsWith("Usage: sluice");
        }
    }

    /**
     * Picocli runs each description through {@link String#format}; a bare percent sign makes it
     * give up on that text and warn on the process's standard error, under the help.
     */
    @Test
    void helpIsPrintedWithoutWarnings() {
        java.io.PrintStream stderr = System.err;
        java.io.ByteArrayOutputStream warnings = new java.io.ByteArrayOutputStream();
        System.setErr(new java.io.PrintStream(warnings, true, java.nio.charset.StandardCharsets.UTF_8));
        try {
            for (List<String> path : commands()) {
                StringWriter out = new StringWriter();
                CommandLine cl = Sluice.commandLine().setOut(new PrintWriter(out));
                for (String name : path) {
                    cl = cl.getSubcommands().get(name);
                }
                cl.usage(new PrintWriter(out));
                assertThat(out.toString()).as("sluice %s", path).doesNotContain("%n");
            }
        } finally {
            System.setErr(stderr);
        }
        assertThat(warnings.toString(java.nio.charset.StandardCharsets.UTF_8)).isEmpty();
    }

    private static List<List<String>> commands() {
        List<List<String>> paths = new ArrayList<>();
        walk(Sluice.commandLine(), cl -> {
            List<String> path = new ArrayList<>();
            for (CommandLine c = cl; c.getParent() != null; c = c.getParent()) {
                path.add(0, c.getCommandName());
            }
            paths.add(path);
        });
        assertThat(paths).hasSizeGreaterThan(10);
        return paths;
    }

    private static void walk(CommandLine cl, java.util.function.Consumer<CommandLine> visit) {
        visit.accept(cl);
        cl.getSubcommands().values().forEach(sub -> walk(sub, visit));
    }
}
