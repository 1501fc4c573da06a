//! NetSuite connector: SuiteQL over REST (`POST /services/rest/query/v1/suiteql`),
//! bearer-token auth (`config.access_token`), the account time zone from
//! `config.timezone` (required, IANA name such as `America/Los_Angeles`).
//!
//! # Queries
//!
//! | model | query (columns as the NetSuite mapping expects) | topic |
//! |---|---|---|
//! | Order | [`SALES_ORDER_COLUMNS`] `FROM transaction WHERE type = 'SalesOrd' AND <window>` | `salesorder.suiteql` |
//! | Customer | [`CUSTOMER_COLUMNS`] `FROM customer WHERE <window>` | `customer.suiteql` |
//! | Product | [`ITEM_COLUMNS`] `FROM item WHERE <window>` | `item.suiteql` |
//! | deletions | `SELECT deleteddate, type, recordid FROM DeletedRecord WHERE type IN (<types of the model>) AND <window on deleteddate>` | `<type>.deleted` (e.g. `salesorder.deleted`) |
//!
//! `<window>` is `lastmodifieddate >= TO_DATE('<from>', 'YYYY-MM-DD HH24:MI') AND
//! lastmodifieddate <= TO_DATE('<to>', 'YYYY-MM-DD HH24:MI') ORDER BY lastmodifieddate, id`
//! (`deleteddate`, `recordid` for deletions).
//!
//! # 3PA facts this relies on (QUIRKS Q-N1, Q-N2, Q-N4, Q-N5; Oracle help
//! section_157909186990 "SuiteQL", section_158394344595)
//!
//! - `lastmodifieddate` has **minute precision** and many records share a minute. The
//!   window is widened to whole minutes: `from` is floored and `to` ceiled to the minute,
//!   both compared inclusively (`>=`, `<=`) — never a strict `>` on a last-seen value. So
//!   records of the boundary minutes are listed by both adjacent windows (harmless
//!   duplicates); the `updated_at` of a record is its minute (it may be up to 59 s before
//!   `window.from`).
//! - `TO_DATE` literals and the datetime values returned are in the **account (session)
//!   time zone**. Bounds are converted from UTC to that zone; where a local time is
//!   ambiguous (DST fall-back), the lower bound uses the local time one hour earlier and
//!   the upper bound the local time one hour later, so the window is never narrowed.
//! - Returned datetimes are read in the session's format; this connector expects the US
//!   date preference `M/D/YYYY` with `h:mm am` (`1/15/2024 3:04 pm`), and also accepts
//!   24-hour, seconds and ISO forms. An ambiguous local time (DST fall-back hour) is
//!   resolved to the earliest instant that keeps the listing in order.
//! - Every value is a string, column keys are lower case, null columns are omitted.
//! - Paging: `limit` ≤ 1000 (default page size here: 1000), `offset` a multiple of
//!   `limit`, `hasMore`; a unique `ORDER BY` is required for stable pages.
//! - Deletions: the `DeletedRecord` table (`deleteddate`, `type`, `recordid`); `type` is the
//!   record type id in lower case (`salesorder`, `customer`, `inventoryitem`, ...).
//!
//! # Sales orders in full: lines and addresses
//!
//! The header query carries no lines or addresses, so for each page of sales orders the
//! connector runs, per chunk of [`DETAIL_CHUNK`] orders, three more single-table queries
//! (an `IN` list instead of a join, same result) and attaches their rows to each order
//! in the REST shape the NetSuite mapping reads:
//!
//! - `SELECT` [`LINE_COLUMNS`] `FROM transactionLine WHERE transaction IN (..) AND
//!   mainline = 'F' AND taxline = 'F' AND uniquekey > <last> ORDER BY uniquekey`, keyset
//!   paged on the unique `uniquekey` (no offset, no tie), then ordered per order by
//!   `linesequencenumber`; attached as `"item": {"items": [{line, item: {id, refName},
//!   itemType, description, quantity, rate, amount}]}`. The main line (`mainline = 'T'`)
//!   and tax lines are not order lines. `quantity` and `foreignamount` carry the sign of
//!   the posting (negative on a sales order's income lines), so they are negated as text.
//! - `SELECT` [`ADDRESS_COLUMNS`] `FROM transactionBillingAddress` / `transactionShippingAddress
//!   WHERE nkey IN (..)`, the keys being the order's `billingaddress` / `shippingaddress`
//!   (selected as `billingaddresskey`, `shippingaddresskey`); attached as
//!   `"billingAddress"` / `"shippingAddress"` objects (`addr1`, `city`, `state`, `zip`,
//!   `country`, `addrPhone`, ...).
//!
//! Concurrency: NetSuite limits concurrent web-service requests per account (5 on a
//! standard tier plus 10 per SuiteCloud Plus license, shared by every integration of the
//! account; a request over it is answered `429`, error code `CONCURRENCY_LIMIT_EXCEEDED`).
//! A connector runs at most [`DEFAULT_CONCURRENCY`] SuiteQL requests at once (a
//! semaphore; [`NetSuiteConnector::with_concurrency`]); a `429` is retried with backoff
//! honouring `Retry-After` by [`crate::http::send`] and, past the budget, is
//! [`ConnectorError::RateLimited`] (transient, never a rejected connection). Sources:
//! Oracle help "Concurrency Governance" as summarized at
//! houseblend.io/articles/netsuite-api-rate-limits-concurrency; table and column names
//! from the SuiteQL data dictionary (`transactionLine.uniquekey`, `mainline`, `taxline`;
//! cdn.cdata.com/help/DNK/ado/pg_SuiteQLtable-transactionline.htm and
//! netsuitediagnostics.com/posts/suiteql-transactionline-mainline).
//!
//! # The 100 000-result ceiling
//!
//! Without SuiteAnalytics Connect a query serves at most 100 000 results through
//! `limit`/`offset` (Oracle help section_156414087576 "Collection Paging"). Every query
//! here starts at offset 0 and moves by keyset (a minute, an id, a `uniquekey`), so no
//! listing ever reaches the ceiling (tested with a 40-row simulated ceiling).
//!
//! # Payloads (not byte-exact for times)
//!
//! Each SuiteQL item (`{"links": [], ...}`) is passed on with its keys and values in the
//! order received, except the datetime columns `lastmodifieddate`, `createddate`,
//! `datecreated` and `deleteddate`: the account-local string (`1/15/2024 3:04 pm`) is
//! rewritten as RFC 3339 with the account's offset at that instant
//! (`2024-01-15T15:04:00-08:00`). The NetSuite mapping reads a zone-less time as UTC, which
//! would shift every record by the account's offset; the rewrite keeps the local wall time
//! and makes the zone explicit.
//!
//! # Paging that cannot lose or loop
//!
//! Many records share a `lastmodifieddate` minute. Paging by offset or by a
//! `(minute, id)` key inside such a tie is only sound if the server really orders the tie
//! by id; a listing must not depend on that (issue 11: ties in another order, different
//! between pages, lost records or looped). So the connector never pages inside a tie:
//!
//! 1. **Main phase** (token `{"v":1,"m":<done>}`: every row of a minute up to `done` is
//!    listed): `<t> >= TO_DATE(<done + 1 min>) AND <t> <= TO_DATE(<to>) ORDER BY <t>,
//!    <id>`, offset 0. On the last page every row is emitted. Otherwise, with `m` the
//!    minute of the page's last row, the rows before `m` are emitted (they are all on
//!    this page: the primary order is the time) and the rows of `m` are not. Rows at or
//!    before `done` (read again because a DST fall-back literal reaches one hour back)
//!    are skipped; a full page of only those is stepped over by offset.
//! 2. **Tie phase** (token `{"v":1,"m":<m>,"tie":true,"id":<last>}`): the rows of minute
//!    `m` alone, keyset-paged on the id, a unique order: `<t> >= TO_DATE(<m>) AND <t> <=
//!    TO_DATE(<m>) AND <id> > <last> ORDER BY <id>`, offset 0. When a page is not full
//!    the main phase resumes with `done = m`.
//!
//! Each main request moves `done` forward by at least a minute and each tie request moves
//! the last id forward; a response that does not (the server ignores the offset or the
//! id condition) fails with [`ConnectorError::NoProgress`]. A row modified during the
//! listing moves to a later minute and is listed there if that is still in the window.
//! Tokens of the older `(minute, id, pos)` format are read as a tie phase at their
//! minute. Sources: Oracle help section_158394344595 (a unique `ORDER BY` for stable
//! pages), section_157909186990 (`limit`/`offset`, `hasMore`); QUIRKS Q-N2, Q-N4.

