//! WooCommerce mapping: golden files for every fixture in `shared/fixtures/woocommerce`,
//! exact values read off the fixtures, hand-written edge payloads, and no-panic properties.

mod support;

use ingot_model::{Model, Order, Product, RawOp, RecordData, RecordKey};
use ingot_standardize::woocommerce::{WooCommerceMapping, VARIATIONS_KEY};
use ingot_standardize::{Mapping, Outcome, StandardizeError, Standardized};
use proptest::prelude::*;
use serde_json::{json, Value};

const PROVIDER: &str = "woocommerce";

use support::{outcome_json, upsert};

fn run(topic: &str, payload: Vec<u8>) -> Result<Outcome, StandardizeError> {
    WooCommerceMapping.standardize(&support::raw_event(PROVIDER, topic, payload))
}

fn run_value(topic: &str, payload: &Value) -> Result<Outcome, StandardizeError> {
    run(topic, serde_json::to_vec(payload).unwrap())
}

fn order_of(r: Result<Outcome, StandardizeError>) -> Order {
    match upsert(r).3 {
        RecordData::Order(o) => o,
        other => panic!("expected an order, got {other:?}"),
    }
}

fn product_of(r: Result<Outcome, StandardizeError>) -> Product {
    match upsert(r).3 {
        RecordData::Product(p) => p,
        other => panic!("expected a product, got {other:?}"),
    }
}

/// Every fixture, the topic it is standardized under, and whether it is a list response
/// (standardized element by element).
const FIXTURES: &[(&str, &str, bool)] = &[
    ("webhook_order_created.json", "order.created", false),
    ("webhook_order_updated.json", "order.updated", false),
    ("webhook_order_deleted.json", "order.deleted", false),
    ("webhook_customer_created.json", "customer.created", false),
    ("webhook_customer_updated.json", "customer.updated", false),
    ("webhook_customer_deleted.json", "customer.deleted", false),
    ("webhook_product_created.json", "product.created", false),
    ("webhook_product_updated.json", "product.updated", false),
    ("webhook_product_deleted.json", "product.deleted", false),
    ("rest_v3_order_get_727.json", "order.rest", false),
    ("rest_v3_orders_list.json", "order.rest", true),
    // DELETE ?force=true returns the full pre-delete object: an upsert of it.
    ("rest_v3_order_delete_force.json", "order.rest", false),
    ("rest_v3_customer_get_25.json", "customer.rest", false),
    ("rest_v3_customers_list.json", "customer.rest", true),
    ("rest_v3_customer_delete_force.json", "customer.rest", false),
    ("rest_v3_product_get_794.json", "product.rest", false),
    ("rest_v3_products_list.json", "product.rest", true),
    ("rest_v3_product_delete_force.json", "product.rest", false),
    (
        "rest_v3_product_variable_create.json",
        "product.rest",
        false,
    ),
    // Variations and refunds are not records of their own: skipped.
    (
        "rest_v3_product_variations_list.json",
        "product_variation.rest",
        true,
    ),
    ("rest_v3_order_refunds_list.json", "order_refund.rest", true),
];

#[test]
fn golden_every_fixture() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for (file, topic, is_list) in FIXTURES {
        let bytes = support::read_fixture(&dir, &format!("woocommerce/{file}"));
        let actual = if *is_list {
            let items: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
            assert!(!items.is_empty(), "{file} is an empty list");
            Value::Array(
                items
                    .iter()
                    .map(|v| outcome_json(run_value(topic, v)))
                    .collect(),
            )
        } else {
            outcome_json(run(topic, bytes))
        };
        let name = file.trim_end_matches(".json");
        support::assert_golden(&format!("woocommerce/{name}"), &actual);
    }
}

