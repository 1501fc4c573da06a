//! WooCommerce mapping: REST API v3 objects (`/wp-json/wc/v3/...`), which are also the
//! webhook bodies (`class-wc-webhook.php` `build_payload()` sends the REST representation
//! of the webhook's API version; QUIRKS Q-W9).
//!
//! # Topics
//!
//! | topic | model, op | payload |
//! |---|---|---|
//! | `order.created`, `order.updated`, `order.restored` | Order, upsert | webhook body = REST order |
//! | `order.deleted` | Order, delete | `{"id": 727}` (QUIRKS Q-W3) |
//! | `order.rest` | Order, upsert | one element of `GET /orders` (or a single GET, or the full object a `DELETE ?force=true` returns) |
//! | `customer.*`, `product.*` | same four verbs | customers / products |
//!
//! A product's `remote_updated_at` is the newest `date_modified_gmt` of the product and its
//! attached variations (a variation edit does not touch the parent's date).
//!
//! Anything else (`coupon.created`, `order_refund.rest`, `product_variation.rest`, `action.*`)
//! is [`Outcome::Skip`]`("unmapped topic")`. Variations are not records of their own: the
//! poller attaches a variable product's variations (REST `GET /products/<id>/variations`
//! objects) under the extra key [`VARIATIONS_KEY`] and they become the product's variants.
//!
//! The `legacy_v3` webhook shape (`{"order": {...}}`, deprecated in WC 9.0) is rejected
//! with [`StandardizeError::MalformedPayload`]: configure webhooks with API version v3.
//!
//! # Conventions (3PA facts, sources in `shared/fixtures/QUIRKS.md`)
//!
//! - Times: only the `*_gmt` fields are read; they are UTC without a `Z` (Q-W7).
//!   `remote_updated_at` = `date_modified_gmt` (required), `remote_created_at` =
//!   `date_created_gmt`.
//! - Money: totals are decimal strings, `line_items[].price` is a JSON number that may be a
//!   float artefact (`14.309999999999999`, Q-W8), so a line's `unit_price` is derived from
//!   its `subtotal` / `quantity`, rounded half away from zero to the currency's minor unit.
//! - Ids: `0` means none (`customer_id: 0` = guest, `variation_id: 0` = simple product).
//! - Names (products, line items, shipping methods, tags, attributes, people) are stored by
//!   WordPress with HTML entities; they are decoded exactly once (`&amp;amp;` → `&amp;`).
//!   Descriptions are HTML and are kept as sent.
//!
//! Status tables and derived fields are documented in `docs/status-mapping-woocommerce.md`.

use crate::common;
use crate::{Mapping, Outcome, StandardizeError, Standardized};
use chrono::{DateTime, Utc};
use ingot_model::{
    Address, Customer, Discount, LineItem, Model, Order, Product, ProductOption, ProductVariant,
    Provider, RawEvent, RawOp, RecordData, RecordKey, ShippingLine, TaxLine, VariantOption,
};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// The extra key under which the poller attaches a variable product's variations
/// (an array of REST `product_variation` objects) to the product payload.
pub const VARIATIONS_KEY: &str = "_ingot_variations";

/// The WooCommerce mapping (see the module docs for topics and shapes).
pub struct WooCommerceMapping;

type Obj = Map<String, Value>;

impl Mapping for WooCommerceMapping {
    fn provider(&self) -> Provider {
        Provider::WooCommerce
    }

