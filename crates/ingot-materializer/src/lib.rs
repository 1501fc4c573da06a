//! The materializer: consumes the normalized topics into a RocksDB materialized view, with
//! the consumed offsets in the same write batch as the records (so a crash re-applies
//! nothing twice and loses nothing), and serves the query API (DESIGN §6).
//!
//! Invariants:
//! - the view holds the last value per record key; a tombstone marks the record deleted
//!   (kept, so `include_deleted` can show it), never removes history needed for paging;
//! - every record is applied at most once per offset: a partition's records at or below
//!   its stored offset are skipped (compaction on some brokers re-delivers offsets);
//! - reads never block on Kafka: they see the view as of (at least) the offsets they report;
//! - reads are isolated by construction: every key a query reads starts with the caller's
//!   tenant (and the allowed connections), iterators are bounded to that prefix (layout in
//!   `view.rs`);
//! - a view of another format is emptied at open and rebuilt from the topics;
//! - a value it can never use (undecodable, a key that is not a record key) is a poison
//!   pill: it goes to `raw.dlq` with the headers of [`ingot_model::dlq`] (stage `materializer`), is
//!   acknowledged there before the offset that passes it is written, and the stage goes on.

pub mod api;
mod view;

pub use api::{router, ApiState, Readiness, Tenant};
pub use ingot_store::ReadFrom;
pub use view::{unusable, Entry, ListQuery, Materializer, Page, View, ViewError, MAX_SCAN};
