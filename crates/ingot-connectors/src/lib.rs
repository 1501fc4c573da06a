//! 3PA API clients for the sync engine (historical sync, reconciliation, polling).
//!
//! One module per provider implements [`Connector`]: it lists the records of a model
//! modified inside a time [`Window`] page by page, and reads the 3PA's deletion feed. It
//! owns pagination, the 3PA's rate limits (`Retry-After`, limit headers — it stays under
//! the limit instead of bouncing off it), retries with backoff, and time-zone/format
//! conversion of the window bounds. It does not interpret payloads beyond routing fields
//! (id, modified time): each record's JSON object is passed on byte for byte as the
//! payload of a raw event, with the mapping topic the standardizer expects
//! (`orders/rest`, `order.rest`, `salesOrder.rest`, ...).
//!
//! The sync engine (`ingot-sync`) owns windows, checkpoints and cursors: a connector is
//! stateless apart from its HTTP client and rate-limit pacing.

pub mod bulk;
pub mod http;
pub mod netsuite;
pub mod shopify;
pub mod subscriptions;
pub mod woocommerce;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ingot_model::{Model, Provider, Secret};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A time window on the 3PA's *modified* field: `from` inclusive, `to` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Opaque continuation of a listing inside one window (Shopify `page_info`, a
/// WooCommerce page number, a NetSuite offset). Serializable: the engine checkpoints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken(pub String);

/// One record as listed by the 3PA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRecord {
    pub model: Model,
    /// The 3PA id, as a string (never through f64).
    pub remote_id: String,
    /// The 3PA's modified time of this record.
    pub updated_at: DateTime<Utc>,
    /// The mapping topic for the standardizer (`orders/rest`, `order.rest`, `salesOrder.rest`...).
    pub topic: String,
    /// The record's JSON object, byte for byte as the 3PA sent it where possible.
    pub payload: Vec<u8>,
}

/// One deletion from the 3PA's deletion feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub model: Model,
    pub remote_id: String,
    pub deleted_at: DateTime<Utc>,
    /// The mapping topic of a delete (`orders/delete`, `order.deleted`, `salesorder.deleted`).
    pub topic: String,
    /// A payload the mapping accepts for that topic (e.g. `{"id": 123}`).
    pub payload: Vec<u8>,
}

/// A page of records (or deletions) and where the listing continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None`: the listing of this window is complete.
    pub next: Option<PageToken>,
}

/// Why a call failed. The engine retries nothing itself: connectors already retried
/// transient failures within their budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Still rate-limited after the retry budget.
    #[error("rate limited by the 3PA (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, connection errors that outlived the retry budget. The 3PA's fault; a later run may succeed.
    #[error("3PA unavailable: {0}")]
    Unavailable(String),
    /// 401/403/404 and other 4xx: bad credentials, missing scope, wrong URL. Needs a human.
    #[error("3PA rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// A response ingot cannot read.
    #[error("unreadable 3PA response: {0}")]
    Malformed(String),
    /// This connector cannot list that model or has no deletion feed for it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The connection's settings cannot serve the call (a NetSuite connection without
    /// its account's time zone). Needs a human: fix the connection.
    #[error("the connection's settings: {0}")]
    Misconfigured(String),
    /// The listing stopped advancing: the 3PA served nothing past the last continuation
    /// (it ignores its paging or filter parameters, or a continuation came back again).
    /// Retrying would loop, so the run fails instead.
    #[error("paging made no progress: {0}")]
    NoProgress(String),
}

/// Credentials and settings of one connection, as the connector needs them. The
/// credentials are [`Secret`]s: `Debug` prints `***`, and nothing serializes them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectorConfig {
    /// API base URL: `https://<shop>.myshopify.com`, the WooCommerce site URL, the NetSuite
    /// account's REST host — or a simulator/proxy.
    pub base_url: String,
    /// Shopify Admin API access token; NetSuite bearer token.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// WooCommerce consumer key / secret (basic auth).
    #[serde(default)]
    pub consumer_key: Option<Secret>,
    #[serde(default)]
    pub consumer_secret: Option<Secret>,
    /// The 3PA account's IANA time zone when its API needs local times (WooCommerce store,
    /// NetSuite account), e.g. `America/Los_Angeles`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Records per page requested.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Retry budget per request (attempts, including the first).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Which of the 3PA's APIs to use where it has several (Shopify: `graphql`, the
    /// default, or `rest` for custom apps on older API versions). `None`: the default.
    #[serde(default)]
    pub api: Option<String>,
    /// The 3PA API version to request (Shopify `YYYY-MM`); `None`: the connector's pinned
    /// version ([`shopify::GRAPHQL_API_VERSION`], [`shopify::API_VERSION`] for REST).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Whether the historical sync may use the 3PA's bulk export ([`Connector::bulk`]);
    /// `None`: yes.
    #[serde(default)]
    pub bulk_backfill: Option<bool>,
}

impl ConnectorConfig {
    /// The text of a credential, read only where it is sent ("" when absent).
    pub(crate) fn exposed(secret: &Option<Secret>) -> &str {
        secret.as_ref().map(Secret::expose).unwrap_or_default()
    }
}

/// A 3PA's listing API.
#[async_trait]
pub trait Connector: Send + Sync {
    fn provider(&self) -> Provider;
    /// Lists records of `model` whose modified time is inside `window`, ordered by a
    /// unique order (modified, id) or the 3PA's own cursor; `page` continues a listing.
    ///
    /// Contract (issue 11): every call makes progress (its `next` continues strictly past
    /// the previous one, or the call fails with [`ConnectorError::NoProgress`]), and a
    /// listing returns every record of the window whatever order the 3PA gives records
    /// that share a modified time (a page that ends inside such a tie lists the tie on
    /// its own by id, then continues past it). A page may be empty while `next` is set.
    async fn list(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<RemoteRecord>, ConnectorError>;
    /// Deletions of `model` inside `window` from the 3PA's deletion feed
    /// (`Err(Unsupported)` when the 3PA has none for that model).
    async fn deletions(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<Deletion>, ConnectorError>;
    /// The 3PA's bulk export, when it has one and this connection may use it: the
    /// historical sync then lists its whole window through it ([`bulk`]).
    fn bulk(&self) -> Option<&dyn bulk::BulkExport> {
        None
    }
}

/// The connector registry: one line per provider.
pub fn connector_for(provider: Provider, config: ConnectorConfig) -> Box<dyn Connector> {
    match provider {
        Provider::Shopify => shopify::connector(config),
        Provider::WooCommerce => Box::new(woocommerce::WooCommerceConnector::new(config)),
        Provider::NetSuite => Box::new(netsuite::NetSuiteConnector::new(config)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_config_debug_hides_credentials() {
        let c = ConnectorConfig {
            base_url: "https://s.myshopify.com".into(),
            access_token: Some("shpat_live".into()),
            consumer_key: Some("ck_live".into()),
            consumer_secret: None,
            ..Default::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("shpat_live") && !d.contains("ck_live"), "{d}");
        assert!(
            d.contains("access_token: Some(***)") && d.contains("consumer_secret: None"),
            "{d}"
        );
        assert_eq!(ConnectorConfig::exposed(&c.access_token), "shpat_live");
        assert_eq!(ConnectorConfig::exposed(&c.consumer_secret), "");
    }
}
