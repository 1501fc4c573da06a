//! NetSuite mapping: SuiteTalk REST records, SuiteQL rows and DeletedRecord rows.
//!
//! NetSuite has no push (QUIRKS Q-N1): every raw event comes from the poller, one record
//! or row per event. The poller names topics `<record type>.<source>`:
//!
//! # Topics
//!
//! | topic | model, op | payload |
//! |---|---|---|
//! | `salesOrder.rest` | Order, upsert | `GET /record/v1/salesOrder/<id>`, ideally `?expandSubResources=true` |
//! | `customer.rest` | Customer, upsert | `GET /record/v1/customer/<id>` |
//! | `inventoryItem.rest` and the other item record types (see [`ITEM_RECORD_TYPES`]) | Product, upsert | `GET /record/v1/<type>/<id>` |
//! | `salesorder.suiteql`, `customer.suiteql`, `item.suiteql` | Order / Customer / Product, upsert | one element of a SuiteQL `items[]` page (`links: []` included) |
//! | `<type>.deleted` (`salesorder`, `customer`, `item` or an item record type) | delete | one DeletedRecord row `{"recordid": "18", "type": "salesorder", "deleteddate": "..."}` |
//!
//! The record-type part of a topic is matched case-insensitively (`salesOrder.rest` =
//! `salesorder.rest`); the verb is lower case. Other topics are
//! [`Outcome::Skip`]`("unmapped topic")`.
//!
//! # Shapes (3PA facts; sources in `shared/fixtures/QUIRKS.md`)
//!
//! - REST: ids are strings (`"id": "18"`), amounts JSON numbers (`39.95`, `0.0`), booleans
//!   `true`/`false` or `"T"`/`"F"` (Q-N6, Q-N7). References are `{id, refName}` (an empty
//!   one is `{"id": "-1", "refName": ""}`) or plain codes (`orderStatus: "A"`). Sublists
//!   and subrecords (`item`, `billingAddress`, `addressBook`) are links only unless the
//!   poller asks for `expandSubResources=true` (Q-N3): then a sales order's `item.items[]`
//!   carry the lines; without it the order has no line items (not an error).
//! - SuiteQL: every value is a string and column names are lower case (Q-N4). Keys are
//!   looked up case-insensitively, so the REST and SuiteQL paths share one mapping.
//! - `lastModifiedDate` (REST, UTC, **minute precision**, Q-N2) is `remote_updated_at`;
//!   two versions saved in the same minute carry the same value, which the version rule
//!   resolves by raw-log position (DESIGN §3 rule 2). `createdDate` / `dateCreated` is
//!   `remote_created_at`.
//! - Times: RFC 3339 with any offset; a zone-less ISO time (`2024-01-15 15:04:00`) is read
//!   as UTC; and the account formats seen from SuiteQL `TO_CHAR(.., 'DS TS')`:
//!   `1/15/2024 3:04 pm`, `1/15/2024 3:04:05 PM`, `1/15/2024 15:04`, `1/15/2024`, also
//!   `15.01.2024 15:04[:05]`. SuiteQL renders dates in the session's time zone, so the
//!   poller must run as a user whose time zone is UTC, or select an offset.
//! - Currency: `currency.refName` when it is an ISO 4217 code, else `currencySymbol` (the
//!   ISO code on NetSuite currency records; the 2020 sample has `refName: "USA"`,
//!   `currencysymbol: "USD"`), else common names (`US Dollar`, `USA`, `Euro`, `British
//!   pound`, ...), else the name as sent; a bare internal id (`"1"`) is dropped.
//!
//! # SuiteQL columns the poller selects (aliases in lower case)
//!
//! - `salesorder.suiteql`: `id, tranid, status` (the letter code, or `BUILTIN.DF(status)`),
//!   `currency` (`BUILTIN.DF(currency)`), `currencysymbol` (`currency.symbol`), `entity`,
//!   `email, memo, subtotal, discounttotal, taxtotal, shippingcost, handlingcost`,
//!   `total` (or `foreigntotal`), `createddate, lastmodifieddate`; the connector attaches
//!   each order's lines (`transactionLine`) as `item.items[]` and its addresses as
//!   `billingAddress` / `shippingAddress`, the REST record's shape. No per-line tax or
//!   shipping-item detail.
//! - `customer.suiteql`: `id, entityid, companyname, firstname, lastname, email, phone,
//!   isinactive, currency, currencysymbol, comments, globalsubscriptionstatus, datecreated,
//!   lastmodifieddate`, and optionally the default billing address as `addr1, addr2, city,
//!   state, zip, country, addrphone`.
//! - `item.suiteql`: `id, itemid, displayname, salesdescription` (or `description`),
//!   `itemtype, isinactive, upccode, manufacturer, urlcomponent, baseprice,
//!   quantityavailable` (or `totalquantityonhand`), `createddate, lastmodifieddate`.
//!
//! Status tables and derived fields: `docs/status-mapping-netsuite.md`.