/// A variable product with its variations attached by the poller under `_ingot_variations`.
#[test]
fn golden_variable_product_with_attached_variations() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let mut product: Value = serde_json::from_slice(&support::read_fixture(
        &dir,
        "woocommerce/rest_v3_product_variable_create.json",
    ))
    .unwrap();
    let variations: Value = serde_json::from_slice(&support::read_fixture(
        &dir,
        "woocommerce/rest_v3_product_variations_list.json",
    ))
    .unwrap();
    product[VARIATIONS_KEY] = variations;
    let actual = outcome_json(run_value("product.rest", &product));
    support::assert_golden(
        "woocommerce/rest_v3_product_variable_with_variations",
        &actual,
    );

    let p = product_of(run_value("product.rest", &product));
    assert_eq!(p.variants.len(), 2);
    assert_eq!(p.variants[0].remote_id, "733");
    assert_eq!(p.variants[0].title.as_deref(), Some("Green"));
    assert_eq!(p.variants[0].options[0].name, "Color");
    assert_eq!(p.variants[0].options[0].value, "Green");
    assert_eq!(p.variants[0].price.as_deref(), Some("9.00"));
    assert_eq!(p.variants[0].compare_at_price, None);
    assert_eq!(p.variants[0].inventory_quantity, None);
    assert_eq!(
        p.variants[0].remote_updated_at.as_deref(),
        Some("2017-03-23T03:53:11Z")
    );
    assert_eq!(p.variants[1].remote_id, "732");
    assert_eq!(p.variants[1].options[0].value, "Black");
}

/// Every JSON fixture of the folder is in the table above (a new fixture fails here).
#[test]
fn every_json_fixture_is_covered() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let mut files: Vec<String> = std::fs::read_dir(dir.join("woocommerce"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    for f in &files {
        assert!(
            FIXTURES.iter().any(|(name, _, _)| name == f),
            "fixture {f} has no golden test"
        );
    }
    assert_eq!(files.len(), FIXTURES.len());
}

#[test]
fn order_727_exact_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let (remote_id, created, updated, data) = upsert(run(
        "order.created",
        support::read_fixture(&dir, "woocommerce/webhook_order_created.json"),
    ));
    assert_eq!(remote_id, "727");
    assert_eq!(created.as_deref(), Some("2017-03-22T19:28:02Z"));
    assert_eq!(updated, "2017-03-22T19:28:08Z");
    let RecordData::Order(o) = data else {
        panic!("not an order")
    };
    assert_eq!(o.order_number.as_deref(), Some("727"));
    assert_eq!(
        (
            o.status.as_str(),
            o.payment_status.as_str(),
            o.fulfillment_status.as_str()
        ),
        ("open", "paid", "unfulfilled")
    );
    assert_eq!(o.currency.as_deref(), Some("USD"));
    assert_eq!(o.customer_remote_id, None, "customer_id 0 is a guest");
    assert_eq!(o.customer_id, None);
    assert_eq!(o.email.as_deref(), Some("john.doe@example.com"));
    assert_eq!(o.line_items.len(), 2);
    let l0 = &o.line_items[0];
    assert_eq!(l0.remote_id.as_deref(), Some("315"));
    assert_eq!(l0.product_remote_id.as_deref(), Some("93"));
    assert_eq!(l0.variant_remote_id, None, "variation_id 0");
    assert_eq!(l0.sku, None, "sku \"\"");
    assert_eq!(l0.quantity, 2);
    assert_eq!(l0.unit_price.as_deref(), Some("3.00"), "subtotal 6.00 / 2");
    assert_eq!(l0.total_tax.as_deref(), Some("0.45"));
    assert_eq!(l0.total.as_deref(), Some("6.00"));
    assert_eq!(l0.total_discount.as_deref(), Some("0.00"));
    let l1 = &o.line_items[1];
    assert_eq!(
        l1.name.as_deref(),
        Some("Ship Your Idea \u{2013} Color: Black, Size: M Test"),
        "&ndash; decoded"
    );
    assert_eq!(l1.variant_remote_id.as_deref(), Some("23"));
    assert_eq!(l1.sku.as_deref(), Some("Bar3"));
    assert_eq!(l1.unit_price.as_deref(), Some("12.00"));
    assert_eq!(l1.total_tax.as_deref(), Some("0.90"));
    assert_eq!(o.subtotal_price.as_deref(), Some("18.00"));
    assert_eq!(o.total_tax.as_deref(), Some("1.35"));
    assert_eq!(o.total_shipping.as_deref(), Some("10.00"));
    assert_eq!(o.total_discount.as_deref(), Some("0.00"));
    assert_eq!(o.total_price.as_deref(), Some("29.35"));
    assert_eq!(o.total_refunded, None);
    assert_eq!(o.tax_lines.len(), 1);
    assert_eq!(o.tax_lines[0].title.as_deref(), Some("State Tax"));
    assert_eq!(o.tax_lines[0].amount.as_deref(), Some("1.35"));
    assert_eq!(
        o.tax_lines[0].rate, None,
        "this v3 sample has no rate_percent"
    );
    assert_eq!(o.shipping_lines[0].remote_id.as_deref(), Some("317"));
    assert_eq!(o.shipping_lines[0].title.as_deref(), Some("Flat Rate"));
    assert_eq!(o.shipping_lines[0].code.as_deref(), Some("flat_rate"));
    assert_eq!(o.shipping_lines[0].price.as_deref(), Some("10.00"));
    let b = o.billing_address.as_ref().unwrap();
    assert_eq!(b.line1.as_deref(), Some("969 Example St"));
    assert_eq!(b.line2, None);
    assert_eq!(b.region_code.as_deref(), Some("CA"));
    assert_eq!(b.postal_code.as_deref(), Some("94103"));
    assert_eq!(b.country_code.as_deref(), Some("US"));
    assert_eq!(b.phone.as_deref(), Some("(555) 555-5555"));
    assert_eq!(o.note, None);
    assert_eq!(o.closed_at, None);
}

