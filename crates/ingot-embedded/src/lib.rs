//! The embedded default (BROKER.md): when no `[kafka]` is configured, ingot runs the Tansu
//! broker in-process with sqlite storage under the data dir; when no `[schema_registry]`
//! is configured, it serves its own minimal Confluent-compatible registry stored in the
//! compacted `_schemas` topic. Nothing else in ingot knows these exist: the pipeline talks
//! plain Kafka (rdkafka) and plain Confluent REST to whatever address it is given.
//!
//! Both bind to 127.0.0.1 only.

#[cfg(feature = "broker")]
mod broker;
mod registry;

#[cfg(feature = "broker")]
pub use broker::{BrokerError, EmbeddedBroker};
pub use registry::{Registry, RegistryError};

/// A free TCP port on 127.0.0.1 (port 0 cannot be given to Tansu, BROKER.md).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
