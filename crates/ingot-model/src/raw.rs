use serde::{Deserialize, Serialize};

/// What a raw event asks of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawOp {
    /// A full or partial snapshot of the record.
    Upsert,
    /// The 3PA deleted the record (delete webhook, deletion feed).
    Delete,
}

/// Where a raw event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawSource {
    Webhook,
    Poll,
    Backfill,
    Replay,
}

/// The envelope on `raw.<provider>` (Avro schema `schemas/raw_event.avsc`): the 3PA payload
/// bytes untouched, plus routing metadata. Enumerations are kept as strings so the envelope
/// can evolve without Avro enum changes.
///
/// The Kafka key is the record key (`<connection_id>/<model>/<remote_id>`), or
/// `<connection_id>/unrouted/<event_id>` when ingest could not read the id (the processor
/// then sends the event to `raw.dlq` with its reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawEvent {
    /// Stable id of this delivery: `X-Shopify-Event-Id` (else `X-Shopify-Webhook-Id`),
    /// `X-WC-Webhook-Delivery-ID`, or a generated UUID for polled pages.
    pub event_id: String,
    pub tenant_id: String,
    pub connection_id: String,
    /// `shopify`, `woocommerce`, `netsuite`.
    pub provider: String,
    /// The 3PA's topic as received, e.g. `orders/create`, `order.updated`.
    pub topic: String,
    /// `webhook`, `poll`, `backfill`, `replay`.
    pub source: String,
    /// The 3PA API version the payload follows (`X-Shopify-API-Version`), if known.
    pub api_version: Option<String>,
    /// When ingot received it, RFC 3339 UTC.
    pub received_at: String,
    /// When the 3PA says the event happened (`X-Shopify-Triggered-At`), as sent.
    pub triggered_at: Option<String>,
    /// The request body / API object, byte for byte.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}
