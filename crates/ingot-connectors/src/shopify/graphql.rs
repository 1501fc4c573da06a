//! A client of Shopify's GraphQL Admin API with cost-based throttling.
//!
//! [`ShopifyGraphql::execute`] sends one operation to
//! `POST <base>/admin/api/<version>/graphql.json` (body `{"query", "variables"}`, header
//! `X-Shopify-Access-Token`) and returns its `data`, deserialized. The transport (retries
//! with backoff on 5xx, timeouts and connection errors, `Retry-After` on a 429) is
//! [`crate::http::send`]; this module adds what is GraphQL's own:
//!
//! - **Cost** (shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, "Cost
//!   calculation", "Requested and actual cost", "Single query limit"): every answer carries
//!   `extensions.cost { requestedQueryCost, actualQueryCost, throttleStatus {
//!   maximumAvailable, currentlyAvailable, restoreRate } }` (points, points, points,
//!   points, points/second). Before execution the bucket must hold the *requested* cost;
//!   afterwards the difference to the *actual* cost is refunded. A single query may not
//!   request more than [`MAX_SINGLE_QUERY_COST`] (1000) points. The bucket refills at
//!   `restoreRate` (Standard plan: 100 points/s; Advanced 200; Plus 1000, same page).
//! - **Pacing**: the client keeps an estimate of the bucket ([`ThrottleStatus`] from the
//!   last answer, refilled at `restoreRate` since), and sends a request only when its
//!   expected cost (the `requestedQueryCost` that the same query text was charged last
//!   time, else the caller's estimate, else [`DEFAULT_COST_ESTIMATE`]) is available in
//!   the estimate. Until a first answer the bucket is assumed to be
//!   [`ASSUMED_MAXIMUM`] points restoring at [`ASSUMED_RESTORE_RATE`] points/s (the
//!   smallest bucket Shopify has documented), so a fresh client is never too eager.
//! - **Throttling**: over the bucket Shopify answers (HTTP 200) `{"errors": [{"message":
//!   "Throttled", "extensions": {"code": "THROTTLED"}}], "extensions": {"cost": …}}` with
//!   `actualQueryCost: null` and no `data` (same page: "All requests that are made after
//!   the limit has been exceeded are throttled and an {errors: [{ message: "Throttled" }]}
//!   error is returned"). The client waits `(requested − currentlyAvailable) /
//!   restoreRate` seconds (at most the retry policy's longest delay) and retries, within
//!   the attempt budget
//!   ([`crate::ConnectorConfig::max_attempts`]); past it, [`ConnectorError::RateLimited`].
//!   An HTTP 429 is retried by [`crate::http::send`] honouring `Retry-After`.
//! - **Errors**: any other entry of `errors` fails the call: `INTERNAL_SERVER_ERROR`
//!   (Shopify's code for a failure on its side) is [`ConnectorError::Unavailable`];
//!   everything else (`ACCESS_DENIED`, `MAX_COST_EXCEEDED`, a syntax or validation error,
//!   an unknown field) is [`ConnectorError::Rejected`] with status 200 and the messages.
//!   A body that is not a GraphQL response, or `data` that does not have the expected
//!   shape, is [`ConnectorError::Malformed`]. No answer of the 3PA makes it panic.
//!
//! The API version is [`API_VERSION`] unless the connection sets one
//! ([`crate::ConnectorConfig::api_version`]). One client is shared by every call of a
//! connection (its bucket estimate is per app and shop, as Shopify's bucket is).