use crate::http::{self, Client, RetryPolicy};
use crate::{
    Connector, ConnectorConfig, ConnectorError, Deletion, Page, PageToken, RemoteRecord, Window,
};
use async_trait::async_trait;
use chrono::{
    DateTime, Duration as ChronoDuration, LocalResult, NaiveDateTime, SecondsFormat, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use ingot_model::{Model, Provider};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Columns selected for sales orders (`salesorder.suiteql`).
pub const SALES_ORDER_COLUMNS: &str =
    "id, tranid, status, BUILTIN.DF(currency) AS currency, entity, email, memo, subtotal, \
     discounttotal, taxtotal, shippingcost, total, createddate, lastmodifieddate, \
     billingaddress AS billingaddresskey, shippingaddress AS shippingaddresskey";
/// Columns selected from `transactionLine` for the lines of a page of sales orders.
pub const LINE_COLUMNS: &str =
    "uniquekey, transaction, id, linesequencenumber, item, BUILTIN.DF(item) AS itemname, \
     itemtype, memo, quantity, rate, foreignamount";
/// Columns selected from `transactionBillingAddress` / `transactionShippingAddress`.
pub const ADDRESS_COLUMNS: &str =
    "nkey, addressee, attention, addr1, addr2, addr3, city, state, zip, country, addrphone";
/// Sales orders per `IN (...)` list of a line or address query.
pub const DETAIL_CHUNK: usize = 200;
/// SuiteQL requests one connector runs at once by default: below the account-wide
/// concurrency limit (5 on a standard-tier account, plus 10 per SuiteCloud Plus license;
/// Oracle help "Concurrency Governance", summarized at
/// houseblend.io/articles/netsuite-api-rate-limits-concurrency), leaving room for the
/// account's other integrations.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Columns selected for customers (`customer.suiteql`).
pub const CUSTOMER_COLUMNS: &str =
    "id, entityid, companyname, firstname, lastname, email, phone, isinactive, \
     BUILTIN.DF(currency) AS currency, comments, datecreated, lastmodifieddate";
/// Columns selected for items (`item.suiteql`).
pub const ITEM_COLUMNS: &str =
    "id, itemid, displayname, salesdescription, itemtype, isinactive, upccode, baseprice, \
     createddate, lastmodifieddate";

/// `DeletedRecord.type` values (record type ids) of sellable items, read as Product
/// deletions: the NetSuite mapping's list, so both sides agree.
pub use ingot_standardize::netsuite::ITEM_RECORD_TYPES;

/// Datetime columns rewritten to RFC 3339 with the account offset.
const TIME_COLUMNS: &[&str] = &[
    "lastmodifieddate",
    "createddate",
    "datecreated",
    "deleteddate",
];
/// Maximum SuiteQL `limit`.
pub const MAX_LIMIT: u32 = 1000;
/// Bound on page requests inside one call while re-synchronizing on the key.
const MAX_STEPS: usize = 1000;

/// The NetSuite connector (see the module docs).
pub struct NetSuiteConnector {
    config: ConnectorConfig,
    client: Client,
    policy: RetryPolicy,
    /// Bounds the SuiteQL requests in flight (see [`DEFAULT_CONCURRENCY`]).
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// A SuiteQL item: its fields in the order received.
struct Fields(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Fields, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, Box<RawValue>>()? {
                    v.push((k, val));
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl Fields {
    fn text(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok())
    }
}

#[derive(Deserialize)]
struct Envelope {
    items: Vec<Fields>,
    #[serde(rename = "hasMore")]
    has_more: bool,
}

/// The page token (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Cursor {
    /// Token format: 1 = main/tie phases; 0 (absent) = the older `(minute, id)` key.
    #[serde(default, skip_serializing_if = "is_zero")]
    v: u8,
    /// Main phase: the minute up to which everything is listed; tie phase (and format
    /// 0): the tie's minute (UTC, RFC 3339).
    m: DateTime<Utc>,
    /// Tie phase: listing minute `m` by id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tie: bool,
    /// The last id emitted in the tie (0: none yet).
    #[serde(default)]
    id: u64,
    /// Format 0 only (a position hint), ignored.
    #[serde(default, skip_serializing_if = "is_zero64")]
    pos: u64,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

fn is_zero64(v: &u64) -> bool {
    *v == 0
}

type Key = (DateTime<Utc>, u64);

struct Row {
    key: Key,
    fields: Fields,
}

/// What one listing reads.
struct Spec {
    select: &'static str,
    table: &'static str,
    filter: Option<String>,
    time: &'static str,
    id: &'static str,
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

fn ceil_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = floor_minute(t);
    if f == t {
        t
    } else {
        f + ChronoDuration::minutes(1)
    }
}

fn is_ambiguous(tz: Tz, local: NaiveDateTime) -> bool {
    matches!(tz.from_local_datetime(&local), LocalResult::Ambiguous(..))
}

/// The `TO_DATE` literal of a lower bound (never later than `t`).
fn lower_literal(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz).naive_local();
    let local = if is_ambiguous(tz, local) {
        (t - ChronoDuration::hours(1))
            .with_timezone(&tz)
            .naive_local()
    } else {
        local
    };
    local.format("%Y-%m-%d %H:%M").to_string()
}

/// The `TO_DATE` literal of an upper bound (never earlier than `t`).
fn upper_literal(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz).naive_local();
    let local = if is_ambiguous(tz, local) {
        (t + ChronoDuration::hours(1))
            .with_timezone(&tz)
            .naive_local()
    } else {
        local
    };
    local.format("%Y-%m-%d %H:%M").to_string()
}

/// Parses an account-local datetime string; on a DST overlap, the earliest candidate not
/// before `not_before` (else the earliest).
fn parse_local(s: &str, tz: Tz, not_before: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    let v = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    const FORMATS: &[&str] = &[
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ];
    let naive = FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            Some(match not_before {
                Some(nb) if a < nb => b,
                _ => a,
            })
        }
        // A time in a DST gap cannot be produced by NetSuite; read it one hour later.
        LocalResult::None => tz
            .from_local_datetime(&(naive + ChronoDuration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

impl NetSuiteConnector {
    /// A connector with the default retry policy (attempts from `config.max_attempts`).
    pub fn new(config: ConnectorConfig) -> Self {
        let policy = RetryPolicy::from_config(&config);
        Self::with_policy(config, policy)
    }

    /// A connector with an explicit retry policy (tests use short delays and timeouts).
    pub fn with_policy(config: ConnectorConfig, policy: RetryPolicy) -> Self {
        NetSuiteConnector {
            config,
            client: Client::new(),
            policy,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(DEFAULT_CONCURRENCY)),
        }
    }

    /// Runs at most `n` (at least 1) SuiteQL requests at once.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.permits = std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    fn tz(&self) -> Result<Tz, ConnectorError> {
        let name = self.config.timezone.as_deref().ok_or_else(|| {
            ConnectorError::Misconfigured(
                "the NetSuite connector needs config.timezone (the account's IANA time zone)"
                    .into(),
            )
        })?;
        name.parse::<Tz>().map_err(|_| {
            ConnectorError::Misconfigured(format!("unknown time zone {name:?} in config.timezone"))
        })
    }

    fn limit(&self) -> u64 {
        u64::from(
            self.config
                .page_size
                .unwrap_or(MAX_LIMIT)
                .clamp(1, MAX_LIMIT),
        )
    }

    /// One SuiteQL request with retries.
    async fn suiteql(&self, q: &str, limit: u64, offset: u64) -> Result<Envelope, ConnectorError> {
        let url = format!(
            "{}/services/rest/query/v1/suiteql",
            self.config.base_url.trim_end_matches('/')
        );
        let token = ConnectorConfig::exposed(&self.config.access_token).to_string();
        let body = serde_json::json!({ "q": q }).to_string();
        let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
        // a permit for the whole request, retries included; the semaphore is never closed
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| ConnectorError::Unavailable(format!("request slots closed: {e}")))?;
        let resp = http::send(&self.policy, || {
            self.client
                .post(&url)
                .query(&query)
                .bearer_auth(&token)
                .header("prefer", "transient")
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(body.clone())
        })
        .await?;
        serde_json::from_slice(&resp.body)
            .map_err(|e| ConnectorError::Malformed(format!("SuiteQL response: {e}")))
    }

    /// Parses the id and time text of each SuiteQL item.
    fn raw_rows(
        spec: &Spec,
        items: Vec<Fields>,
    ) -> Result<Vec<(u64, String, Fields)>, ConnectorError> {
        let mut raw = Vec::with_capacity(items.len());
        for fields in items {
            let id_text = fields.text(spec.id).ok_or_else(|| {
                ConnectorError::Malformed(format!("SuiteQL row without a string {}", spec.id))
            })?;
            let id = id_text.trim().parse::<u64>().map_err(|_| {
                ConnectorError::Malformed(format!(
                    "SuiteQL {} {id_text:?} is not an integer",
                    spec.id
                ))
            })?;
            let t_text = fields.text(spec.time).ok_or_else(|| {
                ConnectorError::Malformed(format!("SuiteQL row {id} without {}", spec.time))
            })?;
            raw.push((id, t_text, fields));
        }
        Ok(raw)
    }

    fn token(c: &Cursor) -> Result<PageToken, ConnectorError> {
        serde_json::to_string(c)
            .map(PageToken)
            .map_err(|e| ConnectorError::Malformed(e.to_string()))
    }

    /// Reads one page of `spec` inside `window`, continuing `page` (see the module docs).
    async fn read(
        &self,
        spec: &Spec,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<(Vec<Row>, Option<PageToken>), ConnectorError> {
        let tz = self.tz()?;
        let cursor: Option<Cursor> =
            match page {
                None => None,
                Some(p) => Some(serde_json::from_str(&p.0).map_err(|e| {
                    ConnectorError::Malformed(format!("bad NetSuite page token: {e}"))
                })?),
            };
        let minute = ChronoDuration::minutes(1);
        let upper = ceil_minute(window.to);
        let mut prefix = format!("SELECT {} FROM {} WHERE ", spec.select, spec.table);
        if let Some(f) = &spec.filter {
            prefix.push_str(f);
            prefix.push_str(" AND ");
        }
        let limit = self.limit();
        let bad_time = |id: u64, t: &str| {
            ConnectorError::Malformed(format!("SuiteQL row {id}: unreadable {} {t:?}", spec.time))
        };
        let (done, tie) = match &cursor {
            None => (floor_minute(window.from) - minute, None),
            Some(c) if c.v == 0 || c.tie => (c.m - minute, Some((c.m, c.id))),
            Some(c) => (c.m, None),
        };

        if let Some((m, last_id)) = tie {
            // tie phase: minute `m` alone, keyset-paged by id
            let q = format!(
                "{prefix}{t} >= TO_DATE('{lo}', 'YYYY-MM-DD HH24:MI') AND {t} <= TO_DATE('{hi}', 'YYYY-MM-DD HH24:MI') AND {id} > {last_id} ORDER BY {id}",
                t = spec.time,
                lo = lower_literal(m, tz),
                hi = upper_literal(m, tz),
                id = spec.id,
            );
            let env = self.suiteql(&q, limit, 0).await?;
            let more = env.has_more;
            let raw = Self::raw_rows(spec, env.items)?;
            let full = raw.len() as u64 == limit;
            let max_id = raw.iter().map(|r| r.0).max();
            if (more || full) && max_id.is_none_or(|x| x <= last_id) {
                return Err(ConnectorError::NoProgress(format!(
                    "SuiteQL {}: no {} after {last_id} in the minute {m} (the server ignores the id condition)",
                    spec.table, spec.id
                )));
            }
            let mut rows = Vec::with_capacity(raw.len());
            for (id, t_text, fields) in raw {
                if id <= last_id {
                    continue;
                }
                // a local time in a DST overlap has two instants: keep the row if either is `m`
                let first = parse_local(&t_text, tz, None).ok_or_else(|| bad_time(id, &t_text))?;
                let t = if first == m {
                    first
                } else {
                    parse_local(&t_text, tz, Some(m)).ok_or_else(|| bad_time(id, &t_text))?
                };
                if t == m {
                    rows.push(Row {
                        key: (m, id),
                        fields,
                    });
                }
            }
            let next = match max_id {
                Some(id) if more => Cursor {
                    v: 1,
                    m,
                    tie: true,
                    id,
                    pos: 0,
                },
                _ => Cursor {
                    v: 1,
                    m,
                    tie: false,
                    id: 0,
                    pos: 0,
                },
            };
            return Ok((rows, Some(Self::token(&next)?)));
        }

        // main phase: past `done`, by time, at offset 0 (stepping over covered rows only)
        let lower = done + minute;
        let q = format!(
            "{prefix}{t} >= TO_DATE('{lo}', 'YYYY-MM-DD HH24:MI') AND {t} <= TO_DATE('{hi}', 'YYYY-MM-DD HH24:MI') ORDER BY {t}, {id}",
            t = spec.time,
            lo = lower_literal(lower, tz),
            hi = upper_literal(upper, tz),
            id = spec.id,
        );
        // How the server reads the lower literal (earliest instant of a local time).
        let lower_server = {
            let lit =
                NaiveDateTime::parse_from_str(&lower_literal(lower, tz), "%Y-%m-%d %H:%M").ok();
            lit.and_then(|l| tz.from_local_datetime(&l).earliest())
                .map(|t| t.with_timezone(&Utc))
        };
        let mut offset = 0u64;
        let mut prev_page: Option<(u64, u64)> = None;
        let mut prev_time = lower_server;
        for _ in 0..MAX_STEPS {
            let env = self.suiteql(&q, limit, offset).await?;
            let more = env.has_more;
            let raw = Self::raw_rows(spec, env.items)?;
            let span = raw.first().zip(raw.last()).map(|(a, b)| (a.0, b.0));
            let mut rows = Vec::with_capacity(raw.len());
            for (id, t_text, fields) in raw {
                // local times of a DST overlap resolve in the server's (time) order
                let t = parse_local(&t_text, tz, prev_time).ok_or_else(|| bad_time(id, &t_text))?;
                prev_time = Some(t);
                if t > done {
                    rows.push(Row {
                        key: (t, id),
                        fields,
                    });
                }
            }
            if !more {
                return Ok((rows, None));
            }
            let Some(m) = rows.last().map(|r| r.key.0) else {
                // a full page of rows already covered: step over it, unless it is the same
                // page again (the server ignores the offset)
                if span.is_none() || span == prev_page {
                    return Err(ConnectorError::NoProgress(format!(
                        "SuiteQL {}: offset {offset} served the same rows again (the server ignores the offset)",
                        spec.table
                    )));
                }
                prev_page = span;
                offset += limit;
                continue;
            };
            rows.retain(|r| r.key.0 < m);
            let next = Cursor {
                v: 1,
                m,
                tie: true,
                id: 0,
                pos: 0,
            };
            return Ok((rows, Some(Self::token(&next)?)));
        }
        Err(ConnectorError::NoProgress(format!(
            "SuiteQL {}: paging did not converge after {MAX_STEPS} requests",
            spec.table
        )))
    }

    /// The `transactionLine` rows (item, discount and other non-main, non-tax lines) of
    /// `orders`, per order in line order, each as the REST `item.items[]` element the
    /// mapping reads. Keyset-paged on `uniquekey` (one unique key: no ties, no offset).
    async fn lines(
        &self,
        orders: &[u64],
    ) -> Result<BTreeMap<u64, Vec<(u64, u64, String)>>, ConnectorError> {
        let mut out: BTreeMap<u64, Vec<(u64, u64, String)>> = BTreeMap::new();
        for chunk in orders.chunks(DETAIL_CHUNK) {
            let list = in_list(chunk.iter().map(u64::to_string));
            let mut last = 0u64;
            for _ in 0..MAX_STEPS {
                let q = format!(
                    "SELECT {LINE_COLUMNS} FROM transactionLine WHERE transaction IN ({list}) AND mainline = 'F' AND taxline = 'F' AND uniquekey > {last} ORDER BY uniquekey"
                );
                let env = self.suiteql(&q, u64::from(MAX_LIMIT), 0).await?;
                let more = env.has_more;
                let mut max = None;
                for f in env.items {
                    let key = num(&f, "uniquekey")?;
                    max = max.max(Some(key));
                    if key <= last {
                        continue;
                    }
                    let tx = num(&f, "transaction")?;
                    let seq = f
                        .text("linesequencenumber")
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(key);
                    out.entry(tx).or_default().push((seq, key, line_json(&f)));
                }
                match max {
                    Some(m) if more && m > last => last = m,
                    _ if more => {
                        return Err(ConnectorError::NoProgress(format!(
                            "SuiteQL transactionLine: no uniquekey after {last} (the server ignores the condition)"
                        )))
                    }
                    _ => break,
                }
            }
        }
        for v in out.values_mut() {
            v.sort();
        }
        Ok(out)
    }

    /// Address rows of `table` by `nkey`, each as the REST address subrecord.
    async fn addresses(
        &self,
        table: &str,
        keys: &[String],
    ) -> Result<BTreeMap<String, String>, ConnectorError> {
        let mut out = BTreeMap::new();
        for chunk in keys.chunks(DETAIL_CHUNK) {
            let list = in_list(chunk.iter().cloned());
            let q = format!(
                "SELECT {ADDRESS_COLUMNS} FROM {table} WHERE nkey IN ({list}) ORDER BY nkey"
            );
            // at most DETAIL_CHUNK rows, under one page of MAX_LIMIT
            let env = self.suiteql(&q, u64::from(MAX_LIMIT), 0).await?;
            for f in env.items {
                let Some(k) = f.text("nkey") else { continue };
                out.insert(k.trim().to_string(), address_json(&f));
            }
        }
        Ok(out)
    }

    /// Lines and addresses of a page of sales orders (three queries per chunk, run
    /// concurrently inside the connector's request slots).
    async fn order_details(&self, rows: &[Row]) -> Result<OrderDetails, ConnectorError> {
        let ids: Vec<u64> = rows.iter().map(|r| r.key.1).collect();
        let keys = |col: &str| -> Vec<String> {
            rows.iter()
                .filter_map(|r| r.fields.text(col))
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                .collect()
        };
        let (bill_keys, ship_keys) = (keys("billingaddresskey"), keys("shippingaddresskey"));
        if ids.is_empty() {
            return Ok(OrderDetails::default());
        }
        let (lines, bill, ship) = tokio::join!(
            self.lines(&ids),
            self.addresses("transactionBillingAddress", &bill_keys),
            self.addresses("transactionShippingAddress", &ship_keys),
        );
        Ok(OrderDetails {
            lines: lines?,
            billing: bill?,
            shipping: ship?,
        })
    }

    /// The item re-serialized with datetime columns as RFC 3339 with the account offset.
    fn payload(
        fields: &Fields,
        tz: Tz,
        key_time: Option<DateTime<Utc>>,
        time_col: &str,
    ) -> Vec<u8> {
        let mut out = String::from("{");
        for (i, (k, v)) in fields.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).unwrap_or_else(|_| format!("\"{k}\"")));
            out.push(':');
            let lower = k.to_ascii_lowercase();
            let rewritten = if TIME_COLUMNS.contains(&lower.as_str()) {
                serde_json::from_str::<String>(v.get()).ok().and_then(|s| {
                    let t = if lower == time_col {
                        key_time
                    } else {
                        parse_local(&s, tz, None)
                    }?;
                    let local = t
                        .with_timezone(&tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false);
                    serde_json::to_string(&local).ok()
                })
            } else {
                None
            };
            match rewritten {
                Some(r) => out.push_str(&r),
                None => out.push_str(v.get()),
            }
        }
        out.push('}');
        out.into_bytes()
    }
}

