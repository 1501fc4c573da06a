//! The simulator's webhook subscriptions: the GraphQL root fields `webhookSubscriptions`,
//! `webhookSubscriptionCreate`, `webhookSubscriptionDelete` (registered in
//! [`super::graphql::ROOT_FIELDS`]) and the delivery of subscribed topics to their
//! callback when the shop's data changes.
//!
//! What it reproduces (sources: shopify.dev/docs/api/admin-graphql/2025-10 mutations
//! `webhookSubscriptionCreate`, `webhookSubscriptionDelete`, object `WebhookSubscription`,
//! query `webhookSubscriptions`; shopify.dev/changelog/consolidate-webhook-graphql-surfaces
//! (`uri`, API 2025-10); shopify.dev/docs/apps/build/webhooks, "Delivery structure" and
//! "Verify the webhook" for the headers):
//!
//! - `webhookSubscriptions(first:, after:, topics: [..])`: the app's subscriptions by id,
//!   each `{id: "gid://shopify/WebhookSubscription/<n>", legacyResourceId, topic, format,
//!   uri, callbackUrl, endpoint: {__typename: "WebhookHttpEndpoint", callbackUrl},
//!   includeFields, metafieldNamespaces, filter, createdAt, updatedAt}`. Requested with an
//!   API version before 2025-10 the object has no `uri` (selecting it is an
//!   `undefinedField` error, as the schema of those versions would answer).
//! - `webhookSubscriptionCreate(topic:, webhookSubscription: {uri | callbackUrl, format})`:
//!   an unknown topic is a top-level `argumentLiteralsIncompatible` error (the enum does
//!   not have it); an address that is not an absolute `http(s)` URL is `userErrors
//!   [{field: ["webhookSubscription", "callbackUrl"], message: "Address is invalid"}]`
//!   (Shopify requires https; the simulator accepts http so that ingot on 127.0.0.1 can be
//!   reached); the same topic and address twice is `userErrors [{…, message: "Address for
//!   this topic has already been taken"}]`. Every refusal has `webhookSubscription: null`.
//! - `webhookSubscriptionDelete(id:)`: `{deletedWebhookSubscriptionId, userErrors: []}`;
//!   an unknown id is `{deletedWebhookSubscriptionId: null, userErrors: [{field: ["id"],
//!   message: "Webhook subscription does not exist"}]}`.
//! - Delivery: [`super::ShopifySim::upsert`] (`*/create` for a new record, else
//!   `orders/updated`, `customers/update`, `products/update`), [`super::ShopifySim::touch`]
//!   (the update topic) and [`super::ShopifySim::delete`] (`*/delete`, body `{"id": N}`)
//!   queue one delivery per subscription of the topic: `POST <uri>`, body the record's REST
//!   JSON exactly as the simulator serves it, headers `Content-Type: application/json`,
//!   `X-Shopify-Topic` (`orders/updated`), `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of
//!   the body with the app's client secret, [`super::ShopifySimConfig::app_secret`]),
//!   `X-Shopify-Shop-Domain`, `X-Shopify-API-Version` (the version the subscription was
//!   created with), `X-Shopify-Webhook-Id` (one per delivery), `X-Shopify-Event-Id` (one
//!   per change, shared by its deliveries), `X-Shopify-Triggered-At`.
//!   [`super::ShopifySim::uninstall_app`] delivers `app/uninstalled` (body: the shop) and
//!   removes every subscription, as uninstalling an app does. Changes made through
//!   [`super::ShopifySim::with_data`] or a page hook are not delivered.
//! - Deliveries are asynchronous (a background task, in order, never under the
//!   simulator's lock); [`super::ShopifySim::deliveries_settled`] waits until every queued
//!   delivery was answered. Shopify's retries and its removal of a subscription after
//!   repeated failures are not simulated: a failed delivery is logged, that is all
//!   ([`super::ShopifySim::remove_subscription`] stands in for the removal).