    fn mapping_version(&self) -> &'static str {
        "woocommerce/1"
    }

    fn route(&self, topic: &str) -> Option<(Model, RawOp)> {
        route(topic)
    }

    fn standardize(&self, event: &RawEvent) -> Result<Outcome, StandardizeError> {
        let Some((model, op)) = route(&event.topic) else {
            return Ok(Outcome::Skip("unmapped topic"));
        };
        let obj = common::parse_object(&event.payload)?;
        reject_legacy_shape(&obj)?;
        let remote_id = common::required_id(obj.get("id"), "id")?;
        if op == RawOp::Delete {
            return Ok(Outcome::Record(Standardized::Delete {
                model,
                remote_id,
                deleted_at: event_time(event)?,
            }));
        }
        let mut remote_updated_at =
            common::time(obj.get("date_modified_gmt"), "date_modified_gmt", true)?
                .ok_or(StandardizeError::MissingField("date_modified_gmt"))?;
        // A product with attached variations is versioned by its newest part.
        if let (Model::Product, Some(Value::Array(variations))) = (model, obj.get(VARIATIONS_KEY)) {
            for v in variations {
                if let Some(t) = v.get("date_modified_gmt").and_then(|t| {
                    common::time(Some(t), "date_modified_gmt", true)
                        .ok()
                        .flatten()
                }) {
                    remote_updated_at = remote_updated_at.max(t);
                }
            }
        }
        let remote_created_at =
            common::time(obj.get("date_created_gmt"), "date_created_gmt", true)?;
        let data = match model {
            Model::Order => RecordData::Order(order(&obj, &event.connection_id)?),
            Model::Customer => RecordData::Customer(customer(&obj)?),
            Model::Product => RecordData::Product(product(&obj, &remote_id)?),
        };
        Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            remote_created_at,
            remote_updated_at,
            data,
        }))
    }
}

/// `<resource>.<verb>` → model and operation. Resources: `order`, `customer`, `product`;
/// verbs: `created`, `updated`, `restored`, `rest` (upsert), `deleted` (delete).
fn route(topic: &str) -> Option<(Model, RawOp)> {
    let (resource, verb) = topic.split_once('.')?;
    let model = match resource {
        "order" => Model::Order,
        "customer" => Model::Customer,
        "product" => Model::Product,
        _ => return None,
    };
    let op = match verb {
        "created" | "updated" | "restored" | "rest" => RawOp::Upsert,
        "deleted" => RawOp::Delete,
        _ => return None,
    };
    Some((model, op))
}

fn reject_legacy_shape(obj: &Obj) -> Result<(), StandardizeError> {
    if obj.contains_key("id") {
        return Ok(());
    }
    for key in ["order", "customer", "product"] {
        if matches!(obj.get(key), Some(Value::Object(_))) {
            return Err(StandardizeError::MalformedPayload(format!(
                "legacy_v3 webhook body {{\"{key}\": {{...}}}}: set the webhook's API version to WP REST API v3"
            )));
        }
    }
    Ok(())
}

/// When a delete happened: the event's `triggered_at`, else ingot's `received_at`
/// (WooCommerce delete bodies carry only the id).
fn event_time(event: &RawEvent) -> Result<DateTime<Utc>, StandardizeError> {
    if let Some(t) = event
        .triggered_at
        .as_deref()
        .and_then(|t| ingot_model::parse_time(t, true).ok())
    {
        return Ok(t);
    }
    ingot_model::parse_time(&event.received_at, true).map_err(|e| StandardizeError::InvalidField {
        field: "received_at".into(),
        reason: e.to_string(),
    })
}

// ---------------------------------------------------------------------------------------
// Small helpers

/// Text with HTML entities decoded exactly once; `""`/`null` → `None`.
fn name(v: Option<&Value>) -> Option<String> {
    common::text(v).map(|s| html_escape::decode_html_entities(&s).into_owned())
}

fn obj_of(v: Option<&Value>) -> Option<&Obj> {
    match v {
        Some(Value::Object(o)) => Some(o),
        _ => None,
    }
}

fn array_of<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a [Value], StandardizeError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(StandardizeError::InvalidField {
            field: field.to_string(),
            reason: "expected an array".into(),
        }),
    }
}

fn element<'a>(v: &'a Value, field: &str, i: usize) -> Result<&'a Obj, StandardizeError> {
    v.as_object().ok_or_else(|| StandardizeError::InvalidField {
        field: format!("{field}[{i}]"),
        reason: "expected an object".into(),
    })
}

fn overflow(field: &str) -> StandardizeError {
    StandardizeError::InvalidField {
        field: field.to_string(),
        reason: "amount out of range".into(),
    }
}

