//! A 3PA's webhook subscriptions, managed by ingot (issue 11 part 2).
//!
//! When a connection with credentials is created and `[http] public_url` is set, the sync
//! engine makes sure the 3PA has one subscription per topic ingot maps
//! ([`WebhookSubscriptions::topics`]), each calling back
//! `<public_url>/webhooks/<provider>/<connection id>` ([`callback_url`]). On every
//! reconciliation it compares what the 3PA holds with that list, re-creates missing
//! subscriptions and re-enables disabled ones (then reconciles from the time the
//! subscription was last known healthy, to fill the gap); on `DELETE
//! /v1/connections/{id}` it removes them (only ingot's: those calling back to the
//! connection's URL). Providers without a webhooks API (NetSuite) have no implementation
//! ([`subscriptions_for`] answers `None`): polling carries them.
//!
//! # Adding a provider
//!
//! Implement [`WebhookSubscriptions`] (its calls retry transient failures through
//! [`crate::http::send`]) and add one line to [`subscriptions_for`]. Nothing else in the
//! engine names providers: it only calls the trait. A provider that signs every delivery
//! with an app-wide secret (Shopify) answers `false` to
//! [`WebhookSubscriptions::secret_per_subscription`]; its connections must then carry
//! that secret in `webhook_secrets`.

use crate::{ConnectorConfig, ConnectorError};
use async_trait::async_trait;
use ingot_model::{Model, Provider};
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
/// connector's budget, like [`crate::Connector`]'s; a refusal (401/403/4xx) is
/// [`ConnectorError::Rejected`] at once.
#[async_trait]
pub trait WebhookSubscriptions: Send + Sync {
    /// Every topic ingot subscribes to, in the 3PA's spelling.
    fn topics(&self) -> Vec<String>;
    /// The model whose changes a topic delivers (`None` for lifecycle topics such as
    /// Shopify's `APP_UNINSTALLED`): a gap in that topic's deliveries is filled by
    /// reconciling this model.
    fn model_of(&self, topic: &str) -> Option<Model>;
    /// `true` when each subscription takes its own signing secret (WooCommerce): ingot
    /// then generates one per connection and passes it to [`WebhookSubscriptions::create`].
    /// `false` when the 3PA signs with an app-wide secret (Shopify).
    fn secret_per_subscription(&self) -> bool;
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

/// The subscriptions registry, beside [`crate::connector_for`]: one line per provider
/// that has a webhooks API ingot manages; `None` means polling carries the connection.
pub fn subscriptions_for(
    provider: Provider,
    config: ConnectorConfig,
) -> Option<Box<dyn WebhookSubscriptions>> {
    match provider {
        Provider::WooCommerce => Some(Box::new(
            crate::woocommerce::webhooks::WooCommerceWebhooks::new(config),
        )),
        // Shopify: webhookSubscriptionCreate & co. over the GraphQL Admin API, for GraphQL
        // and REST connections alike (the same app and token; REST webhooks.json is legacy)
        Provider::Shopify => Some(Box::new(
            crate::shopify::subscriptions::ShopifySubscriptions::new(config),
        )),
        // NetSuite has no webhooks API ingot can subscribe to: polled on its own schedule
        Provider::NetSuite => None,
    }
}

/// Why a provider has no managed subscriptions (for the API's answer), when
/// [`subscriptions_for`] is `None`.
pub fn unmanaged_reason(provider: Provider) -> &'static str {
    match provider {
        Provider::NetSuite => "netsuite has no webhooks ingot can subscribe to",
        _ => "ingot does not manage this provider's webhook subscriptions yet (configure them in the 3PA by hand)",
    }
}

/// Why a `[http] public_url` is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("public_url {url:?}: {reason}")]
pub struct BadPublicUrl {
    pub url: String,
    pub reason: String,
}

/// Checks a public URL: absolute `http` or `https` with a host, no query, no fragment,
/// no credentials.
pub fn check_public_url(public_url: &str) -> Result<url::Url, BadPublicUrl> {
    let bad = |reason: &str| BadPublicUrl {
        url: public_url.to_string(),
        reason: reason.to_string(),
    };
    let u = url::Url::parse(public_url).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("needs a host"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("must have no query and no fragment"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(u)
}

/// The callback of a connection: `<public_url>/webhooks/<provider>/<connection id>` (the
/// route ingest serves, `POST /webhooks/{provider}/{connection_id}`), with the id
/// percent-encoded as a path segment and any path of `public_url` kept as a prefix.
pub fn callback_url(
    public_url: &str,
    provider: Provider,
    connection_id: &str,
) -> Result<String, BadPublicUrl> {
    let mut u = check_public_url(public_url)?;
    u.path_segments_mut()
        .map_err(|_| BadPublicUrl {
            url: public_url.to_string(),
            reason: "cannot be a base URL".into(),
        })?
        .pop_if_empty()
        .extend(["webhooks", provider.as_str(), connection_id]);
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_follow_the_ingest_route() {
        assert_eq!(
            callback_url("https://ingot.example.com", Provider::WooCommerce, "woo-1").unwrap(),
            "https://ingot.example.com/webhooks/woocommerce/woo-1"
        );
        assert_eq!(
            callback_url("https://h.example/base/", Provider::Shopify, "a b?#").unwrap(),
            "https://h.example/base/webhooks/shopify/a%20b%3F%23"
        );
        for bad in [
            "ftp://h",
            "not a url",
            "https://h/?q=1",
            "https://u:p@h",
            "http://h#f",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
        assert!(check_public_url("http://127.0.0.1:8080").is_ok());
    }

    #[test]
    fn only_providers_with_a_webhooks_api_have_subscriptions() {
        let c = ConnectorConfig::default();
        assert!(subscriptions_for(Provider::WooCommerce, c.clone()).is_some());
        assert!(subscriptions_for(Provider::Shopify, c.clone()).is_some());
        assert!(subscriptions_for(Provider::NetSuite, c).is_none());
    }
}
