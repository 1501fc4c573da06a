//! Shopify mapping: REST Admin objects and webhook bodies (they share one JSON shape) to
//! ingot's Order, Customer and Product.
//!
//! Topics (the `X-Shopify-Topic` header, QUIRKS Q-S13):
//! - `orders/create|updated|paid|cancelled|fulfilled|partially_fulfilled|edited`,
//!   `customers/create|update`, `products/create|update`: upserts of the object in the body;
//! - `orders/delete`, `customers/delete`, `products/delete`: deletions; the body may be only
//!   `{"id": …}` (Q-S5);
//! - `orders/rest`, `customers/rest`, `products/rest`: one object taken from a REST GET or
//!   list response by the sync engine (unwrapped: the object itself, not `{"order": …}`);
//! - `orders/graphql`, `customers/graphql`, `products/graphql`: one node of a GraphQL
//!   Admin API listing (the node object as returned), turned into the REST field names by
//!   [`graphql`] first, so it standardizes to exactly what the REST or webhook payload of
//!   the same record version gives;
//! - the GraphQL spellings `ORDERS_CREATE`, `CUSTOMERS_DELETE`, … route like their REST forms;
//! - anything else (`inventory_levels/update`, `refunds/create`, …) is
//!   [`Outcome::Skip`]`("unmapped topic")`.
//!
//! Ids: integers keep every digit (never through f64); when `admin_graphql_api_id`
//! (`gid://shopify/<Type>/<n>`) is present and its digits disagree with `id`, the gid wins,
//! because copies of Shopify payloads that went through a float lost the last digits of
//! `id` but not of the gid string (Q-S1). Times become UTC. Money stays exact
//! ([`common::money_field`]). The status tables are in [`order_status`],
//! [`payment_status`], [`fulfillment_status`], [`customer_status`] and [`product_status`]
//! (also `docs/status-mapping-shopify.md`).

mod customer;
mod graphql;
mod order;
mod product;

use crate::{common, Mapping, Outcome, StandardizeError, Standardized};
use chrono::{DateTime, Utc};
use ingot_model::{Address, Model, Provider, RawEvent, RawOp, RecordData};
use serde_json::{Map, Value};

pub use customer::customer_status;
pub use order::{fulfillment_status, order_status, payment_status};
pub use product::product_status;

/// A JSON object of the payload.
type Obj = Map<String, Value>;

/// The Shopify [`Mapping`].
pub struct ShopifyMapping;

/// Output version of this mapping (`<provider>/<n>`); bump `n` when any output changes.
pub const MAPPING_VERSION: &str = "shopify/1";

impl Mapping for ShopifyMapping {
    fn provider(&self) -> Provider {
        Provider::Shopify
    }

    fn mapping_version(&self) -> &'static str {
        MAPPING_VERSION
    }

    fn route(&self, topic: &str) -> Option<(Model, RawOp)> {
        route_topic(topic)
    }

    fn standardize(&self, event: &RawEvent) -> Result<Outcome, StandardizeError> {
        let Some((model, op)) = route_topic(&event.topic) else {
            return Ok(Outcome::Skip("unmapped topic"));
        };
        let obj = if op == RawOp::Upsert && event.topic.ends_with("/graphql") {
            graphql::to_rest(model, &common::parse_object(&event.payload)?)
        } else {
            common::parse_object_keeping(&event.payload, rest_key)?
        };
        let record = match op {
            RawOp::Delete => Standardized::Delete {
                model,
                remote_id: remote_id(&obj, gid_type(model))?,
                deleted_at: deleted_at(event)?,
            },
            RawOp::Upsert => upsert(model, &obj, &event.connection_id)?,
        };
        Ok(Outcome::Record(record))
    }
}

