//! Shopify webhook subscriptions, managed by ingot, through the GraphQL Admin API
//! ([`super::graphql::ShopifyGraphql`]).
//!
//! # 3PA facts
//!
//! Sources: shopify.dev/docs/api/admin-graphql/2025-10/mutations/webhookSubscriptionCreate,
//! …/mutations/webhookSubscriptionDelete, …/payloads/WebhookSubscriptionDeletePayload,
//! …/objects/WebhookSubscription, …/queries/webhookSubscriptions; the changelog
//! "webhookSubscriptionCreate and webhookSubscriptionUpdate support all URI types"
//! (shopify.dev/changelog/consolidate-webhook-graphql-surfaces, effective API version
//! 2025-10); "Updates to webhook retry mechanism"
//! (shopify.dev/changelog/updates-to-webhook-retry-mechanism, 2024-09-10); "Best practices
//! for webhooks" (shopify.dev/docs/apps/build/webhooks/best-practices, "Recover from a
//! downtime event").
//!
//! - Listing: `webhookSubscriptions(first: 100, after: $after) { nodes { id topic uri }
//!   pageInfo { hasNextPage endCursor } }`: the subscriptions *this app* created on the
//!   shop (subscriptions of other apps, or made in the Shopify admin, are not visible).
//! - Creating: `webhookSubscriptionCreate(topic: ORDERS_CREATE, webhookSubscription:
//!   {uri: "https://…", format: JSON}) { webhookSubscription { id topic uri } userErrors
//!   { field message } }`. A refusal (a URL that is not https in production, a topic the
//!   app lacks the scope for, a duplicate for the same topic and address: "Address for
//!   this topic has already been taken") comes back as `userErrors` with HTTP 200 and a
//!   `null` `webhookSubscription`: ingot turns it into [`ConnectorError::Rejected`]
//!   (status 422, the messages).
//! - **Which shape, which version.** From 2025-10 (ingot's pinned
//!   [`super::graphql::API_VERSION`]) the input takes a unified `uri` (HTTPS, `pubsub://`,
//!   EventBridge ARN) and `WebhookSubscription.uri` reports it; `callbackUrl` (input) and
//!   `endpoint { ... on WebhookHttpEndpoint { callbackUrl } }` (object) are deprecated.
//!   Before 2025-10 only the old fields exist. [`Shape::for_version`] picks by the
//!   connection's `api_version`: `uri` for 2025-10 and later (and `unstable`), the
//!   `callbackUrl`/`endpoint` pair before.
//! - Deleting: `webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId
//!   userErrors { field message } }`. A subscription that no longer exists answers
//!   `userErrors` ("Webhook subscription does not exist") and a `null` id: that is
//!   treated as already gone (success), as the trait asks.
//! - **No "disabled" state.** Shopify does not pause a failing subscription: it retries a
//!   failed delivery 8 times over 4 hours (exponential backoff), and after that deletes
//!   a subscription created through the Admin API. So every listed subscription is
//!   `active`, [`WebhookSubscriptions::enable`] has nothing to do, and a subscription
//!   Shopify removed is simply missing from the list: the framework re-creates it and
//!   reconciles the topic's model from the last good time, which is Shopify's own advice
//!   ("re-subscribing to your webhook topics … and importing the missing data").
//! - Signing: every delivery carries `X-Shopify-Hmac-Sha256` computed with the app's
//!   client secret, not a per-subscription one
//!   ([`WebhookSubscriptions::secret_per_subscription`] is `false`): the connection must
//!   carry that secret in `webhook_secrets`.
//! - Topics: exactly those `ingot_standardize::shopify::route_topic` maps to a model
//!   (orders, customers, products × create/update(d)/delete), plus `APP_UNINSTALLED`
//!   (a lifecycle topic: ingest marks the connection disconnected).
//!
//! REST connections (`api = "rest"`) use this same GraphQL client for their
//! subscriptions: the webhook subscription API is the same app and token, and the REST
//! `webhooks.json` resource is legacy.

use super::graphql::ShopifyGraphql;
use crate::http::RetryPolicy;
use crate::subscriptions::{Subscription, WebhookSubscriptions};
use crate::{ConnectorConfig, ConnectorError};
use async_trait::async_trait;
use ingot_model::Model;
use serde::Deserialize;
use serde_json::{json, Value};

/// The topics ingot subscribes to, in the GraphQL `WebhookSubscriptionTopic` spelling.
pub const TOPICS: &[&str] = &[
    "ORDERS_CREATE",
    "ORDERS_UPDATED",
    "ORDERS_DELETE",
    "CUSTOMERS_CREATE",
    "CUSTOMERS_UPDATE",
    "CUSTOMERS_DELETE",
    "PRODUCTS_CREATE",
    "PRODUCTS_UPDATE",
    "PRODUCTS_DELETE",
    "APP_UNINSTALLED",
];

