//! Shopify order (REST Admin `Order` resource, `orders/*` webhooks) → [`Order`].

use super::{address, id_of, ShopifyAddress};
use crate::common::{self, present, Items, Nested, Present};
use crate::StandardizeError;
use ingot_model::{Discount, LineItem, Model, Order, RecordKey, ShippingLine, TaxLine};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

/// Order `status` from the presence of `cancelled_at` / `closed_at`: a non-null
/// `cancelled_at` → `cancelled`, else a non-null `closed_at` → `closed`, else `open` when
/// either key is present (as `null`), and `unknown` when both keys are absent (a partial
/// payload, e.g. REST `fields=`).
pub fn order_status(cancelled_at: Option<&Value>, closed_at: Option<&Value>) -> &'static str {
    let set = |v: Option<&Value>| matches!(v, Some(Value::String(s)) if !s.trim().is_empty());
    if set(cancelled_at) {
        "cancelled"
    } else if set(closed_at) {
        "closed"
    } else if cancelled_at.is_some() || closed_at.is_some() {
        "open"
    } else {
        "unknown"
    }
}

/// `payment_status` from Shopify's `financial_status` (REST Order resource values:
/// pending, authorized, partially_paid, paid, partially_refunded, refunded, voided —
/// kept as is). `null`, a missing key and anything else (e.g. `expired`) → `unknown`.
pub fn payment_status(financial_status: Option<&str>) -> &'static str {
    match financial_status {
        Some("pending") => "pending",
        Some("authorized") => "authorized",
        Some("partially_paid") => "partially_paid",
        Some("paid") => "paid",
        Some("partially_refunded") => "partially_refunded",
        Some("refunded") => "refunded",
        Some("voided") => "voided",
        _ => "unknown",
    }
}

/// `fulfillment_status` from Shopify's order `fulfillment_status`: `null` (nothing
/// fulfilled; also the legacy word `unfulfilled`) → `unfulfilled`, `partial` →
/// `partially_fulfilled`, `fulfilled` → `fulfilled`; anything else (`restocked`, a
/// missing key in a partial payload) → `unknown`.
pub fn fulfillment_status(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::Null) => "unfulfilled",
        Some(Value::String(s)) => match s.as_str() {
            "unfulfilled" => "unfulfilled",
            "partial" => "partially_fulfilled",
            "fulfilled" => "fulfilled",
            _ => "unknown",
        },
        _ => "unknown",
    }
}

/// The members of a Shopify order (REST Admin `Order` resource, the `orders/*` webhook
/// body, or a GraphQL node in REST names) that the mapping reads; every other member is
/// skipped by the parse ([`common::parse_typed`]). Leaves keep `null` apart from absent
/// ([`Present`]), nested objects and arrays of another shape read as absent, as the
/// tree-based mappings read them. Field names are Shopify's
/// (shopify.dev/docs/api/admin-rest/latest/resources/order).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ShopifyOrder {
    #[serde(deserialize_with = "present")]
    pub(super) id: Present,
    #[serde(deserialize_with = "present")]
    pub(super) admin_graphql_api_id: Present,
    #[serde(deserialize_with = "present")]
    pub(super) updated_at: Present,
    #[serde(deserialize_with = "present")]
    pub(super) created_at: Present,
    #[serde(deserialize_with = "present")]
    currency: Present,
    #[serde(deserialize_with = "present")]
    name: Present,
    #[serde(deserialize_with = "present")]
    order_number: Present,
    #[serde(deserialize_with = "present")]
    cancelled_at: Present,
    #[serde(deserialize_with = "present")]
    closed_at: Present,
    #[serde(deserialize_with = "present")]
    financial_status: Present,
    #[serde(deserialize_with = "present")]
    fulfillment_status: Present,
    #[serde(deserialize_with = "present")]
    email: Present,
    #[serde(deserialize_with = "present")]
    contact_email: Present,
    #[serde(deserialize_with = "present")]
    phone: Present,
    #[serde(deserialize_with = "present")]
    subtotal_price: Present,
    #[serde(deserialize_with = "present")]
    total_discounts: Present,
    #[serde(deserialize_with = "present")]
    total_tax: Present,
    #[serde(deserialize_with = "present")]
    total_price: Present,
    #[serde(deserialize_with = "present")]
    tags: Present,
    #[serde(deserialize_with = "present")]
    note: Present,
    customer: Nested<IdRef>,
    billing_address: Nested<ShopifyAddress>,
    shipping_address: Nested<ShopifyAddress>,
    line_items: Items<ShopifyLineItem>,
    discount_codes: Items<DiscountCode>,
    shipping_lines: Items<ShopifyShippingLine>,
    tax_lines: Items<ShopifyTaxLine>,
    total_shipping_price_set: Nested<MoneyBag>,
    refunds: Items<Refund>,
}

