//! WooCommerce REST API v3 simulator: a real HTTP server on `127.0.0.1` serving a seeded
//! store (orders, customers, products with variations) over 2+ years.
//!
//! # What it serves (3PA facts it reproduces; sources: woocommerce-rest-api-docs
//! `wp-api-v3/_introduction.md`, `_orders.md`, `_customers.md`, `_products.md`, WooCommerce
//! `class-wc-rest-crud-controller.php`, WordPress `WP_Date_Query`; `shared/fixtures/QUIRKS.md`)
//!
//! - `GET /wp-json/wc/v3/orders|customers|products` and `/products/{id}/variations`, a JSON
//!   array per page. `page` (1-based), `per_page` (default 10, at most 100, else `400
//!   rest_invalid_param`), `offset` (overrides `page`), `order=asc|desc`.
//!   Headers `X-WP-Total`, `X-WP-TotalPages` and `Link` (`rel="next"|"prev"|"first"|"last"`)
//!   (Q-W10). A page past the end is `200 []`.
//! - `orderby`: orders and products accept `date` (default, `desc`), `modified`, `id`,
//!   `include`, `title`, `slug`; customers accept `id`, `include`, `name` (default, `asc`),
//!   `registered_date`; variations `date` (default), `id`, `modified`, `menu_order`. An
//!   unknown value is `400 rest_invalid_param`. Ties are broken by id ascending (real
//!   MySQL leaves the order of equal `post_modified` values unspecified; the fault
//!   [`faults::Faults::shuffle_ties`] reproduces that, with an order that changes between
//!   requests).
//! - `modified_after` / `modified_before` (WC 5.8+) on orders, products and variations:
//!   **both bounds are exclusive** (`WP_Date_Query` `after`/`before` with `inclusive`
//!   false: `post_modified > after`, `post_modified < before`), at second precision. They
//!   are read as the store's **local wall time** and compared with `post_modified` unless
//!   `dates_are_gmt=true`, in which case they are compared with `post_modified_gmt`. A value
//!   with an explicit offset or `Z` is converted to the compared zone first. The customers
//!   endpoint has **no** date filter: WordPress ignores the unknown parameters and returns
//!   every customer (a connector must filter customers client side).
//! - `status`: orders/products default to every status except `trash`; `status=trash`
//!   lists trashed ones (`status=any` is the default).
//! - Records: `date_created`/`date_modified` in store-local time without offset and
//!   `date_created_gmt`/`date_modified_gmt` in UTC without `Z` (Q-W7); money as strings,
//!   `line_items[].price` a JSON number (Q-W8); names with HTML entities; JSON encoded as
//!   PHP's `wp_json_encode` does (`/` escaped as `\/`, non-ASCII as `\uXXXX`).
//!   Editing a variation does not touch its parent product's `date_modified`.
//! - Auth: HTTP Basic with the consumer key/secret, or `consumer_key`/`consumer_secret`
//!   query parameters; otherwise `401 woocommerce_rest_cannot_view`.
//! - Deletions: WooCommerce has no deletion feed. A deleted record simply disappears; a
//!   trashed order/product disappears from the default listing and shows under
//!   `status=trash` (with a new `date_modified`). A poller can see trashing (a
//!   `status=trash` listing) but not permanent deletion, except by diffing full id lists.
//!
//! Fault injection: [`faults::Faults`] (endpoint labels `GET /wp-json/wc/v3/orders`,
//! `.../customers`, `.../products`, `.../products/{id}/variations` with the literal
//! `{id}`).

pub mod faults;
pub mod webhooks;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, NaiveDateTime, TimeZone, Utc};
use faults::{Faults, Injected};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The site URL used in generated `_links` and permalinks.
pub const SITE: &str = "https://shop.example.com";

/// WooCommerce's REST date format (no offset).
pub const WC_DATE: &str = "%Y-%m-%dT%H:%M:%S";

/// The store's time zone (WordPress `timezone_string` or a fixed `gmt_offset`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoreTz {
    Iana(chrono_tz::Tz),
    Fixed(FixedOffset),
}

