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
//! # Paging that cannot lose or loop (orders, products)
//!
//! WordPress sorts `orderby=modified` on `post_modified` alone: records that share a
//! second come back in whatever order MySQL reads them (through a secondary index, not by
//! id), and that order may differ from one request to the next. A key `(modified, id)`
//! or an offset into such a tie therefore skips some of its records and repeats others
//! (issue 11: a sync that missed records and still said `done`, and one that looped). So
//! the connector never pages *inside* an unordered tie:
//!
//! 1. **Main phase** (token `{"v":1,"t":<done>}`): everything modified at or before the
//!    second `done` is listed. One request, always at offset 0: `modified_after = done`
//!    (exclusive, so `modified > done`), `modified_before = to + 1s`,
//!    `orderby=modified&order=asc`. If it is the last page (fewer than `per_page` rows, or
//!    `X-WP-Total` says so), every row is emitted and the window is complete. Otherwise
//!    let `t` be the modified second of the page's last row: every record modified before
//!    `t` is on this page (the primary sort is by modified), so those rows are emitted;
//!    the rows of `t` (a tie that may go on past the page) are not.
//! 2. **Tie phase** (token `{"v":1,"t":<t>,"tie":true,"id":<last id>,"pos":<n>}`): the
//!    records of second `t` alone (`modified_after = t - 1s`, `modified_before = t + 1s`),
//!    `orderby=id&order=asc`, a unique order, paged by offset. Each request starts one row
//!    before the position of the last id emitted; if that row is already past it (a
//!    record left the tie: modified again, trashed), the connector steps back a page;
//!    only ids greater than the last one are emitted. When the tie is exhausted the main
//!    phase resumes with `done = t`.
//!
//! Each main request moves `done` forward by at least one second and each tie request
//! moves the last id forward, so every call makes progress; a response that does not (the
//! server ignores `offset` or `modified_after`: only rows already covered come back on a
//! full page) fails with [`ConnectorError::NoProgress`] instead of looping. A record
//! modified during the listing gets a newer time: it leaves what was already covered and
//! is listed again later in this window if its new time is still inside it (else it
//! belongs to a later window). Cost: one extra request per full page (the tie listing of
//! its last second, usually a single short page) and the rows of that second fetched
//! twice. Tokens of the older format (`{"t","id","pos"}`, keyed on `(modified, id)`) are
//! read as a tie phase at their second.
//!
//! Customers have no date filter and are walked by `orderby=id&order=asc` (ids are
//! unique, so there are no ties), with the same position hint and step-back, keeping
//! those whose `date_modified_gmt` is inside the window.
//!
//! Sources: woocommerce-rest-api-docs `wp-api-v3/_orders.md` / `_products.md` ("List all
//! orders": `modified_after`, `modified_before`, `dates_are_gmt`, `offset`, `orderby` in
//! `date, id, include, title, slug, modified`), `_customers.md` (`orderby` in `id, include,
//! name, registered_date`), WordPress `WP_Date_Query` (exclusive `after`/`before`) and
//! `WP_Query` (`orderby` adds no tie-breaker).
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

pub mod webhooks;

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
/// Pages of one product's variations read before the listing gives up (10 000
/// variations at 100 per page, far past any store's).
const MAX_VARIATION_PAGES: u64 = 100;

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

