//! GraphQL Admin API nodes (`orders/graphql`, `customers/graphql`, `products/graphql`) →
//! the REST field names the rest of this mapping reads, so that one record gives one
//! standardized content whichever API delivered it (issue 11: "one record, one key, one
//! content").
//!
//! The node is the object as the connector's query returned it (shapes of the 2025-10
//! reference: shopify.dev/docs/api/admin-graphql/2025-10/objects/Order, …/Customer,
//! …/Product, …/ProductVariant, …/LineItem, …/MailingAddress, …/MoneyBag). The conversion
//! renames and reshapes, it never computes what REST would not have:
//!
//! - ids: `id` keeps the gid (`gid://shopify/Order/450789469`) as `admin_graphql_api_id`,
//!   whose digits are the remote id (the same digits as the REST `id`); nested ids too
//!   (`customer.id`, line items, variants, shipping lines, a line's `product.id` /
//!   `variant.id` → `product_id` / `variant_id` digits);
//! - camelCase → snake_case (`createdAt` → `created_at`, `firstName` → `first_name`, …);
//! - money: `…Set { shopMoney { amount } }` (a `MoneyBag`, amounts are `Decimal` strings
//!   like `"199.0"`) → the REST decimal field (`subtotalPriceSet` → `subtotal_price`,
//!   `originalUnitPriceSet` → a line's `price`, `originalPriceSet` → a shipping line's
//!   `price`, `amountSpent { amount }` → `total_spent`); the mapping formats amounts in
//!   the currency's minor units, so `"199.0"` and `"199.00"` give the same `"199.00"`;
//! - enums → REST words: `displayFinancialStatus` `PARTIALLY_PAID` → `financial_status`
//!   `partially_paid`; `displayFulfillmentStatus` `UNFULFILLED` → `fulfillment_status`
//!   `null`, `PARTIALLY_FULFILLED` → `partial`, `FULFILLED` → `fulfilled` (others lower
//!   case, which the status table maps to `unknown` as REST's `restocked`); customer
//!   `state` `ENABLED` → `enabled`; product `status` `ACTIVE` → `active`;
//!   `emailMarketingConsent.marketingState` `SUBSCRIBED` → `email_marketing_consent.state`
//!   `subscribed`; refund transactions `kind`/`status` `REFUND`/`SUCCESS` → lower case;
//! - `discountCodes` with amounts: REST `discount_codes[] { code, amount, type }` comes
//!   from `discountApplications` of `__typename` `DiscountCodeApplication`: `amount` is the
//!   sum of the `discountAllocations` (of line items and shipping lines) that point at the
//!   application's `index`, `type` `shipping` for `targetType: SHIPPING_LINE`, else
//!   `percentage` for a `PricingPercentageValue`, else `fixed_amount`;
//! - variants: `selectedOptions[n] { name, value }` → `option<n+1>` (the product's
//!   `options` carry the names, as in REST); connections (`lineItems`, `variants`,
//!   `shippingLines`, `discountApplications`, `transactions`) are read from `nodes` or
//!   `edges[].node`.
//!
//! A field the node does not have stays missing (a partial payload changes nothing); a
//! `null` stays `null`.

use super::Obj;
use serde_json::{json, Map, Value};

