//! End to end, in-process, over real sockets: a broker, the embedded schema registry,
//! ingest, processor, materializer and API, each test on its own free loopback ports and
//! temp dir. Webhooks are POSTed with reqwest; answers are read back through the HTTP API
//! and from the Kafka topics.
//!
//! Two brokers, one suite: by default each test starts the embedded Tansu broker
//! (sqlite, at-least-once mode); with `INGOT_TEST_KAFKA=127.0.0.1:PORT` (an Apache Kafka
//! started by `scripts/kafka.sh start`) every test runs against that broker instead, in
//! exactly-once mode, after deleting and re-creating the topology's topics.
//!
//! Tests that use the shared fixtures (`../shared/fixtures`, or `$INGOT_FIXTURES_DIR`)
//! print that they are skipped when the folder is absent; the others use the simulated shop.

// Each test runs on its own runtime and holds the serial lock for its whole body on purpose.
#![allow(clippy::await_holding_lock)]

mod support;

use ingot::app::Stages;
use ingot::shopsim;
use ingot_model::{Model, RecordKey};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_rule_holds_end_to_end() {
    let _serial = serial();
    let h = Harness::start().await;
    let oid: u64 = 820_982_911_946_154_508;
    let v1 = sample_order(oid, "pending", "2026-11-20T10:00:00-05:00");
    let v2 = sample_order(oid, "paid", "2026-11-20T10:30:00-05:00");
    let stale = sample_order(oid, "refunded", "2026-11-20T10:15:00-05:00");
    assert_eq!(h.post(&delivery("orders/create", &v1, "e1")).await, 200);
    assert_eq!(h.post(&delivery("orders/updated", &v2, "e2")).await, 200);
    // duplicate delivery of the same event
    assert_eq!(h.post(&delivery("orders/updated", &v2, "e2")).await, 200);
    // an older update arriving after the newer one
    assert_eq!(h.post(&delivery("orders/updated", &stale, "e3")).await, 200);

    let path = format!("/v1/orders/{}", order_id(oid));
    // the view reflects all four raw events once the end offsets are applied; wait for
    // the newest version, then check nothing later replaced it
    let got = h
        .wait_for(&path, |s, v| {
            s == 200 && v["data"]["payment_status"] == "paid"
        })
        .await;
    let d = &got["data"];
    assert_eq!(d["remote_id"], "820982911946154508");
    assert_eq!(d["remote_updated_at"], "2026-11-20T15:30:00Z");
    assert_eq!(d["total_price"], "318.00");
    assert_eq!(d["currency"], "USD");
    assert_eq!(d["line_items"].as_array().unwrap().len(), 2);
    assert_eq!(d["line_items"][1]["quantity"], 2);
    assert_eq!(d["line_items"][1]["unit_price"], "29.50");
    assert_eq!(d["customer_remote_id"], "7408123456789001");
    assert_eq!(d["provider"], "shopify");
    assert!(
        d.get("remote_data").is_none(),
        "remote_data only on request"
    );

    // wait until the processor consumed all four raw events, then count versions
    let key = format!("{CONN}/order/{oid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let raw = h.records_for("raw.shopify", &key).await;
        assert_eq!(raw.len(), 4, "every delivery is kept on the raw topic");
        let committed = h.get(&path, KEY).await.1["freshness"].clone();
        let versions = h.records_for("normalized.order", &key).await;
        if versions.len() >= 2 || Instant::now() > deadline {
            // exactly two distinct versions: the create and the paid update; the duplicate
            // and the stale update produced nothing
            assert_eq!(versions.len(), 2, "freshness {committed}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // once the processor consumed the stale and duplicate ones, re-check
    h.wait_processed().await;
    let versions = h.records_for("normalized.order", &key).await;
    assert_eq!(versions.len(), 2);
    let (_, again) = h.get(&path, KEY).await;
    assert_eq!(again["data"]["payment_status"], "paid");

    // delete: 404 through the API, a real tombstone on the topic
    let delete = shopsim::delivery(
        "demo.myshopify.com",
        SECRET,
        "orders/delete",
        &json!({"id": oid}),
        "e4",
        "2026-11-20T16:00:00Z",
    );
    assert_eq!(h.post(&delete).await, 200);
    h.wait_for(&path, |s, _| s == 404).await;
    let versions = h.records_for("normalized.order", &key).await;
    let last = versions.last().unwrap();
    assert_eq!(last.value, None, "a tombstone has no value");
    assert_eq!(last.header("ingot-op"), Some("delete"));
    let listed = h
        .wait_for("/v1/orders?include_deleted=true", |_, v| {
            v["data"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    assert_eq!(listed["data"][0]["remote_deleted"], true);
    let (_, live) = h.get("/v1/orders", KEY).await;
    assert_eq!(live["data"], json!([]));
    // an update not after the deletion does not resurrect it
    assert_eq!(h.post(&delivery("orders/updated", &v2, "e5")).await, 200);
    h.wait_processed().await;
    assert_eq!(h.get(&path, KEY).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_loses_nothing() {
    let _serial = serial();
    let h = Harness::start().await;
    let order = sample_order(1001, "paid", "2026-11-20T10:30:00-05:00");
    let good = delivery("orders/create", &order, "e1");
    let before = h.raw_count().await;

    // bad signature: 401 and nothing written
    let mut forged = good.clone();
    forged
        .headers
        .iter_mut()
        .filter(|(k, _)| k == "X-Shopify-Hmac-Sha256")
        .for_each(|(_, v)| *v = shopsim::sign("not-the-secret", &forged.body));
    assert_eq!(h.post(&forged).await, 401);
    let mut no_topic = good.clone();
    no_topic.headers.retain(|(k, _)| k != "X-Shopify-Topic");
    assert_eq!(h.post(&no_topic).await, 400, "signed but unroutable");
    let mut unsigned = good.clone();
    unsigned
        .headers
        .retain(|(k, _)| k != "X-Shopify-Hmac-Sha256");
    assert_eq!(h.post(&unsigned).await, 401);
    assert_eq!(
        h.raw_count().await,
        before,
        "a rejected webhook writes nothing"
    );

    // the old secret of a rotation still verifies
    let old = shopsim::delivery(
        "demo.myshopify.com",
        "old-secret-being-rotated-out",
        "orders/create",
        &order,
        "e0",
        "2026-11-20T15:00:00Z",
    );
    assert_eq!(h.post(&old).await, 200);

    // unknown connection 404, wrong provider 404, oversized body 413
    let r = h
        .client
        .post(format!("{}/webhooks/shopify/nope", h.base))
        .body(good.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = h
        .client
        .post(format!("{}/webhooks/woocommerce/{CONN}", h.base))
        .body(good.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let big =
        json!({"id": 5, "updated_at": "2026-11-20T10:30:00-05:00", "note": "x".repeat(300_000)});
    assert_eq!(h.post(&delivery("orders/create", &big, "e-big")).await, 413);

    // malformed JSON with a valid signature: accepted, dead-lettered with a reason
    let body = b"{\"id\": 42, \"updated_at\": ".to_vec();
    let mut malformed = good.clone();
    malformed.body = body.clone();
    malformed
        .headers
        .iter_mut()
        .filter(|(k, _)| k == "X-Shopify-Hmac-Sha256")
        .for_each(|(_, v)| *v = shopsim::sign(SECRET, &body));
    assert_eq!(h.post(&malformed).await, 200);
    // a valid JSON order that cannot be standardized (no updated_at)
    assert_eq!(
        h.post(&delivery(
            "orders/create",
            &json!({"id": 43}),
            "e-noupdated"
        ))
        .await,
        200
    );
    // ... and the pipeline keeps going
    assert_eq!(h.post(&good).await, 200);
    let path = format!("/v1/orders/{}", order_id(1001));
    h.wait_for(&path, |s, _| s == 200).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dlq = loop {
        let dlq = h.kafka().read_all("raw.dlq").await.unwrap();
        if dlq.len() >= 2 || Instant::now() > deadline {
            break dlq;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dlq.len(), 2, "both bad payloads are dead-lettered");
    // the two land on different raw partitions: their order on raw.dlq is not fixed
    let mut dlq = dlq;
    dlq.sort_by_key(|m| m.key_str().unwrap_or_default().to_string());
    let reasons: Vec<&str> = dlq
        .iter()
        .map(|m| m.header("ingot-dlq-reason").unwrap())
        .collect();
    assert_eq!(dlq[0].key_str(), Some("shop-1/order/43"));
    assert_eq!(reasons[0], "missing field updated_at");
    assert!(
        dlq[1].key_str().unwrap().starts_with("shop-1/unrouted/"),
        "{:?}",
        dlq[1].key_str()
    );
    assert!(
        reasons[1].starts_with("malformed payload: invalid JSON"),
        "{reasons:?}"
    );
    // the dead-lettered raw event keeps the exact bytes
    let codec = h.infra.as_ref().unwrap().codec().unwrap();
    let raw = codec
        .decode_raw(dlq[1].value.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(raw.payload, body);

    // auth: no key 401, another tenant's key sees nothing (404, empty lists)
    let r = h
        .client
        .get(format!("{}{path}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(h.get(&path, OTHER_KEY).await.0, 404);
    assert_eq!(h.get("/v1/orders", OTHER_KEY).await.1["data"], json!([]));
    assert_eq!(h.get("/v1/orders?limit=0", KEY).await.0, 400);
    assert_eq!(
        h.get("/v1/orders?modified_after=yesterday", KEY).await.0,
        400
    );
    assert_eq!(h.get("/v1/invoices", KEY).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_lost_state_give_the_same_answers() {
    let _serial = serial();
    // compaction every second: the rebuild must not depend on superseded versions
    let mut h = Harness::start_full(ingot_sync::SyncSettings::default(), 1).await;
    let story = shopsim::story("demo.myshopify.com", SECRET);
    for (_, d) in &story.deliveries {
        assert_eq!(h.post(d).await, 200);
    }
    // all three orders known (one of them deleted), both customers and products
    let n = |v: &Value| v["data"].as_array().map_or(0, Vec::len);
    h.wait_for("/v1/orders?include_deleted=true", |_, v| {
        n(v) == 3
            && v["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["remote_deleted"] == true)
    })
    .await;
    h.wait_for("/v1/customers", |_, v| n(v) == 2).await;
    h.wait_for("/v1/products", |_, v| n(v) == 2).await;
    let paid = format!("/v1/orders/{}", order_id(story.updated_order_id));
    h.wait_for(&paid, |s, v| {
        s == 200 && v["data"]["payment_status"] == "paid"
    })
    .await;
    async fn snapshot(h: &Harness) -> Vec<Value> {
        let mut out = Vec::new();
        for r in ["orders", "customers", "products"] {
            let (s, v) = h.get(&format!("/v1/{r}?include_deleted=true"), KEY).await;
            assert_eq!(s, 200);
            out.push(v["data"].clone());
        }
        out
    }
    let before = snapshot(&h).await;
    assert_eq!(before[0].as_array().unwrap().len(), 3);
    assert_eq!(before[1].as_array().unwrap().len(), 2);
    assert_eq!(before[2].as_array().unwrap().len(), 2);
    // end offsets, not record counts: compaction may remove superseded versions meanwhile
    let end = |h: &Harness| {
        h.kafka()
            .end_offsets("normalized.order")
            .unwrap()
            .iter()
            .map(|(_, o)| *o)
            .sum::<i64>()
    };
    let versions_before = end(&h);

    // 1. restart everything, broker included
    h.down().await;
    h.up().await;
    h.wait_for("/readyz", |s, _| s == 200).await;
    let now = snapshot(&h).await;
    assert!(
        now == before,
        "after restart: {}",
        json_diff("", &json!(before), &json!(now)).join("\n")
    );

    // 2. lose both RocksDB directories: rebuilt from the topics, same answers
    h.down().await;
    std::fs::remove_dir_all(h.data_dir().join("processor")).unwrap();
    std::fs::remove_dir_all(h.data_dir().join("view")).unwrap();
    h.up().await;
    h.wait_for("/readyz", |s, _| s == 200).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = snapshot(&h).await;
        if now == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "view not rebuilt: {}",
            json_diff("", &json!(before), &json!(now)).join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the rebuilt processor state still dedupes: re-sending the whole story emits nothing
    for (_, d) in &story.deliveries {
        assert_eq!(h.post(d).await, 200);
    }
    h.wait_processed().await;
    assert_eq!(
        end(&h),
        versions_before,
        "re-sent webhooks produced new normalized records"
    );
    assert_eq!(snapshot(&h).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_queries_page_with_a_cursor() {
    let _serial = serial();
    let h = Harness::start().await;
    for i in 0..7u64 {
        let o = sample_order(5000 + i, "paid", "2026-11-20T10:30:00-05:00");
        assert_eq!(
            h.post(&delivery("orders/create", &o, &format!("e{i}")))
                .await,
            200
        );
    }
    h.wait_for("/v1/orders?limit=500", |_, v| {
        v["data"].as_array().is_some_and(|a| a.len() == 7)
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/orders?limit=3&cursor={c}"),
            None => "/v1/orders?limit=3".to_string(),
        };
        let (s, v) = h.get(&path, KEY).await;
        assert_eq!(s, 200);
        for r in v["data"].as_array().unwrap() {
            seen.push(r["remote_id"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    seen.sort();
    let expected: Vec<String> = (0..7).map(|i| (5000 + i).to_string()).collect();
    assert_eq!(seen, expected, "every record exactly once across pages");
    let (_, one) = h
        .get("/v1/orders?connection_id=shop-1&remote_id=5003", KEY)
        .await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"][0]["remote_id"], "5003");
    let (_, none) = h
        .get("/v1/orders?modified_after=2200-01-01T00:00:00Z", KEY)
        .await;
    assert_eq!(none["data"], json!([]));
    let (_, with_raw) = h
        .get(
            &format!("/v1/orders/{}?include_remote_data=true", order_id(5003)),
            KEY,
        )
        .await;
    assert_eq!(with_raw["data"]["remote_data"]["id"], 5003);
}

fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("INGOT_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    if dir.join("MANIFEST.md").exists() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: shared fixtures not found at {} (set INGOT_FIXTURES_DIR)",
            dir.display()
        );
        None
    }
}

/// Parses a `*.headers.txt` fixture (`Name: value` lines).
fn fixture_headers(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_webhook_fixtures_come_back_through_the_api() {
    let _serial = serial();
    let Some(dir) = fixtures_dir() else { return };
    let h = Harness::start().await;
    let mapping = ingot_standardize::mapping_for(ingot_model::Provider::Shopify);
    let mut checked = 0;
    for name in [
        "customers_create",
        "products_create",
        "orders_create",
        "customers_update",
        "products_update",
        "orders_updated",
    ] {
        let body = std::fs::read(dir.join(format!("shopify/webhook_{name}.json"))).unwrap();
        let mut headers = fixture_headers(&dir.join(format!("shopify/webhook_{name}.headers.txt")));
        for (k, v) in headers.iter_mut() {
            if k.eq_ignore_ascii_case("X-Shopify-Hmac-Sha256") {
                *v = shopsim::sign(SECRET, &body); // the docs' example HMAC is not for these bytes
            }
        }
        let topic = headers
            .iter()
            .find(|(k, _)| k == "X-Shopify-Topic")
            .unwrap()
            .1
            .clone();
        let d = shopsim::Delivery {
            topic: topic.clone(),
            body: body.clone(),
            headers,
        };
        assert_eq!(h.post(&d).await, 200, "{name}");
        // what the mapping says this payload is
        let ev = ingot_model::RawEvent {
            event_id: "x".into(),
            tenant_id: "acme".into(),
            connection_id: CONN.into(),
            provider: "shopify".into(),
            topic: topic.clone(),
            source: "webhook".into(),
            api_version: None,
            received_at: "2026-01-01T00:00:00Z".into(),
            triggered_at: None,
            payload: body.clone(),
        };
        let Ok(ingot_standardize::Outcome::Record(ingot_standardize::Standardized::Upsert {
            remote_id,
            data,
            ..
        })) = mapping.standardize(&ev)
        else {
            panic!("{name} does not standardize");
        };
        let model = data.model();
        let id = RecordKey::new(CONN, model, remote_id.clone()).record_id();
        let got = h
            .wait_for(&format!("/v1/{}/{id}", model.resource()), |s, _| s == 200)
            .await;
        // every standardized field came through Kafka, Avro and RocksDB unchanged
        let expected = data.to_json();
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(&got["data"][field], value, "{name}: field {field}");
        }
        assert_eq!(got["data"]["remote_id"], remote_id.as_str());
        checked += 1;
    }
    assert_eq!(checked, 6);
    // exact values read off the fixtures
    let order = h
        .get(
            &format!("/v1/orders/{}", order_id(820_982_911_946_154_508)),
            KEY,
        )
        .await
        .1;
    assert_eq!(order["data"]["remote_id"], "820982911946154508");
    assert_eq!(order["data"]["currency"], "USD");
    assert!(order["data"]["remote_updated_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
}

// ---------------------------------------------------------------------------------------
// The sync engine against the Shopify simulator (crates/ingot-testkit).

use ingot_testkit::shopify::{Endpoint, Resource, ShopifySim, ShopifySimConfig};

fn fast_sync() -> ingot_sync::SyncSettings {
    ingot_sync::SyncSettings {
        window: chrono::Duration::days(120),
        overlap: chrono::Duration::minutes(10),
        retry_after_failure: Duration::from_millis(500),
        models: Model::ALL.to_vec(),
    }
}

fn resource(model: Model) -> Resource {
    match model {
        Model::Order => Resource::Orders,
        Model::Customer => Resource::Customers,
        Model::Product => Resource::Products,
    }
}

impl Harness {
    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn create_sim_connection(&self, id: &str, sim: &ShopifySim, poll_secs: u64) {
        let (s, v) = self
            .post_json(
                "/v1/connections",
                &json!({
                    "id": id, "provider": "shopify", "shop_domain": "sim.myshopify.com",
                    "base_url": sim.base_url(), "credentials": {"access_token": sim.access_token()},
                    "webhook_secrets": ["sim-secret"], "history_days": 760, "poll_interval_secs": poll_secs,
                    "page_size": 50
                }),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["webhook_secrets"], 1, "secrets are not echoed: {v}");
    }

    /// Waits until every model's sync state is `state`; returns the status document.
    async fn wait_sync(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for(&format!("/v1/connections/{id}/sync-status"), |s, v| {
            s == 200
                && ["orders", "customers", "products"]
                    .iter()
                    .all(|m| pred(&v["models"][m]))
        })
        .await
    }

    /// Every live record of a model for a connection, through the paged API.
    async fn all_records(
        &self,
        model: Model,
        connection: &str,
    ) -> std::collections::BTreeMap<String, Value> {
        let mut out = std::collections::BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/v1/{}?connection_id={connection}&limit=500",
                model.resource()
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (s, v) = self.get(&path, KEY).await;
            assert_eq!(s, 200, "{v}");
            for r in v["data"].as_array().unwrap() {
                out.insert(r["remote_id"].as_str().unwrap().to_string(), r.clone());
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// Asserts the API holds exactly the simulator's records, every standardized field
    /// equal to what the Shopify mapping makes of the simulator's bytes.
    async fn assert_mirrors(&self, connection: &str, sim: &ShopifySim) {
        let mapping = ingot_standardize::mapping_for(ingot_model::Provider::Shopify);
        for model in Model::ALL {
            let expected: std::collections::BTreeMap<String, Value> = sim
                .record_bytes(resource(model))
                .into_iter()
                .map(|(id, json)| {
                    let ev = ingot_model::RawEvent {
                        event_id: "x".into(),
                        tenant_id: "acme".into(),
                        connection_id: connection.into(),
                        provider: "shopify".into(),
                        topic: format!("{}/rest", resource(model).plural()),
                        source: "backfill".into(),
                        api_version: None,
                        received_at: "2026-01-01T00:00:00Z".into(),
                        triggered_at: None,
                        payload: json.into_bytes(),
                    };
                    let Ok(ingot_standardize::Outcome::Record(
                        ingot_standardize::Standardized::Upsert { data, .. },
                    )) = mapping.standardize(&ev)
                    else {
                        panic!("simulator record {id} does not standardize");
                    };
                    (id.to_string(), data.to_json())
                })
                .collect();
            // the view converges asynchronously: wait for the same id set, then compare
            let deadline = Instant::now() + Duration::from_secs(60);
            let got = loop {
                let got = self.all_records(model, connection).await;
                if got.keys().eq(expected.keys()) || Instant::now() > deadline {
                    break got;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let missing: Vec<&String> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
            if !missing.is_empty() {
                let prefix = format!("{connection}/{model}/");
                let keys = |msgs: Vec<ingot_kafka::Message>| {
                    msgs.into_iter()
                        .filter_map(|m| {
                            m.key_str()
                                .filter(|k| k.starts_with(&prefix))
                                .map(str::to_string)
                        })
                        .collect::<std::collections::BTreeSet<_>>()
                };
                let raw = keys(self.kafka().read_all("raw.shopify").await.unwrap());
                let norm = keys(
                    self.kafka()
                        .read_all(&model.normalized_topic())
                        .await
                        .unwrap(),
                );
                let m0 = format!("{prefix}{}", missing[0]);
                eprintln!("DEBUG raw keys {} normalized keys {} ; first missing {m0} on raw: {} on normalized: {}", raw.len(), norm.len(), raw.contains(&m0), norm.contains(&m0));
                eprintln!(
                    "DEBUG offsets raw {:?} normalized {:?}",
                    self.kafka().end_offsets("raw.shopify").unwrap(),
                    self.kafka().end_offsets(&model.normalized_topic()).unwrap()
                );
                eprintln!(
                    "DEBUG freshness {}",
                    self.get("/v1/orders?limit=1", KEY).await.1["freshness"]
                );
                let all = self.kafka().read_all("raw.shopify").await.unwrap();
                let mut per: std::collections::BTreeMap<i32, (usize, i64, i64)> =
                    Default::default();
                for m in &all {
                    let e = per.entry(m.partition).or_insert((0, i64::MAX, -1));
                    e.0 += 1;
                    e.1 = e.1.min(m.offset);
                    e.2 = e.2.max(m.offset);
                }
                eprintln!("DEBUG raw read per partition (count, min, max): {per:?}");
                let events: Vec<(String, String)> = all
                    .iter()
                    .filter(|m| m.key_str() == Some(m0.as_str()))
                    .map(|m| (m.partition.to_string(), m.offset.to_string()))
                    .collect();
                eprintln!("DEBUG missing key raw events {events:?}");
            }
            let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{model}: missing {missing:?}, extra {extra:?} ({} expected)",
                expected.len()
            );
            for (id, fields) in &expected {
                for (field, value) in fields.as_object().unwrap() {
                    assert_eq!(&got[id][field], value, "{model} {id}: field {field}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_is_mirrored_from_the_simulator_and_stays_mirrored() {
    let _serial = serial();
    let h = Harness::start_with(fast_sync()).await;
    let sim = ShopifySim::start(ShopifySimConfig::small(11, 240)).await;
    h.create_sim_connection("sim-1", &sim, 1).await;
    let status = h
        .wait_sync("sim-1", |m| m["state"] == "done" && m["cursor"].is_string())
        .await;
    assert_eq!(status["models"]["orders"]["progress_percent"], 100.0);
    assert!(
        status["models"]["orders"]["records_seen"].as_u64().unwrap() >= 230,
        "{status}"
    );
    h.assert_mirrors("sim-1", &sim).await;
    assert_eq!(
        sim.stats().bucket_overflows,
        0,
        "the connector stays under the rate limit"
    );

    // changes after the historical sync reach the API through reconciliation
    let order_ids = sim.ids(Resource::Orders);
    let (touched, deleted) = (order_ids[3], order_ids[5]);
    let now = sim.now();
    let mut changed = sim
        .records(Resource::Orders)
        .into_iter()
        .find(|o| o["id"].as_u64() == Some(touched))
        .unwrap();
    changed["note"] = json!("changed after the historical sync");
    changed["updated_at"] = json!(ingot_model::format_utc(&now));
    assert!(sim.upsert(Resource::Orders, changed));
    assert!(sim.delete(Resource::Orders, deleted));
    let rid = |id: u64| RecordKey::new("sim-1", Model::Order, id.to_string()).record_id();
    h.wait_for(&format!("/v1/orders/{}", rid(touched)), |s, v| {
        s == 200 && v["data"]["note"] == "changed after the historical sync"
    })
    .await;
    h.wait_for(&format!("/v1/orders/{}", rid(deleted)), |s, _| s == 404)
        .await;
    let versions = h
        .records_for("normalized.order", &format!("sim-1/order/{deleted}"))
        .await;
    assert_eq!(
        versions.last().unwrap().value,
        None,
        "a polled deletion is a tombstone"
    );
    h.assert_mirrors("sim-1", &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_failures_are_visible_and_the_next_run_fills_the_gap() {
    let _serial = serial();
    let h = Harness::start_with(fast_sync()).await;
    let sim = ShopifySim::start(ShopifySimConfig::small(12, 120)).await;
    // 429 bursts and a page that fails 3 times are absorbed by retries
    sim.fail_next_with_429(2);
    sim.fail_page(Endpoint::List(Resource::Customers), 1, 3, 503);
    // the first orders page fails past the retry budget (5 attempts) twice over
    sim.fail_page(Endpoint::List(Resource::Orders), 1, 10, 503);
    h.create_sim_connection("sim-2", &sim, 1).await;
    let failed = h
        .wait_for("/v1/connections/sim-2/sync-status", |s, v| {
            s == 200 && v["models"]["orders"]["last_error"].is_string()
        })
        .await;
    let orders = &failed["models"]["orders"];
    assert!(
        orders["state"] == "partial" || orders["state"] == "failed" || orders["state"] == "syncing",
        "{orders}"
    );
    assert!(
        orders["last_error"].as_str().unwrap().contains("503"),
        "{orders}"
    );
    assert!(
        orders["cursor"].is_null(),
        "the cursor does not move on failure: {orders}"
    );
    // the fault runs out; the next run resumes and completes
    h.wait_sync("sim-2", |m| m["state"] == "done").await;
    h.assert_mirrors("sim-2", &sim).await;
    let st = sim.stats();
    assert!(st.injected_errors >= 13, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_historical_sync_resumes_where_it_stopped() {
    let _serial = serial();
    let mut h = Harness::start_with(ingot_sync::SyncSettings {
        window: chrono::Duration::days(30),
        ..fast_sync()
    })
    .await;
    let sim = ShopifySim::start(ShopifySimConfig::small(13, 400)).await;
    sim.set_delay(Duration::from_millis(40));
    h.create_sim_connection("sim-3", &sim, 3600).await;
    // stop the process part-way through the orders backfill
    h.wait_for("/v1/connections/sim-3/sync-status", |s, v| {
        s == 200
            && v["models"]["orders"]["backfill"]["windows_done"]
                .as_u64()
                .is_some_and(|n| n >= 5)
    })
    .await;
    let before = sim.stats().per_endpoint.get("orders").copied().unwrap_or(0);
    h.down().await;
    sim.set_delay(Duration::ZERO);
    h.up().await;
    h.wait_sync("sim-3", |m| m["state"] == "done").await;
    h.assert_mirrors("sim-3", &sim).await;
    let total = sim.stats().per_endpoint.get("orders").copied().unwrap_or(0);
    // 760 days in 30-day windows = 26 windows of ~16 orders: one request each. Resuming
    // must not start over: at most the interrupted page is fetched again.
    assert!(before >= 5, "stopped after {before} order requests");
    assert!(
        total <= 26 + 1,
        "{total} order requests in all ({before} before the restart)"
    );
}

// ---------------------------------------------------------------------------------------
// WooCommerce webhooks.

fn woo_delivery(topic: &str, body: &[u8], delivery_id: &str) -> shopsim::Delivery {
    shopsim::Delivery {
        topic: topic.into(),
        body: body.to_vec(),
        headers: vec![
            (
                "User-Agent".into(),
                "WooCommerce/4.7.0 Hookshot (WordPress/5.5.3)".into(),
            ),
            ("Content-Type".into(), "application/json".into()),
            ("X-WC-Webhook-Source".into(), "https://example.com/".into()),
            ("X-WC-Webhook-Topic".into(), topic.into()),
            ("X-WC-Webhook-Signature".into(), shopsim::sign(SECRET, body)),
            ("X-WC-Webhook-ID".into(), "27".into()),
            ("X-WC-Webhook-Delivery-ID".into(), delivery_id.into()),
        ],
    }
}

impl Harness {
    async fn post_woo(&self, d: &shopsim::Delivery) -> u16 {
        let mut req = self
            .client
            .post(format!("{}/webhooks/woocommerce/woo-1", self.base))
            .body(d.body.clone());
        for (k, v) in &d.headers {
            req = req.header(k, v);
        }
        req.send().await.unwrap().status().as_u16()
    }
}

fn woo_id(model: Model, remote: &str) -> String {
    RecordKey::new("woo-1", model, remote).record_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woocommerce_webhooks_flow_end_to_end() {
    let _serial = serial();
    let h = Harness::start().await;
    let before = h
        .kafka()
        .end_offsets("raw.woocommerce")
        .unwrap()
        .iter()
        .map(|(_, o)| o)
        .sum::<i64>();
    // the ping: unsigned form body, 200, nothing written
    let r = h
        .client
        .post(format!("{}/webhooks/woocommerce/woo-1", h.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("webhook_id=27")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // a real delivery without a valid signature: 401, nothing written
    let order = json!({
        "id": 9001, "number": "9001", "status": "processing", "currency": "USD",
        "date_created_gmt": "2026-11-20T15:00:00", "date_modified_gmt": "2026-11-20T15:05:00",
        "date_paid_gmt": "2026-11-20T15:01:00", "discount_total": "0.00", "shipping_total": "5.00",
        "total": "47.93", "total_tax": "0.00", "customer_id": 0, "customer_note": "",
        "billing": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "country": "US"},
        "shipping": {}, "shipping_lines": [], "tax_lines": [], "coupon_lines": [], "fee_lines": [], "refunds": [],
        "line_items": [{"id": 1, "name": "Caf&eacute; &amp; Bar Mug", "product_id": 70, "variation_id": 0, "quantity": 3,
            "subtotal": "42.93", "total": "42.93", "total_tax": "0.00", "sku": "MUG", "price": 14.309999999999999, "taxes": []}]
    });
    let body = serde_json::to_vec(&order).unwrap();
    let mut forged = woo_delivery("order.created", &body, "d1");
    forged
        .headers
        .iter_mut()
        .filter(|(k, _)| k == "X-WC-Webhook-Signature")
        .for_each(|(_, v)| *v = shopsim::sign("wrong", &body));
    assert_eq!(h.post_woo(&forged).await, 401);
    let after = h
        .kafka()
        .end_offsets("raw.woocommerce")
        .unwrap()
        .iter()
        .map(|(_, o)| o)
        .sum::<i64>();
    assert_eq!(after, before, "ping and forged delivery wrote nothing");

    // a signed delivery; then the same content again with a new delivery id
    assert_eq!(
        h.post_woo(&woo_delivery("order.created", &body, "d2"))
            .await,
        200
    );
    assert_eq!(
        h.post_woo(&woo_delivery("order.updated", &body, "d3"))
            .await,
        200
    );
    let got = h
        .wait_for(
            &format!("/v1/orders/{}", woo_id(Model::Order, "9001")),
            |s, _| s == 200,
        )
        .await;
    let d = &got["data"];
    assert_eq!(d["provider"], "woocommerce");
    assert_eq!(
        d["line_items"][0]["name"], "Café & Bar Mug",
        "entities decoded once"
    );
    assert_eq!(
        d["line_items"][0]["unit_price"], "14.31",
        "unit price from subtotal / quantity, not the float"
    );
    assert_eq!(d["total_price"], "47.93");
    assert_eq!(
        d["customer_remote_id"],
        Value::Null,
        "customer_id 0 is a guest"
    );
    assert_eq!(d["remote_updated_at"], "2026-11-20T15:05:00Z");
    h.wait_processed().await;
    assert_eq!(
        h.records_for("normalized.order", "woo-1/order/9001")
            .await
            .len(),
        1,
        "same content, one normalized version"
    );
    assert_eq!(
        h.records_for("raw.woocommerce", "woo-1/order/9001")
            .await
            .len(),
        2
    );

    // delete: {"id": N}
    assert_eq!(
        h.post_woo(&woo_delivery("order.deleted", b"{\"id\":9001}", "d4"))
            .await,
        200
    );
    h.wait_for(
        &format!("/v1/orders/{}", woo_id(Model::Order, "9001")),
        |s, _| s == 404,
    )
    .await;

    // the real fixtures, signed
    let Some(dir) = fixtures_dir() else { return };
    for (file, topic, model, remote) in [
        (
            "webhook_order_created.json",
            "order.created",
            Model::Order,
            "727",
        ),
        (
            "webhook_customer_created.json",
            "customer.created",
            Model::Customer,
            "25",
        ),
        (
            "webhook_product_created.json",
            "product.created",
            Model::Product,
            "794",
        ),
    ] {
        let body = std::fs::read(dir.join("woocommerce").join(file)).unwrap();
        assert_eq!(
            h.post_woo(&woo_delivery(topic, &body, file)).await,
            200,
            "{file}"
        );
        let got = h
            .wait_for(
                &format!("/v1/{}/{}", model.resource(), woo_id(model, remote)),
                |s, _| s == 200,
            )
            .await;
        assert_eq!(got["data"]["remote_id"], remote);
    }
    let order = h
        .get(&format!("/v1/orders/{}", woo_id(Model::Order, "727")), KEY)
        .await
        .1;
    assert_eq!(order["data"]["total_price"], "29.35");
    assert_eq!(order["data"]["remote_updated_at"], "2017-03-22T19:28:08Z");
}

// ---------------------------------------------------------------------------------------
// The sync engine against the WooCommerce (store in UTC−5) and NetSuite (account in
// America/Los_Angeles, minute precision) simulators. The expected records are what the
// provider's mapping makes of everything the connector lists over the whole history
// (the connector tests hold the connector to the simulator byte for byte).

impl Harness {
    async fn post_connection(&self, body: Value) {
        let (s, v) = self.post_json("/v1/connections", &body).await;
        assert_eq!(s, 201, "{v}");
    }

    async fn assert_mirrors_connector(
        &self,
        connection: &str,
        provider: ingot_model::Provider,
        config: ingot_connectors::ConnectorConfig,
    ) {
        let connector = ingot_connectors::connector_for(provider, config);
        let mapping = ingot_standardize::mapping_for(provider);
        let window = ingot_connectors::Window {
            from: chrono::Utc::now() - chrono::Duration::days(3000),
            to: chrono::Utc::now() + chrono::Duration::days(1),
        };
        for model in Model::ALL {
            let mut expected = std::collections::BTreeMap::new();
            let mut page = None;
            loop {
                let p = connector
                    .list(model, &window, page.as_ref())
                    .await
                    .expect("connector lists");
                for r in p.items {
                    let ev = ingot_model::RawEvent {
                        event_id: "x".into(),
                        tenant_id: "acme".into(),
                        connection_id: connection.into(),
                        provider: provider.as_str().into(),
                        topic: r.topic.clone(),
                        source: "backfill".into(),
                        api_version: None,
                        received_at: "2026-01-01T00:00:00Z".into(),
                        triggered_at: None,
                        payload: r.payload.clone(),
                    };
                    match mapping.standardize(&ev) {
                        Ok(ingot_standardize::Outcome::Record(
                            ingot_standardize::Standardized::Upsert {
                                remote_id, data, ..
                            },
                        )) => {
                            expected.insert(remote_id, data.to_json());
                        }
                        other => panic!(
                            "{provider} {model} {} does not standardize: {other:?}",
                            r.remote_id
                        ),
                    }
                }
                page = p.next;
                if page.is_none() {
                    break;
                }
            }
            assert!(
                !expected.is_empty(),
                "{provider} {model}: the simulator listed nothing"
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            let got = loop {
                let got = self.all_records(model, connection).await;
                if got.keys().eq(expected.keys()) || Instant::now() > deadline {
                    break got;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let missing: Vec<&String> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
            let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{provider} {model}: missing {missing:?}, extra {extra:?}"
            );
            for (id, fields) in &expected {
                for (field, value) in fields.as_object().unwrap() {
                    assert_eq!(
                        &got[id][field], value,
                        "{provider} {model} {id}: field {field}"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woocommerce_store_in_utc_minus_5_is_mirrored() {
    let _serial = serial();
    let h = Harness::start_with(fast_sync()).await;
    let now = chrono::Utc::now();
    let sim = ingot_testkit::woocommerce::WooSim::start(ingot_testkit::woocommerce::WooSimConfig {
        seed: 21,
        now: chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap(),
        span_days: 700,
        orders: 150,
        customers: 40,
        products: 30,
        ..Default::default()
    })
    .await;
    let (key, secret) = (
        sim.config().consumer_key.clone(),
        sim.config().consumer_secret.clone(),
    );
    h.post_connection(json!({
        "id": "woo-sim", "provider": "woocommerce", "base_url": sim.base_url(),
        "credentials": {"consumer_key": key, "consumer_secret": secret},
        "webhook_secrets": ["woo-secret"], "history_days": 730, "poll_interval_secs": 3600
    }))
    .await;
    h.wait_sync("woo-sim", |m| m["state"] == "done").await;
    let config = ingot_connectors::ConnectorConfig {
        base_url: sim.base_url().to_string(),
        consumer_key: Some(key),
        consumer_secret: Some(secret),
        ..Default::default()
    };
    h.assert_mirrors_connector("woo-sim", ingot_model::Provider::WooCommerce, config)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netsuite_account_in_los_angeles_is_polled_and_mirrored() {
    let _serial = serial();
    let h = Harness::start_with(fast_sync()).await;
    let now = chrono::Utc::now();
    let sim =
        ingot_testkit::netsuite::NetSuiteSim::start(ingot_testkit::netsuite::NetSuiteSimConfig {
            seed: 22,
            now: chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap(),
            span_days: 700,
            sales_orders: 150,
            other_transactions: 20,
            customers: 40,
            items: 30,
            deleted: 5,
            ..Default::default()
        })
        .await;
    let token = sim.config().token.clone();
    h.post_connection(json!({
        "id": "ns-sim", "provider": "netsuite", "base_url": sim.base_url(),
        "credentials": {"access_token": token}, "timezone": "America/Los_Angeles",
        "history_days": 730, "poll_interval_secs": 1
    }))
    .await;
    h.wait_sync("ns-sim", |m| m["state"] == "done").await;
    let config = ingot_connectors::ConnectorConfig {
        base_url: sim.base_url().to_string(),
        access_token: Some(token),
        timezone: Some("America/Los_Angeles".into()),
        ..Default::default()
    };
    h.assert_mirrors_connector("ns-sim", ingot_model::Provider::NetSuite, config.clone())
        .await;

    // a deletion in the account reaches the API through the DeletedRecord feed
    let victim = sim.records(ingot_testkit::netsuite::NsTable::Customer)[0].id;
    assert!(sim.delete(ingot_testkit::netsuite::NsTable::Customer, victim));
    let path = format!(
        "/v1/customers/{}",
        RecordKey::new("ns-sim", Model::Customer, victim.to_string()).record_id()
    );
    h.wait_for(&path, |s, _| s == 404).await;
    h.assert_mirrors_connector("ns-sim", ingot_model::Provider::NetSuite, config)
        .await;
}

/// What the change-webhook receiver got: headers and raw body of each request.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>, Instant)>>>;

/// A receiver for change webhooks on a free loopback port; answers 200 to everything.
async fn change_receiver() -> (String, Received) {
    let got: Received = Default::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    store
                        .lock()
                        .unwrap()
                        .push((headers, body.to_vec(), Instant::now()));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Standard Webhooks, checked by hand (not with the crate ingot signs with):
/// base64(HMAC-SHA256(base64decode(secret without "whsec_"), "<id>.<timestamp>.<body>")).
fn signature_ok(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).as_bytes());
    mac.update(body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    h("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(want.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_webhooks_reach_a_subscribed_endpoint_signed_and_in_order() {
    let _serial = serial();
    let h = Harness::start_stages(ingot_sync::SyncSettings::default(), 3600, Stages::ALL).await;
    let (url, got) = change_receiver().await;
    let r = h
        .client
        .post(format!("{}/v1/webhook-endpoints", h.base))
        .bearer_auth(KEY)
        .json(&json!({"url": url, "events": ["order.*"], "description": "e2e"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let endpoint: Value = r.json().await.unwrap();
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{endpoint}");
    // the other tenant's records never reach this endpoint
    let other = shopsim::delivery(
        "globex.myshopify.com",
        "globex-secret",
        "orders/create",
        &sample_order(4_400_000_000_009, "paid", "2026-11-20T10:00:00Z"),
        "g1",
        "2026-11-20T15:00:00Z",
    );
    assert_eq!(
        shopsim::send(&h.client, &h.base, "globex-shop", &other)
            .await
            .unwrap(),
        200
    );
    // create, update, delete of one order, a webhook each; time each to its change webhook
    let oid = 4_400_000_000_001u64;
    let sent = [
        (
            delivery(
                "orders/create",
                &sample_order(oid, "pending", "2026-11-20T10:00:00Z"),
                "w1",
            ),
            "order.created",
        ),
        (
            delivery(
                "orders/updated",
                &sample_order(oid, "paid", "2026-11-20T11:00:00Z"),
                "w2",
            ),
            "order.updated",
        ),
        (
            shopsim::delivery(
                "demo.myshopify.com",
                SECRET,
                "orders/delete",
                &json!({"id": oid}),
                "w3",
                "2026-11-20T16:00:00Z",
            ),
            "order.deleted",
        ),
    ];
    let mut latencies = Vec::new();
    for (i, (d, kind)) in sent.iter().enumerate() {
        let t = Instant::now();
        assert_eq!(h.post(d).await, 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if got.lock().unwrap().len() > i {
                break;
            }
            assert!(Instant::now() < deadline, "no {kind} change webhook");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at = got.lock().unwrap()[i].2;
        latencies.push(at.duration_since(t));
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "only this tenant's three changes");
    let mut last_version = -1i64;
    for ((headers, body, _), (_, kind)) in got.iter().zip(&sent) {
        assert!(signature_ok(&secret, headers, body), "bad signature");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], *kind);
        assert_eq!(v["data"]["id"], order_id(oid));
        assert_eq!(v["data"]["remote_id"], oid.to_string());
        let version = v["data"]["version"].as_i64().unwrap();
        assert!(version > last_version, "versions increase per record");
        last_version = version;
    }
    let updated: Value = serde_json::from_slice(&got[1].1).unwrap();
    assert_eq!(updated["data"]["payment_status"], "paid");
    let deleted: Value = serde_json::from_slice(&got[2].1).unwrap();
    assert_eq!(deleted["data"]["remote_deleted"], true);
    println!(
        "webhook in → change webhook received (loopback): {:?}",
        latencies
            .iter()
            .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
    );
    // a clean stop, stages before the broker: a group consumer dropped after its broker
    // is gone waits in librdkafka's close
    let mut h = h;
    h.down().await;
}

// ---------------------------------------------------------------------------------------
// Issue 11: paging that cannot lose or loop, on-demand reconciliation, sync-status exit.

use ingot_testkit::woocommerce::{WooResource, WooSim, WooSimConfig};

/// Runs `ingot sync-status --follow` against the harness; (exit success, stdout, stderr).
/// The command must end by itself: killed and failed after 60 s.
fn sync_status_follow(h: &Harness, connection: &str) -> (bool, String, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "sync-status",
            "--api",
            &h.base,
            "--key",
            KEY,
            connection,
            "--follow",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ingot sync-status --follow did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn create_woo_connection(h: &Harness, id: &str, sim: &WooSim) {
    let (s, v) = h
        .post_json(
            "/v1/connections",
            &json!({
                "id": id, "provider": "woocommerce", "base_url": sim.base_url(),
                "credentials": {"consumer_key": sim.config().consumer_key, "consumer_secret": sim.config().consumer_secret},
                "webhook_secrets": ["woo-secret"], "history_days": 3650, "poll_interval_secs": 3600,
                "page_size": 25
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_ties_sync_whole_reconcile_runs_on_request_and_sync_status_exits() {
    let _serial = serial();
    let h = Harness::start_with(ingot_sync::SyncSettings {
        window: chrono::Duration::days(365),
        ..fast_sync()
    })
    .await;
    let sim = WooSim::start(WooSimConfig {
        seed: 21,
        orders: 150,
        customers: 30,
        products: 12,
        ..WooSimConfig::default()
    })
    .await;
    let tie = sim.now() - chrono::Duration::days(5);
    for _ in 0..120 {
        sim.create_at(WooResource::Orders, tie);
    }
    sim.faults().shuffle_ties(true);
    create_woo_connection(&h, "woo-e2e", &sim).await;
    let status = h.wait_sync("woo-e2e", |m| m["state"] == "done").await;
    let expected: std::collections::BTreeSet<String> = sim
        .records(WooResource::Orders)
        .into_iter()
        .filter(|v| v.status != "trash")
        .map(|v| v.id.to_string())
        .collect();
    let orders = &status["models"]["orders"];
    assert_eq!(orders["records_seen"], expected.len() as u64, "{orders}");
    assert_eq!(orders["records_written"], expected.len() as u64, "{orders}");
    // every order reaches the API
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: std::collections::BTreeSet<String> = h
            .all_records(Model::Order, "woo-e2e")
            .await
            .into_keys()
            .collect();
        if got == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders in the API",
            got.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // sync-status --follow exits 0 once every model is done
    let (ok, out, err) = sync_status_follow(&h, "woo-e2e");
    assert!(ok, "stdout {out} stderr {err}");
    assert!(out.contains("orders") && out.contains("done"), "{out}");

    // an order placed now (no webhook) is picked up by a reconciliation asked for over HTTP
    let saved_at = chrono::Utc::now();
    let touched = sim.create_at(WooResource::Orders, saved_at);
    let url = |id: &str| format!("{}/v1/connections/{id}/reconcile", h.base);
    let post = |id: &str, key: Option<&str>| {
        let mut r = h.client.post(url(id));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(post("woo-e2e", None).await.unwrap().status(), 401);
    assert_eq!(
        post("woo-e2e", Some(OTHER_KEY)).await.unwrap().status(),
        404
    );
    assert_eq!(post("nope", Some(KEY)).await.unwrap().status(), 404);
    let resp = post("woo-e2e", Some(KEY)).await.unwrap();
    assert_eq!(resp.status(), 202);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["run"]["kind"], "reconcile", "{run}");
    assert_eq!(run["run"]["connection_id"], "woo-e2e", "{run}");
    let requested_at =
        chrono::DateTime::parse_from_rfc3339(run["run"]["requested_at"].as_str().unwrap()).unwrap();
    let started_after_request = |m: &Value| {
        m["last_run_started"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t > requested_at)
    };
    let models: Vec<&str> = run["run"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(models.len(), 3, "{run}");
    for m in ["orders", "customers", "products"] {
        assert!(models.contains(&m), "{run}");
    }
    let after = h
        .wait_sync("woo-e2e", |m| {
            m["phase"] == "reconcile" && m["state"] == "done" && started_after_request(m)
        })
        .await;
    assert_eq!(after["models"]["orders"]["last_run_records"], 1, "{after}");
    let rid = RecordKey::new("woo-e2e", Model::Order, touched.to_string()).record_id();
    let saved = ingot_model::format_utc(
        &chrono::DateTime::from_timestamp(saved_at.timestamp(), 0).unwrap(),
    );
    h.wait_for(&format!("/v1/orders/{rid}"), |s, v| {
        s == 200 && v["data"]["remote_updated_at"] == saved.as_str()
    })
    .await;

    // a store that never advances: the run fails visibly and sync-status says why
    let stuck = WooSim::start(WooSimConfig {
        seed: 22,
        orders: 80,
        customers: 40,
        products: 5,
        ..WooSimConfig::default()
    })
    .await;
    stuck.faults().never_advance(true);
    create_woo_connection(&h, "woo-stuck", &stuck).await;
    let (ok, out, err) = sync_status_follow(&h, "woo-stuck");
    assert!(!ok, "stdout {out} stderr {err}");
    assert!(
        err.contains("the sync of connection woo-stuck did not finish"),
        "{err}"
    );
    assert!(err.contains("paging made no progress"), "{err}");
    let (_, st) = h.get("/v1/connections/woo-stuck/sync-status", KEY).await;
    assert_eq!(st["models"]["orders"]["state"], "failed", "{st}");
}
