//! A 3PA's webhook subscriptions, managed by ingot (issue 11 part 2).
//!
//! When a connection with credentials is created and `[http] public_url` is set, the sync
//! engine makes sure the 3PA has one subscription per topic ingot maps
//! ([`WebhookSubscriptions::topics`]), each calling back
//! `<public_url>/webhooks/<provider>/<connection id>`. On every reconciliation it compares
//! what the 3PA holds with that list, re-creates missing subscriptions and re-enables
//! disabled ones (then reconciles from the last good cursor, to fill the gap); on
//! `DELETE /v1/connections/{id}` it removes them. Providers without a webhooks API
//! (NetSuite) have no implementation: polling carries them.

use crate::ConnectorError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One subscription as the 3PA reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The 3PA's id of the subscription (WooCommerce webhook id, Shopify
    /// `gid://shopify/WebhookSubscription/<n>`).
    pub id: String,
    /// The topic in the 3PA's spelling (`order.created`, `ORDERS_CREATE`).
    pub topic: String,
    /// Where the 3PA delivers.
    pub callback_url: String,
    /// `false` when the 3PA stopped delivering (WooCommerce `status: disabled|paused`).
    pub active: bool,
}

/// A 3PA's webhook subscriptions API. Calls retry transient failures within the
/// connector's budget, like [`crate::Connector`]'s.
#[async_trait]
pub trait WebhookSubscriptions: Send + Sync {
    /// Every topic ingot subscribes to, in the 3PA's spelling.
    fn topics(&self) -> Vec<String>;
    /// The subscriptions the 3PA holds for this app/credentials (all of them, not only
    /// ingot's: callers filter by callback URL).
    async fn list(&self) -> Result<Vec<Subscription>, ConnectorError>;
    /// Subscribes `topic` to `callback_url`. `secret` is the signing secret for 3PAs that
    /// take one per subscription (WooCommerce); Shopify signs with the app's secret.
    async fn create(
        &self,
        topic: &str,
        callback_url: &str,
        secret: Option<&str>,
    ) -> Result<Subscription, ConnectorError>;
    /// Makes a subscription the 3PA disabled deliver again.
    async fn enable(&self, id: &str) -> Result<Subscription, ConnectorError>;
    /// Removes a subscription; one already gone is not an error.
    async fn delete(&self, id: &str) -> Result<(), ConnectorError>;
}