/// Whether the REST / webhook mapping reads object members named `k`, at any depth: the
/// payload is parsed keeping only those ([`common::parse_object_keeping`]), so the tree of
/// what no field comes from (`price_set`, `presentment_money`, `properties`, `duties`, …)
/// is never built. A test holds this list to the mapping's source (every key literal in
/// `mod.rs`, `order.rs`, `customer.rs`, `product.rs` and `common.rs` is here) and to its
/// output (every Shopify fixture standardizes the same as from the whole tree).
fn rest_key(k: &str) -> bool {
    matches!(
        k,
        "accepts_marketing"
            | "address1"
            | "address2"
            | "admin_graphql_api_id"
            | "amount"
            | "barcode"
            | "billing_address"
            | "body_html"
            | "cancelled_at"
            | "city"
            | "closed_at"
            | "code"
            | "company"
            | "compare_at_price"
            | "contact_email"
            | "country"
            | "country_code"
            | "created_at"
            | "currency"
            | "customer"
            | "default_address"
            | "discount_allocations"
            | "discount_codes"
            | "email"
            | "email_marketing_consent"
            | "financial_status"
            | "first_name"
            | "fulfillment_status"
            | "handle"
            | "id"
            | "inventory_quantity"
            | "kind"
            | "last_name"
            | "line_items"
            | "name"
            | "note"
            | "option1"
            | "option2"
            | "option3"
            | "options"
            | "order_number"
            | "orders_count"
            | "phone"
            | "position"
            | "price"
            | "product_id"
            | "product_type"
            | "province"
            | "province_code"
            | "quantity"
            | "rate"
            | "refunds"
            | "shipping_address"
            | "shipping_lines"
            | "shop_money"
            | "sku"
            | "state"
            | "status"
            | "subtotal_price"
            | "tags"
            | "tax_lines"
            | "title"
            | "total_discount"
            | "total_discounts"
            | "total_price"
            | "total_shipping_price_set"
            | "total_spent"
            | "total_tax"
            | "transactions"
            | "type"
            | "updated_at"
            | "values"
            | "variant_gids"
            | "variant_id"
            | "variants"
            | "vendor"
            | "zip"
    )
}

/// The model and operation of a Shopify topic: `orders/create` → (Order, Upsert),
/// `customers/delete` → (Customer, Delete), `products/rest` → (Product, Upsert) (one
/// object of a REST response, fed by the sync engine). The GraphQL enum spelling
/// (`ORDERS_CREATE`, Q-S13) is accepted too. `None` for topics ingot does not map.
pub fn route_topic(topic: &str) -> Option<(Model, RawOp)> {
    let graphql;
    let topic = if topic.contains('/') {
        topic
    } else {
        graphql = graphql_topic(topic)?;
        graphql.as_str()
    };
    let (resource, verb) = topic.split_once('/')?;
    let model = match resource {
        "orders" => Model::Order,
        "customers" => Model::Customer,
        "products" => Model::Product,
        _ => return None,
    };
    let op = match verb {
        "create"
        | "updated"
        | "update"
        | "paid"
        | "cancelled"
        | "fulfilled"
        | "partially_fulfilled"
        | "edited"
        | "rest"
        | "graphql" => RawOp::Upsert,
        "delete" => RawOp::Delete,
        _ => return None,
    };
    Some((model, op))
}

/// `ORDERS_CREATE` → `orders/create` (GraphQL `WebhookSubscriptionTopic` spelling).
fn graphql_topic(topic: &str) -> Option<String> {
    ["ORDERS", "CUSTOMERS", "PRODUCTS"]
        .into_iter()
        .find_map(|resource| {
            let verb = topic.strip_prefix(resource)?.strip_prefix('_')?;
            (!verb.is_empty() && verb.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')).then(
                || {
                    format!(
                        "{}/{}",
                        resource.to_ascii_lowercase(),
                        verb.to_ascii_lowercase()
                    )
                },
            )
        })
}

/// The `<Type>` of a model's `gid://shopify/<Type>/<n>`.
fn gid_type(model: Model) -> &'static str {
    match model {
        Model::Order => "Order",
        Model::Customer => "Customer",
        Model::Product => "Product",
    }
}

