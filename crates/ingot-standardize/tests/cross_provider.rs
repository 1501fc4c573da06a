//! The same logical order written as each provider's payload (WooCommerce, NetSuite,
//! Shopify) standardizes to the same common Order, in every field the providers can all
//! express; `comparable` / `comparable_shopify` blank the others, each with its reason.
//!
//! The order: customer 110 (jane@example.com), USD, two lines — 2 × MUG-1 at 10.00 with a
//! fixed 2.00 coupon `spring10` on that line, 1 × TEE-BLK-M at 15.00 — 10 % tax (3.30),
//! UPS Ground shipping 5.00, total 41.30, awaiting payment and fulfillment.

mod support;

use ingot_model::{Address, Order, RecordData};
use ingot_standardize::netsuite::NetSuiteMapping;
use ingot_standardize::shopify::ShopifyMapping;
use ingot_standardize::woocommerce::WooCommerceMapping;
use ingot_standardize::{Mapping, Outcome, Standardized};
use serde_json::{json, Value};

fn standardize(
    mapping: &dyn Mapping,
    provider: &str,
    topic: &str,
    payload: &Value,
) -> (String, Order) {
    let event = support::raw_event(provider, topic, serde_json::to_vec(payload).unwrap());
    match mapping.standardize(&event) {
        Ok(Outcome::Record(Standardized::Upsert {
            remote_updated_at,
            data: RecordData::Order(o),
            ..
        })) => (ingot_model::format_utc(&remote_updated_at), o),
        other => panic!("{provider}: expected an order upsert, got {other:?}"),
    }
}

/// WooCommerce REST v3 order (webhook `order.updated` body shape).
fn woocommerce_order(status: &str) -> Value {
    let address = |with_contact: bool| {
        let mut a = json!({
            "first_name": "Jane", "last_name": "Roe", "company": "", "address_1": "1 Main St", "address_2": "Apt 2",
            "city": "Springfield", "state": "IL", "postcode": "62701", "country": "US", "phone": "555-0100"
        });
        if with_contact {
            a["email"] = json!("jane@example.com");
        }
        a
    };
    let completed = status == "completed";
    json!({
        "id": 5001, "number": "5001", "status": status, "currency": "USD",
        "date_created_gmt": "2024-05-01T10:00:00", "date_modified_gmt": "2024-05-01T10:05:00",
        "date_paid_gmt": if completed { json!("2024-05-01T10:01:00") } else { Value::Null },
        "date_completed_gmt": Value::Null,
        "customer_id": 110, "customer_note": "leave at door",
        "billing": address(true), "shipping": address(false),
        "discount_total": "2.00", "discount_tax": "0.20", "shipping_total": "5.00", "shipping_tax": "0.00",
        "cart_tax": "3.30", "total_tax": "3.30", "total": "41.30",
        "line_items": [
            {"id": 1, "name": "Mug", "product_id": 301, "variation_id": 0, "sku": "MUG-1", "quantity": 2,
             "subtotal": "20.00", "subtotal_tax": "2.00", "total": "18.00", "total_tax": "1.80", "price": 9},
            {"id": 3, "name": "T-Shirt Black M", "product_id": 302, "variation_id": 0, "sku": "TEE-BLK-M", "quantity": 1,
             "subtotal": "15.00", "subtotal_tax": "1.50", "total": "15.00", "total_tax": "1.50", "price": 15}
        ],
        "coupon_lines": [{"id": 9, "code": "spring10", "discount": "2.00", "discount_tax": "0.20", "discount_type": "fixed_product"}],
        "shipping_lines": [{"id": 7, "method_title": "UPS Ground", "method_id": "flat_rate", "total": "5.00", "total_tax": "0.00"}],
        "tax_lines": [{"id": 8, "rate_code": "US-IL-TAX-1", "label": "Tax", "rate_percent": 10, "tax_total": "3.30", "shipping_tax_total": "0.00"}],
        "fee_lines": [],
        "refunds": []
    })
}