fn sum(
    values: impl IntoIterator<Item = Decimal>,
    field: &str,
) -> Result<Decimal, StandardizeError> {
    values
        .into_iter()
        .try_fold(Decimal::ZERO, |acc, d| acc.checked_add(d))
        .ok_or_else(|| overflow(field))
}

/// A WooCommerce address object (`billing` / `shipping`), `None` when every field is empty.
fn address(v: Option<&Value>) -> Option<Address> {
    let o = obj_of(v)?;
    let state = common::text(o.get("state"));
    let country = common::text(o.get("country"));
    let a = Address {
        first_name: name(o.get("first_name")),
        last_name: name(o.get("last_name")),
        company: name(o.get("company")),
        line1: common::text(o.get("address_1")),
        line2: common::text(o.get("address_2")),
        city: common::text(o.get("city")),
        region: state.clone(),
        region_code: state,
        postal_code: common::text(o.get("postcode")),
        country: country.clone(),
        country_code: country,
        phone: common::text(o.get("phone")),
    };
    (a != Address::default()).then_some(a)
}

/// Address fields only (names and phone excluded): does the address locate anything?
fn has_location(a: &Address) -> bool {
    a.line1.is_some()
        || a.line2.is_some()
        || a.city.is_some()
        || a.postal_code.is_some()
        || a.country.is_some()
}

// ---------------------------------------------------------------------------------------
// Order

/// `status` → order status (`open`, `closed`, `cancelled`, `draft`, `unknown`).
pub fn order_status(status: &str) -> &'static str {
    match status {
        "pending" | "processing" | "on-hold" => "open",
        "completed" | "refunded" => "closed",
        "cancelled" | "failed" | "trash" => "cancelled",
        "checkout-draft" | "draft" => "draft",
        _ => "unknown",
    }
}

/// Payment status from `status`, whether `date_paid_gmt` is set and whether `refunds[]` is
/// non-empty (table in `docs/status-mapping-woocommerce.md`).
pub fn payment_status(status: &str, paid: bool, has_refunds: bool) -> &'static str {
    match status {
        "refunded" => "refunded",
        "failed" => "failed",
        _ if has_refunds => "partially_refunded",
        "processing" | "completed" if paid => "paid",
        "pending" | "on-hold" | "checkout-draft" | "draft" => "pending",
        "cancelled" | "trash" if !paid => "voided",
        _ => "unknown",
    }
}

/// Fulfillment status: `completed` → fulfilled; open orders → unfulfilled; else unknown
/// (WooCommerce core has no shipment tracking; `completed` means "fulfilled and complete").
pub fn fulfillment_status(status: &str) -> &'static str {
    match status {
        "completed" => "fulfilled",
        "pending" | "processing" | "on-hold" => "unfulfilled",
        _ => "unknown",
    }
}

