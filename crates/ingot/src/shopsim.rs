//! A simulated Shopify shop for `ingot demo`, benchmarks and tests: realistic webhook
//! bodies (the shapes of Shopify's 2026-04 docs samples: 18-digit ids, money as strings
//! with `*_set` twins, `-05:00` offsets) and headers, signed like Shopify signs them
//! (base64 HMAC-SHA256 of the exact body with the app secret, `X-Shopify-Hmac-Sha256`).
//! Source of the shapes: shopify.dev webhook samples, see ../shared/fixtures/MANIFEST.md.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// One webhook delivery: topic, headers and the exact body bytes.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// base64(HMAC-SHA256(secret, body)).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Builds a signed delivery of `body` for `topic`. `event_id` is `X-Shopify-Event-Id`
/// (equal ids mark duplicate deliveries).
pub fn delivery(
    shop_domain: &str,
    secret: &str,
    topic: &str,
    body: &Value,
    event_id: &str,
    triggered_at: &str,
) -> Delivery {
    let body = serde_json::to_vec(body).expect("json serializes");
    Delivery {
        topic: topic.to_string(),
        headers: vec![
            ("X-Shopify-Topic".into(), topic.into()),
            ("X-Shopify-Hmac-Sha256".into(), sign(secret, &body)),
            ("X-Shopify-Shop-Domain".into(), shop_domain.into()),
            ("X-Shopify-API-Version".into(), "2026-04".into()),
            (
                "X-Shopify-Webhook-Id".into(),
                uuid::Uuid::new_v4().to_string(),
            ),
            ("X-Shopify-Event-Id".into(), event_id.into()),
            ("X-Shopify-Triggered-At".into(), triggered_at.into()),
            ("Content-Type".into(), "application/json".into()),
        ],
        body,
    }
}

fn money_set(amount: &str) -> Value {
    json!({"shop_money": {"amount": amount, "currency_code": "USD"}, "presentment_money": {"amount": amount, "currency_code": "USD"}})
}

fn address(
    first: &str,
    last: &str,
    street: &str,
    city: &str,
    province: &str,
    code: &str,
    zip: &str,
) -> Value {
    json!({
        "first_name": first, "last_name": last, "name": format!("{first} {last}"),
        "address1": street, "address2": null, "city": city, "province": province,
        "province_code": code, "zip": zip, "country": "United States", "country_code": "US",
        "phone": "555-555-0100", "company": null, "latitude": null, "longitude": null
    })
}

/// A customer as in `customers/create`.
pub fn customer(id: u64, first: &str, last: &str, email: &str, updated_at: &str) -> Value {
    json!({
        "id": id,
        "email": email,
        "created_at": "2026-11-01T09:00:00-05:00",
        "updated_at": updated_at,
        "first_name": first,
        "last_name": last,
        "state": "enabled",
        "note": null,
        "verified_email": true,
        "multipass_identifier": null,
        "tax_exempt": false,
        "phone": null,
        "currency": "USD",
        "tax_exemptions": [],
        "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": null},
        "admin_graphql_api_id": format!("gid://shopify/Customer/{id}"),
        "default_address": {
            "id": id % 100_000, "customer_id": id, "default": true,
            "first_name": first, "last_name": last, "company": null,
            "address1": "151 Example Street", "address2": "Suite 10", "city": "Ottawa",
            "province": "Ontario", "country": "Canada", "zip": "K2P 1L4", "phone": "555-555-0199",
            "name": format!("{first} {last}"), "province_code": "ON", "country_code": "CA", "country_name": "Canada"
        }
    })
}

/// A product with two variants as in `products/create`.
pub fn product(id: u64, title: &str, price: &str, updated_at: &str) -> Value {
    let v = |n: u64, size: &str, qty: i64| {
        json!({
            "id": id * 10 + n, "product_id": id, "title": size, "price": price,
            "sku": format!("SKU-{id}-{size}"), "position": n, "inventory_policy": "deny",
            "compare_at_price": null, "option1": size, "option2": null, "option3": null,
            "created_at": "2026-11-01T09:00:00-05:00", "updated_at": updated_at,
            "taxable": true, "barcode": format!("0{id}{n}"), "inventory_quantity": qty,
            "inventory_item_id": 49_148_385_000_000 + (id % 1_000_000) * 10 + n, "old_inventory_quantity": qty,
            "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", id * 10 + n)
        })
    };
    json!({
        "id": id,
        "title": title,
        "body_html": format!("<p>{title}, made to last.</p>"),
        "vendor": "Example Outfitters",
        "product_type": "Apparel",
        "created_at": "2026-11-01T09:00:00-05:00",
        "handle": title.to_lowercase().replace(' ', "-"),
        "updated_at": updated_at,
        "published_at": "2026-11-01T09:00:00-05:00",
        "status": "active",
        "tags": "demo, winter",
        "admin_graphql_api_id": format!("gid://shopify/Product/{id}"),
        "variants": [v(1, "Small", 12), v(2, "Large", 3)],
        "options": [{"id": id + 7, "product_id": id, "name": "Size", "position": 1, "values": ["Small", "Large"]}],
        "images": [],
        "image": null
    })
}

