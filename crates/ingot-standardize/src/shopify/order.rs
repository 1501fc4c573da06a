//! Shopify order (REST Admin `Order` resource, `orders/*` webhooks) → [`Order`].

use super::{address, object_id, Obj};
use crate::{common, StandardizeError};
use ingot_model::{Discount, LineItem, Model, Order, RecordKey, ShippingLine, TaxLine};
use rust_decimal::Decimal;
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

/// Maps an order object. Amounts are formatted in the order's `currency` (the shop
/// currency; `presentment_currency` amounts are not used).
pub(super) fn order(o: &Obj, connection_id: &str) -> Result<Order, StandardizeError> {
    let currency = common::text(o.get("currency"));
    let cur = currency.as_deref();
    let money = |key: &str| common::money_field(o.get(key), key, cur);

    let customer_remote_id = o
        .get("customer")
        .and_then(Value::as_object)
        .and_then(|c| object_id(c, "Customer"));
    let customer_id = customer_remote_id
        .as_ref()
        .map(|rid| RecordKey::new(connection_id, Model::Customer, rid.as_str()).record_id());

    let line_items = array(o.get("line_items"))
        .map(|li| line_item(li, cur))
        .collect::<Result<Vec<_>, _>>()?;
    let discounts = array(o.get("discount_codes"))
        .map(|d| {
            Ok(Discount {
                code: common::text(d.get("code")),
                amount: common::money_field(d.get("amount"), "discount_codes[].amount", cur)?,
                kind: common::text(d.get("type")),
            })
        })
        .collect::<Result<Vec<_>, StandardizeError>>()?;
    let shipping_lines = array(o.get("shipping_lines"))
        .map(|s| {
            Ok(ShippingLine {
                remote_id: common::id(s.get("id")),
                title: common::text(s.get("title")),
                code: common::text(s.get("code")),
                price: common::money_field(s.get("price"), "shipping_lines[].price", cur)?,
            })
        })
        .collect::<Result<Vec<_>, StandardizeError>>()?;
    let tax_lines = array(o.get("tax_lines"))
        .map(|t| {
            Ok(TaxLine {
                title: common::text(t.get("title")),
                rate: common::decimal(t.get("rate"), "tax_lines[].rate")?
                    .map(|r| r.normalize().to_string()),
                amount: common::money_field(t.get("price"), "tax_lines[].price", cur)?,
            })
        })
        .collect::<Result<Vec<_>, StandardizeError>>()?;

    let shop_shipping = o
        .get("total_shipping_price_set")
        .and_then(|s| s.get("shop_money"))
        .and_then(|m| m.get("amount"));
    let total_shipping = match shop_shipping {
        Some(v) if !v.is_null() => {
            common::money_field(Some(v), "total_shipping_price_set.shop_money.amount", cur)?
        }
        _ => sum(o.get("shipping_lines"), "price", "shipping_lines[].price")?
            .map(|d| common::money(d, cur)),
    };

    Ok(Order {
        order_number: common::text(o.get("name")).or_else(|| common::text(o.get("order_number"))),
        status: order_status(o.get("cancelled_at"), o.get("closed_at")).to_string(),
        payment_status: payment_status(o.get("financial_status").and_then(Value::as_str))
            .to_string(),
        fulfillment_status: fulfillment_status(o.get("fulfillment_status")).to_string(),
        currency: currency.clone(),
        customer_remote_id,
        customer_id,
        email: common::text(o.get("email")).or_else(|| common::text(o.get("contact_email"))),
        phone: common::text(o.get("phone")),
        billing_address: address(o.get("billing_address")),
        shipping_address: address(o.get("shipping_address")),
        line_items,
        discounts,
        shipping_lines,
        tax_lines,
        subtotal_price: money("subtotal_price")?,
        total_discount: money("total_discounts")?,
        total_tax: money("total_tax")?,
        total_shipping,
        total_price: money("total_price")?,
        total_refunded: total_refunded(o)?.map(|d| common::money(d, cur)),
        tags: common::tags(o.get("tags")),
        note: common::text(o.get("note")),
        closed_at: common::time_string(o.get("closed_at"), "closed_at", false)?,
        cancelled_at: common::time_string(o.get("cancelled_at"), "cancelled_at", false)?,
    })
}