/// NetSuite `GET /record/v1/salesOrder/5001?expandSubResources=true`.
fn netsuite_order(order_status: &str, cc_approved: bool) -> Value {
    let address = || {
        json!({"links": [], "addr1": "1 Main St", "addr2": "Apt 2", "city": "Springfield", "state": "IL", "zip": "62701",
               "country": {"id": "US", "refName": "United States"}, "addrPhone": "555-0100", "addressee": "Jane Roe"})
    };
    json!({
        "links": [], "id": "5001", "tranId": "5001",
        "createdDate": "2024-05-01T10:00:00Z", "lastModifiedDate": "2024-05-01T10:05:00Z",
        "orderStatus": {"id": order_status, "refName": order_status}, "ccApproved": cc_approved,
        "currency": {"links": [], "id": "1", "refName": "US Dollar"},
        "entity": {"links": [], "id": "110", "refName": "Jane Roe"},
        "email": "jane@example.com", "memo": "leave at door",
        "billingAddress": address(), "shippingAddress": address(),
        "item": {"links": [], "count": 3, "hasMore": false, "offset": 0, "totalResults": 3, "items": [
            {"links": [], "line": 1, "item": {"id": "301", "refName": "MUG-1"}, "itemType": "InvtPart",
             "description": "Mug", "quantity": 2, "rate": 10.0, "amount": 20.0, "tax1Amt": 2.0},
            {"links": [], "line": 2, "item": {"id": "90", "refName": "spring10"}, "itemType": "Discount",
             "rate": -2.0, "amount": -2.0, "tax1Amt": -0.2},
            {"links": [], "line": 3, "item": {"id": "302", "refName": "TEE-BLK-M"}, "itemType": "InvtPart",
             "description": "T-Shirt Black M", "quantity": 1, "rate": 15.0, "amount": 15.0, "tax1Amt": 1.5}
        ]},
        "subtotal": 33.0, "discountTotal": 0.0,
        "shipMethod": {"links": [], "id": "7", "refName": "UPS Ground"}, "shippingCost": 5.0,
        "taxItem": {"links": [], "id": "-8", "refName": "Tax"}, "taxRate": 10.0, "taxTotal": 3.3,
        "total": 41.3
    })
}

/// Shopify REST/webhook order (`orders/updated` body shape, API 2024-04 field names).
fn shopify_order(billed: bool) -> Value {
    let address = || {
        json!({"first_name": "Jane", "last_name": "Roe", "company": null, "address1": "1 Main St", "address2": "Apt 2",
               "city": "Springfield", "province": "Illinois", "province_code": "IL", "zip": "62701",
               "country": "United States", "country_code": "US", "phone": "555-0100"})
    };
    json!({
        "id": 5001, "admin_graphql_api_id": "gid://shopify/Order/5001", "name": "#5001", "order_number": 5001,
        "created_at": "2024-05-01T06:00:00-04:00", "updated_at": "2024-05-01T06:05:00-04:00",
        "cancelled_at": null, "closed_at": if billed { json!("2024-05-01T06:05:00-04:00") } else { Value::Null },
        "financial_status": if billed { "paid" } else { "pending" },
        "fulfillment_status": if billed { json!("fulfilled") } else { Value::Null },
        "currency": "USD", "email": "jane@example.com", "phone": null, "note": "leave at door", "tags": "",
        "customer": {"id": 110, "admin_graphql_api_id": "gid://shopify/Customer/110"},
        "billing_address": address(), "shipping_address": address(),
        "line_items": [
            {"id": 1, "admin_graphql_api_id": "gid://shopify/LineItem/1", "product_id": 301, "variant_id": 401,
             "sku": "MUG-1", "name": "Mug", "title": "Mug", "quantity": 2, "price": "10.00", "total_discount": "0.00",
             "discount_allocations": [{"amount": "2.00", "discount_application_index": 0}],
             "tax_lines": [{"title": "Tax", "rate": 0.1, "price": "1.80"}]},
            {"id": 3, "admin_graphql_api_id": "gid://shopify/LineItem/3", "product_id": 302, "variant_id": 402,
             "sku": "TEE-BLK-M", "name": "T-Shirt Black M", "title": "T-Shirt Black M", "quantity": 1, "price": "15.00",
             "total_discount": "0.00", "discount_allocations": [],
             "tax_lines": [{"title": "Tax", "rate": 0.1, "price": "1.50"}]}
        ],
        "discount_codes": [{"code": "spring10", "amount": "2.00", "type": "fixed_amount"}],
        "shipping_lines": [{"id": 7, "title": "UPS Ground", "code": "UPS Ground", "price": "5.00"}],
        "tax_lines": [{"title": "Tax", "rate": 0.1, "price": "3.30"}],
        "subtotal_price": "33.00", "total_discounts": "2.00", "total_tax": "3.30", "total_price": "41.30",
        "total_shipping_price_set": {"shop_money": {"amount": "5.00", "currency_code": "USD"},
                                     "presentment_money": {"amount": "5.00", "currency_code": "USD"}},
        "refunds": []
    })
}

/// [`comparable`] plus what only Shopify expresses differently.
fn comparable_shopify(o: Order) -> Order {
    let mut o = comparable(o);
    // `name` carries the shop's prefix (`#5001`); WooCommerce `number` and NetSuite `tranId` do not.
    o.order_number = None;
    // Every Shopify product line has a variant; the WooCommerce/NetSuite lines are simple products.
    for l in &mut o.line_items {
        l.variant_remote_id = None;
    }
    o
}