use crate::common;
use crate::{Mapping, Outcome, StandardizeError, Standardized};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ingot_model::{
    Address, Customer, Discount, LineItem, Model, Order, Product, ProductVariant, Provider,
    RawEvent, RawOp, RecordData, RecordKey, ShippingLine, TaxLine,
};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// The NetSuite mapping (see the module docs for topics and shapes).
pub struct NetSuiteMapping;

/// REST record types (lower case) of sellable items, mapped to Product. Discount, markup,
/// subtotal, description, payment and tax items are not products.
pub const ITEM_RECORD_TYPES: &[&str] = &[
    "inventoryitem",
    "lotnumberedinventoryitem",
    "serializedinventoryitem",
    "noninventoryitem",
    "noninventorysaleitem",
    "noninventoryresaleitem",
    "noninventorypurchaseitem",
    "servicesaleitem",
    "serviceresaleitem",
    "servicepurchaseitem",
    "otherchargesaleitem",
    "otherchargeresaleitem",
    "otherchargepurchaseitem",
    "assemblyitem",
    "lotnumberedassemblyitem",
    "serializedassemblyitem",
    "kititem",
    "itemgroup",
    "giftcertificateitem",
    "downloaditem",
];

type Obj = Map<String, Value>;

/// Where a payload comes from (decides field names in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Rest,
    SuiteQl,
    Deleted,
}

impl Mapping for NetSuiteMapping {
    fn provider(&self) -> Provider {
        Provider::NetSuite
    }

    fn mapping_version(&self) -> &'static str {
        "netsuite/1"
    }

    fn route(&self, topic: &str) -> Option<(Model, RawOp)> {
        parse_topic(topic).map(|(model, source, _)| {
            let op = if source == Source::Deleted {
                RawOp::Delete
            } else {
                RawOp::Upsert
            };
            (model, op)
        })
    }

    fn standardize(&self, event: &RawEvent) -> Result<Outcome, StandardizeError> {
        let Some((model, source, record_type)) = parse_topic(&event.topic) else {
            return Ok(Outcome::Skip("unmapped topic"));
        };
        let obj = common::parse_object(&event.payload)?;
        if source == Source::Deleted {
            return deleted(&obj, model, event);
        }
        let remote_id = common::required_id(get(&obj, "id"), "id")?;
        let (modified, created_a, created_b) = match source {
            Source::SuiteQl => ("lastmodifieddate", "createddate", "datecreated"),
            _ => ("lastModifiedDate", "createdDate", "dateCreated"),
        };
        let remote_updated_at = ns_time(get(&obj, modified), modified)?
            .ok_or(StandardizeError::MissingField(modified))?;
        let remote_created_at = match ns_time(get(&obj, created_a), created_a)? {
            Some(t) => Some(t),
            None => ns_time(get(&obj, created_b), created_b)?,
        };
        let data = match model {
            Model::Order => RecordData::Order(order(&obj, &event.connection_id)?),
            Model::Customer => RecordData::Customer(customer(&obj)?),
            Model::Product => RecordData::Product(product(&obj, &remote_id, &record_type)?),
        };
        Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            remote_created_at,
            remote_updated_at,
            data,
        }))
    }
}

/// `<type>.<rest|suiteql|deleted>` → (model, source, record type as sent).
fn parse_topic(topic: &str) -> Option<(Model, Source, String)> {
    let (resource, verb) = topic.rsplit_once('.')?;
    let r = resource.to_ascii_lowercase();
    let is_item = ITEM_RECORD_TYPES.contains(&r.as_str());
    let (model, source) = match (verb, r.as_str()) {
        ("rest", "salesorder") => (Model::Order, Source::Rest),
        ("rest", "customer") => (Model::Customer, Source::Rest),
        ("rest", _) if is_item => (Model::Product, Source::Rest),
        ("suiteql", "salesorder") => (Model::Order, Source::SuiteQl),
        ("suiteql", "customer") => (Model::Customer, Source::SuiteQl),
        ("suiteql", "item") => (Model::Product, Source::SuiteQl),
        ("deleted", "salesorder") => (Model::Order, Source::Deleted),
        ("deleted", "customer") => (Model::Customer, Source::Deleted),
        ("deleted", "item") => (Model::Product, Source::Deleted),
        ("deleted", _) if is_item => (Model::Product, Source::Deleted),
        _ => return None,
    };
    Some((model, source, resource.to_string()))
}

