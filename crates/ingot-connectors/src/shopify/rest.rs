//! Shopify REST Admin API connector (orders, customers, products, destroy events).
//!
//! 3PA facts it relies on (sources: shopify.dev/docs/api/admin-rest/usage/pagination,
//! shopify.dev/docs/api/usage/rate-limits, shopify.dev/docs/api/admin-rest/2024-04/resources/order,
//! …/resources/event, and `/work/shared/fixtures/QUIRKS.md` Q-S1, Q-S5, Q-S8, Q-S9):
//!
//! - Listing: `GET /admin/api/2024-04/<orders|customers|products>.json` with
//!   `updated_at_min`/`updated_at_max` (both inclusive; ISO-8601, sent as RFC 3339 UTC with
//!   whole seconds since Shopify times have second precision), `limit` (at most 250),
//!   `order=updated_at asc`, and for orders `status=any` (the default, `open`, hides closed
//!   and cancelled orders).
//! - Pagination: cursor-based, in the `Link` response header
//!   (`<…?page_info=X&limit=N>; rel="next"`, also `rel="previous"`; no header when there is
//!   one page). `page_info` is used exactly as returned; the next request carries only
//!   `page_info` and `limit`, the filters travel inside `page_info`.
//! - Deletions: `GET /admin/api/2024-04/events.json?filter=<Order|Product|Customer>&verb=destroy`
//!   with `created_at_min`/`created_at_max` (the event's time, i.e. when the record was
//!   deleted), same pagination; each event's `subject_id` is the deleted record's id.
//! - Rate limits (REST Admin, leaky bucket): a standard shop has a bucket of 40 requests
//!   that leaks 2 per second (Shopify Plus: 400 and 20/s, i.e. the bucket empties in 20 s);
//!   each answer reports `X-Shopify-Shop-Api-Call-Limit: used/size`; over the bucket Shopify
//!   answers 429 with `Retry-After: 2.0`. The connector paces itself to keep the bucket
//!   under [`PACE_FRACTION`] of its size (shared by all calls of one connector), and
//!   [`crate::http::send`] retries 429s honouring `Retry-After`.
//! - Auth: the Admin API access token in `X-Shopify-Access-Token`.
//! - Ids exceed 2^53 in docs samples (Q-S1): ids are read as `u64` or strings, never `f64`.
//! - Payloads: each element of the list is passed on byte for byte (Shopify escapes `/` as
//!   `\/`, so re-serializing would change the bytes, Q-S2).
//!
//! # Paging that cannot lose or loop (`list`)
//!
//! Many records can share one `updated_at` second (a bulk edit, an import, an app that
//! touches every order). Shopify's `page_info` continues a listing sorted by
//! `updated_at` from a boundary key; if records of one second came back in an order
//! other than by id, and a different one on the next request, a cursor inside that tie
//! would skip some of them and repeat others (issue 11). So the connector never pages
//! *inside* a tie, the same scheme as the WooCommerce and NetSuite connectors:
//!
//! 1. **Main phase** (token `{"v":1,"t":<done>}`: everything updated at or before the
//!    second `done` is listed). One request with filters, never a `page_info`:
//!    `updated_at_min = done + 1 s`, `updated_at_max = to`, `order=updated_at asc`. If
//!    the answer has no `rel="next"` link it is the last page: every row is emitted and
//!    the window is complete. Otherwise let `t` be the latest second on the page: every
//!    record updated before `t` is on this page (the primary sort is `updated_at`), so
//!    those rows are emitted; the rows of `t` (a tie that may go on past the page) are
//!    not.
//! 2. **Tie phase** (token `{"v":1,"t":<t>,"tie":true,"id":<last>}`): the records of
//!    second `t` alone, keyset-paged by id: `updated_at_min = updated_at_max = t` (both
//!    inclusive), `since_id = <last id emitted>`, `order=id asc`. Shopify sorts a
//!    `since_id` request by id ("Orders with the since_id parameter are now sorted by
//!    order ID", shopify.dev/changelog/orders-with-the-since_id-parameter-are-now-sorted-by-order-id,
//!    2017-09-18, written for exactly this case: "multiple orders … within the same
//!    second … wouldn't dependably return in the same order on subsequent requests"), a
//!    unique order. When the answer has no `rel="next"` link the main phase resumes with
//!    `done = t`.
//!
//! `updated_at_min`/`updated_at_max` are "last updated at or after / at or before date"
//! (REST Order reference, shopify.dev/docs/api/admin-rest/2024-04/resources/order, the same
//! wording for customers and products), `since_id` "after the specified ID". Shopify times
//! have second precision, so a second is listed exactly by `min = max = t`.
//!
//! Each main request moves `done` forward by at least a second and each tie request moves
//! the last id forward; an answer that does not (a full page with nothing after `done`, or
//! no id after `since_id`: the server ignores its lower bound or `since_id`) fails with
//! [`ConnectorError::NoProgress`] instead of looping. A record updated during the listing
//! moves to a later second and is listed there if that is still inside the window. Cost:
//! one extra request per full page (the tie listing of its last second, usually one short
//! page) and the rows of that second fetched twice. A token that is not this JSON (a raw
//! `page_info` checkpointed by an older version) is followed once as a `page_info` and its
//! page read like a main page (rows before its last second emitted, that second as a
//! tie). Rows are emitted in (`updated_at`, `id`) order.
//!
//! The deletion feed (`events.json`) keeps Shopify's `page_info` paging: events are listed
//! in their default `id asc` order, which is unique.
//!
//! The REST Admin API is "legacy" since 2024-10-01 (same pagination page); the GraphQL
//! connector ([`super::listing::ShopifyGraphqlConnector`]) is the default, this one stays
//! for custom apps on older API versions (`api = "rest"` on the connection).

