//! The simulator's webhooks: the REST resource `/wp-json/wc/v3/webhooks` and the delivery
//! of subscribed topics to their `delivery_url` when the store's data changes.
//!
//! What it reproduces (sources: woocommerce-rest-api-docs `wp-api-v3/_webhooks.md`,
//! WooCommerce `class-wc-rest-webhooks-v2-controller.php` `prepare_item_for_response`,
//! `class-wc-webhook.php` `deliver`, `deliver_ping`, `failed_delivery`,
//! `generate_signature`, `wc-webhook-functions.php` `wc_is_webhook_valid_topic`):
//!
//! - `GET /webhooks` (paged: `page`, `per_page` ≤ 100, `status=all|active|paused|disabled`,
//!   `X-WP-Total`/`X-WP-TotalPages`), `POST /webhooks` (`topic` and `delivery_url`
//!   required; `name`, `secret`, `status` optional, default `active`; 201), `GET|PUT
//!   /webhooks/{id}`, `DELETE /webhooks/{id}?force=true` (without `force`: `501
//!   woocommerce_rest_trash_not_supported`). Unknown id: `404
//!   woocommerce_rest_shop_webhook_invalid_id`. Responses carry `id, name, status, topic,
//!   resource, event, hooks, delivery_url, date_created[_gmt], date_modified[_gmt],
//!   _links` and never the `secret`.
//! - Topics `<resource>.<event>` with resources `coupon, customer, order, product` and
//!   events `created, updated, deleted, restored` (else `400
//!   woocommerce_rest_webhook_invalid_topic`); `delivery_url` must be http(s).
//! - Saving a webhook as `active` (create, or a status change to `active`) sends the ping:
//!   a form body `webhook_id=<id>` with no `X-WC-Webhook-*` headers; its outcome does not
//!   count as a delivery.
//! - Deliveries: every store mutation (`create*`, `set_modified`/`touch`, `trash`,
//!   `delete`) is delivered, in order, to every `active` webhook of its topic: `POST
//!   delivery_url`, body = the record's REST JSON (`{"id": N}` for `*.deleted`), headers
//!   `Content-Type: application/json`, `User-Agent: WooCommerce/9.8.0 Hookshot
//!   (WordPress/6.8)`, `X-WC-Webhook-Source` (the site URL with `/`), `-Topic`,
//!   `-Resource`, `-Event`, `-Signature` (base64 HMAC-SHA256 of the body with the
//!   webhook's secret), `-ID`, `-Delivery-ID`. A response in 200..=302 is a success and
//!   resets the failure count; anything else (or no answer) is a failure: when the count
//!   is already above the threshold (`woocommerce_max_webhook_delivery_failures`, default
//!   5; [`super::WooSim::set_max_delivery_failures`]) the webhook becomes `disabled`,
//!   else the count grows by one. With the default, the 7th consecutive failure disables
//!   it. Re-enabling over REST does not reset the count. Trashing fires `*.deleted` (the
//!   topic's hooks include `woocommerce_trash_order` / `wp_trash_post`); editing a
//!   variation fires nothing here.
//! - Deliveries are asynchronous (WooCommerce queues them in Action Scheduler):
//!   [`super::WooSim::deliveries_settled`] waits until the queue is empty.

use super::{php_json, wp_error, Inner, WC_DATE};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::NaiveDateTime;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// WooCommerce's default `woocommerce_max_webhook_delivery_failures`.
pub const DEFAULT_MAX_DELIVERY_FAILURES: u32 = 5;

/// A webhook as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWebhook {
    pub id: u64,
    pub name: String,
    /// `active`, `paused` or `disabled`.
    pub status: String,
    pub topic: String,
    pub delivery_url: String,
    pub secret: String,
    /// Consecutive failed deliveries.
    pub failure_count: u32,
    created_gmt: NaiveDateTime,
    modified_gmt: NaiveDateTime,
}

/// One delivery attempt (pings excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub webhook_id: u64,
    pub delivery_id: u64,
    pub topic: String,
    /// The record's id.
    pub resource_id: u64,
    /// The HTTP status ingot answered, or why there was none.
    pub outcome: Result<u16, String>,
    /// Whether WooCommerce counts it as a success (200..=302).
    pub success: bool,
}

pub(super) struct Job {
    webhook_id: u64,
    topic: String,
    resource_id: u64,
    body: String,
}

#[derive(Default)]
struct HookState {
    webhooks: BTreeMap<u64, SimWebhook>,
    next_id: u64,
    next_delivery: u64,
    log: Vec<Delivery>,
    pings: Vec<(u64, Result<u16, String>)>,
    fail_deliveries: bool,
    max_failures: Option<u32>,
    reject_api: Option<u16>,
}