/// A nested object's ids (the order's `customer`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IdRef {
    #[serde(deserialize_with = "present")]
    id: Present,
    #[serde(deserialize_with = "present")]
    admin_graphql_api_id: Present,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShopifyLineItem {
    #[serde(deserialize_with = "present")]
    id: Present,
    #[serde(deserialize_with = "present")]
    admin_graphql_api_id: Present,
    #[serde(deserialize_with = "present")]
    product_id: Present,
    #[serde(deserialize_with = "present")]
    variant_id: Present,
    #[serde(deserialize_with = "present")]
    sku: Present,
    #[serde(deserialize_with = "present")]
    name: Present,
    #[serde(deserialize_with = "present")]
    title: Present,
    #[serde(deserialize_with = "present")]
    quantity: Present,
    #[serde(deserialize_with = "present")]
    price: Present,
    #[serde(deserialize_with = "present")]
    total_discount: Present,
    discount_allocations: Items<Amount>,
    tax_lines: Items<Price>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DiscountCode {
    #[serde(deserialize_with = "present")]
    code: Present,
    #[serde(deserialize_with = "present")]
    amount: Present,
    #[serde(rename = "type", deserialize_with = "present")]
    kind: Present,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShopifyShippingLine {
    #[serde(deserialize_with = "present")]
    id: Present,
    #[serde(deserialize_with = "present")]
    title: Present,
    #[serde(deserialize_with = "present")]
    code: Present,
    #[serde(deserialize_with = "present")]
    price: Present,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShopifyTaxLine {
    #[serde(deserialize_with = "present")]
    title: Present,
    #[serde(deserialize_with = "present")]
    rate: Present,
    #[serde(deserialize_with = "present")]
    price: Present,
}

/// A `…_set` money bag: only `shop_money.amount` is read (amounts in the shop currency).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MoneyBag {
    shop_money: Nested<Amount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Amount {
    #[serde(deserialize_with = "present")]
    amount: Present,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Price {
    #[serde(deserialize_with = "present")]
    price: Present,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Refund {
    transactions: Items<Transaction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Transaction {
    #[serde(deserialize_with = "present")]
    kind: Present,
    #[serde(deserialize_with = "present")]
    status: Present,
    #[serde(deserialize_with = "present")]
    amount: Present,
}

/// Maps an order. Amounts are formatted in the order's `currency` (the shop currency;
/// `presentment_currency` amounts are not used).
pub(super) fn order(o: &ShopifyOrder, connection_id: &str) -> Result<Order, StandardizeError> {
    let currency = common::text(o.currency.as_ref());
    let cur = currency.as_deref();
    let money = |v: &Present, key: &str| common::money_field(v.as_ref(), key, cur);

    let customer_remote_id = o
        .customer
        .0
        .as_ref()
        .and_then(|c| id_of(c.admin_graphql_api_id.as_ref(), c.id.as_ref(), "Customer"));
    let customer_id = customer_remote_id
        .as_ref()
        .map(|rid| RecordKey::new(connection_id, Model::Customer, rid.as_str()).record_id());

    let line_items = o
        .line_items
        .objects()
        .map(|li| line_item(li, cur))
        .collect::<Result<Vec<_>, _>>()?;
    let discounts = o
        .discount_codes
        .objects()
        .map(|d| {
            Ok(Discount {
                code: common::text(d.code.as_ref()),
                amount: common::money_field(d.amount.as_ref(), "discount_codes[].amount", cur)?,
                kind: common::text(d.kind.as_ref()),
            })
        })
        .collect::<Result<Vec<_>, StandardizeError>>()?;
    let shipping_lines = o
        .shipping_lines
        .objects()
        .map(|s| {
            Ok(ShippingLine {
                remote_id: common::id(s.id.as_ref()),
                title: common::text(s.title.as_ref()),
                code: common::text(s.code.as_ref()),
                price: common::money_field(s.price.as_ref(), "shipping_lines[].price", cur)?,
            })
        })
        .collect::<Result<Vec<_>, StandardizeError>>()?;
    let tax_lines = o
        .tax_lines
        .objects()
        .map(|t| {
            Ok(TaxLine {
                title: common::text(t.title.as_ref()),
                rate: common::decimal(t.rate.as_ref(), "tax_lines[].rate")?
                    .map(|r| r.normalize().to_string()),
                amount: common::money_field(t.price.as_ref(), "tax_lines[].price", cur)?,
            })
        })
        .collect::<Result<Vec<_>, StandardizeError>>()?;

    let shop_shipping = o
        .total_shipping_price_set
        .0
        .as_ref()
        .and_then(|s| s.shop_money.0.as_ref())
        .and_then(|m| m.amount.as_ref());
    let total_shipping = match shop_shipping {
        Some(v) if !v.is_null() => {
            common::money_field(Some(v), "total_shipping_price_set.shop_money.amount", cur)?
        }
        _ => sum(&o.shipping_lines, |s| &s.price, "shipping_lines[].price")?
            .map(|d| common::money(d, cur)),
    };

    Ok(Order {
        order_number: common::text(o.name.as_ref())
            .or_else(|| common::text(o.order_number.as_ref())),
        status: order_status(o.cancelled_at.as_ref(), o.closed_at.as_ref()).to_string(),
        payment_status: payment_status(o.financial_status.as_ref().and_then(Value::as_str))
            .to_string(),
        fulfillment_status: fulfillment_status(o.fulfillment_status.as_ref()).to_string(),
        currency: currency.clone(),
        customer_remote_id,
        customer_id,
        email: common::text(o.email.as_ref()).or_else(|| common::text(o.contact_email.as_ref())),
        phone: common::text(o.phone.as_ref()),
        billing_address: address(o.billing_address.0.as_ref()),
        shipping_address: address(o.shipping_address.0.as_ref()),
        line_items,
        discounts,
        shipping_lines,
        tax_lines,
        subtotal_price: money(&o.subtotal_price, "subtotal_price")?,
        total_discount: money(&o.total_discounts, "total_discounts")?,
        total_tax: money(&o.total_tax, "total_tax")?,
        total_shipping,
        total_price: money(&o.total_price, "total_price")?,
        total_refunded: total_refunded(&o.refunds)?.map(|d| common::money(d, cur)),
        tags: common::tags(o.tags.as_ref()),
        note: common::text(o.note.as_ref()),
        closed_at: common::time_string(o.closed_at.as_ref(), "closed_at", false)?,
        cancelled_at: common::time_string(o.cancelled_at.as_ref(), "cancelled_at", false)?,
    })
}

/// One `line_items[]` entry. `total_discount` is the sum of `discount_allocations[].amount`
/// when there are allocations (Shopify puts code and automatic discounts there and leaves
/// the legacy `total_discount` at `"0.00"`: see `rest_order_get_450789469.json`, where the
/// allocations add up to the order's `total_discounts`), else `total_discount`.
/// `total_tax` sums `tax_lines[].price`; `total` = `price × quantity − total_discount`.
fn line_item(li: &ShopifyLineItem, cur: Option<&str>) -> Result<LineItem, StandardizeError> {
    let quantity = common::int(li.quantity.as_ref()).unwrap_or(0);
    let unit_price = common::decimal(li.price.as_ref(), "line_items[].price")?;
    let allocated = if li.discount_allocations.is_non_empty_array() {
        sum(
            &li.discount_allocations,
            |a| &a.amount,
            "line_items[].discount_allocations[].amount",
        )?
    } else {
        None
    };
    let total_discount = match allocated {
        Some(d) => Some(d),
        None => common::decimal(li.total_discount.as_ref(), "line_items[].total_discount")?,
    };
    let total_tax = sum(
        &li.tax_lines,
        |t| &t.price,
        "line_items[].tax_lines[].price",
    )?;
    let total = match unit_price {
        Some(p) => Some(
            p.checked_mul(Decimal::from(quantity))
                .and_then(|g| g.checked_sub(total_discount.unwrap_or(Decimal::ZERO)))
                .ok_or_else(|| overflow("line_items[].price"))?,
        ),
        None => None,
    };
    let m = |d: Option<Decimal>| d.map(|d| common::money(d, cur));
    Ok(LineItem {
        remote_id: id_of(li.admin_graphql_api_id.as_ref(), li.id.as_ref(), "LineItem"),
        product_remote_id: common::id(li.product_id.as_ref()),
        variant_remote_id: common::id(li.variant_id.as_ref()),
        sku: common::text(li.sku.as_ref()),
        name: common::text(li.name.as_ref()).or_else(|| common::text(li.title.as_ref())),
        quantity,
        unit_price: m(unit_price),
        total_discount: m(total_discount),
        total_tax: m(total_tax),
        total: m(total),
    })
}

/// Sum of successful refund transactions: `refunds[].transactions[]` with
/// `kind == "refund"` and `status == "success"`. `None` when the order has no refunds.
fn total_refunded(refunds: &Items<Refund>) -> Result<Option<Decimal>, StandardizeError> {
    if refunds.objects().next().is_none() {
        return Ok(None);
    }
    let mut total = Decimal::ZERO;
    for t in refunds.objects().flat_map(|r| r.transactions.objects()) {
        let is = |v: &Present, want: &str| v.as_ref().and_then(Value::as_str) == Some(want);
        if is(&t.kind, "refund") && is(&t.status, "success") {
            if let Some(a) = common::decimal(t.amount.as_ref(), "refunds[].transactions[].amount")?
            {
                total = total
                    .checked_add(a)
                    .ok_or_else(|| overflow("refunds[].transactions[].amount"))?;
            }
        }
    }
    Ok(Some(total))
}

/// Sum of one member over the objects of an array; `None` when the member is not an
/// array, zero for an empty one.
fn sum<T>(
    items: &Items<T>,
    member: impl Fn(&T) -> &Present,
    field: &str,
) -> Result<Option<Decimal>, StandardizeError> {
    if !items.is_array() {
        return Ok(None);
    }
    let mut total = Decimal::ZERO;
    for item in items.objects() {
        if let Some(d) = common::decimal(member(item).as_ref(), field)? {
            total = total.checked_add(d).ok_or_else(|| overflow(field))?;
        }
    }
    Ok(Some(total))
}

fn overflow(field: &str) -> StandardizeError {
    StandardizeError::InvalidField {
        field: field.to_string(),
        reason: "amount out of range".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
        common::from_object(v.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn order_status_table() {
        let t = json!("2021-12-31T19:00:00-05:00");
        let null = Value::Null;
        assert_eq!(order_status(Some(&t), Some(&t)), "cancelled");
        assert_eq!(order_status(Some(&t), Some(&null)), "cancelled");
        assert_eq!(order_status(Some(&null), Some(&t)), "closed");
        assert_eq!(order_status(None, Some(&t)), "closed");
        assert_eq!(order_status(Some(&null), Some(&null)), "open");
        assert_eq!(order_status(Some(&json!("")), None), "open");
        assert_eq!(order_status(None, None), "unknown");
    }

    #[test]
    fn payment_status_table() {
        for s in [
            "pending",
            "authorized",
            "partially_paid",
            "paid",
            "partially_refunded",
            "refunded",
            "voided",
        ] {
            assert_eq!(payment_status(Some(s)), s);
        }
        assert_eq!(payment_status(Some("expired")), "unknown");
        assert_eq!(payment_status(Some("PAID")), "unknown");
        assert_eq!(payment_status(None), "unknown");
    }

    #[test]
    fn fulfillment_status_table() {
        assert_eq!(fulfillment_status(Some(&Value::Null)), "unfulfilled");
        assert_eq!(
            fulfillment_status(Some(&json!("unfulfilled"))),
            "unfulfilled"
        );
        assert_eq!(
            fulfillment_status(Some(&json!("partial"))),
            "partially_fulfilled"
        );
        assert_eq!(fulfillment_status(Some(&json!("fulfilled"))), "fulfilled");
        assert_eq!(fulfillment_status(Some(&json!("restocked"))), "unknown");
        assert_eq!(fulfillment_status(Some(&json!(1))), "unknown");
        assert_eq!(fulfillment_status(None), "unknown");
    }

    #[test]
    fn line_totals_are_exact_decimals() {
        let li = json!({"id": 1, "price": "0.10", "quantity": 3, "total_discount": "0.05",
                        "tax_lines": [{"price": "0.01"}, {"price": 0.02}]});
        let li = line_item(&typed(li), Some("USD")).unwrap();
        assert_eq!(li.total.as_deref(), Some("0.25"));
        assert_eq!(li.total_tax.as_deref(), Some("0.03"));
        assert_eq!(li.total_discount.as_deref(), Some("0.05"));
        let li = json!({"price": "199.00", "quantity": 1, "total_discount": "0.00",
                        "discount_allocations": [{"amount": "3.34"}]});
        let li = line_item(&typed(li), Some("USD")).unwrap();
        assert_eq!(li.total_discount.as_deref(), Some("3.34"));
        assert_eq!(li.total.as_deref(), Some("195.66"));
        assert_eq!(li.total_tax, None);
        let li = json!({"price": "79228162514264337593543950335", "quantity": 2});
        assert!(line_item(&typed(li), Some("USD")).is_err());
    }

    #[test]
    fn refunds_count_only_successful_refund_transactions() {
        let o = json!({"refunds": [{"transactions": [
            {"kind": "refund", "status": "success", "amount": "209.00"},
            {"kind": "refund", "status": "failure", "amount": "5.00"},
            {"kind": "sale", "status": "success", "amount": "7.00"}]},
            {"transactions": [{"kind": "refund", "status": "success", "amount": 1.5}]}]});
        assert_eq!(
            total_refunded(&typed::<ShopifyOrder>(o).refunds).unwrap(),
            Some(Decimal::new(21050, 2))
        );
        assert_eq!(
            total_refunded(&typed::<ShopifyOrder>(json!({"refunds": []})).refunds).unwrap(),
            None
        );
        assert_eq!(
            total_refunded(&typed::<ShopifyOrder>(json!({})).refunds).unwrap(),
            None
        );
    }
}