use super::graphql::{Ctx, GqlError};
use super::Resource;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The `WebhookSubscriptionTopic` values the simulator accepts.
pub const KNOWN_TOPICS: &[&str] = &[
    "ORDERS_CREATE",
    "ORDERS_UPDATED",
    "ORDERS_DELETE",
    "ORDERS_PAID",
    "ORDERS_CANCELLED",
    "ORDERS_FULFILLED",
    "ORDERS_PARTIALLY_FULFILLED",
    "ORDERS_EDITED",
    "CUSTOMERS_CREATE",
    "CUSTOMERS_UPDATE",
    "CUSTOMERS_DELETE",
    "PRODUCTS_CREATE",
    "PRODUCTS_UPDATE",
    "PRODUCTS_DELETE",
    "APP_UNINSTALLED",
    "BULK_OPERATIONS_FINISH",
    "SHOP_UPDATE",
];

/// A subscription as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSubscription {
    pub id: u64,
    /// GraphQL spelling (`ORDERS_UPDATED`).
    pub topic: String,
    /// Where deliveries go.
    pub uri: String,
    /// The API version of the request that created it (its deliveries' version).
    pub api_version: String,
    pub created_at: DateTime<Utc>,
}

impl SimSubscription {
    /// `gid://shopify/WebhookSubscription/<id>`.
    pub fn gid(&self) -> String {
        format!("gid://shopify/WebhookSubscription/{}", self.id)
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyDelivery {
    pub subscription_id: u64,
    /// REST spelling, as in `X-Shopify-Topic` (`orders/updated`).
    pub topic: String,
    /// The record's id (the shop's id for `app/uninstalled`).
    pub resource_id: u64,
    pub event_id: String,
    /// The HTTP status the callback answered, or why there was none.
    pub outcome: Result<u16, String>,
}

/// The subscription table (inside the simulator's state, under its lock).
#[derive(Debug, Default)]
pub(crate) struct SubTable {
    subs: BTreeMap<u64, SimSubscription>,
    next_id: u64,
    next_event: u64,
}

/// A queued delivery.
pub(crate) struct Job {
    subscription_id: u64,
    uri: String,
    api_version: String,
    topic: String,
    resource_id: u64,
    event_id: String,
    body: String,
}

/// The delivery side (outside the simulator's lock): queue, pending count, log.
pub(crate) struct Hooks {
    queue: tokio::sync::mpsc::UnboundedSender<Job>,
    pending: crate::settle::Pending,
    log: Mutex<Vec<ShopifyDelivery>>,
    client: reqwest::Client,
    app_secret: String,
    shop_domain: String,
}

/// The shop id the simulator reports (`app/uninstalled` body).
pub const SHOP_ID: u64 = 548_380_009;

impl Hooks {
    pub(crate) fn new(
        app_secret: String,
        shop_domain: String,
    ) -> (Hooks, tokio::sync::mpsc::UnboundedReceiver<Job>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Hooks {
                queue: tx,
                pending: crate::settle::Pending::default(),
                log: Mutex::new(Vec::new()),
                client: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap_or_default(),
                app_secret,
                shop_domain,
            },
            rx,
        )
    }

    fn log(&self) -> MutexGuard<'_, Vec<ShopifyDelivery>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn deliveries(&self) -> Vec<ShopifyDelivery> {
        self.log().clone()
    }

    pub(crate) async fn settled(&self) {
        self.pending.settled().await
    }

    pub(crate) fn shop_domain(&self) -> &str {
        &self.shop_domain
    }

    /// Queues `topic` (GraphQL spelling) about `resource_id` with `body` to every
    /// subscription of the topic in `table`.
    pub(crate) fn fire(&self, table: &mut SubTable, topic: &str, resource_id: u64, body: &str) {
        table.next_event += 1;
        let event_id = format!("sim-event-{:08}", table.next_event);
        let rest = rest_topic(topic);
        for s in table.subs.values().filter(|s| s.topic == topic) {
            self.pending.add();
            let job = Job {
                subscription_id: s.id,
                uri: s.uri.clone(),
                api_version: s.api_version.clone(),
                topic: rest.clone(),
                resource_id,
                event_id: event_id.clone(),
                body: body.to_string(),
            };
            if self.queue.send(job).is_err() {
                self.pending.done();
            }
        }
    }
}

