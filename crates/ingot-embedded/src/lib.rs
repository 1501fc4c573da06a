//! The embedded default (BROKER.md): when no `[kafka]` is configured, ingot runs the Tansu
//! broker in-process with sqlite storage under the data dir; when no `[schema_registry]`
//! is configured, it serves its own minimal Confluent-compatible registry stored in the
//! compacted `_schemas` topic. Nothing else in ingot knows these exist: the pipeline talks
//! plain Kafka (rdkafka) and plain Confluent REST to whatever address it is given.
//!
//! Both bind to 127.0.0.1 only.

#[cfg(feature = "broker")]
mod broker;
#[cfg(feature = "broker")]
mod local;
mod registry;

#[cfg(feature = "broker")]
pub use broker::{BrokerError, EmbeddedBroker};
#[cfg(feature = "broker")]
pub use local::{LocalCluster, LocalError};
pub use registry::{Registry, RegistryError};

/// A free TCP port on 127.0.0.1 (port 0 cannot be given to Tansu, BROKER.md), never one
/// this process was handed before: librdkafka clients of a stopped broker may still dial
/// its old address for a while.
pub fn free_port() -> std::io::Result<u16> {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if !used.contains(&p) {
            used.push(p);
            return Ok(p);
        }
    }
}
