//! Shopify mapping against the shared fixtures (`../shared/fixtures/shopify`, see its
//! MANIFEST.md): one reviewed golden file per fixture under `tests/golden/shopify/`,
//! explicit assertions of values read off the fixtures, delete times from the webhook
//! headers, and property tests that no input makes the mapping panic.

mod support;

use ingot_model::{format_utc, Model, RawEvent, RecordData, RecordKey};
use ingot_standardize::shopify::ShopifyMapping;
use ingot_standardize::{Mapping, Outcome, StandardizeError, Standardized};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;

// ---------------------------------------------------------------- helpers

/// The standardized output as JSON, the shape of the golden files.
fn out_json(result: &Result<Outcome, StandardizeError>) -> Value {
    match result {
        Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            remote_created_at,
            remote_updated_at,
            data,
        })) => json!({
            "kind": "upsert",
            "model": data.model().as_str(),
            "remote_id": remote_id,
            "remote_created_at": remote_created_at.as_ref().map(format_utc),
            "remote_updated_at": format_utc(remote_updated_at),
            "data": data.to_json(),
        }),
        Ok(Outcome::Record(Standardized::Delete {
            model,
            remote_id,
            deleted_at,
        })) => json!({
            "kind": "delete",
            "model": model.as_str(),
            "remote_id": remote_id,
            "deleted_at": format_utc(deleted_at),
        }),
        Ok(Outcome::Skip(reason)) => json!({"kind": "skip", "reason": reason}),
        Err(e) => json!({"kind": "error", "error": e.to_string()}),
    }
}

/// A header's value from a `*.headers.txt` file (names are case-insensitive, Q-S13).
fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The raw event ingest would write for `shopify/webhook_<name>.json`: the body bytes as
/// they are, topic, API version and triggered-at from the matching `.headers.txt`.
fn webhook_event(dir: &Path, name: &str) -> RawEvent {
    let payload = support::read_fixture(dir, &format!("shopify/{name}.json"));
    let headers = String::from_utf8(support::read_fixture(
        dir,
        &format!("shopify/{name}.headers.txt"),
    ))
    .unwrap();
    let topic = header(&headers, "X-Shopify-Topic").expect("topic header");
    let mut event = support::raw_event("shopify", &topic, payload);
    event.api_version = header(&headers, "X-Shopify-API-Version");
    event.triggered_at = header(&headers, "X-Shopify-Triggered-At");
    event
}

/// The objects of a REST fixture: the value under `key` (`order` for a GET, `orders`
/// for a list), each as its own payload with topic `<resource>/rest`, as the sync
/// engine feeds them.
fn rest_events(dir: &Path, file: &str, key: &str, topic: &str) -> Vec<RawEvent> {
    let body: Value =
        serde_json::from_slice(&support::read_fixture(dir, &format!("shopify/{file}.json")))
            .unwrap();
    let objects = match &body[key] {
        Value::Array(items) => items.clone(),
        obj @ Value::Object(_) => vec![obj.clone()],
        other => panic!("{file}: {key} is {other}"),
    };
    assert!(!objects.is_empty(), "{file}: no objects under {key}");
    objects
        .iter()
        .map(|o| {
            let mut e = support::raw_event("shopify", topic, serde_json::to_vec(o).unwrap());
            e.source = "poll".into();
            e
        })
        .collect()
}

fn run(event: &RawEvent) -> Result<Outcome, StandardizeError> {
    ShopifyMapping.standardize(event)
}

fn upsert(event: &RawEvent) -> (String, Option<String>, String, RecordData) {
    match run(event) {
        Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            remote_created_at,
            remote_updated_at,
            data,
        })) => (
            remote_id,
            remote_created_at.as_ref().map(format_utc),
            format_utc(&remote_updated_at),
            data,
        ),
        other => panic!("expected an upsert, got {other:?}"),
    }
}

fn order_of(data: RecordData) -> ingot_model::Order {
    match data {
        RecordData::Order(o) => o,
        other => panic!("expected an order, got {other:?}"),
    }
}