/// `ORDERS_UPDATED` → `orders/updated`, `APP_UNINSTALLED` → `app/uninstalled`,
/// `BULK_OPERATIONS_FINISH` → `bulk_operations/finish`.
pub fn rest_topic(topic: &str) -> String {
    let t = topic.to_ascii_lowercase();
    for resource in [
        "bulk_operations",
        "orders",
        "customers",
        "products",
        "app",
        "shop",
    ] {
        if let Some(verb) = t.strip_prefix(resource).and_then(|r| r.strip_prefix('_')) {
            return format!("{resource}/{verb}");
        }
    }
    t
}

/// The topic a change of `res` delivers: `create`/`update`/`delete`.
pub(crate) fn change_topic(res: Resource, verb: Verb) -> &'static str {
    match (res, verb) {
        (Resource::Orders, Verb::Create) => "ORDERS_CREATE",
        (Resource::Orders, Verb::Update) => "ORDERS_UPDATED",
        (Resource::Orders, Verb::Delete) => "ORDERS_DELETE",
        (Resource::Customers, Verb::Create) => "CUSTOMERS_CREATE",
        (Resource::Customers, Verb::Update) => "CUSTOMERS_UPDATE",
        (Resource::Customers, Verb::Delete) => "CUSTOMERS_DELETE",
        (Resource::Products, Verb::Create) => "PRODUCTS_CREATE",
        (Resource::Products, Verb::Update) => "PRODUCTS_UPDATE",
        (Resource::Products, Verb::Delete) => "PRODUCTS_DELETE",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Create,
    Update,
    Delete,
}

impl SubTable {
    pub(crate) fn list(&self) -> Vec<SimSubscription> {
        self.subs.values().cloned().collect()
    }

    pub(crate) fn remove(&mut self, id: u64) -> bool {
        self.subs.remove(&id).is_some()
    }

    pub(crate) fn clear(&mut self) {
        self.subs.clear();
    }
}

/// Delivers queued jobs one at a time, in order.
pub(crate) async fn run_worker(
    hooks: Arc<Hooks>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Job>,
) {
    while let Some(job) = rx.recv().await {
        let sig = crate::woocommerce::webhooks::signature(&hooks.app_secret, job.body.as_bytes());
        let webhook_id = format!("sim-webhook-{}-{}", job.event_id, job.subscription_id);
        let outcome = hooks
            .client
            .post(&job.uri)
            .header("content-type", "application/json")
            .header("x-shopify-topic", &job.topic)
            .header("x-shopify-hmac-sha256", sig)
            .header("x-shopify-shop-domain", &hooks.shop_domain)
            .header("x-shopify-api-version", &job.api_version)
            .header("x-shopify-webhook-id", webhook_id)
            .header("x-shopify-event-id", &job.event_id)
            .header(
                "x-shopify-triggered-at",
                Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            )
            .body(job.body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string());
        hooks.log().push(ShopifyDelivery {
            subscription_id: job.subscription_id,
            topic: job.topic,
            resource_id: job.resource_id,
            event_id: job.event_id,
            outcome,
        });
        hooks.pending.done();
    }
}

fn has_uri(version: &str) -> bool {
    // `uri` exists from 2025-10 (and in `unstable`)
    !(version.len() == 7 && version.as_bytes()[4] == b'-' && version < "2025-10")
}

fn render(s: &SimSubscription, version: &str) -> Value {
    let t = s.created_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut v = json!({
        "__typename": "WebhookSubscription",
        "id": s.gid(),
        "legacyResourceId": s.id.to_string(),
        "topic": s.topic,
        "format": "JSON",
        "callbackUrl": s.uri,
        "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": s.uri},
        "includeFields": [],
        "metafieldNamespaces": [],
        "filter": null,
        "createdAt": t,
        "updatedAt": t,
    });
    if has_uri(version) {
        v["uri"] = json!(s.uri);
    }
    v
}

fn user_error(field: &[&str], message: &str) -> Value {
    json!({"__typename": "UserError", "field": field, "message": message})
}