/// A connection's nodes (`nodes`, or `edges[].node`), or a plain list.
fn nodes(v: Option<&Value>) -> Vec<&Obj> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        Some(Value::Object(c)) => match (c.get("nodes"), c.get("edges")) {
            (Some(Value::Array(n)), _) => n.iter().filter_map(Value::as_object).collect(),
            (_, Some(Value::Array(e))) => e
                .iter()
                .filter_map(|e| e.get("node").and_then(Value::as_object))
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The digits of a gid of any type (`gid://shopify/Order/12` → `12`), as a JSON string.
fn gid_digits_any(v: Option<&Value>) -> Option<Value> {
    let s = v?.as_str()?;
    let rest = s.strip_prefix("gid://shopify/")?;
    let (_, tail) = rest.split_once('/')?;
    let d = tail.split(['?', '#']).next()?;
    (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).then(|| json!(d))
}

/// `…Set.shopMoney.amount` (a `MoneyBag`), or `amount` of a `MoneyV2`.
fn amount(v: Option<&Value>) -> Option<Value> {
    let v = v?;
    if v.is_null() {
        return Some(Value::Null);
    }
    v.get("shopMoney")
        .and_then(|m| m.get("amount"))
        .or_else(|| v.get("amount"))
        .cloned()
}

fn lower(v: Option<&Value>) -> Option<Value> {
    match v? {
        Value::String(s) => Some(json!(s.to_ascii_lowercase())),
        other => Some(other.clone()),
    }
}

/// Copies `from` (camelCase) to `to` (REST name) when present, transformed.
fn put(out: &mut Obj, to: &str, v: Option<Value>) {
    if let Some(v) = v {
        out.insert(to.to_string(), v);
    }
}

/// The node's `id` gid as REST `id` (digits) and `admin_graphql_api_id` (the gid).
fn ids(out: &mut Obj, node: &Obj) {
    if let Some(g) = node.get("id") {
        put(
            out,
            "id",
            gid_digits_any(Some(g)).or_else(|| Some(g.clone())),
        );
        if g.as_str().is_some_and(|s| s.starts_with("gid://")) {
            out.insert("admin_graphql_api_id".into(), g.clone());
        }
    }
}

fn address(v: Option<&Value>) -> Option<Value> {
    let v = v?;
    let Some(a) = v.as_object() else {
        return Some(v.clone());
    };
    let mut out = Map::new();
    for (from, to) in [
        ("firstName", "first_name"),
        ("lastName", "last_name"),
        ("company", "company"),
        ("address1", "address1"),
        ("address2", "address2"),
        ("city", "city"),
        ("province", "province"),
        ("provinceCode", "province_code"),
        ("zip", "zip"),
        ("country", "country"),
        ("countryCodeV2", "country_code"),
        ("phone", "phone"),
    ] {
        put(&mut out, to, a.get(from).cloned());
    }
    Some(Value::Object(out))
}

fn tax_lines(v: Option<&Value>) -> Option<Value> {
    v?;
    Some(Value::Array(
        nodes(v)
            .into_iter()
            .map(|t| {
                let mut o = Map::new();
                put(&mut o, "title", t.get("title").cloned());
                put(&mut o, "rate", t.get("rate").cloned());
                put(&mut o, "price", amount(t.get("priceSet")));
                Value::Object(o)
            })
            .collect(),
    ))
}

/// `discountAllocations` → REST `discount_allocations { amount, discount_application_index }`.
fn allocations(v: Option<&Value>) -> Option<Value> {
    v?;
    Some(Value::Array(
        nodes(v)
            .into_iter()
            .map(|a| {
                let mut o = Map::new();
                put(&mut o, "amount", amount(a.get("allocatedAmountSet")));
                put(
                    &mut o,
                    "discount_application_index",
                    a.get("discountApplication")
                        .and_then(|d| d.get("index"))
                        .cloned(),
                );
                Value::Object(o)
            })
            .collect(),
    ))
}

/// A GraphQL node of `model` in REST field names (see the module docs).
pub(super) fn to_rest(model: ingot_model::Model, node: &Obj) -> Obj {
    match model {
        ingot_model::Model::Order => order(node),
        ingot_model::Model::Customer => customer(node),
        ingot_model::Model::Product => product(node),
    }
}

fn common_head(out: &mut Obj, n: &Obj) {
    ids(out, n);
    put(out, "created_at", n.get("createdAt").cloned());
    put(out, "updated_at", n.get("updatedAt").cloned());
    put(out, "tags", n.get("tags").cloned());
    put(out, "note", n.get("note").cloned());
}

fn order(n: &Obj) -> Obj {
    let mut o = Map::new();
    common_head(&mut o, n);
    put(&mut o, "name", n.get("name").cloned());
    put(&mut o, "cancelled_at", n.get("cancelledAt").cloned());
    put(&mut o, "closed_at", n.get("closedAt").cloned());
    put(
        &mut o,
        "financial_status",
        lower(n.get("displayFinancialStatus")),
    );
    put(
        &mut o,
        "fulfillment_status",
        n.get("displayFulfillmentStatus").map(|v| match v.as_str() {
            Some("UNFULFILLED") => Value::Null,
            Some("PARTIALLY_FULFILLED") => json!("partial"),
            Some(s) => json!(s.to_ascii_lowercase()),
            None => v.clone(),
        }),
    );
    put(&mut o, "currency", n.get("currencyCode").cloned());
    put(&mut o, "email", n.get("email").cloned());
    put(&mut o, "phone", n.get("phone").cloned());
    put(
        &mut o,
        "customer",
        n.get("customer").map(|c| match c.as_object() {
            Some(c) => {
                let mut co = Map::new();
                ids(&mut co, c);
                Value::Object(co)
            }
            None => c.clone(),
        }),
    );
    put(&mut o, "billing_address", address(n.get("billingAddress")));
    put(
        &mut o,
        "shipping_address",
        address(n.get("shippingAddress")),
    );
    put(&mut o, "subtotal_price", amount(n.get("subtotalPriceSet")));
    put(
        &mut o,
        "total_discounts",
        amount(n.get("totalDiscountsSet")),
    );
    put(&mut o, "total_tax", amount(n.get("totalTaxSet")));
    put(&mut o, "total_price", amount(n.get("totalPriceSet")));
    if let Some(v) = n.get("totalShippingPriceSet") {
        o.insert(
            "total_shipping_price_set".into(),
            json!({"shop_money": {"amount": amount(Some(v)).unwrap_or(Value::Null)}}),
        );
    }
    put(&mut o, "tax_lines", tax_lines(n.get("taxLines")));

    let lines = nodes(n.get("lineItems"));
    let shipping = nodes(n.get("shippingLines"));
    if n.contains_key("lineItems") {
        o.insert(
            "line_items".into(),
            Value::Array(lines.iter().map(|li| line_item(li)).collect()),
        );
    }
    if n.contains_key("shippingLines") {
        let sl: Vec<Value> = shipping
            .iter()
            .map(|s| {
                let mut so = Map::new();
                ids(&mut so, s);
                put(&mut so, "title", s.get("title").cloned());
                put(&mut so, "code", s.get("code").cloned());
                put(&mut so, "price", amount(s.get("originalPriceSet")));
                put(
                    &mut so,
                    "discount_allocations",
                    allocations(s.get("discountAllocations")),
                );
                Value::Object(so)
            })
            .collect();
        o.insert("shipping_lines".into(), Value::Array(sl));
    }
    if n.contains_key("discountApplications") {
        o.insert(
            "discount_codes".into(),
            Value::Array(discount_codes(n, &lines, &shipping)),
        );
    }
    if let Some(r) = n.get("refunds") {
        let refunds: Vec<Value> = nodes(Some(r))
            .into_iter()
            .map(|r| {
                let tx: Vec<Value> = nodes(r.get("transactions"))
                    .into_iter()
                    .map(|t| {
                        let mut to = Map::new();
                        put(&mut to, "kind", lower(t.get("kind")));
                        put(&mut to, "status", lower(t.get("status")));
                        put(&mut to, "amount", amount(t.get("amountSet")));
                        Value::Object(to)
                    })
                    .collect();
                json!({ "transactions": tx })
            })
            .collect();
        o.insert("refunds".into(), Value::Array(refunds));
    }
    o
}

fn line_item(li: &Obj) -> Value {
    let mut o = Map::new();
    ids(&mut o, li);
    put(&mut o, "name", li.get("name").cloned());
    put(&mut o, "title", li.get("title").cloned());
    put(&mut o, "sku", li.get("sku").cloned());
    put(&mut o, "quantity", li.get("quantity").cloned());
    put(&mut o, "price", amount(li.get("originalUnitPriceSet")));
    put(&mut o, "total_discount", amount(li.get("totalDiscountSet")));
    put(
        &mut o,
        "discount_allocations",
        allocations(li.get("discountAllocations")),
    );
    put(&mut o, "tax_lines", tax_lines(li.get("taxLines")));
    for (from, to) in [("product", "product_id"), ("variant", "variant_id")] {
        put(
            &mut o,
            to,
            li.get(from)
                .map(|p| gid_digits_any(p.get("id")).unwrap_or(Value::Null)),
        );
    }
    Value::Object(o)
}

/// REST `discount_codes` from the code applications and the allocations pointing at them.
fn discount_codes(n: &Obj, lines: &[&Obj], shipping: &[&Obj]) -> Vec<Value> {
    let allocated = |index: &Value| -> Option<Value> {
        let mut total = rust_decimal::Decimal::ZERO;
        let mut any = false;
        for a in lines
            .iter()
            .chain(shipping.iter())
            .flat_map(|l| nodes(l.get("discountAllocations")))
        {
            if a.get("discountApplication").and_then(|d| d.get("index")) == Some(index) {
                let amt = amount(a.get("allocatedAmountSet"));
                let d = amt.as_ref().and_then(|v| match v {
                    Value::String(s) => s.trim().parse::<rust_decimal::Decimal>().ok(),
                    Value::Number(x) => x.to_string().parse().ok(),
                    _ => None,
                })?;
                total = total.checked_add(d)?;
                any = true;
            }
        }
        any.then(|| json!(total.normalize().to_string()))
    };
    nodes(n.get("discountApplications"))
        .into_iter()
        .filter(|d| d.get("__typename").and_then(Value::as_str) == Some("DiscountCodeApplication"))
        .map(|d| {
            let value = d.get("value");
            let kind = if d.get("targetType").and_then(Value::as_str) == Some("SHIPPING_LINE") {
                "shipping"
            } else if value
                .and_then(|v| v.get("__typename"))
                .and_then(Value::as_str)
                == Some("PricingPercentageValue")
                || value.and_then(|v| v.get("percentage")).is_some()
            {
                "percentage"
            } else {
                "fixed_amount"
            };
            let amount = d
                .get("index")
                .and_then(allocated)
                .or_else(|| value.and_then(|v| v.get("amount")).cloned())
                .unwrap_or(Value::Null);
            json!({ "code": d.get("code").cloned().unwrap_or(Value::Null), "amount": amount, "type": kind })
        })
        .collect()
}

fn customer(n: &Obj) -> Obj {
    let mut o = Map::new();
    common_head(&mut o, n);
    put(&mut o, "email", n.get("email").cloned());
    put(&mut o, "first_name", n.get("firstName").cloned());
    put(&mut o, "last_name", n.get("lastName").cloned());
    put(&mut o, "phone", n.get("phone").cloned());
    put(&mut o, "state", lower(n.get("state")));
    put(&mut o, "orders_count", n.get("numberOfOrders").cloned());
    if let Some(s) = n.get("amountSpent") {
        put(&mut o, "total_spent", amount(Some(s)));
        put(&mut o, "currency", s.get("currencyCode").cloned());
    }
    if let Some(c) = n.get("emailMarketingConsent") {
        let v = match c.get("marketingState") {
            Some(s) => json!({ "state": lower(Some(s)).unwrap_or(Value::Null) }),
            None => c.clone(),
        };
        o.insert("email_marketing_consent".into(), v);
    }
    put(&mut o, "default_address", address(n.get("defaultAddress")));
    o
}

fn product(n: &Obj) -> Obj {
    let mut o = Map::new();
    common_head(&mut o, n);
    put(&mut o, "title", n.get("title").cloned());
    put(&mut o, "body_html", n.get("descriptionHtml").cloned());
    put(&mut o, "vendor", n.get("vendor").cloned());
    put(&mut o, "product_type", n.get("productType").cloned());
    put(&mut o, "handle", n.get("handle").cloned());
    put(&mut o, "status", lower(n.get("status")));
    put(&mut o, "options", n.get("options").cloned());
    if n.contains_key("variants") {
        let vs: Vec<Value> = nodes(n.get("variants"))
            .into_iter()
            .map(|v| {
                let mut vo = Map::new();
                ids(&mut vo, v);
                for (from, to) in [
                    ("title", "title"),
                    ("sku", "sku"),
                    ("price", "price"),
                    ("compareAtPrice", "compare_at_price"),
                    ("barcode", "barcode"),
                    ("inventoryQuantity", "inventory_quantity"),
                    ("updatedAt", "updated_at"),
                    ("position", "position"),
                ] {
                    put(&mut vo, to, v.get(from).cloned());
                }
                for (i, so) in nodes(v.get("selectedOptions"))
                    .into_iter()
                    .take(3)
                    .enumerate()
                {
                    put(
                        &mut vo,
                        &format!("option{}", i + 1),
                        so.get("value").cloned(),
                    );
                }
                Value::Object(vo)
            })
            .collect();
        o.insert("variants".into(), Value::Array(vs));
    }
    o
}
