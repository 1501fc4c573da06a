use crate::client::{KafkaError, KafkaSettings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
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
    pub async fn apply(&self, settings: &KafkaSettings) -> Result<Vec<String>, TopologyError> {
        let admin: AdminClient<DefaultClientContext> = settings
            .client_config()
            .create()
            .map_err(KafkaError::from)?;
        let retention: Vec<String> = self
            .topics
            .iter()
            .map(|t| t.retention_ms.to_string())
            .collect();
        let new_topics: Vec<NewTopic> = self
            .topics
            .iter()
            .zip(&retention)
            .map(|(t, r)| {
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(settings.replication_factor),
                )
                .set("cleanup.policy", &t.cleanup_policy)
                .set("retention.ms", r)
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
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(TopologyError::Create {
                        topic,
                        reason: code.to_string(),
                    })
                }
            }
        }
        Ok(created)
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