use crate::http::{self, RetryPolicy};
use crate::{ConnectorConfig, ConnectorError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The GraphQL Admin API version requested: `2025-10` (a stable version; Shopify supports
/// each stable version for at least 12 months, shopify.dev/docs/api/usage/versioning).
/// Everything this crate queries (`orders`, `customers`, `products` with `query`,
/// `sortKey: UPDATED_AT | ID`, `pageInfo`; the `events` query added in 2024-10) exists in
/// it. A connection may override it (`api_version`).
pub const API_VERSION: &str = "2025-10";

/// The most a single query may request (shopify.dev rate-limits page, "Single query
/// limit"); Shopify refuses a query over it before running it (`MAX_COST_EXCEEDED`).
pub const MAX_SINGLE_QUERY_COST: f64 = 1000.0;

/// The bucket size assumed before the first answer reports one (points).
pub const ASSUMED_MAXIMUM: f64 = 1000.0;

/// The restore rate assumed before the first answer reports one (points/s): 50, the
/// lowest Shopify has documented (the older 1000-point, 50-points/s bucket).
pub const ASSUMED_RESTORE_RATE: f64 = 50.0;

/// Expected cost of a query text never sent before, when the caller gives no estimate.
pub const DEFAULT_COST_ESTIMATE: f64 = 100.0;

/// `extensions.cost.throttleStatus`: the bucket after this request (points, points,
/// points per second).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// `extensions.cost` of one answer (points). `actual_query_cost` is `None` on a throttled
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryCost {
    #[serde(default)]
    pub requested_query_cost: Option<f64>,
    #[serde(default)]
    pub actual_query_cost: Option<f64>,
    #[serde(default)]
    pub throttle_status: Option<ThrottleStatus>,
}

/// One entry of a GraphQL `errors` array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphqlError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub extensions: Option<Value>,
    #[serde(default)]
    pub path: Option<Value>,
}

impl GraphqlError {
    /// `extensions.code` (`THROTTLED`, `ACCESS_DENIED`, `MAX_COST_EXCEEDED`, …).
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

/// A successful answer: `data` and the cost it reported.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub data: T,
    pub cost: Option<QueryCost>,
}

/// The envelope of a GraphQL answer; `data` kept raw until the errors are checked.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct Extensions {
    #[serde(default)]
    cost: Option<QueryCost>,
}

/// Counters of one client (for figures and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientStats {
    /// Requests sent (every attempt, throttled ones included).
    pub requests: u64,
    /// `THROTTLED` answers received.
    pub throttled: u64,
    /// Sum of `actualQueryCost` of the answers (points).
    pub actual_cost: f64,
    /// Time spent waiting for the bucket before sending (pacing and throttle waits).
    pub waited: Duration,
}

/// The client-side estimate of the shop's bucket.
#[derive(Debug)]
struct Bucket {
    maximum: f64,
    restore_rate: f64,
    /// Available points at `at`.
    available: f64,
    at: Instant,
    /// Points reserved by requests in flight.
    reserved: f64,
    /// Last requested cost per query text.
    costs: HashMap<String, f64>,
    stats: ClientStats,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + dt * self.restore_rate).min(self.maximum);
        self.at = now;
    }
}

/// A GraphQL Admin API client for one shop (cheap to clone: clones share the bucket).
#[derive(Clone)]
pub struct ShopifyGraphql {
    endpoint: String,
    token: ingot_model::Secret,
    client: http::Client,
    policy: RetryPolicy,
    bucket: Arc<Mutex<Bucket>>,
}

impl std::fmt::Debug for ShopifyGraphql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyGraphql")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token)
            .finish()
    }
}

/// A wait as a `Duration`, never a panic on a hostile number (NaN, negative, infinite).
fn secs(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(s)
        .unwrap_or(http::MAX_RETRY_AFTER)
        .min(http::MAX_RETRY_AFTER)
}

impl ShopifyGraphql {
    /// A client for the shop at `config.base_url` (`https://<shop>.myshopify.com` or a
    /// simulator), token `config.access_token`, version `config.api_version` (default
    /// [`API_VERSION`]), attempt budget `config.max_attempts` (default 5).
    pub fn new(config: &ConnectorConfig) -> Self {
        let version = config.api_version.as_deref().unwrap_or(API_VERSION);
        ShopifyGraphql {
            endpoint: format!(
                "{}/admin/api/{version}/graphql.json",
                config.base_url.trim_end_matches('/')
            ),
            token: config.access_token.clone().unwrap_or_else(|| "".into()),
            client: http::Client::new(),
            policy: RetryPolicy::from_config(config),
            bucket: Arc::new(Mutex::new(Bucket {
                maximum: ASSUMED_MAXIMUM,
                restore_rate: ASSUMED_RESTORE_RATE,
                available: ASSUMED_MAXIMUM,
                at: Instant::now(),
                reserved: 0.0,
                costs: HashMap::new(),
                stats: ClientStats::default(),
            })),
        }
    }