fn customer_of(data: RecordData) -> ingot_model::Customer {
    match data {
        RecordData::Customer(c) => c,
        other => panic!("expected a customer, got {other:?}"),
    }
}

fn product_of(data: RecordData) -> ingot_model::Product {
    match data {
        RecordData::Product(p) => p,
        other => panic!("expected a product, got {other:?}"),
    }
}

// ---------------------------------------------------------------- golden files

const WEBHOOKS: [&str; 9] = [
    "webhook_orders_create",
    "webhook_orders_updated",
    "webhook_orders_delete",
    "webhook_customers_create",
    "webhook_customers_update",
    "webhook_customers_delete",
    "webhook_products_create",
    "webhook_products_update",
    "webhook_products_delete",
];

/// (fixture, key holding the object(s), topic)
const RESTS: [(&str, &str, &str); 7] = [
    ("rest_order_get_450789469", "order", "orders/rest"),
    ("rest_orders_list_updated_at_min", "orders", "orders/rest"),
    ("rest_orders_list_fields_subset", "orders", "orders/rest"),
    ("rest_customer_get_207119551", "customer", "customers/rest"),
    (
        "rest_customers_list_updated_at_min",
        "customers",
        "customers/rest",
    ),
    ("rest_product_get_632910392", "product", "products/rest"),
    ("rest_products_list", "products", "products/rest"),
];

#[test]
fn golden_webhooks() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for name in WEBHOOKS {
        let event = webhook_event(&dir, name);
        support::assert_golden(&format!("shopify/{name}"), &out_json(&run(&event)));
    }
}

#[test]
fn golden_rest() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for (file, key, topic) in RESTS {
        let outputs: Vec<Value> = rest_events(&dir, file, key, topic)
            .iter()
            .map(|e| out_json(&run(e)))
            .collect();
        // A GET is one object; a list page is an array of outputs, one per element.
        let golden = if key.ends_with('s') {
            Value::Array(outputs)
        } else {
            outputs[0].clone()
        };
        support::assert_golden(&format!("shopify/{file}"), &golden);
    }
}

// ---------------------------------------------------------------- explicit values: orders