/// A DeletedRecord row → delete. `recordid` (or `id`) is required; `deleteddate` is the
/// deletion time, else the event's `triggered_at`, else its `received_at`.
fn deleted(obj: &Obj, model: Model, event: &RawEvent) -> Result<Outcome, StandardizeError> {
    let remote_id = match get(obj, "recordid") {
        Some(v) => common::required_id(Some(v), "recordid")?,
        None => common::required_id(get(obj, "id"), "recordid")?,
    };
    let deleted_at = match ns_time(get(obj, "deleteddate"), "deleteddate")? {
        Some(t) => t,
        None => event
            .triggered_at
            .as_deref()
            .and_then(|t| parse_ns_time(t).ok())
            .map_or_else(
                || {
                    ingot_model::parse_time(&event.received_at, true).map_err(|e| {
                        StandardizeError::InvalidField {
                            field: "received_at".into(),
                            reason: e.to_string(),
                        }
                    })
                },
                Ok,
            )?,
    };
    Ok(Outcome::Record(Standardized::Delete {
        model,
        remote_id,
        deleted_at,
    }))
}

// ---------------------------------------------------------------------------------------
// Lookups and values

/// A key, exact first, then ASCII case-insensitively (SuiteQL columns are lower case,
/// REST fields camelCase, and the REST payloads themselves mix `billingaddress` and
/// `shippingAddress`).
fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// An object that carries data, not only `links` (an unexpanded sublist or subrecord).
fn expanded(v: Option<&Value>) -> Option<&Obj> {
    match v {
        Some(Value::Object(o)) if o.keys().any(|k| k != "links") => Some(o),
        _ => None,
    }
}

/// The id of a reference: `{"id": "110", "refName": ".."}` or a plain `"110"`. NetSuite's
/// empty reference `{"id": "-1"}` is `None`.
fn ref_id(v: Option<&Value>) -> Option<String> {
    let id = match v? {
        Value::Object(o) => common::id(get(o, "id")),
        other => common::id(Some(other)),
    };
    id.filter(|s| s != "-1")
}

/// The display name of a reference (`refName`) or a plain string value.
fn ref_name(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Object(o) => common::text(get(o, "refName")),
        other => common::text(Some(other)),
    }
}

fn overflow(field: &str) -> StandardizeError {
    StandardizeError::InvalidField {
        field: field.to_string(),
        reason: "amount out of range".into(),
    }
}

fn add(a: Decimal, b: Decimal, field: &str) -> Result<Decimal, StandardizeError> {
    a.checked_add(b).ok_or_else(|| overflow(field))
}

fn dec(o: &Obj, key: &str) -> Result<Option<Decimal>, StandardizeError> {
    common::decimal(get(o, key), key)
}

/// Parses a NetSuite time string (formats in the module docs).
fn parse_ns_time(s: &str) -> Result<DateTime<Utc>, ingot_model::TimeError> {
    if let Ok(t) = ingot_model::parse_time(s, true) {
        return Ok(t);
    }
    let v = s.trim();
    const DATETIME: &[&str] = &[
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
        "%Y-%m-%d %H:%M",
    ];
    for fmt in DATETIME {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(t.and_utc());
        }
    }
    for fmt in ["%m/%d/%Y", "%d.%m.%Y", "%Y-%m-%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(v, fmt) {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Ok(t.and_utc());
            }
        }
    }
    Err(ingot_model::TimeError {
        value: s.to_string(),
    })
}

fn ns_time(v: Option<&Value>, field: &str) -> Result<Option<DateTime<Utc>>, StandardizeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            parse_ns_time(s)
                .map(Some)
                .map_err(|e| StandardizeError::InvalidField {
                    field: field.to_string(),
                    reason: e.to_string(),
                })
        }
        Some(other) => Err(StandardizeError::InvalidField {
            field: field.to_string(),
            reason: format!("expected a time string, got {other}"),
        }),
    }
}

fn is_iso_currency(s: &str) -> bool {
    s.len() == 3 && iso_currency::Currency::from_code(s).is_some()
}

