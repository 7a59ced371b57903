package io.sluice.worker.internal;

import java.util.Comparator;
import java.util.PriorityQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Predicate;

/**
 * A bounded priority queue between the consumer thread and the decode thread. When it is full,
 * {@link #offer} refuses and the consumer pauses its partitions instead of buffering more.
 */
public final class WorkQueue<T> {
    private final int capacity;
    private final PriorityQueue<Entry<T>> heap;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private long arrivals;

    private record Entry<T>(T item, int priority, long arrival) {
    }

    public WorkQueue(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1");
        }
        this.capacity = capacity;
        this.heap = new PriorityQueue<>(Comparator.<Entry<T>>comparingInt(e -> -e.priority())
                .thenComparingLong(Entry::arrival));
    }

    /** Adds an item unless the queue is full; higher priority leaves first, then arrival order. */
    public boolean offer(T item, int priority) {
        lock.lock();
        try {
            if (heap.size() >= capacity) {
                return false;
            }
            heap.add(new Entry<>(item, priority, arrivals++));
            notEmpty.signal();
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** The most urgent item, waiting up to {@code timeout} for one; null if none came. */
    public T poll(long timeout, TimeUnit unit) throws InterruptedException {
        lock.lock();
        try {
            long nanos = unit.toNanos(timeout);
            while (heap.isEmpty()) {
                if (nanos <= 0) {
                    return null;
                }
                nanos = notEmpty.awaitNanos(nanos);
            }
            return heap.poll().item();
        } finally {
            lock.unlock();
        }
    }

    public void removeIf(Predicate<T> filter) {
        lock.lock();
        try {
            heap.removeIf(e -> filter.test(e.item()));
        } finally {
            lock.unlock();
        }
    }

    public int size() {
        lock.lock();
        try {
            return heap.size();
        } finally {
            lock.unlock();
        }
    }

    public boolean isFull() {
        return size() >= capacity;
    }
}