#[test]
fn orders_create_webhook_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let event = webhook_event(&dir, "webhook_orders_create");
    assert_eq!(event.topic, "orders/create");
    let (remote_id, created, updated, data) = upsert(&event);
    // 18 digits > 2^53, kept exactly (Q-S1).
    assert_eq!(remote_id, "820982911946154508");
    // "2021-12-31T19:00:00-05:00" in UTC.
    assert_eq!(updated, "2022-01-01T00:00:00Z");
    assert_eq!(created.as_deref(), Some("2022-01-01T00:00:00Z"));
    let o = order_of(data);
    assert_eq!(o.order_number.as_deref(), Some("#9999"));
    assert_eq!(o.status, "cancelled");
    assert_eq!(o.cancelled_at.as_deref(), Some("2022-01-01T00:00:00Z"));
    assert_eq!(o.closed_at, None);
    assert_eq!(o.payment_status, "voided");
    assert_eq!(o.fulfillment_status, "unfulfilled");
    assert_eq!(o.currency.as_deref(), Some("USD"));
    assert_eq!(o.total_price.as_deref(), Some("404.95"));
    assert_eq!(o.subtotal_price.as_deref(), Some("404.95"));
    assert_eq!(o.total_discount.as_deref(), Some("20.00"));
    assert_eq!(o.total_tax.as_deref(), Some("0.00"));
    assert_eq!(o.total_shipping.as_deref(), Some("10.00"));
    assert_eq!(o.total_refunded, None);
    assert_eq!(o.email.as_deref(), Some("jon@example.com"));
    assert_eq!(o.phone, None);
    assert_eq!(o.tags, vec!["tag1", "tag2"]);
    assert_eq!(o.note, None);
    assert_eq!(o.customer_remote_id.as_deref(), Some("115310627314723954"));
    assert_eq!(
        o.customer_id,
        Some(RecordKey::new("conn-1", Model::Customer, "115310627314723954").record_id())
    );
    let bill = o.billing_address.as_ref().unwrap();
    assert_eq!(bill.line1.as_deref(), Some("123 Shipping Street"));
    assert_eq!(bill.line2, None);
    assert_eq!(bill.region.as_deref(), Some("Kentucky"));
    assert_eq!(bill.region_code.as_deref(), Some("KY"));
    assert_eq!(bill.postal_code.as_deref(), Some("40003"));
    assert_eq!(bill.country_code.as_deref(), Some("US"));
    assert_eq!(bill.phone.as_deref(), Some("555-555-SHIP"));
    assert_eq!(
        o.shipping_address.as_ref().unwrap().company.as_deref(),
        Some("Shipping Company")
    );
    assert_eq!(o.line_items.len(), 5);
    let first = &o.line_items[0];
    assert_eq!(first.remote_id.as_deref(), Some("487817672276298554"));
    assert_eq!(
        first.product_remote_id.as_deref(),
        Some("788032119674292922")
    );
    assert_eq!(first.variant_remote_id, None);
    assert_eq!(first.sku.as_deref(), Some("SKU2006-001"));
    assert_eq!(first.name.as_deref(), Some("Aviator sunglasses"));
    assert_eq!(first.quantity, 1);
    assert_eq!(first.unit_price.as_deref(), Some("89.99"));
    assert_eq!(first.total.as_deref(), Some("89.99"));
    assert_eq!(first.total_tax.as_deref(), Some("0.00"));
    // A bundle component with `product_id: null`.
    assert_eq!(o.line_items[1].product_remote_id, None);
    assert_eq!(o.line_items[1].unit_price.as_deref(), Some("19.99"));
    assert_eq!(
        o.line_items[4].remote_id.as_deref(),
        Some("315789986012684393")
    );
    assert_eq!(o.discounts, vec![]);
    assert_eq!(o.shipping_lines.len(), 1);
    assert_eq!(
        o.shipping_lines[0].remote_id.as_deref(),
        Some("271878346596884015")
    );
    assert_eq!(
        o.shipping_lines[0].title.as_deref(),
        Some("Generic Shipping")
    );
    assert_eq!(o.shipping_lines[0].code, None);
    assert_eq!(o.shipping_lines[0].price.as_deref(), Some("10.00"));
}

#[test]
fn orders_updated_webhook_has_the_create_body() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let create = run(&webhook_event(&dir, "webhook_orders_create")).unwrap();
    let updated = webhook_event(&dir, "webhook_orders_updated");
    assert_eq!(updated.topic, "orders/updated");
    assert_eq!(run(&updated).unwrap(), create);
}