#[test]
fn order_updated_to_completed_is_closed_and_fulfilled() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let (_, _, updated, data) = upsert(run(
        "order.updated",
        support::read_fixture(&dir, "woocommerce/webhook_order_updated.json"),
    ));
    assert_eq!(updated, "2017-03-22T19:30:35Z");
    let RecordData::Order(o) = data else { panic!() };
    assert_eq!(
        (
            o.status.as_str(),
            o.payment_status.as_str(),
            o.fulfillment_status.as_str()
        ),
        ("closed", "paid", "fulfilled")
    );
    assert_eq!(o.closed_at.as_deref(), Some("2017-03-22T19:30:35Z"));
}

#[test]
fn order_723_refunds_and_customer() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let list: Vec<Value> = serde_json::from_slice(&support::read_fixture(
        &dir,
        "woocommerce/rest_v3_orders_list.json",
    ))
    .unwrap();
    let o = order_of(run_value("order.rest", &list[1]));
    assert_eq!(o.order_number.as_deref(), Some("723"));
    assert_eq!(
        o.total_refunded.as_deref(),
        Some("19.00"),
        "-10.00 and -9.00"
    );
    assert_eq!(o.payment_status, "partially_refunded");
    assert_eq!(o.status, "closed");
    assert_eq!(o.customer_remote_id.as_deref(), Some("26"));
    assert_eq!(
        o.customer_id,
        Some(RecordKey::new("conn-1", Model::Customer, "26").record_id())
    );
    assert_eq!(
        o.billing_address.as_ref().unwrap().first_name.as_deref(),
        Some("João")
    );
    assert_eq!(
        o.billing_address.as_ref().unwrap().region_code.as_deref(),
        Some("RJ")
    );
    assert_eq!(o.shipping_lines[0].code.as_deref(), Some("flat_rate:25"));
    assert_eq!(o.total_price.as_deref(), Some("39.00"));
}

