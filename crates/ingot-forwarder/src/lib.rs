//! The forwarder: change webhooks to the ISV (DESIGN §6). A stage of its own that reads
//! only the `normalized.<model>` topics and the `ingot.webhook-endpoints` control topic.
//!
//! For every normalized record (or tombstone) it sends `<model>.created|updated|deleted`
//! to every endpoint of the record's tenant that subscribed to that event (and connection):
//!
//! ```json
//! {"type": "order.updated", "timestamp": "<modified_at, RFC 3339>",
//!  "data": {<the record as GET /v1/orders/{id} serves it under "data">, "version": <normalized offset>}}
//! ```
//!
//! `deleted` carries `data: {id, remote_id, connection_id, remote_deleted: true,
//! remote_deleted_at, version}`; `created` is the first version of a record the forwarder
//! has seen (or the first after a deletion). Requests are signed per Standard Webhooks
//! (`webhook-id` = `msg_` + UUIDv5 of `<record key>@<version>`, the same on every retry and
//! replay; `webhook-timestamp` per attempt; `webhook-signature` one `v1,<base64>` per active
//! secret, space-separated during a rotation).
//!
//! # Wiring it in
//!
//! ```ignore
//! let fwd = ingot_forwarder::Forwarder::open(cfg.forwarder.clone(), &data_dir.join("forwarder"),
//!     kafka.clone(), codec.clone(), ingot_model::auth::Auth::new(&tenants), keyring).await?;
//! router = router.merge(fwd.router());                 // /v1/webhook-endpoints...
//! tasks.push(tokio::spawn(async move { fwd.run(shutdown_rx).await }));
//! ```
//!
//! - [`ForwarderConfig`] is the `[forwarder]` table (serde, `deny_unknown_fields`, every
//!   field defaulted).
//! - [`Forwarder::open`] opens the RocksDB state under `state_dir` (one process per
//!   directory) and reads the endpoints topic, opening the endpoints' signing secrets with
//!   the [`Keyring`](ingot_model::Keyring) (they are stored sealed, like connection
//!   credentials; one stored in clear by an older ingot is sealed on open); [`Forwarder::router`] serves the endpoints
//!   API (see [`api`]) and may be merged into any axum server of the same
//!   process; [`Forwarder::run`] consumes and delivers until `shutdown` turns true (or its
//!   sender is dropped).
//!
//! Run **one** forwarder per deployment: it assigns itself every normalized partition
//! (its consumer group holds committed offsets for lag monitoring and for a lost state
//! directory, not for sharing partitions), and its pending deliveries live in its RocksDB.
//!
//! # Verifying a delivery (the ISV's side)
//!
//! Any Standard Webhooks library verifies the requests, e.g. in Python
//! (`pip install standardwebhooks`):
//!
//! ```text
//! from standardwebhooks.webhooks import Webhook
//! wh = Webhook("whsec_...")                  # the secret shown on create / rotation
//! event = wh.verify(request.body, request.headers)   # raises on a bad signature or stale timestamp
//! # dedupe on request.headers["webhook-id"]; order by event["data"]["version"] per event["data"]["id"]
//! ```
//!
//! By hand: `base64(HMAC-SHA256(key = base64decode(secret without "whsec_"),
//! "<webhook-id>.<webhook-timestamp>.<raw body>"))` must equal one of the `v1,` entries of
//! `webhook-signature`; reject timestamps more than a few minutes off.
//!
//! # Guarantees
//!
//! - **Dead letters**: a normalized record the forwarder can never use (an undecodable
//!   value, a key that is no record key) goes to `raw.dlq` with its original key and bytes
//!   and the headers of [`ingot_model::dlq`] (reason, source, stage `forwarder`),
//!   acknowledged before the offset that passes it is stored; the forwarder goes on. A
//!   schema-registry outage is no reason: the batch is read again (the stage stops with the
//!   error after a few retries, and resumes from its stored offsets).
//! - **At-least-once, durable**: a batch of normalized records becomes delivery jobs in one
//!   RocksDB batch together with the consumed offsets and the seen-markers (so a crash
//!   neither loses nor doubles a job); only then are offsets committed to the consumer
//!   group. Every attempt's outcome is written before the next step. After a crash or
//!   `kill -9`, pending deliveries are attempted again with the same `webhook-id` and body.
//! - **Ordered per (endpoint, record)**: only the oldest pending delivery of a record to an
//!   endpoint is ever attempted; the next goes once it is delivered or given up. Other
//!   records and other endpoints are not held back (a waiting retry holds no slot;
//!   endpoints are served round-robin with a per-endpoint in-flight cap).
//! - **Retries**: the configured schedule with jitter; `Retry-After` on 429/503 is honoured
//!   (capped); `410 Gone` disables the endpoint; an endpoint whose deliveries all failed for
//!   `disable_after_failing_secs` is disabled. A disabled endpoint gets no new deliveries;
//!   its pending ones wait and resume when it is enabled again. A deleted endpoint's
//!   pending deliveries and log are dropped.
//! - **Safety**: https only and public addresses only (checked on create/change and by the
//!   client's resolver on every request) unless `allow_insecure_urls`; no redirects, no
//!   proxies from the environment, responses read up to `max_response_bytes`.
//! - **Replay**: `POST /v1/webhook-endpoints/{id}/replay` re-reads the normalized topics
//!   (what compaction left) and re-sends the changes whose `modified_at` falls in the range,
//!   with their original ids, types and bodies, queued behind pending ones of the record.
//!
//! Metrics (`metrics` facade): `ingot_forwarder_received_total`, `_enqueued_total`,
//! `_dropped_total{reason}` (records that give no event; each is dead-lettered, counted
//! again in `_dead_lettered_total`), `_attempts_total{endpoint,result}`,
//! `_attempt_duration_seconds{endpoint}`, `_delivered_total{endpoint}`,
//! `_failed_total{endpoint}`, `_delivery_lag_seconds` (change → delivered),
//! `_backlog{endpoint}`, `_in_flight`, `_endpoints_disabled_total`. The `endpoint` label is
//! the endpoint id for the first `metrics_endpoint_labels` endpoints and `other` after.