fn upsert(model: Model, obj: &Obj, connection_id: &str) -> Result<Standardized, StandardizeError> {
    let remote_id = remote_id(obj, gid_type(model))?;
    let remote_updated_at = common::time(obj.get("updated_at"), "updated_at", false)?
        .ok_or(StandardizeError::MissingField("updated_at"))?;
    let remote_created_at = common::time(obj.get("created_at"), "created_at", false)?;
    let data = match model {
        Model::Order => RecordData::Order(order::order(obj, connection_id)?),
        Model::Customer => RecordData::Customer(customer::customer(obj)?),
        Model::Product => RecordData::Product(product::product(obj)?),
    };
    Ok(Standardized::Upsert {
        remote_id,
        remote_created_at,
        remote_updated_at,
        data,
    })
}

/// When a delete happened: `X-Shopify-Triggered-At` (kept on the raw event as
/// `triggered_at`, nanosecond precision, Q-S8) when it parses, else ingot's `received_at`.
fn deleted_at(event: &RawEvent) -> Result<DateTime<Utc>, StandardizeError> {
    if let Some(t) = event
        .triggered_at
        .as_deref()
        .and_then(|t| ingot_model::parse_time(t, false).ok())
    {
        return Ok(t);
    }
    ingot_model::parse_time(&event.received_at, false).map_err(|e| StandardizeError::InvalidField {
        field: "received_at".into(),
        reason: e.to_string(),
    })
}

