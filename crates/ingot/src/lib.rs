#![recursion_limit = "256"]
//! The `ingot` binary's library half: configuration and the assembly of the stages
//! (embedded or external Kafka and registry, topics, ingest, processor, materializer,
//! API) into one process or one process per stage. `main.rs` is the thin CLI over it;
//! the end-to-end tests drive the same functions.

pub mod app;
pub mod bench;
pub mod config;
pub mod demo;
pub mod progress;
pub mod ratelimit;
pub mod replay;
pub mod shopsim;