/// Common NetSuite currency record names → ISO 4217.
fn currency_from_name(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "usa" | "us dollar" | "u.s. dollar" | "us dollars" | "united states dollar" => "USD",
        "canadian dollar" | "canada" => "CAD",
        "british pound" | "pound sterling" | "british pound sterling" | "uk pound" | "gb pound" => {
            "GBP"
        }
        "euro" | "euros" => "EUR",
        "australian dollar" => "AUD",
        "new zealand dollar" => "NZD",
        "japanese yen" | "yen" => "JPY",
        "swiss franc" => "CHF",
        "mexican peso" => "MXN",
        "indian rupee" => "INR",
        "singapore dollar" => "SGD",
        "hong kong dollar" => "HKD",
        "chinese yuan" | "yuan renminbi" | "renminbi" => "CNY",
        "swedish krona" => "SEK",
        "danish krone" => "DKK",
        "norwegian krone" => "NOK",
        "brazilian real" => "BRL",
        "south african rand" => "ZAR",
        _ => return None,
    })
}

/// The record's currency (rules in the module docs).
fn currency(o: &Obj) -> Option<String> {
    let name = ref_name(get(o, "currency"));
    let symbol = common::text(get(o, "currencySymbol"));
    let candidates = [name.clone(), symbol, common::text(get(o, "currencyName"))];
    for c in candidates.iter().flatten() {
        let upper = c.trim().to_ascii_uppercase();
        if is_iso_currency(&upper) {
            return Some(upper);
        }
    }
    for c in candidates.iter().flatten() {
        if let Some(code) = currency_from_name(c) {
            return Some(code.to_string());
        }
    }
    name.filter(|n| !n.chars().all(|c| c.is_ascii_digit()))
}

/// A NetSuite address subrecord (`billingAddress`, `shippingAddress`,
/// `addressBookAddress`) or a SuiteQL row with address columns. NetSuite has one
/// `addressee` (a person or a company) and an `attention` line but no first/last name, so
/// the name fields stay empty. `state` is a code in US/CA accounts: it fills both
/// `region_code` and `region`. `country` is `{id: "US", refName: "United States"}` or a code.
fn address(o: &Obj) -> Option<Address> {
    let line2 = match (common::text(get(o, "addr2")), common::text(get(o, "addr3"))) {
        (Some(a), Some(b)) => Some(format!("{a}, {b}")),
        (a, b) => a.or(b),
    };
    let country_v = get(o, "country");
    let code =
        ref_id(country_v).filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()));
    let state = ref_name(get(o, "state"));
    let a = Address {
        first_name: None,
        last_name: None,
        company: None,
        line1: common::text(get(o, "addr1")),
        line2,
        city: common::text(get(o, "city")),
        region: state.clone(),
        region_code: state,
        postal_code: common::text(get(o, "zip")),
        country: ref_name(country_v).or_else(|| code.clone()),
        country_code: code,
        phone: common::text(get(o, "addrPhone")),
    };
    (a != Address::default()).then_some(a)
}

// ---------------------------------------------------------------------------------------
// Order

/// A sales order status code or text → (status, payment status, fulfillment status).
/// Accepts `"B"`, `{"id": "B", "refName": "Pending Fulfillment"}`, `"Pending Fulfillment"`,
/// `"SalesOrd:B"` and `"Sales Order : Pending Fulfillment"`. `cc_approved` (the order's
/// credit card was authorized) turns `pending` into `authorized`, and `paid` once billed.
pub fn order_statuses(code: &str, cc_approved: bool) -> (&'static str, &'static str, &'static str) {
    let c = code
        .rsplit(':')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let open_payment = if cc_approved { "authorized" } else { "pending" };
    match c.as_str() {
        "a" | "pending approval" => ("open", "pending", "unfulfilled"),
        "b" | "pending fulfillment" => ("open", open_payment, "unfulfilled"),
        "c" | "cancelled" | "canceled" => ("cancelled", "voided", "unknown"),
        "d" | "partially fulfilled" => ("open", open_payment, "partially_fulfilled"),
        "e" | "pending billing/partially fulfilled" => {
            ("open", open_payment, "partially_fulfilled")
        }
        "f" | "pending billing" => ("open", open_payment, "fulfilled"),
        "g" | "billed" => (
            "closed",
            if cc_approved { "paid" } else { "unknown" },
            "fulfilled",
        ),
        "h" | "closed" => ("closed", "unknown", "unknown"),
        _ => ("unknown", "unknown", "unknown"),
    }
}

