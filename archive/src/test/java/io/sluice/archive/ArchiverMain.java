package io.sluice.archive;

import io.sluice.schemas.CommonConfig;
import java.time.Duration;
import java.util.Map;

/** An archiver in a JVM of its own, so a test can kill -9 it: args bootstrap, prefix, dir. */
public final class ArchiverMain {
    public static void main(String[] args) throws Exception {
        Archiver a = Archiver.start(new ArchiverConfig(Map.of(CommonConfig.BOOTSTRAP_SERVERS, args[0],
                CommonConfig.TOPIC_PREFIX, args[1], ArchiverConfig.DIR, args[2],
                ArchiverConfig.GROUP_ID, args[1] + "archiver", ArchiverConfig.SESSION_TIMEOUT_MS, 6000,
                ArchiverConfig.tierKey(io.sluice.schemas.Tier.operational, "flush.ms"), 300L)));
        if (a.awaitAssignment(Duration.ofSeconds(60))) {
            System.out.println("ARCHIVER READY");
        }
        Thread.currentThread().join();
    }
}