/// Blanks the fields a provider cannot express, each with its reason.
fn comparable(mut o: Order) -> Order {
    // WooCommerce has first/last names on addresses; NetSuite has one `addressee`.
    // `country`: WooCommerce sends only the code, NetSuite the name ("United States").
    let strip = |a: Option<Address>| {
        a.map(|a| Address {
            first_name: None,
            last_name: None,
            company: None,
            country: None,
            // WooCommerce and NetSuite give the state code only; Shopify also the name.
            region: None,
            ..a
        })
    };
    o.billing_address = strip(o.billing_address);
    o.shipping_address = strip(o.shipping_address);
    // Order-level phone: WooCommerce billing.phone; a NetSuite sales order has none.
    o.phone = None;
    // Shipping line ids/codes are each system's own (`flat_rate` vs shipMethod id "7").
    for s in &mut o.shipping_lines {
        s.remote_id = None;
        s.code = None;
    }
    // closed_at: WooCommerce date_completed_gmt; NetSuite has no close time on the order.
    o.closed_at = None;
    o
}

#[test]
fn same_order_is_equal_across_providers() {
    let (woo_updated, woo) = standardize(
        &WooCommerceMapping,
        "woocommerce",
        "order.updated",
        &woocommerce_order("on-hold"),
    );
    let (ns_updated, ns) = standardize(
        &NetSuiteMapping,
        "netsuite",
        "salesOrder.rest",
        &netsuite_order("B", false),
    );
    assert_eq!(woo_updated, ns_updated);

    // The values themselves, not only their equality.
    assert_eq!(
        (
            woo.status.as_str(),
            woo.payment_status.as_str(),
            woo.fulfillment_status.as_str()
        ),
        ("open", "pending", "unfulfilled")
    );
    assert_eq!(woo.currency.as_deref(), Some("USD"));
    assert_eq!(woo.subtotal_price.as_deref(), Some("33.00"));
    assert_eq!(woo.total_discount.as_deref(), Some("2.00"));
    assert_eq!(woo.total_tax.as_deref(), Some("3.30"));
    assert_eq!(woo.total_shipping.as_deref(), Some("5.00"));
    assert_eq!(woo.total_price.as_deref(), Some("41.30"));
    assert_eq!(woo.line_items[0].unit_price.as_deref(), Some("10.00"));
    assert_eq!(woo.line_items[0].total.as_deref(), Some("18.00"));
    assert_eq!(woo.line_items[0].total_discount.as_deref(), Some("2.00"));
    assert_eq!(woo.line_items[0].total_tax.as_deref(), Some("1.80"));
    assert_eq!(woo.tax_lines[0].rate.as_deref(), Some("0.1"));
    assert_eq!(woo.customer_id, ns.customer_id);
    assert!(woo.customer_id.is_some());

    // Field by field first (readable failures), then the whole record.
    let (w, n) = (comparable(woo), comparable(ns));
    assert_eq!(w.line_items, n.line_items);
    assert_eq!(w.discounts, n.discounts);
    assert_eq!(w.tax_lines, n.tax_lines);
    assert_eq!(w.shipping_lines, n.shipping_lines);
    assert_eq!(w.billing_address, n.billing_address);
    assert_eq!(w.shipping_address, n.shipping_address);
    assert_eq!(w, n);

    // Shopify: its mapping was committed (be57ebd) while this test was being written.
    let (shop_updated, shop) = standardize(
        &ShopifyMapping,
        "shopify",
        "orders/updated",
        &shopify_order(false),
    );
    assert_eq!(shop_updated, woo_updated);
    assert_eq!(shop.order_number.as_deref(), Some("#5001"));
    assert_eq!(shop.line_items[0].variant_remote_id.as_deref(), Some("401"));
    let (s, w) = (comparable_shopify(shop), comparable_shopify(w));
    assert_eq!(s.line_items, w.line_items);
    assert_eq!(s.billing_address, w.billing_address);
    assert_eq!(s, w);
}

#[test]
fn billed_order_is_closed_paid_and_fulfilled_everywhere() {
    let (_, woo) = standardize(
        &WooCommerceMapping,
        "woocommerce",
        "order.updated",
        &woocommerce_order("completed"),
    );
    let (_, ns) = standardize(
        &NetSuiteMapping,
        "netsuite",
        "salesOrder.rest",
        &netsuite_order("G", true),
    );
    let s = |o: &Order| {
        (
            o.status.clone(),
            o.payment_status.clone(),
            o.fulfillment_status.clone(),
        )
    };
    assert_eq!(
        s(&woo),
        (
            "closed".to_string(),
            "paid".to_string(),
            "fulfilled".to_string()
        )
    );
    assert_eq!(s(&woo), s(&ns));
    let (_, shop) = standardize(
        &ShopifyMapping,
        "shopify",
        "orders/updated",
        &shopify_order(true),
    );
    assert_eq!(s(&woo), s(&shop));
    assert_eq!(comparable_shopify(woo.clone()), comparable_shopify(shop));
    assert_eq!(comparable(woo), comparable(ns));
}
