package io.sluice.ops;

import io.sluice.schemas.Tier;
import io.sluice.schemas.Topics;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.errors.TopicExistsException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates the topics of a deployment, idempotently: a topic that already exists is left as it is.
 *
 * <p>Configs follow what each topic is for: results are compacted (one final result per request),
 * tokens are kept long enough for {@code attach} after a disconnect, dead letters are kept long
 * enough for the archiver to fall behind and catch up.
 */
public final class TopicProvisioner {
    private static final Logger log = LoggerFactory.getLogger(TopicProvisioner.class);

    /** How many partitions and replicas, and how long tokens are kept. */
    public record Layout(int partitions, short replicationFactor, Duration tokenRetention, Duration dlqRetention) {
        public Layout {
            if (partitions < 1) {
                throw new IllegalArgumentException("partitions must be at least 1");
            }
            if (replicationFactor < 1) {
                throw new IllegalArgumentException("replicationFactor must be at least 1");
            }
        }

        /** Single-broker defaults used by {@code sluice dev} and tests. */
        public static Layout singleNode() {
            return new Layout(4, (short) 1, Duration.ofDays(1), Duration.ofDays(14));
        }
    }

    private TopicProvisioner() {
    }

    /** The topics of a deployment with their configs. */
    public static List<NewTopic> plan(Topics topics, Layout layout) {
        String tokenRetention = String.valueOf(layout.tokenRetention().toMillis());
        String dlqRetention = String.valueOf(layout.dlqRetention().toMillis());
        List<NewTopic> plan = new ArrayList<>();
        plan.add(topic(topics.requests(), layout, Map.of()));
        for (Tier tier : Tier.values()) {
            plan.add(topic(topics.retry(tier), layout, Map.of()));
        }
        plan.add(topic(topics.tokens(), layout, Map.of(TopicConfig.RETENTION_MS_CONFIG, tokenRetention)));
        plan.add(topic(topics.results(), layout, Map.of(
                TopicConfig.CLEANUP_POLICY_CONFIG, TopicConfig.CLEANUP_POLICY_COMPACT,
                TopicConfig.MIN_COMPACTION_LAG_MS_CONFIG, tokenRetention)));
        plan.add(topic(topics.control(), layout, Map.of(TopicConfig.RETENTION_MS_CONFIG, tokenRetention)));
        for (Tier tier : Tier.values()) {
            plan.add(topic(topics.dlq(tier), layout, Map.of(TopicConfig.RETENTION_MS_CONFIG, dlqRetention)));
        }
        plan.add(topic(topics.events(), layout, Map.of(TopicConfig.RETENTION_MS_CONFIG, dlqRetention)));
        return plan;
    }

    private static NewTopic topic(String name, Layout layout, Map<String, String> configs) {
        return new NewTopic(name, layout.partitions(), layout.replicationFactor()).configs(configs);
    }

    /**
     * Creates every topic of the plan that does not exist yet.
     *
     * @return the names of the topics this call created
     */
    public static List<String> ensure(Admin admin, Topics topics, Layout layout) throws InterruptedException {
        List<NewTopic> plan = plan(topics, layout);
        var result = admin.createTopics(plan);
        List<String> created = new ArrayList<>();
        for (NewTopic topic : plan) {
            try {
                result.values().get(topic.name()).get(30, TimeUnit.SECONDS);
                created.add(topic.name());
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw new IllegalStateException("Cannot create topic " + topic.name() + ": " + e.getCause(), e.getCause());
                }
            } catch (java.util.concurrent.TimeoutException e) {
                throw new IllegalStateException("Timed out creating topic " + topic.name(), e);
            }
        }
        if (!created.isEmpty()) {
            log.info("Created topics {}", created);
        }
        return created;
    }

    /** Names the plan contains, for checks. */
    public static Set<String> names(Topics topics) {
        return Set.copyOf(topics.all());
    }
}
