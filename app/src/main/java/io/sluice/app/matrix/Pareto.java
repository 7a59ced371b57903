package io.sluice.app.matrix;

import java.util.ArrayList;
import java.util.List;

/**
 * The configurations no other beats on every objective at once: lower latency, lower memory,
 * higher completion rate. A point is dominated when another is at least as good on all three
 * and strictly better on one.
 */
final class Pareto {
    private Pareto() {
    }

    /** One configuration's figures. */
    record Point(String label, double latencyMs, double memoryMb, double completedPerSecond) {
        boolean dominates(Point o) {
            boolean noWorse = latencyMs <= o.latencyMs && memoryMb <= o.memoryMb && completedPerSecond >= o.completedPerSecond;
            boolean better = latencyMs < o.latencyMs || memoryMb < o.memoryMb || completedPerSecond > o.completedPerSecond;
            return noWorse && better;
        }
    }

    static List<Point> front(List<Point> points) {
        List<Point> front = new ArrayList<>();
        for (Point p : points) {
            if (Double.isNaN(p.latencyMs()) || p.completedPerSecond() <= 0) {
                continue;
            }
            boolean dominated = points.stream().anyMatch(o -> o != p && !Double.isNaN(o.latencyMs()) && o.dominates(p));
            if (!dominated) {
                front.add(p);
            }
        }
        return front;
    }
}