/// Subscriptions per list page (Shopify's connection maximum is 250; 100 keeps the
/// requested cost low).
const PER_PAGE: u32 = 100;
/// Bound on list pages.
const MAX_PAGES: u32 = 100;

/// Which fields carry the callback address in this API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 2025-10 and later: `uri` in the input and on the object.
    Uri,
    /// Before 2025-10: input `callbackUrl`, object `endpoint { ... on WebhookHttpEndpoint
    /// { callbackUrl } }`.
    Endpoint,
}

impl Shape {
    /// `YYYY-MM` versions before `2025-10` → [`Shape::Endpoint`]; anything else (later
    /// versions, `unstable`, unparsable) → [`Shape::Uri`].
    pub fn for_version(version: &str) -> Shape {
        let v = version.trim();
        let dated = v.len() == 7
            && v.as_bytes()[4] == b'-'
            && v.bytes()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_digit());
        if dated && v < "2025-10" {
            Shape::Endpoint
        } else {
            Shape::Uri
        }
    }

    fn node_fields(self) -> &'static str {
        match self {
            Shape::Uri => "id topic uri",
            Shape::Endpoint => {
                "id topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } }"
            }
        }
    }
}

/// The Shopify webhook subscriptions client.
pub struct ShopifySubscriptions {
    client: ShopifyGraphql,
    shape: Shape,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    id: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    endpoint: Option<Endpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    #[serde(default)]
    callback_url: Option<String>,
}