#[test]
fn customer_and_product_exact_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let (id, created, updated, data) = upsert(run(
        "customer.updated",
        support::read_fixture(&dir, "woocommerce/webhook_customer_updated.json"),
    ));
    assert_eq!(
        (id.as_str(), created.as_deref(), updated.as_str()),
        ("25", Some("2017-03-21T19:09:28Z"), "2017-03-21T19:12:28Z")
    );
    let RecordData::Customer(c) = data else {
        panic!()
    };
    assert_eq!(c.first_name.as_deref(), Some("James"));
    assert_eq!(c.last_name.as_deref(), Some("Doe"));
    assert_eq!(c.email.as_deref(), Some("john.doe@example.com"));
    assert_eq!(c.phone.as_deref(), Some("(555) 555-5555"));
    assert_eq!(c.company, None);
    assert_eq!(c.status, "active");
    assert_eq!(
        c.default_address.as_ref().unwrap().city.as_deref(),
        Some("San Francisco")
    );

    let (id, _, updated, data) = upsert(run(
        "product.updated",
        support::read_fixture(&dir, "woocommerce/webhook_product_updated.json"),
    ));
    assert_eq!(
        (id.as_str(), updated.as_str()),
        ("794", "2017-03-23T20:01:14Z")
    );
    let RecordData::Product(p) = data else {
        panic!()
    };
    assert_eq!(p.name.as_deref(), Some("Premium Quality"));
    assert_eq!(p.status, "active");
    assert_eq!(p.handle.as_deref(), Some("premium-quality-19"));
    assert_eq!(p.product_type.as_deref(), Some("simple"));
    assert_eq!(p.variants.len(), 1);
    assert_eq!(p.variants[0].remote_id, "794");
    assert_eq!(p.variants[0].price.as_deref(), Some("24.54"));
    assert_eq!(p.variants[0].compare_at_price, None, "sale_price \"\"");
    assert_eq!(p.variants[0].inventory_quantity, None, "manage_stock false");

    let p = product_of(run(
        "product.rest",
        support::read_fixture(&dir, "woocommerce/rest_v3_product_variable_create.json"),
    ));
    assert_eq!(p.product_type.as_deref(), Some("variable"));
    assert!(p.variants.is_empty(), "no variations attached");
    assert_eq!(p.options.len(), 2);
    assert_eq!(p.options[0].name, "Color");
    assert_eq!(p.options[0].values, vec!["Black", "Green"]);
}