fn listing_spec(model: Model) -> (Spec, &'static str) {
    match model {
        Model::Order => (
            Spec {
                select: SALES_ORDER_COLUMNS,
                table: "transaction",
                filter: Some("type = 'SalesOrd'".into()),
                time: "lastmodifieddate",
                id: "id",
            },
            "salesorder.suiteql",
        ),
        Model::Customer => (
            Spec {
                select: CUSTOMER_COLUMNS,
                table: "customer",
                filter: None,
                time: "lastmodifieddate",
                id: "id",
            },
            "customer.suiteql",
        ),
        Model::Product => (
            Spec {
                select: ITEM_COLUMNS,
                table: "item",
                filter: None,
                time: "lastmodifieddate",
                id: "id",
            },
            "item.suiteql",
        ),
    }
}

/// Lines and addresses of a page of sales orders.
#[derive(Default)]
struct OrderDetails {
    /// Per order: (line sequence, uniquekey, line JSON).
    lines: BTreeMap<u64, Vec<(u64, u64, String)>>,
    /// By `nkey`: address JSON.
    billing: BTreeMap<String, String>,
    shipping: BTreeMap<String, String>,
}

impl OrderDetails {
    /// `payload` (a JSON object) with `item.items[]`, `billingAddress` and
    /// `shippingAddress` added before its closing brace.
    fn attach(&self, payload: Vec<u8>, order: &Row) -> Vec<u8> {
        let mut s = String::from_utf8(payload).unwrap_or_default();
        if !s.ends_with('}') {
            return s.into_bytes();
        }
        s.pop();
        let lines: Vec<&str> = self
            .lines
            .get(&order.key.1)
            .map(|v| v.iter().map(|l| l.2.as_str()).collect())
            .unwrap_or_default();
        s.push_str(if s.ends_with('{') { "" } else { "," });
        s.push_str("\"item\":{\"items\":[");
        s.push_str(&lines.join(","));
        s.push_str("]}");
        for (col, key, map) in [
            ("billingaddresskey", "billingAddress", &self.billing),
            ("shippingaddresskey", "shippingAddress", &self.shipping),
        ] {
            if let Some(a) = order.fields.text(col).and_then(|k| map.get(k.trim())) {
                s.push_str(&format!(",\"{key}\":{a}"));
            }
        }
        s.push('}');
        s.into_bytes()
    }
}