/// The status code or text of a reference or string: the `id` of `{id, refName}` when it
/// is a known form, else its `refName`.
fn status_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Object(o) => {
            let id = common::text(get(o, "id"));
            match id {
                Some(id) if order_statuses(&id, false).0 != "unknown" => Some(id),
                _ => common::text(get(o, "refName")).or(id),
            }
        }
        other => common::text(Some(other)),
    }
}

/// A line's tax amount: `tax1Amt` (VAT/GST accounts), else `taxAmount`.
fn line_tax(l: &Obj, i: usize) -> Result<Option<Decimal>, StandardizeError> {
    match common::decimal(get(l, "tax1Amt"), &format!("item.items[{i}].tax1Amt"))? {
        Some(t) => Ok(Some(t)),
        None => common::decimal(get(l, "taxAmount"), &format!("item.items[{i}].taxAmount")),
    }
}

/// Line kinds of a sales order's item sublist (`itemType`).
enum LineKind {
    Item,
    Discount,
    Skip,
}

fn line_kind(l: &Obj) -> LineKind {
    let t = ref_id(get(l, "itemType")).or_else(|| ref_name(get(l, "itemType")));
    match t.map(|t| t.to_ascii_lowercase()).as_deref() {
        Some("discount") => LineKind::Discount,
        Some("subtotal" | "description" | "group" | "endgroup" | "payment") => LineKind::Skip,
        _ => LineKind::Item,
    }
}