use super::ties::{at as bound_secs, main_page, tie_page, Cursor, Row};
use crate::http::{self, RetryPolicy};
use crate::{
    Connector, ConnectorConfig, ConnectorError, Deletion, Page, PageToken, RemoteRecord, Window,
};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use ingot_model::{Model, Provider};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The REST Admin API version requested (shapes of the 2024-04 reference; the mapping in
/// `ingot-standardize` is written against it).
pub const API_VERSION: &str = "2024-04";

/// Default and maximum records per page (Shopify's `limit` maximum is 250).
pub const MAX_PAGE_SIZE: u32 = 250;

/// The pacer keeps the bucket's estimated level under this fraction of its size.
pub const PACE_FRACTION: f64 = 0.8;

/// A standard shop's REST bucket empties in 20 s (40 requests at 2/s; Plus: 400 at 20/s):
/// the leak rate assumed is `size / BUCKET_DRAIN_SECS` requests per second.
pub const BUCKET_DRAIN_SECS: f64 = 20.0;

/// The header reporting the bucket level: `used/size`.
pub const CALL_LIMIT_HEADER: &str = "x-shopify-shop-api-call-limit";

/// The REST resource of a model: (path and list key, event subject type, REST and delete topics).
fn resource(model: Model) -> (&'static str, &'static str, &'static str, &'static str) {
    match model {
        Model::Order => ("orders", "Order", "orders/rest", "orders/delete"),
        Model::Customer => (
            "customers",
            "Customer",
            "customers/rest",
            "customers/delete",
        ),
        Model::Product => ("products", "Product", "products/rest", "products/delete"),
    }
}

/// Client-side estimate of the shop's leaky bucket, shared by all requests of a connector.
#[derive(Debug)]
struct PacerState {
    /// Estimated bucket level (requests) at `at`.
    level: f64,
    at: Instant,
    /// Bucket size last reported (40 until a response says otherwise).
    size: f64,
    /// Requests sent whose answer has not come back (their cost is not in a header yet).
    in_flight: u32,
}

/// Paces requests so the shop's bucket stays under [`PACE_FRACTION`] of its size.
#[derive(Debug, Clone)]
pub struct Pacer {
    state: Arc<Mutex<PacerState>>,
    /// Leak rate override (requests/s); `None`: `size / BUCKET_DRAIN_SECS`.
    leak_per_sec: Option<f64>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new(None)
    }
}

impl Pacer {
    /// A pacer for a fresh bucket; `leak_per_sec` overrides the leak rate (requests/s).
    pub fn new(leak_per_sec: Option<f64>) -> Self {
        Pacer {
            state: Arc::new(Mutex::new(PacerState {
                level: 0.0,
                at: Instant::now(),
                size: 40.0,
                in_flight: 0,
            })),
            leak_per_sec,
        }
    }

