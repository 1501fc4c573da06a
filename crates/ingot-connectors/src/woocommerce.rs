//! WooCommerce connector: REST API v3 (`/wp-json/wc/v3`), HTTP Basic auth with the
//! consumer key/secret.
//!
//! # Listing (`list`)
//!
//! | model | endpoint | topic | filter |
//! |---|---|---|---|
//! | Order | `GET /orders` | `order.rest` | server side: `modified_after`/`modified_before`, `dates_are_gmt=true`, `orderby=modified&order=asc` |
//! | Product | `GET /products` (+ `GET /products/{id}/variations` per variable product) | `product.rest` | same as orders |
//! | Customer | `GET /customers` | `customer.rest` | **client side**: the customers endpoint has no date filter and no `orderby=modified` (it accepts `id`, `include`, `name`, `registered_date`), so the connector walks every customer by `orderby=id&order=asc` and keeps those whose `date_modified_gmt` is in the window |
//!
//! 3PA facts (woocommerce-rest-api-docs `_orders.md`/`_products.md`/`_customers.md`,
//! WooCommerce `WC_REST_CRUD_Controller::prepare_objects_query`, WordPress
//! `WP_Date_Query`; QUIRKS Q-W5, Q-W7, Q-W10):
//!
//! - `modified_after` and `modified_before` are **both exclusive** (`WP_Date_Query`
//!   `after`/`before` with `inclusive` false) and compare at second precision. With
//!   `dates_are_gmt=true` they are read as UTC and compared with `post_modified_gmt`;
//!   without it, as the store's local time. The connector sends UTC without offset
//!   (`2024-01-15T15:04:05`, the format Woo itself uses) with `dates_are_gmt=true`, and
//!   widens the bounds by one second (`after = floor(from) - 1s`, `before = floor(to) +
//!   1s`) so that the inclusive [`Window`] is covered; then it keeps exactly the records
//!   whose `date_modified_gmt` is in `[from, to]`. Adjacent windows `[a, b - 1ns]`,
//!   `[b, c]` therefore partition records exactly.
//! - `per_page` is at most 100 (default page size here: 100). Totals come in `X-WP-Total`.
//! - Times: only `date_modified_gmt` (UTC without `Z`) is read (Q-W7).
//!
//! # Paging under concurrent modification
//!
//! Plain page numbers over `orderby=modified` skip a record whenever an earlier record
//! leaves the result set (modified past `modified_before`, trashed, deleted) or moves to
//! its end while a listing is under way: every later record shifts one position left,
//! across the page boundary. The connector therefore pages by key: the [`PageToken`] (a
//! small JSON object) holds the last record's key (`date_modified_gmt`, `id`) and a
//! position hint. The next request restarts the filter at that second
//! (`modified_after = t - 1s`) with `offset` = hint − 1, so only records of that one
//! second precede the position; if the first record returned is already past the key
//! (something shifted), the connector steps back a page and re-reads; it emits only
//! records whose key is greater than the last one emitted. So a listing misses nothing
//! that existed from its start to its end, and never emits a record twice. A record
//! modified during the listing is emitted with its newest version if its new time is
//! still inside the window (else it belongs to a later window). The order of records
//! that share a second is assumed to be by id (WordPress adds no tie-breaker; MySQL
//! returns ties in primary-key order in practice); if it is not, the step-back check
//! re-reads and some records may be listed twice (harmless under the version rule),
//! never skipped unless the tie order changes between two requests.
//! Customers use the same scheme with the key `id`.
//!
//! # Variable products (the one payload that is not byte-exact)
//!
//! A variable product's variations are separate resources. For each listed product of
//! `type` `variable`, the connector fetches `GET /products/{id}/variations` (all pages,
//! `orderby=id&order=asc`) and appends them to the product object under the extra key
//! `_ingot_variations` (an array of the variation objects, each byte-exact), as the
//! WooCommerce mapping expects: the payload is the product's bytes with
//! `,"_ingot_variations":[...]` inserted before its closing brace. A product deleted
//! between the listing and the variations request (`404`) is skipped. Editing a variation
//! does not change its parent's `date_modified`, so a modified-window listing does not
//! see variation-only edits (known limitation; a periodic full product listing does).
//!
//! # Deletions
//!
//! WooCommerce has no deletion feed: a deleted record simply disappears from listings,
//! and trashing an order/product changes its `status` to `trash` and hides it from the
//! default listing (`status=any` excludes trash). `deletions` is therefore
//! `Err(Unsupported)`; deletions arrive only through `*.deleted` webhooks. A trashed
//! record can be found with `status=trash` (not done here), and a permanent deletion only
//! by diffing the full id list against the store.