fn order(o: &Obj, connection_id: &str) -> Result<Order, StandardizeError> {
    let currency = currency(o);
    let cur = currency.as_deref();
    let m = |d: Decimal| common::money(d, cur);

    let status_raw = status_text(get(o, "orderStatus"))
        .or_else(|| status_text(get(o, "status")))
        .unwrap_or_default();
    let cc_approved = common::boolean(get(o, "ccApproved")).unwrap_or(false);
    let (status, payment_status, fulfillment_status) = order_statuses(&status_raw, cc_approved);

    // Lines (only with expandSubResources): item lines, discount lines (applying to the
    // item line right above them, NetSuite's rule), and non-item lines skipped.
    let mut line_items: Vec<LineItem> = Vec::new();
    let mut line_discounts: Vec<Decimal> = Vec::new();
    let mut line_totals: Vec<Option<Decimal>> = Vec::new();
    let mut line_taxes: Vec<Option<Decimal>> = Vec::new();
    let mut discounts = Vec::new();
    let mut discount_lines_total = Decimal::ZERO;
    let mut previous_is_item = false;
    let lines = expanded(get(o, "item"))
        .and_then(|i| get(i, "items"))
        .and_then(Value::as_array);
    for (i, v) in lines.map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
        let field = |k: &str| format!("item.items[{i}].{k}");
        let l = v
            .as_object()
            .ok_or_else(|| StandardizeError::InvalidField {
                field: format!("item.items[{i}]"),
                reason: "expected an object".into(),
            })?;
        let item_ref = get(l, "item");
        let amount = common::decimal(get(l, "amount"), &field("amount"))?;
        match line_kind(l) {
            LineKind::Skip => previous_is_item = false,
            LineKind::Discount => {
                let value = amount.unwrap_or_default().abs();
                discount_lines_total = add(discount_lines_total, value, &field("amount"))?;
                let rate_is_percent =
                    matches!(get(l, "rate"), Some(Value::String(s)) if s.contains('%'));
                discounts.push(Discount {
                    code: ref_name(item_ref),
                    amount: Some(m(value)),
                    kind: Some(
                        if rate_is_percent {
                            "percentage"
                        } else {
                            "fixed_amount"
                        }
                        .to_string(),
                    ),
                });
                if previous_is_item {
                    if let (Some(d), Some(t), Some(tax)) = (
                        line_discounts.last_mut(),
                        line_totals.last_mut(),
                        line_taxes.last_mut(),
                    ) {
                        *d = add(*d, value, &field("amount"))?;
                        *t = t.map(|t| t.checked_sub(value)).unwrap_or(None);
                        // The discount line's (negative) tax reduces the discounted line's tax.
                        if let Some(dt) = line_tax(l, i)? {
                            *tax = Some(add(tax.unwrap_or_default(), dt, &field("tax1Amt"))?);
                        }
                    }
                }
                previous_is_item = false;
            }
            LineKind::Item => {
                let quantity = match get(l, "quantity") {
                    None | Some(Value::Null) => {
                        return Err(StandardizeError::MissingField("item.items[].quantity"))
                    }
                    Some(q) => {
                        common::int(Some(q)).ok_or_else(|| StandardizeError::InvalidField {
                            field: field("quantity"),
                            reason: format!(
                                "not an integer quantity (LineItem.quantity is an integer): {q}"
                            ),
                        })?
                    }
                };
                let rate = common::decimal(get(l, "rate"), &field("rate"))?;
                let unit_price = match (rate, amount) {
                    (Some(r), _) => Some(m(r)),
                    (None, Some(a)) if quantity != 0 => Some(common::round_money(
                        a.checked_div(Decimal::from(quantity))
                            .ok_or_else(|| overflow(&field("amount")))?,
                        cur,
                    )),
                    _ => None,
                };
                line_items.push(LineItem {
                    remote_id: common::id(get(l, "line")).or_else(|| common::id(get(l, "id"))),
                    product_remote_id: ref_id(item_ref),
                    variant_remote_id: None,
                    sku: ref_name(item_ref),
                    name: common::text(get(l, "description")).or_else(|| ref_name(item_ref)),
                    quantity,
                    unit_price,
                    total_discount: None,
                    total_tax: None,
                    total: None,
                });
                line_taxes.push(line_tax(l, i)?);
                line_discounts.push(Decimal::ZERO);
                line_totals.push(amount);
                previous_is_item = true;
            }
        }
    }
    for (((line, d), t), tax) in line_items
        .iter_mut()
        .zip(line_discounts)
        .zip(line_totals)
        .zip(line_taxes)
    {
        line.total_discount = Some(m(d));
        line.total = t.map(m);
        line.total_tax = tax.map(m);
    }

    // Order-level discount (`discountItem` + `discountTotal`, negative in NetSuite).
    let body_discount = dec(o, "discountTotal")?.map(|d| d.abs());
    if let Some(d) = body_discount.filter(|d| !d.is_zero()) {
        let rate_is_percent =
            matches!(get(o, "discountRate"), Some(Value::String(s)) if s.contains('%'));
        discounts.push(Discount {
            code: ref_name(get(o, "discountItem")),
            amount: Some(m(d)),
            kind: Some(
                if rate_is_percent {
                    "percentage"
                } else {
                    "fixed_amount"
                }
                .to_string(),
            ),
        });
    }
    let total_discount = match body_discount {
        Some(d) => Some(m(add(d, discount_lines_total, "discountTotal")?)),
        None if !discount_lines_total.is_zero() => Some(m(discount_lines_total)),
        None => None,
    };

    // Shipping: shipMethod + shippingCost; total_shipping includes handlingCost.
    let shipping_cost = dec(o, "shippingCost")?;
    let handling_cost = dec(o, "handlingCost")?;
    let ship_method = get(o, "shipMethod");
    let mut shipping_lines = Vec::new();
    if ref_id(ship_method).is_some() || shipping_cost.is_some_and(|c| !c.is_zero()) {
        shipping_lines.push(ShippingLine {
            remote_id: ref_id(ship_method),
            title: ref_name(ship_method),
            code: ref_id(ship_method),
            price: shipping_cost.map(m),
        });
    }
    let total_shipping = match (shipping_cost, handling_cost) {
        (None, None) => None,
        (a, b) => Some(m(add(
            a.unwrap_or_default(),
            b.unwrap_or_default(),
            "shippingCost",
        )?)),
    };

    // Tax: taxTotal (+ tax2Total, e.g. Canadian PST); one tax line from taxItem/taxRate.
    let tax1 = dec(o, "taxTotal")?;
    let tax2 = dec(o, "tax2Total")?;
    let total_tax = match (tax1, tax2) {
        (None, None) => None,
        (a, b) => Some(add(
            a.unwrap_or_default(),
            b.unwrap_or_default(),
            "taxTotal",
        )?),
    };
    let tax_item = get(o, "taxItem");
    let mut tax_lines = Vec::new();
    if ref_id(tax_item).is_some() || tax1.is_some_and(|t| !t.is_zero()) {
        tax_lines.push(TaxLine {
            title: ref_name(tax_item),
            rate: percent(get(o, "taxRate"), "taxRate")?,
            amount: tax1.map(m),
        });
    }

    let subtotal_price = match dec(o, "subtotal")? {
        Some(s) => Some(m(s
            .checked_sub(body_discount.unwrap_or_default())
            .ok_or_else(|| overflow("subtotal"))?)),
        None => None,
    };
    let total_price = match dec(o, "total")? {
        Some(t) => Some(t),
        None => dec(o, "foreignTotal")?,
    };

    let customer_remote_id = ref_id(get(o, "entity"));
    let customer_id = customer_remote_id
        .as_ref()
        .map(|id| RecordKey::new(connection_id, Model::Customer, id.clone()).record_id());

    Ok(Order {
        order_number: common::text(get(o, "tranId")),
        status: status.to_string(),
        payment_status: payment_status.to_string(),
        fulfillment_status: fulfillment_status.to_string(),
        currency: currency.clone(),
        customer_remote_id,
        customer_id,
        email: common::text(get(o, "email")),
        phone: common::text(get(o, "phone")),
        billing_address: expanded(get(o, "billingAddress")).and_then(address),
        shipping_address: expanded(get(o, "shippingAddress")).and_then(address),
        line_items,
        discounts,
        shipping_lines,
        tax_lines,
        subtotal_price,
        total_discount,
        total_tax: total_tax.map(m),
        total_shipping,
        total_price: total_price.map(m),
        total_refunded: None,
        tags: Vec::new(),
        note: common::text(get(o, "memo")),
        closed_at: None,
        cancelled_at: None,
    })
}

