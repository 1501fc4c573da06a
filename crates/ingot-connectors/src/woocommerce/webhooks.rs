//! WooCommerce webhooks, managed by ingot: the REST resource `/wp-json/wc/v3/webhooks`.
//!
//! # 3PA facts
//!
//! Sources: woocommerce-rest-api-docs `source/includes/wp-api-v3/_webhooks.md` and
//! developer.woocommerce.com/docs/apis/rest-api/v3/webhooks ("Webhooks properties",
//! "Topics"); WooCommerce `includes/rest-api/Controllers/Version2/class-wc-rest-webhooks-v2-controller.php`
//! (`prepare_item_for_response`); `includes/class-wc-webhook.php` (`deliver`,
//! `failed_delivery`, `get_new_delivery_id`, `generate_signature`); WooCommerce
//! `docs/building-a-woo-store/webhooks.md` ("Webhooks are disabled after 5 retries by
//! default ... use the `woocommerce_max_webhook_delivery_failures` filter").
//!
//! - `GET /webhooks?per_page=&page=` lists every webhook of the site (paged, `per_page`
//!   at most 100, total in `X-WP-Total`); `POST /webhooks` creates one from `name`,
//!   `topic`, `delivery_url` (http or https), `secret`, `status`; `PUT /webhooks/<id>`
//!   updates (here: `{"status": "active"}`); `DELETE /webhooks/<id>?force=true` removes
//!   it (webhooks cannot be trashed: without `force` WooCommerce answers 501); an unknown
//!   id is `404 woocommerce_rest_shop_webhook_invalid_id` (treated as already gone).
//! - A webhook in a response: `id` (integer), `name`, `status` (`active` delivers,
//!   `paused` was paused by an admin, `disabled` was turned off after delivery failures),
//!   `topic` (`<resource>.<event>`), `resource`, `event`, `hooks`, `delivery_url`,
//!   `date_created[_gmt]`, `date_modified[_gmt]`, `_links`. The `secret` is write-only:
//!   responses never carry it, so ingot cannot read back which secret an existing
//!   webhook signs with; it keeps the one it generated in the connection record.
//! - Deliveries are signed `X-WC-Webhook-Signature` = base64(HMAC-SHA256(secret, body));
//!   a response outside 2xx/301/302 is a failure. `failed_delivery()` keeps a consecutive
//!   failure count and sets the status to `disabled` when a failure finds the count
//!   already above `apply_filters('woocommerce_max_webhook_delivery_failures', 5)`;
//!   a success resets the count. Re-enabling over REST does not reset the count (only a
//!   successful delivery does).
//! - Topics ingot subscribes to: exactly those its WooCommerce mapping handles
//!   (`ingot_standardize::woocommerce`): `order.*` and `product.*` with `created`,
//!   `updated`, `deleted`, `restored` (restoring from the trash), `customer.*` with
//!   `created`, `updated`, `deleted` (customers have no trash).

use crate::http::{self, Client, RetryPolicy};
use crate::subscriptions::{Subscription, WebhookSubscriptions};
use crate::{ConnectorConfig, ConnectorError};
use async_trait::async_trait;
use ingot_model::Model;
use serde::Deserialize;

/// The topics ingot subscribes to, in WooCommerce's spelling (see the module docs).
pub const TOPICS: &[&str] = &[
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "product.created",
    "product.updated",
    "product.deleted",
    "product.restored",
];

/// The `name` ingot gives the webhooks it creates (shown in WooCommerce's admin).
pub const NAME_PREFIX: &str = "ingot";

/// Webhooks per page when listing (WooCommerce's maximum).
const PER_PAGE: u32 = 100;
/// Bound on list pages (10 000 webhooks).
const MAX_PAGES: u32 = 100;

/// The WooCommerce webhooks client (HTTP Basic auth with the consumer key/secret, retries
/// through [`crate::http::send`]).
pub struct WooCommerceWebhooks {
    config: ConnectorConfig,
    client: Client,
    policy: RetryPolicy,
}

/// A webhook as the REST API returns it (the fields ingot reads).
#[derive(Deserialize)]
struct Webhook {
    id: u64,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    delivery_url: String,
    #[serde(default)]
    status: String,
}

impl From<Webhook> for Subscription {
    fn from(w: Webhook) -> Self {
        Subscription {
            id: w.id.to_string(),
            topic: w.topic,
            callback_url: w.delivery_url,
            active: w.status == "active",
        }
    }
}