#[test]
fn rest_order_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let events = rest_events(&dir, "rest_order_get_450789469", "order", "orders/rest");
    let (remote_id, created, updated, data) = upsert(&events[0]);
    assert_eq!(remote_id, "450789469");
    assert_eq!(created.as_deref(), Some("2008-01-10T16:00:00Z"));
    assert_eq!(updated, "2008-01-10T16:00:00Z");
    let o = order_of(data);
    assert_eq!(o.order_number.as_deref(), Some("#1001"));
    assert_eq!(o.status, "open");
    assert_eq!(o.payment_status, "partially_refunded");
    assert_eq!(o.fulfillment_status, "unfulfilled");
    assert_eq!(o.total_price.as_deref(), Some("598.94"));
    assert_eq!(o.subtotal_price.as_deref(), Some("597.00"));
    assert_eq!(o.total_discount.as_deref(), Some("10.00"));
    assert_eq!(o.total_tax.as_deref(), Some("11.94"));
    assert_eq!(o.total_shipping.as_deref(), Some("0.00"));
    // One refund transaction: kind "refund", status "success", amount "209.00".
    assert_eq!(o.total_refunded.as_deref(), Some("209.00"));
    assert_eq!(o.phone.as_deref(), Some("+555555581234"));
    assert_eq!(o.tags, Vec::<String>::new());
    assert_eq!(o.customer_remote_id.as_deref(), Some("207119551"));
    assert_eq!(o.discounts.len(), 1);
    assert_eq!(o.discounts[0].code.as_deref(), Some("TENOFF"));
    assert_eq!(o.discounts[0].amount.as_deref(), Some("10.00"));
    assert_eq!(o.discounts[0].kind.as_deref(), Some("fixed_amount"));
    assert_eq!(o.tax_lines.len(), 1);
    assert_eq!(o.tax_lines[0].title.as_deref(), Some("State Tax"));
    assert_eq!(o.tax_lines[0].rate.as_deref(), Some("0.06"));
    assert_eq!(o.tax_lines[0].amount.as_deref(), Some("11.94"));
    assert_eq!(o.shipping_lines[0].code.as_deref(), Some("Free Shipping"));
    assert_eq!(o.shipping_address.as_ref().unwrap().line2, None); // "address2": ""
    assert_eq!(o.line_items.len(), 3);
    let green = &o.line_items[0];
    assert_eq!(green.remote_id.as_deref(), Some("466157049"));
    assert_eq!(green.variant_remote_id.as_deref(), Some("39072856"));
    assert_eq!(green.name.as_deref(), Some("IPod Nano - 8gb - green"));
    assert_eq!(green.unit_price.as_deref(), Some("199.00"));
    // discount_allocations 3.34 (total_discount says "0.00"); 199.00 - 3.34.
    assert_eq!(green.total_discount.as_deref(), Some("3.34"));
    assert_eq!(green.total.as_deref(), Some("195.66"));
    assert_eq!(green.total_tax.as_deref(), Some("3.98"));
    assert_eq!(o.line_items[1].total.as_deref(), Some("195.67"));
    // The line discounts add up to the order's total_discounts.
    let sum: rust_decimal::Decimal = o
        .line_items
        .iter()
        .map(|l| {
            l.total_discount
                .as_deref()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(sum.to_string(), "10.00");

    // The list page holds the same order.
    let listed = rest_events(
        &dir,
        "rest_orders_list_updated_at_min",
        "orders",
        "orders/rest",
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(run(&listed[0]).unwrap(), run(&events[0]).unwrap());
}

#[test]
fn rest_orders_fields_subset_lacks_updated_at() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let events = rest_events(
        &dir,
        "rest_orders_list_fields_subset",
        "orders",
        "orders/rest",
    );
    assert_eq!(events.len(), 1);
    // `fields=created_at,id,name,total-price`: no updated_at, so no version to apply.
    assert_eq!(
        run(&events[0]),
        Err(StandardizeError::MissingField("updated_at"))
    );
}

// ---------------------------------------------------------------- explicit values: customers

#[test]
fn customers_webhook_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for name in ["webhook_customers_create", "webhook_customers_update"] {
        let (remote_id, created, updated, data) = upsert(&webhook_event(&dir, name));
        assert_eq!(remote_id, "706405506930370084");
        assert_eq!(created.as_deref(), Some("2022-01-01T00:00:00Z"));
        assert_eq!(updated, "2022-01-01T00:00:00Z");
        let c = customer_of(data);
        assert_eq!(c.email.as_deref(), Some("bob@example.com"));
        assert_eq!(c.first_name.as_deref(), Some("Bob"));
        assert_eq!(c.last_name.as_deref(), Some("Biller"));
        assert_eq!(c.status, "disabled");
        assert_eq!(c.note.as_deref(), Some("This customer loves ice cream"));
        assert_eq!(c.currency.as_deref(), Some("USD"));
        // 2026-04 samples carry no marketing consent, orders_count or total_spent (Q-S10).
        assert_eq!(c.accepts_marketing, None);
        assert_eq!(c.orders_count, None);
        assert_eq!(c.total_spent, None);
        assert_eq!(c.company, None);
        let a = c.default_address.unwrap();
        assert_eq!(a.postal_code.as_deref(), Some("K2P 2L8"));
        assert_eq!(a.line1.as_deref(), Some("151 Example Street"));
        assert_eq!(a.region.as_deref(), Some("ON"));
        assert_eq!(a.country.as_deref(), Some("CA"));
        assert_eq!(a.phone.as_deref(), Some("555-555-5555"));
    }
}

