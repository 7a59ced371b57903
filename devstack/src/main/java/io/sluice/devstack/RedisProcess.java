package io.sluice.devstack;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import redis.embedded.core.ExecutableProvider;

/**
 * A real Redis server as a child process: {@code redis-server} from the PATH when there is one,
 * otherwise the binary bundled in {@code com.github.codemonstur:embedded-redis}. The child is
 * stopped by {@link #close()} and, should this JVM die, by a shutdown hook; it also gets
 * {@code --daemonize no} so it never outlives its parent's process group.
 */
public final class RedisProcess implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RedisProcess.class);

    private final int port;
    private final Process process;
    private final Path dataDir;
    private final Thread hook;
    /**
     * redis-server itself, by the pid its watchdog wrote; ended by {@link #close()} and the
     * shutdown hook even if the watchdog is gone.
     */
    private volatile ProcessHandle server;

    private RedisProcess(int port, Process process, Path dataDir) {
        this.port = port;
        this.process = process;
        this.dataDir = dataDir;
        this.hook = new Thread(() -> {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
            ProcessHandle s = server;
            if (s != null) {
                s.destroyForcibly();
            }
        }, "redis-reaper");
        Runtime.getRuntime().addShutdownHook(hook);
    }

    /** Starts Redis on loopback; {@code port} 0 picks a free one. Persistence goes to {@code dataDir}. */
    public static RedisProcess start(Path dataDir, int port) throws IOException, InterruptedException {
        return start(dataDir, port, List.of());
    }

    /** As {@link #start(Path, int)}, with extra {@code redis-server} arguments. */
    public static RedisProcess start(Path dataDir, int port, List<String> extraArgs) throws IOException, InterruptedException {
        Files.createDirectories(dataDir);
        int p = port == 0 ? EmbeddedKafka.freePort() : port;
        String executable = executable(dataDir);
        List<String> redisArgs = new ArrayList<>(List.of(executable, "--port", String.valueOf(p), "--bind", "127.0.0.1",
                "--daemonize", "no", "--dir", dataDir.toAbsolutePath().toString(), "--save", "", "--appendonly", "no",
                "--protected-mode", "yes"));
        redisArgs.addAll(extraArgs);
        // A small shell watchdog owns redis-server and ends it when this JVM is gone, even after a
        // kill -9 that runs no shutdown hook: no stray server is ever left behind. It ignores the
        // signals a whole process group gets that do not mean "stop Redis" (a closed terminal's
        // HUP, which ends the JVM so the loop below sees it go; a thread dump's QUIT): with the
        // shell's default action for them it would die and leave redis-server, which ignores
        // both, running without an owner.
        StringBuilder quoted = new StringBuilder();
        for (String arg : redisArgs) {
            quoted.append(shellQuoted(arg)).append(' ');
        }
        long parent = ProcessHandle.current().pid();
        // The watchdog writes redis-server's pid itself: telling it from the watchdog's other
        // children by name fails where redis-server is a link to another binary (Debian's is).
        Path pidFile = dataDir.resolve("redis-server.pid");
        Files.deleteIfExists(pidFile);
        String script = "trap '' HUP QUIT; " + quoted + "& r=$!; echo $r > " + shellQuoted(pidFile.toAbsolutePath().toString())
                + "; trap 'kill $r 2>/dev/null; exit 0' TERM INT; "
                + "while kill -0 " + parent + " 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done; "
                + "kill $r 2>/dev/null; wait $r";
        Process process = new ProcessBuilder("sh", "-c", script).redirectErrorStream(true)
                .redirectOutput(dataDir.resolve("redis.log").toFile()).start();
        RedisProcess redis = new RedisProcess(p, process, dataDir);
        redis.awaitListening(TimeUnit.SECONDS.toMillis(20));
        redis.server = redis.awaitServer(pidFile);
        log.info("Redis ({}) ready on 127.0.0.1:{}", executable, p);
        return redis;
    }

    /** {@code s} as one word for {@code sh}, whatever it holds. */
    private static String shellQuoted(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    /** redis-server's handle, from the pid the watchdog writes as soon as it has started it. */
    private ProcessHandle awaitServer(Path pidFile) throws IOException, InterruptedException {
        long deadline = System.currentTimeMillis() + 2000;
        String pid = "";
        while (pid.isEmpty() && System.currentTimeMillis() < deadline) {
            pid = Files.exists(pidFile) ? Files.readString(pidFile).trim() : "";
            if (pid.isEmpty()) {
                Thread.sleep(10);
            }
        }
        if (pid.isEmpty()) {
            process.destroyForcibly();
            throw new IOException("the Redis watchdog wrote no pid to " + pidFile);
        }
        return ProcessHandle.of(Long.parseLong(pid)).orElseThrow(() -> new IOException(
                "redis-server exited right after it listened; see " + dataDir.resolve("redis.log")));
    }

    /** The redis-server to run: the PATH first, then the bundled binary. */
    static String executable(Path dataDir) throws IOException {
        try {
            return ExecutableProvider.newExecutableInPath("redis-server").get().getAbsolutePath();
        } catch (IOException notOnPath) {
            // Extracted beside the data, once, rather than into a new temporary directory per start.
            File bundled = ExecutableProvider.newJarResourceProvider(dataDir.toFile()).get();
            if (!bundled.canExecute() && !bundled.setExecutable(true)) {
                throw new IOException("Cannot make bundled redis-server executable: " + bundled);
            }
            return bundled.getAbsolutePath();
        }
    }

    private void awaitListening(long timeoutMs) throws IOException, InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            if (!process.isAlive()) {
                throw new IOException("redis-server exited with " + process.exitValue() + "; see "
                        + dataDir.resolve("redis.log"));
            }
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 200);
                return;
            } catch (IOException notYet) {
                Thread.sleep(20);
            }
        }
        process.destroyForcibly();
        throw new IOException("redis-server did not listen on port " + port + " within " + timeoutMs + " ms");
    }

    public int port() {
        return port;
    }

    public String uri() {
        return "redis://127.0.0.1:" + port;
    }

    /** Pid of redis-server itself (not of its watchdog), or -1 once it is gone. */
    public long pid() {
        ProcessHandle s = server;
        return s != null && s.isAlive() ? s.pid() : -1L;
    }

    public boolean isAlive() {
        return process.isAlive() && process.descendants().anyMatch(ProcessHandle::isAlive);
    }

    @Override
    public void close() {
        process.descendants().forEach(ProcessHandle::destroy);
        process.destroy();
        ProcessHandle s = server;
        if (s != null) {
            s.destroy();
        }
        try {
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
            // The watchdog ends first; redis-server takes a moment more to shut down. Waited for
            // here, so that a dev run that has exited has left no Redis running, not even briefly.
            if (s != null) {
                try {
                    s.onExit().get(5, TimeUnit.SECONDS);
                } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException slow) {
                    s.destroyForcibly();
                }
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            if (s != null) {
                s.destroyForcibly();
            }
            Thread.currentThread().interrupt();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // The hook is running or has run; nothing left to remove.
        }
    }
}
