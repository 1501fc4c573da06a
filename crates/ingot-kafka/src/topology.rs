use crate::client::{KafkaError, KafkaSettings};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;
use std::time::Duration;

/// The topology file shipped with ingot (`topology/topics.toml`).
pub const DEFAULT_TOPOLOGY: &str = include_str!("../../../topology/topics.toml");

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("topology file is invalid: {0}")]
    Invalid(#[from] toml::de::Error),
    #[error("topic {topic}: {reason}")]
    Create { topic: String, reason: String },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// One topic: name, partitions, cleanup policy (`delete` | `compact`), retention (ms; "forever" is written as 100 years, see topology/topics.toml).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub cleanup_policy: String,
    pub retention_ms: i64,
    #[serde(default)]
    pub value_schema: Option<String>,
    #[serde(default)]
    pub doc: Option<String>,
}

/// Every topic ingot uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub topics: Vec<TopicSpec>,
}

impl Topology {
    pub fn parse(text: &str) -> Result<Self, TopologyError> {
        Ok(toml::from_str(text)?)
    }

    /// The topology compiled into the binary.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_TOPOLOGY).expect("built-in topology parses")
    }

    pub fn topic(&self, name: &str) -> Option<&TopicSpec> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// Creates every topic that does not exist yet; existing topics are left as they are.
    /// Returns the names it created. Idempotent.
    ///
    /// Only missing topics are sent to the broker: topics that exist are the normal case on
    /// every start after the first, and asking to create them makes brokers log errors
    /// (the embedded Tansu logs `ERROR err=Api(TopicAlreadyExists)` per topic). A topic
    /// created by someone else in between still answers `TopicAlreadyExists`, which is
    /// success here.
    pub async fn apply(&self, settings: &KafkaSettings) -> Result<Vec<String>, TopologyError> {
        let existing = self.existing(settings)?;
        self.raise_size_limits(settings, &existing).await;
        let missing: Vec<&TopicSpec> = self
            .topics
            .iter()
            .filter(|t| !existing.contains(&t.name))
            .collect();
        if missing.is_empty() {
            tracing::debug!(component = "topology", "every topic exists");
            return Ok(Vec::new());
        }
        let admin: AdminClient<DefaultClientContext> = settings
            .client_config()
            .create()
            .map_err(KafkaError::from)?;
        let configs: Vec<Vec<(String, String)>> =
            missing.iter().map(|t| t.configs(settings, &[])).collect();
        let new_topics: Vec<NewTopic> = missing
            .iter()
            .zip(&configs)
            .map(|(t, cs)| {
                let mut nt = NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(settings.replication_factor),
                );
                for (k, v) in cs {
                    nt = nt.set(k, v);
                }
                nt
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(new_topics.iter(), &opts)
            .await
            .map_err(KafkaError::from)?;
        let mut created = Vec::new();
        for r in results {
            match r {
                Ok(name) => created.push(name),
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::debug!(component = "topology", %topic, "created meanwhile by another process");
                }
                Err((topic, code)) => {
                    return Err(TopologyError::Create {
                        topic,
                        reason: code.to_string(),
                    })
                }
            }
        }
        if !created.is_empty() {
            self.wait_for_leaders(settings).await?;
        }
        Ok(created)
    }

    /// The `max.message.bytes` a topic has on the broker (`None` where the broker does not
    /// describe topic configs, as the embedded Tansu).
    pub async fn max_message_bytes(
        &self,
        settings: &KafkaSettings,
        topic: &str,
    ) -> Result<Option<i64>, TopologyError> {
        let admin: AdminClient<DefaultClientContext> = settings
            .client_config()
            .create()
            .map_err(KafkaError::from)?;
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let described = admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &opts)
            .await
            .map_err(KafkaError::from)?;
        Ok(described
            .into_iter()
            .next()
            .and_then(|r| r.ok())
            .and_then(|r| r.get("max.message.bytes").and_then(|e| e.value.clone()))
            .and_then(|v| v.parse().ok()))
    }

    /// Raises `max.message.bytes` of existing topics that are below the settings' (a
    /// deployment made before the limit followed `[http] max_body_bytes`, or with a
    /// smaller body limit): otherwise a big webhook is accepted by ingest and refused by
    /// the broker on every retry. Brokers that do not describe configs are left as they
    /// are (logged at debug).
    async fn raise_size_limits(&self, settings: &KafkaSettings, existing: &[String]) {
        for topic in existing {
            match self.max_message_bytes(settings, topic).await {
                Ok(Some(n)) if n < settings.max_message_bytes as i64 => {
                    match self.alter(settings, topic, &[]).await {
                        Ok(()) => tracing::info!(
                            component = "topology", %topic, from = n, to = settings.max_message_bytes,
                            "raised the topic's max.message.bytes to the configured size limit"
                        ),
                        Err(e) => tracing::warn!(
                            component = "topology", %topic, error = %e,
                            "could not raise the topic's max.message.bytes; messages above {n} bytes will be refused"
                        ),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(component = "topology", %topic, error = %e, "topic configs not described");
                    return;
                }
            }
        }
    }

    /// Waits until every partition of every topic has a leader: a topic just created on
    /// Apache Kafka answers `NotLeaderForPartition` for a moment.
    async fn wait_for_leaders(&self, settings: &KafkaSettings) -> Result<(), TopologyError> {
        use rdkafka::consumer::Consumer;
        let c: rdkafka::consumer::BaseConsumer = settings
            .client_config()
            .create()
            .map_err(KafkaError::from)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let md = c
                .fetch_metadata(None, Duration::from_secs(10))
                .map_err(KafkaError::from)?;
            let waiting: Vec<String> = self
                .topics
                .iter()
                .filter(|spec| {
                    !md.topics().iter().any(|t| {
                        t.name() == spec.name
                            && t.error().is_none()
                            && t.partitions().len() == spec.partitions as usize
                            && t.partitions()
                                .iter()
                                .all(|p| p.error().is_none() && p.leader() >= 0)
                    })
                })
                .map(|t| t.name.clone())
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(TopologyError::Create {
                    topic: waiting.join(","),
                    reason: "no leader 60 s after creation".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The topology's topics the broker lists.
    fn existing(&self, settings: &KafkaSettings) -> Result<Vec<String>, TopologyError> {
        use rdkafka::consumer::Consumer;
        let c: rdkafka::consumer::BaseConsumer = settings
            .client_config()
            .create()
            .map_err(KafkaError::from)?;
        let md = c
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(KafkaError::from)?;
        Ok(md
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|n| self.topic(n).is_some())
            .collect())
    }

    /// Deletes every topic of the topology that exists and waits until the broker no
    /// longer lists them (tests reset a shared broker with it; never used by ingot).
    pub async fn delete_all(&self, settings: &KafkaSettings) -> Result<(), TopologyError> {
        let admin: AdminClient<DefaultClientContext> = settings
            .client_config()
            .create()
            .map_err(KafkaError::from)?;
        let existing = |s: &KafkaSettings| self.existing(s);
        let names = existing(settings)?;
        if !names.is_empty() {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            admin
                .delete_topics(&refs, &opts)
                .await
                .map_err(KafkaError::from)?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = existing(settings)?;
            if left.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(TopologyError::Create {
                    topic: left.join(","),
                    reason: "still listed 60 s after deletion".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sets a topic's configuration to the topology's plus `overrides` (AlterConfigs
    /// replaces a topic's whole configuration, so the topology's own entries are sent
    /// too). Tests use it to force compaction (`segment.ms`, `delete.retention.ms`).
    pub async fn alter(
        &self,
        settings: &KafkaSettings,
        topic: &str,
        overrides: &[(&str, &str)],
    ) -> Result<(), TopologyError> {
        let spec = self.topic(topic).ok_or_else(|| TopologyError::Create {
            topic: topic.to_string(),
            reason: "not in the topology".into(),
        })?;
        let admin: AdminClient<DefaultClientContext> = settings
            .client_config()
            .create()
            .map_err(KafkaError::from)?;
        let configs = spec.configs(settings, overrides);
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in &configs {
            alter = alter.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for r in admin
            .alter_configs([&alter], &opts)
            .await
            .map_err(KafkaError::from)?
        {
            if let Err((_, code)) = r {
                return Err(TopologyError::Create {
                    topic: topic.to_string(),
                    reason: code.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl TopicSpec {
    /// The topic-level configuration ingot creates the topic with: cleanup policy,
    /// retention, the message size limit of the settings, then `overrides`.
    pub fn configs(
        &self,
        settings: &KafkaSettings,
        overrides: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = vec![
            ("cleanup.policy".into(), self.cleanup_policy.clone()),
            ("retention.ms".into(), self.retention_ms.to_string()),
            (
                "max.message.bytes".into(),
                settings.max_message_bytes.to_string(),
            ),
        ];
        for (k, v) in overrides {
            out.retain(|(a, _)| a != k);
            out.push((k.to_string(), v.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_topology_declares_every_topic() {
        let t = Topology::builtin();
        for name in [
            "raw.shopify",
            "raw.woocommerce",
            "raw.netsuite",
            "raw.dlq",
            "normalized.order",
            "normalized.customer",
            "normalized.product",
            "_schemas",
        ] {
            assert!(t.topic(name).is_some(), "{name} missing");
        }
        assert_eq!(
            t.topic("normalized.order").unwrap().cleanup_policy,
            "compact"
        );
        // the raw topics are the system of record: kept 100 years, never -1 (Tansu 0.6
        // deletes every record of a topic with retention.ms = -1 at each maintenance)
        for topic in &t.topics {
            assert!(
                topic.retention_ms >= 3_153_600_000_000,
                "{} retention {}",
                topic.name,
                topic.retention_ms
            );
        }
    }
}