#[test]
fn rest_customer_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let events = rest_events(
        &dir,
        "rest_customer_get_207119551",
        "customer",
        "customers/rest",
    );
    let (remote_id, _, updated, data) = upsert(&events[0]);
    assert_eq!(remote_id, "207119551");
    assert_eq!(updated, "2024-04-02T14:20:49Z");
    let c = customer_of(data);
    assert_eq!(c.orders_count, Some(1));
    assert_eq!(c.total_spent.as_deref(), Some("199.65"));
    assert_eq!(c.tags, vec!["Léon", "Noël"]);
    assert_eq!(c.accepts_marketing, Some(false)); // email_marketing_consent "not_subscribed"
    assert_eq!(c.phone.as_deref(), Some("+15555550707"));
    let a = c.default_address.unwrap();
    assert_eq!(a.postal_code.as_deref(), Some("40202"));
    assert_eq!(a.region_code.as_deref(), Some("KY"));
    assert_eq!(a.first_name, None);
    assert_eq!(a.line2, None);

    let listed = rest_events(
        &dir,
        "rest_customers_list_updated_at_min",
        "customers",
        "customers/rest",
    );
    assert_eq!(listed.len(), 1);
    let (remote_id, _, updated, _) = upsert(&listed[0]);
    assert_eq!(remote_id, "207119551");
    assert_eq!(updated, "2024-04-02T14:26:59Z");
}

// ---------------------------------------------------------------- explicit values: products

#[test]
fn products_webhook_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for name in ["webhook_products_create", "webhook_products_update"] {
        let (remote_id, created, updated, data) = upsert(&webhook_event(&dir, name));
        assert_eq!(remote_id, "788032119674292922");
        assert_eq!(created, None); // "created_at": null
        assert_eq!(updated, "2022-01-01T00:00:00Z");
        let p = product_of(data);
        assert_eq!(p.name.as_deref(), Some("Example T-Shirt"));
        assert_eq!(p.description.as_deref(), Some("An example T-Shirt"));
        assert_eq!(p.status, "active");
        assert_eq!(p.vendor.as_deref(), Some("Acme"));
        assert_eq!(p.handle.as_deref(), Some("example-t-shirt"));
        assert_eq!(p.currency, None);
        assert_eq!(p.tags, vec!["example", "mens", "t-shirt"]);
        assert!(p.options.is_empty());
        assert_eq!(p.variants.len(), 2);
        let small = &p.variants[0];
        assert_eq!(small.remote_id, "642667041472713922");
        assert_eq!(small.price.as_deref(), Some("19.99"));
        assert_eq!(small.compare_at_price.as_deref(), Some("24.99"));
        assert_eq!(small.inventory_quantity, Some(75));
        assert_eq!(small.sku, None);
        // `options: []`, so option1 is named by position.
        assert_eq!(
            (
                small.options[0].name.as_str(),
                small.options[0].value.as_str()
            ),
            ("Option1", "Small")
        );
        assert_eq!(small.options.len(), 1);
        // "2021-12-30T19:00:00-05:00", the same instant as its variant_gids entry.
        assert_eq!(
            small.remote_updated_at.as_deref(),
            Some("2021-12-31T00:00:00Z")
        );
        assert_eq!(p.variants[1].remote_id, "757650484644203962");
        assert_eq!(
            p.variants[1].remote_updated_at.as_deref(),
            Some("2022-01-01T00:00:00Z")
        );
    }
}