/// One `line_items[]` entry. `total_discount` is the sum of `discount_allocations[].amount`
/// when there are allocations (Shopify puts code and automatic discounts there and leaves
/// the legacy `total_discount` at `"0.00"`: see `rest_order_get_450789469.json`, where the
/// allocations add up to the order's `total_discounts`), else `total_discount`.
/// `total_tax` sums `tax_lines[].price`; `total` = `price × quantity − total_discount`.
fn line_item(li: &Obj, cur: Option<&str>) -> Result<LineItem, StandardizeError> {
    let quantity = common::int(li.get("quantity")).unwrap_or(0);
    let unit_price = common::decimal(li.get("price"), "line_items[].price")?;
    let allocated = match li.get("discount_allocations") {
        Some(Value::Array(a)) if !a.is_empty() => sum(
            li.get("discount_allocations"),
            "amount",
            "line_items[].discount_allocations[].amount",
        )?,
        _ => None,
    };
    let total_discount = match allocated {
        Some(d) => Some(d),
        None => common::decimal(li.get("total_discount"), "line_items[].total_discount")?,
    };
    let total_tax = sum(
        li.get("tax_lines"),
        "price",
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
        remote_id: object_id(li, "LineItem"),
        product_remote_id: common::id(li.get("product_id")),
        variant_remote_id: common::id(li.get("variant_id")),
        sku: common::text(li.get("sku")),
        name: common::text(li.get("name")).or_else(|| common::text(li.get("title"))),
        quantity,
        unit_price: m(unit_price),
        total_discount: m(total_discount),
        total_tax: m(total_tax),
        total: m(total),
    })
}

/// Sum of successful refund transactions: `refunds[].transactions[]` with
/// `kind == "refund"` and `status == "success"`. `None` when the order has no refunds.
fn total_refunded(o: &Obj) -> Result<Option<Decimal>, StandardizeError> {
    let refunds: Vec<&Obj> = array(o.get("refunds")).collect();
    if refunds.is_empty() {
        return Ok(None);
    }
    let mut total = Decimal::ZERO;
    for t in refunds
        .into_iter()
        .flat_map(|r| array(r.get("transactions")))
    {
        let is = |k: &str, want: &str| t.get(k).and_then(Value::as_str) == Some(want);
        if is("kind", "refund") && is("status", "success") {
            if let Some(a) = common::decimal(t.get("amount"), "refunds[].transactions[].amount")? {
                total = total
                    .checked_add(a)
                    .ok_or_else(|| overflow("refunds[].transactions[].amount"))?;
            }
        }
    }
    Ok(Some(total))
}

/// The objects of a JSON array (other entries and non-arrays are ignored).
fn array(v: Option<&Value>) -> impl Iterator<Item = &Obj> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// Sum of `key` over the objects of an array; `None` when `v` is not an array, zero for
/// an empty one.
fn sum(v: Option<&Value>, key: &str, field: &str) -> Result<Option<Decimal>, StandardizeError> {
    if !matches!(v, Some(Value::Array(_))) {
        return Ok(None);
    }
    let mut total = Decimal::ZERO;
    for item in array(v) {
        if let Some(d) = common::decimal(item.get(key), field)? {
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
        let li = line_item(li.as_object().unwrap(), Some("USD")).unwrap();
        assert_eq!(li.total.as_deref(), Some("0.25"));
        assert_eq!(li.total_tax.as_deref(), Some("0.03"));
        assert_eq!(li.total_discount.as_deref(), Some("0.05"));
        let li = json!({"price": "199.00", "quantity": 1, "total_discount": "0.00",
                        "discount_allocations": [{"amount": "3.34"}]});
        let li = line_item(li.as_object().unwrap(), Some("USD")).unwrap();
        assert_eq!(li.total_discount.as_deref(), Some("3.34"));
        assert_eq!(li.total.as_deref(), Some("195.66"));
        assert_eq!(li.total_tax, None);
        let li = json!({"price": "79228162514264337593543950335", "quantity": 2});
        assert!(line_item(li.as_object().unwrap(), Some("USD")).is_err());
    }

    #[test]
    fn refunds_count_only_successful_refund_transactions() {
        let o = json!({"refunds": [{"transactions": [
            {"kind": "refund", "status": "success", "amount": "209.00"},
            {"kind": "refund", "status": "failure", "amount": "5.00"},
            {"kind": "sale", "status": "success", "amount": "7.00"}]},
            {"transactions": [{"kind": "refund", "status": "success", "amount": 1.5}]}]});
        assert_eq!(
            total_refunded(o.as_object().unwrap()).unwrap(),
            Some(Decimal::new(21050, 2))
        );
        assert_eq!(
            total_refunded(json!({"refunds": []}).as_object().unwrap()).unwrap(),
            None
        );
        assert_eq!(
            total_refunded(json!({}).as_object().unwrap()).unwrap(),
            None
        );
    }
}
