package io.sluice.app;

import io.sluice.app.matrix.MatrixBench;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code sluice bench matrix}. */
@Command(name = "matrix", description = "Polling, SSE and WebSocket at a ladder of concurrent clients, over three "
        + "workloads: throughput, latency, memory per role, cold start, knees and the Pareto front; JSON, charts and a "
        + "Markdown report.")
final class BenchMatrixCommand implements Callable<Integer> {
    @Option(names = "--ladder", defaultValue = "100,1000,5000", split = ",", description = "Concurrent clients per cell.")
    List<Integer> ladder;
    @Option(names = "--transports", defaultValue = "poll,sse,ws", split = ",", description = "poll, sse, ws.")
    List<String> transports;
    @Option(names = "--workloads", defaultValue = "short,long_prompt,multi_turn", split = ",",
            description = "short, long_prompt, multi_turn.")
    List<String> workloads;
    @Option(names = "--batch", defaultValue = "32", split = ",", description = "worker.max.batch values (a worker per value).")
    List<Integer> batches;
    @Option(names = "--duration", defaultValue = "PT20S", description = "Time per cell (ISO-8601).")
    Duration duration;
    @Option(names = "--poll-interval", defaultValue = "PT0.2S", description = "How often polling clients ask.")
    Duration pollInterval;
    @Option(names = "--model", defaultValue = "classpath:sluice-tiny", description = "Model the worker serves.")
    String model;
    @Option(names = "--large-model", description = "A larger model directory, for its cold start only "
            + "(e.g. the distilgpt2-shaped one of model/README.md).")
    String largeModel;
    @Option(names = "--gateway-heap", defaultValue = "1g", description = "Gateway -Xmx.")
    String gatewayHeap;
    @Option(names = "--worker-heap", defaultValue = "1g", description = "Worker -Xmx.")
    String workerHeap;
    @Option(names = "--out", defaultValue = "target/bench-matrix.json", description = "JSON results.")
    Path out;
    @Option(names = "--report", description = "Markdown report to write (e.g. docs/matrix.md).")
    Path report;
    @Option(names = "--charts", description = "Directory for PNG charts (e.g. docs/matrix).")
    Path charts;

    @Override
    public Integer call() throws Exception {
        System.setProperty("java.awt.headless", "true");
        String command = "java -jar app/target/sluice.jar bench matrix --ladder " + join(ladder) + " --transports "
                + String.join(",", transports) + " --workloads " + String.join(",", workloads) + " --batch " + join(batches)
                + " --duration " + duration + " --poll-interval " + pollInterval + " --model " + model
                + (largeModel == null ? "" : " --large-model " + largeModel) + " --out " + out
                + (report == null ? "" : " --report " + report) + (charts == null ? "" : " --charts " + charts);
        return MatrixBench.run(MatrixBench.plan(ladder, transports, workloads, batches, duration, pollInterval, model,
                largeModel, gatewayHeap, workerHeap, out, report, charts, command));
    }

    static String join(List<Integer> values) {
        return String.join(",", values.stream().map(String::valueOf).toList());
    }

}