#[test]
fn rest_product_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let events = rest_events(
        &dir,
        "rest_product_get_632910392",
        "product",
        "products/rest",
    );
    let (remote_id, _, updated, data) = upsert(&events[0]);
    assert_eq!(remote_id, "632910392");
    assert_eq!(updated, "2024-04-02T13:59:11Z");
    let p = product_of(data);
    assert_eq!(p.name.as_deref(), Some("IPod Nano - 8GB"));
    assert!(p
        .description
        .as_deref()
        .unwrap()
        .starts_with("<p>It's the small iPod"));
    assert_eq!(p.product_type.as_deref(), Some("Cult Products"));
    assert_eq!(p.tags, vec!["Emotive", "Flash Memory", "MP3", "Music"]);
    assert_eq!(p.options.len(), 1);
    assert_eq!(p.options[0].name, "Color");
    assert_eq!(p.options[0].values, vec!["Pink", "Red", "Green", "Black"]);
    assert_eq!(p.variants.len(), 4);
    let pink = &p.variants[0];
    assert_eq!(pink.remote_id, "808950810");
    assert_eq!(pink.sku.as_deref(), Some("IPOD2008PINK"));
    assert_eq!(pink.price.as_deref(), Some("199.00"));
    assert_eq!(pink.compare_at_price, None);
    assert_eq!(pink.barcode.as_deref(), Some("1234_pink"));
    assert_eq!(pink.inventory_quantity, Some(10));
    assert_eq!(
        (
            pink.options[0].name.as_str(),
            pink.options[0].value.as_str()
        ),
        ("Color", "Pink")
    );
    assert_eq!(p.variants[3].inventory_quantity, Some(40));

    let listed = rest_events(&dir, "rest_products_list", "products", "products/rest");
    assert_eq!(listed.len(), 2);
    assert_eq!(run(&listed[0]).unwrap(), run(&events[0]).unwrap());
    let (remote_id, _, _, data) = upsert(&listed[1]);
    assert_eq!(remote_id, "921728736");
    let touch = product_of(data);
    assert_eq!(touch.tags, Vec::<String>::new());
    assert_eq!(touch.variants.len(), 1);
    assert_eq!(touch.variants[0].options[0].name, "Title");
    assert_eq!(touch.variants[0].options[0].value, "Black");
}

// ---------------------------------------------------------------- deletes

#[test]
fn deletes_use_the_triggered_at_header() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for (name, model, id) in [
        ("webhook_orders_delete", Model::Order, "820982911946154508"),
        (
            "webhook_customers_delete",
            Model::Customer,
            "706405506930370084",
        ),
        (
            "webhook_products_delete",
            Model::Product,
            "788032119674292922",
        ),
    ] {
        let event = webhook_event(&dir, name);
        assert_eq!(
            event.triggered_at.as_deref(),
            Some("2023-03-29T18:00:27.877041743Z")
        );
        match run(&event) {
            Ok(Outcome::Record(Standardized::Delete {
                model: m,
                remote_id,
                deleted_at,
            })) => {
                assert_eq!(m, model, "{name}");
                assert_eq!(remote_id, id, "{name}");
                // Nanoseconds survive.
                assert_eq!(deleted_at.timestamp_subsec_nanos(), 877_041_743, "{name}");
                assert_eq!(
                    format_utc(&deleted_at),
                    "2023-03-29T18:00:27.877041743Z",
                    "{name}"
                );
            }
            other => panic!("{name}: expected a delete, got {other:?}"),
        }
    }
}

#[test]
fn delete_without_triggered_at_uses_received_at() {
    let mut event = support::raw_event(
        "shopify",
        "products/delete",
        br#"{"id": 788032119674292922}"#.to_vec(),
    );
    event.received_at = "2026-01-01T00:00:00Z".into();
    let Ok(Outcome::Record(Standardized::Delete { deleted_at, .. })) = run(&event) else {
        panic!("expected a delete")
    };
    assert_eq!(format_utc(&deleted_at), "2026-01-01T00:00:00Z");
    // An unparseable header falls back too.
    event.triggered_at = Some("not a time".into());
    let Ok(Outcome::Record(Standardized::Delete { deleted_at, .. })) = run(&event) else {
        panic!("expected a delete")
    };
    assert_eq!(format_utc(&deleted_at), "2026-01-01T00:00:00Z");
    // A delete body without an id cannot be routed to a record.
    let event = support::raw_event(
        "shopify",
        "orders/delete",
        br#"{"tax_exemptions": []}"#.to_vec(),
    );
    assert_eq!(run(&event), Err(StandardizeError::MissingField("id")));
}