impl WooCommerceWebhooks {
    /// A client with the default retry policy (attempts from `config.max_attempts`).
    pub fn new(config: ConnectorConfig) -> Self {
        let policy = RetryPolicy::from_config(&config);
        Self::with_policy(config, policy)
    }

    /// A client with an explicit retry policy (tests use short delays).
    pub fn with_policy(config: ConnectorConfig, policy: RetryPolicy) -> Self {
        WooCommerceWebhooks {
            config,
            client: Client::new(),
            policy,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/wp-json/wc/v3/{path}",
            self.config.base_url.trim_end_matches('/')
        )
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let key = ConnectorConfig::exposed(&self.config.consumer_key);
        self.client
            .request(method, url)
            .basic_auth(
                key,
                self.config.consumer_secret.as_ref().map(|s| s.expose()),
            )
            .header("accept", "application/json")
    }

    fn one(body: &[u8], what: &str) -> Result<Subscription, ConnectorError> {
        serde_json::from_slice::<Webhook>(body)
            .map(Subscription::from)
            .map_err(|e| ConnectorError::Malformed(format!("{what}: expected a webhook: {e}")))
    }
}

/// A webhook id as WooCommerce takes it in a path: digits only.
fn numeric_id(id: &str) -> Result<u64, ConnectorError> {
    id.parse::<u64>().map_err(|_| ConnectorError::Rejected {
        status: 400,
        message: format!("{id:?} is not a WooCommerce webhook id"),
    })
}

#[async_trait]
impl WebhookSubscriptions for WooCommerceWebhooks {
    fn topics(&self) -> Vec<String> {
        TOPICS.iter().map(|t| t.to_string()).collect()
    }

    fn model_of(&self, topic: &str) -> Option<Model> {
        match topic.split_once('.')?.0 {
            "order" => Some(Model::Order),
            "customer" => Some(Model::Customer),
            "product" => Some(Model::Product),
            _ => None,
        }
    }

    fn secret_per_subscription(&self) -> bool {
        true
    }

    async fn list(&self) -> Result<Vec<Subscription>, ConnectorError> {
        let url = self.url("webhooks");
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let q = [
                ("per_page", PER_PAGE.to_string()),
                ("page", page.to_string()),
            ];
            let resp = http::send(&self.policy, || {
                self.request(reqwest::Method::GET, &url).query(&q)
            })
            .await?;
            let items: Vec<Webhook> = serde_json::from_slice(&resp.body).map_err(|e| {
                ConnectorError::Malformed(format!("GET webhooks: expected an array: {e}"))
            })?;
            let n = items.len() as u32;
            out.extend(items.into_iter().map(Subscription::from));
            let total = resp
                .headers
                .get("x-wp-total")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            let more = match total {
                Some(t) => out.len() < t && n > 0,
                None => n == PER_PAGE,
            };
            if !more {
                return Ok(out);
            }
        }
        Err(ConnectorError::NoProgress(format!(
            "more than {} pages of webhooks",
            MAX_PAGES
        )))
    }

    async fn create(
        &self,
        topic: &str,
        callback_url: &str,
        secret: Option<&str>,
    ) -> Result<Subscription, ConnectorError> {
        let url = self.url("webhooks");
        let mut body = serde_json::json!({
            "name": format!("{NAME_PREFIX} {topic}"),
            "topic": topic,
            "delivery_url": callback_url,
            "status": "active",
        });
        if let Some(s) = secret {
            body["secret"] = serde_json::Value::String(s.to_string());
        }
        let resp = http::send(&self.policy, || {
            self.request(reqwest::Method::POST, &url).json(&body)
        })
        .await?;
        Self::one(&resp.body, "POST webhooks")
    }

    async fn enable(&self, id: &str) -> Result<Subscription, ConnectorError> {
        let url = self.url(&format!("webhooks/{}", numeric_id(id)?));
        let body = serde_json::json!({"status": "active"});
        let resp = http::send(&self.policy, || {
            self.request(reqwest::Method::PUT, &url).json(&body)
        })
        .await?;
        Self::one(&resp.body, "PUT webhooks/<id>")
    }

    async fn delete(&self, id: &str) -> Result<(), ConnectorError> {
        let url = self.url(&format!("webhooks/{}", numeric_id(id)?));
        match http::send(&self.policy, || {
            self.request(reqwest::Method::DELETE, &url)
                .query(&[("force", "true")])
        })
        .await
        {
            Ok(_) | Err(ConnectorError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
