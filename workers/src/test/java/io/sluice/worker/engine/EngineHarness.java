package io.sluice.worker.engine;

import io.sluice.schemas.ErrorInfo;
import io.sluice.schemas.FinishReason;
import io.sluice.worker.model.ModelBundle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Drives a real {@link BatchEngine} on the bundled model and records what it emits. */
final class EngineHarness implements StepSink, AutoCloseable {
    final BatchEngine engine;
    final Map<String, List<StepToken>> tokens = new HashMap<>();
    final Map<String, FinishReason> finish = new HashMap<>();
    final Map<String, ErrorInfo> errors = new HashMap<>();
    final List<List<String>> stepLog = new ArrayList<>();
    final Set<String> abortNext = new HashSet<>();
    private final ModelBundle model;

    EngineHarness(ModelBundle model, BatchEngine.Limits limits) {
        this.model = model;
        this.engine = new BatchEngine(model, limits, this);
    }

    @Override
    public Set<Generation> tokens(List<StepToken> step) {
        List<String> ids = new ArrayList<>();
        Set<Generation> aborted = new HashSet<>();
        for (StepToken t : step) {
            if (abortNext.remove(t.generation().id())) {
                aborted.add(t.generation());
                continue;
            }
            tokens.computeIfAbsent(t.generation().id(), k -> new ArrayList<>()).add(t);
            ids.add(t.generation().id());
        }
        stepLog.add(ids);
        return aborted;
    }

    @Override
    public void finished(Generation g, FinishReason reason, ErrorInfo error) {
        if (finish.containsKey(g.id()) || errors.containsKey(g.id())) {
            throw new AssertionError("finished twice: " + g.id());
        }
        if (error != null) {
            errors.put(g.id(), error);
        } else {
            finish.put(g.id(), reason);
        }
    }

    Generation add(String id, String prompt, GenerationParams params) {
        return add(id, prompt, params, List.of());
    }

    Generation add(String id, String prompt, GenerationParams params, List<Integer> replay) {
        Generation g = new Generation(id, params, model.encode(prompt), replay, model, null);
        engine.add(g);
        return g;
    }

    void runUntilIdle(int maxSteps) {
        for (int i = 0; i < maxSteps && engine.size() > 0; i++) {
            engine.step();
        }
        if (engine.size() > 0) {
            throw new AssertionError("engine still busy after " + maxSteps + " steps: " + engine.ids());
        }
    }

    List<Integer> ids(String id) {
        return tokens.getOrDefault(id, List.of()).stream().map(StepToken::tokenId).toList();
    }

    String text(String id) {
        StringBuilder sb = new StringBuilder();
        tokens.getOrDefault(id, List.of()).forEach(t -> sb.append(t.text()));
        return sb.toString();
    }

    List<Integer> seqs(String id) {
        return tokens.getOrDefault(id, List.of()).stream().map(StepToken::seq).toList();
    }

    @Override
    public void close() {
        engine.close();
    }
}