/// `webhookSubscriptions(first:, after:, topics:)`: every subscription by id (the
/// projector pages the array by `first`/`after`).
pub(crate) fn list(ctx: &mut Ctx<'_>, a: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    if !a.contains_key("first") && !a.contains_key("last") {
        return Err(GqlError::new(
            "BAD_REQUEST",
            "you must provide one of first or last",
        ));
    }
    let topics: Option<Vec<String>> = a.get("topics").and_then(Value::as_array).map(|t| {
        t.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    });
    let version = ctx.version.to_string();
    Ok(Value::Array(
        ctx.g
            .subs
            .subs
            .values()
            .filter(|s| topics.as_ref().is_none_or(|t| t.contains(&s.topic)))
            .map(|s| render(s, &version))
            .collect(),
    ))
}

/// `webhookSubscriptionCreate(topic:, webhookSubscription:)`.
pub(crate) fn create(ctx: &mut Ctx<'_>, a: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    let topic = a.get("topic").and_then(Value::as_str).unwrap_or_default();
    if !KNOWN_TOPICS.contains(&topic) {
        return Err(GqlError::new(
            "argumentLiteralsIncompatible",
            format!(
                "Argument 'topic' on Field 'webhookSubscriptionCreate' has an invalid value ({topic}). Expected type 'WebhookSubscriptionTopic!'."
            ),
        ));
    }
    let input = a.get("webhookSubscription").cloned().unwrap_or(Value::Null);
    let uri = input
        .get("uri")
        .filter(|_| has_uri(ctx.version))
        .or_else(|| input.get("callbackUrl"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let refused = |msg: &str| {
        Ok(json!({
            "__typename": "WebhookSubscriptionCreatePayload",
            "webhookSubscription": null,
            "userErrors": [user_error(&["webhookSubscription", "callbackUrl"], msg)],
        }))
    };
    let valid = url::Url::parse(&uri)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !valid {
        return refused("Address is invalid");
    }
    let t = &mut ctx.g.subs;
    if t.subs.values().any(|s| s.topic == topic && s.uri == uri) {
        return refused("Address for this topic has already been taken");
    }
    t.next_id += 1;
    let id = 1_000_000 + t.next_id;
    let s = SimSubscription {
        id,
        topic: topic.to_string(),
        uri,
        api_version: ctx.version.to_string(),
        created_at: ctx.g.data.now(),
    };
    let v = render(&s, ctx.version);
    ctx.g.subs.subs.insert(id, s);
    Ok(json!({
        "__typename": "WebhookSubscriptionCreatePayload",
        "webhookSubscription": v,
        "userErrors": [],
    }))
}

/// `webhookSubscriptionDelete(id:)`.
pub(crate) fn delete(ctx: &mut Ctx<'_>, a: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    let gid = a.get("id").and_then(Value::as_str).unwrap_or_default();
    let id = gid
        .strip_prefix("gid://shopify/WebhookSubscription/")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            GqlError::new(
                "BAD_REQUEST",
                format!("Invalid global id '{gid}' for WebhookSubscription"),
            )
        })?;
    if ctx.g.subs.remove(id) {
        Ok(json!({
            "__typename": "WebhookSubscriptionDeletePayload",
            "deletedWebhookSubscriptionId": gid,
            "userErrors": [],
        }))
    } else {
        Ok(json!({
            "__typename": "WebhookSubscriptionDeletePayload",
            "deletedWebhookSubscriptionId": null,
            "userErrors": [user_error(&["id"], "Webhook subscription does not exist")],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_topics() {
        assert_eq!(rest_topic("ORDERS_UPDATED"), "orders/updated");
        assert_eq!(rest_topic("CUSTOMERS_DELETE"), "customers/delete");
        assert_eq!(rest_topic("APP_UNINSTALLED"), "app/uninstalled");
        assert_eq!(
            rest_topic("BULK_OPERATIONS_FINISH"),
            "bulk_operations/finish"
        );
        assert_eq!(
            rest_topic("ORDERS_PARTIALLY_FULFILLED"),
            "orders/partially_fulfilled"
        );
    }
}
