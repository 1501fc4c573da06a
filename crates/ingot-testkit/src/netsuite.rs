//! NetSuite SuiteQL simulator: a real HTTP server on `127.0.0.1` answering
//! `POST /services/rest/query/v1/suiteql` over a seeded account (sales orders and other
//! transactions, customers, items, the `DeletedRecord` table) spanning 2+ years.
//!
//! # What it reproduces (3PA facts; sources in `shared/fixtures/QUIRKS.md` and MANIFEST)
//!
//! - Request: `POST /services/rest/query/v1/suiteql?limit=&offset=`, body
//!   `{"q": "SELECT ..."}`, header `Prefer: transient` (required, Q-N4), `Authorization:
//!   Bearer <token>` (else `401 INVALID_LOGIN`). `limit` 1..=1000 (default 1000); `offset`
//!   must be a multiple of `limit` (Q-N4). Violations: `400` with NetSuite's error envelope
//!   `{"type", "title", "status", "o:errorDetails": [{"detail", "o:errorCode"}]}`.
//! - Response: `{"links": [...], "count", "hasMore", "items": [{"links": [], <columns>}],
//!   "offset", "totalResults"}` (→ `suiteql_response_sample.json`); column keys lower
//!   case, **every value a string**, null columns omitted.
//! - Queries: the grammar of [`suiteql`] over the tables `transaction`, `customer`,
//!   `item` and `DeletedRecord`, and, derived from each sales order's id,
//!   `transactionLine` ([`sales_order_lines`]: main line, item lines with negative
//!   `quantity`/`foreignamount`, discount and tax lines, a unique `uniquekey`) and
//!   `transactionBillingAddress` / `transactionShippingAddress` ([`sales_order_address`],
//!   keyed by `nkey` = the order's `billingaddress` / `shippingaddress`); an unknown
//!   table or column is a `400`.
//! - Result ceiling ([`NetSuiteSimConfig::max_rows`], default 100 000): rows past it are
//!   not served through `offset` (`hasMore` ends there).
//! - Times: `lastmodifieddate` is kept at **minute precision** (Q-N2); many records can
//!   share a minute. Datetime columns are rendered in the **account time zone** with the
//!   session's date/time preferences, which this simulator fixes at `M/D/YYYY h:mm am`
//!   ([`NS_DISPLAY`], e.g. `1/15/2024 3:04 pm`). `TO_DATE('YYYY-MM-DD HH24:MI')`
//!   literals are read in the account time zone (a DST-overlap literal resolves to the
//!   earlier instant; a literal in a DST gap to one hour later).
//! - `ORDER BY` sorts by the stored instant (`lastmodifieddate`, `deleteddate`), numeric
//!   ids (`id`, `recordid`) or text.
//! - `DeletedRecord` rows: `deleteddate` (minute precision), `type` (the record type id
//!   in lower case: `salesorder`, `invoice`, `customer`, `inventoryitem`, ...), `recordid`,
//!   `name`, `deletedby`, `context`.
//!
//! Fault injection: [`Faults`] with endpoint labels `suiteql <table>` (lower case, e.g.
//! `suiteql transaction`, `suiteql deletedrecord`); a page's `start` is the `offset`.
//! `shuffle_ties`: an `ORDER BY` of several keys orders rows equal on the leading keys
//! in a pseudo-random order that changes per request (its last key is ignored);
//! `never_advance`: the offset and every lower bound (`>=`, `>`) are ignored.

pub mod suiteql;

use crate::woocommerce::faults;
pub use crate::woocommerce::faults::{Counters, Faults, Injected, PageRequest};