/// A percent (`8.25`, `"8.25%"`) → fraction string (`"0.0825"`).
fn percent(v: Option<&Value>, field: &str) -> Result<Option<String>, StandardizeError> {
    let stripped;
    let v = match v {
        Some(Value::String(s)) if s.trim_end().ends_with('%') => {
            stripped = Value::String(s.trim_end().trim_end_matches('%').to_string());
            Some(&stripped)
        }
        other => other,
    };
    match common::decimal(v, field)? {
        Some(p) => {
            let f = p
                .checked_div(Decimal::ONE_HUNDRED)
                .ok_or_else(|| overflow(field))?;
            Ok(Some(f.normalize().to_string()))
        }
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------
// Customer

/// `globalSubscriptionStatus` → accepts marketing: 1 Soft Opt-In and 3 Confirmed Opt-In
/// → true, 2 Soft Opt-Out and 4 Confirmed Opt-Out → false.
fn accepts_marketing(v: Option<&Value>) -> Option<bool> {
    let id = ref_id(v);
    let name = ref_name(v).map(|n| n.to_ascii_lowercase());
    match (id.as_deref(), name.as_deref()) {
        (Some("1" | "3"), _) => Some(true),
        (Some("2" | "4"), _) => Some(false),
        (_, Some(n)) if n.contains("opt-in") => Some(true),
        (_, Some(n)) if n.contains("opt-out") => Some(false),
        _ => None,
    }
}

/// The default address: from an expanded `addressBook` (the `defaultBilling` entry, else
/// `defaultShipping`, else the first), else address columns on the row itself (SuiteQL).
fn default_address(o: &Obj) -> Option<Address> {
    let book = expanded(get(o, "addressBook"))
        .and_then(|b| get(b, "items"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let pick = book
        .iter()
        .find(|e| common::boolean(get(e, "defaultBilling")) == Some(true))
        .or_else(|| {
            book.iter()
                .find(|e| common::boolean(get(e, "defaultShipping")) == Some(true))
        })
        .or_else(|| book.first());
    if let Some(entry) = pick {
        if let Some(a) = expanded(get(entry, "addressBookAddress")).and_then(address) {
            return Some(a);
        }
    }
    if ["addr1", "city", "zip", "country"]
        .iter()
        .any(|k| get(o, k).is_some())
    {
        return address(o);
    }
    None
}

fn customer(o: &Obj) -> Result<Customer, StandardizeError> {
    let status = match common::boolean(get(o, "isInactive")) {
        Some(true) => "disabled",
        Some(false) => "active",
        None => "unknown",
    };
    Ok(Customer {
        email: common::text(get(o, "email")),
        first_name: common::text(get(o, "firstName")),
        last_name: common::text(get(o, "lastName")),
        company: common::text(get(o, "companyName")),
        phone: common::text(get(o, "phone")),
        status: status.to_string(),
        currency: currency(o),
        accepts_marketing: accepts_marketing(get(o, "globalSubscriptionStatus")),
        orders_count: None,
        total_spent: None,
        tags: Vec::new(),
        note: common::text(get(o, "comments")),
        default_address: default_address(o),
    })
}

// ---------------------------------------------------------------------------------------
// Product

/// An item → a product with one variant (NetSuite items have no variants; a matrix child
/// is an item of its own). Price from `basePrice` when the poller provides it.
fn product(o: &Obj, remote_id: &str, record_type: &str) -> Result<Product, StandardizeError> {
    let status = match common::boolean(get(o, "isInactive")) {
        Some(true) => "archived",
        Some(false) => "active",
        None => "unknown",
    };
    let item_id = common::text(get(o, "itemId"));
    let display = common::text(get(o, "displayName"));
    let product_type = ref_id(get(o, "itemType"))
        .or_else(|| ref_name(get(o, "itemType")))
        .or_else(|| (!record_type.eq_ignore_ascii_case("item")).then(|| record_type.to_string()));
    let quantity = common::int(get(o, "quantityAvailable"))
        .or_else(|| common::int(get(o, "totalQuantityOnHand")));
    let variant = ProductVariant {
        remote_id: remote_id.to_string(),
        sku: item_id.clone(),
        title: display.clone().or_else(|| item_id.clone()),
        price: common::money_field(get(o, "basePrice"), "basePrice", None)?,
        compare_at_price: None,
        options: Vec::new(),
        inventory_quantity: quantity,
        barcode: common::text(get(o, "upcCode")),
        remote_updated_at: ns_time(get(o, "lastModifiedDate"), "lastModifiedDate")?
            .map(|t| ingot_model::format_utc(&t)),
    };
    Ok(Product {
        name: display.or(item_id),
        description: common::text(get(o, "salesDescription"))
            .or_else(|| common::text(get(o, "storeDescription")))
            .or_else(|| common::text(get(o, "description"))),
        status: status.to_string(),
        vendor: ref_name(get(o, "manufacturer")),
        product_type,
        handle: common::text(get(o, "urlComponent")),
        currency: None,
        tags: Vec::new(),
        options: Vec::new(),
        variants: vec![variant],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn account_time_formats_parse_to_utc() {
        let cases = [
            ("2020-07-29T08:34:00Z", "2020-07-29T08:34:00Z"),
            ("2011-12-15T11:56:19.000-08:00", "2011-12-15T19:56:19Z"),
            ("1/15/2024 3:04 pm", "2024-01-15T15:04:00Z"),
            ("1/15/2024 3:04:05 PM", "2024-01-15T15:04:05Z"),
            ("12/1/2023 12:00 am", "2023-12-01T00:00:00Z"),
            ("1/15/2024 15:04", "2024-01-15T15:04:00Z"),
            ("1/15/2024", "2024-01-15T00:00:00Z"),
            ("15.01.2024 15:04:05", "2024-01-15T15:04:05Z"),
            ("2024-01-15 15:04:00", "2024-01-15T15:04:00Z"),
            ("2024-01-15", "2024-01-15T00:00:00Z"),
        ];
        for (input, want) in cases {
            let t = parse_ns_time(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(ingot_model::format_utc(&t), want, "{input}");
        }
        assert!(parse_ns_time("19/12/2025 6:6:29").is_err());
    }

    #[test]
    fn statuses_accept_codes_and_text() {
        assert_eq!(
            order_statuses("A", false),
            ("open", "pending", "unfulfilled")
        );
        assert_eq!(
            order_statuses("Pending Fulfillment", true),
            ("open", "authorized", "unfulfilled")
        );
        assert_eq!(
            order_statuses("SalesOrd:G", true),
            ("closed", "paid", "fulfilled")
        );
        assert_eq!(
            order_statuses("Sales Order : Pending Billing/Partially Fulfilled", false),
            ("open", "pending", "partially_fulfilled")
        );
        assert_eq!(
            order_statuses("C", false),
            ("cancelled", "voided", "unknown")
        );
        assert_eq!(
            order_statuses("Z", false),
            ("unknown", "unknown", "unknown")
        );
        assert_eq!(
            status_text(Some(&json!({"id": "B", "refName": "Pending Fulfillment"}))).as_deref(),
            Some("B")
        );
    }

    #[test]
    fn currency_names_map_to_iso() {
        let o = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            currency(&o(
                json!({"currency": {"id": "1", "refName": "USA"}, "currencysymbol": "USD"})
            ))
            .as_deref(),
            Some("USD")
        );
        assert_eq!(
            currency(&o(
                json!({"currency": {"id": "2", "refName": "British pound"}})
            ))
            .as_deref(),
            Some("GBP")
        );
        assert_eq!(
            currency(&o(json!({"currency": {"id": "4", "refName": "Euro"}}))).as_deref(),
            Some("EUR")
        );
        assert_eq!(
            currency(&o(json!({"currency": "CAD"}))).as_deref(),
            Some("CAD")
        );
        assert_eq!(currency(&o(json!({"currency": "1"}))), None);
        assert_eq!(
            currency(&o(json!({"currency": {"id": "9", "refName": "Bitcoin"}}))).as_deref(),
            Some("Bitcoin")
        );
    }
}
