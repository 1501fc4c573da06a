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
//! print that they are skipped when the folder is absent — and fail when `CI=true`
//! (`ingot_testkit::fixtures`); the others use the simulated shop.

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

/// A 4 MB webhook (2 000 line items, as a large B2B order has) is accepted and served
/// whole: the body limit, the raw event, the normalized record carrying it as
/// `remote_data`, and every consumer's fetch size hold it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_mb_webhook_is_accepted_and_served_with_every_line_item() {
    let _serial = serial();
    let mut h = Harness::start_edited(
        ingot_sync::SyncSettings::default(),
        3600,
        Stages {
            forwarder: false,
            ..Stages::ALL
        },
        |text| text.replace("max_body_bytes = 200000", "max_body_bytes = 5000000"),
    )
    .await;
    assert_eq!(h.cfg.http.max_body_bytes, 5_000_000);
    const LINES: u64 = 2000;
    let oid: u64 = 820_982_911_946_777_001;
    let lines: Vec<(u64, u64, String, String, i64)> = (0..LINES)
        .map(|i| {
            (
                9_000_000 + i,
                19_000_000 + i,
                format!("Item {i}"),
                format!("{}.{:02}", 1 + i % 90, i % 100),
                1 + (i % 5) as i64,
            )
        })
        .collect();
    let tuples: Vec<(u64, u64, &str, &str, i64)> = lines
        .iter()
        .map(|(p, v, t, pr, q)| (*p, *v, t.as_str(), pr.as_str(), *q))
        .collect();
    let c = shopsim::customer(
        7_408_123_456_789_001,
        "Ada",
        "Lovelace",
        "ada@example.com",
        "2026-11-01T09:00:00-05:00",
    );
    let mut order = shopsim::order(
        oid,
        4242,
        Some(&c),
        &tuples,
        "10.00",
        "paid",
        "2026-11-20T10:30:00-05:00",
    );
    // line items as big as real ones (properties, tax lines): ≈2 KB each
    for li in order["line_items"].as_array_mut().unwrap() {
        li["properties"] = json!([{"name": "engraving", "value": "x".repeat(1250)}]);
    }
    let d = delivery("orders/create", &order, "big-1");
    let size = d.body.len();
    assert!(
        (3_800_000..=4_500_000).contains(&size),
        "the webhook body is {size} bytes, not ≈4 MB"
    );
    assert_eq!(h.post(&d).await, 200);

    let path = format!("/v1/orders/{}", order_id(oid));
    let got = h.wait_for(&path, |s, _| s == 200).await;
    let items = got["data"]["line_items"].as_array().unwrap();
    assert_eq!(items.len(), LINES as usize);
    assert_eq!(items[0]["quantity"], 1);
    assert_eq!(items[0]["unit_price"], "1.00");
    assert_eq!(items[1999]["quantity"], 5);
    assert_eq!(
        items[1999]["unit_price"],
        format!("{}.{:02}", 1 + 1999 % 90, 1999 % 100)
    );
    assert_eq!(got["data"]["total_price"], order["total_price"]);
    // and the untouched payload, on request
    let (s, raw) = h
        .get(&format!("{path}?include_remote_data=true"), KEY)
        .await;
    assert_eq!(s, 200);
    assert_eq!(raw["data"]["remote_data"], order);
    h.down().await;
}

