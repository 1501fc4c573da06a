//! The sync engine (DESIGN §5): per connection and model, a historical sync (backfill,
//! 2 years by default) when the connection is created, then a reconciliation poll on a
//! schedule (12 h by default; NetSuite 15 min), both writing raw events to the same
//! `raw.<provider>` topics as the webhooks, so the processor and its version rule stay the
//! one place where versions meet.
//!
//! Invariants:
//! - a page's raw events are acknowledged by Kafka before the checkpoint that moves past
//!   them is written (to the compacted `ingot.sync` topic), so a restart resumes at the
//!   last acknowledged page and re-fetches at most that page;
//! - the reconciliation cursor (the modified time up to which everything was fetched and
//!   acknowledged) advances only when a whole run succeeded; the next run starts at
//!   `cursor − overlap` (inclusive, overlapping: duplicates are harmless);
//! - a failure that outlives the connector's retries marks the run `failed` with the
//!   error, leaves the cursor, and is never recorded as "no data";
//! - a run that ends any other way (a Kafka error, a panic: caught per run and around the
//!   connection's task) marks the model `failed` (`partial` inside a historical sync) with
//!   the error, so no connection is left looking `syncing`;
//! - settings come through `ConnectionSpec::validate` (bounded history and interval);
//! - deletions come only from the 3PA's deletion feeds, never from a listing;
//! - a listing that stops advancing (a continuation returned twice, or
//!   [`MAX_STALLED_PAGES`] pages in a row of versions it already returned, or a
//!   connector's `NoProgress`) fails the run (`failed`, with the error), never loops.
//!
//! Connections (from the config and from `POST /v1/connections`) are event-sourced in the
//! compacted `ingot.connections` topic, their credentials and webhook secrets sealed
//! (AEAD, key id stored with each value) by the keyring given to [`Engine::open_sealed`].

pub mod api;
mod engine;
pub mod replays;
mod status;
pub mod subscriptions;

pub use engine::{
    read_connections, read_connections_sealed, Deleted, Engine, EngineError, ReconcileModel,
    ReconcileRun, SyncSettings, CONNECTIONS_TOPIC, MAX_STALLED_PAGES, SYNC_TOPIC,
};
pub use status::{Backfill, BulkProgress, ModelStatus, SyncState};
