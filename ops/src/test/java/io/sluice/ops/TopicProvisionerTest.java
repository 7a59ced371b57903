package io.sluice.ops;

import static org.assertj.core.api.Assertions.assertThat;

import io.sluice.schemas.Topics;
import io.sluice.testkit.SharedInfra;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.Test;

class TopicProvisionerTest {

    @Test
    void createsEveryTopicOnceWithItsConfigs() throws Exception {
        Topics topics = new Topics(SharedInfra.uniquePrefix("provision"));
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG,
                SharedInfra.get().bootstrapServers()))) {
            List<String> first = TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
            assertThat(first).containsExactlyInAnyOrderElementsOf(topics.all());
            List<String> second = TopicProvisioner.ensure(admin, topics, TopicProvisioner.Layout.singleNode());
            assertThat(second).as("second run creates nothing").isEmpty();

            assertThat(admin.listTopics().names().get()).containsAll(topics.all());
            ConfigResource results = new ConfigResource(ConfigResource.Type.TOPIC, topics.results());
            Config config = admin.describeConfigs(List.of(results)).all().get().get(results);
            assertThat(config.get("cleanup.policy").value()).isEqualTo("compact");
            assertThat(admin.describeTopics(List.of(topics.requests())).allTopicNames().get()
                    .get(topics.requests()).partitions()).hasSize(4);
        }
    }
}
