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

use crate::common::{self, present, Present};
use crate::{Mapping, Outcome, StandardizeError, Standardized};
use chrono::{DateTime, Utc};
use ingot_model::{Address, Model, Provider, RawEvent, RawOp, RecordData};
use serde::Deserialize;
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
        let graphql = op == RawOp::Upsert && event.topic.ends_with("/graphql");
        let tree = || {
            if graphql {
                Ok(graphql::to_rest(
                    model,
                    &common::parse_object(&event.payload)?,
                ))
            } else {
                common::parse_object_keeping(&event.payload, rest_key)
            }
        };
        let record = match (op, model) {
            (RawOp::Delete, _) => Standardized::Delete {
                model,
                remote_id: remote_id(&tree()?, gid_type(model))?,
                deleted_at: deleted_at(event)?,
            },
            // orders, the volume, are read typed: no tree of a webhook body is built
            (RawOp::Upsert, Model::Order) => {
                let o: order::ShopifyOrder = if graphql {
                    common::from_object(tree()?)?
                } else {
                    common::parse_typed(&event.payload)?
                };
                let (remote_id, remote_created_at, remote_updated_at) = head(
                    o.admin_graphql_api_id.as_ref(),
                    o.id.as_ref(),
                    o.updated_at.as_ref(),
                    o.created_at.as_ref(),
                    gid_type(model),
                )?;
                Standardized::Upsert {
                    remote_id,
                    remote_created_at,
                    remote_updated_at,
                    data: RecordData::Order(order::order(&o, &event.connection_id)?),
                }
            }
            (RawOp::Upsert, Model::Customer) => upsert(model, &tree()?, |c| {
                Ok(RecordData::Customer(customer::customer(c)?))
            })?,
            (RawOp::Upsert, Model::Product) => upsert(model, &tree()?, |p| {
                Ok(RecordData::Product(product::product(p)?))
            })?,
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

/// An upsert read from its tree (customers and products; orders are read typed).
fn upsert(
    model: Model,
    obj: &Obj,
    data: impl FnOnce(&Obj) -> Result<RecordData, StandardizeError>,
) -> Result<Standardized, StandardizeError> {
    let (remote_id, remote_created_at, remote_updated_at) = head(
        obj.get("admin_graphql_api_id"),
        obj.get("id"),
        obj.get("updated_at"),
        obj.get("created_at"),
        gid_type(model),
    )?;
    let data = data(obj)?;
    Ok(Standardized::Upsert {
        remote_id,
        remote_created_at,
        remote_updated_at,
        data,
    })
}

/// A record's remote id ([`id_of`]; an error when there is none), modified time (the
/// version: required) and created time, checked in that order.
type Head = (String, Option<DateTime<Utc>>, DateTime<Utc>);

fn head(
    gid: Option<&Value>,
    id: Option<&Value>,
    updated_at: Option<&Value>,
    created_at: Option<&Value>,
    ty: &str,
) -> Result<Head, StandardizeError> {
    let remote_id = remote_id_of(gid, id, ty)?;
    let remote_updated_at = common::time(updated_at, "updated_at", false)?
        .ok_or(StandardizeError::MissingField("updated_at"))?;
    let remote_created_at = common::time(created_at, "created_at", false)?;
    Ok((remote_id, remote_created_at, remote_updated_at))
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
    id_of(obj.get("admin_graphql_api_id"), obj.get("id"), ty)
}

/// [`object_id`] from the two members: `admin_graphql_api_id` (`gid`) and `id`.
fn id_of(gid: Option<&Value>, id: Option<&Value>, ty: &str) -> Option<String> {
    gid.and_then(Value::as_str)
        .and_then(|g| gid_digits(g, ty))
        .or_else(|| common::id(id))
}

/// The record's remote id ([`object_id`]); an error when there is none.
fn remote_id(obj: &Obj, ty: &str) -> Result<String, StandardizeError> {
    remote_id_of(obj.get("admin_graphql_api_id"), obj.get("id"), ty)
}

/// [`remote_id`] from the two members.
fn remote_id_of(
    gid: Option<&Value>,
    id: Option<&Value>,
    ty: &str,
) -> Result<String, StandardizeError> {
    if let Some(rid) = id_of(gid, id, ty) {
        return Ok(rid);
    }
    match id {
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
fn address(a: Option<&ShopifyAddress>) -> Option<Address> {
    let a = a?;
    let t = |v: &Present| common::text(v.as_ref());
    let out = Address {
        first_name: t(&a.first_name),
        last_name: t(&a.last_name),
        company: t(&a.company),
        line1: t(&a.address1),
        line2: t(&a.address2),
        city: t(&a.city),
        region: t(&a.province),
        region_code: t(&a.province_code),
        postal_code: t(&a.zip),
        country: t(&a.country),
        country_code: t(&a.country_code),
        phone: t(&a.phone),
    };
    (out != Address::default()).then_some(out)
}

/// [`address`] of a member of a tree (a customer's `default_address`).
fn tree_address(v: Option<&Value>) -> Option<Address> {
    let a = v.and_then(|v| common::Nested::<ShopifyAddress>::deserialize(v).ok())?;
    address(a.0.as_ref())
}

/// The members of a Shopify address that [`address`] reads.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ShopifyAddress {
    #[serde(deserialize_with = "present")]
    first_name: Present,
    #[serde(deserialize_with = "present")]
    last_name: Present,
    #[serde(deserialize_with = "present")]
    company: Present,
    #[serde(deserialize_with = "present")]
    address1: Present,
    #[serde(deserialize_with = "present")]
    address2: Present,
    #[serde(deserialize_with = "present")]
    city: Present,
    #[serde(deserialize_with = "present")]
    province: Present,
    #[serde(deserialize_with = "present")]
    province_code: Present,
    #[serde(deserialize_with = "present")]
    zip: Present,
    #[serde(deserialize_with = "present")]
    country: Present,
    #[serde(deserialize_with = "present")]
    country_code: Present,
    #[serde(deserialize_with = "present")]
    phone: Present,
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
            // serde attributes of the typed structs
            "present",
            "type",
        ];
        let sources = [
            include_str!("mod.rs"),
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
        assert!(seen > 60, "{seen}");
        // a typed struct read from a kept tree (a customer's `default_address`) reads
        // members by its field names, not by literals
        let fields = struct_fields::<ShopifyAddress>();
        assert_eq!(fields.len(), 12, "{fields:?}");
        for f in fields {
            assert!(
                rest_key(f),
                "{f:?} is read from a kept tree: add it to rest_key"
            );
        }
        assert!(!rest_key("price_set") && !rest_key("presentment_money"));
    }

    /// The member names a derived `Deserialize` struct reads (what it passes to
    /// `deserialize_struct`).
    fn struct_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        struct Fields;
        #[derive(Debug)]
        struct Got(&'static [&'static str]);
        impl std::fmt::Display for Got {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl std::error::Error for Got {}
        impl serde::de::Error for Got {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Got(&[])
            }
        }
        impl<'de> serde::Deserializer<'de> for Fields {
            type Error = Got;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Got> {
                Err(Got(&[]))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Got> {
                Err(Got(fields))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        T::deserialize(Fields).err().map_or(&[], |g| g.0)
    }

    /// The kept tree standardizes exactly as the whole tree, for a customer with members
    /// the mapping never reads at every depth, and the same bad input gives the same error.
    #[test]
    fn the_kept_tree_standardizes_like_the_whole_tree() {
        let customer = json!({
            "id": 207119551, "admin_graphql_api_id": "gid://shopify/Customer/207119551",
            "email": "bob@example.com", "first_name": "Bob", "last_name": "Norman",
            "updated_at": "2026-11-20T10:30:00-05:00", "created_at": "2026-11-20T10:00:00-05:00",
            "state": "enabled", "tags": "vip, b", "orders_count": 3, "total_spent": "199.65",
            "marketing": {"state": "x", "id": 1}, "tax_exemptions": ["CA_STATUS_CARD_EXEMPTION"],
            "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in"},
            "default_address": {"address1": "1 Road", "zip": "40202", "latitude": 1.5,
                                "company": "Acme", "country_name": "Canada"}
        });
        let bytes = serde_json::to_vec(&customer).unwrap();
        let data = |c: &Obj| Ok(RecordData::Customer(customer::customer(c)?));
        let whole = upsert(
            Model::Customer,
            &common::parse_object(&bytes).unwrap(),
            data,
        );
        let kept = common::parse_object_keeping(&bytes, rest_key).unwrap();
        assert!(!kept.contains_key("marketing") && !kept.contains_key("tax_exemptions"));
        assert_eq!(upsert(Model::Customer, &kept, data), whole);
        let Ok(Standardized::Upsert {
            remote_id,
            data: RecordData::Customer(c),
            ..
        }) = whole
        else {
            panic!("{whole:?}")
        };
        assert_eq!(remote_id, "207119551");
        assert_eq!(c.company.as_deref(), Some("Acme"));
        for bad in [&b"{\"id\": 1,"[..], b"[1]", b"{\"price_set\": {]}", b"{} x"] {
            assert_eq!(
                common::parse_object_keeping(bad, rest_key).map(|_| ()),
                common::parse_object(bad).map(|_| ()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn raw_order(payload: &[u8]) -> RawEvent {
        RawEvent {
            event_id: "e-1".into(),
            tenant_id: "acme".into(),
            connection_id: "shop-1".into(),
            provider: "shopify".into(),
            topic: "orders/updated".into(),
            source: "webhook".into(),
            api_version: None,
            received_at: "2026-11-20T15:31:00Z".into(),
            triggered_at: None,
            payload: payload.to_vec(),
        }
    }

    /// A typed order read from its bytes (simd-json) is the order read from the whole
    /// tree (the fallback path, and the GraphQL path's), with members the mapping never
    /// reads at every depth and members of unexpected shapes, read as the tree-based
    /// mapping read them (a non-object where an object is expected is absent; an array's
    /// non-object entries are skipped but count as entries). Bad input gets the whole-tree
    /// parse's error; a repeated key keeps its last value, as a `serde_json::Map` does.
    #[test]
    fn a_typed_order_reads_as_from_the_whole_tree() {
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
                "discount_allocations": [{"amount": "1.00", "amount_set": money}], "duties": []},
                "not an object"],
            "shipping_lines": [{"id": 5, "title": "Std", "price": "10.00", "discounted_price_set": money}],
            "refunds": [{"transactions": [{"kind": "refund", "status": "success", "amount": "2.00", "receipt": {"id": 1}},
                                          {"kind": "refund", "status": "failure", "amount": "5.00"}]}],
            "billing_address": {"address1": "1 Road", "zip": "40202", "latitude": 1.5},
            "shipping_address": "not an object"
        });
        let odd = json!({
            "id": "5", "updated_at": "2026-11-20T10:30:00Z", "cancelled_at": null, "currency": "JPY",
            "line_items": [1, {"price": 2, "quantity": "2", "discount_allocations": [1], "tax_lines": {}}],
            "customer": [], "shipping_lines": "x", "total_shipping_price_set": {"shop_money": null},
            "refunds": [], "billing_address": [{"zip": "1"}], "discount_codes": {"code": "X"},
            "tax_lines": [{"title": "GST", "rate": 0.05, "price": 1.5}], "fulfillment_status": 3
        });
        let std = |bytes: &[u8]| ShopifyMapping.standardize(&raw_order(bytes));
        let typed = |o: order::ShopifyOrder| order::order(&o, "shop-1");
        // a body past what a thread keeps of its parse buffers, then small ones again
        let mut big = order.clone();
        big["note"] = json!("n".repeat(2 << 20));
        let mut orders = Vec::new();
        for v in [&order, &big, &odd, &order] {
            let bytes = serde_json::to_vec(v).unwrap();
            let from_bytes = typed(common::parse_typed(&bytes).unwrap());
            let from_tree =
                typed(common::from_object(common::parse_object(&bytes).unwrap()).unwrap());
            assert_eq!(from_bytes, from_tree);
            orders.push(from_bytes.unwrap());
            assert!(matches!(
                std(&bytes),
                Ok(Outcome::Record(Standardized::Upsert { .. }))
            ));
        }
        let (o, odd) = (&orders[0], &orders[2]);
        assert_eq!(orders[1].note.as_ref().map(String::len), Some(2 << 20));
        assert_eq!(&orders[3], o);
        assert_eq!(o.customer_remote_id.as_deref(), Some("7"));
        assert_eq!(o.line_items.len(), 1);
        assert_eq!(o.line_items[0].total_discount.as_deref(), Some("1.00"));
        assert_eq!(o.line_items[0].total_tax.as_deref(), Some("0.00"));
        assert_eq!(o.line_items[0].total.as_deref(), Some("8.00"));
        assert_eq!(o.total_shipping.as_deref(), Some("9.00"));
        assert_eq!(o.total_refunded.as_deref(), Some("2.00"));
        assert_eq!(
            (o.status.as_str(), o.fulfillment_status.as_str()),
            ("open", "unfulfilled")
        );
        assert_eq!(
            o.billing_address.as_ref().and_then(|a| a.line1.as_deref()),
            Some("1 Road")
        );
        assert_eq!(o.shipping_address, None);
        assert_eq!(o.tags, ["a", "b"]);
        // odd shapes: `[1]` allocations are allocations (of nothing), `{}` tax lines none
        assert_eq!(odd.customer_remote_id, None);
        assert_eq!(odd.line_items.len(), 1);
        let li = &odd.line_items[0];
        assert_eq!(li.total_discount.as_deref(), Some("0"));
        assert_eq!(
            (li.total_tax.as_deref(), li.total.as_deref()),
            (None, Some("4"))
        );
        assert_eq!(
            (odd.total_shipping.as_deref(), odd.total_refunded.as_deref()),
            (None, None)
        );
        assert_eq!(
            (odd.billing_address.as_ref(), odd.discounts.len()),
            (None, 0)
        );
        assert_eq!(odd.tax_lines[0].rate.as_deref(), Some("0.05"));
        assert_eq!(odd.tax_lines[0].amount.as_deref(), Some("1.5"));
        assert_eq!(
            (odd.status.as_str(), odd.fulfillment_status.as_str()),
            ("open", "unknown")
        );

        // a repeated key keeps its last value, at the top and nested
        let repeated = br#"{"id": 1, "updated_at": "2026-11-20T10:30:00Z", "id": 2,
            "line_items": [{"quantity": 1, "price": "1.00", "quantity": 3}]}"#;
        let Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            data: RecordData::Order(o),
            ..
        })) = std(repeated)
        else {
            panic!("{:?}", std(repeated))
        };
        assert_eq!((remote_id.as_str(), o.line_items[0].quantity), ("2", 3));
        assert_eq!(o.line_items[0].total.as_deref(), Some("3.00"));

        for bad in [
            &b"{\"id\": 1,"[..],
            b"[1]",
            b"null",
            b"{\"price_set\": {]}",
            b"{} x",
            b"",
        ] {
            assert_eq!(
                common::parse_typed::<order::ShopifyOrder>(bad).map(|_| ()),
                common::parse_object(bad).map(|_| ()),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(std(bad).is_err());
        }
        assert_eq!(
            std(b"[1]"),
            Err(StandardizeError::MalformedPayload(
                "expected a JSON object, got an array".into()
            ))
        );
    }

    #[test]
    fn empty_address_is_none() {
        assert_eq!(tree_address(Some(&serde_json::json!({}))), None);
        assert_eq!(
            tree_address(Some(&serde_json::json!({"address2": "", "name": "x"}))),
            None
        );
        assert_eq!(tree_address(Some(&Value::Null)), None);
        let a = tree_address(Some(
            &serde_json::json!({"zip": "K2P 2L8", "province": "ON"}),
        ))
        .unwrap();
        assert_eq!(a.postal_code.as_deref(), Some("K2P 2L8"));
        assert_eq!(a.region.as_deref(), Some("ON"));
    }
}