/// The webhooks part of the simulator (shared by the HTTP handlers and the worker).
pub(super) struct Hooks {
    state: Mutex<HookState>,
    queue: tokio::sync::mpsc::UnboundedSender<Job>,
    pending: crate::settle::Pending,
    client: reqwest::Client,
}

impl Hooks {
    /// The hooks and the receiving end of their delivery queue (for [`run_worker`]).
    pub(super) fn new() -> (Hooks, tokio::sync::mpsc::UnboundedReceiver<Job>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let state = HookState {
            next_id: 1,
            next_delivery: 1,
            ..HookState::default()
        };
        (
            Hooks {
                state: Mutex::new(state),
                queue: tx,
                pending: crate::settle::Pending::default(),
                client: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap_or_default(),
            },
            rx,
        )
    }

    fn lock(&self) -> MutexGuard<'_, HookState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the delivery of `topic` about record `resource_id` (body = its JSON) to
    /// every active webhook of that topic.
    pub(super) fn fire(&self, topic: &str, resource_id: u64, body: String) {
        let targets: Vec<u64> = self
            .lock()
            .webhooks
            .values()
            .filter(|w| w.status == "active" && w.topic == topic)
            .map(|w| w.id)
            .collect();
        for webhook_id in targets {
            self.pending.add();
            let job = Job {
                webhook_id,
                topic: topic.to_string(),
                resource_id,
                body: body.clone(),
            };
            if self.queue.send(job).is_err() {
                self.pending.done();
            }
        }
    }

    pub(super) fn webhooks(&self) -> Vec<SimWebhook> {
        self.lock().webhooks.values().cloned().collect()
    }

    pub(super) fn deliveries(&self) -> Vec<Delivery> {
        self.lock().log.clone()
    }

    pub(super) fn pings(&self) -> Vec<(u64, Result<u16, String>)> {
        self.lock().pings.clone()
    }

    pub(super) fn set_fail_deliveries(&self, yes: bool) {
        self.lock().fail_deliveries = yes;
    }

    pub(super) fn set_max_failures(&self, n: u32) {
        self.lock().max_failures = Some(n);
    }

    pub(super) fn set_reject_api(&self, status: Option<u16>) {
        self.lock().reject_api = status;
    }

    pub(super) fn set_status(&self, id: u64, status: &str) -> bool {
        match self.lock().webhooks.get_mut(&id) {
            Some(w) => {
                w.status = status.to_string();
                true
            }
            None => false,
        }
    }

    pub(super) fn remove(&self, id: u64) -> bool {
        self.lock().webhooks.remove(&id).is_some()
    }

    pub(super) async fn settled(&self) {
        self.pending.settled().await
    }
}

/// `X-WC-Webhook-Signature`: base64(HMAC-SHA256(secret, body)).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

const USER_AGENT: &str = "WooCommerce/9.8.0 Hookshot (WordPress/6.8)";

/// Delivers queued jobs one at a time, in order, and applies `failed_delivery()`.
pub(super) async fn run_worker(
    inner: Arc<Inner>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Job>,
) {
    while let Some(job) = rx.recv().await {
        deliver(&inner, job).await;
        inner.hooks.pending.done();
    }
}