use axum::extract::{Query as QueryParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use suiteql::{Cond, Literal, Op};

/// The datetime display format of the simulated session (`M/D/YYYY h:mm am`), as a
/// chrono format string.
pub const NS_DISPLAY: &str = "%-m/%-d/%Y %-I:%M %P";

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct NetSuiteSimConfig {
    pub seed: u64,
    /// The simulator clock's initial "now".
    pub now: DateTime<Utc>,
    /// Records are created over `[now - span_days, now]`.
    pub span_days: i64,
    pub sales_orders: usize,
    /// Other transactions (invoices, `type = 'CustInvc'`) that a sales-order query must skip.
    pub other_transactions: usize,
    pub customers: usize,
    pub items: usize,
    /// Pre-existing `DeletedRecord` rows (of records not in the data set).
    pub deleted: usize,
    /// Share (0..1) of records that share their modified minute with the previous one.
    pub same_minute_share: f64,
    /// The account (session) time zone.
    pub timezone: Tz,
    /// The accepted bearer token.
    pub token: String,
    /// Rows one query can reach through `limit`/`offset`: NetSuite serves at most 100 000
    /// results of a query without SuiteAnalytics Connect (Oracle help section_156414087576
    /// "Collection Paging"). Past it the simulator ends the result (`hasMore: false`), so
    /// a listing that pages by offset silently stops there.
    pub max_rows: usize,
}

impl Default for NetSuiteSimConfig {
    fn default() -> Self {
        NetSuiteSimConfig {
            seed: 1,
            now: Utc
                .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
                .single()
                .unwrap_or_default(),
            span_days: 760,
            sales_orders: 2000,
            other_transactions: 300,
            customers: 500,
            items: 200,
            deleted: 50,
            same_minute_share: 0.2,
            timezone: chrono_tz::America::Los_Angeles,
            token: "ns-test-token".into(),
            max_rows: 100_000,
        }
    }
}

/// A table of the simulated account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsTable {
    Transaction,
    Customer,
    Item,
}

impl NsTable {
    fn columns(self) -> &'static [&'static str] {
        match self {
            NsTable::Transaction => &[
                "id",
                "tranid",
                "type",
                "status",
                "currency",
                "entity",
                "email",
                "memo",
                "subtotal",
                "discounttotal",
                "taxtotal",
                "shippingcost",
                "total",
                "createddate",
                "lastmodifieddate",
                "billingaddress",
                "shippingaddress",
            ],
            NsTable::Customer => &[
                "id",
                "entityid",
                "companyname",
                "firstname",
                "lastname",
                "email",
                "phone",
                "isinactive",
                "currency",
                "comments",
                "datecreated",
                "lastmodifieddate",
            ],
            NsTable::Item => &[
                "id",
                "itemid",
                "displayname",
                "salesdescription",
                "itemtype",
                "isinactive",
                "upccode",
                "baseprice",
                "createddate",
                "lastmodifieddate",
            ],
        }
    }
}

/// A record as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsRecord {
    pub id: u64,
    /// The record type id (lower case): `salesorder`, `invoice`, `customer`, `inventoryitem`...
    pub record_type: String,
    /// Minute precision.
    pub created: DateTime<Utc>,
    /// `lastmodifieddate`, minute precision.
    pub modified: DateTime<Utc>,
    /// Raw column values (no datetime columns; absent = null).
    pub fields: BTreeMap<String, String>,
    /// `BUILTIN.DF` display values of reference columns.
    pub display: BTreeMap<String, String>,
}

/// A `DeletedRecord` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsDeleted {
    pub recordid: u64,
    pub record_type: String,
    /// Minute precision.
    pub deleted: DateTime<Utc>,
}

struct Data {
    now: DateTime<Utc>,
    rng: SmallRng,
    next_id: BTreeMap<NsTable, u64>,
    tables: BTreeMap<NsTable, BTreeMap<u64, NsRecord>>,
    deleted: Vec<NsDeleted>,
}

struct Inner {
    config: NetSuiteSimConfig,
    base_url: String,
    data: Mutex<Data>,
    faults: Faults,
}

/// A running NetSuite simulator (the server stops when this is dropped).
pub struct NetSuiteSim {
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for NetSuiteSim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// Renders an instant as the simulated session does ([`NS_DISPLAY`] in `tz`).
pub fn render_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format(NS_DISPLAY).to_string()
}

/// Reads a `TO_DATE` local literal in `tz` (earliest on overlap, +1 h in a gap).
pub fn local_to_utc(t: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    tz.from_local_datetime(&t)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(t + ChronoDuration::hours(1)))
                .earliest()
        })
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| t.and_utc())
}

