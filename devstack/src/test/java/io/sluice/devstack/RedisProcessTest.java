package io.sluice.devstack;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Redis that `sluice dev` and the tests start never outlives its owner, whatever signals its process group gets. */
class RedisProcessTest {

    @Test
    void hangupAndQuitSentToTheWholeGroupLeaveRedisOwnedAndCloseStillEndsIt(@TempDir Path dir) throws Exception {
        long server;
        try (RedisProcess redis = RedisProcess.start(dir, 0)) {
            server = redis.pid();
            assertThat(server).as("redis-server's pid").isPositive();
            assertThat(ProcessHandle.of(server).flatMap(h -> h.info().command()).orElse(""))
                    .as("the process pid() names, not one of its watchdog's sleeps").contains("redis");
            long watchdog = ProcessHandle.of(server).flatMap(ProcessHandle::parent).map(ProcessHandle::pid).orElseThrow();

            // A closed terminal sends HUP to its process group; `kill -3` or jcmd's attach, QUIT.
            signal(watchdog, "HUP");
            signal(watchdog, "QUIT");
            Thread.sleep(1500);

            assertThat(ProcessHandle.of(watchdog).map(ProcessHandle::isAlive)).as("watchdog").isEqualTo(Optional.of(true));
            assertThat(ping(redis.port())).isEqualTo("+PONG");
        }
        // Gone when close returns, not some time after: a dev run that exited leaves no Redis at all.
        assertThat(ProcessHandle.of(server).map(ProcessHandle::isAlive).orElse(false)).as("redis-server after close").isFalse();
    }

    private static void signal(long pid, String name) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + name, String.valueOf(pid)).inheritIO().start();
        assertThat(kill.waitFor()).isZero();
    }

    private static String ping(int port) throws Exception {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 2000);
            s.setSoTimeout(2000);
            OutputStream out = s.getOutputStream();
            out.write("PING\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            StringBuilder line = new StringBuilder();
            for (int c = in.read(); c != -1 && c != '\r'; c = in.read()) {
                line.append((char) c);
            }
            return line.toString();
        }
    }
}