use crate::http::{self, Client, RetryPolicy};
use crate::{
    Connector, ConnectorConfig, ConnectorError, Deletion, Page, PageToken, RemoteRecord, Window,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use ingot_model::{Model, Provider};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;

/// WooCommerce REST time format (no offset).
const WC_TIME: &str = "%Y-%m-%dT%H:%M:%S";
/// Maximum `per_page` WooCommerce accepts.
pub const MAX_PER_PAGE: u32 = 100;
/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 100;
/// Bound on page requests inside one `list` call while re-synchronizing on the key.
const MAX_STEPS: usize = 1000;

/// The WooCommerce connector (see the module docs).
pub struct WooCommerceConnector {
    config: ConnectorConfig,
    client: Client,
    policy: RetryPolicy,
}

/// Routing fields of a listed element.
#[derive(Deserialize)]
struct Routing {
    id: u64,
    #[serde(default)]
    date_modified_gmt: Option<String>,
    #[serde(default)]
    date_created_gmt: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The page token: where a listing continues.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Cursor {
    /// `date_modified_gmt` of the last record consumed (orders/products), `WC_TIME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    /// Id of the last record consumed.
    id: u64,
    /// Records of the filtered list (`modified >= t`, or all customers) up to and including it.
    pos: u64,
}

type Key = (Option<NaiveDateTime>, u64);

struct Row {
    key: Key,
    /// `date_modified_gmt` (else `date_created_gmt`).
    modified: NaiveDateTime,
    kind: Option<String>,
    raw: Box<RawValue>,
}

fn parse_wc_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), WC_TIME)
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok()
        })
        .and_then(|t| t.with_nanosecond(0))
}

fn floor_sec(t: DateTime<Utc>) -> NaiveDateTime {
    let n = t.naive_utc();
    n.with_nanosecond(0).unwrap_or(n)
}

impl WooCommerceConnector {
    /// A connector with the default retry policy (attempts from `config.max_attempts`).
    pub fn new(config: ConnectorConfig) -> Self {
        let policy = RetryPolicy::from_config(&config);
        Self::with_policy(config, policy)
    }

    /// A connector with an explicit retry policy (tests use short delays and timeouts).
    pub fn with_policy(config: ConnectorConfig, policy: RetryPolicy) -> Self {
        WooCommerceConnector {
            config,
            client: Client::new(),
            policy,
        }
    }