impl From<Node> for Subscription {
    fn from(n: Node) -> Self {
        let callback_url = n
            .uri
            .or_else(|| n.endpoint.and_then(|e| e.callback_url))
            .unwrap_or_default();
        Subscription {
            id: n.id,
            topic: n.topic,
            callback_url,
            // Shopify has no disabled state (module docs)
            active: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ListPage {
    nodes: Vec<Node>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListData {
    webhook_subscriptions: ListPage,
}

#[derive(Deserialize)]
struct UserError {
    #[serde(default)]
    field: Option<Value>,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePayload {
    #[serde(default)]
    webhook_subscription: Option<Node>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateData {
    webhook_subscription_create: CreatePayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletePayload {
    #[serde(default)]
    deleted_webhook_subscription_id: Option<String>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteData {
    webhook_subscription_delete: DeletePayload,
}

/// `userErrors` as one [`ConnectorError::Rejected`] (422: the 3PA refused the input).
fn rejected(what: &str, errors: &[UserError]) -> ConnectorError {
    let msgs: Vec<String> = errors
        .iter()
        .map(|e| match &e.field {
            Some(Value::Array(f)) if !f.is_empty() => {
                let path: Vec<String> = f
                    .iter()
                    .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
                    .collect();
                format!("{}: {}", path.join("."), e.message)
            }
            _ => e.message.clone(),
        })
        .collect();
    ConnectorError::Rejected {
        status: 422,
        message: format!("{what}: {}", msgs.join("; ")),
    }
}

/// Whether `userErrors` of a delete say the subscription is not there (already gone).
fn not_found(errors: &[UserError]) -> bool {
    errors.iter().any(|e| {
        let m = e.message.to_ascii_lowercase();
        m.contains("does not exist") || m.contains("not found") || m.contains("couldn't find")
    })
}

impl ShopifySubscriptions {
    /// A client for the connection (token, base URL, API version, retry budget from
    /// `config`).
    pub fn new(config: ConnectorConfig) -> Self {
        let shape = Shape::for_version(
            config
                .api_version
                .as_deref()
                .unwrap_or(super::graphql::API_VERSION),
        );
        ShopifySubscriptions {
            client: ShopifyGraphql::new(&config),
            shape,
        }
    }

    /// The same with an explicit retry policy (tests use short delays).
    pub fn with_policy(config: ConnectorConfig, policy: RetryPolicy) -> Self {
        let mut s = Self::new(config);
        s.client = s.client.with_retry_policy(policy);
        s
    }

    /// The callback-address shape used (from the API version).
    pub fn shape(&self) -> Shape {
        self.shape
    }
}

#[async_trait]
impl WebhookSubscriptions for ShopifySubscriptions {
    fn topics(&self) -> Vec<String> {
        TOPICS.iter().map(|t| t.to_string()).collect()
    }

    fn model_of(&self, topic: &str) -> Option<Model> {
        match topic.split_once('_')?.0 {
            "ORDERS" => Some(Model::Order),
            "CUSTOMERS" => Some(Model::Customer),
            "PRODUCTS" => Some(Model::Product),
            _ => None,
        }
    }

    fn secret_per_subscription(&self) -> bool {
        false
    }

    async fn list(&self) -> Result<Vec<Subscription>, ConnectorError> {
        let query = format!(
            "query IngotWebhookSubscriptions($first: Int!, $after: String) {{ \
             webhookSubscriptions(first: $first, after: $after) {{ nodes {{ {} }} \
             pageInfo {{ hasNextPage endCursor }} }} }}",
            self.shape.node_fields()
        );
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let d: ListData = self
                .client
                .execute(&query, json!({"first": PER_PAGE, "after": after}))
                .await?;
            let page = d.webhook_subscriptions;
            out.extend(page.nodes.into_iter().map(Subscription::from));
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(c)) if Some(&c) != after.as_ref() => after = Some(c),
                (true, _) => {
                    return Err(ConnectorError::NoProgress(
                        "webhookSubscriptions: hasNextPage without a new endCursor".into(),
                    ))
                }
                (false, _) => return Ok(out),
            }
        }
        Err(ConnectorError::NoProgress(format!(
            "more than {MAX_PAGES} pages of webhook subscriptions"
        )))
    }

    async fn create(
        &self,
        topic: &str,
        callback_url: &str,
        _secret: Option<&str>,
    ) -> Result<Subscription, ConnectorError> {
        // the topic is an enum: sent as a variable of type WebhookSubscriptionTopic!
        let query = format!(
            "mutation IngotWebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, \
             $webhookSubscription: WebhookSubscriptionInput!) {{ \
             webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {{ \
             webhookSubscription {{ {} }} userErrors {{ field message }} }} }}",
            self.shape.node_fields()
        );
        let input = match self.shape {
            Shape::Uri => json!({"uri": callback_url, "format": "JSON"}),
            Shape::Endpoint => json!({"callbackUrl": callback_url, "format": "JSON"}),
        };
        let d: CreateData = self
            .client
            .execute(
                &query,
                json!({"topic": topic, "webhookSubscription": input}),
            )
            .await?;
        let p = d.webhook_subscription_create;
        if !p.user_errors.is_empty() {
            return Err(rejected(
                &format!("webhookSubscriptionCreate {topic}"),
                &p.user_errors,
            ));
        }
        p.webhook_subscription
            .map(Subscription::from)
            .ok_or_else(|| {
                ConnectorError::Malformed(format!(
                    "webhookSubscriptionCreate {topic}: no webhookSubscription and no userErrors"
                ))
            })
    }

    /// Nothing to do: Shopify never disables a subscription (it deletes one after 8
    /// failed retries over 4 hours, and the framework re-creates what is missing). The
    /// subscription is answered as it is listed.
    async fn enable(&self, id: &str) -> Result<Subscription, ConnectorError> {
        self.list()
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| ConnectorError::Rejected {
                status: 404,
                message: format!("webhook subscription {id} does not exist"),
            })
    }

    async fn delete(&self, id: &str) -> Result<(), ConnectorError> {
        let query = "mutation IngotWebhookSubscriptionDelete($id: ID!) { \
                     webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId \
                     userErrors { field message } } }";
        let d: DeleteData = self.client.execute(query, json!({"id": id})).await?;
        let p = d.webhook_subscription_delete;
        if p.deleted_webhook_subscription_id.is_some() || p.user_errors.is_empty() {
            return Ok(());
        }
        if not_found(&p.user_errors) {
            return Ok(());
        }
        Err(rejected(
            &format!("webhookSubscriptionDelete {id}"),
            &p.user_errors,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_picks_the_callback_shape() {
        assert_eq!(Shape::for_version("2025-10"), Shape::Uri);
        assert_eq!(Shape::for_version("2026-01"), Shape::Uri);
        assert_eq!(Shape::for_version("unstable"), Shape::Uri);
        assert_eq!(Shape::for_version("2025-07"), Shape::Endpoint);
        assert_eq!(Shape::for_version("2024-01"), Shape::Endpoint);
    }

    #[test]
    fn topics_map_to_models_and_app_uninstalled_to_none() {
        let s = ShopifySubscriptions::new(ConnectorConfig::default());
        assert_eq!(s.model_of("ORDERS_UPDATED"), Some(Model::Order));
        assert_eq!(s.model_of("CUSTOMERS_DELETE"), Some(Model::Customer));
        assert_eq!(s.model_of("PRODUCTS_CREATE"), Some(Model::Product));
        assert_eq!(s.model_of("APP_UNINSTALLED"), None);
        assert!(!s.secret_per_subscription());
        // every model topic is one ingot's Shopify mapping handles, for the same model
        for t in TOPICS.iter().filter(|t| **t != "APP_UNINSTALLED") {
            let routed = ingot_standardize::shopify::route_topic(t).map(|(m, _)| m);
            assert_eq!(routed, s.model_of(t), "{t}");
            assert!(routed.is_some(), "{t}");
        }
    }
}
