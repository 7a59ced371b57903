package io.sluice.app.matrix;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class ParetoTest {
    @Test
    void keepsExactlyTheConfigurationsNoOtherBeatsOnEveryObjective() {
        Pareto.Point fastSmall = new Pareto.Point("ws x100", 50, 900, 40);
        Pareto.Point busier = new Pareto.Point("ws x1000", 900, 1000, 90);
        Pareto.Point dominated = new Pareto.Point("poll x100", 400, 950, 35); // slower, bigger, fewer than ws x100
        Pareto.Point tie = new Pareto.Point("sse x100", 50, 900, 40);         // equal: neither dominates
        Pareto.Point failed = new Pareto.Point("poll x5000", Double.NaN, 1200, 0);
        assertThat(Pareto.front(List.of(fastSmall, busier, dominated, tie, failed))).extracting(Pareto.Point::label)
                .containsExactly("ws x100", "ws x1000", "sse x100");
    }

    @Test
    void theKneeIsWhereAddingClientsStopsPaying() {
        var json = LoadRunner.JSON;
        List<com.fasterxml.jackson.databind.JsonNode> ladder = List.of(
                json.createObjectNode().put("clients", 100).put("completed_per_s", 40.0),
                json.createObjectNode().put("clients", 1000).put("completed_per_s", 90.0),
                json.createObjectNode().put("clients", 5000).put("completed_per_s", 93.0));
        assertThat(MatrixReport.knee(ladder)).isEqualTo(1000);
    }
}