async fn deliver(inner: &Inner, job: Job) {
    let hooks = &inner.hooks;
    let (webhook, delivery_id, fail) = {
        let mut s = hooks.lock();
        let Some(w) = s.webhooks.get(&job.webhook_id).cloned() else {
            return;
        };
        if w.status != "active" {
            return;
        }
        let d = s.next_delivery;
        s.next_delivery += 1;
        (w, d, s.fail_deliveries)
    };
    let (resource, event) = job.topic.split_once('.').unwrap_or((&job.topic, ""));
    let outcome: Result<u16, String> = if fail {
        Err("simulated: delivery URL cannot be reached".into())
    } else {
        hooks
            .client
            .post(&webhook.delivery_url)
            .header("content-type", "application/json")
            .header("user-agent", USER_AGENT)
            .header("x-wc-webhook-source", format!("{}/", super::SITE))
            .header("x-wc-webhook-topic", &job.topic)
            .header("x-wc-webhook-resource", resource)
            .header("x-wc-webhook-event", event)
            .header(
                "x-wc-webhook-signature",
                signature(&webhook.secret, job.body.as_bytes()),
            )
            .header("x-wc-webhook-id", webhook.id.to_string())
            .header("x-wc-webhook-delivery-id", delivery_id.to_string())
            .body(job.body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    };
    let success = matches!(outcome, Ok(200..=302));
    let mut s = hooks.lock();
    let max = s.max_failures.unwrap_or(DEFAULT_MAX_DELIVERY_FAILURES);
    if let Some(w) = s.webhooks.get_mut(&webhook.id) {
        if success {
            w.failure_count = 0;
        } else if w.failure_count > max {
            // class-wc-webhook.php failed_delivery(): `$failures > max` → disabled
            w.status = "disabled".into();
        } else {
            w.failure_count += 1;
        }
    }
    s.log.push(Delivery {
        webhook_id: webhook.id,
        delivery_id,
        topic: job.topic,
        resource_id: job.resource_id,
        outcome,
        success,
    });
}

/// The ping WooCommerce sends when a webhook is saved as active.
async fn ping(inner: &Inner, id: u64, url: &str) {
    let outcome = inner
        .hooks
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", USER_AGENT)
        .body(format!("webhook_id={id}"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string());
    inner.hooks.lock().pings.push((id, outcome));
}

fn render(inner: &Inner, w: &SimWebhook) -> Value {
    let tz = inner.config.timezone;
    let (resource, event) = w.topic.split_once('.').unwrap_or((&w.topic, ""));
    let hook = match (resource, event) {
        ("order", "created") => vec!["woocommerce_new_order"],
        ("order", "updated") => vec!["woocommerce_update_order", "woocommerce_order_refunded"],
        ("order", "deleted") => vec!["wp_trash_post"],
        ("order", "restored") => vec!["untrashed_post"],
        ("customer", "created") => vec!["user_register", "woocommerce_created_customer"],
        ("customer", "updated") => vec!["profile_update", "woocommerce_update_customer"],
        ("customer", "deleted") => vec!["delete_user"],
        ("product", "created") => vec!["woocommerce_process_product_meta"],
        ("product", "updated") => vec!["woocommerce_process_product_meta"],
        ("product", "deleted") => vec!["wp_trash_post"],
        ("product", "restored") => vec!["untrashed_post"],
        _ => vec![],
    };
    json!({
        "id": w.id,
        "name": w.name,
        "status": w.status,
        "topic": w.topic,
        "resource": resource,
        "event": event,
        "hooks": hook,
        "delivery_url": w.delivery_url,
        "date_created": tz.to_local(w.created_gmt).format(WC_DATE).to_string(),
        "date_created_gmt": w.created_gmt.format(WC_DATE).to_string(),
        "date_modified": tz.to_local(w.modified_gmt).format(WC_DATE).to_string(),
        "date_modified_gmt": w.modified_gmt.format(WC_DATE).to_string(),
        "_links": {
            "self": [{"href": format!("{}/wp-json/wc/v3/webhooks/{}", inner.base_url, w.id)}],
            "collection": [{"href": format!("{}/wp-json/wc/v3/webhooks", inner.base_url)}],
        },
    })
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=UTF-8")],
        php_json(v),
    )
        .into_response()
}

fn valid_topic(topic: &str) -> bool {
    matches!(
        topic.split_once('.'),
        Some((
            "coupon" | "customer" | "order" | "product",
            "created" | "updated" | "deleted" | "restored"
        ))
    )
}

fn valid_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Auth and the `reject_api` fault; `Err` is the answer.
#[allow(clippy::result_large_err)]
fn gate(inner: &Inner, headers: &HeaderMap, q: &HashMap<String, String>) -> Result<(), Response> {
    if let Some(status) = inner.hooks.lock().reject_api {
        let s = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        return Err(wp_error(
            s,
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        ));
    }
    if !super::authorized(inner, headers, q) {
        return Err(wp_error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        ));
    }
    Ok(())
}

fn invalid_id() -> Response {
    wp_error(
        StatusCode::NOT_FOUND,
        "woocommerce_rest_shop_webhook_invalid_id",
        "Invalid ID.",
    )
}

pub(super) async fn list(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &headers, &q) {
        return r;
    }
    let per_page = match q.get("per_page").map(|v| v.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return wp_error(
                StatusCode::BAD_REQUEST,
                "rest_invalid_param",
                "Invalid parameter(s): per_page",
            )
        }
    };
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let status = q.get("status").map(String::as_str).unwrap_or("all");
    if !matches!(status, "all" | "active" | "paused" | "disabled") {
        return wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): status",
        );
    }
    let all: Vec<SimWebhook> = inner
        .hooks
        .webhooks()
        .into_iter()
        .filter(|w| status == "all" || w.status == status)
        .collect();
    let total = all.len();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|w| render(&inner, w))
        .collect();
    let mut r = json_response(StatusCode::OK, &Value::Array(items));
    let pages = total.div_ceil(per_page);
    if let Ok(v) = total.to_string().parse() {
        r.headers_mut().insert("x-wp-total", v);
    }
    if let Ok(v) = pages.to_string().parse() {
        r.headers_mut().insert("x-wp-totalpages", v);
    }
    r
}