/// The digits of `gid://shopify/<ty>/<digits>[?query]` (Q-S1, Q-S12), without leading
/// zeros; `None` for another type or a non-numeric id.
pub fn gid_digits(gid: &str, ty: &str) -> Option<String> {
    let rest = gid.strip_prefix("gid://shopify/")?;
    let (t, tail) = rest.split_once('/')?;
    if t != ty {
        return None;
    }
    let digits = tail.split(['?', '#']).next().unwrap_or_default();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// The id of a nested object (customer, line item, variant): the gid's digits when
/// `admin_graphql_api_id` is a `gid://shopify/<ty>/…`, else `id` (all digits kept).
fn object_id(obj: &Obj, ty: &str) -> Option<String> {
    obj.get("admin_graphql_api_id")
        .and_then(Value::as_str)
        .and_then(|g| gid_digits(g, ty))
        .or_else(|| common::id(obj.get("id")))
}

/// The record's remote id ([`object_id`]); an error when there is none.
fn remote_id(obj: &Obj, ty: &str) -> Result<String, StandardizeError> {
    if let Some(id) = object_id(obj, ty) {
        return Ok(id);
    }
    match obj.get("id") {
        None | Some(Value::Null) => Err(StandardizeError::MissingField("id")),
        Some(other) => Err(StandardizeError::InvalidField {
            field: "id".into(),
            reason: format!("not an id: {other}"),
        }),
    }
}

/// A Shopify address object (orders' `billing_address`/`shipping_address`, customers'
/// `default_address`): `address1`→line1, `address2`→line2, `province`→region,
/// `province_code`→region_code, `zip`→postal_code; `country` is the name as sent
/// (`"United States"`, sometimes a code: `"CA"` in the customers webhook sample),
/// `country_code` the ISO 3166-1 alpha-2 code. `None` when absent, `null`, or without any
/// mapped value.
fn address(v: Option<&Value>) -> Option<Address> {
    let a = v?.as_object()?;
    let t = |k: &str| common::text(a.get(k));
    let out = Address {
        first_name: t("first_name"),
        last_name: t("last_name"),
        company: t("company"),
        line1: t("address1"),
        line2: t("address2"),
        city: t("city"),
        region: t("province"),
        region_code: t("province_code"),
        postal_code: t("zip"),
        country: t("country"),
        country_code: t("country_code"),
        phone: t("phone"),
    };
    (out != Address::default()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_webhook_rest_and_graphql_topics() {
        assert_eq!(
            route_topic("orders/create"),
            Some((Model::Order, RawOp::Upsert))
        );
        assert_eq!(
            route_topic("orders/updated"),
            Some((Model::Order, RawOp::Upsert))
        );
        assert_eq!(
            route_topic("orders/delete"),
            Some((Model::Order, RawOp::Delete))
        );
        assert_eq!(
            route_topic("customers/update"),
            Some((Model::Customer, RawOp::Upsert))
        );
        assert_eq!(
            route_topic("products/rest"),
            Some((Model::Product, RawOp::Upsert))
        );
        assert_eq!(
            route_topic("ORDERS_CREATE"),
            Some((Model::Order, RawOp::Upsert))
        );
        assert_eq!(
            route_topic("CUSTOMERS_DELETE"),
            Some((Model::Customer, RawOp::Delete))
        );
        assert_eq!(route_topic("inventory_levels/update"), None);
        assert_eq!(route_topic("refunds/create"), None);
        assert_eq!(route_topic("INVENTORY_LEVELS_UPDATE"), None);
        assert_eq!(route_topic("ORDERS_"), None);
        assert_eq!(route_topic("orders"), None);
        assert_eq!(route_topic(""), None);
    }

    #[test]
    fn gid_digits_checks_type_and_strips_query() {
        assert_eq!(
            gid_digits("gid://shopify/Order/820982911946154508", "Order").as_deref(),
            Some("820982911946154508")
        );
        assert_eq!(
            gid_digits(
                "gid://shopify/InventoryLevel/24826418?inventory_item_id=1",
                "InventoryLevel"
            )
            .as_deref(),
            Some("24826418")
        );
        assert_eq!(gid_digits("gid://shopify/Order/1", "Customer"), None);
        assert_eq!(gid_digits("gid://shopify/Order/abc", "Order"), None);
        assert_eq!(gid_digits("gid://shopify/Order/", "Order"), None);
        assert_eq!(gid_digits("gid://shopify/Order/000", "Order"), None);
        assert_eq!(gid_digits("https://example.com/Order/1", "Order"), None);
    }

    #[test]
    fn remote_id_prefers_the_gid_when_id_lost_digits() {
        // The float-corrupted docs copy (Q-S1): id …500, gid …508.
        let obj: Obj = serde_json::from_str(
            r#"{"id": 820982911946154500, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508"}"#,
        )
        .unwrap();
        assert_eq!(remote_id(&obj, "Order").unwrap(), "820982911946154508");
        let obj: Obj = serde_json::from_str(r#"{"id": 820982911946154508}"#).unwrap();
        assert_eq!(remote_id(&obj, "Order").unwrap(), "820982911946154508");
        let obj: Obj = serde_json::from_str(r#"{"tax_exemptions": []}"#).unwrap();
        assert_eq!(
            remote_id(&obj, "Order"),
            Err(StandardizeError::MissingField("id"))
        );
        let obj: Obj = serde_json::from_str(r#"{"id": 1.5}"#).unwrap();
        assert!(matches!(
            remote_id(&obj, "Order"),
            Err(StandardizeError::InvalidField { .. })
        ));
    }

    /// Every key literal of the REST mapping's source is a kept key (or a known value
    /// word: a status, a topic, a field name in an error): a mapping that starts reading a
    /// new key fails here until [`rest_key`] keeps it.
    #[test]
    fn rest_key_keeps_every_key_the_mapping_reads() {
        const VALUE_WORDS: &[&str] = &[
            "active",
            "archived",
            "authorized",
            "cancelled",
            "closed",
            "create",
            "customers",
            "declined",
            "delete",
            "disabled",
            "draft",
            "edited",
            "enabled",
            "expired",
            "failure",
            "fulfilled",
            "graphql",
            "invited",
            "not_subscribed",
            "open",
            "order",
            "orders",
            "paid",
            "partial",
            "partially_fulfilled",
            "partially_paid",
            "partially_refunded",
            "pending",
            "products",
            "received_at",
            "refund",
            "refunded",
            "rest",
            "restocked",
            "sale",
            "subscribed",
            "success",
            "unfulfilled",
            "unknown",
            "unlisted",
            "update",
            "updated",
            "voided",
            "null",
            "none",
            "true",
            "false",
        ];
        let sources = [
            include_str!("mod.rs"),
            include_str!("order.rs"),
            include_str!("customer.rs"),
            include_str!("product.rs"),
            include_str!("../common.rs"),
        ];
        let mut seen = 0;
        for src in sources {
            // the code, not its tests
            let code = src.split("#[cfg(test)]").next().unwrap();
            for lit in code.split('"').skip(1).step_by(2) {
                let is_word = lit.starts_with(|c: char| c.is_ascii_lowercase())
                    && lit
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !is_word || VALUE_WORDS.contains(&lit) {
                    continue;
                }
                seen += 1;
                assert!(
                    rest_key(lit),
                    "{lit:?} is read by the mapping: add it to rest_key"
                );
            }
        }
        // the scan sees the mapping's keys (not an empty split)
        assert!(seen > 100, "{seen}");
        assert!(!rest_key("price_set") && !rest_key("presentment_money"));
    }

    /// The kept tree standardizes exactly as the whole tree, for an order with members the
    /// mapping never reads at every depth, and the same bad input gives the same error.
    #[test]
    fn the_kept_tree_standardizes_like_the_whole_tree() {
        let money = json!({"shop_money": {"amount": "9.00", "currency_code": "USD"},
                           "presentment_money": {"amount": "12.00", "currency_code": "CAD"}});
        let order = json!({
            "id": 820982911946154508u64, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
            "name": "#1001", "updated_at": "2026-11-20T10:30:00-05:00", "created_at": "2026-11-20T10:00:00-05:00",
            "cancelled_at": null, "closed_at": null, "currency": "USD", "financial_status": "paid",
            "fulfillment_status": null, "tags": "a, b", "total_price": "19.00", "subtotal_price": "9.00",
            "total_tax": "0.00", "total_discounts": "0.00", "total_shipping_price_set": money,
            "price_set": money, "client_details": {"browser_ip": "1.2.3.4", "id": 7},
            "customer": {"id": 7, "email": "a@example.com", "marketing": {"state": "x", "id": 1}},
            "line_items": [{"id": 1, "price": "9.00", "quantity": 1, "price_set": money,
                "properties": [{"name": "gift", "value": "yes"}], "tax_lines": [{"price": "0.00", "price_set": money}],
                "discount_allocations": [{"amount": "1.00", "amount_set": money}], "duties": []}],
            "shipping_lines": [{"id": 5, "title": "Std", "price": "10.00", "discounted_price_set": money}],
            "refunds": [{"transactions": [{"kind": "refund", "status": "success", "amount": "2.00", "receipt": {"id": 1}}]}],
            "billing_address": {"address1": "1 Road", "zip": "40202", "latitude": 1.5}
        });
        let bytes = serde_json::to_vec(&order).unwrap();
        let whole = upsert(
            Model::Order,
            &common::parse_object(&bytes).unwrap(),
            "shop-1",
        );
        let kept = common::parse_object_keeping(&bytes, rest_key).unwrap();
        assert!(!kept.contains_key("price_set") && !kept.contains_key("client_details"));
        assert_eq!(upsert(Model::Order, &kept, "shop-1"), whole);
        assert!(whole.is_ok());
        for bad in [&b"{\"id\": 1,"[..], b"[1]", b"{\"price_set\": {]}", b"{} x"] {
            assert_eq!(
                common::parse_object_keeping(bad, rest_key).map(|_| ()),
                common::parse_object(bad).map(|_| ()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn empty_address_is_none() {
        assert_eq!(address(Some(&serde_json::json!({}))), None);
        assert_eq!(
            address(Some(&serde_json::json!({"address2": "", "name": "x"}))),
            None
        );
        assert_eq!(address(Some(&Value::Null)), None);
        let a = address(Some(
            &serde_json::json!({"zip": "K2P 2L8", "province": "ON"}),
        ))
        .unwrap();
        assert_eq!(a.postal_code.as_deref(), Some("K2P 2L8"));
        assert_eq!(a.region.as_deref(), Some("ON"));
    }
}