    /// Replaces the retry policy (delays, per-attempt timeout, attempt budget).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// `<base>/admin/api/<version>/graphql.json`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current estimate of the bucket (points available now, maximum, restore rate).
    pub fn throttle_estimate(&self) -> ThrottleStatus {
        let mut b = self.lock();
        b.refill(Instant::now());
        ThrottleStatus {
            maximum_available: b.maximum,
            currently_available: (b.available - b.reserved).max(0.0),
            restore_rate: b.restore_rate,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ClientStats {
        self.lock().stats
    }

    /// Runs `query` with `variables` and returns its `data` as `T` (pacing, throttle
    /// retries and errors as in the module docs).
    pub async fn execute<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<T, ConnectorError> {
        Ok(self.execute_costed(query, variables, None).await?.data)
    }

    /// [`ShopifyGraphql::execute`] with the cost it reported; `estimate` is the expected
    /// requested cost (points) when this query text was never sent (a later send uses
    /// what Shopify charged).
    pub async fn execute_costed<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        estimate: Option<f64>,
    ) -> Result<Answer<T>, ConnectorError> {
        let body = serde_json::json!({ "query": query, "variables": variables });
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let expected = self.reserve(query, estimate).await;
            let result = http::send(&self.policy, || {
                self.client
                    .post(&self.endpoint)
                    .header("X-Shopify-Access-Token", self.token.expose())
                    .header("Accept", "application/json")
                    .json(&body)
            })
            .await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    self.settle(query, expected, None);
                    return Err(e);
                }
            };
            let env: Envelope = match serde_json::from_slice(&resp.body) {
                Ok(e) => e,
                Err(e) => {
                    self.settle(query, expected, None);
                    return Err(ConnectorError::Malformed(format!(
                        "graphql answer is not a GraphQL response: {e}"
                    )));
                }
            };
            let cost = env.extensions.and_then(|x| x.cost);
            self.settle(query, expected, cost.as_ref());
            let errors: Vec<GraphqlError> = match env.errors {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .into_iter()
                    .map(|e| {
                        serde_json::from_value(e.clone()).unwrap_or(GraphqlError {
                            message: e.to_string(),
                            extensions: None,
                            path: None,
                        })
                    })
                    .collect(),
                // Shopify answers some failures (a bad token on old versions) with a string
                Some(other) => vec![GraphqlError {
                    message: other
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(other.to_string()),
                    extensions: None,
                    path: None,
                }],
            };
            if errors.iter().any(|e| e.code() == Some("THROTTLED"))
                || errors
                    .iter()
                    .any(|e| e.message.eq_ignore_ascii_case("throttled"))
            {
                // a shop reporting no restore would make the wait endless: one wait is at
                // most the policy's longest delay
                let wait = self
                    .throttle_wait(query, cost.as_ref())
                    .min(self.policy.max_delay.max(Duration::from_millis(10)));
                self.lock().stats.throttled += 1;
                if attempt >= self.policy.max_attempts {
                    return Err(ConnectorError::RateLimited {
                        retry_after: Some(wait),
                    });
                }
                tracing::debug!(component = "connector", ?wait, "graphql throttled, waiting");
                self.lock().stats.waited += wait;
                tokio::time::sleep(wait).await;
                continue;
            }
            if !errors.is_empty() {
                let message = errors
                    .iter()
                    .map(|e| match e.code() {
                        Some(c) => format!("{c}: {}", e.message),
                        None => e.message.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                let message: String = message.chars().take(500).collect();
                if errors
                    .iter()
                    .any(|e| e.code() == Some("INTERNAL_SERVER_ERROR"))
                {
                    return Err(ConnectorError::Unavailable(format!("graphql: {message}")));
                }
                return Err(ConnectorError::Rejected {
                    status: resp.status,
                    message: format!("graphql: {message}"),
                });
            }
            let Some(data) = env.data.filter(|d| d.get() != "null") else {
                return Err(ConnectorError::Malformed(
                    "graphql answer without data or errors".into(),
                ));
            };
            let data = serde_json::from_str(data.get()).map_err(|e| {
                ConnectorError::Malformed(format!("graphql data of an unexpected shape: {e}"))
            })?;
            return Ok(Answer { data, cost });
        }
    }

    /// The expected cost of `query` (what it was charged last, else `estimate`, else the
    /// default), capped at the single-query limit.
    fn expected_cost(&self, query: &str, estimate: Option<f64>) -> f64 {
        let b = self.lock();
        b.costs
            .get(query)
            .copied()
            .or(estimate)
            .unwrap_or(DEFAULT_COST_ESTIMATE)
            .clamp(1.0, MAX_SINGLE_QUERY_COST)
    }

