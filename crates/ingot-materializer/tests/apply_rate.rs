//! How fast the view applies records, without a broker (real RocksDB): new records (a
//! rebuild) and new versions of them (updates). A figure, printed, never asserted on time:
//! `cargo test -p ingot-materializer --test apply_rate -- --ignored --nocapture`.

use ingot_kafka::Message;
use ingot_materializer::{Entry, View};
use ingot_model::{Model, RecordKey};
use serde_json::{json, Value};
use std::time::Instant;

fn record(i: usize, modified: &str) -> (Message, Value) {
    let remote_id = (900_000_000_000_000_000u64 + i as u64).to_string();
    let key = RecordKey::new("shop-1", Model::Order, &remote_id);
    let items: Vec<Value> = (0..5)
        .map(|n| json!({"id": n, "product_id": 11 * n, "title": "Parka", "price": "249.00", "quantity": 1,
            "sku": format!("SKU-{n}"), "tax_lines": [{"price": "10.00", "rate": 0.06, "title": "State"}],
            "discount_allocations": [], "properties": [], "vendor": "Acme", "requires_shipping": true}))
        .collect();
    let raw = json!({"id": remote_id, "name": "#1001", "email": "ada@example.com", "line_items": items,
        "billing_address": {"first_name": "Ada", "last_name": "Lovelace", "city": "London", "zip": "N1"},
        "shipping_address": {"first_name": "Ada", "last_name": "Lovelace", "city": "London", "zip": "N1"},
        "total_price": "1280.95", "currency": "EUR", "updated_at": "2026-11-20T10:30:00-05:00"});
    let lines: Vec<Value> = (0..5)
        .map(|n| json!({"remote_id": n.to_string(), "name": "Parka", "quantity": 1, "unit_price": "249.00", "total": "249.00", "sku": format!("SKU-{n}")}))
        .collect();
    let v = json!({
        "id": key.record_id(), "remote_id": remote_id, "connection_id": "shop-1", "tenant_id": "acme",
        "provider": "shopify", "remote_deleted": false, "remote_created_at": "2026-11-20T15:00:00Z",
        "remote_updated_at": "2026-11-20T15:30:00Z", "modified_at": modified,
        "mapping_version": "shopify/1", "raw_topic": "raw.shopify", "raw_partition": 0, "raw_offset": i,
        "order_number": "#1001", "status": "open", "payment_status": "paid", "fulfillment_status": "unfulfilled",
        "currency": "EUR", "total": "1280.95", "subtotal": "1245.00", "total_tax": "25.95", "line_items": lines,
        "billing_address": {"name": "Ada Lovelace", "city": "London"}, "shipping_address": {"name": "Ada Lovelace", "city": "London"},
        "remote_data": serde_json::to_string(&raw).unwrap(),
    });
    let m = Message {
        topic: Model::Order.normalized_topic(),
        partition: 0,
        offset: 0,
        key: Some(key.to_string().into_bytes()),
        value: Some(Vec::new()),
        headers: Vec::new(),
        timestamp_ms: None,
    };
    (m, v)
}

#[test]
#[ignore = "a figure: run with --ignored --nocapture"]
fn apply_rate() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open(dir.path()).unwrap();
    let n = 5000;
    let mut offset = 0;
    for (what, modified) in [
        ("new records (a rebuild)", "2026-11-20T15:31:00Z"),
        ("new versions (updates)", "2026-11-20T15:32:00Z"),
    ] {
        let batches: Vec<Vec<(Message, Entry)>> = (0..n)
            .collect::<Vec<_>>()
            .chunks(1000)
            .map(|c| {
                c.iter()
                    .map(|i| {
                        let (mut m, v) = record(*i, modified);
                        m.offset = offset;
                        offset += 1;
                        (m, Entry::Record(v))
                    })
                    .collect()
            })
            .collect();
        let t = Instant::now();
        let mut applied = 0;
        for b in &batches {
            applied += view.apply(b).unwrap();
        }
        assert_eq!(applied, n);
        println!(
            "view.apply, {what}: {:.0} records/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
}