fn order(o: &Obj, connection_id: &str) -> Result<Order, StandardizeError> {
    let currency = common::text(o.get("currency")).map(|c| c.to_ascii_uppercase());
    let cur = currency.as_deref();
    let money = |key: &str| common::money_field(o.get(key), key, cur);
    let status_raw = common::text(o.get("status")).unwrap_or_default();
    let paid = common::text(o.get("date_paid_gmt")).is_some();

    // Line items.
    let mut line_items = Vec::new();
    let mut line_totals = Vec::new();
    for (i, v) in array_of(o.get("line_items"), "line_items")?
        .iter()
        .enumerate()
    {
        let l = element(v, "line_items", i)?;
        let field = |k: &str| format!("line_items[{i}].{k}");
        let quantity = match l.get("quantity") {
            None | Some(Value::Null) => {
                return Err(StandardizeError::MissingField("line_items[].quantity"))
            }
            Some(q) => common::int(Some(q)).ok_or_else(|| StandardizeError::InvalidField {
                field: field("quantity"),
                reason: format!("not an integer quantity: {q}"),
            })?,
        };
        let subtotal = common::decimal(l.get("subtotal"), &field("subtotal"))?;
        let total = common::decimal(l.get("total"), &field("total"))?;
        let unit_price = match subtotal {
            Some(s) if quantity != 0 => Some(common::round_money(
                s.checked_div(Decimal::from(quantity))
                    .ok_or_else(|| overflow(&field("subtotal")))?,
                cur,
            )),
            _ => common::decimal(l.get("price"), &field("price"))?
                .map(|p| common::round_money(p, cur)),
        };
        let total_discount = match (subtotal, total) {
            (Some(s), Some(t)) => Some(common::money(
                s.checked_sub(t).ok_or_else(|| overflow(&field("total")))?,
                cur,
            )),
            _ => None,
        };
        if let Some(t) = total {
            line_totals.push(t);
        }
        line_items.push(LineItem {
            remote_id: common::id(l.get("id")),
            product_remote_id: common::id(l.get("product_id")),
            variant_remote_id: common::id(l.get("variation_id")),
            sku: common::text(l.get("sku")),
            name: name(l.get("name")),
            quantity,
            unit_price,
            total_discount,
            total_tax: common::money_field(l.get("total_tax"), &field("total_tax"), cur)?,
            total: total.map(|t| common::money(t, cur)),
        });
    }

    // Discounts (coupons).
    let mut discounts = Vec::new();
    for (i, v) in array_of(o.get("coupon_lines"), "coupon_lines")?
        .iter()
        .enumerate()
    {
        let c = element(v, "coupon_lines", i)?;
        let kind = common::text(c.get("discount_type")).map(|k| match k.as_str() {
            "percent" => "percentage".to_string(),
            "fixed_cart" | "fixed_product" => "fixed_amount".to_string(),
            _ => k,
        });
        discounts.push(Discount {
            code: name(c.get("code")),
            amount: common::money_field(
                c.get("discount"),
                &format!("coupon_lines[{i}].discount"),
                cur,
            )?,
            kind,
        });
    }

    // Shipping lines.
    let mut shipping_lines = Vec::new();
    for (i, v) in array_of(o.get("shipping_lines"), "shipping_lines")?
        .iter()
        .enumerate()
    {
        let s = element(v, "shipping_lines", i)?;
        shipping_lines.push(ShippingLine {
            remote_id: common::id(s.get("id")),
            title: name(s.get("method_title")),
            code: common::text(s.get("method_id")),
            price: common::money_field(s.get("total"), &format!("shipping_lines[{i}].total"), cur)?,
        });
    }

    // Tax lines: amount = tax_total + shipping_tax_total; rate = rate_percent / 100.
    let mut tax_lines = Vec::new();
    for (i, v) in array_of(o.get("tax_lines"), "tax_lines")?
        .iter()
        .enumerate()
    {
        let t = element(v, "tax_lines", i)?;
        let field = |k: &str| format!("tax_lines[{i}].{k}");
        let items = common::decimal(t.get("tax_total"), &field("tax_total"))?;
        let shipping = common::decimal(t.get("shipping_tax_total"), &field("shipping_tax_total"))?;
        let amount = match (items, shipping) {
            (None, None) => None,
            (a, b) => Some(common::money(
                sum(
                    [a.unwrap_or_default(), b.unwrap_or_default()],
                    &field("tax_total"),
                )?,
                cur,
            )),
        };
        let rate = match common::decimal(t.get("rate_percent"), &field("rate_percent"))? {
            Some(p) => Some(percent_to_fraction(p, &field("rate_percent"))?),
            None => None,
        };
        tax_lines.push(TaxLine {
            title: name(t.get("label")).or_else(|| common::text(t.get("rate_code"))),
            rate,
            amount,
        });
    }

    // Refunds: `refunds[].total` are negative strings ("-10.00").
    let refunds = array_of(o.get("refunds"), "refunds")?;
    let total_refunded = if refunds.is_empty() {
        None
    } else {
        let mut amounts = Vec::new();
        for (i, v) in refunds.iter().enumerate() {
            let r = element(v, "refunds", i)?;
            if let Some(d) = common::decimal(r.get("total"), &format!("refunds[{i}].total"))? {
                amounts.push(d.abs());
            }
        }
        Some(common::money(sum(amounts, "refunds")?, cur))
    };

    let subtotal_price = match o.get("line_items") {
        Some(Value::Array(_)) => Some(common::money(sum(line_totals, "line_items")?, cur)),
        _ => None,
    };

    let customer_remote_id = common::id(o.get("customer_id"));
    let customer_id = customer_remote_id
        .as_ref()
        .map(|id| RecordKey::new(connection_id, Model::Customer, id.clone()).record_id());
    let billing = obj_of(o.get("billing"));

    Ok(Order {
        order_number: common::text(o.get("number")),
        status: order_status(&status_raw).to_string(),
        payment_status: payment_status(&status_raw, paid, !refunds.is_empty()).to_string(),
        fulfillment_status: fulfillment_status(&status_raw).to_string(),
        currency: currency.clone(),
        customer_remote_id,
        customer_id,
        email: billing.and_then(|b| common::text(b.get("email"))),
        phone: billing.and_then(|b| common::text(b.get("phone"))),
        billing_address: address(o.get("billing")),
        shipping_address: address(o.get("shipping")),
        line_items,
        discounts,
        shipping_lines,
        tax_lines,
        subtotal_price,
        total_discount: money("discount_total")?,
        total_tax: money("total_tax")?,
        total_shipping: money("shipping_total")?,
        total_price: money("total")?,
        total_refunded,
        tags: Vec::new(),
        note: common::text(o.get("customer_note")),
        closed_at: common::time_string(o.get("date_completed_gmt"), "date_completed_gmt", true)?,
        cancelled_at: None,
    })
}