    /// Waits until the estimated bucket holds the expected cost of `query`, then reserves
    /// it; returns the reservation.
    async fn reserve(&self, query: &str, estimate: Option<f64>) -> f64 {
        let cost = self.expected_cost(query, estimate);
        loop {
            let wait = {
                let mut b = self.lock();
                b.refill(Instant::now());
                // a cost above the bucket can run only from a full bucket
                let need = cost.min(b.maximum);
                let free = b.available - b.reserved;
                if free >= need {
                    b.reserved += cost;
                    b.stats.requests += 1;
                    None
                } else {
                    Some(secs((need - free) / b.restore_rate.max(0.01)))
                }
            };
            match wait {
                None => return cost,
                Some(w) => {
                    let w = w.max(Duration::from_millis(2));
                    self.lock().stats.waited += w;
                    tokio::time::sleep(w).await;
                }
            }
        }
    }

    /// Releases a reservation and takes in what an answer reported.
    fn settle(&self, query: &str, reserved: f64, cost: Option<&QueryCost>) {
        let mut b = self.lock();
        b.reserved = (b.reserved - reserved).max(0.0);
        let now = Instant::now();
        b.refill(now);
        let Some(cost) = cost else { return };
        if let Some(r) = cost
            .requested_query_cost
            .filter(|r| r.is_finite() && *r >= 0.0)
        {
            b.costs.insert(query.to_string(), r);
        }
        if let Some(a) = cost
            .actual_query_cost
            .filter(|a| a.is_finite() && *a >= 0.0)
        {
            b.stats.actual_cost += a;
        }
        if let Some(t) = cost.throttle_status {
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if ok(t.maximum_available) && t.maximum_available > 0.0 {
                b.maximum = t.maximum_available;
            }
            if ok(t.restore_rate) && t.restore_rate > 0.0 {
                b.restore_rate = t.restore_rate;
            }
            if ok(t.currently_available) {
                // the shop's figure already counts this request; requests still in
                // flight are in `reserved`
                b.available = t.currently_available.min(b.maximum);
                b.at = now;
            }
        }
    }

    /// How long a throttled `query` waits: `(requested − available) / restoreRate` from
    /// the answer's figures (else the estimate's).
    fn throttle_wait(&self, query: &str, cost: Option<&QueryCost>) -> Duration {
        let b = self.lock();
        let requested = cost
            .and_then(|c| c.requested_query_cost)
            .or_else(|| b.costs.get(query).copied())
            .unwrap_or(DEFAULT_COST_ESTIMATE);
        let (available, rate) = match cost.and_then(|c| c.throttle_status) {
            Some(t) => (t.currently_available, t.restore_rate),
            None => (b.available - b.reserved, b.restore_rate),
        };
        let requested = requested.min(b.maximum);
        secs((requested - available) / rate.max(0.01)).max(Duration::from_millis(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_never_panic_on_hostile_numbers() {
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(-3.0), Duration::ZERO);
        assert_eq!(secs(f64::INFINITY), http::MAX_RETRY_AFTER);
        assert_eq!(secs(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn cost_extensions_parse() {
        let c: QueryCost = serde_json::from_str(
            r#"{"requestedQueryCost":252,"actualQueryCost":12,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":988.0,"restoreRate":50.0}}"#,
        )
        .unwrap_or_default();
        assert_eq!(c.requested_query_cost, Some(252.0));
        assert_eq!(c.actual_query_cost, Some(12.0));
        assert_eq!(
            c.throttle_status.map(|t| t.currently_available),
            Some(988.0)
        );
        let c: QueryCost =
            serde_json::from_str(r#"{"requestedQueryCost":252,"actualQueryCost":null}"#)
                .unwrap_or_default();
        assert_eq!(c.actual_query_cost, None);
    }

    #[tokio::test]
    async fn the_bucket_estimate_paces_after_an_answer() {
        let c = ShopifyGraphql::new(&ConnectorConfig {
            base_url: "http://127.0.0.1:1".into(),
            ..Default::default()
        });
        // an answer said: 10 of 100 available, restoring 1000/s
        let q = "{ shop { name } }";
        let r = c.reserve(q, Some(50.0)).await;
        c.settle(
            q,
            r,
            Some(&QueryCost {
                requested_query_cost: Some(50.0),
                actual_query_cost: Some(50.0),
                throttle_status: Some(ThrottleStatus {
                    maximum_available: 100.0,
                    currently_available: 10.0,
                    restore_rate: 1000.0,
                }),
            }),
        );
        let t = Instant::now();
        let r = c.reserve(q, None).await;
        // 40 points missing at 1000/s: ~40 ms
        assert!(
            t.elapsed() >= Duration::from_millis(30),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(r, 50.0);
    }
}
