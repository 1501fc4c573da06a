//! Pure mappings from 3PA payloads to ingot's common models (Order, Customer, Product).
//!
//! One module per provider (`shopify`, `woocommerce`, `netsuite`), each implementing
//! [`Mapping`]; [`mapping_for`] is the registry, the only place that lists providers.
//!
//! Invariants:
//! - no I/O, no clock: the output depends only on the raw event;
//! - never panics on any input: a bad payload is a [`StandardizeError`] (the processor's
//!   dead-letter reason), a topic ingot does not map is [`Outcome::Skip`];
//! - ids stay strings (never through f64), money stays exact decimals, times become UTC.

pub mod common;
pub mod netsuite;
pub mod shopify;
pub mod woocommerce;

use chrono::{DateTime, Utc};
use ingot_model::{Model, Provider, RawEvent, RecordData};

/// One standardized version of a record, or its deletion.
#[allow(clippy::large_enum_variant)] // produced and consumed one at a time
#[derive(Debug, Clone, PartialEq)]
pub enum Standardized {
    Upsert {
        remote_id: String,
        remote_created_at: Option<DateTime<Utc>>,
        /// The 3PA's modified time: the version of the record (DESIGN §3).
        remote_updated_at: DateTime<Utc>,
        data: RecordData,
    },
    Delete {
        model: Model,
        remote_id: String,
        /// When the deletion happened (the 3PA's event time, else ingot's receive time).
        deleted_at: DateTime<Utc>,
    },
}

impl Standardized {
    pub fn model(&self) -> Model {
        match self {
            Standardized::Upsert { data, .. } => data.model(),
            Standardized::Delete { model, .. } => *model,
        }
    }

    pub fn remote_id(&self) -> &str {
        match self {
            Standardized::Upsert { remote_id, .. } | Standardized::Delete { remote_id, .. } => {
                remote_id
            }
        }
    }
}

/// The result of standardizing one raw event.
#[allow(clippy::large_enum_variant)] // produced and consumed one at a time
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Record(Standardized),
    /// A topic ingot does not map (yet); counted by reason, not an error.
    Skip(&'static str),
}

/// Why a raw event could not be standardized. The `Display` text is the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandardizeError {
    #[error("malformed payload: {0}")]
    MalformedPayload(String),
    #[error("missing field {0}")]
    MissingField(&'static str),
    #[error("invalid field {field}: {reason}")]
    InvalidField { field: String, reason: String },
}

/// A provider's mapping: pure functions from its raw events to standardized records.
pub trait Mapping: Send + Sync {
    fn provider(&self) -> Provider;
    /// `<provider>/<n>`; bump `n` when the output of any payload changes.
    fn mapping_version(&self) -> &'static str;
    /// The model and operation a 3PA topic carries (`orders/create` → order upsert), or
    /// `None` for topics ingot does not map. Ingest uses this to build the record key.
    fn route(&self, topic: &str) -> Option<(Model, ingot_model::RawOp)>;
    /// Standardizes one raw event. Never panics.
    fn standardize(&self, event: &RawEvent) -> Result<Outcome, StandardizeError>;
}

/// The revision `n` of a mapping version `<provider>/<n>` (0 if it has none): the number
/// the version rule orders mapping versions by.
pub fn revision(mapping_version: &str) -> u32 {
    mapping_version
        .rsplit_once('/')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// The provider registry: adding a provider is one module and one line here.
pub fn mapping_for(provider: Provider) -> &'static dyn Mapping {
    match provider {
        Provider::Shopify => &shopify::ShopifyMapping,
        Provider::WooCommerce => &woocommerce::WooCommerceMapping,
        Provider::NetSuite => &netsuite::NetSuiteMapping,
    }
}