    fn per_page(&self) -> u32 {
        self.config
            .page_size
            .unwrap_or(DEFAULT_PER_PAGE)
            .clamp(1, MAX_PER_PAGE)
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/wp-json/wc/v3/{}",
            self.config.base_url.trim_end_matches('/'),
            path
        )
    }

    /// One GET with retries; returns the parsed array and `X-WP-Total`.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Vec<Box<RawValue>>, Option<u64>), ConnectorError> {
        let key = self.config.consumer_key.clone().unwrap_or_default();
        let secret = self.config.consumer_secret.clone();
        let url = self.url(path);
        let resp = http::send(&self.policy, || {
            self.client
                .get(&url)
                .basic_auth(&key, secret.as_deref())
                .query(query)
                .header("accept", "application/json")
        })
        .await?;
        let total = resp
            .headers
            .get("x-wp-total")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let items: Vec<Box<RawValue>> = serde_json::from_slice(&resp.body).map_err(|e| {
            ConnectorError::Malformed(format!("GET {path}: expected a JSON array: {e}"))
        })?;
        Ok((items, total))
    }

    fn rows(items: Vec<Box<RawValue>>, by_time: bool) -> Result<Vec<Row>, ConnectorError> {
        items
            .into_iter()
            .map(|raw| {
                let r: Routing = serde_json::from_str(raw.get()).map_err(|e| {
                    ConnectorError::Malformed(format!("listed element without a numeric id: {e}"))
                })?;
                let s = r
                    .date_modified_gmt
                    .as_deref()
                    .or(r.date_created_gmt.as_deref())
                    .ok_or_else(|| {
                        ConnectorError::Malformed(format!("record {}: no date_modified_gmt", r.id))
                    })?;
                let t = parse_wc_time(s).ok_or_else(|| {
                    ConnectorError::Malformed(format!(
                        "record {}: unreadable date_modified_gmt {s:?}",
                        r.id
                    ))
                })?;
                let key = if by_time {
                    (Some(t), r.id)
                } else {
                    (None, r.id)
                };
                Ok(Row {
                    key,
                    modified: t,
                    kind: r.kind,
                    raw,
                })
            })
            .collect()
    }

    /// All variations of a product (raw), or `None` if the product is gone (404).
    async fn variations(
        &self,
        product_id: u64,
    ) -> Result<Option<Vec<Box<RawValue>>>, ConnectorError> {
        let mut all = Vec::new();
        let mut page = 1u64;
        loop {
            let q = [
                ("per_page", MAX_PER_PAGE.to_string()),
                ("page", page.to_string()),
                ("orderby", "id".to_string()),
                ("order", "asc".to_string()),
            ];
            let (items, total) = match self
                .get(&format!("products/{product_id}/variations"), &q)
                .await
            {
                Ok(r) => r,
                Err(ConnectorError::Rejected { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let n = items.len() as u64;
            all.extend(items);
            let more = match total {
                Some(t) => (all.len() as u64) < t && n > 0,
                None => n == MAX_PER_PAGE as u64,
            };
            if !more {
                return Ok(Some(all));
            }
            page += 1;
        }
    }
}

/// The product bytes with `,"_ingot_variations":[...]` before the closing brace.
fn attach_variations(
    product: &str,
    variations: &[Box<RawValue>],
) -> Result<Vec<u8>, ConnectorError> {
    let trimmed = product.trim_end();
    let body = trimmed
        .strip_suffix('}')
        .ok_or_else(|| ConnectorError::Malformed("product is not a JSON object".into()))?;
    let mut out = String::with_capacity(
        product.len() + variations.iter().map(|v| v.get().len() + 1).sum::<usize>() + 32,
    );
    out.push_str(body);
    if !body.trim_end().ends_with('{') {
        out.push(',');
    }
    out.push_str("\"_ingot_variations\":[");
    for (i, v) in variations.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(v.get());
    }
    out.push_str("]}");
    Ok(out.into_bytes())
}

#[async_trait]
impl Connector for WooCommerceConnector {
    fn provider(&self) -> Provider {
        Provider::WooCommerce
    }

    async fn list(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<RemoteRecord>, ConnectorError> {
        let (path, topic, by_time) = match model {
            Model::Order => ("orders", "order.rest", true),
            Model::Product => ("products", "product.rest", true),
            Model::Customer => ("customers", "customer.rest", false),
        };
        let cursor: Option<Cursor> = match page {
            None => None,
            Some(p) => Some(serde_json::from_str(&p.0).map_err(|e| {
                ConnectorError::Malformed(format!("bad WooCommerce page token: {e}"))
            })?),
        };
        let per_page = self.per_page() as u64;
        let from = floor_sec(window.from);
        let to = floor_sec(window.to);
        // The lower bound of the server-side filter ("modified >= lower").
        let lower: NaiveDateTime = match cursor.as_ref().and_then(|c| c.t.as_deref()) {
            Some(t) => parse_wc_time(t).ok_or_else(|| {
                ConnectorError::Malformed(format!("bad WooCommerce page token time {t:?}"))
            })?,
            None => from,
        };
        let last: Option<Key> = cursor.as_ref().map(|c| {
            let t = if by_time {
                c.t.as_deref().and_then(parse_wc_time)
            } else {
                None
            };
            (t, c.id)
        });
        let mut offset = cursor.as_ref().map_or(0, |c| c.pos.saturating_sub(1));
        let mut base_query: Vec<(&str, String)> = vec![("per_page", per_page.to_string())];
        if by_time {
            let one = chrono::Duration::seconds(1);
            base_query.push(("modified_after", (lower - one).format(WC_TIME).to_string()));
            base_query.push(("modified_before", (to + one).format(WC_TIME).to_string()));
            base_query.push(("dates_are_gmt", "true".into()));
            base_query.push(("orderby", "modified".into()));
        } else {
            base_query.push(("orderby", "id".into()));
        }
        base_query.push(("order", "asc".into()));

        // Stepping back is for re-synchronizing the first read; never after stepping forward.
        let mut may_step_back = true;
        for _ in 0..MAX_STEPS {
            let mut q = base_query.clone();
            q.push(("offset", offset.to_string()));
            let (items, total) = self.get(path, &q).await?;
            let rows = Self::rows(items, by_time)?;
            let n = rows.len() as u64;
            let more = match total {
                Some(t) => offset + n < t && n > 0,
                None => n == per_page,
            };
            if rows.is_empty() {
                if offset > 0 && last.is_some() && may_step_back {
                    // The list shrank under us: step back.
                    offset = offset.saturating_sub(per_page);
                    continue;
                }
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            if let (Some(l), true) = (last, offset > 0 && may_step_back) {
                if rows[0].key > l {
                    // Records shifted left since the last page: re-read from earlier.
                    offset = offset.saturating_sub(per_page);
                    continue;
                }
            }
            let fresh: Vec<&Row> = rows
                .iter()
                .filter(|r| last.is_none_or(|l| r.key > l))
                .collect();
            if fresh.is_empty() {
                if more {
                    offset += n;
                    may_step_back = false;
                    continue;
                }
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            // Emit the fresh rows inside the window.
            let mut out = Vec::with_capacity(fresh.len());
            for row in &fresh {
                let modified = row.modified;
                if modified < from || modified > to {
                    continue;
                }
                let payload = if model == Model::Product && row.kind.as_deref() == Some("variable")
                {
                    match self.variations(row.key.1).await? {
                        Some(v) => attach_variations(row.raw.get(), &v)?,
                        None => continue,
                    }
                } else {
                    row.raw.get().as_bytes().to_vec()
                };
                out.push(RemoteRecord {
                    model,
                    remote_id: row.key.1.to_string(),
                    updated_at: modified.and_utc(),
                    topic: topic.to_string(),
                    payload,
                });
            }
            let next = if more {
                let Some(last_row) = rows.last() else {
                    return Ok(Page {
                        items: out,
                        next: None,
                    });
                };
                let (t, pos) = if by_time {
                    let t_new = last_row.key.0;
                    if t_new == Some(lower) {
                        (t_new, offset + n)
                    } else {
                        (
                            t_new,
                            rows.iter().filter(|r| r.key.0 == t_new).count() as u64,
                        )
                    }
                } else {
                    (None, offset + n)
                };
                let c = Cursor {
                    t: t.map(|t| t.format(WC_TIME).to_string()),
                    id: last_row.key.1,
                    pos,
                };
                Some(PageToken(
                    serde_json::to_string(&c)
                        .map_err(|e| ConnectorError::Malformed(e.to_string()))?,
                ))
            } else {
                None
            };
            return Ok(Page { items: out, next });
        }
        Err(ConnectorError::Malformed(format!(
            "GET {path}: paging did not converge after {MAX_STEPS} requests (the listing changes faster than it can be read)"
        )))
    }

    async fn deletions(
        &self,
        model: Model,
        _window: &Window,
        _page: Option<&PageToken>,
    ) -> Result<Page<Deletion>, ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "WooCommerce has no deletion feed for {model:?}: deleted records disappear from listings; deletions arrive only as *.deleted webhooks"
        )))
    }
}

/// Retry policy used by tests that want fast retries.
pub fn fast_policy(max_attempts: u32, timeout: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        timeout,
    }
}
