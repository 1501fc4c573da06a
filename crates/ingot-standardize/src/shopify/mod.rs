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
        let mut obj = common::parse_object(&event.payload)?;
        if op == RawOp::Upsert && event.topic.ends_with("/graphql") {
            obj = graphql::to_rest(model, &obj);
        }
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