    fn leak(&self, size: f64) -> f64 {
        self.leak_per_sec
            .unwrap_or(size / BUCKET_DRAIN_SECS)
            .max(0.01)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until one more request keeps the bucket under the threshold, then reserves it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.lock();
                let leak = self.leak(s.size);
                let now = Instant::now();
                s.level = (s.level - now.duration_since(s.at).as_secs_f64() * leak).max(0.0);
                s.at = now;
                let threshold = (s.size * PACE_FRACTION).max(1.0);
                if s.level + 1.0 <= threshold {
                    s.level += 1.0;
                    s.in_flight += 1;
                    None
                } else {
                    // the level comes from the 3PA's header: never trust it with a panic
                    // (overflow) or an endless wait
                    let secs = (s.level + 1.0 - threshold) / leak;
                    Some(
                        Duration::try_from_secs_f64(secs)
                            .unwrap_or(crate::http::MAX_RETRY_AFTER)
                            .min(crate::http::MAX_RETRY_AFTER),
                    )
                }
            };
            match wait {
                None => return,
                Some(w) => tokio::time::sleep(w.max(Duration::from_millis(5))).await,
            }
        }
    }

    /// Records an answer: `header` is the `X-Shopify-Shop-Api-Call-Limit` value when there
    /// was one. The level becomes the reported use plus the requests still in flight.
    pub fn release(&self, header: Option<&str>) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some((used, size)) = header.and_then(parse_call_limit) {
            s.size = size.max(1.0);
            s.level = used + f64::from(s.in_flight);
            s.at = Instant::now();
        }
    }
}

/// Parses `X-Shopify-Shop-Api-Call-Limit: 32/40` into (used, size).
pub fn parse_call_limit(v: &str) -> Option<(f64, f64)> {
    let (a, b) = v.trim().split_once('/')?;
    let used: u32 = a.trim().parse().ok()?;
    let size: u32 = b.trim().parse().ok()?;
    (size > 0).then_some((f64::from(used), f64::from(size)))
}

/// One link of a `Link` header (RFC 8288): target URL and `rel` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    pub rels: Vec<String>,
}

/// Parses a `Link` header value: `<url>; rel="next", <url>; rel="previous"`. Tolerates
/// spaces, unquoted `rel=next`, several rels in one (`rel="next last"`), other parameters,
/// and commas inside the `<…>` target. Invalid parts are skipped.
pub fn parse_link_header(value: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let url = after[..close].trim().to_string();
        let tail = &after[close + 1..];
        // parameters run to the next `,` that is followed by `<` (or to the end)
        let end = tail.find('<').unwrap_or(tail.len());
        let params = &tail[..end];
        let mut rels = Vec::new();
        for p in params.split([';', ',']) {
            let p = p.trim();
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("rel") {
                    let v = v.trim().trim_matches('"');
                    rels.extend(v.split_whitespace().map(|r| r.to_ascii_lowercase()));
                }
            }
        }
        out.push(Link { url, rels });
        rest = &tail[end..];
    }
    out
}

/// The `page_info` of the `rel="next"` link of a `Link` header value (percent-decoded,
/// i.e. exactly the value Shopify issued). `None` when there is no next page.
pub fn next_page_info(link_header: &str) -> Option<String> {
    let link = parse_link_header(link_header)
        .into_iter()
        .find(|l| l.rels.iter().any(|r| r == "next"))?;
    let url = url::Url::parse(&link.url).ok()?;
    let pi = url
        .query_pairs()
        .find(|(k, _)| k == "page_info")
        .map(|(_, v)| v.into_owned());
    pi
}

/// An id that is an integer or a string (never through f64).
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Int(u64),
    Str(String),
}

impl Id {
    fn into_string(self) -> Option<String> {
        match self {
            Id::Int(n) => Some(n.to_string()),
            Id::Str(s) => {
                let s = s.trim().to_string();
                (!s.is_empty()).then_some(s)
            }
        }
    }
}

/// The routing fields read from one listed record.
#[derive(Deserialize)]
struct Head {
    id: Id,
    updated_at: String,
}

/// The routing fields of one event.
#[derive(Deserialize)]
struct EventHead {
    subject_id: Id,
    #[serde(default)]
    subject_type: Option<String>,
    #[serde(default)]
    verb: Option<String>,
    created_at: String,
}

/// A list response `{"<key>": [ … ]}` with each element kept as raw bytes.
#[derive(Deserialize)]
struct ListBody<'a> {
    #[serde(borrow, default)]
    orders: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    customers: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    products: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
}

