//! An embedded broker with ingot's topics and the registry, on free loopback ports: what
//! the tests of one stage start (the whole binary assembles the same pieces from its
//! config in `ingot::app::Infra`).

use crate::{free_port, BrokerError, EmbeddedBroker, Registry, RegistryError};
use ingot_kafka::{KafkaSettings, Topology, TopologyError};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("no free port: {0}")]
    Port(#[from] std::io::Error),
}

/// A running embedded broker (storage under `dir/broker`) with every topic of the
/// topology created, and the registry served. Dropping it stops both.
pub struct LocalCluster {
    pub kafka: KafkaSettings,
    pub registry_url: String,
    _broker: EmbeddedBroker,
    registry: tokio::task::JoinHandle<()>,
}

impl LocalCluster {
    /// `compaction`: how often the broker compacts the compacted topics.
    pub async fn start(dir: &Path, compaction: Duration) -> Result<LocalCluster, LocalError> {
        let broker = EmbeddedBroker::start(&dir.join("broker"), free_port()?, compaction).await?;
        let kafka = KafkaSettings::new(broker.bootstrap_servers());
        Topology::builtin().apply(&kafka).await?;
        let port = free_port()?;
        let registry = Registry::open(&kafka).await?.serve(port).await?;
        Ok(LocalCluster {
            kafka,
            registry_url: format!("http://127.0.0.1:{port}"),
            _broker: broker,
            registry,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.registry.abort();
    }
}