/// An order as in `orders/create`: `lines` are (product id, variant id, title, unit price, quantity).
#[allow(clippy::too_many_arguments)]
pub fn order(
    id: u64,
    number: u64,
    customer: Option<&Value>,
    lines: &[(u64, u64, &str, &str, i64)],
    shipping: &str,
    financial_status: &str,
    updated_at: &str,
) -> Value {
    let dec = |s: &str| rust_decimal_lite(s);
    let mut subtotal = 0i64;
    let line_items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (pid, vid, title, price, qty))| {
            subtotal += dec(price) * qty;
            json!({
                "id": 487_817_672_276_298_000 + (id % 100_000) * 10 + i as u64 + 1,
                "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", 487_817_672_276_298_000 + (id % 100_000) * 10 + i as u64 + 1),
                "name": title, "title": title, "price": price, "price_set": money_set(price),
                "quantity": qty, "current_quantity": qty, "fulfillable_quantity": qty,
                "product_id": pid, "variant_id": vid, "sku": format!("SKU-{pid}"),
                "total_discount": "0.00", "total_discount_set": money_set("0.00"),
                "taxable": true, "gift_card": false, "requires_shipping": true,
                "fulfillment_status": null, "vendor": "Example Outfitters", "properties": [],
                "tax_lines": [], "duties": [], "discount_allocations": []
            })
        })
        .collect();
    let cents = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let ship = dec(shipping);
    let total = subtotal + ship;
    json!({
        "id": id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "name": format!("#{number}"),
        "order_number": number,
        "number": number - 1000,
        "email": customer.and_then(|c| c.get("email")).cloned().unwrap_or(Value::Null),
        "contact_email": customer.and_then(|c| c.get("email")).cloned().unwrap_or(Value::Null),
        "created_at": "2026-11-20T10:00:00-05:00",
        "updated_at": updated_at,
        "processed_at": "2026-11-20T10:00:00-05:00",
        "cancelled_at": null,
        "closed_at": null,
        "currency": "USD",
        "presentment_currency": "USD",
        "financial_status": financial_status,
        "fulfillment_status": null,
        "tags": "demo",
        "note": null,
        "test": false,
        "subtotal_price": cents(subtotal), "subtotal_price_set": money_set(&cents(subtotal)),
        "total_discounts": "0.00", "total_discounts_set": money_set("0.00"),
        "total_line_items_price": cents(subtotal),
        "total_tax": "0.00", "total_tax_set": money_set("0.00"),
        "total_shipping_price_set": money_set(&cents(ship)),
        "total_price": cents(total), "total_price_set": money_set(&cents(total)),
        "taxes_included": false,
        "discount_codes": [],
        "tax_lines": [],
        "line_items": line_items,
        "shipping_lines": [{"id": 271_878_346_596_884_000 + id % 100_000, "title": "Standard", "code": "STANDARD", "price": cents(ship), "price_set": money_set(&cents(ship)), "source": "shopify", "tax_lines": [], "discount_allocations": []}],
        "billing_address": address("Ada", "Lovelace", "12 Example Road", "Louisville", "Kentucky", "KY", "40202"),
        "shipping_address": address("Ada", "Lovelace", "12 Example Road", "Louisville", "Kentucky", "KY", "40202"),
        "customer": customer.cloned().unwrap_or(Value::Null),
        "refunds": [],
        "fulfillments": []
    })
}

