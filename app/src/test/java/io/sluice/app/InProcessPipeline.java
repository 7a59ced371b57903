package io.sluice.app;

import io.sluice.ingress.Gateway;
import io.sluice.ingress.GatewayConfig;
import io.sluice.ops.TopicProvisioner;
import io.sluice.schemas.CommonConfig;
import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import io.sluice.worker.Worker;
import io.sluice.worker.WorkerConfig;
import io.sluice.worker.model.ModelBundle;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;

/** A gateway and a worker on the shared broker and Redis, under a topic prefix of their own. */
final class InProcessPipeline implements AutoCloseable {
    static final String SECRET = "in-process-pipeline-secret-0123456789abcdef";
    final Topics topics;
    final ModelBundle model;
    final Worker worker;
    final Gateway gateway;

    InProcessPipeline(String name) throws Exception {
        topics = provision(name);
        Map<String, Object> common = common(topics);
        model = ModelBundle.load(ModelBundle.BUNDLED, "cpu", 1);
        Map<String, Object> w = new HashMap<>(common);
        w.put(WorkerConfig.GROUP_ID, topics.prefix() + "workers");
        worker = Worker.start(new WorkerConfig(w), model);
        Map<String, Object> g = new HashMap<>(common);
        g.put(GatewayConfig.PORT, 0);
        g.put(GatewayConfig.JWT_SECRET, SECRET);
        gateway = Gateway.start(new GatewayConfig(g));
        if (!worker.awaitAssignment(Duration.ofSeconds(60))) {
            throw new IllegalStateException("worker got no partitions");
        }
    }

    /** A fresh topic prefix on the shared broker, its topics created. */
    static Topics provision(String name) throws Exception {
        Topics topics = new Topics(SharedInfra.uniquePrefix(name));
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", SharedInfra.get().bootstrapServers()))) {
            TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
        }
        return topics;
    }

    /** The settings every role shares: the shared broker and Redis, and the topic prefix. */
    static Map<String, Object> common(Topics topics) {
        SharedInfra infra = SharedInfra.get();
        Map<String, Object> common = new HashMap<>();
        common.put(CommonConfig.BOOTSTRAP_SERVERS, infra.bootstrapServers());
        common.put(CommonConfig.REDIS_URI, infra.redisUri());
        common.put(CommonConfig.TOPIC_PREFIX, topics.prefix());
        return common;
    }

    String token(String tenant) {
        return gateway.authenticator().mint("user-" + tenant, tenant, List.of("infer"), Duration.ofMinutes(30));
    }

    @Override
    public void close() throws Exception {
        gateway.close();
        worker.close();
        model.close();
    }
}