impl<'a> ListBody<'a> {
    fn take(self, key: &str) -> Option<Vec<&'a RawValue>> {
        match key {
            "orders" => self.orders,
            "customers" => self.customers,
            "products" => self.products,
            "events" => self.events,
            _ => None,
        }
    }
}

fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, ConnectorError> {
    ingot_model::parse_time(s, false)
        .map_err(|e| ConnectorError::Malformed(format!("{what} {s:?}: {e}")))
}

/// Formats a window bound for Shopify: RFC 3339 UTC, whole seconds (floored: Shopify
/// times have second precision, so a floored bound loses nothing; a floored lower bound
/// only widens the window).
fn bound(t: DateTime<Utc>) -> String {
    let floored = DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
    floored.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What a listing token says.
enum Token {
    Cursor(Cursor),
    /// A raw `page_info` (older checkpoints).
    PageInfo(String),
}

fn parse_token(p: &PageToken) -> Token {
    match Cursor::parse(p) {
        Some(c) => Token::Cursor(c),
        None => Token::PageInfo(p.0.clone()),
    }
}

/// The Shopify connector. Cheap to clone handles are not needed: share it behind an `Arc`
/// so that all calls for one shop share its pacer.
pub struct ShopifyConnector {
    config: ConnectorConfig,
    client: http::Client,
    policy: RetryPolicy,
    pacer: Pacer,
    page_size: u32,
}

impl ShopifyConnector {
    /// A connector for the shop at `config.base_url` (`https://<shop>.myshopify.com` or a
    /// simulator), token `config.access_token`, `config.page_size` (default and max 250)
    /// and `config.max_attempts` (default 5); `config.api_version` overrides
    /// [`API_VERSION`].
    pub fn new(config: ConnectorConfig) -> Self {
        let policy = RetryPolicy::from_config(&config);
        let page_size = config
            .page_size
            .unwrap_or(MAX_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        ShopifyConnector {
            config,
            client: http::Client::new(),
            policy,
            pacer: Pacer::default(),
            page_size,
        }
    }

    /// Replaces the retry policy (delays, per-attempt timeout).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the leak rate the pacer assumes (requests/s), for shops whose bucket does not
    /// empty in [`BUCKET_DRAIN_SECS`].
    pub fn with_leak_rate(mut self, per_sec: f64) -> Self {
        self.pacer = Pacer::new(Some(per_sec));
        self
    }

    fn endpoint(&self, file: &str) -> String {
        let version = self.config.api_version.as_deref().unwrap_or(API_VERSION);
        format!(
            "{}/admin/api/{version}/{file}.json",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// One paced GET with retries; returns the body and the next `page_info`.
    async fn get(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<(Vec<u8>, Option<String>), ConnectorError> {
        let token = ConnectorConfig::exposed(&self.config.access_token).to_string();
        self.pacer.acquire().await;
        let result = http::send(&self.policy, || {
            self.client
                .get(url)
                .query(query)
                .header("X-Shopify-Access-Token", token.as_str())
                .header("Accept", "application/json")
        })
        .await;
        match result {
            Ok(resp) => {
                let header = resp
                    .headers
                    .get(CALL_LIMIT_HEADER)
                    .and_then(|v| v.to_str().ok());
                self.pacer.release(header);
                let next = resp
                    .headers
                    .get_all(reqwest::header::LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_page_info);
                Ok((resp.body, next))
            }
            Err(e) => {
                self.pacer.release(None);
                Err(e)
            }
        }
    }

    /// One page of a listing: its rows and whether a `rel="next"` link says there is more.
    async fn rows(
        &self,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<(Vec<Row>, bool), ConnectorError> {
        let (body, next) = self.get(&self.endpoint(key), query).await?;
        let list: ListBody = serde_json::from_slice(&body)
            .map_err(|e| ConnectorError::Malformed(format!("{key} list: {e}")))?;
        let items = list.take(key).ok_or_else(|| {
            ConnectorError::Malformed(format!("no \"{key}\" array in the response"))
        })?;
        let mut out = Vec::with_capacity(items.len());
        for raw in items {
            let head: Head = serde_json::from_str(raw.get())
                .map_err(|e| ConnectorError::Malformed(format!("{key} element: {e}")))?;
            let text = head.id.into_string().ok_or_else(|| {
                ConnectorError::Malformed(format!("{key} element with an empty id"))
            })?;
            let id = text.parse::<u64>().map_err(|_| {
                ConnectorError::Malformed(format!("{key} element id {text:?} is not an integer"))
            })?;
            let updated_at = parse_time(&head.updated_at, "updated_at")?;
            out.push(Row {
                id,
                sec: updated_at.timestamp(),
                updated_at,
                payload: raw.get().as_bytes().to_vec(),
            });
        }
        Ok((out, next.is_some()))
    }

    /// The query of a request: the first one with filters, a continuation with only
    /// `limit` and `page_info`.
    fn query(
        &self,
        page: Option<&PageToken>,
        first: Vec<(&'static str, String)>,
    ) -> Vec<(&'static str, String)> {
        let mut q = vec![("limit", self.page_size.to_string())];
        match page {
            Some(t) => q.push(("page_info", t.0.clone())),
            None => q.extend(first),
        }
        q
    }
}

#[async_trait]
impl Connector for ShopifyConnector {
    fn provider(&self) -> Provider {
        Provider::Shopify
    }

    /// Records of `model` with `updated_at` in `window` (both ends inclusive), in
    /// (`updated_at`, `id`) order, by the main and tie phases of the module docs.
    async fn list(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<RemoteRecord>, ConnectorError> {
        let (key, _, topic, _) = resource(model);
        let from = window.from.timestamp();
        let to = window.to.timestamp();
        let record = |r: Row| RemoteRecord {
            model,
            remote_id: r.id.to_string(),
            updated_at: r.updated_at,
            topic: topic.to_string(),
            payload: r.payload,
        };
        let filters = |min: i64, max: i64, order: &str| {
            let mut q = vec![
                ("limit", self.page_size.to_string()),
                ("updated_at_min", bound_secs(min)),
                ("updated_at_max", bound_secs(max)),
                ("order", order.to_string()),
            ];
            if model == Model::Order {
                q.push(("status", "any".to_string()));
            }
            q
        };
        let (done, legacy) = match page.map(parse_token) {
            None => (from - 1, None),
            Some(Token::PageInfo(pi)) => (from - 1, Some(pi)),
            Some(Token::Cursor(c)) if c.tie => {
                // tie phase: second `t` alone, keyset-paged by id
                let (t, last) = (c.t, c.id);
                let mut q = filters(t, t, "id asc");
                q.push(("since_id", last.to_string()));
                let (rows, more) = self.rows(key, &q).await?;
                let (fresh, next) = tie_page(rows, more, (t, last), (from, to), || {
                    format!("{key}.json (since_id)")
                })?;
                return Ok(Page {
                    items: fresh.into_iter().map(record).collect(),
                    next: Some(next.token()?),
                });
            }
            Some(Token::Cursor(c)) => (c.t, None),
        };

        // main phase: one filtered request past `done` (or an older token's page_info)
        if legacy.is_none() && done >= to {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let q = match &legacy {
            Some(pi) => vec![
                ("limit", self.page_size.to_string()),
                ("page_info", pi.clone()),
            ],
            None => filters(done + 1, to, "updated_at asc"),
        };
        let (rows, more) = self.rows(key, &q).await?;
        let (kept, next) = main_page(rows, more, (done, to), || format!("{key}.json"))?;
        Ok(Page {
            items: kept.into_iter().map(record).collect(),
            next: next.map(|c| c.token()).transpose()?,
        })
    }

    /// Destroy events of `model` created inside `window` (the deletion time, both ends
    /// inclusive). Each becomes the delete topic with payload `{"id": <subject_id>}`.
    async fn deletions(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<Deletion>, ConnectorError> {
        let (_, subject, _, topic) = resource(model);
        let first = vec![
            ("filter", subject.to_string()),
            ("verb", "destroy".to_string()),
            ("created_at_min", bound(window.from)),
            ("created_at_max", bound(window.to)),
        ];
        let query = self.query(page, first);
        let (body, next) = self.get(&self.endpoint("events"), &query).await?;
        let list: ListBody = serde_json::from_slice(&body)
            .map_err(|e| ConnectorError::Malformed(format!("events list: {e}")))?;
        let items = list.take("events").ok_or_else(|| {
            ConnectorError::Malformed("no \"events\" array in the response".into())
        })?;
        let mut out = Vec::with_capacity(items.len());
        for raw in items {
            let ev: EventHead = serde_json::from_str(raw.get())
                .map_err(|e| ConnectorError::Malformed(format!("event: {e}")))?;
            // the filter already selects these; skip anything else defensively
            if ev.verb.as_deref().is_some_and(|v| v != "destroy")
                || ev
                    .subject_type
                    .as_deref()
                    .is_some_and(|t| !t.eq_ignore_ascii_case(subject))
            {
                continue;
            }
            let remote_id = ev.subject_id.into_string().ok_or_else(|| {
                ConnectorError::Malformed("event with an empty subject_id".into())
            })?;
            let payload = if remote_id.bytes().all(|b| b.is_ascii_digit()) {
                format!("{{\"id\":{remote_id}}}")
            } else {
                serde_json::json!({ "id": remote_id }).to_string()
            };
            out.push(Deletion {
                model,
                deleted_at: parse_time(&ev.created_at, "created_at")?,
                remote_id,
                topic: topic.to_string(),
                payload: payload.into_bytes(),
            });
        }
        Ok(Page {
            items: out,
            next: next.map(PageToken),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_and_previous() {
        let h = r#"<https://shop.myshopify.com/admin/api/2024-04/orders.json?page_info=abc&limit=3>; rel="previous", <https://shop.myshopify.com/admin/api/2024-04/orders.json?page_info=def-_x&limit=3>; rel="next""#;
        let links = parse_link_header(h);
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].rels, vec!["previous"]);
        assert_eq!(next_page_info(h).as_deref(), Some("def-_x"));
    }

    #[test]
    fn link_header_variants() {
        // only previous: last page
        assert_eq!(
            next_page_info(r#"<https://s/a.json?page_info=x&limit=1>; rel="previous""#),
            None
        );
        // unquoted, extra params, odd spacing, upper case
        assert_eq!(
            next_page_info("<https://s/a.json?limit=1&page_info=y>;title=\"a, b\" ;REL=next")
                .as_deref(),
            Some("y")
        );
        // percent-encoded page_info is decoded to the issued value
        assert_eq!(
            next_page_info(r#"<https://s/a.json?page_info=a%2Bb%3D&limit=1>; rel="next""#)
                .as_deref(),
            Some("a+b=")
        );
        // several rels in one link
        assert_eq!(
            next_page_info(r#"<https://s/a.json?page_info=z>; rel="last next""#).as_deref(),
            Some("z")
        );
        // garbage
        assert_eq!(next_page_info(""), None);
        assert_eq!(next_page_info("<not a url>; rel=next"), None);
        assert_eq!(next_page_info("<https://s/a.json?page_info=q"), None);
        assert!(parse_link_header("rel=next").is_empty());
    }

    #[test]
    fn call_limit_header() {
        assert_eq!(parse_call_limit("32/40"), Some((32.0, 40.0)));
        assert_eq!(parse_call_limit(" 1 / 400 "), Some((1.0, 400.0)));
        assert_eq!(parse_call_limit("1/0"), None);
        assert_eq!(parse_call_limit("x/40"), None);
    }

    #[test]
    fn bounds_are_utc_whole_seconds() {
        let t = DateTime::parse_from_rfc3339("2024-04-01T14:27:15.900-04:00")
            .map(|t| t.with_timezone(&Utc));
        assert_eq!(t.map(bound).ok().as_deref(), Some("2024-04-01T18:27:15Z"));
    }

    #[test]
    fn ids_never_through_floats() {
        let h: Head = serde_json::from_str(
            r#"{"id":820982911946154508,"updated_at":"2024-01-01T00:00:00-05:00"}"#,
        )
        .unwrap_or(Head {
            id: Id::Int(0),
            updated_at: String::new(),
        });
        assert_eq!(h.id.into_string().as_deref(), Some("820982911946154508"));
        assert!(serde_json::from_str::<Head>(r#"{"id":1.5,"updated_at":"x"}"#).is_err());
    }

    #[tokio::test]
    async fn pacer_waits_above_the_threshold() {
        let p = Pacer::new(Some(100.0));
        p.acquire().await;
        p.release(Some("40/40"));
        let t = Instant::now();
        p.acquire().await;
        // from 40 to 31 at 100/s: ~90 ms
        assert!(
            t.elapsed() >= Duration::from_millis(70),
            "{:?}",
            t.elapsed()
        );
    }
}