/// Parses a two-decimal amount into cents (demo data only; never used on 3PA input).
fn rust_decimal_lite(s: &str) -> i64 {
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    whole.parse::<i64>().unwrap_or(0) * 100 + format!("{frac:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

/// The demo's story: what the simulated shop sends, in order.
pub struct Story {
    pub deliveries: Vec<(String, Delivery)>,
    pub updated_order_id: u64,
    pub stale_order_id: u64,
    pub deleted_order_id: u64,
}

/// Creates, updates, a duplicate delivery, an out-of-order (older) update and a delete.
pub fn story(shop_domain: &str, secret: &str) -> Story {
    let d = |topic: &str, body: &Value, event: &str, at: &str| {
        delivery(shop_domain, secret, topic, body, event, at)
    };
    let ada = customer(
        7_408_123_456_789_001,
        "Ada",
        "Lovelace",
        "ada@example.com",
        "2026-11-01T09:00:00-05:00",
    );
    let grace = customer(
        7_408_123_456_789_002,
        "Grace",
        "Hopper",
        "grace@example.com",
        "2026-11-02T09:00:00-05:00",
    );
    let parka = product(
        8_812_345_678_901_001,
        "Alpine Parka",
        "249.00",
        "2026-11-03T09:00:00-05:00",
    );
    let beanie = product(
        8_812_345_678_901_002,
        "Merino Beanie",
        "29.50",
        "2026-11-03T09:05:00-05:00",
    );
    let o1 = 820_982_911_946_154_508u64;
    let o2 = 820_982_911_946_154_509u64;
    let o3 = 820_982_911_946_154_510u64;
    let lines1 = [
        (
            8_812_345_678_901_001,
            88_123_456_789_010_011,
            "Alpine Parka - Small",
            "249.00",
            1,
        ),
        (
            8_812_345_678_901_002,
            88_123_456_789_010_021,
            "Merino Beanie - Small",
            "29.50",
            2,
        ),
    ];
    let lines2 = [(
        8_812_345_678_901_002,
        88_123_456_789_010_022,
        "Merino Beanie - Large",
        "29.50",
        3,
    )];
    let order1 = order(
        o1,
        1001,
        Some(&ada),
        &lines1,
        "10.00",
        "pending",
        "2026-11-20T10:00:00-05:00",
    );
    let order1_paid = order(
        o1,
        1001,
        Some(&ada),
        &lines1,
        "10.00",
        "paid",
        "2026-11-20T10:30:00-05:00",
    );
    let order2 = order(
        o2,
        1002,
        Some(&grace),
        &lines2,
        "5.00",
        "paid",
        "2026-11-21T12:00:00-05:00",
    );
    let order2_stale = order(
        o2,
        1002,
        Some(&grace),
        &lines2,
        "5.00",
        "pending",
        "2026-11-21T11:00:00-05:00",
    );
    let order3 = order(
        o3,
        1003,
        None,
        &lines2,
        "5.00",
        "paid",
        "2026-11-22T08:00:00-05:00",
    );
    let dup = d(
        "orders/updated",
        &order1_paid,
        "evt-order1-paid",
        "2026-11-20T15:30:00.123456789Z",
    );
    let deliveries = vec![
        (
            "customer Ada created".into(),
            d("customers/create", &ada, "evt-c1", "2026-11-01T14:00:00Z"),
        ),
        (
            "customer Grace created".into(),
            d("customers/create", &grace, "evt-c2", "2026-11-02T14:00:00Z"),
        ),
        (
            "product Alpine Parka created".into(),
            d("products/create", &parka, "evt-p1", "2026-11-03T14:00:00Z"),
        ),
        (
            "product Merino Beanie created".into(),
            d("products/create", &beanie, "evt-p2", "2026-11-03T14:05:00Z"),
        ),
        (
            "order #1001 created (pending)".into(),
            d("orders/create", &order1, "evt-o1", "2026-11-20T15:00:00Z"),
        ),
        (
            "order #1002 created (paid, 12:00)".into(),
            d("orders/create", &order2, "evt-o2", "2026-11-21T17:00:00Z"),
        ),
        (
            "order #1003 created (guest)".into(),
            d("orders/create", &order3, "evt-o3", "2026-11-22T13:00:00Z"),
        ),
        ("order #1001 updated (paid)".into(), dup.clone()),
        ("order #1001 update delivered again (duplicate)".into(), dup),
        (
            "order #1002 stale update arrives late (pending, 11:00)".into(),
            d(
                "orders/updated",
                &order2_stale,
                "evt-o2-stale",
                "2026-11-21T16:00:00Z",
            ),
        ),
        (
            "order #1003 deleted".into(),
            d(
                "orders/delete",
                &json!({"id": o3}),
                "evt-o3-del",
                "2026-11-23T09:00:00Z",
            ),
        ),
    ];
    Story {
        deliveries,
        updated_order_id: o1,
        stale_order_id: o2,
        deleted_order_id: o3,
    }
}

/// POSTs a delivery to `<base>/webhooks/shopify/<connection>`; returns the status code.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    connection_id: &str,
    d: &Delivery,
) -> reqwest::Result<u16> {
    let mut req = client
        .post(format!("{base}/webhooks/shopify/{connection_id}"))
        .body(d.body.clone());
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    Ok(req.send().await?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_signed_over_the_exact_body() {
        let s = story("demo.myshopify.com", "test-secret-not-real");
        assert_eq!(s.deliveries.len(), 11);
        for (_, d) in &s.deliveries {
            let sig = &d
                .headers
                .iter()
                .find(|(k, _)| k == "X-Shopify-Hmac-Sha256")
                .unwrap()
                .1;
            assert!(ingot_ingest::verify_hmac_base64(
                sig,
                &d.body,
                &["test-secret-not-real".into()]
            ));
        }
        let o: Value = serde_json::from_slice(&s.deliveries[4].1.body).unwrap();
        assert_eq!(o["total_price"], "318.00");
        assert_eq!(o["id"].as_u64(), Some(820_982_911_946_154_508));
    }
}