/// Per-API-key rate limits over real HTTP: with a limit of N a minute, a key's first N
/// requests (spread over the query, connections, replays and webhook-endpoints APIs) pass,
/// the next get 429 with `Retry-After` and the error envelope on every one of those
/// APIs, and another key is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_api_key_is_rate_limited_on_every_v1_route() {
    let _serial = serial();
    const N: usize = 4;
    let mut h = Harness::start_edited(
        ingot_sync::SyncSettings::default(),
        3600,
        Stages::ALL,
        |text| {
            text.replace(
                "rate_limit_per_minute = 0",
                &format!("rate_limit_per_minute = {N}"),
            )
        },
    )
    .await;
    let routes = [
        "/v1/orders",
        "/v1/connections",
        "/v1/replays",
        "/v1/webhook-endpoints",
    ];
    let send = |path: &'static str, key: &'static str| {
        let req = h.client.get(format!("{}{path}", h.base)).bearer_auth(key);
        async move { req.send().await.unwrap() }
    };
    for path in routes.iter().cycle().take(N) {
        let r = send(path, KEY).await;
        assert_eq!(r.status().as_u16(), 200, "{path} within the limit");
    }
    for path in routes {
        let r = send(path, KEY).await;
        assert_eq!(r.status().as_u16(), 429, "{path} over the limit");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // one request per 60/N s replenishes
        assert!((1..=60 / N as u64).contains(&retry), "Retry-After {retry}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("rate limit"),
            "{body}"
        );
    }
    // another key has its own budget
    for path in routes {
        assert_eq!(send(path, OTHER_KEY).await.status().as_u16(), 200, "{path}");
    }
    // unknown keys are not counted (nor limited): the routes say 401
    for _ in 0..N + 1 {
        assert_eq!(
            send("/v1/orders", "no-such-key").await.status().as_u16(),
            401
        );
    }
    // outside /v1 nothing is limited
    assert_eq!(
        h.client
            .get(format!("{}/healthz", h.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    h.down().await;
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
    assert!(dlq
        .iter()
        .all(|m| m.header("ingot-dlq-stage") == Some("processor")));
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

/// The shared fixtures (skipped when absent, a failure when `CI=true`).
fn fixtures_dir() -> Option<PathBuf> {
    ingot_testkit::fixtures::fixtures_dir()
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
        bulk_poll_interval: Duration::from_millis(50),
        public_url: None,
        ..Default::default()
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
    /// `DELETE /v1/connections/{id}`: the status.
    async fn delete_connection(&self, id: &str) -> u16 {
        self.client
            .delete(format!("{}/v1/connections/{id}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

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

    /// A Shopify connection on the simulator, on the default API (GraphQL).
    async fn create_sim_connection(&self, id: &str, sim: &ShopifySim, poll_secs: u64) {
        self.create_sim_connection_on(id, sim, poll_secs, None)
            .await
    }

    /// A Shopify connection on the simulator; `api`: `Some("rest")` for the REST Admin API.
    async fn create_sim_connection_on(
        &self,
        id: &str,
        sim: &ShopifySim,
        poll_secs: u64,
        api: Option<&str>,
    ) {
        let mut body = json!({
            "id": id, "provider": "shopify", "shop_domain": "sim.myshopify.com",
            "base_url": sim.base_url(), "credentials": {"access_token": sim.access_token()},
            "webhook_secrets": ["sim-secret"], "history_days": 760, "poll_interval_secs": poll_secs,
            "page_size": 50
        });
        if let Some(api) = api {
            body["api"] = json!(api);
        }
        let (s, v) = self.post_json("/v1/connections", &body).await;
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
    let st = sim.stats();
    assert_eq!(
        st.graphql_throttled, 0,
        "the connector stays under the GraphQL cost bucket"
    );
    assert!(
        st.graphql_requests > 0,
        "a Shopify connection syncs through GraphQL"
    );
    assert_eq!(
        st.per_endpoint.get("orders"),
        None,
        "no REST listing: {st:?}"
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
    // the REST Admin API stays selectable (custom apps on older versions)
    h.create_sim_connection_on("sim-2", &sim, 1, Some("rest"))
        .await;
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
    // counted in REST requests per endpoint (one per 30-day window)
    h.create_sim_connection_on("sim-3", &sim, 3600, Some("rest"))
        .await;
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

/// The historical sync of a GraphQL connection runs as one bulk operation per model; the
/// job's id is checkpointed, so a restart polls the same job instead of starting over; a
/// failed job is visible and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_backfill_resumes_its_operation_after_a_restart_and_retries_a_failed_one() {
    let _serial = serial();
    let mut h = Harness::start_with(fast_sync()).await;
    let sim = ShopifySim::start(ShopifySimConfig::small(21, 300)).await;
    // the jobs keep running until the restart
    sim.set_bulk_polls(u32::MAX);
    h.create_sim_connection_on("bulk-1", &sim, 3600, None).await;
    let v = h
        .wait_for("/v1/connections/bulk-1/sync-status", |s, v| {
            s == 200 && v["models"]["orders"]["backfill"]["bulk"]["state"] == "running"
        })
        .await;
    let op = v["models"]["orders"]["backfill"]["bulk"]["operation_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(op.starts_with("gid://shopify/BulkOperation/"), "{op}");
    assert_eq!(v["models"]["orders"]["state"], "syncing");
    h.down().await;
    sim.set_bulk_polls(1);
    // the next job started (the customers') fails once
    sim.fail_next_bulk(1);
    h.up().await;
    let st = h.wait_sync("bulk-1", |m| m["state"] == "done").await;
    h.assert_mirrors("bulk-1", &sim).await;
    let orders = &st["models"]["orders"];
    assert_eq!(
        orders["bulk"]["operation_id"],
        json!(op),
        "the same job after the restart"
    );
    assert_eq!(orders["bulk"]["attempts"], 1);
    assert_eq!(orders["bulk"]["state"], "done");
    assert_eq!(
        orders["records_seen"].as_u64(),
        Some(sim.ids(Resource::Orders).len() as u64)
    );
    let customers = &st["models"]["customers"];
    assert_eq!(customers["bulk"]["attempts"], 2, "{customers}");
    assert!(
        customers["bulk"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("FAILED (INTERNAL_SERVER_ERROR)")),
        "{customers}"
    );
    let b = sim.bulk_stats();
    // orders 1 (resumed, not restarted), customers 2, products 1
    assert_eq!(b.started, 4, "{b:?}");
    assert_eq!(b.downloads, 3, "{b:?}");
    // the historical sync listed no page: every record came from the bulk results
    for endpoint in ["orders", "customers", "products"] {
        assert_eq!(
            sim.stats().per_endpoint.get(endpoint),
            None,
            "REST {endpoint}"
        );
    }
}

/// Jobs whose results expire every time: the historical sync falls back to the paged
/// listing after its attempts, says so, and still mirrors the shop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_bulk_results_fall_back_to_the_paged_listing() {
    let _serial = serial();
    let h = Harness::start_with(ingot_sync::SyncSettings {
        models: vec![Model::Product],
        ..fast_sync()
    })
    .await;
    let sim = ShopifySim::start(ShopifySimConfig::small(22, 40)).await;
    sim.expire_bulk_results(true);
    h.create_sim_connection_on("bulk-2", &sim, 3600, None).await;
    let st = h
        .wait_for("/v1/connections/bulk-2/sync-status", |s, v| {
            s == 200 && v["models"]["products"]["state"] == "done"
        })
        .await;
    let p = &st["models"]["products"];
    assert_eq!(p["bulk"]["state"], "fallback", "{p}");
    assert_eq!(p["bulk"]["attempts"], 2, "{p}");
    assert!(
        p["bulk"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("result unavailable (403)")),
        "{p}"
    );
    assert_eq!(sim.bulk_stats().started, 2);
    // the view converges asynchronously
    let n = sim.ids(Resource::Products).len();
    assert!(n > 0);
    h.wait_for("/v1/products?limit=500", |s, v| {
        s == 200 && v["data"].as_array().map(Vec::len) == Some(n)
    })
    .await;
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
        consumer_key: Some(key.into()),
        consumer_secret: Some(secret.into()),
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
        access_token: Some(token.into()),
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
    // the server's one /openapi.json documents the endpoints API next to the query API
    let doc: Value = h
        .client
        .get(format!("{}/openapi.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{id}/replay",
        "/v1/orders/{id}",
    ] {
        assert!(paths.contains_key(p), "{p} not in /openapi.json");
    }
    assert!(doc["paths"]["/v1/webhook-endpoints"]["post"].is_object());
    assert!(doc["components"]["securitySchemes"].is_object());
    // the secret is stored sealed (ingot run seals with Config::keyring)
    let kafka = &h.infra.as_ref().unwrap().kafka;
    let stored = kafka
        .read_all(ingot_forwarder::ENDPOINTS_TOPIC)
        .await
        .unwrap();
    let id = endpoint["id"].as_str().unwrap();
    let mine: Vec<_> = stored.iter().filter(|m| m.key_str() == Some(id)).collect();
    assert_eq!(mine.len(), 1);
    let text = String::from_utf8_lossy(mine[0].value.as_deref().unwrap()).to_string();
    assert!(
        !text.contains(&secret) && text.contains("ingot-sealed:v1:"),
        "{text}"
    );
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
    // nothing more arrives once the forwarder has read everything (globex's order too)
    h.wait_processed().await;
    h.wait_forwarded().await;
    let received = got.clone();
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
    // a replay of the last hour re-sends the three changes with their ids and bodies (on
    // Apache Kafka from the offsets its timestamp index gives, else from the start)
    let now = chrono::Utc::now();
    let r = h
        .client
        .post(format!(
            "{}/v1/webhook-endpoints/{}/replay",
            h.base,
            endpoint["id"].as_str().unwrap()
        ))
        .bearer_auth(KEY)
        .json(&json!({
            "since": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "until": (now + chrono::Duration::minutes(1)).to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["replayed"], 3, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "the replayed changes did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = received.lock().unwrap().clone();
    let id_of = |h: &axum::http::HeaderMap| h["webhook-id"].to_str().unwrap().to_string();
    for ((h0, b0, _), (h1, b1, _)) in all[..3].iter().zip(&all[3..6]) {
        assert_eq!(id_of(h0), id_of(h1), "a replay keeps the webhook-id");
        assert_eq!(b0, b1, "and the body");
        assert!(signature_ok(&secret, h1, b1));
    }
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
// Replay (DESIGN §3 rule 6, §6): re-standardizing history with a changed mapping, dry
// runs, dead-letter redrive. The processor runs in the test, so the test can swap its
// mapping between runs as a deploy would.

/// A Shopify mapping with a different revision whose output differs from the real one's:
/// `change` rewrites what the real mapping produced.
struct ChangedMapping {
    version: &'static str,
    change: fn(
        &ingot_model::RawEvent,
        Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError>,
    ) -> Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError>,
}

impl ingot_standardize::Mapping for ChangedMapping {
    fn provider(&self) -> ingot_model::Provider {
        ingot_model::Provider::Shopify
    }
    fn mapping_version(&self) -> &'static str {
        self.version
    }
    fn route(&self, topic: &str) -> Option<(Model, ingot_model::RawOp)> {
        ingot_standardize::shopify::ShopifyMapping.route(topic)
    }
    fn standardize(
        &self,
        e: &ingot_model::RawEvent,
    ) -> Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError> {
        (self.change)(e, ingot_standardize::shopify::ShopifyMapping.standardize(e))
    }
}

/// shopify/2: every order gets a note (a field the real mapping leaves empty here).
fn note_orders(
    _e: &ingot_model::RawEvent,
    r: Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError>,
) -> Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError> {
    use ingot_standardize::{Outcome, Standardized};
    match r {
        Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            remote_created_at,
            remote_updated_at,
            data: ingot_model::RecordData::Order(mut o),
        })) => {
            o.note = Some("mapped by shopify/2".into());
            Ok(Outcome::Record(Standardized::Upsert {
                remote_id,
                remote_created_at,
                remote_updated_at,
                data: ingot_model::RecordData::Order(o),
            }))
        }
        other => other,
    }
}

/// A buggy shopify/1: orders numbered 1002 fail to standardize.
fn reject_order_1002(
    e: &ingot_model::RawEvent,
    r: Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError>,
) -> Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError> {
    let payload: Value = serde_json::from_slice(&e.payload).unwrap_or(Value::Null);
    if payload["order_number"] == 1002 {
        return Err(ingot_standardize::StandardizeError::InvalidField {
            field: "order_number".into(),
            reason: "mapping bug under test".into(),
        });
    }
    r
}

/// A processor of the harness's group and state dir, with `mapping` for Shopify.
struct TestProcessor {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<
        Result<ingot_processor::BatchStats, ingot_processor::ProcessorError>,
    >,
}

impl TestProcessor {
    async fn start(h: &Harness, mapping: Option<ChangedMapping>) -> TestProcessor {
        Self::start_batch(h, mapping, 500).await
    }

    async fn start_batch(
        h: &Harness,
        mapping: Option<ChangedMapping>,
        max_batch: usize,
    ) -> TestProcessor {
        let codec = h.infra.as_ref().unwrap().codec().unwrap();
        Self::start_with(h, mapping, max_batch, codec).await
    }

    async fn start_with(
        h: &Harness,
        mapping: Option<ChangedMapping>,
        max_batch: usize,
        codec: ingot_kafka::AvroCodec,
    ) -> TestProcessor {
        let mut pc = ingot_processor::ProcessorConfig::new(ingot::app::processor_dir(&h.cfg));
        pc.exactly_once = h.kafka().capabilities.transactions;
        pc.group_id = h.cfg.processor.group_id.clone().unwrap();
        pc.max_batch = max_batch;
        pc.mapping_override =
            mapping.map(|m| ingot_processor::MappingOverride(std::sync::Arc::new(m)));
        let p = ingot_processor::Processor::open(pc, h.kafka().clone(), codec)
            .await
            .unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        TestProcessor {
            stop,
            task: tokio::spawn(p.run(rx)),
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

impl Harness {
    /// Every stage but the processor (the test runs its own [`TestProcessor`]s) and the
    /// forwarder.
    async fn start_without_processor() -> Harness {
        Harness::start_stages(
            ingot_sync::SyncSettings::default(),
            3600,
            Stages {
                processor: false,
                forwarder: false,
                ..Stages::ALL
            },
        )
        .await
    }

    /// Requests a replay through the API; returns its status path.
    async fn request_replay(&self, key: &str, body: Value) -> String {
        let r = self
            .client
            .post(format!("{}/v1/replays", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{body}");
        let v: Value = r.json().await.unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("rpl_"), "{v}");
        format!("/v1/replays/{id}")
    }

    /// Requests a replay through the API and waits until it is done.
    async fn replay(&self, key: &str, body: Value) -> Value {
        let path = self.request_replay(key, body).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, v) = self.get(&path, key).await;
            assert_eq!(s, 200, "{v}");
            if v["state"] == "done" {
                return v;
            }
            assert!(Instant::now() < deadline, "replay did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn count(&self, topic: &str, key: &str) -> usize {
        self.records_for(topic, key).await.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_applies_a_changed_mapping_to_history_and_its_dry_run_says_so_first() {
    let _serial = serial();
    let h = Harness::start_without_processor().await;
    let v1 = TestProcessor::start(&h, None).await;
    let ids: Vec<u64> = (0..3).map(|i| 820_982_911_946_154_600 + i).collect();
    for (i, id) in ids.iter().enumerate() {
        let o = sample_order(*id, "paid", "2026-11-20T10:00:00Z");
        assert_eq!(
            h.post(&delivery("orders/create", &o, &format!("o{i}")))
                .await,
            200
        );
    }
    let cust = shopsim::customer(
        7_408_123_456_789_001,
        "Ada",
        "Lovelace",
        "ada@example.com",
        "2026-11-01T09:00:00Z",
    );
    assert_eq!(
        h.post(&delivery("customers/create", &cust, "c1")).await,
        200
    );
    // another tenant's connection: never touched by acme's replay
    let other = shopsim::delivery(
        "globex.myshopify.com",
        "globex-secret",
        "orders/create",
        &sample_order(999, "paid", "2026-11-20T10:00:00Z"),
        "g1",
        "2026-11-20T15:00:00Z",
    );
    assert_eq!(
        shopsim::send(&h.client, &h.base, "globex-shop", &other)
            .await
            .unwrap(),
        200
    );
    h.wait_processed().await;
    let order_path = |id: u64| format!("/v1/orders/{}", order_id(id));
    for id in &ids {
        h.wait_for(&order_path(*id), |s, _| s == 200).await;
    }
    let before = h.get(&order_path(ids[0]), KEY).await.1;
    assert_eq!(before["data"]["mapping_version"], "shopify/1");
    assert_eq!(before["data"]["note"], Value::Null);
    let cust_id = RecordKey::new(CONN, Model::Customer, "7408123456789001").record_id();
    let cust_before = h
        .wait_for(&format!("/v1/customers/{cust_id}"), |s, _| s == 200)
        .await;
    let order_keys: Vec<String> = ids.iter().map(|id| format!("{CONN}/order/{id}")).collect();
    let cust_key = format!("{CONN}/customer/7408123456789001");
    let globex_key = "globex-shop/order/999";
    let mut counts = Vec::new();
    for k in order_keys
        .iter()
        .chain([&cust_key, &globex_key.to_string()])
    {
        let topic = if k.contains("/customer/") {
            "normalized.customer"
        } else {
            "normalized.order"
        };
        counts.push((topic, k.clone(), h.count(topic, k).await));
    }
    v1.stop().await;

    // the deploy: shopify/2 fills the order note
    let v2 = TestProcessor::start(
        &h,
        Some(ChangedMapping {
            version: "shopify/2",
            change: note_orders,
        }),
    )
    .await;

    // tenant scoping: acme cannot replay globex's connection
    let r = h
        .client
        .post(format!("{}/v1/replays", h.base))
        .bearer_auth(KEY)
        .json(&json!({"connection_ids": ["globex-shop"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // 1. the dry run: what would change, and nothing written
    // (a list that repeats itself is kept once: the processor matches every raw event
    // it reads against these lists)
    let dry = h
        .replay(
            KEY,
            json!({"connection_ids": [CONN, CONN, CONN], "models": ["order", "customer", "order"],
                   "dry_run": true}),
        )
        .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["connection_ids"], json!([CONN]), "{dry}");
    assert_eq!(dry["models"], json!(["order", "customer"]), "{dry}");
    // every raw event of shop-1 is read: 3 orders and a customer (+ the customer inside
    // each order is not a separate raw event)
    assert_eq!(dry["counts"]["read"], 4, "{dry}");
    assert_eq!(dry["counts"]["reemitted"], 3, "{dry}");
    let report = &dry["report"]["models"];
    assert_eq!(report["order"]["changed"], 3, "{dry}");
    assert_eq!(report["order"]["fields"], json!({"note": 3}), "{dry}");
    assert!(
        report.get("customer").is_none(),
        "customers do not change: {dry}"
    );
    let sample = &report["order"]["samples"][0];
    assert!(order_keys.contains(&sample["record_key"].as_str().unwrap().to_string()));
    assert_eq!(
        sample["changes"],
        json!([{"field": "note", "old": null, "new": "mapped by shopify/2"}])
    );
    // no `since`: read from the start
    assert_eq!(dry["seek"], "scan");
    for (topic, k, n) in &counts {
        assert_eq!(
            h.count(topic, k).await,
            *n,
            "a dry run wrote to {topic} for {k}"
        );
    }
    let (_, still) = h.get(&order_path(ids[0]), KEY).await;
    assert_eq!(still["data"]["note"], Value::Null);

    // another tenant cannot see acme's replay
    let dry_id = dry["id"].as_str().unwrap();
    assert_eq!(
        h.get(&format!("/v1/replays/{dry_id}"), OTHER_KEY).await.0,
        404
    );

    // 2. the replay itself does what the dry run said
    let real = h.replay(KEY, json!({"connection_ids": [CONN]})).await;
    assert_eq!(real["counts"]["read"], 4, "{real}");
    assert_eq!(
        real["counts"]["reemitted"], dry["counts"]["reemitted"],
        "{real}"
    );
    assert_eq!(real["counts"]["unchanged"], 1, "{real}");
    assert_eq!(
        real["counts"]["unchanged"], dry["counts"]["unchanged"],
        "{real}"
    );
    assert_eq!(real["counts"]["dead_lettered"], 0, "{real}");
    for id in &ids {
        let v = h
            .wait_for(&order_path(*id), |s, v| {
                s == 200 && v["data"]["mapping_version"] == "shopify/2"
            })
            .await;
        assert_eq!(v["data"]["note"], "mapped by shopify/2");
        // modified_at moves for a changed record
        assert!(
            v["data"]["modified_at"].as_str().unwrap()
                > before["data"]["modified_at"].as_str().unwrap(),
            "{v}"
        );
        // the rest of the record is as before
        assert_eq!(v["data"]["total_price"], before["data"]["total_price"]);
    }
    h.wait_processed().await;
    for (topic, k, n) in &counts {
        let expected = if order_keys.contains(k) { n + 1 } else { *n };
        assert_eq!(h.count(topic, k).await, expected, "{topic} {k}");
    }
    // the unchanged customer: same record, same modified_at, same mapping version
    let cust_after = h.get(&format!("/v1/customers/{cust_id}"), KEY).await.1;
    assert_eq!(cust_after["data"], cust_before["data"]);
    let globex = h
        .get(
            &format!(
                "/v1/orders/{}",
                RecordKey::new("globex-shop", Model::Order, "999").record_id()
            ),
            OTHER_KEY,
        )
        .await
        .1;
    assert_eq!(globex["data"]["mapping_version"], "shopify/1");
    assert_eq!(globex["data"]["note"], Value::Null);

    // 3. the same replay again changes nothing; with `since`, the start is found by the
    // broker's timestamp index where it has one (Apache Kafka), else by a scan
    let since = chrono::Utc::now() - chrono::Duration::minutes(10);
    let again = h
        .replay(
            KEY,
            json!({"connection_ids": [CONN], "models": ["order"], "since": since.to_rfc3339()}),
        )
        .await;
    let expected_seek = if h.kafka().capabilities.timestamp_lookup {
        "timestamp_lookup"
    } else {
        "scan"
    };
    assert_eq!(again["seek"], expected_seek, "{again}");
    assert_eq!(again["counts"]["read"], 3, "{again}");
    assert_eq!(again["counts"]["reemitted"], 0, "{again}");
    assert_eq!(again["counts"]["unchanged"], 3, "{again}");
    for (topic, k, n) in &counts {
        let expected = if order_keys.contains(k) { n + 1 } else { *n };
        assert_eq!(h.count(topic, k).await, expected, "{topic} {k}");
    }
    // the list shows the tenant's three replays, none to the other tenant
    let (_, list) = h.get("/v1/replays", KEY).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    let (_, none) = h.get("/v1/replays", OTHER_KEY).await;
    assert_eq!(none["data"], json!([]));
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_a_mapping_bug_are_redriven_after_the_fix() {
    let _serial = serial();
    let h = Harness::start_without_processor().await;
    let buggy = TestProcessor::start(
        &h,
        Some(ChangedMapping {
            version: "shopify/1",
            change: reject_order_1002,
        }),
    )
    .await;
    let good_id = 820_982_911_946_154_700u64;
    let bug_id = 820_982_911_946_154_701u64;
    let bad_id = 820_982_911_946_154_702u64;
    let good = sample_order(good_id, "paid", "2026-11-20T10:00:00Z");
    let mut bug = sample_order(bug_id, "paid", "2026-11-20T10:00:00Z");
    bug["order_number"] = json!(1002);
    bug["name"] = json!("#1002");
    // wrong in itself: a price that is not a number
    let mut bad = sample_order(bad_id, "paid", "2026-11-20T10:00:00Z");
    bad["total_price"] = json!("a lot");
    let before_dead_letters = chrono::Utc::now() - chrono::Duration::seconds(1);
    for (o, e) in [(&good, "g"), (&bug, "b"), (&bad, "x")] {
        assert_eq!(h.post(&delivery("orders/create", o, e)).await, 200);
    }
    h.wait_processed().await;
    let dlq = h.kafka().read_all("raw.dlq").await.unwrap();
    assert_eq!(
        dlq.len(),
        2,
        "the bug and the bad payload are dead-lettered"
    );
    assert_eq!(
        h.get(&format!("/v1/orders/{}", order_id(bug_id)), KEY)
            .await
            .0,
        404
    );
    buggy.stop().await;

    // the fix is deployed (the real mapping); redrive the dead letters
    let fixed = TestProcessor::start(&h, None).await;
    let st = h.replay(KEY, json!({"source": "dlq"})).await;
    assert_eq!(st["counts"]["read"], 2, "{st}");
    assert_eq!(st["counts"]["reemitted"], 1, "{st}");
    assert_eq!(st["counts"]["dead_lettered"], 1, "{st}");
    let v = h
        .wait_for(&format!("/v1/orders/{}", order_id(bug_id)), |s, _| s == 200)
        .await;
    assert_eq!(v["data"]["order_number"], "#1002");
    // the still-bad entry stays dead-lettered once, with its reason: no new entry
    let dlq_after = h.kafka().read_all("raw.dlq").await.unwrap();
    assert_eq!(dlq_after.len(), 2);
    // redriving again changes nothing more
    let again = h.replay(KEY, json!({"source": "dlq"})).await;
    assert_eq!(again["counts"]["reemitted"], 0, "{again}");
    assert_eq!(again["counts"]["unchanged"], 1, "{again}");
    assert_eq!(h.kafka().read_all("raw.dlq").await.unwrap().len(), 2);

    // a redrive cancelled before any processor picks it up never runs: it is still
    // cancelled, having read nothing, after a later redrive has finished; that later one
    // selects by reason (only the still-bad entry), and one by time (dead-lettered
    // before `until`) reads nothing
    fixed.stop().await;
    let cancelled = h.request_replay(KEY, json!({"source": "dlq"})).await;
    let r = h
        .client
        .post(format!("{}{cancelled}/cancel", h.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let fixed = TestProcessor::start(&h, None).await;
    let by_reason = h
        .replay(
            KEY,
            json!({"source": "dlq", "reason_contains": "total_price"}),
        )
        .await;
    assert_eq!(by_reason["counts"]["read"], 1, "{by_reason}");
    assert_eq!(by_reason["counts"]["reemitted"], 0, "{by_reason}");
    assert_eq!(by_reason["counts"]["dead_lettered"], 1, "{by_reason}");
    let by_time = h
        .replay(
            KEY,
            json!({"source": "dlq", "until": before_dead_letters.to_rfc3339()}),
        )
        .await;
    assert_eq!(by_time["counts"]["read"], 0, "{by_time}");
    let (_, c) = h.get(&cancelled, KEY).await;
    assert_eq!(c["state"], "cancelled", "{c}");
    assert_eq!(c["counts"]["read"], 0, "{c}");
    assert_eq!(h.kafka().read_all("raw.dlq").await.unwrap().len(), 2);
    fixed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replay_resumes_and_never_reverts_a_newer_live_version() {
    let _serial = serial();
    let h = Harness::start_without_processor().await;
    let v1 = TestProcessor::start(&h, None).await;
    let ids: Vec<u64> = (0..120).map(|i| 820_982_911_946_155_000 + i).collect();
    for id in &ids {
        let o = sample_order(*id, "paid", "2026-11-20T10:00:00Z");
        assert_eq!(
            h.post(&delivery("orders/create", &o, &format!("o{id}")))
                .await,
            200
        );
    }
    h.wait_processed().await;
    v1.stop().await;

    // shopify/2, one raw event per batch, so the replay is still running when it crashes
    let mapping = || ChangedMapping {
        version: "shopify/2",
        change: note_orders,
    };
    let crashing = TestProcessor::start_batch(&h, Some(mapping()), 1).await;
    let path = h
        .request_replay(KEY, json!({"connection_ids": [CONN]}))
        .await;
    let mid = h
        .wait_for(&path, |_, v| {
            v["counts"]["read"].as_u64().unwrap_or(0) >= 10
        })
        .await;
    // the crash: the processor's task is dropped wherever it is (mid-batch, mid-produce)
    crashing.task.abort();
    let _ = crashing.task.await;
    assert_ne!(mid["state"], "done", "the replay was still running: {mid}");
    let checkpoint = h.get(&path, KEY).await.1;
    assert!(
        checkpoint["counts"]["read"].as_u64().unwrap() < ids.len() as u64,
        "{checkpoint}"
    );

    // while it is down, a newer live version of one order arrives
    let newest = ids[ids.len() - 1];
    let live = sample_order(newest, "refunded", "2026-11-20T12:00:00Z");
    assert_eq!(
        h.post(&delivery("orders/updated", &live, "live")).await,
        200
    );

    let resumed = TestProcessor::start(&h, Some(mapping())).await;
    let done = h.wait_for(&path, |_, v| v["state"] == "done").await;
    // resumed from its checkpoint: every raw event read once, plus at most the batch in
    // flight at the crash (and the live event, when it fell into the replay's range)
    let read = done["counts"]["read"].as_u64().unwrap();
    assert!(
        read >= ids.len() as u64 && read <= ids.len() as u64 + 3,
        "{done}"
    );
    h.wait_processed().await;
    for id in &ids {
        let v = h
            .wait_for(&format!("/v1/orders/{}", order_id(*id)), |s, v| {
                s == 200 && v["data"]["mapping_version"] == "shopify/2"
            })
            .await;
        assert_eq!(v["data"]["note"], "mapped by shopify/2");
        let expected = if *id == newest { "refunded" } else { "paid" };
        assert_eq!(v["data"]["payment_status"], expected, "{v}");
    }
    resumed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_registry_outage_dead_letters_nothing() {
    let _serial = serial();
    let h = Harness::start_without_processor().await;
    let ids: Vec<u64> = (0..3).map(|i| 820_982_911_946_156_000 + i).collect();
    for id in &ids {
        let o = sample_order(*id, "paid", "2026-11-20T10:00:00Z");
        assert_eq!(
            h.post(&delivery("orders/create", &o, &format!("o{id}")))
                .await,
            200
        );
    }
    // the processor reaches the registry through a proxy that is down at first: it
    // accepts connections and drops them
    let upstream = h
        .infra
        .as_ref()
        .unwrap()
        .registry_url
        .trim_start_matches("http://")
        .to_string();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, u) = (attempts.clone(), up.clone());
    let proxy = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            if !u.load(std::sync::atomic::Ordering::SeqCst) {
                a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(sock);
                continue;
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
                }
            });
        }
    });
    let codec = ingot_kafka::AvroCodec::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let p = TestProcessor::start_with(&h, None, 500, codec).await;
    // wait until the processor has tried (and retried) the registry
    let deadline = Instant::now() + Duration::from_secs(30);
    while attempts.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        assert!(
            Instant::now() < deadline,
            "the processor never asked the registry"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.kafka().read_all("raw.dlq").await.unwrap().len(), 0);
    assert_eq!(
        h.get(&format!("/v1/orders/{}", order_id(ids[0])), KEY)
            .await
            .0,
        404
    );
    // the registry is back
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    h.wait_processed().await;
    for id in &ids {
        h.wait_for(&format!("/v1/orders/{}", order_id(*id)), |s, _| s == 200)
            .await;
    }
    assert_eq!(
        h.kafka().read_all("raw.dlq").await.unwrap().len(),
        0,
        "nothing was dead-lettered for the outage"
    );
    p.stop().await;
    proxy.abort();
}

/// What one caller must never see, and what it must see (a positive control).
struct Caller {
    key: &'static str,
    name: &'static str,
    /// Record ids (any model), remote ids and connection ids of others.
    foreign_records: Vec<String>,
    foreign_remote_ids: Vec<String>,
    foreign_connections: Vec<String>,
    /// Connections whose records and settings it may read.
    own_connections: Vec<String>,
    /// Remote ids it must find in the order list.
    own_orders: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_openapi_path_keeps_tenants_and_connections_apart() {
    let _serial = serial();
    // every stage, so the forwarder's /v1/webhook-endpoints paths are in the document
    let h = Harness::start_stages(ingot_sync::SyncSettings::default(), 3600, Stages::ALL).await;
    // tenant acme: shop-1 (an order, a customer, a product) and woo-1 (an order);
    // tenant globex: globex-shop (an order, a customer, a product)
    let acme_order = 880_000_000_000_006_001u64;
    let globex_order = 880_000_000_000_007_001u64;
    let (acme_customer, globex_customer) = (880_000_000_000_006_101u64, 880_000_000_000_007_101u64);
    let (acme_product, globex_product) = (880_000_000_000_006_201u64, 880_000_000_000_007_201u64);
    let t = "2026-11-20T10:30:00-05:00";
    let shop = |secret: &str, topic: &str, body: &Value, event: &str| {
        shopsim::delivery(
            "demo.myshopify.com",
            secret,
            topic,
            body,
            event,
            "2026-11-20T15:00:00Z",
        )
    };
    for (conn, secret, order, customer, product) in [
        (CONN, SECRET, acme_order, acme_customer, acme_product),
        (
            "globex-shop",
            "globex-secret",
            globex_order,
            globex_customer,
            globex_product,
        ),
    ] {
        let c = shopsim::customer(customer, "Ada", "Lovelace", "ada@example.com", t);
        let o = shopsim::order(
            order,
            1001,
            None,
            &[(1, 11, "Parka", "249.00", 1)],
            "10.00",
            "paid",
            t,
        );
        let p = shopsim::product(product, "Parka", "249.00", t);
        for (topic, body) in [
            ("orders/create", o),
            ("customers/create", c),
            ("products/create", p),
        ] {
            let d = shop(secret, topic, &body, &format!("{conn}-{topic}"));
            let status = shopsim::send(&h.client, &h.base, conn, &d).await.unwrap();
            assert_eq!(status, 200, "{conn} {topic}");
        }
    }
    let woo_order = json!({
        "id": 9001, "number": "9001", "status": "processing", "currency": "USD",
        "date_created_gmt": "2026-11-20T15:00:00", "date_modified_gmt": "2026-11-20T15:05:00",
        "total": "47.93", "total_tax": "0.00", "customer_id": 0, "billing": {}, "shipping": {},
        "shipping_lines": [], "tax_lines": [], "coupon_lines": [], "fee_lines": [], "refunds": [],
        "line_items": []
    });
    let body = serde_json::to_vec(&woo_order).unwrap();
    assert_eq!(
        h.post_woo(&woo_delivery("order.created", &body, "iso-1"))
            .await,
        200
    );
    for (key, path, n) in [
        (KEY, "/v1/orders", 2),
        (KEY, "/v1/customers", 1),
        (KEY, "/v1/products", 1),
        (OTHER_KEY, "/v1/orders", 1),
        (OTHER_KEY, "/v1/customers", 1),
        (OTHER_KEY, "/v1/products", 1),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, v) = h.get(path, key).await;
            if v["data"].as_array().is_some_and(|a| a.len() == n) {
                break;
            }
            assert!(Instant::now() < deadline, "{path} for {key}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let id = |conn: &str, model: Model, remote: u64| {
        RecordKey::new(conn, model, remote.to_string()).record_id()
    };
    let globex_ids = vec![
        id("globex-shop", Model::Order, globex_order),
        id("globex-shop", Model::Customer, globex_customer),
        id("globex-shop", Model::Product, globex_product),
    ];
    let shop1_ids = vec![
        id(CONN, Model::Order, acme_order),
        id(CONN, Model::Customer, acme_customer),
        id(CONN, Model::Product, acme_product),
    ];
    let globex_remote = vec![
        globex_order.to_string(),
        globex_customer.to_string(),
        globex_product.to_string(),
    ];
    let shop1_remote = vec![
        acme_order.to_string(),
        acme_customer.to_string(),
        acme_product.to_string(),
    ];
    let callers = [
        Caller {
            key: KEY,
            name: "acme",
            foreign_records: globex_ids.clone(),
            foreign_remote_ids: globex_remote.clone(),
            foreign_connections: vec!["globex-shop".into()],
            own_connections: vec![CONN.into(), "woo-1".into()],
            own_orders: vec![acme_order.to_string(), "9001".into()],
        },
        Caller {
            key: OTHER_KEY,
            name: "globex",
            foreign_records: [shop1_ids.clone(), vec![woo_id(Model::Order, "9001")]].concat(),
            foreign_remote_ids: [shop1_remote.clone(), vec!["9001".into()]].concat(),
            foreign_connections: vec![CONN.into(), "woo-1".into()],
            own_connections: vec!["globex-shop".into()],
            own_orders: vec![globex_order.to_string()],
        },
        Caller {
            key: LIMITED_KEY,
            name: "acme limited to woo-1",
            foreign_records: [shop1_ids.clone(), globex_ids.clone()].concat(),
            foreign_remote_ids: [shop1_remote, globex_remote].concat(),
            foreign_connections: vec![CONN.into(), "globex-shop".into()],
            own_connections: vec!["woo-1".into()],
            own_orders: vec!["9001".into()],
        },
    ];

    // the served document, not a copy of it
    let doc: Value = h
        .client
        .get(format!("{}/openapi.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 14, "{:?}", paths.keys());
    // no path parameter may be empty: `/v1/connections/{id}/reconcile` with id "" is sent by
    // clients as `/v1/connections/reconcile`, another route's path: a 404, as the
    // operation documents; another method on a known path is a 405 and an unknown path a
    // 404, each in the error envelope (axum's own had empty bodies)
    for (method, path, status, reason) in [
        (
            reqwest::Method::POST,
            "/v1/connections/reconcile",
            404,
            "not found: /v1/connections/reconcile names no record (an empty id?)",
        ),
        (
            reqwest::Method::PUT,
            "/v1/connections",
            405,
            "method not allowed: PUT /v1/connections",
        ),
        (
            reqwest::Method::GET,
            "/no-such-route",
            404,
            "not found: no route serves /no-such-route",
        ),
    ] {
        let r = h
            .client
            .request(method.clone(), format!("{}{path}", h.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], reason, "{method} {path}");
    }
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] != "path" {
                    continue;
                }
                let s = &p["schema"];
                let non_empty = s["minLength"].as_u64().is_some_and(|n| n >= 1)
                    || s["enum"].is_array()
                    || s["format"] == "uuid";
                assert!(non_empty, "{method} {path}: {p} can be empty");
            }
        }
    }
    // one (dry-run) replay per tenant, to look for with the other callers' keys
    let mut replay_of = std::collections::HashMap::new();
    for (key, body) in [
        (KEY, json!({"connection_ids": [CONN], "dry_run": true})),
        (OTHER_KEY, json!({"dry_run": true})),
    ] {
        let r = h
            .client
            .post(format!("{}/v1/replays", h.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let v: Value = r.json().await.unwrap();
        replay_of.insert(key, v["id"].as_str().unwrap().to_string());
    }
    // webhook endpoints: acme's for every connection, one made with the key limited to
    // woo-1 (so filtered to woo-1), and globex's
    let mut endpoint_of = Vec::new();
    for key in [KEY, LIMITED_KEY, OTHER_KEY] {
        let r = h
            .client
            .post(format!("{}/v1/webhook-endpoints", h.base))
            .bearer_auth(key)
            .json(&json!({"url": "http://127.0.0.1:9/isolation-walk"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let v: Value = r.json().await.unwrap();
        endpoint_of.push((key, v["id"].as_str().unwrap().to_string()));
    }
    assert_eq!(endpoint_of.len(), 3);
    let mut requests = 0;
    for caller in &callers {
        // the endpoints a caller must not reach: another tenant's, and for the limited key
        // the one that reaches every acme connection
        let foreign_endpoints: Vec<String> = endpoint_of
            .iter()
            .filter(|(k, _)| match caller.key {
                LIMITED_KEY => *k != LIMITED_KEY,
                KEY => *k == OTHER_KEY,
                _ => *k != OTHER_KEY,
            })
            .map(|(_, id)| id.clone())
            .collect();
        let foreign_replays: Vec<String> = replay_of
            .iter()
            .filter(|(k, _)| **k != caller.key || caller.key == LIMITED_KEY)
            .map(|(_, id)| id.clone())
            .collect();
        // (method, path, body) → the statuses allowed; every body is checked for others' data
        type Call = (String, String, Option<Value>, Vec<u16>, bool);
        let mut calls: Vec<Call> = Vec::new();
        for (template, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                let m = method.to_uppercase();
                let resource = template
                    .strip_prefix("/v1/")
                    .and_then(|r| Model::from_resource(r.split('/').next().unwrap_or_default()));
                match (m.as_str(), template.as_str(), resource) {
                    ("GET", p, Some(_)) if !p.contains('{') => {
                        // a list: the caller's own records only; others' filters give []
                        calls.push((
                            m.clone(),
                            format!("{p}?limit=500&include_deleted=true"),
                            None,
                            vec![200],
                            false,
                        ));
                        for c in &caller.foreign_connections {
                            calls.push((
                                m.clone(),
                                format!("{p}?connection_id={c}&include_deleted=true"),
                                None,
                                vec![200],
                                true,
                            ));
                            for r in &caller.foreign_remote_ids {
                                calls.push((
                                    m.clone(),
                                    format!(
                                        "{p}?connection_id={c}&remote_id={r}&include_deleted=true"
                                    ),
                                    None,
                                    vec![200],
                                    true,
                                ));
                            }
                        }
                        for r in &caller.foreign_remote_ids {
                            calls.push((
                                m.clone(),
                                format!("{p}?remote_id={r}&include_remote_data=true"),
                                None,
                                vec![200],
                                true,
                            ));
                        }
                    }
                    ("GET", p, Some(_)) => {
                        for id in &caller.foreign_records {
                            let path = p.replace("{id}", id);
                            calls.push((m.clone(), path.clone(), None, vec![404], false));
                            calls.push((
                                m.clone(),
                                format!("{path}?include_remote_data=true"),
                                None,
                                vec![404],
                                false,
                            ));
                        }
                    }
                    ("GET", "/v1/connections", _) => {
                        calls.push((m.clone(), "/v1/connections".into(), None, vec![200], false))
                    }
                    ("POST", "/v1/connections", _) => {
                        for c in &caller.foreign_connections {
                            // connection ids are one namespace (they name the webhook URLs):
                            // taking another tenant's is a conflict, and changes nothing
                            // (a limited key may create only its own connections: 400)
                            let spec = json!({"id": c, "provider": "shopify", "shop_domain": "x.myshopify.com", "webhook_secrets": ["s3cret-for-the-isolation-test"]});
                            let refused = if caller.key == LIMITED_KEY { 400 } else { 409 };
                            calls.push((
                                m.clone(),
                                "/v1/connections".into(),
                                Some(spec),
                                vec![refused],
                                false,
                            ));
                            if caller.key == LIMITED_KEY {
                                // nor a new one it could then not see
                                let spec = json!({"id": "made-by-a-limited-key", "provider": "shopify", "shop_domain": "y.myshopify.com", "webhook_secrets": ["s3cret-for-the-isolation-test"]});
                                calls.push((
                                    m.clone(),
                                    "/v1/connections".into(),
                                    Some(spec),
                                    vec![400],
                                    false,
                                ));
                            }
                            let spec = json!({"id": c, "tenant": "globex", "provider": "shopify", "shop_domain": "x.myshopify.com", "webhook_secrets": ["s"]});
                            calls.push((
                                m.clone(),
                                "/v1/connections".into(),
                                Some(spec),
                                vec![400, 409],
                                false,
                            ));
                        }
                    }
                    (_, p, _) if p.starts_with("/v1/connections/{id}") => {
                        for c in &caller.foreign_connections {
                            calls.push((m.clone(), p.replace("{id}", c), None, vec![404], false));
                        }
                    }
                    ("POST", "/v1/replays", _) => {
                        for c in &caller.foreign_connections {
                            calls.push((
                                m.clone(),
                                "/v1/replays".into(),
                                Some(json!({"connection_ids": [c], "dry_run": true})),
                                vec![404],
                                false,
                            ));
                        }
                    }
                    ("GET", "/v1/replays", _) => {
                        calls.push((m.clone(), "/v1/replays".into(), None, vec![200], false))
                    }
                    (_, p, _) if p.starts_with("/v1/replays/{id}") => {
                        for id in &foreign_replays {
                            calls.push((m.clone(), p.replace("{id}", id), None, vec![404], false));
                        }
                    }
                    ("GET", "/v1/webhook-endpoints", _) => calls.push((
                        m.clone(),
                        "/v1/webhook-endpoints".into(),
                        None,
                        vec![200],
                        false,
                    )),
                    ("POST", "/v1/webhook-endpoints", _) => {
                        // a limited key cannot subscribe to connections it may not read
                        if caller.key == LIMITED_KEY {
                            for c in &caller.foreign_connections {
                                calls.push((
                                    m.clone(),
                                    "/v1/webhook-endpoints".into(),
                                    Some(json!({"url": "http://127.0.0.1:9/x", "connection_ids": [c]})),
                                    vec![400],
                                    false,
                                ));
                            }
                        }
                    }
                    (_, p, _) if p.starts_with("/v1/webhook-endpoints/{id}") => {
                        let body = match (m.as_str(), p.ends_with("/replay")) {
                            ("PATCH", _) => Some(json!({"description": "walked"})),
                            ("POST", true) => Some(json!({"since": "2026-01-01T00:00:00Z"})),
                            _ => None,
                        };
                        for id in &foreign_endpoints {
                            calls.push((
                                m.clone(),
                                p.replace("{id}", id),
                                body.clone(),
                                vec![404],
                                false,
                            ));
                        }
                    }
                    ("POST", "/webhooks/{provider}/{connection_id}", _) => {
                        // signed per connection, not by API key: a key opens nothing
                        for c in &caller.foreign_connections {
                            let provider = if c == "woo-1" {
                                "woocommerce"
                            } else {
                                "shopify"
                            };
                            calls.push((
                                m.clone(),
                                format!("/webhooks/{provider}/{c}"),
                                Some(json!({"id": 1})),
                                vec![401],
                                false,
                            ));
                        }
                    }
                    ("GET", "/healthz" | "/readyz" | "/metrics", _) => {
                        calls.push((
                            m.clone(),
                            template.clone(),
                            None,
                            vec![200, 404, 503],
                            false,
                        ));
                    }
                    other => panic!("the walk does not know {other:?}: add it"),
                }
            }
        }
        for (method, path, body, statuses, empty) in calls {
            let mut req = h
                .client
                .request(method.parse().unwrap(), format!("{}{path}", h.base))
                .bearer_auth(caller.key);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            requests += 1;
            let what = format!("{} {method} {path}", caller.name);
            assert!(statuses.contains(&status), "{what}: {status} {text}");
            for s in caller
                .foreign_records
                .iter()
                .chain(&caller.foreign_remote_ids)
                .chain(&caller.foreign_connections)
                .chain(&foreign_endpoints)
            {
                assert!(!text.contains(s.as_str()), "{what}: others' {s} in {text}");
            }
            if status == 200 && method == "GET" && path.starts_with("/v1/") {
                let v: Value = serde_json::from_str(&text).unwrap();
                let data = v["data"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{what}: {text}"));
                if empty {
                    assert!(data.is_empty(), "{what}: {text}");
                }
                for item in data {
                    if item.get("url").is_some() {
                        // an endpoint: the caller's own (others' ids are checked above);
                        // a limited key's reach only its connections
                        let conns = item["connection_ids"].as_array();
                        if caller.key == LIMITED_KEY {
                            let conns = conns.unwrap_or_else(|| panic!("{what}: {item}"));
                            assert!(
                                conns
                                    .iter()
                                    .all(|c| caller.own_connections.iter().any(|o| c == o)),
                                "{what}: {item}"
                            );
                        }
                        continue;
                    }
                    if let Some(ids) = item.get("connection_ids").and_then(Value::as_array) {
                        // a replay: every connection it covers is the caller's
                        for c in ids {
                            assert!(
                                caller.own_connections.iter().any(|o| c == o),
                                "{what}: {item}"
                            );
                        }
                        continue;
                    }
                    let conn = item
                        .get("connection_id")
                        .or_else(|| item.get("id"))
                        .and_then(Value::as_str)
                        .unwrap();
                    assert!(
                        caller.own_connections.iter().any(|c| c == conn),
                        "{what}: {item}"
                    );
                }
            }
        }
        // positive controls: the walk reached the caller's own data
        let (_, v) = h.get("/v1/orders", caller.key).await;
        let mut got: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["remote_id"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        let mut want = caller.own_orders.clone();
        want.sort();
        assert_eq!(got, want, "{}'s orders", caller.name);
        let (_, v) = h.get("/v1/connections", caller.key).await;
        let mut conns: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        conns.sort();
        let mut own: Vec<&str> = caller.own_connections.iter().map(String::as_str).collect();
        own.sort();
        assert_eq!(conns, own, "{}'s connections", caller.name);
    }
    // the DELETEs and PATCHes above changed nothing: every endpoint is still there, as
    // it was made, and each caller lists exactly the endpoints it may reach
    for (key, own) in [
        (KEY, vec![0, 1]),
        (LIMITED_KEY, vec![1]),
        (OTHER_KEY, vec![2]),
    ] {
        let (_, v) = h.get("/v1/webhook-endpoints", key).await;
        let mut listed: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        listed.sort();
        let mut want: Vec<&str> = own.iter().map(|i| endpoint_of[*i].1.as_str()).collect();
        want.sort();
        assert_eq!(listed, want, "endpoints listed for {key}");
        for e in v["data"].as_array().unwrap() {
            assert!(e["description"].is_null(), "patched by another caller: {e}");
        }
    }
    // the DELETEs and POSTs above changed nothing: every connection is still there
    for (key, conn) in [(KEY, CONN), (KEY, "woo-1"), (OTHER_KEY, "globex-shop")] {
        let (s, v) = h.get(&format!("/v1/connections/{conn}"), key).await;
        assert_eq!((s, v["data"]["id"].as_str()), (200, Some(conn)), "{v}");
    }
    let (s, v) = h
        .get(&format!("/v1/orders/{}", globex_ids[0]), OTHER_KEY)
        .await;
    assert_eq!(
        (s, v["data"]["remote_id"].as_str()),
        (200, Some(globex_order.to_string().as_str()))
    );
    assert!(requests > 150, "{requests} requests");
}

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
    // the harness retries a failed run after 500 ms, so by now a model may be `syncing`
    // again; the error of its failed run stays on it until a run succeeds
    let (_, st) = h.get("/v1/connections/woo-stuck/sync-status", KEY).await;
    for model in ["orders", "customers"] {
        let m = &st["models"][model];
        assert!(
            m["state"] == "failed" || m["state"] == "syncing",
            "{model}: {st}"
        );
        assert!(
            m["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("paging made no progress")),
            "{model}: {st}"
        );
        assert!(m["last_success"].is_null(), "{model}: {st}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_resumes_after_its_processor_is_killed_with_sigkill() {
    let _serial = serial();
    let h = Harness::start_without_processor().await;
    let ids: Vec<u64> = (0..150).map(|i| 820_982_911_946_157_000 + i).collect();
    // the processor is a child `ingot process`, one raw event per batch (so a replay of
    // these events takes many batches)
    let dir = h.data_dir().join("children");
    let cfg = h.config_file("processor", &dir.join("p"), "127.0.0.1:0");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[processor]\n", "[processor]\nmax_batch = 1\n");
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = spawn_ingot(&["process", "-c", &cfg], &dir.join("p1.log"));
    for id in &ids {
        let o = sample_order(*id, "paid", "2026-11-20T10:00:00Z");
        assert_eq!(
            h.post(&delivery("orders/create", &o, &format!("o{id}")))
                .await,
            200
        );
    }
    h.wait_processed().await;
    let key = |id: u64| format!("{CONN}/order/{id}");
    let before = h.kafka().read_all("normalized.order").await.unwrap().len();
    assert_eq!(before, ids.len());

    let path = h
        .request_replay(KEY, json!({"connection_ids": [CONN]}))
        .await;
    let mid = h
        .wait_for(&path, |_, v| {
            v["counts"]["read"].as_u64().unwrap_or(0) >= 10
        })
        .await;
    kill9(&mut child);
    let at_kill = h.get(&path, KEY).await.1;
    assert_ne!(at_kill["state"], "done", "still running when killed: {mid}");
    let read_at_kill = at_kill["counts"]["read"].as_u64().unwrap();
    assert!(read_at_kill < ids.len() as u64, "{at_kill}");

    // a new process resumes from the unit checkpoints
    let mut child = spawn_ingot(&["process", "-c", &cfg], &dir.join("p2.log"));
    let done = h.wait_for(&path, |_, v| v["state"] == "done").await;
    kill9(&mut child);
    let read = done["counts"]["read"].as_u64().unwrap();
    // every raw event once, plus at most the batch in flight in each unit at the kill
    assert!(
        read >= ids.len() as u64 && read <= ids.len() as u64 + 3,
        "{done}"
    );
    // the same mapping: nothing changed, nothing was emitted again
    assert_eq!(done["counts"]["reemitted"], 0, "{done}");
    assert_eq!(
        done["counts"]["unchanged"], done["counts"]["read"],
        "{done}"
    );
    let after = h.kafka().read_all("normalized.order").await.unwrap();
    assert_eq!(after.len(), before, "a resumed replay re-emitted records");
    for id in &ids {
        assert_eq!(
            after
                .iter()
                .filter(|m| m.key_str() == Some(key(*id).as_str()))
                .count(),
            1
        );
    }
}

/// A normalized order of [`CONN`] with remote id `id`, as the processor writes it.
fn normalized_order(id: u64) -> (String, ingot_model::NormalizedRecord) {
    use ingot_model::{NormalizedRecord, Order, RecordData, RecordMeta};
    let key = RecordKey::new(CONN, Model::Order, id.to_string());
    let rec = NormalizedRecord {
        meta: RecordMeta {
            id: key.record_id(),
            remote_id: id.to_string(),
            connection_id: CONN.into(),
            tenant_id: "acme".into(),
            provider: "shopify".into(),
            remote_created_at: None,
            remote_updated_at: "2026-11-20T15:00:00Z".into(),
            remote_deleted: false,
            modified_at: "2026-11-20T15:00:01Z".into(),
            mapping_version: "shopify/1".into(),
            raw_topic: "raw.shopify".into(),
            raw_partition: 0,
            raw_offset: 0,
            remote_data: None,
        },
        data: RecordData::Order(Order {
            order_number: Some(format!("#{id}")),
            status: "open".into(),
            payment_status: "paid".into(),
            fulfillment_status: "unfulfilled".into(),
            ..Default::default()
        }),
    };
    (key.to_string(), rec)
}

/// Produces the normalized orders `ids` (8 senders at once), acknowledged.
async fn produce_normalized_orders(h: &Harness, ids: std::ops::Range<u64>) {
    let infra = h.infra.as_ref().unwrap();
    let codec = ingot_kafka::AvroCodec::new(&infra.registry_url).unwrap();
    let producer = ingot_kafka::Producer::new(h.kafka()).unwrap();
    let ids: Vec<u64> = ids.collect();
    let mut senders = tokio::task::JoinSet::new();
    for chunk in ids.chunks(ids.len().div_ceil(8)) {
        let (chunk, codec, producer) = (chunk.to_vec(), codec.clone(), producer.clone());
        senders.spawn(async move {
            for id in chunk {
                let (key, rec) = normalized_order(id);
                let value = codec.encode_record(&rec).await.unwrap();
                producer
                    .send("normalized.order", key.as_bytes(), Some(&value), &[])
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = senders.join_next().await {
        r.unwrap();
    }
}

/// Polls the view's `freshness` (next offset per `normalized.<model>/<partition>`) as the
/// `ingot materialize` child at `base` serves it, every `every`, until `done` holds of it
/// (2 min at most, failing if the child exits); returns it.
async fn wait_served_freshness(
    child: &mut std::process::Child,
    base: &str,
    every: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let served = match client
            .get(format!("{base}/v1/orders?limit=1"))
            .bearer_auth(KEY)
            .send()
            .await
        {
            Ok(r) => r.json::<Value>().await.ok(),
            Err(_) => None,
        };
        if let Some(f) = served.map(|v| v["freshness"].clone()) {
            if done(&f) {
                return f;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the materializer exited"
        );
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// The materializer writes a backlog's batches without the write-ahead log. Killed with
/// SIGKILL in the middle of one, it must not dead-letter a poison pill of that backlog a
/// second time when it starts again: the batch that passes the pill is durable once the
/// pill's dead letter is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_materializer_killed_in_a_backlog_dead_letters_its_pill_once() {
    let _serial = serial();
    let h = Harness::start_stages(ingot_sync::SyncSettings::default(), 3600, Stages::NONE).await;
    let topic = Model::Order.normalized_topic();
    // the backlog: 8 000 orders, a value that is no Avro at all, 20 000 orders
    produce_normalized_orders(&h, 1..8_001).await;
    let producer = ingot_kafka::Producer::new(h.kafka()).unwrap();
    let pill_key = RecordKey::new(CONN, Model::Order, "pill").to_string();
    let (pp, po) = producer
        .send(&topic, pill_key.as_bytes(), Some(b"not avro at all"), &[])
        .await
        .unwrap();
    produce_normalized_orders(&h, 8_001..28_001).await;
    let total: i64 = 28_001;

    let dir = h.data_dir().join("children");
    std::fs::create_dir_all(&dir).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let cfg = h.config_file("materializer", &dir.join("m"), &listen);
    let cfg = cfg.to_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let passed = |f: &Value| f[format!("{topic}/{pp}")].as_i64().unwrap_or(0);
    let applied = |f: &Value| -> i64 {
        f.as_object()
            .map(|o| o.values().filter_map(Value::as_i64).sum())
            .unwrap_or(0)
    };

    // 1. killed as soon as the view has passed the pill
    let mut child = spawn_ingot(
        &["materialize", "--no-sync", "-c", &cfg],
        &dir.join("m1.log"),
    );
    let at_kill = wait_served_freshness(
        &mut child,
        &base,
        Duration::from_millis(2),
        "the view to pass the pill",
        |f| passed(f) > po,
    )
    .await;
    kill9(&mut child);
    assert!(
        applied(&at_kill) < total,
        "killed in the middle of the backlog, not after it: {at_kill}"
    );

    // 2. started again, it reads the rest of the backlog
    let mut child = spawn_ingot(
        &["materialize", "--no-sync", "-c", &cfg],
        &dir.join("m2.log"),
    );
    let end = wait_served_freshness(
        &mut child,
        &base,
        Duration::from_millis(20),
        "the view to reach the end",
        |f| applied(f) == total,
    )
    .await;
    let last = client
        .get(format!("{base}/v1/orders/{}", order_id(28_000)))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), 200, "the last order is served: {end}");
    kill9(&mut child);

    let source = ingot_model::dlq::source(&topic, pp, po);
    let dlq = h.kafka().read_all(ingot_model::dlq::TOPIC).await.unwrap();
    let letters: Vec<_> = dlq
        .iter()
        .filter(|m| m.header(ingot_model::dlq::HEADER_SOURCE) == Some(source.as_str()))
        .collect();
    println!(
        "killed at {} of {total} records applied ({at_kill}); dead letters of {source}: {}",
        applied(&at_kill),
        letters.len()
    );
    let offsets: Vec<i64> = letters.iter().map(|m| m.offset).collect();
    assert_eq!(
        letters.len(),
        1,
        "the pill is dead-lettered once, not at raw.dlq offsets {offsets:?}"
    );
    assert_eq!(letters[0].value.as_deref(), Some(&b"not avro at all"[..]));
}

/// `ingot replay` as an operator runs it: the command reaches the running processor
/// through the broker, follows the replay to its end and prints the counts; its config
/// comes from `-c`, `$INGOT_CONFIG` or `./ingot.toml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_command_runs_dry_runs_and_replays_through_the_running_processor() {
    let _serial = serial();
    let h = Harness::start().await;
    let ids = [820_982_911_946_158_001u64, 820_982_911_946_158_002];
    for id in ids {
        let o = sample_order(id, "paid", "2026-11-20T10:00:00Z");
        assert_eq!(
            h.post(&delivery("orders/create", &o, &format!("cli{id}")))
                .await,
            200
        );
    }
    h.wait_processed().await;
    let before = h.kafka().read_all("normalized.order").await.unwrap().len();
    let dir = h.data_dir().join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = h.config_file("cli", &dir, "127.0.0.1:0");
    let run = |args: &[&str], config_env: Option<&Path>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ingot"));
        c.args(args)
            .current_dir(&dir)
            .env("INGOT_LOG", "warn")
            .env_remove("INGOT_CONFIG");
        if let Some(p) = config_env {
            c.env("INGOT_CONFIG", p);
        }
        async move {
            tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap()
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();

    // a dry run, the config from $INGOT_CONFIG, two connections after one --connection
    let out = run(
        &[
            "replay",
            "--connection",
            CONN,
            "woo-1",
            "--dry-run",
            "--json",
        ],
        Some(&cfg),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", text(&out.stdout));
    });
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["dry_run"], true, "{v}");
    assert_eq!(v["connection_ids"], json!([CONN, "woo-1"]), "{v}");
    assert_eq!(v["counts"]["read"], 2, "{v}");
    assert_eq!(v["counts"]["reemitted"], 0, "{v}");
    assert_eq!(v["counts"]["unchanged"], 2, "{v}");

    // the replay itself, config by -c, the text report
    let c = cfg.to_str().unwrap();
    let out = run(
        &["replay", "-c", c, "--connection", CONN, "--model", "order"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains(" done: start found by ")
            && report.contains("read 2, re-emitted 0, unchanged 2, dead-lettered 0"),
        "{report}"
    );
    assert!(
        text(&out.stderr).contains("requested: raw events of shop-1"),
        "{}",
        text(&out.stderr)
    );
    // the same mapping: nothing was emitted again
    assert_eq!(
        h.kafka().read_all("normalized.order").await.unwrap().len(),
        before
    );

    // usage errors exit 2 before anything is submitted; no config says how to give one
    let out = run(
        &["replay", "-c", c, "--connection", CONN, "--reason", "x"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--dlq"), "{}", text(&out.stderr));
    let out = run(&["replay", "--connection", CONN], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ingot.toml not found")
            && text(&out.stderr).contains("INGOT_CONFIG"),
        "{}",
        text(&out.stderr)
    );
}

// Issue 11 part 2: webhook subscriptions managed by ingot.

/// The harness configuration with `[http] public_url` = the harness's own HTTP address,
/// so the simulators deliver to ingot's real ingest server.
fn with_public_url(text: String) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("listen = "))
        .expect("listen line")
        .to_string();
    let addr = line.trim_start_matches("listen = ").trim_matches('"');
    text.replacen(&line, &format!("{line}\npublic_url = \"http://{addr}\""), 1)
}

/// Polls `cond` (no sleeping in its place: it returns as soon as the condition holds), or
/// panics after 30 s with `what`.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn woo_sub_sim_config(seed: u64) -> WooSimConfig {
    WooSimConfig {
        seed,
        orders: 30,
        customers: 8,
        products: 5,
        ..WooSimConfig::default()
    }
}

async fn create_woo_sub(h: &Harness, id: &str, sim: &WooSim) -> Value {
    let (s, v) = h
        .post_json(
            "/v1/connections",
            &json!({
                "id": id, "provider": "woocommerce", "base_url": sim.base_url(),
                "credentials": {"consumer_key": sim.config().consumer_key, "consumer_secret": sim.config().consumer_secret},
                "webhook_secrets": ["user-secret"], "history_days": 3650, "poll_interval_secs": 3600,
                "page_size": 50
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

fn orders_listed(sim: &WooSim) -> u64 {
    sim.faults()
        .counters()
        .per_endpoint
        .get("GET /wp-json/wc/v3/orders")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woocommerce_subscriptions_are_created_deliver_heal_and_leave_with_the_connection() {
    let _serial = serial();
    let h = Harness::start_edited(
        ingot_sync::SyncSettings {
            window: chrono::Duration::days(365),
            ..fast_sync()
        },
        3600,
        Stages {
            forwarder: false,
            ..Stages::ALL
        },
        with_public_url,
    )
    .await;
    let sim = WooSim::start(woo_sub_sim_config(31)).await;
    // changes are stamped with the real clock, as the reconciliation windows are
    sim.set_now(chrono::Utc::now());
    let created = create_woo_sub(&h, "woo-sub", &sim).await;
    let callback = format!("{}/webhooks/woocommerce/woo-sub", h.base);
    assert_eq!(created["generated_webhook_secret"], true, "{created}");
    assert_eq!(created["webhook_secrets"], 1, "{created}");
    assert_eq!(created["webhooks"]["managed"], true, "{created}");
    assert_eq!(created["webhooks"]["callback_url"], callback.as_str());
    let topics = ingot_connectors::woocommerce::webhooks::TOPICS;

    // one active subscription per topic ingot maps, calling back the connection's URL,
    // all signing with one generated secret (32 random bytes, hex)
    until("a subscription per topic", || {
        sim.webhooks().len() == topics.len()
    })
    .await;
    let hooks = sim.webhooks();
    let mut got: Vec<&str> = hooks.iter().map(|w| w.topic.as_str()).collect();
    got.sort();
    let mut want = topics.to_vec();
    want.sort();
    assert_eq!(got, want);
    assert!(hooks
        .iter()
        .all(|w| w.delivery_url == callback && w.status == "active"));
    let secret = hooks[0].secret.clone();
    assert!(hooks.iter().all(|w| w.secret == secret));
    assert!(
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );
    // WooCommerce pinged each new webhook; ingest answered 200 and wrote nothing
    until("the pings", || sim.pings().len() == topics.len()).await;
    assert!(
        sim.pings().iter().all(|(_, r)| *r == Ok(200)),
        "{:?}",
        sim.pings()
    );
    h.wait_sync("woo-sub", |m| m["state"] == "done").await;
    // the API shows each subscription's health
    let conn = h
        .wait_for("/v1/connections/woo-sub", |s, v| {
            s == 200
                && v["data"]["webhooks"]["subscriptions"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|t| t["active"] == true && t["id"].is_string()))
        })
        .await;
    let subs = conn["data"]["webhooks"]["subscriptions"]
        .as_array()
        .unwrap();
    assert_eq!(subs.len(), topics.len(), "{conn}");
    for t in subs {
        let w = hooks
            .iter()
            .find(|w| w.topic == t["topic"].as_str().unwrap())
            .unwrap();
        assert_eq!(t["id"], w.id.to_string(), "{t}");
        assert!(
            t["last_checked"].is_string() && t["last_error"].is_null(),
            "{t}"
        );
    }

    // a change in the store arrives by webhook, signed with the generated secret: no poll
    let polls = orders_listed(&sim);
    let order = sim.create_at(WooResource::Orders, chrono::Utc::now());
    sim.deliveries_settled().await;
    let last = sim.deliveries().last().cloned().unwrap();
    assert_eq!(
        (last.topic.as_str(), last.resource_id, last.outcome.clone()),
        ("order.created", order, Ok(200))
    );
    let rid = RecordKey::new("woo-sub", Model::Order, order.to_string()).record_id();
    h.wait_for(&format!("/v1/orders/{rid}"), |s, _| s == 200)
        .await;
    assert_eq!(orders_listed(&sim), polls, "no listing was involved");

    // heal: ingot unreachable for the store's deliveries while records change, until
    // WooCommerce disables the webhook
    sim.fail_deliveries(true);
    // the missed versions are modified in a later second than the delivered one
    let created_second = chrono::Utc::now().timestamp();
    until("the next second", || {
        chrono::Utc::now().timestamp() > created_second
    })
    .await;
    let updated_hook = hooks
        .iter()
        .find(|w| w.topic == "order.updated")
        .unwrap()
        .id;
    let mut missed = chrono::Utc::now();
    for i in 0..20 {
        missed = chrono::Utc::now();
        // a real change (a no-op save would be absorbed by the version rule)
        let status = ["completed", "refunded"][i % 2];
        sim.update(
            WooResource::Orders,
            order,
            &json!({"status": status}),
            missed,
        );
        sim.deliveries_settled().await;
        let w = sim
            .webhooks()
            .into_iter()
            .find(|w| w.id == updated_hook)
            .unwrap();
        if w.status == "disabled" {
            break;
        }
    }
    let disabled = sim
        .webhooks()
        .into_iter()
        .find(|w| w.id == updated_hook)
        .unwrap();
    assert_eq!(disabled.status, "disabled", "{disabled:?}");
    // a customer created meanwhile is missed too (its webhook failed, still active)
    let customer = sim.create_at(WooResource::Customers, chrono::Utc::now());
    sim.deliveries_settled().await;
    let missed_at =
        ingot_model::format_utc(&chrono::DateTime::from_timestamp(missed.timestamp(), 0).unwrap());
    let (_, before) = h.get(&format!("/v1/orders/{rid}"), KEY).await;
    assert_ne!(before["data"]["remote_updated_at"], missed_at.as_str());
    let cid = RecordKey::new("woo-sub", Model::Customer, customer.to_string()).record_id();
    assert_eq!(h.get(&format!("/v1/customers/{cid}"), KEY).await.0, 404);

    // ingot reachable again; the next reconciliation re-enables the webhook and fetches
    // what was missed
    sim.fail_deliveries(false);
    let (s, run) = h
        .post_json("/v1/connections/woo-sub/reconcile", &json!({}))
        .await;
    assert_eq!(s, 202, "{run}");
    until("the webhook re-enabled", || {
        sim.webhooks()
            .iter()
            .any(|w| w.id == updated_hook && w.status == "active")
    })
    .await;
    h.wait_for(&format!("/v1/orders/{rid}"), |s, v| {
        s == 200 && v["data"]["remote_updated_at"] == missed_at.as_str()
    })
    .await;
    h.wait_for(&format!("/v1/customers/{cid}"), |s, _| s == 200)
        .await;
    let healed = h
        .wait_for("/v1/connections/woo-sub", |_, v| {
            v["data"]["webhooks"]["heals"].as_u64() >= Some(1)
                && v["data"]["webhooks"]["pending_gaps"]
                    .as_object()
                    .is_some_and(|g| g.is_empty())
        })
        .await;
    let t = healed["data"]["webhooks"]["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "order.updated")
        .unwrap()
        .clone();
    assert!(
        t["active"] == true && t["last_healed"].is_string() && t["last_error"].is_null(),
        "{t}"
    );
    // and live deliveries work again
    sim.set_modified(WooResource::Orders, order, chrono::Utc::now());
    sim.deliveries_settled().await;
    assert_eq!(sim.deliveries().last().unwrap().outcome, Ok(200));

    // sync-status shows the subscriptions
    let (ok, out, err) = sync_status_follow(&h, "woo-sub");
    assert!(ok, "{out} {err}");
    assert!(
        out.contains(&format!(
            "webhooks {}/{} active",
            topics.len(),
            topics.len()
        )),
        "{out}"
    );
    assert!(out.contains("order.updated"), "{out}");

    // a webhook someone else made on the store stays; ingot's go with the connection
    let foreign = ingot_connectors::woocommerce::webhooks::WooCommerceWebhooks::new(
        ingot_connectors::ConnectorConfig {
            base_url: sim.base_url().to_string(),
            consumer_key: Some(sim.config().consumer_key.clone().into()),
            consumer_secret: Some(sim.config().consumer_secret.clone().into()),
            ..Default::default()
        },
    );
    use ingot_connectors::subscriptions::WebhookSubscriptions;
    foreign
        .create("order.created", "http://127.0.0.1:9/elsewhere", None)
        .await
        .unwrap();
    assert_eq!(h.delete_connection("woo-sub").await, 204);
    let left = sim.webhooks();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].delivery_url, "http://127.0.0.1:9/elsewhere");

    // a NetSuite connection is never subscribed: polling carries it
    let (s, ns) = h
        .post_json(
            "/v1/connections",
            &json!({"id": "ns-sub", "provider": "netsuite", "base_url": "http://127.0.0.1:9",
                    "credentials": {"access_token": "t"}, "poll_interval_secs": 900,
                    "timezone": "America/Los_Angeles"}),
        )
        .await;
    assert_eq!(s, 201, "{ns}");
    assert_eq!(ns["webhooks"]["managed"], false, "{ns}");
    assert_eq!(ns["webhooks"]["carried_by"], "polling", "{ns}");
    assert!(
        ns["webhooks"]["reason"]
            .as_str()
            .unwrap()
            .contains("netsuite has no webhooks"),
        "{ns}"
    );
}

async fn create_shop_sub(h: &Harness, id: &str, sim: &ShopifySim) -> Value {
    let (s, v) = h
        .post_json(
            "/v1/connections",
            &json!({
                "id": id, "provider": "shopify", "shop_domain": "sim.myshopify.com",
                "base_url": sim.base_url(), "credentials": {"access_token": sim.access_token()},
                // Shopify signs every delivery with the app's client secret
                "webhook_secrets": ["shpss_sim_app_client_secret"], "history_days": 760,
                "poll_interval_secs": 3600, "page_size": 50
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_subscriptions_are_created_deliver_and_leave_with_the_connection() {
    let _serial = serial();
    let h = Harness::start_edited(
        ingot_sync::SyncSettings {
            window: chrono::Duration::days(365),
            ..fast_sync()
        },
        3600,
        Stages {
            forwarder: false,
            ..Stages::ALL
        },
        with_public_url,
    )
    .await;
    let sim = ShopifySim::start(ShopifySimConfig::small(33, 40)).await;
    let created = create_shop_sub(&h, "shop-sub", &sim).await;
    let callback = format!("{}/webhooks/shopify/shop-sub", h.base);
    assert_eq!(created["webhooks"]["managed"], true, "{created}");
    assert_eq!(created["webhooks"]["callback_url"], callback.as_str());
    assert_eq!(created["generated_webhook_secret"], false, "{created}");
    let topics = ingot_connectors::shopify::subscriptions::TOPICS;

    // one subscription per topic ingot maps (and app/uninstalled), calling back ingot
    until("a subscription per topic", || {
        sim.subscriptions().len() == topics.len()
    })
    .await;
    let subs = sim.subscriptions();
    let mut got: Vec<&str> = subs.iter().map(|s| s.topic.as_str()).collect();
    got.sort();
    let mut want = topics.to_vec();
    want.sort();
    assert_eq!(got, want);
    assert!(subs
        .iter()
        .all(|s| s.uri == callback && s.api_version == "2025-10"));
    // the historical sync ran as one bulk operation per model, no page listed
    let st = h.wait_sync("shop-sub", |m| m["state"] == "done").await;
    for m in ["orders", "customers", "products"] {
        assert_eq!(st["models"][m]["bulk"]["state"], "done", "{st}");
    }
    assert_eq!(sim.bulk_stats().started, 3);
    h.assert_mirrors("shop-sub", &sim).await;
    // the API shows each subscription, by Shopify's id
    let conn = h
        .wait_for("/v1/connections/shop-sub", |s, v| {
            s == 200
                && v["data"]["webhooks"]["subscriptions"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|t| t["active"] == true && t["id"].is_string()))
        })
        .await;
    let listed = conn["data"]["webhooks"]["subscriptions"]
        .as_array()
        .unwrap();
    assert_eq!(listed.len(), topics.len(), "{conn}");
    for t in listed {
        let s = subs
            .iter()
            .find(|s| s.topic == t["topic"].as_str().unwrap())
            .unwrap();
        assert_eq!(t["id"], s.gid(), "{t}");
        assert!(t["last_error"].is_null(), "{t}");
    }

    // a new order in the shop arrives through the signed orders/create webhook
    let id = 9_100_000_001u64;
    let now = chrono::Utc::now();
    let rid = RecordKey::new("shop-sub", Model::Order, id.to_string()).record_id();
    assert_eq!(h.get(&format!("/v1/orders/{rid}"), KEY).await.0, 404);
    let order = sim.make_record(ingot_testkit::shopify::Resource::Orders, id, now, now);
    assert!(sim.upsert(ingot_testkit::shopify::Resource::Orders, order));
    sim.deliveries_settled().await;
    let d = sim.deliveries();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].topic.as_str(), d[0].resource_id, d[0].outcome.clone()),
        ("orders/create", id, Ok(200))
    );
    h.wait_for(&format!("/v1/orders/{rid}"), |s, _| s == 200)
        .await;
    // and a deletion through orders/delete
    assert!(sim.delete(ingot_testkit::shopify::Resource::Orders, id));
    sim.deliveries_settled().await;
    assert_eq!(sim.deliveries().last().unwrap().outcome, Ok(200));
    h.wait_for(&format!("/v1/orders/{rid}"), |s, _| s == 404)
        .await;

    // Shopify removed a subscription (it deletes one after repeated failed deliveries;
    // nothing is ever "disabled"): a change meanwhile is not delivered; the next
    // reconciliation re-creates the subscription and fetches what was missed
    let gone = subs
        .iter()
        .find(|s| s.topic == "ORDERS_UPDATED")
        .unwrap()
        .clone();
    assert!(sim.remove_subscription(gone.id));
    let old = sim.ids(ingot_testkit::shopify::Resource::Orders)[0];
    let start = chrono::Utc::now().timestamp();
    until("the next second", || chrono::Utc::now().timestamp() > start).await;
    let missed = chrono::Utc::now();
    let delivered = sim.deliveries().len();
    // a real change (an updated_at alone would be absorbed by the version rule)
    let mut changed = sim
        .records(ingot_testkit::shopify::Resource::Orders)
        .into_iter()
        .find(|r| r["id"] == old)
        .unwrap();
    changed["note"] = json!("changed while the subscription was gone");
    changed["updated_at"] = json!(missed.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    assert!(sim.upsert(ingot_testkit::shopify::Resource::Orders, changed));
    sim.deliveries_settled().await;
    assert_eq!(
        sim.deliveries().len(),
        delivered,
        "no subscription, no delivery"
    );
    let missed_at =
        ingot_model::format_utc(&chrono::DateTime::from_timestamp(missed.timestamp(), 0).unwrap());
    let old_rid = RecordKey::new("shop-sub", Model::Order, old.to_string()).record_id();
    let (_, before) = h.get(&format!("/v1/orders/{old_rid}"), KEY).await;
    assert_ne!(
        before["data"]["remote_updated_at"],
        missed_at.as_str(),
        "{before}"
    );
    let (s, run) = h
        .post_json("/v1/connections/shop-sub/reconcile", &json!({}))
        .await;
    assert_eq!(s, 202, "{run}");
    until("ORDERS_UPDATED re-created", || {
        sim.subscriptions()
            .iter()
            .any(|s| s.topic == "ORDERS_UPDATED" && s.id != gone.id && s.uri == callback)
    })
    .await;
    h.wait_for(&format!("/v1/orders/{old_rid}"), |s, v| {
        s == 200
            && v["data"]["remote_updated_at"] == missed_at.as_str()
            && v["data"]["note"] == "changed while the subscription was gone"
    })
    .await;
    h.wait_for("/v1/connections/shop-sub", |_, v| {
        v["data"]["webhooks"]["heals"].as_u64() >= Some(1)
            && v["data"]["webhooks"]["pending_gaps"]
                .as_object()
                .is_some_and(|g| g.is_empty())
    })
    .await;
    assert_eq!(sim.subscriptions().len(), topics.len());
    // and it delivers again
    assert!(sim.touch(
        ingot_testkit::shopify::Resource::Orders,
        old,
        chrono::Utc::now()
    ));
    sim.deliveries_settled().await;
    let last = sim.deliveries().last().cloned().unwrap();
    assert_eq!(
        (last.topic.as_str(), last.outcome),
        ("orders/updated", Ok(200))
    );

    // a subscription of another callback stays; ingot's go with the connection
    use ingot_connectors::subscriptions::WebhookSubscriptions;
    let other = ingot_connectors::shopify::subscriptions::ShopifySubscriptions::new(
        ingot_connectors::ConnectorConfig {
            base_url: sim.base_url(),
            access_token: Some(sim.access_token().into()),
            ..Default::default()
        },
    );
    other
        .create("ORDERS_CREATE", "http://127.0.0.1:9/elsewhere", None)
        .await
        .unwrap();
    assert_eq!(h.delete_connection("shop-sub").await, 204);
    let left = sim.subscriptions();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].uri, "http://127.0.0.1:9/elsewhere");
    assert!(sim.remove_subscription(left[0].id));

    // the merchant uninstalls the app: Shopify's app/uninstalled delivery disconnects
    let created = create_shop_sub(&h, "shop-gone-sub", &sim).await;
    assert_eq!(created["webhooks"]["managed"], true, "{created}");
    until("the second connection's subscriptions", || {
        sim.subscriptions().len() == topics.len()
    })
    .await;
    h.wait_sync("shop-gone-sub", |m| m["state"] == "done").await;
    let before = sim.deliveries().len();
    sim.uninstall_app();
    sim.deliveries_settled().await;
    let d = sim.deliveries();
    assert_eq!(d.len(), before + 1, "{d:?}");
    assert_eq!(
        (d[before].topic.as_str(), d[before].outcome.clone()),
        ("app/uninstalled", Ok(200))
    );
    let (_, v) = h.get("/v1/connections/shop-gone-sub", KEY).await;
    assert_eq!(v["data"]["state"], "disconnected", "{v}");
    assert!(
        v["data"]["disconnected"]["reason"]
            .as_str()
            .unwrap()
            .contains("app/uninstalled"),
        "{v}"
    );
    assert!(sim.subscriptions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_public_url_nothing_is_subscribed_and_polling_carries_the_connection() {
    let _serial = serial();
    let h = Harness::start_with(ingot_sync::SyncSettings {
        window: chrono::Duration::days(365),
        ..fast_sync()
    })
    .await;
    let sim = WooSim::start(woo_sub_sim_config(32)).await;
    let v = create_woo_sub(&h, "woo-poll", &sim).await;
    assert_eq!(v["webhooks"]["managed"], false, "{v}");
    assert_eq!(v["webhooks"]["carried_by"], "polling", "{v}");
    assert!(
        v["webhooks"]["reason"]
            .as_str()
            .unwrap()
            .contains("no [http] public_url is configured"),
        "{v}"
    );
    assert_eq!(v["generated_webhook_secret"], false, "{v}");
    h.wait_sync("woo-poll", |m| m["state"] == "done").await;
    assert!(sim.webhooks().is_empty(), "{:?}", sim.webhooks());
    assert!(sim.pings().is_empty());
    let (_, st) = h.get("/v1/connections/woo-poll/sync-status", KEY).await;
    assert_eq!(st["webhooks"]["managed"], false, "{st}");
    let (ok, out, err) = sync_status_follow(&h, "woo-poll");
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("webhooks not managed: no [http] public_url"),
        "{out}"
    );
    // deleting it touches no webhook
    assert_eq!(h.delete_connection("woo-poll").await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_app_uninstalled_disconnects_the_connection_and_stops_its_sync() {
    let _serial = serial();
    let h = Harness::start_with(fast_sync()).await;
    let sim = ShopifySim::start(ShopifySimConfig::small(14, 40)).await;
    h.create_sim_connection("shop-gone", &sim, 3600).await;
    h.wait_sync("shop-gone", |m| m["state"] == "done").await;
    let (s, v) = h.get("/v1/connections/shop-gone", KEY).await;
    assert_eq!(
        (s, v["data"]["state"].as_str()),
        (200, Some("active")),
        "{v}"
    );
    // a badly signed app/uninstalled changes nothing
    let shop = json!({"id": 548380009, "name": "Sim shop", "domain": "sim.myshopify.com"});
    let forged = shopsim::delivery(
        "sim.myshopify.com",
        "not-the-secret",
        "app/uninstalled",
        &shop,
        "evt-uninstall-0",
        "2026-11-20T15:00:00Z",
    );
    assert_eq!(
        shopsim::send(&h.client, &h.base, "shop-gone", &forged)
            .await
            .unwrap(),
        401
    );
    let (_, v) = h.get("/v1/connections/shop-gone", KEY).await;
    assert_eq!(v["data"]["state"], "active", "{v}");
    // the verified one disconnects it
    let d = shopsim::delivery(
        "sim.myshopify.com",
        "sim-secret",
        "app/uninstalled",
        &shop,
        "evt-uninstall-1",
        "2026-11-20T15:00:00Z",
    );
    assert_eq!(
        shopsim::send(&h.client, &h.base, "shop-gone", &d)
            .await
            .unwrap(),
        200
    );
    let (_, v) = h.get("/v1/connections/shop-gone", KEY).await;
    assert_eq!(v["data"]["state"], "disconnected", "{v}");
    assert!(
        v["data"]["disconnected"]["reason"]
            .as_str()
            .unwrap()
            .contains("app/uninstalled"),
        "{v}"
    );
    assert_eq!(v["data"]["webhooks"]["managed"], false, "{v}");
    // a repeated delivery keeps it so (idempotent)
    assert_eq!(
        shopsim::send(&h.client, &h.base, "shop-gone", &d)
            .await
            .unwrap(),
        200
    );
    // its sync is stopped: no reconciliation can start, sync-status says why
    let requests = sim.stats().requests;
    let (s, r) = h
        .post_json("/v1/connections/shop-gone/reconcile", &json!({}))
        .await;
    assert_eq!(s, 409, "{r}");
    assert!(r["error"].as_str().unwrap().contains("disconnected"), "{r}");
    let (_, st) = h.get("/v1/connections/shop-gone/sync-status", KEY).await;
    assert_eq!(st["connection_state"], "disconnected", "{st}");
    let (ok, out, err) = sync_status_follow(&h, "shop-gone");
    assert!(!ok, "{out} {err}");
    assert!(err.contains("connection disconnected at"), "{err}");
    assert_eq!(
        sim.stats().requests,
        requests,
        "the 3PA was not called again"
    );
    // the state survives a restart of the engine (it is in ingot.connections)
    let mut h = h;
    h.down().await;
    h.up().await;
    let (_, v) = h.get("/v1/connections/shop-gone", KEY).await;
    assert_eq!(v["data"]["state"], "disconnected", "{v}");
}
