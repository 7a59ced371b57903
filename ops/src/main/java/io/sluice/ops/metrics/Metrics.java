package io.sluice.ops.metrics;

import io.micrometer.core.instrument.binder.jvm.JvmCompilationMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

/**
 * The Prometheus registry of a process. Every meter carries the process's {@code role} and
 * {@code instance}, and the JVM's own meters (heap, direct buffers, GC, threads, CPU, time spent
 * compiling) come with it, so a dashboard can put any role's figures beside its memory, and tell a
 * process still warming up (its JIT busy) from one at steady state.
 */
public final class Metrics {
    private Metrics() {
    }

    public static PrometheusMeterRegistry create(String role, String instance) {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        registry.config().commonTags("role", role, "instance", instance);
        new JvmMemoryMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new JvmGcMetrics().bindTo(registry);
        new JvmCompilationMetrics().bindTo(registry);
        return registry;
    }
}