// ---------------------------------------------------------------- ids, topics, edge cases

#[test]
fn float_corrupted_id_is_repaired_from_the_gid() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let body = String::from_utf8(support::read_fixture(
        &dir,
        "shopify/webhook_orders_create.json",
    ))
    .unwrap();
    // What a JSON.parse copy of the docs sample looks like (Q-S1).
    let corrupted = body.replacen(
        "\"id\": 820982911946154508,",
        "\"id\": 820982911946154500,",
        1,
    );
    assert_ne!(corrupted, body);
    let event = support::raw_event("shopify", "orders/create", corrupted.into_bytes());
    let (remote_id, ..) = upsert(&event);
    assert_eq!(remote_id, "820982911946154508");
}

#[test]
fn unmapped_topics_are_skipped() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for name in ["webhook_inventory_levels_update", "webhook_refunds_create"] {
        let event = webhook_event(&dir, name);
        assert_eq!(run(&event), Ok(Outcome::Skip("unmapped topic")), "{name}");
    }
    let event = support::raw_event("shopify", "app/uninstalled", b"not json".to_vec());
    assert_eq!(run(&event), Ok(Outcome::Skip("unmapped topic")));
}

#[test]
fn guest_order_and_missing_updated_at() {
    let order = |body: Value| {
        run(&support::raw_event(
            "shopify",
            "orders/create",
            body.to_string().into_bytes(),
        ))
    };
    let Ok(Outcome::Record(Standardized::Upsert { data, .. })) = order(
        json!({"id": 1, "updated_at": "2024-01-01T00:00:00Z", "customer": null, "financial_status": null}),
    ) else {
        panic!("expected an upsert")
    };
    let o = order_of(data);
    assert_eq!(o.customer_remote_id, None);
    assert_eq!(o.customer_id, None);
    assert_eq!(o.payment_status, "unknown");
    assert_eq!(
        order(json!({"id": 1})),
        Err(StandardizeError::MissingField("updated_at"))
    );
    assert_eq!(
        order(json!({"id": 1, "updated_at": null})),
        Err(StandardizeError::MissingField("updated_at"))
    );
    assert!(matches!(
        order(json!({"id": 1, "updated_at": "yesterday"})),
        Err(StandardizeError::InvalidField { .. })
    ));
    assert!(matches!(
        order(json!([1])),
        Err(StandardizeError::MalformedPayload(_))
    ));
}

#[test]
fn unicode_text_is_kept() {
    let body = json!({"id": 5, "updated_at": "2024-01-01T00:00:00+09:00", "title": "T\u{2028}shirt 😀",
                      "tags": "Léon, 😀", "body_html": "<p>caf\u{e9}</p>"});
    let event = support::raw_event("shopify", "products/update", body.to_string().into_bytes());
    let (_, _, updated, data) = upsert(&event);
    assert_eq!(updated, "2023-12-31T15:00:00Z");
    let p = product_of(data);
    assert_eq!(p.name.as_deref(), Some("T\u{2028}shirt 😀"));
    assert_eq!(p.tags, vec!["Léon", "😀"]);
    assert_eq!(p.description.as_deref(), Some("<p>café</p>"));
    assert_eq!(p.status, "unknown");
}

// ---------------------------------------------------------------- never panics

const TOPICS: [&str; 15] = [
    "orders/create",
    "orders/updated",
    "orders/delete",
    "orders/rest",
    "customers/create",
    "customers/update",
    "customers/delete",
    "customers/rest",
    "products/create",
    "products/update",
    "products/delete",
    "products/rest",
    "inventory_levels/update",
    "refunds/create",
    "ORDERS_PAID",
];

