package io.sluice.egress;

import io.sluice.schemas.AvroSerde;
import io.sluice.schemas.InferenceResult;
import io.sluice.schemas.MalformedRecordException;
import io.sluice.schemas.TokenEvent;
import io.sluice.schemas.Topics;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads the tokens topic and hands each event to the subscriptions that follow its request,
 * reading only the partitions this gateway needs.
 *
 * <p>Gateways share a consumer group on the tokens topic, so each gets its own <em>home</em>
 * partitions. A request submitted through this gateway carries one of them as its reply
 * partition, and workers publish its events there: no gateway reads another's traffic. A
 * request routed elsewhere (an attach, a duplicate, a request written straight to Kafka) is read
 * from its partition by a second, group-free reader for as long as a subscription needs it. When
 * a rebalance takes a home partition away while streams still use it, that reader takes over at
 * the exact position the group reader had reached, so live streams never break; when one comes
 * home, the group reader starts where the other left off.
 *
 * <p>One thread owns both consumers; other threads hand it work through a queue.
 */
public final class TokenRouter implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(TokenRouter.class);

    private final KafkaConsumer<String, byte[]> home;
    private final KafkaConsumer<String, byte[]> extra;
    /**
     * The subscriptions of each followed request: the {@link Subscription} itself, or an array
     * of them when several follow one request. Nearly every request has one follower, the socket
     * that submitted it, and subscribing it and removing it again are two map operations on the
     * accept path of every request; a list per request cost an allocation and a copy each time.
     */
    private final Map<RouteKey, Object> byRequest = new ConcurrentHashMap<>();

    /**
     * A request id as the key of {@link #byRequest}. A gateway's ids carry its minting thread's
     * sequence in their 17th to 20th characters (base64url of bytes 12 to 14; see the ingress
     * module's {@code RequestIds}); hashed on those, the streams a thread subscribes one after
     * another take neighbouring slots of the table, where the id's string hash scattered them
     * and every subscribe and remove of the accept path missed the cache at a random slot. Ids of
     * another shape hash as strings; one that only looks like a gateway's still works, at worst
     * sharing slots with its neighbours.
     */
    static final class RouteKey {
        private static final int[] BASE64URL = new int[128];

        static {
            String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            for (int i = 0; i < alphabet.length(); i++) {
                BASE64URL[alphabet.charAt(i)] = i;
            }
        }

        final String id;
        private final int hash;

        RouteKey(String id) {
            this.id = id;
            this.hash = hashOf(id);
        }

        static int hashOf(String id) {
            if (id.length() != 32) {
                return id.hashCode();
            }
            int h = 0;
            for (int i = 16; i < 20; i++) {
                h = h << 6 | BASE64URL[id.charAt(i) & 0x7F];
            }
            return h;
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof RouteKey k && k.hash == hash && k.id.equals(id);
        }
    }

    /**
     * Live subscriptions per partition; the extra reader follows those outside home. Every request
     * adds and removes one, from the threads of every socket at once: striped counters, where one
     * counter per partition had each core take its cache line from the other for every request.
     */
    private final Map<Integer, LongAdder> needs = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<Runnable> commands = new ConcurrentLinkedQueue<>();
    private volatile List<Integer> homePartitions = List.of();
    private final CountDownLatch assigned = new CountDownLatch(1);
    private final AtomicLong recordsRead = new AtomicLong();
    private final Thread thread;
    private volatile boolean running = true;
    private final String bootstrapServers;
    private final String topic;
    private final int partitions;
    /** Replays of history run here: few threads and a bounded queue, so attach storms cannot exhaust the gateway. */
    private final ThreadPoolExecutor replays = new ThreadPoolExecutor(2, 2, 30, TimeUnit.SECONDS,
            new ArrayBlockingQueue<>(256), r -> {
                Thread t = new Thread(r, "sluice-token-replay");
                t.setDaemon(true);
                return t;
            });
    /**
     * Waits out the backoff of a failed replay before handing it back to {@link #replays}. It
     * holds at most one task per partition (a partition in backoff stays in {@link #replaying}),
     * so its queue is bounded by the partition count.
     */
    private final ScheduledThreadPoolExecutor replayRetries = new ScheduledThreadPoolExecutor(1, r -> {
        Thread t = new Thread(r, "sluice-token-replay-retry");
        t.setDaemon(true);
        return t;
    });
    /** Backoff of a partition's replay after its first failure, doubled per failure up to the maximum. */
    static final long REPLAY_BACKOFF_INITIAL_MS = 100;
    static final long REPLAY_BACKOFF_MAX_MS = 5_000;
    /** Failures in a row of each partition's replay; reset by the first replay that completes. */
    private final Map<Integer, Integer> replayFailures = new HashMap<>();
    private final Supplier<KafkaConsumer<String, byte[]>> historyReaderFactory;

    private TokenRouter(String bootstrapServers, Topics topics, String groupId, String clientId,
            Supplier<KafkaConsumer<String, byte[]>> historyReaderFactory) {
        this.bootstrapServers = bootstrapServers;
        this.historyReaderFactory = historyReaderFactory != null ? historyReaderFactory : this::defaultHistoryReader;
        this.topic = topics.tokens();
        // fetch.max.wait.ms stays at Kafka's default (500 ms): with fetch.min.bytes at 1 the broker
        // answers a waiting fetch as soon as a token is appended, so a shorter wait buys no latency;
        // it only made an idle gateway fetch a hundred times a second.
        this.home = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers,
                ConsumerConfig.GROUP_ID_CONFIG, groupId,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest",
                ConsumerConfig.CLIENT_ID_CONFIG, clientId),
                new StringDeserializer(), new ByteArrayDeserializer());
        this.extra = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.CLIENT_ID_CONFIG, clientId + "-extra"),
                new StringDeserializer(), new ByteArrayDeserializer());
        int n = home.partitionsFor(topic, Duration.ofSeconds(30)).size();
        if (n == 0) {
            throw new IllegalStateException("Topic " + topic + " does not exist");
        }
        this.partitions = n;
        this.thread = new Thread(this::run, "sluice-token-router");
    }

    /**
     * Starts a router in the gateways' group {@code groupId} and waits (up to 30 s) until the group
     * gave it its home partitions, so requests submitted from now on can be routed home.
     */
    public static TokenRouter start(String bootstrapServers, Topics topics, String groupId, String clientId) {
        return start(bootstrapServers, topics, groupId, clientId, null);
    }

    /** As {@link #start(String, Topics, String, String)}, building the readers of history with {@code historyReaderFactory}. */
    static TokenRouter start(String bootstrapServers, Topics topics, String groupId, String clientId,
            Supplier<KafkaConsumer<String, byte[]>> historyReaderFactory) {
        TokenRouter router = new TokenRouter(bootstrapServers, topics, groupId, clientId, historyReaderFactory);
        router.thread.start();
        try {
            if (!router.assigned.await(30, TimeUnit.SECONDS)) {
                log.warn("No home partitions after 30 s; requests are routed by key until the group assigns some");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return router;
    }

    /**
     * The partition the next request submitted here should carry as its reply route: a home one,
     * picked at random so the threads of every socket share no counter, or -1 (by key).
     */
    public int replyPartition() {
        List<Integer> h = homePartitions;
        int n = h.size();
        return n == 0 ? -1 : n == 1 ? h.get(0) : h.get(java.util.concurrent.ThreadLocalRandom.current().nextInt(n));
    }

    /** Records read from the tokens topic by this gateway so far (for read-amplification figures). */
    public long recordsRead() {
        return recordsRead.get();
    }

    /** The tokens partition a request's events go to: its reply partition, else Kafka's default partitioner. */
    public int partitionOf(String requestId, int replyPartition) {
        if (replyPartition >= 0 && replyPartition < partitions) {
            return replyPartition;
        }
        return Utils.toPositive(Utils.murmur2(requestId.getBytes(StandardCharsets.UTF_8))) % partitions;
    }

    /**
     * Follows a request submitted through this gateway, delivering seqs after {@code afterSeq}.
     * Subscribe before the request is produced so no event can slip past.
     */
    public Subscription subscribe(String requestId, int replyPartition, int afterSeq, StreamListener listener) {
        int partition = partitionOf(requestId, replyPartition);
        if (!homePartitions.contains(partition)) {
            // Not read live here yet: bridge the moments until it is from the partition's history.
            return subscribeFromHistory(requestId, replyPartition, afterSeq, listener, System.currentTimeMillis());
        }
        Subscription s = add(new Subscription(requestId, partition, afterSeq, listener, this));
        return s;
    }

    /**
     * Follows {@code requestId} from its beginning, also when some or all of its events were
     * produced before this call: the live stream is subscribed first, then the request's
     * partition is read from {@code sinceMillis} up to its end as it was right after subscribing,
     * and the live reading of that partition starts no later than that end. Nothing falls between
     * the two, and the subscription drops what both deliver.
     *
     * @param sinceMillis a time at or before the request's first event (its creation time)
     * @throws RejectedExecutionException when too many replays are under way
     */
    public Subscription subscribeFromHistory(String requestId, int replyPartition, int afterSeq, StreamListener listener,
            long sinceMillis) {
        int partition = partitionOf(requestId, replyPartition);
        Subscription s = add(new Subscription(requestId, partition, afterSeq, listener, this));
        boolean schedule;
        synchronized (pendingReplays) {
            List<PendingReplay> pending = pendingReplays.computeIfAbsent(partition, k -> new ArrayList<>());
            schedule = pending.isEmpty() && !replaying.contains(partition);
            pending.add(new PendingReplay(s, sinceMillis));
        }
        if (schedule) {
            try {
                replays.execute(() -> replayPartition(partition));
            } catch (RejectedExecutionException e) {
                synchronized (pendingReplays) {
                    pendingReplays.remove(partition);
                }
                remove(s);
                throw e;
            }
        }
        return s;
    }

    /** A subscription waiting for the history of its partition. */
    private record PendingReplay(Subscription subscription, long sinceMillis) {
    }

    /** Subscriptions waiting for a replay, per partition; one replay per partition serves them all. */
    private final Map<Integer, List<PendingReplay>> pendingReplays = new HashMap<>();
    private final Set<Integer> replaying = new HashSet<>();

    /**
     * Replays one partition for every subscription waiting on it, in one read: an attach storm
     * (a gateway's clients all re-attaching at once) costs one pass per partition, not one per
     * client.
     *
     * <p>A replay that fails (the broker unreachable past the reader's timeout, say) is not
     * dropped: its subscriptions still waiting go back to the front of the partition's queue and
     * the partition is replayed again after a backoff, with whoever joined meanwhile. An attached
     * client waits for its history as a live stream waits for the broker, instead of forever.
     * What the failed pass delivered already, the subscription drops as duplicates.
     */
    private void replayPartition(int partition) {
        while (true) {
            List<PendingReplay> batch;
            synchronized (pendingReplays) {
                batch = pendingReplays.remove(partition);
                if (batch == null || batch.isEmpty()) {
                    replaying.remove(partition);
                    return;
                }
                replaying.add(partition);
            }
            if (replay(partition, batch)) {
                synchronized (pendingReplays) {
                    replayFailures.remove(partition);
                }
                continue;
            }
            int failures;
            synchronized (pendingReplays) {
                List<PendingReplay> again = new ArrayList<>();
                for (PendingReplay p : batch) {
                    if (!p.subscription().isDone()) {
                        again.add(p);
                    }
                }
                List<PendingReplay> joined = pendingReplays.remove(partition);
                if (joined != null) {
                    again.addAll(joined);
                }
                if (again.isEmpty()) {
                    replaying.remove(partition);
                    return;
                }
                pendingReplays.put(partition, again);
                failures = replayFailures.merge(partition, 1, Integer::sum);
            }
            // The partition stays in `replaying` through the backoff, so a new subscriber joins the
            // queue instead of starting a second replay beside the retry.
            retryReplay(partition, Math.min(REPLAY_BACKOFF_MAX_MS,
                    REPLAY_BACKOFF_INITIAL_MS << Math.min(failures - 1, 16)));
            return;
        }
    }

    private void retryReplay(int partition, long delayMs) {
        if (!running) {
            return;
        }
        try {
            replayRetries.schedule(() -> {
                try {
                    replays.execute(() -> replayPartition(partition));
                } catch (RejectedExecutionException full) {
                    // Too many replays queued right now: wait once more rather than lose these.
                    retryReplay(partition, REPLAY_BACKOFF_MAX_MS);
                }
            }, delayMs, TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException closing) {
            // The router is closing; its subscriptions end with it.
        }
    }

    /** Reads {@code batch}'s history of {@code partition}; false when the read failed and should be tried again. */
    private boolean replay(int partition, List<PendingReplay> batch) {
        TopicPartition tp = new TopicPartition(topic, partition);
        Map<String, List<Subscription>> subs = new HashMap<>();
        long since = Long.MAX_VALUE;
        for (PendingReplay p : batch) {
            subs.computeIfAbsent(p.subscription().requestId(), k -> new ArrayList<>()).add(p.subscription());
            since = Math.min(since, p.sinceMillis());
        }
        KafkaConsumer<String, byte[]> history = null;
        try {
            history = historyReader.get();
            history.assign(List.of(tp));
            // Every subscription of the batch was registered before this end offset was read.
            long end = history.endOffsets(List.of(tp)).get(tp);
            // Live reading of the partition must start at or before `end`.
            commands.add(() -> follow(partition, end));
            // Producer and broker clocks may differ a little: start somewhat before the creation time.
            var start = history.offsetsForTimes(Map.of(tp, Math.max(0, since - 5_000))).get(tp);
            if (start == null) {
                return true;
            }
            history.seek(tp, start.offset());
            while (running && history.position(tp) < end
                    && subs.values().stream().flatMap(List::stream).anyMatch(s -> !s.isDone())) {
                for (ConsumerRecord<String, byte[]> record : history.poll(Duration.ofMillis(200))) {
                    if (record.offset() >= end) {
                        break;
                    }
                    List<Subscription> targets = subs.get(record.key());
                    if (targets != null && record.value() != null) {
                        try {
                            SpecificRecord event = AvroSerde.anyDeserializer().deserialize(topic, record.value());
                            targets.forEach(t -> dispatch(t, event));
                        } catch (MalformedRecordException e) {
                            log.warn("Skipping undecodable event at {}-{}@{}", record.topic(), record.partition(),
                                    record.offset());
                        }
                    }
                }
            }
            return true;
        } catch (RuntimeException e) {
            if (!running) {
                return true; // closing: a wakeup, nothing to retry
            }
            log.warn("Replay of partition {} for {} subscriptions failed, to be tried again: {}", partition,
                    batch.size(), e.toString());
            // Start the next replay on a fresh reader rather than one in an unknown state.
            historyReader.remove();
            if (history != null) {
                historyReaders.remove(history);
                history.close(Duration.ZERO);
            }
            return false;
        }
    }

    /**
     * One group-free reader per replay thread, kept between replays: building a consumer (its
     * metrics, its connection) cost more CPU than the replay itself, and an attach storm after a
     * gateway loss runs hundreds of replays.
     */
    private final List<KafkaConsumer<String, byte[]>> historyReaders = new CopyOnWriteArrayList<>();
    private final ThreadLocal<KafkaConsumer<String, byte[]>> historyReader = ThreadLocal.withInitial(this::newHistoryReader);

    private KafkaConsumer<String, byte[]> newHistoryReader() {
        KafkaConsumer<String, byte[]> c = historyReaderFactory.get();
        historyReaders.add(c);
        return c;
    }

    private KafkaConsumer<String, byte[]> defaultHistoryReader() {
        return new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 2000,
                ConsumerConfig.CLIENT_ID_CONFIG, "sluice-token-replay"),
                new StringDeserializer(), new ByteArrayDeserializer());
    }

    /** Registers {@code s} with its request and its partition, as {@link #remove} undoes. */
    private Subscription add(Subscription s) {
        RouteKey key = new RouteKey(s.requestId());
        s.routeKey = key;
        if (byRequest.putIfAbsent(key, s) != null) {
            byRequest.compute(key, (k, v) -> {
                if (v == null) {
                    return s;
                }
                Subscription[] now = v instanceof Subscription one ? new Subscription[] {one} : (Subscription[]) v;
                Subscription[] grown = Arrays.copyOf(now, now.length + 1);
                grown[now.length] = s;
                return grown;
            });
        }
        LongAdder n = needs.get(s.partition());
        if (n == null) {
            n = needs.computeIfAbsent(s.partition(), k -> new LongAdder());
        }
        n.increment();
        return s;
    }

    void remove(Subscription s) {
        RouteKey key = s.routeKey;
        if (key == null) {
            return; // never added
        }
        boolean removed = byRequest.remove(key, s);
        if (!removed) {
            boolean[] found = {false};
            byRequest.computeIfPresent(key, (k, v) -> {
                if (!(v instanceof Subscription[] many)) {
                    return v;
                }
                List<Subscription> rest = new ArrayList<>(Arrays.asList(many));
                found[0] = rest.remove(s);
                return rest.isEmpty() ? null : rest.size() == 1 ? rest.get(0) : rest.toArray(new Subscription[0]);
            });
            removed = found[0];
        }
        if (removed) {
            LongAdder n = needs.get(s.partition());
            if (n != null) {
                n.decrement();
                // Only the extra reader cares when a partition's last stream ends, and it reads none
                // of home; a partition leaving home meanwhile is caught by the router's periodic check.
                if (!homePartitions.contains(s.partition()) && n.sum() <= 0) {
                    commands.add(this::reconcileExtra);
                }
            }
        }
    }

    /** Requests currently followed. */
    public int activeRequests() {
        return byRequest.size();
    }

    // ---- router thread -------------------------------------------------------------------

    /** Makes sure {@code partition} is read live from no later than {@code atMost} (-1: from the end). */
    private void follow(int partition, long atMost) {
        TopicPartition tp = new TopicPartition(topic, partition);
        if (home.assignment().contains(tp)) {
            if (atMost >= 0 && home.position(tp) > atMost) {
                home.seek(tp, atMost);
            }
            return;
        }
        Set<TopicPartition> now = new HashSet<>(extra.assignment());
        if (now.contains(tp)) {
            if (atMost >= 0 && extra.position(tp) > atMost) {
                extra.seek(tp, atMost);
            }
            return;
        }
        now.add(tp);
        extra.assign(now);
        if (atMost >= 0) {
            extra.seek(tp, atMost);
        } else {
            extra.seekToEnd(List.of(tp));
            extra.position(tp);
        }
    }

    /** Drops from the extra reader every partition no subscription needs any more, or that came home. */
    private void reconcileExtra() {
        Set<TopicPartition> keep = new HashSet<>();
        for (TopicPartition tp : extra.assignment()) {
            LongAdder n = needs.get(tp.partition());
            if (n != null && n.sum() > 0 && !home.assignment().contains(tp)) {
                keep.add(tp);
            }
        }
        if (!keep.equals(extra.assignment())) {
            extra.assign(keep);
        }
    }

    /** How often the extra reader drops partitions no stream needs, besides when a stream ends. */
    private static final long RECONCILE_NANOS = TimeUnit.SECONDS.toNanos(1);

    private void run() {
        home.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
                // Streams still routed to a partition going away keep being read, from exactly here.
                for (TopicPartition tp : revoked) {
                    LongAdder n = needs.get(tp.partition());
                    if (n != null && n.sum() > 0) {
                        long position = home.position(tp);
                        Set<TopicPartition> now = new HashSet<>(extra.assignment());
                        now.add(tp);
                        extra.assign(now);
                        extra.seek(tp, position);
                    }
                }
                homePartitions = List.of();
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> added) {
                Set<TopicPartition> moved = new HashSet<>();
                for (TopicPartition tp : added) {
                    if (extra.assignment().contains(tp)) {
                        // Start where the extra reader is, so nothing between the two is skipped.
                        home.seek(tp, extra.position(tp));
                        moved.add(tp);
                    } else {
                        home.seekToEnd(List.of(tp));
                        home.position(tp);
                    }
                }
                if (!moved.isEmpty()) {
                    Set<TopicPartition> keep = new HashSet<>(extra.assignment());
                    keep.removeAll(moved);
                    extra.assign(keep);
                }
                List<Integer> h = new ArrayList<>();
                home.assignment().forEach(tp -> h.add(tp.partition()));
                homePartitions = List.copyOf(h);
                assigned.countDown();
            }
        });
        try {
            long reconciledAt = System.nanoTime();
            while (running) {
                Runnable command;
                while ((command = commands.poll()) != null) {
                    command.run();
                }
                if (!extra.assignment().isEmpty() && System.nanoTime() - reconciledAt > RECONCILE_NANOS) {
                    // A stream that ended on a partition while it was leaving home did not ask for this.
                    reconcileExtra();
                    reconciledAt = System.nanoTime();
                }
                try {
                    deliver(home.poll(Duration.ofMillis(extra.assignment().isEmpty() ? 100 : 10)));
                } catch (WakeupException wake) {
                    if (!running) {
                        break;
                    }
                    continue;
                }
                if (!extra.assignment().isEmpty()) {
                    deliver(extra.poll(Duration.ofMillis(10)));
                }
            }
        } catch (RuntimeException e) {
            log.error("Token router failed", e);
        } finally {
            home.close(Duration.ofSeconds(2));
            extra.close(Duration.ofSeconds(2));
        }
    }

    private void deliver(Iterable<ConsumerRecord<String, byte[]>> records) {
        for (ConsumerRecord<String, byte[]> record : records) {
            recordsRead.incrementAndGet();
            Object subs = record.key() == null ? null : byRequest.get(new RouteKey(record.key()));
            if (subs == null || record.value() == null) {
                continue;
            }
            SpecificRecord event;
            try {
                event = AvroSerde.anyDeserializer().deserialize(record.topic(), record.value());
            } catch (MalformedRecordException e) {
                log.warn("Skipping undecodable event at {}-{}@{}: {}", record.topic(), record.partition(),
                        record.offset(), e.getMessage());
                continue;
            }
            if (subs instanceof Subscription one) {
                dispatch(one, event);
            } else {
                for (Subscription s : (Subscription[]) subs) {
                    dispatch(s, event);
                }
            }
        }
    }

    private static void dispatch(Subscription s, SpecificRecord event) {
        try {
            if (event instanceof TokenEvent t) {
                s.accept(t);
            } else if (event instanceof InferenceResult r) {
                s.accept(r);
            }
        } catch (RuntimeException e) {
            log.warn("Listener of {} failed; dropping its subscription", s.requestId(), e);
            s.cancel();
        }
    }

    @Override
    public void close() {
        running = false;
        replayRetries.shutdownNow();
        replays.shutdownNow();
        historyReaders.forEach(KafkaConsumer::wakeup);
        home.wakeup();
        try {
            thread.join(5000);
            if (replays.awaitTermination(5, TimeUnit.SECONDS)) {
                historyReaders.forEach(c -> c.close(Duration.ZERO));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Home partitions this gateway reads, for tests and figures. */
    public List<Integer> homePartitions() {
        return homePartitions;
    }

    /** Partition counts, as seen at start. */
    int partitionCount() {
        return partitions;
    }

    Map<Integer, Long> needs() {
        Map<Integer, Long> out = new HashMap<>();
        needs.forEach((p, n) -> out.put(p, n.sum()));
        return out;
    }
}