/// The page token: where a listing continues (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Cursor {
    /// Token format: 1 = main/tie phases; 0 (absent) = the older `(modified, id)` key.
    #[serde(default, skip_serializing_if = "is_zero")]
    v: u8,
    /// Orders/products: main phase, the second up to which everything is listed; tie
    /// phase (and format 0), the tie's second. `WC_TIME`, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    /// Tie phase: listing the records of second `t` by id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tie: bool,
    /// Id of the last record emitted (tie phase, customers; 0: none yet).
    #[serde(default)]
    id: u64,
    /// Rows of the id-ordered list up to and including `id` (a position hint).
    #[serde(default)]
    pos: u64,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
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
        let key = ConnectorConfig::exposed(&self.config.consumer_key).to_string();
        let secret = self
            .config
            .consumer_secret
            .as_ref()
            .map(|s| s.expose().to_string());
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
        for page in 1..=MAX_VARIATION_PAGES {
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
        }
        // an X-WP-Total that is never reached, or full pages without end
        Err(ConnectorError::NoProgress(format!(
            "GET products/{product_id}/variations did not end after {MAX_VARIATION_PAGES} pages"
        )))
    }
    /// The raw record of a row (variable products get their variations attached), or
    /// `None` when the product vanished before its variations were read.
    async fn record(
        &self,
        model: Model,
        topic: &str,
        row: &Row,
    ) -> Result<Option<RemoteRecord>, ConnectorError> {
        let payload = if model == Model::Product && row.kind.as_deref() == Some("variable") {
            match self.variations(row.key.1).await? {
                Some(v) => attach_variations(row.raw.get(), &v)?,
                None => return Ok(None),
            }
        } else {
            row.raw.get().as_bytes().to_vec()
        };
        Ok(Some(RemoteRecord {
            model,
            remote_id: row.key.1.to_string(),
            updated_at: row.modified.and_utc(),
            topic: topic.to_string(),
            payload,
        }))
    }

    async fn records<'r>(
        &self,
        model: Model,
        topic: &str,
        rows: impl Iterator<Item = &'r Row>,
    ) -> Result<Vec<RemoteRecord>, ConnectorError> {
        let mut out = Vec::new();
        for row in rows {
            if let Some(r) = self.record(model, topic, row).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn token(c: &Cursor) -> Result<PageToken, ConnectorError> {
        serde_json::to_string(c)
            .map(PageToken)
            .map_err(|e| ConnectorError::Malformed(e.to_string()))
    }

    /// Orders and products: the main and tie phases of the module docs.
    async fn list_by_modified(
        &self,
        model: Model,
        path: &str,
        topic: &str,
        window: &Window,
        cursor: Option<Cursor>,
    ) -> Result<Page<RemoteRecord>, ConnectorError> {
        let per_page = u64::from(self.per_page());
        let one = chrono::Duration::seconds(1);
        let from = floor_sec(window.from);
        let to = floor_sec(window.to);
        let in_window = |t: NaiveDateTime| t >= from && t <= to;
        let time_of = |c: &Cursor| -> Result<NaiveDateTime, ConnectorError> {
            let t = c.t.as_deref().unwrap_or_default();
            parse_wc_time(t).ok_or_else(|| {
                ConnectorError::Malformed(format!("bad WooCommerce page token time {t:?}"))
            })
        };
        let common = |after: NaiveDateTime, before: NaiveDateTime, orderby: &str| {
            vec![
                ("per_page", per_page.to_string()),
                ("modified_after", after.format(WC_TIME).to_string()),
                ("modified_before", before.format(WC_TIME).to_string()),
                ("dates_are_gmt", "true".to_string()),
                ("orderby", orderby.to_string()),
                ("order", "asc".to_string()),
            ]
        };
        // (tie second, last id emitted, position hint) in the tie phase; else `done`
        let (done, tie) = match &cursor {
            None => (from - one, None),
            Some(c) if c.v == 0 || c.tie => {
                let t = time_of(c)?;
                (t - one, Some((t, c.id, c.pos)))
            }
            Some(c) => (time_of(c)?, None),
        };

        let Some((t, last_id, pos)) = tie else {
            // main phase: one request at offset 0 past `done`
            let mut q = common(done, to + one, "modified");
            q.push(("offset", "0".to_string()));
            let (items, total) = self.get(path, &q).await?;
            let rows = Self::rows(items, true)?;
            let n = rows.len() as u64;
            let more = match total {
                Some(total) => n > 0 && n < total,
                None => n == per_page,
            };
            // rows the filter should have excluded (covered already) are ignored
            let kept: Vec<&Row> = rows.iter().filter(|r| r.modified > done).collect();
            if !more && (kept.len() == rows.len() || n < per_page) {
                let out = self
                    .records(
                        model,
                        topic,
                        kept.into_iter().filter(|r| in_window(r.modified)),
                    )
                    .await?;
                return Ok(Page {
                    items: out,
                    next: None,
                });
            }
            let Some(last) = kept.last() else {
                return Err(ConnectorError::NoProgress(format!(
                    "GET {path}: a full page with nothing modified after {} (the store ignores modified_after)",
                    done.format(WC_TIME)
                )));
            };
            let t = last.modified;
            let out = self
                .records(
                    model,
                    topic,
                    kept.iter()
                        .copied()
                        .filter(|r| r.modified < t && in_window(r.modified)),
                )
                .await?;
            let next = Cursor {
                v: 1,
                t: Some(t.format(WC_TIME).to_string()),
                tie: true,
                id: 0,
                pos: 0,
            };
            return Ok(Page {
                items: out,
                next: Some(Self::token(&next)?),
            });
        };

        // tie phase: the records of second `t`, by id
        let base = common(t - one, t + one, "id");
        let mut offset = if last_id > 0 {
            pos.saturating_sub(1)
        } else {
            0
        };
        let mut may_step_back = last_id > 0;
        let mut prev_max: Option<u64> = None;
        for _ in 0..MAX_STEPS {
            let mut q = base.clone();
            q.push(("offset", offset.to_string()));
            let (items, total) = self.get(path, &q).await?;
            let rows = Self::rows(items, true)?;
            let n = rows.len() as u64;
            let more = match total {
                Some(total) => n > 0 && offset + n < total,
                None => n == per_page,
            };
            if may_step_back && offset > 0 {
                // the row before our position must be the last one emitted; if the page is
                // empty or starts past it, records left the tie: re-read from earlier
                if rows.first().is_none_or(|r| r.key.1 > last_id) {
                    offset = offset.saturating_sub(per_page);
                    may_step_back = offset > 0;
                    continue;
                }
            }
            may_step_back = false;
            let max_id = rows.iter().map(|r| r.key.1).max();
            // a full page after a forward step must reach past what was already read
            if let (Some(p), true) = (prev_max, n == per_page) {
                if max_id.is_none_or(|m| m <= p) {
                    return Err(ConnectorError::NoProgress(format!(
                        "GET {path}: offset {offset} served no id after {p} (the store ignores offset)"
                    )));
                }
            }
            let fresh: Vec<&Row> = rows
                .iter()
                .filter(|r| r.key.1 > last_id && r.modified == t)
                .collect();
            stuck_at_position(path, offset, last_id, &rows, fresh.is_empty(), per_page)?;
            if fresh.is_empty() && more {
                prev_max = max_id.max(prev_max);
                offset += n;
                continue;
            }
            let out = self
                .records(
                    model,
                    topic,
                    fresh.iter().copied().filter(|r| in_window(r.modified)),
                )
                .await?;
            let next = match fresh.iter().map(|r| r.key.1).max() {
                Some(id) if more => Cursor {
                    v: 1,
                    t: Some(t.format(WC_TIME).to_string()),
                    tie: true,
                    id,
                    pos: offset + n,
                },
                // the tie is exhausted: continue past its second
                _ => Cursor {
                    v: 1,
                    t: Some(t.format(WC_TIME).to_string()),
                    ..Cursor::default()
                },
            };
            return Ok(Page {
                items: out,
                next: Some(Self::token(&next)?),
            });
        }
        Err(ConnectorError::NoProgress(format!(
            "GET {path}: the tie at {} did not converge after {MAX_STEPS} requests (the listing changes faster than it can be read)",
            t.format(WC_TIME)
        )))
    }

    /// Customers: every customer by id, those modified inside the window kept.
    async fn list_by_id(
        &self,
        model: Model,
        path: &str,
        topic: &str,
        window: &Window,
        cursor: Option<Cursor>,
    ) -> Result<Page<RemoteRecord>, ConnectorError> {
        let per_page = u64::from(self.per_page());
        let from = floor_sec(window.from);
        let to = floor_sec(window.to);
        let last_id = cursor.as_ref().map_or(0, |c| c.id);
        let mut offset = cursor.as_ref().map_or(0, |c| c.pos.saturating_sub(1));
        let base: Vec<(&str, String)> = vec![
            ("per_page", per_page.to_string()),
            ("orderby", "id".into()),
            ("order", "asc".into()),
        ];
        let mut may_step_back = cursor.is_some();
        let mut prev_max: Option<u64> = None;
        for _ in 0..MAX_STEPS {
            let mut q = base.clone();
            q.push(("offset", offset.to_string()));
            let (items, total) = self.get(path, &q).await?;
            let rows = Self::rows(items, false)?;
            let n = rows.len() as u64;
            let more = match total {
                Some(total) => n > 0 && offset + n < total,
                None => n == per_page,
            };
            if may_step_back && offset > 0 && rows.first().is_none_or(|r| r.key.1 > last_id) {
                // customers before our position were deleted: re-read from earlier
                offset = offset.saturating_sub(per_page);
                may_step_back = offset > 0;
                continue;
            }
            may_step_back = false;
            let max_id = rows.iter().map(|r| r.key.1).max();
            // a full page after a forward step must reach past what was already read
            if let (Some(p), true) = (prev_max, n == per_page) {
                if max_id.is_none_or(|m| m <= p) {
                    return Err(ConnectorError::NoProgress(format!(
                        "GET {path}: offset {offset} served no id after {p} (the store ignores offset)"
                    )));
                }
            }
            let fresh: Vec<&Row> = rows.iter().filter(|r| r.key.1 > last_id).collect();
            stuck_at_position(path, offset, last_id, &rows, fresh.is_empty(), per_page)?;
            if fresh.is_empty() && more {
                prev_max = max_id.max(prev_max);
                offset += n;
                continue;
            }
            let out = self
                .records(
                    model,
                    topic,
                    fresh
                        .iter()
                        .copied()
                        .filter(|r| r.modified >= from && r.modified <= to),
                )
                .await?;
            let next = match fresh.iter().map(|r| r.key.1).max() {
                Some(id) if more => Some(Self::token(&Cursor {
                    id,
                    pos: offset + n,
                    ..Cursor::default()
                })?),
                _ => None,
            };
            return Ok(Page { items: out, next });
        }
        Err(ConnectorError::NoProgress(format!(
            "GET {path}: paging did not converge after {MAX_STEPS} requests (the listing changes faster than it can be read)"
        )))
    }
}

/// In an id-ordered listing read from one row before the last id emitted, a full page
/// holding several ids up to that one and none after it means the store served rows from
/// before the position asked for: it ignores `offset`. (Records only enter before the
/// position when a save lands exactly in the tie's second, never a page of them.)
fn stuck_at_position(
    path: &str,
    offset: u64,
    last_id: u64,
    rows: &[Row],
    nothing_fresh: bool,
    per_page: u64,
) -> Result<(), ConnectorError> {
    let old = rows.iter().filter(|r| r.key.1 <= last_id).count();
    if last_id > 0 && offset > 0 && nothing_fresh && old > 1 && rows.len() as u64 == per_page {
        return Err(ConnectorError::NoProgress(format!(
            "GET {path}: offset {offset} served {old} records up to id {last_id} and none after it (the store ignores offset)"
        )));
    }
    Ok(())
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
        let cursor: Option<Cursor> = match page {
            None => None,
            Some(p) => Some(serde_json::from_str(&p.0).map_err(|e| {
                ConnectorError::Malformed(format!("bad WooCommerce page token: {e}"))
            })?),
        };
        match model {
            Model::Order => {
                self.list_by_modified(model, "orders", "order.rest", window, cursor)
                    .await
            }
            Model::Product => {
                self.list_by_modified(model, "products", "product.rest", window, cursor)
                    .await
            }
            Model::Customer => {
                self.list_by_id(model, "customers", "customer.rest", window, cursor)
                    .await
            }
        }
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