/// `7.25` (percent) → `"0.0725"` (fraction, as `TaxLine.rate` wants).
fn percent_to_fraction(p: Decimal, field: &str) -> Result<String, StandardizeError> {
    let f = p
        .checked_div(Decimal::ONE_HUNDRED)
        .ok_or_else(|| overflow(field))?;
    Ok(f.normalize().to_string())
}

// ---------------------------------------------------------------------------------------
// Customer

fn customer(o: &Obj) -> Result<Customer, StandardizeError> {
    let billing = obj_of(o.get("billing"));
    let default_address = match (address(o.get("billing")), address(o.get("shipping"))) {
        (Some(b), _) if has_location(&b) => Some(b),
        (_, Some(s)) if has_location(&s) => Some(s),
        (b, s) => b.or(s),
    };
    Ok(Customer {
        email: common::text(o.get("email"))
            .or_else(|| billing.and_then(|b| common::text(b.get("email")))),
        first_name: name(o.get("first_name")),
        last_name: name(o.get("last_name")),
        company: billing.and_then(|b| name(b.get("company"))),
        phone: billing.and_then(|b| common::text(b.get("phone"))),
        status: "active".to_string(),
        currency: None,
        accepts_marketing: None,
        orders_count: common::int(o.get("orders_count")),
        total_spent: common::money_field(o.get("total_spent"), "total_spent", None)?,
        tags: Vec::new(),
        note: None,
        default_address,
    })
}

// ---------------------------------------------------------------------------------------
// Product

/// Post status → product status: `publish` → active; `draft`, `pending`, `private`,
/// `future` → draft; `trash` → archived; else unknown.
pub fn product_status(status: &str) -> &'static str {
    match status {
        "publish" => "active",
        "draft" | "pending" | "private" | "future" => "draft",
        "trash" => "archived",
        _ => "unknown",
    }
}

/// Prices of a product or variation: (`price`, `compare_at_price`). `compare_at_price` is
/// `regular_price` while a sale is set (`sale_price` non-empty). `""` → `None`.
fn prices(o: &Obj, field: &str) -> Result<(Option<String>, Option<String>), StandardizeError> {
    let price = common::money_field(o.get("price"), &format!("{field}price"), None)?;
    let on_sale = common::text(o.get("sale_price")).is_some();
    let compare_at = if on_sale {
        common::money_field(
            o.get("regular_price"),
            &format!("{field}regular_price"),
            None,
        )?
    } else {
        None
    };
    Ok((price, compare_at))
}

/// Units in stock; `None` when stock is not managed (`manage_stock: false`,
/// `stock_quantity: null`).
fn stock(o: &Obj) -> Option<i64> {
    if o.get("manage_stock") == Some(&Value::Bool(false)) {
        return None;
    }
    common::int(o.get("stock_quantity"))
}