impl NetSuiteSim {
    /// Generates the account and starts the server on a free port of 127.0.0.1.
    pub async fn start(config: NetSuiteSimConfig) -> NetSuiteSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let data = generate(&config);
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            config,
            data: Mutex::new(data),
            faults: Faults::default(),
        });
        let app = Router::new()
            .route("/services/rest/query/v1/suiteql", post(suiteql_handler))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        NetSuiteSim { inner, server }
    }

    /// `http://127.0.0.1:<port>` (the account's REST host).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn config(&self) -> &NetSuiteSimConfig {
        &self.inner.config
    }

    /// The fault-injection switchboard and counters.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.inner.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The simulator clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.data().now
    }

    /// Sets the simulator clock.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.data().now = now;
    }

    /// Creates a record (a sales order for `Transaction`, an inventory item for `Item`)
    /// modified at `at` (floored to the minute); returns its id.
    pub fn create_at(&self, table: NsTable, at: DateTime<Utc>) -> u64 {
        let mut d = self.data();
        let id = {
            let n = d.next_id.entry(table).or_insert(1);
            let id = *n;
            *n += 1;
            id
        };
        let at = floor_minute(at);
        let customers: Vec<(u64, String)> = d
            .tables
            .get(&NsTable::Customer)
            .map(|m| {
                m.values()
                    .take(50)
                    .map(|c| (c.id, c.fields.get("entityid").cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let rec = make_record(table, id, at, at, false, &customers, &mut d.rng);
        d.tables.entry(table).or_default().insert(id, rec);
        id
    }

    /// Creates a record modified now.
    pub fn create(&self, table: NsTable) -> u64 {
        let now = self.now();
        self.create_at(table, now)
    }

    /// Saves a record: `lastmodifieddate` = now (minute), and a field changes.
    pub fn touch(&self, table: NsTable, id: u64) -> bool {
        let now = self.now();
        self.set_modified(table, id, now)
    }

    /// Sets a record's `lastmodifieddate` (floored to the minute) and changes a field.
    pub fn set_modified(&self, table: NsTable, id: u64, at: DateTime<Utc>) -> bool {
        let mut d = self.data();
        let Some(rec) = d.tables.get_mut(&table).and_then(|m| m.get_mut(&id)) else {
            return false;
        };
        rec.modified = floor_minute(at);
        let key = match table {
            NsTable::Transaction => "memo",
            NsTable::Customer => "comments",
            NsTable::Item => "salesdescription",
        };
        rec.fields.insert(
            key.into(),
            format!("edited {}", rec.modified.format("%Y-%m-%d %H:%M")),
        );
        true
    }

    /// Deletes a record: it disappears and a `DeletedRecord` row (deleteddate = now) appears.
    pub fn delete(&self, table: NsTable, id: u64) -> bool {
        let mut d = self.data();
        let now = floor_minute(d.now);
        let Some(rec) = d.tables.get_mut(&table).and_then(|m| m.remove(&id)) else {
            return false;
        };
        d.deleted.push(NsDeleted {
            recordid: rec.id,
            record_type: rec.record_type,
            deleted: now,
        });
        true
    }

    /// Every record of a table, by id.
    pub fn records(&self, table: NsTable) -> Vec<NsRecord> {
        self.data()
            .tables
            .get(&table)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every `DeletedRecord` row.
    pub fn deleted_records(&self) -> Vec<NsDeleted> {
        self.data().deleted.clone()
    }
}

// ---------------------------------------------------------------------------------------
// Data generation

const NAMES: &[&str] = &[
    "Anonymous Customer",
    "Acme Inc.",
    "Zoë's Café",
    "Łódź Trading",
    "北京贸易",
    "O'Brien & Sons",
];
const ITEM_TYPES: &[(&str, &str)] = &[
    ("inventoryitem", "InvtPart"),
    ("inventoryitem", "InvtPart"),
    ("noninventorysaleitem", "NonInvtPart"),
    ("kititem", "Kit"),
    ("serviceresaleitem", "Service"),
];
const SO_STATUS: &[(&str, &str)] = &[
    ("A", "Sales Order : Pending Approval"),
    ("B", "Sales Order : Pending Fulfillment"),
    ("F", "Sales Order : Pending Billing"),
    ("G", "Sales Order : Billed"),
    ("H", "Sales Order : Closed"),
];

fn money(cents: i64) -> String {
    // SuiteQL renders numbers as strings without trailing zeros.
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let s = format!("{}.{:02}", c / 100, c % 100);
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s.is_empty() || s == "0" {
        "0".into()
    } else {
        format!("{sign}{s}")
    }
}

fn make_record(
    table: NsTable,
    id: u64,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    invoice: bool,
    customers: &[(u64, String)],
    rng: &mut SmallRng,
) -> NsRecord {
    let mut f = BTreeMap::new();
    let mut disp = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        f.insert(k.to_string(), v);
    };
    let record_type = match table {
        NsTable::Transaction => {
            let sub = rng.gen_range(1000..100_000i64);
            let tax = sub / 10;
            let ship = if rng.gen_bool(0.5) { 995 } else { 0 };
            let disc = if rng.gen_bool(0.2) { -500 } else { 0 };
            put("id", id.to_string());
            put(
                "tranid",
                format!("{}{}", if invoice { "INV" } else { "SO" }, id),
            );
            put("type", if invoice { "CustInvc" } else { "SalesOrd" }.into());
            let (st, st_disp) = if invoice {
                ("A", "Invoice : Open")
            } else {
                SO_STATUS[rng.gen_range(0..SO_STATUS.len())]
            };
            put("status", st.into());
            put("currency", "1".into());
            put("subtotal", money(sub));
            put("discounttotal", money(disc));
            put("taxtotal", money(tax));
            put("shippingcost", money(ship));
            put("total", money(sub + tax + ship + disc));
            if rng.gen_bool(0.3) {
                put("memo", "Rush – ship by Friday".into());
            }
            disp.insert(
                "type".into(),
                if invoice { "Invoice" } else { "Sales Order" }.into(),
            );
            disp.insert("status".into(), st_disp.into());
            disp.insert("currency".into(), "US Dollar".into());
            if let Some((cid, name)) =
                (!customers.is_empty()).then(|| &customers[rng.gen_range(0..customers.len())])
            {
                f.insert("entity".into(), cid.to_string());
                f.insert("email".into(), format!("customer{cid}@example.com"));
                disp.insert("entity".into(), name.clone());
            }
            if invoice {
                "invoice"
            } else {
                "salesorder"
            }
        }
        NsTable::Customer => {
            let company = rng.gen_bool(0.4);
            put("id", id.to_string());
            let name = NAMES[rng.gen_range(0..NAMES.len())];
            put("entityid", format!("{name} {id}"));
            if company {
                put("companyname", name.into());
            } else {
                put(
                    "firstname",
                    ["Alan", "Zoë", "Ngọc", "María"][rng.gen_range(0..4)].into(),
                );
                put(
                    "lastname",
                    ["Rath", "Müller", "Example"][rng.gen_range(0..3)].into(),
                );
            }
            put("email", format!("customer{id}@example.com"));
            if rng.gen_bool(0.5) {
                put("phone", "555-555-0100".into());
            }
            put(
                "isinactive",
                if rng.gen_bool(0.1) { "T" } else { "F" }.into(),
            );
            put("currency", "1".into());
            disp.insert("currency".into(), "US Dollar".into());
            "customer"
        }
        NsTable::Item => {
            let (rt, it) = ITEM_TYPES[rng.gen_range(0..ITEM_TYPES.len())];
            put("id", id.to_string());
            put("itemid", format!("ITEM-{id:05}"));
            put("displayname", format!("Widget {id}"));
            put("salesdescription", "A very good widget".into());
            put("itemtype", it.into());
            put("isinactive", "F".into());
            if rng.gen_bool(0.5) {
                put(
                    "upccode",
                    format!("0{:011}", rng.gen_range(0..99_999_999_999u64)),
                );
            }
            put("baseprice", money(rng.gen_range(100..50_000)));
            disp.insert(
                "itemtype".into(),
                match it {
                    "InvtPart" => "Inventory Item",
                    "NonInvtPart" => "Non-inventory Item",
                    "Kit" => "Kit/Package",
                    _ => "Service",
                }
                .into(),
            );
            rt
        }
    };
    NsRecord {
        id,
        record_type: record_type.into(),
        created,
        modified,
        fields: f,
        display: disp,
    }
}

fn generate(config: &NetSuiteSimConfig) -> Data {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let now = floor_minute(config.now);
    let span = config.span_days.max(1) * 1440;
    let mut tables: BTreeMap<NsTable, BTreeMap<u64, NsRecord>> = BTreeMap::new();
    let mut next_id: BTreeMap<NsTable, u64> = BTreeMap::new();
    let plan = [
        (NsTable::Customer, config.customers, 0usize),
        (NsTable::Item, config.items, 0),
        (
            NsTable::Transaction,
            config.sales_orders,
            config.other_transactions,
        ),
    ];
    for (table, count, invoices) in plan {
        let customers: Vec<(u64, String)> = tables
            .get(&NsTable::Customer)
            .map(|m| {
                m.values()
                    .map(|c| (c.id, c.fields.get("entityid").cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let mut map = BTreeMap::new();
        let mut prev: Option<DateTime<Utc>> = None;
        let first = if table == NsTable::Transaction {
            1000
        } else {
            1
        };
        let total = count + invoices;
        for i in 0..total {
            let id = first + i as u64;
            let created = now - ChronoDuration::minutes(rng.gen_range(0..span));
            let mut modified = created + ChronoDuration::minutes(rng.gen_range(0..30 * 1440));
            if modified > now {
                modified = now;
            }
            if let Some(p) = prev {
                if p >= created && rng.gen_bool(config.same_minute_share.clamp(0.0, 1.0)) {
                    modified = p;
                }
            }
            prev = Some(modified);
            let invoice = i >= count;
            map.insert(
                id,
                make_record(table, id, created, modified, invoice, &customers, &mut rng),
            );
        }
        next_id.insert(table, first + total as u64);
        tables.insert(table, map);
    }
    let mut deleted = Vec::new();
    for k in 0..config.deleted {
        let (record_type, base) = match k % 3 {
            0 => ("salesorder", 900_000u64),
            1 => ("customer", 800_000),
            _ => ("inventoryitem", 700_000),
        };
        deleted.push(NsDeleted {
            recordid: base + k as u64,
            record_type: record_type.into(),
            deleted: now - ChronoDuration::minutes(rng.gen_range(0..span)),
        });
    }
    Data {
        now: config.now,
        rng,
        next_id,
        tables,
        deleted,
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

fn ns_error(status: StatusCode, code: &str, detail: &str) -> Response {
    let title = match status.as_u16() {
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let section = match status.as_u16() {
        401 => "15.5.2",
        429 => "6.2",
        _ => "15.5.1",
    };
    let body = json!({
        "type": format!("https://www.rfc-editor.org/rfc/rfc9110.html#section-{section}"),
        "title": title,
        "status": status.as_u16(),
        "o:errorDetails": [{"detail": detail, "o:errorCode": code}]
    });
    (
        status,
        [(
            "content-type",
            "application/vnd.oracle.resource+json; type=error",
        )],
        body.to_string(),
    )
        .into_response()
}

/// A value to sort or compare on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Val {
    Null,
    Num(i64),
    Time(DateTime<Utc>),
    Text(String),
}

/// A row of any table, seen through the query.
struct RowRef<'a> {
    rec: Option<&'a NsRecord>,
    del: Option<&'a NsDeleted>,
}

const DELETED_COLUMNS: &[&str] = &[
    "deleteddate",
    "type",
    "recordid",
    "name",
    "deletedby",
    "context",
];

impl RowRef<'_> {
    fn value(&self, col: &str) -> Val {
        if let Some(d) = self.del {
            return match col {
                "deleteddate" => Val::Time(d.deleted),
                "type" => Val::Text(d.record_type.clone()),
                "recordid" => Val::Num(d.recordid as i64),
                "name" => Val::Text(format!("{} {}", d.record_type, d.recordid)),
                "deletedby" => Val::Text("-4".into()),
                "context" => Val::Text("UIF".into()),
                _ => Val::Null,
            };
        }
        let Some(r) = self.rec else { return Val::Null };
        match (r.record_type.as_str(), col) {
            ("salesorder", "billingaddress") => return Val::Text((r.id * 2).to_string()),
            ("salesorder", "shippingaddress") => return Val::Text((r.id * 2 + 1).to_string()),
            ("transactionline", "uniquekey") => return Val::Num(r.id as i64),
            ("transactionline" | "address", "id" | "nkey") => {
                return r
                    .fields
                    .get(col)
                    .map_or(Val::Null, |s| Val::Text(s.clone()))
            }
            _ => {}
        }
        match col {
            "lastmodifieddate" => Val::Time(r.modified),
            "createddate" | "datecreated" => Val::Time(r.created),
            "id" => Val::Num(r.id as i64),
            _ => r
                .fields
                .get(col)
                .map_or(Val::Null, |s| Val::Text(s.clone())),
        }
    }
    fn display(&self, col: &str) -> Val {
        if let Some(r) = self.rec {
            if let Some(d) = r.display.get(col) {
                return Val::Text(d.clone());
            }
        }
        if self.del.is_some() && col == "deletedby" {
            return Val::Text("-System-".into());
        }
        if self.del.is_some() && col == "context" {
            return Val::Text("UI".into());
        }
        self.value(col)
    }
}

fn render(v: &Val, tz: Tz) -> Option<String> {
    match v {
        Val::Null => None,
        Val::Num(n) => Some(n.to_string()),
        Val::Time(t) => Some(render_time(*t, tz)),
        Val::Text(s) => Some(s.clone()),
    }
}

fn matches(row: &RowRef<'_>, cond: &Cond, tz: Tz) -> bool {
    match cond {
        Cond::In { column, values } => match row.value(column) {
            Val::Text(s) => values.iter().any(|v| v.eq_ignore_ascii_case(&s)),
            Val::Num(n) => values.iter().any(|v| v == &n.to_string()),
            _ => false,
        },
        Cond::Cmp { column, op, value } => {
            let left = row.value(column);
            let right = match (value, &left) {
                (Literal::Date(t), _) => Val::Time(local_to_utc(*t, tz)),
                (Literal::Num(n), _) => Val::Num(*n),
                (Literal::Str(s), Val::Num(_)) => {
                    s.parse::<i64>().map_or(Val::Text(s.clone()), Val::Num)
                }
                (Literal::Str(s), _) => Val::Text(s.clone()),
            };
            if left == Val::Null {
                return false;
            }
            if std::mem::discriminant(&left) != std::mem::discriminant(&right) {
                return false;
            }
            match op {
                Op::Eq => left == right,
                Op::Ge => left >= right,
                Op::Le => left <= right,
                Op::Gt => left > right,
                Op::Lt => left < right,
            }
        }
    }
}

/// Columns of `transactionLine` the simulator serves.
const LINE_COLUMNS: &[&str] = &[
    "uniquekey",
    "transaction",
    "id",
    "linesequencenumber",
    "mainline",
    "taxline",
    "item",
    "itemtype",
    "memo",
    "quantity",
    "rate",
    "foreignamount",
];

/// Columns of `transactionBillingAddress` / `transactionShippingAddress`.
const ADDRESS_COLUMNS: &[&str] = &[
    "nkey",
    "addressee",
    "attention",
    "addr1",
    "addr2",
    "addr3",
    "city",
    "state",
    "zip",
    "country",
    "addrphone",
];

/// The `transactionLine` rows of a sales order, derived from its id: the main line
/// (`mainline = 'T'`, no item), 1 to 3 item lines, a discount line after the first
/// item line on every fifth order, and a tax line (`taxline = 'T'`). Like NetSuite,
/// `quantity` and `foreignamount` carry the sign of the posting: negative on the item
/// (income) lines of a sales order, positive on a discount line; `rate` is positive.
pub fn sales_order_lines(order: u64) -> Vec<NsRecord> {
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut push = |f: Vec<(&str, String)>, disp: Vec<(&str, String)>| {
        let mut fields: BTreeMap<String, String> =
            f.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        fields.insert("transaction".into(), order.to_string());
        fields.insert("id".into(), seq.to_string());
        fields.insert("linesequencenumber".into(), seq.to_string());
        out.push(NsRecord {
            id: order * 16 + seq,
            record_type: "transactionline".into(),
            created: DateTime::<Utc>::default(),
            modified: DateTime::<Utc>::default(),
            fields,
            display: disp.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
        seq += 1;
    };
    push(
        vec![("mainline", "T".into()), ("taxline", "F".into())],
        vec![],
    );
    let n = 1 + order % 3;
    for k in 0..n {
        let item = 1 + (order + k) % 7;
        let qty = 1 + (order + k) % 4;
        let rate_cents = 500 + ((order * 31 + k * 17) % 5000) as i64;
        push(
            vec![
                ("mainline", "F".into()),
                ("taxline", "F".into()),
                ("item", item.to_string()),
                ("itemtype", "InvtPart".into()),
                ("memo", format!("Widget {item}")),
                ("quantity", format!("-{qty}")),
                ("rate", money(rate_cents)),
                ("foreignamount", money(-rate_cents * qty as i64)),
            ],
            vec![("item", format!("ITEM-{item:05}"))],
        );
        if k == 0 && order.is_multiple_of(5) {
            push(
                vec![
                    ("mainline", "F".into()),
                    ("taxline", "F".into()),
                    ("item", "900".into()),
                    ("itemtype", "Discount".into()),
                    ("memo", "Spring sale".into()),
                    ("rate", "-10%".into()),
                    ("foreignamount", money(rate_cents * qty as i64 / 10)),
                ],
                vec![("item", "SPRING10".into())],
            );
        }
    }
    push(
        vec![
            ("mainline", "F".into()),
            ("taxline", "T".into()),
            ("foreignamount", "-1".into()),
        ],
        vec![],
    );
    out
}

/// The billing (`shipping = false`) or shipping address of a sales order, derived from
/// its id; its `nkey` is the order's `billingaddress` / `shippingaddress` value.
pub fn sales_order_address(order: u64, shipping: bool) -> NsRecord {
    let nkey = order * 2 + u64::from(shipping);
    let mut f: BTreeMap<String, String> = BTreeMap::new();
    f.insert("nkey".into(), nkey.to_string());
    f.insert("addressee".into(), format!("Customer of SO{order}"));
    f.insert(
        "addr1".into(),
        format!(
            "{} {} Street",
            order % 900 + 1,
            if shipping { "Ship" } else { "Bill" }
        ),
    );
    if order.is_multiple_of(2) {
        f.insert("addr2".into(), format!("Suite {}", order % 50));
    }
    f.insert(
        "city".into(),
        if shipping { "Portland" } else { "San Mateo" }.into(),
    );
    f.insert("state".into(), if shipping { "OR" } else { "CA" }.into());
    f.insert("zip".into(), format!("9{:04}", order % 10_000));
    f.insert("country".into(), "US".into());
    f.insert("addrphone".into(), "555-555-0100".into());
    NsRecord {
        id: nkey,
        record_type: "address".into(),
        created: DateTime::<Utc>::default(),
        modified: DateTime::<Utc>::default(),
        fields: f,
        display: BTreeMap::new(),
    }
}

async fn suiteql_handler(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let q_text = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("q").and_then(|q| q.as_str()).map(str::to_string));
    let parsed = q_text.as_deref().map(suiteql::parse);
    let endpoint = match &parsed {
        Some(Ok(q)) => format!("suiteql {}", q.table),
        _ => "suiteql".to_string(),
    };
    let (inj, delay) = inner.faults.on_request(&endpoint);
    match inj {
        Injected::None => {}
        Injected::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Injected::RateLimited { retry_after } => {
            tokio::time::sleep(delay).await;
            let mut r = ns_error(
                StatusCode::TOO_MANY_REQUESTS,
                "CONCURRENCY_LIMIT_EXCEEDED",
                "Concurrent request limit exceeded. Request blocked.",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after) {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
        Injected::ServerError(code) => {
            tokio::time::sleep(delay).await;
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ns_error(status, "UNEXPECTED_ERROR", "An unexpected error occurred.");
        }
    }
    let token_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == inner.config.token);
    if !token_ok {
        return ns_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_LOGIN",
            "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
        );
    }
    let transient = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("transient"));
    if !transient {
        return ns_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            "SuiteQL requests need the header Prefer: transient.",
        );
    }
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => 1000,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        _ => {
            return ns_error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                "Invalid value for the parameter limit: it must be between 1 and 1000.",
            )
        }
    };
    let offset = match params.get("offset").map(|o| o.parse::<usize>()) {
        None => 0,
        Some(Ok(o)) if o % limit == 0 => o,
        _ => return ns_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            "Invalid value for the parameter offset: the offset must be a multiple of the limit.",
        ),
    };
    let query = match parsed {
        Some(Ok(q)) => q,
        Some(Err(e)) => {
            return ns_error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                &format!("Invalid search query. Detailed unprocessed description follows. {e}"),
            )
        }
        None => {
            return ns_error(
                StatusCode::BAD_REQUEST,
                "INVALID_CONTENT",
                "The request body must be a JSON object with a string property q.",
            )
        }
    };
    // derived tables: 0 transactionLine, 1 billing, 2 shipping addresses
    let derived = match query.table.as_str() {
        "transactionline" => Some(0),
        "transactionbillingaddress" => Some(1),
        "transactionshippingaddress" => Some(2),
        _ => None,
    };
    let table = match query.table.as_str() {
        "transaction" => Some(NsTable::Transaction),
        "customer" => Some(NsTable::Customer),
        "item" => Some(NsTable::Item),
        "deletedrecord" => None,
        _ if derived.is_some() => None,
        other => {
            return ns_error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                &format!("Invalid search query. Detailed unprocessed description follows. Search error occurred: Record '{other}' was not found."),
            )
        }
    };
    let known: Vec<&str> = match (derived, table) {
        (Some(0), _) => LINE_COLUMNS.to_vec(),
        (Some(_), _) => ADDRESS_COLUMNS.to_vec(),
        (None, Some(t)) => t.columns().to_vec(),
        (None, None) => DELETED_COLUMNS.to_vec(),
    };
    let mut used: Vec<&str> = query.select.iter().map(|s| s.column.as_str()).collect();
    used.extend(query.conds.iter().map(|c| match c {
        Cond::Cmp { column, .. } | Cond::In { column, .. } => column.as_str(),
    }));
    used.extend(query.order.iter().map(|(c, _)| c.as_str()));
    if let Some(bad) = used.iter().find(|c| !known.contains(c)) {
        return ns_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            &format!(
                "Invalid search query. Detailed unprocessed description follows. Search error occurred: Field '{bad}' for record '{}' was not found. Reason: NOT_EXPOSED - Not available for channel SEARCH",
                query.table
            ),
        );
    }
    if let Some(code) = inner.faults.on_page(&endpoint, offset, limit) {
        return ns_error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "UNEXPECTED_ERROR",
            "An unexpected error occurred.",
        );
    }
    let tz = inner.config.timezone;
    // faults: a server that never advances ignores the offset and every lower bound; a
    // multi-key ORDER BY may return the ties of its leading keys in a changing order
    let stuck = inner.faults.is_stuck();
    let offset = if stuck { 0 } else { offset };
    let salt = if query.order.len() > 1 {
        inner.faults.tie_salt()
    } else {
        None
    };
    let (items, total) = {
        let d = inner.data.lock().unwrap_or_else(|e| e.into_inner());
        let orders = || {
            d.tables
                .get(&NsTable::Transaction)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|r| r.record_type == "salesorder")
                .map(|r| r.id)
        };
        let derived_rows: Vec<NsRecord> = match derived {
            Some(0) => orders().flat_map(sales_order_lines).collect(),
            Some(k) => orders().map(|o| sales_order_address(o, k == 2)).collect(),
            None => Vec::new(),
        };
        let rows: Vec<RowRef<'_>> = match table {
            _ if derived.is_some() => derived_rows
                .iter()
                .map(|r| RowRef {
                    rec: Some(r),
                    del: None,
                })
                .collect(),
            Some(t) => d
                .tables
                .get(&t)
                .map(|m| {
                    m.values()
                        .map(|r| RowRef {
                            rec: Some(r),
                            del: None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => d
                .deleted
                .iter()
                .map(|r| RowRef {
                    rec: None,
                    del: Some(r),
                })
                .collect(),
        };
        let mut rows: Vec<RowRef<'_>> = rows
            .into_iter()
            .filter(|r| {
                query.conds.iter().all(|c| {
                    let lower_bound = matches!(
                        c,
                        Cond::Cmp {
                            op: suiteql::Op::Ge | suiteql::Op::Gt,
                            ..
                        }
                    );
                    (stuck && lower_bound) || matches(r, c, tz)
                })
            })
            .collect();
        let last = query.order.len().saturating_sub(1);
        rows.sort_by(|a, b| {
            for (i, (col, desc)) in query.order.iter().enumerate() {
                let o = match (salt, i == last) {
                    (Some(salt), true) => {
                        let rank = |r: &RowRef<'_>| match r.value(col) {
                            Val::Num(n) => faults::tie_rank(n as u64, salt),
                            _ => 0,
                        };
                        rank(a).cmp(&rank(b))
                    }
                    _ => a.value(col).cmp(&b.value(col)),
                };
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        // the result ceiling: rows past it cannot be reached by offset
        rows.truncate(inner.config.max_rows.max(1));
        let total = rows.len();
        let items: Vec<String> = rows
            .iter()
            .skip(offset)
            .take(limit)
            .map(|r| {
                let mut s = String::from("{\"links\":[]");
                for sel in &query.select {
                    let v = if sel.display {
                        r.display(&sel.column)
                    } else {
                        r.value(&sel.column)
                    };
                    if let Some(text) = render(&v, tz) {
                        s.push(',');
                        s.push_str(&serde_json::to_string(&sel.key).unwrap_or_default());
                        s.push(':');
                        s.push_str(&serde_json::to_string(&text).unwrap_or_default());
                    }
                }
                s.push('}');
                s
            })
            .collect();
        (items, total)
    };
    let has_more = offset + items.len() < total;
    let url = |o: usize| {
        format!(
            "{}/services/rest/query/v1/suiteql?limit={limit}&offset={o}",
            inner.base_url
        )
    };
    let mut links = vec![json!({"rel": "first", "href": url(0)})];
    if offset >= limit {
        links.push(json!({"rel": "prev", "href": url(offset - limit)}));
    }
    if has_more {
        links.push(json!({"rel": "next", "href": url(offset + limit)}));
    }
    let last = if total == 0 {
        0
    } else {
        (total - 1) / limit * limit
    };
    links.push(json!({"rel": "last", "href": url(last)}));
    links.push(json!({"rel": "self", "href": url(offset)}));
    let body = format!(
        "{{\"links\":{},\"count\":{},\"hasMore\":{},\"items\":[{}],\"offset\":{},\"totalResults\":{}}}",
        serde_json::Value::Array(links),
        items.len(),
        has_more,
        items.join(","),
        offset,
        total
    );
    tokio::time::sleep(delay).await;
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/vnd.oracle.resource+json; type=collection",
        )],
        body,
    )
        .into_response()
}
