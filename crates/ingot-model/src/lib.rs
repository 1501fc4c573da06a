//! ingot's data vocabulary: providers, models, record keys, raw events and the common
//! models (Order, Customer, Product) with the metadata every normalized record carries.
//!
//! Plain data, no I/O. The Avro schemas in `schemas/*.avsc` are the contract for every
//! Kafka value; the Rust types here serialize (through serde JSON) to exactly those
//! shapes, which `ingot-kafka` checks against the schemas at start-up and in tests.
//!
//! Invariants:
//! - a record key is `<connection_id>/<model>/<remote_id>`; remote ids are strings, never
//!   numbers (Shopify ids exceed 2^53);
//! - a record's public `id` is the UUIDv5 of its record key (stable across replays);
//! - money is an exact decimal string plus an ISO 4217 currency; times are RFC 3339 UTC.

pub mod auth;
pub mod connection;
pub mod dlq;
mod key;
mod models;
mod raw;
pub mod replay;
pub mod secret;
mod time;
pub mod version;

pub use connection::{ConnectionSpec, Credentials, Disconnected, StoredConnection};
pub use key::{Model, Provider, RecordKey, RecordKeyError};
pub use models::*;
pub use raw::{RawEvent, RawOp, RawSource};
pub use secret::{Keyring, SealError, Secret};
pub use time::{format_utc, parse_time, TimeError};
pub use version::{decide, Decision, Version};