pub mod api;
mod config;
pub mod endpoints;
mod engine;
pub mod event;
pub mod http;
pub mod sign;
mod store;

pub use config::ForwarderConfig;
pub use endpoints::{Endpoint, EndpointStatus, ENDPOINTS_TOPIC};
pub use store::{Attempt, Delivery, DeliveryStatus};

use engine::{Labels, Scheduler, Shared};
use ingot_kafka::{AvroCodec, KafkaError, KafkaSettings, SchemaError};
use ingot_model::auth::Auth;
use ingot_model::Keyring;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, watch};

/// OpenAPI 3.1 `paths` of the endpoints API (`{"paths": {...}}`), to merge into the
/// server's `/openapi.json`.
pub fn openapi_paths() -> serde_json::Value {
    serde_json::from_str(include_str!("openapi.json")).expect("openapi.json is JSON")
}

/// Errors of the forwarder.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    /// The broker or the network; a retry may help.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The RocksDB state (disk, corruption, a lock held by another process); ours.
    #[error(transparent)]
    Store(#[from] ingot_store::StoreError),
    /// The schema registry or a value; a retry may help for the registry.
    #[error("schema: {0}")]
    Schema(#[from] SchemaError),
    /// A control record that does not parse; ours (or someone wrote to the topic by hand).
    #[error("control record {topic}@{offset} unreadable: {reason}")]
    Corrupt {
        topic: String,
        offset: i64,
        reason: String,
    },
    /// The configuration; the operator's. Every problem, `; `-separated.
    #[error("invalid [forwarder] configuration: {0}")]
    Config(String),
    /// A blocking store task did not finish (cancelled at shutdown, or it panicked).
    #[error("store task did not finish: {0}")]
    Task(String),
}

/// The forwarder stage. See the crate docs for how to wire it.
pub struct Forwarder {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<engine::SchedMsg>,
}

impl Forwarder {
    /// Opens the state in `state_dir` (created if missing) and reads the endpoints, whose
    /// secrets `keyring` seals and opens.
    pub async fn open(
        cfg: ForwarderConfig,
        state_dir: &Path,
        kafka: KafkaSettings,
        codec: AvroCodec,
        auth: Auth,
        keyring: Keyring,
    ) -> Result<Forwarder, ForwarderError> {
        cfg.validate()
            .map_err(|e| ForwarderError::Config(e.join("; ")))?;
        std::fs::create_dir_all(state_dir).map_err(|e| {
            ForwarderError::Config(format!("state dir {}: {e}", state_dir.display()))
        })?;
        let dir = state_dir.to_path_buf();
        let store = tokio::task::spawn_blocking(move || store::DeliveryStore::open(&dir))
            .await
            .expect("store open panicked")?;
        let mut offsets = BTreeMap::new();
        for (k, v) in store.store.scan_prefix(store::OFFSETS, b"")? {
            if let (Some(pos), Some(off)) = (
                k.iter().position(|b| *b == 0),
                ingot_store::decode_offset(&v),
            ) {
                if let (Ok(topic), Ok(p)) = (
                    std::str::from_utf8(&k[..pos]),
                    k[pos + 1..].try_into().map(i32::from_be_bytes),
                ) {
                    offsets.insert((topic.to_string(), p), off);
                }
            }
        }
        let endpoints = endpoints::Endpoints::load(&kafka, keyring).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let sender = http::Sender::new(
            config::secs(cfg.timeout_secs),
            cfg.max_response_bytes,
            cfg.allow_insecure_urls,
        );
        let shared = Arc::new(Shared {
            labels: Labels::new(cfg.metrics_endpoint_labels),
            producer: ingot_kafka::Producer::new(&kafka)?,
            cfg,
            endpoints,
            store,
            sender,
            kafka,
            codec,
            auth,
            sched: tx,
            offsets: RwLock::new(offsets),
        });
        Ok(Forwarder { shared, rx })
    }

    /// The endpoints API (`/v1/webhook-endpoints...`), sharing this forwarder's state.
    pub fn router(&self) -> axum::Router {
        api::router(self.shared.clone())
    }

    /// Consumes, delivers and follows endpoint changes until `shutdown` turns true (or its
    /// sender is dropped). In-flight attempts are abandoned and stay pending.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ForwarderError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = self.shared.clone();
        // if this future is dropped mid-way, the stage's tasks go with it
        let scheduler = Scheduler::new(shared.clone(), self.rx).restore().await?;
        let mut sched = AbortOnDrop(tokio::spawn(scheduler.run(stop_rx.clone())));
        let mut consume = AbortOnDrop(tokio::spawn(engine::consume(
            shared.clone(),
            stop_rx.clone(),
        )));
        let tail_shared = shared.clone();
        let tail_stop = stop_rx.clone();
        let mut tail = AbortOnDrop(tokio::spawn(async move {
            tail_shared
                .endpoints
                .tail(&tail_shared.kafka, &tail_shared.cfg.group_id, tail_stop)
                .await
        }));
        drop(shared);
        let flat = |r: Result<Result<(), ForwarderError>, tokio::task::JoinError>| match r {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(()),
        };
        let res = tokio::select! {
            _ = shutdown.changed() => Ok(()),
            r = &mut consume.0 => flat(r),
            r = &mut sched.0 => flat(r),
            r = &mut tail.0 => flat(r),
        };
        let _ = stop_tx.send(true);
        for h in [&mut consume, &mut sched, &mut tail] {
            if !h.0.is_finished() {
                let _ = (&mut h.0).await;
            }
        }
        if let Err(e) = &res {
            tracing::error!(component = "forwarder", error = %e, "forwarder stopped");
        }
        res
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
