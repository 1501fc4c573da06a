//! REST-shaped Shopify records rendered as GraphQL Admin API nodes (2025-10 shapes): the
//! one conversion the simulator's GraphQL endpoint serves its REST-shaped data through.
//!
//! Shapes (shopify.dev/docs/api/admin-graphql/2025-10/objects/Order, …/Customer,
//! …/Product, …/ProductVariant, …/LineItem, …/MailingAddress, …/MoneyBag):
//! ids are `gid://shopify/<Type>/<n>` strings; fields camelCase; times `DateTime` in UTC
//! (`2024-04-02T13:59:11Z`); money `MoneyBag { shopMoney { amount currencyCode } }` with
//! `Decimal` amounts as Shopify prints them (`"199.0"`, `"3.34"`: no trailing zeros past
//! the first decimal); enums upper case (`PAID`, `PARTIALLY_FULFILLED`, `ENABLED`,
//! `ACTIVE`); tags a list of strings; a product variant's `option1..3` become
//! `selectedOptions { name value }`; `numberOfOrders` is an `UnsignedInt64` (a string);
//! connections (`lineItems`, `variants`, `shippingLines`, `discountApplications`,
//! `transactions`) are JSON arrays here, which the simulator's projection pages.
//! Each object carries `__typename`. A field the REST record lacks is `null`.

use super::Resource;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

fn gid(ty: &str, id: Option<&Value>) -> Value {
    match id {
        Some(Value::Number(n)) => json!(format!("gid://shopify/{ty}/{n}")),
        Some(Value::String(s)) if !s.is_empty() => json!(format!("gid://shopify/{ty}/{s}")),
        _ => Value::Null,
    }
}

fn utc(v: Option<&Value>) -> Value {
    v.and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            json!(t
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true))
        })
        .unwrap_or(Value::Null)
}

/// A decimal as Shopify's GraphQL `Decimal` prints it: `"199.00"` → `"199.0"`,
/// `"3.30"` → `"3.3"`, `"12"` → `"12.0"`.
pub fn decimal_out(v: Option<&Value>) -> Value {
    let s = match v {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Value::Null,
    };
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let frac = frac.trim_end_matches('0');
    let frac = if frac.is_empty() { "0" } else { frac };
    json!(format!("{int}.{frac}"))
}

fn bag(amount: Option<&Value>, currency: &Value) -> Value {
    match decimal_out(amount) {
        Value::Null => Value::Null,
        a => {
            json!({"__typename": "MoneyBag", "shopMoney": {"__typename": "MoneyV2", "amount": a, "currencyCode": currency}})
        }
    }
}

fn upper(v: Option<&Value>) -> Value {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| json!(s.to_ascii_uppercase()))
        .unwrap_or(Value::Null)
}

fn text(v: Option<&Value>) -> Value {
    v.cloned().unwrap_or(Value::Null)
}

fn tags(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => json!(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()),
        Some(Value::Array(a)) => json!(a),
        _ => json!([]),
    }
}

fn objects(v: Option<&Value>) -> impl Iterator<Item = &Map<String, Value>> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn address(v: Option<&Value>) -> Value {
    let Some(a) = v.and_then(Value::as_object) else {
        return Value::Null;
    };
    let t = |k: &str| text(a.get(k));
    json!({
        "__typename": "MailingAddress",
        "firstName": t("first_name"),
        "lastName": t("last_name"),
        "company": t("company"),
        "address1": t("address1"),
        "address2": t("address2"),
        "city": t("city"),
        "province": t("province"),
        "provinceCode": t("province_code"),
        "zip": t("zip"),
        "country": t("country"),
        "countryCodeV2": t("country_code"),
        "phone": t("phone"),
    })
}

fn tax_lines(v: Option<&Value>, cur: &Value) -> Value {
    Value::Array(
        objects(v)
            .map(|t| {
                json!({"__typename": "TaxLine", "title": text(t.get("title")), "rate": text(t.get("rate")),
                       "priceSet": bag(t.get("price"), cur)})
            })
            .collect(),
    )
}

fn allocations(v: Option<&Value>, cur: &Value) -> Value {
    Value::Array(
        objects(v)
            .map(|a| {
                json!({"__typename": "DiscountAllocation",
                       "allocatedAmountSet": bag(a.get("amount"), cur),
                       "discountApplication": {"index": text(a.get("discount_application_index"))}})
            })
            .collect(),
    )
}

/// The GraphQL node of a REST-shaped record of `res` (see the module docs).
pub fn to_graphql(res: Resource, rest: &Value) -> Value {
    let empty = Map::new();
    let o = rest.as_object().unwrap_or(&empty);
    match res {
        Resource::Orders => order(o),
        Resource::Customers => customer(o),
        Resource::Products => product(o),
    }
}