#[test]
fn deleted_webhooks_are_deletes_at_event_time() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for (file, topic, model, id) in [
        (
            "webhook_order_deleted.json",
            "order.deleted",
            Model::Order,
            "727",
        ),
        (
            "webhook_customer_deleted.json",
            "customer.deleted",
            Model::Customer,
            "25",
        ),
        (
            "webhook_product_deleted.json",
            "product.deleted",
            Model::Product,
            "794",
        ),
    ] {
        let mut event = support::raw_event(
            PROVIDER,
            topic,
            support::read_fixture(&dir, &format!("woocommerce/{file}")),
        );
        let r = WooCommerceMapping.standardize(&event).unwrap();
        let Outcome::Record(Standardized::Delete {
            model: m,
            remote_id,
            deleted_at,
        }) = r
        else {
            panic!("{r:?}")
        };
        assert_eq!((m, remote_id.as_str()), (model, id));
        assert_eq!(
            ingot_model::format_utc(&deleted_at),
            "2026-01-01T00:00:00Z",
            "received_at"
        );
        event.triggered_at = Some("2025-06-01T10:00:00.5-02:00".into());
        let Outcome::Record(Standardized::Delete { deleted_at, .. }) =
            WooCommerceMapping.standardize(&event).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            ingot_model::format_utc(&deleted_at),
            "2025-06-01T12:00:00.500Z",
            "triggered_at wins"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hand-written payloads

fn small_order() -> Value {
    json!({
        "id": 9001, "number": "9001", "status": "processing", "currency": "USD",
        "date_created_gmt": "2024-05-01T10:00:00", "date_modified_gmt": "2024-05-01T10:05:00",
        "date_paid_gmt": "2024-05-01T10:01:00",
        "customer_id": 0,
        "billing": {"first_name": "Caf&eacute; &amp; Bar", "email": "guest@example.com", "country": "FR"},
        "shipping": {},
        "discount_total": "0.00", "shipping_total": "0.00", "total_tax": "0.00", "total": "42.93",
        "line_items": [{
            "id": 1, "name": "Caf&eacute; &amp; Bar", "product_id": 5, "variation_id": 0, "sku": "",
            "quantity": 3, "subtotal": "42.93", "total": "42.93", "total_tax": "0.00",
            "price": 14.309999999999999
        }],
        "refunds": []
    })
}

#[test]
fn entity_encoded_names_decode_exactly_once() {
    let o = order_of(run_value("order.created", &small_order()));
    assert_eq!(o.line_items[0].name.as_deref(), Some("Café & Bar"));
    assert_eq!(
        o.billing_address.as_ref().unwrap().first_name.as_deref(),
        Some("Café & Bar")
    );

    let mut p = small_order();
    p["line_items"][0]["name"] = json!("Tom &amp;amp; Jerry");
    let o = order_of(run_value("order.created", &p));
    assert_eq!(
        o.line_items[0].name.as_deref(),
        Some("Tom &amp; Jerry"),
        "decoded once, not twice"
    );

    let product = json!({"id": 1, "name": "Caf&eacute; &amp; Bar", "type": "simple", "status": "publish",
        "date_modified_gmt": "2024-05-01T10:05:00", "price": "5", "regular_price": "5", "sale_price": "",
        "tags": [{"id": 1, "name": "Fish &amp; Chips"}]});
    let p = product_of(run_value("product.rest", &product));
    assert_eq!(p.name.as_deref(), Some("Café & Bar"));
    assert_eq!(p.tags, vec!["Fish & Chips"]);
    assert_eq!(p.variants[0].price.as_deref(), Some("5.00"));
}

#[test]
fn float_price_unit_price_comes_from_subtotal() {
    let o = order_of(run_value("order.created", &small_order()));
    let l = &o.line_items[0];
    assert_eq!(l.quantity, 3);
    assert_eq!(
        l.unit_price.as_deref(),
        Some("14.31"),
        "42.93 / 3, not the float 14.309999999999999"
    );
    assert_eq!(l.total.as_deref(), Some("42.93"));
    assert_eq!(l.total_discount.as_deref(), Some("0.00"));

    // Rounded to the currency's minor unit, half away from zero: 10.00 / 3 = 3.333.. → 3.33.
    let mut p = small_order();
    p["line_items"][0]["subtotal"] = json!("10.00");
    p["line_items"][0]["total"] = json!("9.00");
    let l = order_of(run_value("order.created", &p))
        .line_items
        .remove(0);
    assert_eq!(l.unit_price.as_deref(), Some("3.33"));
    assert_eq!(l.total_discount.as_deref(), Some("1.00"));

    // JPY has no minor unit.
    let mut p = small_order();
    p["currency"] = json!("JPY");
    p["line_items"][0]["subtotal"] = json!("1000");
    let l = order_of(run_value("order.created", &p))
        .line_items
        .remove(0);
    assert_eq!(l.unit_price.as_deref(), Some("333"));
}

#[test]
fn guest_order_has_no_customer() {
    let o = order_of(run_value("order.created", &small_order()));
    assert_eq!(o.customer_remote_id, None);
    assert_eq!(o.customer_id, None);
    assert_eq!(o.email.as_deref(), Some("guest@example.com"));
    assert_eq!(o.shipping_address, None, "empty shipping object");
    assert_eq!(o.payment_status, "paid");
}

#[test]
fn statuses_table() {
    use ingot_standardize::woocommerce::{fulfillment_status, order_status, payment_status};
    assert_eq!(order_status("on-hold"), "open");
    assert_eq!(order_status("refunded"), "closed");
    assert_eq!(order_status("failed"), "cancelled");
    assert_eq!(order_status("trash"), "cancelled");
    assert_eq!(order_status("checkout-draft"), "draft");
    assert_eq!(order_status("wc-custom"), "unknown");
    assert_eq!(payment_status("processing", true, false), "paid");
    assert_eq!(payment_status("processing", false, false), "unknown");
    assert_eq!(payment_status("on-hold", false, false), "pending");
    assert_eq!(payment_status("refunded", true, true), "refunded");
    assert_eq!(
        payment_status("completed", true, true),
        "partially_refunded"
    );
    assert_eq!(payment_status("failed", false, false), "failed");
    assert_eq!(payment_status("cancelled", false, false), "voided");
    assert_eq!(payment_status("cancelled", true, false), "unknown");
    assert_eq!(fulfillment_status("completed"), "fulfilled");
    assert_eq!(fulfillment_status("on-hold"), "unfulfilled");
    assert_eq!(fulfillment_status("cancelled"), "unknown");
}

#[test]
fn coupons_tax_rate_and_sale_price() {
    let mut p = small_order();
    p["coupon_lines"] =
        json!([{"id": 7, "code": "save10", "discount": "4.29", "discount_type": "percent"}]);
    p["tax_lines"] = json!([{"id": 8, "label": "VAT", "rate_percent": 20, "tax_total": "7.15", "shipping_tax_total": "1.00"}]);
    let o = order_of(run_value("order.created", &p));
    assert_eq!(o.discounts[0].code.as_deref(), Some("save10"));
    assert_eq!(o.discounts[0].amount.as_deref(), Some("4.29"));
    assert_eq!(o.discounts[0].kind.as_deref(), Some("percentage"));
    assert_eq!(o.tax_lines[0].rate.as_deref(), Some("0.2"));
    assert_eq!(o.tax_lines[0].amount.as_deref(), Some("8.15"));

    let product = json!({"id": 2, "name": "Mug", "type": "simple", "status": "draft",
        "date_modified_gmt": "2024-05-01T10:05:00", "price": "8.00", "regular_price": "10.00", "sale_price": "8.00",
        "manage_stock": true, "stock_quantity": 12, "sku": "MUG-1"});
    let p = product_of(run_value("product.rest", &product));
    assert_eq!(p.status, "draft");
    let v = &p.variants[0];
    assert_eq!(
        (v.price.as_deref(), v.compare_at_price.as_deref()),
        (Some("8.00"), Some("10.00"))
    );
    assert_eq!(v.inventory_quantity, Some(12));
    assert_eq!(v.sku.as_deref(), Some("MUG-1"));
}

#[test]
fn errors_and_skips() {
    assert_eq!(
        run_value("order.updated", &json!({"id": 727})).unwrap_err(),
        StandardizeError::MissingField("date_modified_gmt")
    );
    assert_eq!(
        run_value("order.deleted", &json!({})).unwrap_err(),
        StandardizeError::MissingField("id")
    );
    assert!(matches!(
        run("order.created", b"webhook_id=27".to_vec()),
        Err(StandardizeError::MalformedPayload(_))
    ));
    assert!(matches!(
        run_value("order.updated", &json!({"order": {"id": 1}})),
        Err(StandardizeError::MalformedPayload(m)) if m.contains("legacy_v3")
    ));
    assert_eq!(
        run_value("coupon.created", &json!({"id": 1})).unwrap(),
        Outcome::Skip("unmapped topic")
    );
    assert_eq!(
        run_value("action.woocommerce_x", &json!({})).unwrap(),
        Outcome::Skip("unmapped topic")
    );
}

#[test]
fn route_agrees_with_standardize() {
    let m = WooCommerceMapping;
    assert_eq!(
        m.route("order.created"),
        Some((Model::Order, RawOp::Upsert))
    );
    assert_eq!(
        m.route("order.restored"),
        Some((Model::Order, RawOp::Upsert))
    );
    assert_eq!(
        m.route("customer.rest"),
        Some((Model::Customer, RawOp::Upsert))
    );
    assert_eq!(
        m.route("product.deleted"),
        Some((Model::Product, RawOp::Delete))
    );
    assert_eq!(m.route("product_variation.rest"), None);
    assert_eq!(m.route("orders/create"), None);
    for topic in ALL_TOPICS {
        let r = run_value(
            topic,
            &json!({"id": 5, "date_modified_gmt": "2024-01-01T00:00:00"}),
        )
        .unwrap();
        match (m.route(topic), r) {
            (None, Outcome::Skip(_)) => {}
            (Some((model, RawOp::Upsert)), Outcome::Record(s @ Standardized::Upsert { .. })) => {
                assert_eq!(s.model(), model)
            }
            (Some((model, RawOp::Delete)), Outcome::Record(s @ Standardized::Delete { .. })) => {
                assert_eq!(s.model(), model)
            }
            (route, r) => panic!("{topic}: route {route:?} but standardize gave {r:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Never panics

const ALL_TOPICS: &[&str] = &[
    "order.created",
    "order.updated",
    "order.restored",
    "order.deleted",
    "order.rest",
    "customer.created",
    "customer.updated",
    "customer.restored",
    "customer.deleted",
    "customer.rest",
    "product.created",
    "product.updated",
    "product.restored",
    "product.deleted",
    "product.rest",
    "product_variation.rest",
    "coupon.created",
    "",
];

const KEYS: &[&str] = &[
    "id",
    "number",
    "status",
    "currency",
    "date_created_gmt",
    "date_modified_gmt",
    "date_paid_gmt",
    "date_completed_gmt",
    "customer_id",
    "billing",
    "shipping",
    "line_items",
    "coupon_lines",
    "shipping_lines",
    "tax_lines",
    "refunds",
    "total",
    "subtotal",
    "quantity",
    "price",
    "discount_total",
    "shipping_total",
    "total_tax",
    "tax_total",
    "shipping_tax_total",
    "rate_percent",
    "name",
    "sku",
    "product_id",
    "variation_id",
    "type",
    "attributes",
    "options",
    "option",
    "variation",
    "tags",
    "regular_price",
    "sale_price",
    "manage_stock",
    "stock_quantity",
    "_ingot_variations",
    "order",
    "email",
    "first_name",
    "state",
    "country",
    "discount",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "",
            "0",
            "1",
            "-1",
            "3.5",
            "1e30",
            "99999999999999999999999999999",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00Z",
            "processing",
            "completed",
            "refunded",
            "variable",
            "simple",
            "publish",
            "USD",
            "JPY",
            "&amp;amp;",
            "T",
            "F",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        ".{0,6}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json(), topic in prop::sample::select(ALL_TOPICS)) {
        let _ = run_value(topic, &v);
        // Also as an object with the required keys, to reach the model mappings.
        let mut obj = json!({"id": 1, "date_modified_gmt": "2024-01-01T00:00:00"});
        if let Value::Object(extra) = &v {
            for (k, x) in extra { obj[k] = x.clone(); }
        }
        let _ = run_value(topic, &obj);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), topic in prop::sample::select(ALL_TOPICS)) {
        let _ = run(topic, bytes);
    }
}

#[test]
fn product_version_is_its_newest_part() {
    let product = json!({"id": 22, "name": "Ship Your Idea", "type": "variable", "status": "publish",
    "date_modified_gmt": "2024-05-01T10:00:00",
    VARIATIONS_KEY: [
        {"id": 733, "date_modified_gmt": "2024-05-02T08:00:00", "price": "9.00", "regular_price": "9.00", "sale_price": "",
         "attributes": [{"id": 6, "name": "Color", "option": "Green"}]},
        {"id": 732, "date_modified_gmt": "2024-04-01T08:00:00", "price": "", "regular_price": "", "sale_price": "",
         "manage_stock": true, "stock_quantity": 4, "attributes": []}
    ]});
    let (_, _, updated, data) = upsert(run_value("product.rest", &product));
    assert_eq!(
        updated, "2024-05-02T08:00:00Z",
        "a variation edit is a new version of the product"
    );
    let RecordData::Product(p) = data else {
        panic!()
    };
    assert_eq!(p.variants[1].price, None, "empty price string");
    assert_eq!(p.variants[1].title, None);
    assert_eq!(p.variants[1].inventory_quantity, Some(4));
}