/// `'a', 'b'` for an `IN (...)` list (values are ids and keys of digits only).
fn in_list(values: impl Iterator<Item = String>) -> String {
    values
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn num(f: &Fields, col: &str) -> Result<u64, ConnectorError> {
    f.text(col)
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| ConnectorError::Malformed(format!("SuiteQL row without an integer {col}")))
}

/// A SuiteQL amount or quantity with its sign flipped (text, no float): `transactionLine`
/// stores a sales order's item lines with the sign of their posting (negative: income is
/// a credit), so the order's own quantity is `-quantity` and its amount `-foreignamount`.
fn negate(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('-') {
        Some(p) => p.to_string(),
        None if s.trim_start_matches(['0', '.']).is_empty() => s.to_string(),
        None => format!("-{s}"),
    }
}

/// One `transactionLine` row as a REST `item.items[]` element.
fn line_json(f: &Fields) -> String {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.to_string(), serde_json::Value::String(v));
        }
    };
    put("line", f.text("id"));
    put("itemType", f.text("itemtype"));
    put("description", f.text("memo"));
    put("quantity", f.text("quantity").map(|q| negate(&q)));
    put("rate", f.text("rate"));
    put("amount", f.text("foreignamount").map(|a| negate(&a)));
    if let Some(id) = f.text("item") {
        let mut r = serde_json::Map::new();
        r.insert("id".into(), serde_json::Value::String(id));
        if let Some(n) = f.text("itemname") {
            r.insert("refName".into(), serde_json::Value::String(n));
        }
        m.insert("item".into(), serde_json::Value::Object(r));
    }
    serde_json::Value::Object(m).to_string()
}