/// Keys the mapping reads, so random objects reach deep into it.
const KEYS: [&str; 48] = [
    "id",
    "admin_graphql_api_id",
    "updated_at",
    "created_at",
    "customer",
    "line_items",
    "price",
    "quantity",
    "total_discount",
    "discount_allocations",
    "amount",
    "tax_lines",
    "rate",
    "refunds",
    "transactions",
    "kind",
    "status",
    "shipping_lines",
    "total_shipping_price_set",
    "shop_money",
    "variants",
    "options",
    "option1",
    "option2",
    "position",
    "name",
    "values",
    "variant_gids",
    "default_address",
    "billing_address",
    "email_marketing_consent",
    "state",
    "currency",
    "total_price",
    "tags",
    "cancelled_at",
    "closed_at",
    "financial_status",
    "fulfillment_status",
    "discount_codes",
    "zip",
    "orders_count",
    "total_spent",
    "product_id",
    "variant_id",
    "title",
    "inventory_quantity",
    "accepts_marketing",
];

const STRINGS: [&str; 14] = [
    "2021-12-31T19:00:00-05:00",
    "2023-03-29T18:00:27.877041743Z",
    "404.95",
    "-0.01",
    "1e400",
    "79228162514264337593543950335",
    "gid://shopify/Order/820982911946154508",
    "gid://shopify/ProductVariant/1?x=y",
    "paid",
    "refund",
    "success",
    "subscribed",
    "",
    "\u{2028}😀",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(&KEYS[..]).prop_map(String::from), 1 => "[a-z_0-9]{0,8}"]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(&STRINGS[..]).prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((arb_key(), arb_json()), 0..12)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// Checks the invariants of a result that did not panic.
fn check(topic: &str, result: &Result<Outcome, StandardizeError>) {
    match result {
        Ok(Outcome::Record(r)) => {
            assert!(!r.remote_id().is_empty(), "{topic}: empty remote id");
            let routed = ShopifyMapping.route(topic).map(|(m, _)| m);
            assert_eq!(Some(r.model()), routed, "{topic}");
        }
        Ok(Outcome::Skip(_)) => assert!(ShopifyMapping.route(topic).is_none(), "{topic} skipped"),
        Err(_) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(value in prop_oneof![arb_json(), arb_object()], topic in prop::sample::select(&TOPICS[..])) {
        let event = support::raw_event("shopify", topic, serde_json::to_vec(&value).unwrap());
        check(topic, &ShopifyMapping.standardize(&event));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), topic in prop::sample::select(&TOPICS[..])) {
        let event = support::raw_event("shopify", topic, bytes);
        check(topic, &ShopifyMapping.standardize(&event));
    }

    /// A real fixture with one top-level or line-item/variant field replaced by an
    /// arbitrary value: reaches every branch of the mapping with otherwise valid data.
    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..3,
        key_index in any::<prop::sample::Index>(),
        nested in any::<bool>(),
        value in arb_json(),
    ) {
        let Some(dir) = support::fixtures_dir() else { return Ok(()) };
        let (file, topic, list) = [
            ("webhook_orders_create", "orders/create", "line_items"),
            ("webhook_customers_create", "customers/create", "default_address"),
            ("rest_products_list", "products/rest", "variants"),
        ][which];
        let mut body: Value = serde_json::from_slice(&support::read_fixture(&dir, &format!("shopify/{file}.json"))).unwrap();
        if file == "rest_products_list" {
            body = body["products"][0].clone();
        }
        let target = match (nested, &mut body[list]) {
            (true, Value::Array(items)) if !items.is_empty() => &mut items[0],
            (true, obj @ Value::Object(_)) => obj,
            _ => &mut body,
        };
        if let Value::Object(map) = target {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = key_index.get(&keys).clone();
            map.insert(key, value);
        }
        let event = support::raw_event("shopify", topic, serde_json::to_vec(&body).unwrap());
        check(topic, &ShopifyMapping.standardize(&event));
    }
}