impl StoreTz {
    /// UTC → local wall time.
    pub fn to_local(&self, t: NaiveDateTime) -> NaiveDateTime {
        match self {
            StoreTz::Iana(tz) => tz.from_utc_datetime(&t).naive_local(),
            StoreTz::Fixed(o) => o.from_utc_datetime(&t).naive_local(),
        }
    }
    /// Local wall time → UTC (earliest on a DST overlap; a time in a DST gap is read
    /// one hour later).
    pub fn to_utc(&self, t: NaiveDateTime) -> NaiveDateTime {
        match self {
            StoreTz::Iana(tz) => tz
                .from_local_datetime(&t)
                .earliest()
                .or_else(|| {
                    tz.from_local_datetime(&(t + ChronoDuration::hours(1)))
                        .earliest()
                })
                .map(|d| d.naive_utc())
                .unwrap_or(t),
            StoreTz::Fixed(o) => o
                .from_local_datetime(&t)
                .earliest()
                .map(|d| d.naive_utc())
                .unwrap_or(t),
        }
    }
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct WooSimConfig {
    /// Seed of the data generator.
    pub seed: u64,
    /// The simulator clock's initial "now" (UTC).
    pub now: DateTime<Utc>,
    /// Records are created over `[now - span_days, now]`.
    pub span_days: i64,
    pub orders: usize,
    pub customers: usize,
    pub products: usize,
    /// Every `variable_every`-th product is variable (with 2–4 variations); 0: none.
    pub variable_every: usize,
    /// Share (0..1) of records that share their modified second with the previous one.
    pub same_second_share: f64,
    pub timezone: StoreTz,
    pub consumer_key: String,
    pub consumer_secret: String,
}

impl Default for WooSimConfig {
    fn default() -> Self {
        WooSimConfig {
            seed: 1,
            now: Utc
                .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
                .single()
                .unwrap_or_default(),
            span_days: 760,
            orders: 2000,
            customers: 500,
            products: 200,
            variable_every: 4,
            same_second_share: 0.05,
            timezone: StoreTz::Iana(chrono_tz::America::New_York),
            consumer_key: "ck_test_0123456789".into(),
            consumer_secret: "cs_test_9876543210".into(),
        }
    }
}

/// A listable resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WooResource {
    Orders,
    Customers,
    Products,
}

impl WooResource {
    fn path(self) -> &'static str {
        match self {
            WooResource::Orders => "orders",
            WooResource::Customers => "customers",
            WooResource::Products => "products",
        }
    }

    /// The webhook resource name (`order`, `customer`, `product`).
    pub fn webhook_resource(self) -> &'static str {
        match self {
            WooResource::Orders => "order",
            WooResource::Customers => "customer",
            WooResource::Products => "product",
        }
    }
}

/// A record as the simulator holds it.
#[derive(Debug, Clone)]
struct Rec {
    id: u64,
    created_gmt: NaiveDateTime,
    modified_gmt: NaiveDateTime,
    /// The JSON object (date fields are re-rendered from the two times above).
    body: Value,
    variations: Vec<Variation>,
}

#[derive(Debug, Clone)]
struct Variation {
    id: u64,
    created_gmt: NaiveDateTime,
    modified_gmt: NaiveDateTime,
    body: Value,
}

/// One record as the API currently serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WooRecordView {
    pub id: u64,
    pub modified_gmt: DateTime<Utc>,
    /// `status` (orders, products), `""` for customers.
    pub status: String,
    /// The exact bytes of the record's JSON object in a listing.
    pub body: Vec<u8>,
    /// Products: the exact bytes of each variation (id order).
    pub variations: Vec<Vec<u8>>,
}

struct Data {
    now: DateTime<Utc>,
    next_id: u64,
    rng: SmallRng,
    resources: BTreeMap<WooResource, BTreeMap<u64, Rec>>,
}

struct Inner {
    config: WooSimConfig,
    base_url: String,
    data: Mutex<Data>,
    faults: Faults,
    hooks: webhooks::Hooks,
}

impl Inner {
    fn now_naive(&self) -> NaiveDateTime {
        self.data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .now
            .naive_utc()
            .with_nanosecond0()
    }
}

/// A running WooCommerce simulator (the server stops when this is dropped).
pub struct WooSim {
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
    deliveries: tokio::task::JoinHandle<()>,
}

impl Drop for WooSim {
    fn drop(&mut self) {
        self.server.abort();
        self.deliveries.abort();
    }
}