fn order(o: &Map<String, Value>) -> Value {
    let cur = text(o.get("currency"));
    let g = |k: &str| o.get(k);
    let fulfillment = match g("fulfillment_status") {
        None | Some(Value::Null) => json!("UNFULFILLED"),
        Some(Value::String(s)) if s == "partial" => json!("PARTIALLY_FULFILLED"),
        Some(v) => upper(Some(v)),
    };
    let shipping_total = g("total_shipping_price_set")
        .and_then(|s| s.get("shop_money"))
        .and_then(|m| m.get("amount"))
        .cloned();
    let lines: Vec<Value> = objects(g("line_items"))
        .map(|li| {
            json!({
                "__typename": "LineItem",
                "id": gid("LineItem", li.get("id")),
                "name": text(li.get("name")),
                "title": text(li.get("title")),
                "sku": text(li.get("sku")),
                "quantity": text(li.get("quantity")),
                "originalUnitPriceSet": bag(li.get("price"), &cur),
                "totalDiscountSet": bag(li.get("total_discount"), &cur),
                "discountAllocations": allocations(li.get("discount_allocations"), &cur),
                "taxLines": tax_lines(li.get("tax_lines"), &cur),
                "product": match gid("Product", li.get("product_id")) { Value::Null => Value::Null, id => json!({"__typename": "Product", "id": id}) },
                "variant": match gid("ProductVariant", li.get("variant_id")) { Value::Null => Value::Null, id => json!({"__typename": "ProductVariant", "id": id}) },
            })
        })
        .collect();
    let discounts: Vec<Value> = objects(g("discount_applications"))
        .enumerate()
        .map(|(i, d)| {
            let typename = match d.get("type").and_then(Value::as_str) {
                Some("discount_code") => "DiscountCodeApplication",
                Some("manual") => "ManualDiscountApplication",
                Some("script") => "ScriptDiscountApplication",
                _ => "AutomaticDiscountApplication",
            };
            let value = if d.get("value_type").and_then(Value::as_str) == Some("percentage") {
                json!({"__typename": "PricingPercentageValue",
                       "percentage": d.get("value").and_then(|v| v.as_str().and_then(|s| s.parse::<f64>().ok()).or(v.as_f64()))})
            } else {
                json!({"__typename": "MoneyV2", "amount": decimal_out(d.get("value")), "currencyCode": cur})
            };
            json!({
                "__typename": typename,
                "index": i,
                "targetType": upper(d.get("target_type")),
                "allocationMethod": upper(d.get("allocation_method")),
                "value": value,
                "code": text(d.get("code")),
            })
        })
        .collect();
    let shipping: Vec<Value> = objects(g("shipping_lines"))
        .map(|s| {
            json!({
                "__typename": "ShippingLine",
                "id": gid("ShippingLine", s.get("id")),
                "title": text(s.get("title")),
                "code": text(s.get("code")),
                "originalPriceSet": bag(s.get("price"), &cur),
                "discountAllocations": allocations(s.get("discount_allocations"), &cur),
            })
        })
        .collect();
    let refunds: Vec<Value> = objects(g("refunds"))
        .map(|r| {
            let tx: Vec<Value> = objects(r.get("transactions"))
                .map(|t| {
                    json!({"__typename": "OrderTransaction", "kind": upper(t.get("kind")), "status": upper(t.get("status")),
                           "amountSet": bag(t.get("amount"), &cur)})
                })
                .collect();
            json!({"__typename": "Refund", "id": gid("Refund", r.get("id")), "transactions": tx})
        })
        .collect();
    json!({
        "__typename": "Order",
        "id": gid("Order", g("id")),
        "name": text(g("name")),
        "createdAt": utc(g("created_at")),
        "updatedAt": utc(g("updated_at")),
        "cancelledAt": utc(g("cancelled_at")),
        "closedAt": utc(g("closed_at")),
        "displayFinancialStatus": upper(g("financial_status")),
        "displayFulfillmentStatus": fulfillment,
        "currencyCode": cur,
        "email": match g("email") { Some(Value::String(s)) if !s.is_empty() => json!(s), _ => text(g("contact_email")) },
        "phone": text(g("phone")),
        "note": text(g("note")),
        "tags": tags(g("tags")),
        "customer": match g("customer").and_then(|c| c.get("id")) { Some(id) if !id.is_null() => json!({"__typename": "Customer", "id": gid("Customer", Some(id))}), _ => Value::Null },
        "billingAddress": address(g("billing_address")),
        "shippingAddress": address(g("shipping_address")),
        "subtotalPriceSet": bag(g("subtotal_price"), &cur),
        "totalDiscountsSet": bag(g("total_discounts"), &cur),
        "totalTaxSet": bag(g("total_tax"), &cur),
        "totalShippingPriceSet": bag(shipping_total.as_ref(), &cur),
        "totalPriceSet": bag(g("total_price"), &cur),
        "taxLines": tax_lines(g("tax_lines"), &cur),
        "discountApplications": discounts,
        "shippingLines": shipping,
        "refunds": refunds,
        "lineItems": lines,
    })
}