fn product(o: &Obj, remote_id: &str) -> Result<Product, StandardizeError> {
    let product_type = common::text(o.get("type"));
    let is_variable = product_type
        .as_deref()
        .is_some_and(|t| t == "variable" || t.starts_with("variable-") || t.ends_with("-variable"));

    // Options: the attributes used for variations (`variation: true`; descriptive
    // attributes of simple products are not options).
    let mut options = Vec::new();
    for (i, v) in array_of(o.get("attributes"), "attributes")?
        .iter()
        .enumerate()
    {
        let a = element(v, "attributes", i)?;
        if a.get("variation") == Some(&Value::Bool(false)) {
            continue;
        }
        let values = array_of(a.get("options"), "attributes[].options")?
            .iter()
            .filter_map(|x| name(Some(x)))
            .collect();
        options.push(ProductOption {
            name: name(a.get("name")).unwrap_or_default(),
            values,
        });
    }

    let product_name = name(o.get("name"));
    let mut variants = Vec::new();
    match o.get(VARIATIONS_KEY) {
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                variants.push(variation(element(v, VARIATIONS_KEY, i)?, i)?);
            }
        }
        Some(Value::Null) | None => {
            if !is_variable && product_type.as_deref() != Some("grouped") {
                let (price, compare_at_price) = prices(o, "")?;
                variants.push(ProductVariant {
                    remote_id: remote_id.to_string(),
                    sku: common::text(o.get("sku")),
                    title: product_name.clone(),
                    price,
                    compare_at_price,
                    options: Vec::new(),
                    inventory_quantity: stock(o),
                    barcode: common::text(o.get("global_unique_id")),
                    remote_updated_at: common::time_string(
                        o.get("date_modified_gmt"),
                        "date_modified_gmt",
                        true,
                    )?,
                });
            }
        }
        Some(_) => {
            return Err(StandardizeError::InvalidField {
                field: VARIATIONS_KEY.into(),
                reason: "expected an array".into(),
            })
        }
    }

    Ok(Product {
        name: product_name,
        description: common::text(o.get("description")),
        status: product_status(&common::text(o.get("status")).unwrap_or_default()).to_string(),
        vendor: None,
        product_type,
        handle: common::text(o.get("slug")),
        currency: None,
        tags: common::tags(o.get("tags"))
            .into_iter()
            .map(|t| html_escape::decode_html_entities(&t).into_owned())
            .collect(),
        options,
        variants,
    })
}

/// One REST `product_variation` object → a variant. Its title is its `name` when sent
/// (WC ≥ 4.x), else its option values joined by `" / "`.
fn variation(v: &Obj, i: usize) -> Result<ProductVariant, StandardizeError> {
    let field = format!("{VARIATIONS_KEY}[{i}].");
    let remote_id =
        common::id(v.get("id")).ok_or(StandardizeError::MissingField("_ingot_variations[].id"))?;
    let mut options = Vec::new();
    for (j, a) in array_of(v.get("attributes"), &format!("{field}attributes"))?
        .iter()
        .enumerate()
    {
        let a = element(a, &format!("{field}attributes"), j)?;
        options.push(VariantOption {
            name: name(a.get("name")).unwrap_or_default(),
            value: name(a.get("option")).unwrap_or_default(),
        });
    }
    let title = name(v.get("name")).or_else(|| {
        (!options.is_empty()).then(|| {
            options
                .iter()
                .map(|o| o.value.as_str())
                .collect::<Vec<_>>()
                .join(" / ")
        })
    });
    let (price, compare_at_price) = prices(v, &field)?;
    Ok(ProductVariant {
        remote_id,
        sku: common::text(v.get("sku")),
        title,
        price,
        compare_at_price,
        options,
        inventory_quantity: stock(v),
        barcode: common::text(v.get("global_unique_id")),
        remote_updated_at: common::time_string(
            v.get("date_modified_gmt"),
            &format!("{field}date_modified_gmt"),
            true,
        )?,
    })
}