impl WooSim {
    /// Generates the data set and starts the server on a free port of 127.0.0.1.
    pub async fn start(config: WooSimConfig) -> WooSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let data = generate(&config);
        let (hooks, queue) = webhooks::Hooks::new();
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            config,
            data: Mutex::new(data),
            faults: Faults::default(),
            hooks,
        });
        let deliveries = tokio::spawn(webhooks::run_worker(inner.clone(), queue));
        let app = Router::new()
            .route(
                "/wp-json/wc/v3/webhooks",
                get(webhooks::list).post(webhooks::create),
            )
            .route(
                "/wp-json/wc/v3/webhooks/{id}",
                put(webhooks::update)
                    .get(webhooks::get_one)
                    .delete(webhooks::delete),
            )
            .route("/wp-json/wc/v3/{resource}", get(list_handler))
            .route(
                "/wp-json/wc/v3/products/{id}/variations",
                get(variations_handler),
            )
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WooSim {
            inner,
            server,
            deliveries,
        }
    }

    /// `http://127.0.0.1:<port>` (the site URL; the API is under `/wp-json/wc/v3`).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn config(&self) -> &WooSimConfig {
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

    /// Sets the simulator clock (mutations stamp records with it).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.data().now = now;
    }

    /// Creates a new record modified (and created) at `at`, returning its id.
    pub fn create_at(&self, resource: WooResource, at: DateTime<Utc>) -> u64 {
        let tz = self.inner.config.timezone;
        let base = SITE.to_string();
        let mut d = self.data();
        let at = at.naive_utc().with_nanosecond0();
        let id = d.next_id;
        d.next_id += 1;
        let customers: Vec<u64> = d
            .resources
            .get(&WooResource::Customers)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        let Data { rng, next_id, .. } = &mut *d;
        let rec = make_record(
            resource, id, at, at, rng, next_id, &customers, tz, &base, true,
        );
        let body = php_json(&rec.body);
        d.resources.entry(resource).or_default().insert(id, rec);
        drop(d);
        self.fire(resource, "created", id, body);
        id
    }

    /// Queues `<resource>.<event>` about record `id` for every active webhook of it.
    fn fire(&self, resource: WooResource, event: &str, id: u64, body: String) {
        let topic = format!("{}.{event}", resource.webhook_resource());
        self.inner.hooks.fire(&topic, id, body);
    }

    fn current_body(&self, resource: WooResource, id: u64) -> Option<String> {
        self.data()
            .resources
            .get(&resource)
            .and_then(|m| m.get(&id))
            .map(|r| php_json(&r.body))
    }

    /// Creates a new record modified now.
    pub fn create(&self, resource: WooResource) -> u64 {
        let now = self.now();
        self.create_at(resource, now)
    }

    /// Sets a record's modified time to the simulator's now (a no-op save). False if absent.
    pub fn touch(&self, resource: WooResource, id: u64) -> bool {
        let now = self.now();
        self.set_modified(resource, id, now)
    }

    /// Sets a record's modified time (and changes a field so the content differs), and
    /// delivers `<resource>.updated`.
    pub fn set_modified(&self, resource: WooResource, id: u64, at: DateTime<Utc>) -> bool {
        if !self.set_modified_quietly(resource, id, at) {
            return false;
        }
        if let Some(body) = self.current_body(resource, id) {
            self.fire(resource, "updated", id, body);
        }
        true
    }

    /// Changes top-level fields of a record (`patch`: a JSON object merged into it, e.g.
    /// `{"status": "completed"}`), modified at `at`, and delivers `<resource>.updated`.
    /// False if absent.
    pub fn update(&self, resource: WooResource, id: u64, patch: &Value, at: DateTime<Utc>) -> bool {
        {
            let mut d = self.data();
            let Some(rec) = d.resources.get_mut(&resource).and_then(|m| m.get_mut(&id)) else {
                return false;
            };
            if let (Some(o), Some(p)) = (rec.body.as_object_mut(), patch.as_object()) {
                for (k, v) in p {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        self.set_modified(resource, id, at)
    }

    fn set_modified_quietly(&self, resource: WooResource, id: u64, at: DateTime<Utc>) -> bool {
        let tz = self.inner.config.timezone;
        let mut d = self.data();
        let Some(rec) = d.resources.get_mut(&resource).and_then(|m| m.get_mut(&id)) else {
            return false;
        };
        rec.modified_gmt = at.naive_utc().with_nanosecond0();
        render_dates(&mut rec.body, rec.created_gmt, rec.modified_gmt, tz);
        if let Some(o) = rec.body.as_object_mut() {
            let n = o
                .get("meta_data")
                .and_then(|m| m.as_array())
                .map_or(0, |a| a.len());
            o.insert(
                "meta_data".into(),
                json!([{"id": 9000 + n as u64, "key": "_ingot_sim_touch", "value": format!("{}", rec.modified_gmt)}]),
            );
        }
        true
    }

    /// Edits a variation (its own `date_modified` = now; the parent product is untouched).
    pub fn touch_variation(&self, product_id: u64, variation_id: u64) -> bool {
        let tz = self.inner.config.timezone;
        let mut d = self.data();
        let now = d.now.naive_utc().with_nanosecond0();
        let Some(rec) = d
            .resources
            .get_mut(&WooResource::Products)
            .and_then(|m| m.get_mut(&product_id))
        else {
            return false;
        };
        let Some(v) = rec.variations.iter_mut().find(|v| v.id == variation_id) else {
            return false;
        };
        v.modified_gmt = now;
        render_dates(&mut v.body, v.created_gmt, v.modified_gmt, tz);
        true
    }

    /// Moves an order or product to the trash (`status: "trash"`, modified now).
    pub fn trash(&self, resource: WooResource, id: u64) -> bool {
        let now = self.now();
        {
            let mut d = self.data();
            let Some(rec) = d.resources.get_mut(&resource).and_then(|m| m.get_mut(&id)) else {
                return false;
            };
            if let Some(o) = rec.body.as_object_mut() {
                o.insert("status".into(), json!("trash"));
            }
        }
        if !self.set_modified_quietly(resource, id, now) {
            return false;
        }
        self.fire(resource, "deleted", id, format!("{{\"id\":{id}}}"));
        true
    }

    /// Deletes a record permanently (`DELETE ?force=true`): it disappears (and
    /// `<resource>.deleted` is delivered, body `{"id": N}`).
    pub fn delete(&self, resource: WooResource, id: u64) -> bool {
        let gone = self
            .data()
            .resources
            .get_mut(&resource)
            .is_some_and(|m| m.remove(&id).is_some());
        if gone {
            self.fire(resource, "deleted", id, format!("{{\"id\":{id}}}"));
        }
        gone
    }

    /// The webhooks the store holds (secrets included: the simulator's view, not the API's).
    pub fn webhooks(&self) -> Vec<webhooks::SimWebhook> {
        self.inner.hooks.webhooks()
    }

    /// Every delivery attempt so far, in order (pings excluded).
    pub fn deliveries(&self) -> Vec<webhooks::Delivery> {
        self.inner.hooks.deliveries()
    }

    /// Every ping sent (webhook id, outcome).
    pub fn pings(&self) -> Vec<(u64, Result<u16, String>)> {
        self.inner.hooks.pings()
    }

    /// While set, every delivery fails as if the delivery URL could not be reached
    /// (and counts towards the auto-disable).
    pub fn fail_deliveries(&self, yes: bool) {
        self.inner.hooks.set_fail_deliveries(yes);
    }

    /// `woocommerce_max_webhook_delivery_failures` (default 5): a failure that finds the
    /// consecutive count above it disables the webhook.
    pub fn set_max_delivery_failures(&self, n: u32) {
        self.inner.hooks.set_max_failures(n);
    }

    /// `Some(status)`: every webhooks API call is refused with that status (403: the
    /// API key lacks write permission); `None`: normal.
    pub fn reject_webhook_api(&self, status: Option<u16>) {
        self.inner.hooks.set_reject_api(status);
    }

    /// Sets a webhook's status as an admin would (`paused`, `disabled`). False if absent.
    pub fn set_webhook_status(&self, id: u64, status: &str) -> bool {
        self.inner.hooks.set_status(id, status)
    }

    /// Deletes a webhook as an admin would. False if absent.
    pub fn remove_webhook(&self, id: u64) -> bool {
        self.inner.hooks.remove(id)
    }

    /// Waits until every queued delivery was attempted.
    pub async fn deliveries_settled(&self) {
        self.inner.hooks.settled().await
    }

    /// Every record of `resource` (trash included), by id, as the API serves it.
    pub fn records(&self, resource: WooResource) -> Vec<WooRecordView> {
        let d = self.data();
        d.resources
            .get(&resource)
            .map(|m| {
                m.values()
                    .map(|r| WooRecordView {
                        id: r.id,
                        modified_gmt: r.modified_gmt.and_utc(),
                        status: r
                            .body
                            .get("status")
                            .and_then(|s| s.as_str())
                            .unwrap_or("")
                            .to_string(),
                        body: php_json(&r.body).into_bytes(),
                        variations: r
                            .variations
                            .iter()
                            .map(|v| php_json(&v.body).into_bytes())
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ids of the variations of a product.
    pub fn variation_ids(&self, product_id: u64) -> Vec<u64> {
        self.data()
            .resources
            .get(&WooResource::Products)
            .and_then(|m| m.get(&product_id))
            .map(|r| r.variations.iter().map(|v| v.id).collect())
            .unwrap_or_default()
    }
}

trait NoNanos {
    fn with_nanosecond0(self) -> Self;
}
impl NoNanos for NaiveDateTime {
    fn with_nanosecond0(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

// ---------------------------------------------------------------------------------------
// JSON as PHP's wp_json_encode writes it

/// Serializes like PHP `json_encode` with WordPress defaults: `/` → `\/`, non-ASCII →
/// `\uXXXX` (UTF-16 surrogate pairs above the BMP).
pub fn php_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x80 => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Data generation

const FIRST: &[&str] = &[
    "John", "Zoë", "Amélie", "Ngọc", "Łukasz", "María", "Sam", "Priya", "O'Brien", "Chen",
];
const LAST: &[&str] = &[
    "Doe", "Müller", "Smith", "Nguyễn", "García", "Kowalski", "Brown", "Patel", "Lee", "Dubois",
];
const PRODUCT_NAMES: &[&str] = &[
    "Ninja Silhouette",
    "Caf&eacute; Mug &amp; Saucer",
    "Premium Quality T-Shirt",
    "Woo Logo Hoodie",
    "Album &#8211; Deluxe",
    "Beanie with Logo",
    "Sunglasses 😎",
    "Belt",
];
const ORDER_STATUSES: &[&str] = &[
    "processing",
    "completed",
    "completed",
    "completed",
    "on-hold",
    "pending",
    "cancelled",
    "refunded",
];

const SIZES: [&str; 4] = ["S", "M", "L", "XL"];

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn render_dates(body: &mut Value, created: NaiveDateTime, modified: NaiveDateTime, tz: StoreTz) {
    if let Some(o) = body.as_object_mut() {
        o.insert(
            "date_created".into(),
            json!(tz.to_local(created).format(WC_DATE).to_string()),
        );
        o.insert(
            "date_created_gmt".into(),
            json!(created.format(WC_DATE).to_string()),
        );
        o.insert(
            "date_modified".into(),
            json!(tz.to_local(modified).format(WC_DATE).to_string()),
        );
        o.insert(
            "date_modified_gmt".into(),
            json!(modified.format(WC_DATE).to_string()),
        );
    }
}

fn address(rng: &mut SmallRng, with_contact: bool) -> Value {
    let mut a = json!({
        "first_name": FIRST[rng.gen_range(0..FIRST.len())],
        "last_name": LAST[rng.gen_range(0..LAST.len())],
        "company": "",
        "address_1": format!("{} Example St", rng.gen_range(1..999)),
        "address_2": "",
        "city": "San Francisco",
        "state": "CA",
        "postcode": "94103",
        "country": "US"
    });
    if with_contact {
        if let Some(o) = a.as_object_mut() {
            o.insert(
                "email".into(),
                json!(format!("buyer{}@example.com", rng.gen_range(1..100000))),
            );
            o.insert("phone".into(), json!("(555) 555-5555"));
        }
    }
    a
}

#[allow(clippy::too_many_arguments)]
fn make_record(
    resource: WooResource,
    id: u64,
    created: NaiveDateTime,
    modified: NaiveDateTime,
    rng: &mut SmallRng,
    next_id: &mut u64,
    customers: &[u64],
    tz: StoreTz,
    base: &str,
    variable: bool,
) -> Rec {
    let links = json!({
        "self": [{"href": format!("{base}/wp-json/wc/v3/{}/{id}", resource.path())}],
        "collection": [{"href": format!("{base}/wp-json/wc/v3/{}", resource.path())}]
    });
    let mut variations = Vec::new();
    let mut body = match resource {
        WooResource::Orders => {
            let lines = rng.gen_range(1..4);
            let mut items = Vec::new();
            let mut subtotal = 0i64;
            for l in 0..lines {
                let qty = rng.gen_range(1..4i64);
                let unit = rng.gen_range(100..10000i64);
                subtotal += qty * unit;
                items.push(json!({
                    "id": id * 10 + l,
                    "name": PRODUCT_NAMES[rng.gen_range(0..PRODUCT_NAMES.len())],
                    "product_id": rng.gen_range(10..500),
                    "variation_id": 0,
                    "quantity": qty,
                    "tax_class": "",
                    "subtotal": money(qty * unit),
                    "subtotal_tax": "0.00",
                    "total": money(qty * unit),
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": [],
                    "sku": "",
                    "price": (unit as f64) / 100.0
                }));
            }
            let shipping = 1000i64;
            let customer_id = if customers.is_empty() || rng.gen_bool(0.3) {
                0
            } else {
                customers[rng.gen_range(0..customers.len())]
            };
            let mut head = json!({
                "id": id,
                "parent_id": 0,
                "number": id.to_string(),
                "order_key": format!("wc_order_{:x}", rng.gen::<u64>()),
                "created_via": "checkout",
                "version": "9.4.2",
                "status": ORDER_STATUSES[rng.gen_range(0..ORDER_STATUSES.len())],
                "currency": "USD",
                "discount_total": "0.00",
                "discount_tax": "0.00",
                "shipping_total": money(shipping),
                "shipping_tax": "0.00",
                "cart_tax": "0.00",
                "total": money(subtotal + shipping),
                "total_tax": "0.00",
                "prices_include_tax": false,
                "customer_id": customer_id,
                "customer_ip_address": "",
                "customer_user_agent": "",
                "customer_note": "",
            });
            let tail = json!({
                "billing": address(rng, true),
                "shipping": address(rng, false),
                "payment_method": "bacs",
                "payment_method_title": "Direct Bank Transfer",
                "transaction_id": "",
                "date_paid": null,
                "date_paid_gmt": null,
                "date_completed": null,
                "date_completed_gmt": null,
                "cart_hash": "",
                "meta_data": [],
                "line_items": items,
                "tax_lines": [],
                "shipping_lines": [{"id": id * 10 + 9, "method_title": "Flat Rate", "method_id": "flat_rate", "total": money(shipping), "total_tax": "0.00", "taxes": []}],
                "fee_lines": [],
                "coupon_lines": [],
                "refunds": [],
                "_links": links
            });
            if let (Some(h), Value::Object(t)) = (head.as_object_mut(), tail) {
                h.extend(t);
            }
            head
        }
        WooResource::Customers => {
            let first = FIRST[rng.gen_range(0..FIRST.len())];
            let last = LAST[rng.gen_range(0..LAST.len())];
            json!({
                "id": id,
                "email": format!("customer{id}@example.com"),
                "first_name": first,
                "last_name": last,
                "role": "customer",
                "username": format!("customer{id}"),
                "billing": address(rng, true),
                "shipping": address(rng, false),
                "is_paying_customer": rng.gen_bool(0.5),
                "avatar_url": format!("https://secure.gravatar.com/avatar/{:x}?s=96&d=mm&r=g", rng.gen::<u64>()),
                "meta_data": [],
                "_links": links
            })
        }
        WooResource::Products => {
            let name = PRODUCT_NAMES[rng.gen_range(0..PRODUCT_NAMES.len())];
            let price = rng.gen_range(500..20000i64);
            let mut variation_ids = Vec::new();
            if variable {
                for k in 0..rng.gen_range(2..5u64) {
                    let vid = *next_id;
                    *next_id += 1;
                    variation_ids.push(vid);
                    let vprice = price + 100 * k as i64;
                    let mut vb = json!({
                        "id": vid,
                        "description": "",
                        "permalink": format!("{base}/product/p-{id}/?attribute_pa_size={k}"),
                        "sku": format!("SKU-{id}-{k}"),
                        "price": money(vprice),
                        "regular_price": money(vprice),
                        "sale_price": "",
                        "on_sale": false,
                        "status": "publish",
                        "purchasable": true,
                        "manage_stock": false,
                        "stock_quantity": null,
                        "stock_status": "instock",
                        "attributes": [{"id": 1, "name": "Size", "option": SIZES[k as usize % 4]}],
                        "menu_order": k,
                        "meta_data": [],
                        "_links": {"self": [{"href": format!("{base}/wp-json/wc/v3/products/{id}/variations/{vid}")}]}
                    });
                    render_dates(&mut vb, created, modified, tz);
                    variations.push(Variation {
                        id: vid,
                        created_gmt: created,
                        modified_gmt: modified,
                        body: vb,
                    });
                }
            }
            json!({
                "id": id,
                "name": name,
                "slug": format!("p-{id}"),
                "permalink": format!("{base}/product/p-{id}/"),
                "type": if variable { "variable" } else { "simple" },
                "status": "publish",
                "featured": false,
                "catalog_visibility": "visible",
                "description": "<p>Pellentesque habitant morbi tristique senectus.</p>\n",
                "short_description": "",
                "sku": format!("SKU-{id}"),
                "price": if variable { String::new() } else { money(price) },
                "regular_price": if variable { String::new() } else { money(price) },
                "sale_price": "",
                "on_sale": false,
                "purchasable": true,
                "total_sales": rng.gen_range(0..500),
                "manage_stock": false,
                "stock_quantity": null,
                "stock_status": "instock",
                "categories": [{"id": 9, "name": "Clothing", "slug": "clothing"}],
                "tags": [],
                "images": [],
                "attributes": if variable { json!([{"id": 1, "name": "Size", "position": 0, "visible": true, "variation": true, "options": ["S", "M", "L", "XL"]}]) } else { json!([]) },
                "variations": variation_ids,
                "meta_data": [],
                "_links": links
            })
        }
    };
    render_dates(&mut body, created, modified, tz);
    Rec {
        id,
        created_gmt: created,
        modified_gmt: modified,
        body,
        variations,
    }
}

fn generate(config: &WooSimConfig) -> Data {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let now = config.now.naive_utc().with_nanosecond0();
    let span = config.span_days.max(1) * 86_400;
    let mut next_id: u64 = 100;
    let mut resources: BTreeMap<WooResource, BTreeMap<u64, Rec>> = BTreeMap::new();
    for (resource, count) in [
        (WooResource::Customers, config.customers),
        (WooResource::Products, config.products),
        (WooResource::Orders, config.orders),
    ] {
        let customers: Vec<u64> = resources
            .get(&WooResource::Customers)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        let mut prev_modified: Option<NaiveDateTime> = None;
        let mut map = BTreeMap::new();
        for i in 0..count {
            let id = next_id;
            next_id += 1;
            let created = now - ChronoDuration::seconds(rng.gen_range(0..span));
            let mut modified = created + ChronoDuration::seconds(rng.gen_range(0..30 * 86_400));
            if modified > now {
                modified = now;
            }
            if let Some(p) = prev_modified {
                if rng.gen_bool(config.same_second_share.clamp(0.0, 1.0)) && p >= created {
                    modified = p;
                }
            }
            prev_modified = Some(modified);
            let variable = resource == WooResource::Products
                && config.variable_every > 0
                && i % config.variable_every == 0;
            let rec = make_record(
                resource,
                id,
                created,
                modified,
                &mut rng,
                &mut next_id,
                &customers,
                config.timezone,
                SITE,
                variable,
            );
            map.insert(id, rec);
        }
        resources.insert(resource, map);
    }
    Data {
        now: config.now,
        next_id,
        rng,
        resources,
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

fn wp_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"code": code, "message": message, "data": {"status": status.as_u16()}});
    (
        status,
        [("content-type", "application/json; charset=UTF-8")],
        php_json(&body),
    )
        .into_response()
}

fn authorized(inner: &Inner, headers: &HeaderMap, q: &HashMap<String, String>) -> bool {
    let (ck, cs) = (&inner.config.consumer_key, &inner.config.consumer_secret);
    if q.get("consumer_key") == Some(ck) && q.get("consumer_secret") == Some(cs) {
        return true;
    }
    let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(b64) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    raw == format!("{ck}:{cs}").into_bytes()
}

/// Applies steps 1–4 of fault injection: `Err(response)` when the request is faulted,
/// else the delay to apply before answering.
async fn inject(faults: &Faults, endpoint: &str) -> Result<std::time::Duration, Response> {
    let (inj, delay) = faults.on_request(endpoint);
    Err(match inj {
        Injected::None => return Ok(delay),
        Injected::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Injected::RateLimited { retry_after } => {
            tokio::time::sleep(delay).await;
            let mut r = wp_error(
                StatusCode::TOO_MANY_REQUESTS,
                "woocommerce_rest_too_many_requests",
                "Too many requests.",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Injected::ServerError(code) => {
            tokio::time::sleep(delay).await;
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                "<html><body><h1>Error establishing a database connection</h1></body></html>",
            )
                .into_response()
        }
    })
}

fn parse_bool(v: Option<&String>) -> bool {
    matches!(v.map(|s| s.as_str()), Some("true" | "1" | "yes"))
}

/// A `modified_after`/`modified_before` value in the compared zone (UTC if `gmt`, store
/// local otherwise).
fn parse_wp_date(v: &str, gmt: bool, tz: StoreTz) -> Option<NaiveDateTime> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        let utc = t.naive_utc();
        return Some(if gmt { utc } else { tz.to_local(utc) });
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Some(t);
        }
    }
    None
}

struct ListParams {
    per_page: usize,
    start: usize,
    page: usize,
    orderby: String,
    desc: bool,
    after: Option<NaiveDateTime>,
    before: Option<NaiveDateTime>,
    gmt: bool,
}

#[allow(clippy::result_large_err)]
fn list_params(
    q: &HashMap<String, String>,
    allowed_orderby: &[&str],
    default_orderby: &str,
    default_desc: bool,
    date_filters: bool,
    tz: StoreTz,
) -> Result<ListParams, Response> {
    let invalid = |p: &str| {
        wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            &format!("Invalid parameter(s): {p}"),
        )
    };
    let per_page = match q.get("per_page") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return Err(invalid("per_page")),
        },
    };
    let page = match q.get("page") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(invalid("page")),
        },
    };
    let start = match q.get("offset") {
        None => (page - 1) * per_page,
        Some(v) => v.parse::<usize>().map_err(|_| invalid("offset"))?,
    };
    let orderby = q
        .get("orderby")
        .cloned()
        .unwrap_or_else(|| default_orderby.to_string());
    if !allowed_orderby.contains(&orderby.as_str()) {
        return Err(invalid("orderby"));
    }
    let desc = match q.get("order").map(|s| s.as_str()) {
        None => default_desc,
        Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(invalid("order")),
    };
    let gmt = parse_bool(q.get("dates_are_gmt"));
    let (mut after, mut before) = (None, None);
    if date_filters {
        if let Some(v) = q.get("modified_after") {
            after = Some(parse_wp_date(v, gmt, tz).ok_or_else(|| invalid("modified_after"))?);
        }
        if let Some(v) = q.get("modified_before") {
            before = Some(parse_wp_date(v, gmt, tz).ok_or_else(|| invalid("modified_before"))?);
        }
    }
    Ok(ListParams {
        per_page,
        start,
        page,
        orderby,
        desc,
        after,
        before,
        gmt,
    })
}

/// Sort key of a record for an `orderby`.
fn sort_key(
    orderby: &str,
    id: u64,
    created: NaiveDateTime,
    modified: NaiveDateTime,
    body: &Value,
) -> (String, u64) {
    let t = |x: NaiveDateTime| x.format("%Y%m%d%H%M%S").to_string();
    match orderby {
        "modified" => (t(modified), id),
        "date" | "registered_date" => (t(created), id),
        "title" | "name" | "slug" => {
            let f = match orderby {
                "slug" => "slug",
                "title" => "name",
                _ => "last_name",
            };
            (
                body.get(f)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_lowercase(),
                id,
            )
        }
        "menu_order" => (
            format!(
                "{:010}",
                body.get("menu_order").and_then(|v| v.as_u64()).unwrap_or(0)
            ),
            id,
        ),
        _ => (String::new(), id),
    }
}

/// Builds the paged response (headers and body) from the full sorted list.
fn paged_response(
    base_url: &str,
    path: &str,
    q: &HashMap<String, String>,
    p: &ListParams,
    bodies: Vec<String>,
) -> Response {
    let total = bodies.len();
    let pages = total.div_ceil(p.per_page);
    let items: Vec<String> = bodies.into_iter().skip(p.start).take(p.per_page).collect();
    let body = format!("[{}]", items.join(","));
    let mut resp = (
        StatusCode::OK,
        [("content-type", "application/json; charset=UTF-8")],
        body,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert("x-wp-total", HeaderValue::from(total as u64));
    h.insert("x-wp-totalpages", HeaderValue::from(pages as u64));
    let mut pairs: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "offset")
        .collect();
    pairs.sort();
    let qs: String = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}&", urlencode(v)))
        .collect();
    let link = |n: usize, rel: &str| format!("<{base_url}{path}?{qs}page={n}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if p.page > 1 {
        links.push(link(p.page - 1, "prev"));
    }
    if p.page < pages {
        links.push(link(p.page + 1, "next"));
    }
    if pages > 0 {
        links.push(link(1, "first"));
        links.push(link(pages, "last"));
    }
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        if !links.is_empty() {
            h.insert("link", v);
        }
    }
    resp
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn list_handler(
    State(inner): State<Arc<Inner>>,
    Path(resource): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/wp-json/wc/v3/{resource}");
    let endpoint = format!("GET {path}");
    let delay = match inject(&inner.faults, &endpoint).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let res = match resource.as_str() {
        "orders" => WooResource::Orders,
        "customers" => WooResource::Customers,
        "products" => WooResource::Products,
        _ => {
            return wp_error(
                StatusCode::NOT_FOUND,
                "rest_no_route",
                "No route was found matching the URL and request method.",
            )
        }
    };
    if !authorized(&inner, &headers, &q) {
        return wp_error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        );
    }
    let tz = inner.config.timezone;
    let params = match res {
        WooResource::Customers => list_params(
            &q,
            &["id", "include", "name", "registered_date"],
            "name",
            false,
            false,
            tz,
        ),
        _ => list_params(
            &q,
            &["date", "modified", "id", "include", "title", "slug"],
            "date",
            true,
            true,
            tz,
        ),
    };
    let mut p = match params {
        Ok(p) => p,
        Err(r) => return r,
    };
    if inner.faults.is_stuck() {
        p.start = 0;
        p.page = 1;
        p.after = None;
    }
    let salt = if p.orderby == "id" {
        None
    } else {
        inner.faults.tie_salt()
    };
    if let Some(code) = inner.faults.on_page(&endpoint, p.start, p.per_page) {
        return wp_error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "internal_server_error",
            "Service unavailable.",
        );
    }
    let status_filter = q.get("status").cloned().unwrap_or_else(|| "any".into());
    let bodies = {
        let d = inner.data.lock().unwrap_or_else(|e| e.into_inner());
        let Some(map) = d.resources.get(&res) else {
            return wp_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no data");
        };
        let mut rows: Vec<(&Rec, (String, u64))> = map
            .values()
            .filter(|r| {
                if res == WooResource::Customers {
                    return true;
                }
                let status = r.body.get("status").and_then(|s| s.as_str()).unwrap_or("");
                let status_ok = match status_filter.as_str() {
                    "any" => status != "trash",
                    wanted => wanted.split(',').any(|w| w == status),
                };
                let m = if p.gmt {
                    r.modified_gmt
                } else {
                    tz.to_local(r.modified_gmt)
                };
                status_ok && p.after.is_none_or(|a| m > a) && p.before.is_none_or(|b| m < b)
            })
            .map(|r| {
                let (primary, id) =
                    sort_key(&p.orderby, r.id, r.created_gmt, r.modified_gmt, &r.body);
                // ties by id, or (fault) in an order that changes with every request
                (r, (primary, salt.map_or(id, |s| faults::tie_rank(id, s))))
            })
            .collect();
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        if p.desc {
            // WordPress flips the primary order only; ties stay as they were.
            rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        }
        rows.iter()
            .map(|(r, _)| php_json(&r.body))
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(delay).await;
    paged_response(&inner.base_url, &path, &q, &p, bodies)
}