fn customer(c: &Map<String, Value>) -> Value {
    let g = |k: &str| c.get(k);
    let consent = g("email_marketing_consent")
        .and_then(|m| m.get("state"))
        .map(|s| json!({"__typename": "CustomerEmailMarketingConsentState", "marketingState": upper(Some(s))}))
        .unwrap_or(Value::Null);
    json!({
        "__typename": "Customer",
        "id": gid("Customer", g("id")),
        "createdAt": utc(g("created_at")),
        "updatedAt": utc(g("updated_at")),
        "email": text(g("email")),
        "firstName": text(g("first_name")),
        "lastName": text(g("last_name")),
        "phone": text(g("phone")),
        "state": upper(g("state")),
        "note": text(g("note")),
        "tags": tags(g("tags")),
        "numberOfOrders": g("orders_count").filter(|v| !v.is_null()).map(|v| json!(v.to_string().trim_matches('"'))).unwrap_or(json!("0")),
        "amountSpent": match decimal_out(g("total_spent")) { Value::Null => Value::Null, a => json!({"__typename": "MoneyV2", "amount": a, "currencyCode": text(g("currency"))}) },
        "emailMarketingConsent": consent,
        "defaultAddress": address(g("default_address")),
    })
}

fn product(p: &Map<String, Value>) -> Value {
    let g = |k: &str| p.get(k);
    let options: Vec<&Map<String, Value>> = objects(g("options")).collect();
    let option_name = |n: usize| -> String {
        options
            .iter()
            .find(|o| o.get("position").and_then(Value::as_u64) == Some(n as u64))
            .or_else(|| options.get(n - 1))
            .and_then(|o| o.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| format!("Option{n}"))
    };
    let variants: Vec<Value> = objects(g("variants"))
        .map(|v| {
            let selected: Vec<Value> = (1..=3)
                .filter_map(|n| {
                    let val = v.get(format!("option{n}").as_str())?;
                    let s = match val {
                        Value::String(s) if !s.is_empty() => s.clone(),
                        Value::Number(x) => x.to_string(),
                        _ => return None,
                    };
                    Some(
                        json!({"__typename": "SelectedOption", "name": option_name(n), "value": s}),
                    )
                })
                .collect();
            json!({
                "__typename": "ProductVariant",
                "id": gid("ProductVariant", v.get("id")),
                "title": text(v.get("title")),
                "sku": text(v.get("sku")),
                "price": decimal_out(v.get("price")),
                "compareAtPrice": decimal_out(v.get("compare_at_price")),
                "barcode": text(v.get("barcode")),
                "inventoryQuantity": text(v.get("inventory_quantity")),
                "position": text(v.get("position")),
                "updatedAt": utc(v.get("updated_at")),
                "selectedOptions": selected,
            })
        })
        .collect();
    let opts: Vec<Value> = options
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({"__typename": "ProductOption", "name": text(o.get("name")),
                   "position": o.get("position").cloned().unwrap_or(json!(i + 1)),
                   "values": o.get("values").cloned().unwrap_or(json!([]))})
        })
        .collect();
    json!({
        "__typename": "Product",
        "id": gid("Product", g("id")),
        "title": text(g("title")),
        "descriptionHtml": text(g("body_html")),
        "vendor": text(g("vendor")),
        "productType": text(g("product_type")),
        "handle": text(g("handle")),
        "status": upper(g("status")),
        "tags": tags(g("tags")),
        "createdAt": utc(g("created_at")),
        "updatedAt": utc(g("updated_at")),
        "options": opts,
        "variants": variants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_print_like_shopify() {
        assert_eq!(decimal_out(Some(&json!("199.00"))), json!("199.0"));
        assert_eq!(decimal_out(Some(&json!("3.30"))), json!("3.3"));
        assert_eq!(decimal_out(Some(&json!("3.34"))), json!("3.34"));
        assert_eq!(decimal_out(Some(&json!("12"))), json!("12.0"));
        assert_eq!(decimal_out(Some(&json!(5))), json!("5.0"));
        assert_eq!(decimal_out(Some(&Value::Null)), Value::Null);
    }

    #[test]
    fn ids_become_gids_without_floats() {
        let n = to_graphql(
            Resource::Products,
            &json!({"id": 820982911946154508u64, "updated_at": "2024-04-02T08:59:11-05:00"}),
        );
        assert_eq!(n["id"], json!("gid://shopify/Product/820982911946154508"));
        assert_eq!(n["updatedAt"], json!("2024-04-02T13:59:11Z"));
    }
}