/// One address row as a REST address subrecord (`addr1`, `city`, `state`, `zip`,
/// `country`, `addrPhone`, ...).
fn address_json(f: &Fields) -> String {
    let mut m = serde_json::Map::new();
    for (k, _) in &f.0 {
        let lower = k.to_ascii_lowercase();
        if lower == "links" || lower == "nkey" {
            continue;
        }
        if let Some(v) = f.text(k) {
            let key = if lower == "addrphone" {
                "addrPhone".to_string()
            } else {
                lower
            };
            m.insert(key, serde_json::Value::String(v));
        }
    }
    serde_json::Value::Object(m).to_string()
}

fn deletion_types(model: Model) -> Vec<&'static str> {
    match model {
        Model::Order => vec!["salesorder"],
        Model::Customer => vec!["customer"],
        Model::Product => ITEM_RECORD_TYPES.to_vec(),
    }
}

#[async_trait]
impl Connector for NetSuiteConnector {
    fn provider(&self) -> Provider {
        Provider::NetSuite
    }

    async fn list(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<RemoteRecord>, ConnectorError> {
        let tz = self.tz()?;
        let (spec, topic) = listing_spec(model);
        let (rows, next) = self.read(&spec, window, page).await?;
        let details = if model == Model::Order {
            Some(self.order_details(&rows).await?)
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|r| {
                let payload = Self::payload(&r.fields, tz, Some(r.key.0), spec.time);
                RemoteRecord {
                    model,
                    remote_id: r.key.1.to_string(),
                    updated_at: r.key.0,
                    topic: topic.to_string(),
                    payload: match &details {
                        Some(d) => d.attach(payload, &r),
                        None => payload,
                    },
                }
            })
            .collect();
        Ok(Page { items, next })
    }

    async fn deletions(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<Deletion>, ConnectorError> {
        let tz = self.tz()?;
        let types = deletion_types(model)
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let spec = Spec {
            select: "deleteddate, type, recordid",
            table: "DeletedRecord",
            filter: Some(format!("type IN ({types})")),
            time: "deleteddate",
            id: "recordid",
        };
        let (rows, next) = self.read(&spec, window, page).await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let rtype = r.fields.text("type").ok_or_else(|| {
                ConnectorError::Malformed(format!("DeletedRecord row {} without type", r.key.1))
            })?;
            items.push(Deletion {
                model,
                remote_id: r.key.1.to_string(),
                deleted_at: r.key.0,
                topic: format!("{}.deleted", rtype.to_ascii_lowercase()),
                payload: Self::payload(&r.fields, tz, Some(r.key.0), spec.time),
            });
        }
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_parsing_in_the_account_zone() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 23, 4, 0).unwrap();
        assert_eq!(lower_literal(t, tz), "2024-01-15 15:04");
        assert_eq!(parse_local("1/15/2024 3:04 pm", tz, None), Some(t));
        assert_eq!(parse_local("1/15/2024 3:04 PM", tz, None), Some(t));
        // DST fall-back 2024-11-03: 1:30 local happens at 08:30Z and 09:30Z.
        let first = Utc.with_ymd_and_hms(2024, 11, 3, 8, 30, 0).unwrap();
        let second = Utc.with_ymd_and_hms(2024, 11, 3, 9, 30, 0).unwrap();
        assert_eq!(lower_literal(second, tz), "2024-11-03 01:30");
        assert_eq!(lower_literal(first, tz), "2024-11-03 00:30");
        assert_eq!(upper_literal(second, tz), "2024-11-03 02:30");
        assert_eq!(parse_local("11/3/2024 1:30 am", tz, None), Some(first));
        assert_eq!(
            parse_local(
                "11/3/2024 1:30 am",
                tz,
                Some(first + ChronoDuration::minutes(5))
            ),
            Some(second)
        );
        assert_eq!(
            ceil_minute(t + ChronoDuration::seconds(1)),
            t + ChronoDuration::minutes(1)
        );
    }
}