pub(super) async fn create(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = gate(&inner, &headers, &q) {
        return r;
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_json",
            "Invalid JSON body passed.",
        );
    };
    let field = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(topic), Some(url)) = (field("topic"), field("delivery_url")) else {
        return wp_error(
            StatusCode::BAD_REQUEST,
            "rest_missing_callback_param",
            "Missing parameter(s): topic, delivery_url",
        );
    };
    if !valid_topic(&topic) {
        return wp_error(
            StatusCode::BAD_REQUEST,
            "woocommerce_rest_webhook_invalid_topic",
            "Webhook topic is required and must be valid.",
        );
    }
    if !valid_url(&url) {
        return wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): delivery_url",
        );
    }
    let status = field("status").unwrap_or_else(|| "active".into());
    if !matches!(status.as_str(), "active" | "paused" | "disabled") {
        return wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): status",
        );
    }
    let now = inner.now_naive();
    let w = {
        let mut s = inner.hooks.lock();
        let id = s.next_id;
        s.next_id += 1;
        let w = SimWebhook {
            id,
            name: field("name").unwrap_or_else(|| format!("Webhook created on {now}")),
            status,
            topic,
            delivery_url: url,
            secret: field("secret").unwrap_or_else(|| inner.config.consumer_secret.clone()),
            failure_count: 0,
            created_gmt: now,
            modified_gmt: now,
        };
        s.webhooks.insert(id, w.clone());
        w
    };
    if w.status == "active" {
        ping(&inner, w.id, &w.delivery_url).await;
    }
    json_response(StatusCode::CREATED, &render(&inner, &w))
}

pub(super) async fn get_one(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &headers, &q) {
        return r;
    }
    let found = id
        .parse::<u64>()
        .ok()
        .and_then(|id| inner.hooks.lock().webhooks.get(&id).cloned());
    match found {
        Some(w) => json_response(StatusCode::OK, &render(&inner, &w)),
        None => invalid_id(),
    }
}

pub(super) async fn update(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = gate(&inner, &headers, &q) {
        return r;
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_json",
            "Invalid JSON body passed.",
        );
    };
    let Some(id) = id.parse::<u64>().ok() else {
        return invalid_id();
    };
    let field = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(t) = field("topic") {
        if !valid_topic(&t) {
            return wp_error(
                StatusCode::BAD_REQUEST,
                "woocommerce_rest_webhook_invalid_topic",
                "Webhook topic must be valid.",
            );
        }
    }
    if let Some(u) = field("delivery_url") {
        if !valid_url(&u) {
            return wp_error(
                StatusCode::BAD_REQUEST,
                "rest_invalid_param",
                "Invalid parameter(s): delivery_url",
            );
        }
    }
    if let Some(s) = field("status") {
        if !matches!(s.as_str(), "active" | "paused" | "disabled") {
            return wp_error(
                StatusCode::BAD_REQUEST,
                "rest_invalid_param",
                "Invalid parameter(s): status",
            );
        }
    }
    let now = inner.now_naive();
    let (w, activated) = {
        let mut s = inner.hooks.lock();
        let Some(w) = s.webhooks.get_mut(&id) else {
            return invalid_id();
        };
        let was_active = w.status == "active";
        if let Some(v) = field("name") {
            w.name = v;
        }
        if let Some(v) = field("topic") {
            w.topic = v;
        }
        if let Some(v) = field("delivery_url") {
            w.delivery_url = v;
        }
        if let Some(v) = field("secret") {
            w.secret = v;
        }
        if let Some(v) = field("status") {
            // the failure count is left as it is (only a successful delivery resets it)
            w.status = v;
        }
        w.modified_gmt = now;
        (w.clone(), !was_active && w.status == "active")
    };
    if activated {
        ping(&inner, w.id, &w.delivery_url).await;
    }
    json_response(StatusCode::OK, &render(&inner, &w))
}

pub(super) async fn delete(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &headers, &q) {
        return r;
    }
    if !super::parse_bool(q.get("force")) {
        return wp_error(
            StatusCode::NOT_IMPLEMENTED,
            "woocommerce_rest_trash_not_supported",
            "Webhooks do not support trashing.",
        );
    }
    let removed = id
        .parse::<u64>()
        .ok()
        .and_then(|id| inner.hooks.lock().webhooks.remove(&id));
    match removed {
        Some(w) => json_response(StatusCode::OK, &render(&inner, &w)),
        None => invalid_id(),
    }
}
