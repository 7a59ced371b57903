package io.sluice.ingress.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * One thread that drains a bounded queue and hands everything waiting to {@code sink} at once,
 * so that Redis writes made per request cost one pipelined round trip per batch and the threads
 * that offer them (Jetty's, the producer's network thread) never wait on Redis. The sink handles
 * its own failures; an item that does not fit the queue is refused, and the caller decides.
 */
final class Batches<T> implements AutoCloseable {
    private final BlockingQueue<T> queue;
    private final int maxBatch;
    private final Consumer<List<T>> sink;
    private final Thread thread;
    private volatile boolean running = true;

    Batches(String threadName, int capacity, int maxBatch, Consumer<List<T>> sink) {
        this.queue = new ArrayBlockingQueue<>(capacity);
        this.maxBatch = maxBatch;
        this.sink = sink;
        this.thread = new Thread(this::run, threadName);
        thread.setDaemon(true);
        thread.start();
    }

    /** Queues {@code item} for the next batch; false when the queue is full. */
    boolean offer(T item) {
        return queue.offer(item);
    }

    private void run() {
        List<T> batch = new ArrayList<>(maxBatch);
        while (running) {
            try {
                T first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                queue.drainTo(batch, maxBatch - 1);
                sink.accept(batch);
                batch.clear();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
    }
}
