package io.sluice.app.matrix;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

/** Knees, Pareto fronts, the JSON, the charts and the Markdown report of a matrix run. */
final class MatrixReport {
    private MatrixReport() {
    }

    static void finish(ObjectNode report, MatrixBench.Plan plan) throws IOException {
        List<JsonNode> cells = new ArrayList<>();
        report.path("cells").forEach(cells::add);
        ObjectNode knees = report.putObject("knees");
        ObjectNode fronts = report.putObject("pareto");
        Map<String, List<JsonNode>> byWorkload = new LinkedHashMap<>();
        for (JsonNode c : cells) {
            byWorkload.computeIfAbsent(c.path("workload").asText(), k -> new ArrayList<>()).add(c);
        }
        for (var w : byWorkload.entrySet()) {
            Map<String, List<JsonNode>> byTransport = new LinkedHashMap<>();
            for (JsonNode c : w.getValue()) {
                byTransport.computeIfAbsent(c.path("transport").asText() + "/b" + c.path("batch").asInt(), k -> new ArrayList<>())
                        .add(c);
            }
            ObjectNode k = knees.putObject(w.getKey());
            byTransport.forEach((t, list) -> k.put(t, knee(list)));
            List<Pareto.Point> points = new ArrayList<>();
            for (JsonNode c : w.getValue()) {
                points.add(new Pareto.Point(label(c), c.path("ttft_p99_ms").asDouble(Double.NaN), memory(c),
                        c.path("completed_per_s").asDouble()));
            }
            ArrayNode front = fronts.putArray(w.getKey());
            for (Pareto.Point p : Pareto.front(points)) {
                front.add(p.label());
            }
            for (JsonNode c : w.getValue()) {
                ((ObjectNode) c).put("pareto", front.toString().contains("\"" + label(c) + "\""));
            }
        }
        report.put("finished", java.time.Instant.now().toString());
        Files.createDirectories(plan.out().toAbsolutePath().getParent());
        Files.writeString(plan.out(), report.toPrettyString() + "\n");
        System.out.println("JSON: " + plan.out());
        if (plan.charts() != null) {
            Files.createDirectories(plan.charts());
            for (var w : byWorkload.entrySet()) {
                chart(w.getKey(), w.getValue(), "completed_per_s", "completed requests/s", plan.charts());
                chart(w.getKey(), w.getValue(), "ttft_p99_ms", "time to first token p99 (ms)", plan.charts());
            }
        }
        if (plan.report() != null) {
            Files.writeString(plan.report(), markdown(report, byWorkload, plan));
            System.out.println("Report: " + plan.report());
        }
        System.out.println("Knees: " + knees);
        System.out.println("Pareto: " + fronts);
    }

    static String label(JsonNode c) {
        return c.path("transport").asText() + " b" + c.path("batch").asInt() + " x" + c.path("clients").asInt();
    }

    /**
     * Memory a configuration holds live: both roles' heap in use plus the worker's direct buffers
     * (its KV cache). Resident sets are reported too, but a JVM's only grows over a run, so it
     * would favour whichever cell ran first.
     */
    static double memory(JsonNode c) {
        JsonNode m = c.path("memory_mb");
        return m.path("gateway").path("heap_used").asDouble(Double.NaN) + m.path("worker").path("heap_used").asDouble(Double.NaN)
                + m.path("worker").path("direct").asDouble(Double.NaN);
    }

    /**
     * Where throughput bends: the last ladder level after which adding clients raised completed
     * requests/s by less than 10 %.
     */
    static int knee(List<JsonNode> ladder) {
        for (int i = 1; i < ladder.size(); i++) {
            if (ladder.get(i).path("completed_per_s").asDouble() < 1.1 * ladder.get(i - 1).path("completed_per_s").asDouble()) {
                return ladder.get(i - 1).path("clients").asInt();
            }
        }
        return ladder.get(ladder.size() - 1).path("clients").asInt();
    }

    static void chart(String workload, List<JsonNode> cells, String field, String title, Path dir) throws IOException {
        XYChart chart = new XYChartBuilder().width(720).height(420).title(workload + ": " + title)
                .xAxisTitle("concurrent clients").yAxisTitle(title).build();
        chart.getStyler().setXAxisLogarithmic(true).setLegendPosition(Styler.LegendPosition.InsideNW)
                .setChartBackgroundColor(java.awt.Color.WHITE);
        Map<String, List<JsonNode>> series = new LinkedHashMap<>();
        for (JsonNode c : cells) {
            series.computeIfAbsent(c.path("transport").asText() + " (batch " + c.path("batch").asInt() + ")",
                    k -> new ArrayList<>()).add(c);
        }
        boolean any = false;
        for (var s : series.entrySet()) {
            List<Double> x = new ArrayList<>();
            List<Double> y = new ArrayList<>();
            for (JsonNode c : s.getValue()) {
                double v = c.path(field).asDouble(Double.NaN);
                if (!Double.isNaN(v)) {
                    x.add(c.path("clients").asDouble());
                    y.add(v);
                }
            }
            if (!x.isEmpty()) {
                chart.addSeries(s.getKey(), x, y);
                any = true;
            }
        }
        if (any) {
            BitmapEncoder.saveBitmap(chart, dir.resolve(workload + "-" + field).toString(), BitmapEncoder.BitmapFormat.PNG);
        }
    }