async fn variations_handler(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let endpoint = "GET /wp-json/wc/v3/products/{id}/variations".to_string();
    let delay = match inject(&inner.faults, &endpoint).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if !authorized(&inner, &headers, &q) {
        return wp_error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        );
    }
    let tz = inner.config.timezone;
    let p = match list_params(
        &q,
        &[
            "date",
            "modified",
            "id",
            "include",
            "title",
            "slug",
            "menu_order",
        ],
        "date",
        true,
        true,
        tz,
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(code) = inner.faults.on_page(&endpoint, p.start, p.per_page) {
        return wp_error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "internal_server_error",
            "Service unavailable.",
        );
    }
    let bodies = {
        let d = inner.data.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rec) = id.parse::<u64>().ok().and_then(|id| {
            d.resources
                .get(&WooResource::Products)
                .and_then(|m| m.get(&id))
        }) else {
            return wp_error(
                StatusCode::NOT_FOUND,
                "woocommerce_rest_product_invalid_id",
                "Invalid ID.",
            );
        };
        let mut rows: Vec<(&Variation, (String, u64))> = rec
            .variations
            .iter()
            .filter(|v| {
                let m = if p.gmt {
                    v.modified_gmt
                } else {
                    tz.to_local(v.modified_gmt)
                };
                p.after.is_none_or(|a| m > a) && p.before.is_none_or(|b| m < b)
            })
            .map(|v| {
                (
                    v,
                    sort_key(&p.orderby, v.id, v.created_gmt, v.modified_gmt, &v.body),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        if p.desc {
            rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        }
        rows.iter()
            .map(|(v, _)| php_json(&v.body))
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(delay).await;
    paged_response(
        &inner.base_url,
        &format!("/wp-json/wc/v3/products/{id}/variations"),
        &q,
        &p,
        bodies,
    )
}