    static String markdown(ObjectNode report, Map<String, List<JsonNode>> byWorkload, MatrixBench.Plan plan) {
        StringBuilder md = new StringBuilder();
        md.append("# Transport matrix: polling, SSE and WebSocket\n\n");
        md.append("Generated by `sluice bench matrix`; every figure below comes from this run:\n\n```\n")
                .append(report.path("command").asText()).append("\n```\n\n");
        md.append("Machine: ").append(report.path("machine").asText()).append(". Started ")
                .append(report.path("started").asText()).append(", finished ").append(report.path("finished").asText())
                .append(". A gateway and a worker ran as separate processes against a KRaft broker and Redis on the same ")
                .append("machine; the clients ran in the benchmark's own process. Each cell ran ")
                .append(plan.duration().toSeconds()).append(" s of closed-loop clients (each sends its next request when ")
                .append("the last one ended), after an unmeasured warm-up of every transport; ")
                .append("throughput counts only the requests that completed inside the window. Polling asked every ").append(plan.pollInterval().toMillis())
                .append(" ms; it sees no token before the whole result, so its time to first token is its time to the ")
                .append("result. Machine-readable: `").append(plan.out()).append("`.\n\n");
        for (var w : byWorkload.entrySet()) {
            md.append("## ").append(w.getKey()).append("\n\n");
            md.append("| transport | batch | clients | done/s | errors | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms "
                    + "| live MB | worker RSS MB | gateway RSS MB | gateway heap KB/client | KV cache KB/seq | Pareto |\n");
            md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |\n");
            for (JsonNode c : w.getValue()) {
                md.append(String.format("| %s | %d | %d | %.1f | %d | %s | %s | %s | %s | %.0f | %s | %s | %s | %.1f | %s |%n",
                        c.path("transport").asText(), c.path("batch").asInt(), c.path("clients").asInt(),
                        c.path("completed_per_s").asDouble(), c.path("errors").asLong(), num(c, "ttft_p50_ms"),
                        num(c, "ttft_p99_ms"), num(c, "itl_p50_ms"), num(c, "itl_p99_ms"), memory(c),
                        num(c.path("memory_mb").path("worker"), "rss"), num(c.path("memory_mb").path("gateway"), "rss"),
                        num(c, "gateway_heap_kb_per_client"), c.path("kv_cache_bytes_per_sequence").asDouble() / 1024,
                        c.path("pareto").asBoolean() ? "**yes**" : ""));
            }
            md.append("\nKnee (clients after which throughput rose by less than 10 %): ")
                    .append(report.path("knees").path(w.getKey())).append("\n\n");
            if (plan.charts() != null) {
                String rel = plan.report().toAbsolutePath().getParent().relativize(plan.charts().toAbsolutePath()).toString();
                md.append("![").append(w.getKey()).append(" throughput](").append(rel).append("/").append(w.getKey())
                        .append("-completed_per_s.png) ![").append(w.getKey()).append(" TTFT p99](").append(rel).append("/")
                        .append(w.getKey()).append("-ttft_p99_ms.png)\n\n");
            }
        }
        md.append("## Memory of each role\n\nPer cell above: live memory (both roles' heap in use plus the worker's direct ")
                .append("buffers, the Pareto axis) and the resident set of each process; the JSON also splits each into ")
                .append("heap used, heap committed, non-heap, direct buffers and the rest (on the worker, mostly ONNX ")
                .append("Runtime's weights and arenas). KV cache per sequence = 2 x layers x heads x head size x 4 bytes x ")
                .append("the mean context (prompt + generated tokens) of the workload.\n\n");
        md.append("## Cold start\n\n```\n").append(report.path("cold_start").toPrettyString()).append("\n```\n\n")
                .append("Steps from the processes' own log lines (`Cold start <role> <step>: <ms> ms`), plus the time from ")
                .append("process start to the first `/readyz` 200 measured by the benchmark.\n");
        return md.toString();
    }

    static String num(JsonNode n, String field) {
        double v = n.path(field).asDouble(Double.NaN);
        return Double.isNaN(v) ? "–" : String.format(v >= 100 ? "%.0f" : "%.1f", v);
    }
}
