//! The forwarder against the real embedded broker and schema registry, delivering to a real
//! receiver over loopback HTTP that verifies every request with its own HMAC-SHA256. Each
//! test has its own broker, ports and directories; tests run one at a time (two embedded
//! brokers in one process interfere).

// Each test runs on its own runtime and holds the serial lock for its whole body on purpose.
#![allow(clippy::await_holding_lock)]

mod support;

use ingot_model::{Model, RecordKey};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::*;

fn secret_of(v: &Value) -> String {
    v["secret"].as_str().expect("secret shown").to_string()
}

async fn create_endpoint(router: &axum::Router, key: &str, body: Value) -> (String, String) {
    let (st, v) = api(router, "POST", "/v1/webhook-endpoints", key, Some(body)).await;
    assert_eq!(st, 201, "{v}");
    (v["id"].as_str().unwrap().to_string(), secret_of(&v))
}

/// The spec's published vector, checked with this suite's own HMAC code (so the receiver's
/// verification is known to be right independently of the crate that signs).
#[test]
fn receiver_hmac_matches_the_spec_test_vector() {
    assert_eq!(
        hmac_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        ),
        "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_arrive_signed_in_order_with_the_api_record_and_per_tenant() {
    let _serial = serial();
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let fwd = start_forwarder(&infra, fast_config(), &infra.state_dir("fwd")).await;
    // the query API, to compare bodies with what GET /v1/orders/{id} serves
    let view = ingot_materializer::View::open(&infra.state_dir("view")).unwrap();
    let (mstop, mrx) = tokio::sync::watch::channel(false);
    let mat = tokio::spawn(
        ingot_materializer::Materializer::new(
            view.clone(),
            infra.kafka.clone(),
            infra.codec.clone(),
        )
        .run(mrx),
    );
    let query = ingot_materializer::router(ingot_materializer::ApiState::new(view, &tenants()));

    // --- the API: validation, auth, tenancy
    let r = &fwd.router;
    let (st, _) = api(r, "GET", "/v1/webhook-endpoints", "wrong-key", None).await;
    assert_eq!(st, 401);
    let (st, v) = api(
        r,
        "POST",
        "/v1/webhook-endpoints",
        "acme-key",
        Some(json!({"url": rx.url, "events": ["order.shipped"]})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = api(
        r,
        "POST",
        "/v1/webhook-endpoints",
        "acme-key",
        Some(json!({"url": rx.url, "nope": 1})),
    )
    .await;
    assert_eq!(st, 400);
    let (a, a_secret) = create_endpoint(
        r,
        "acme-key",
        json!({"url": format!("{}/a", rx.url), "events": ["order.*"], "description": "orders"}),
    )
    .await;
    // filters are kept with each item once (every change is matched against them), and
    // an endpoint names at most MAX_CONNECTION_IDS connections
    let many: Vec<String> = (0..=ingot_forwarder::api::MAX_CONNECTION_IDS)
        .map(|i| format!("shop-{i}"))
        .collect();
    let (st, v) = api(
        r,
        "POST",
        "/v1/webhook-endpoints",
        "acme-key",
        Some(json!({"url": rx.url, "connection_ids": many})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["error"],
        "connection_ids: 1001 connections; at most 1000 (omit it for all)"
    );
    let (c, c_secret) = create_endpoint(r, "acme-key", json!({"url": format!("{}/c", rx.url), "events": ["customer.created", "customer.created"], "connection_ids": ["shop-1", "shop-1"]})).await;
    let (_, shown) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{c}"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(shown["events"], json!(["customer.created"]), "{shown}");
    assert_eq!(shown["connection_ids"], json!(["shop-1"]), "{shown}");
    let (g, g_secret) =
        create_endpoint(r, "globex-key", json!({"url": format!("{}/g", rx.url)})).await;
    assert!(a_secret.starts_with("whsec_"));
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(a_secret.trim_start_matches("whsec_"))
        .unwrap();
    assert!(key.len() >= 24);
    rx.set_secrets(&[&a_secret, &c_secret, &g_secret]);

    let (st, v) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{a}"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["events"], json!(["order.*"]));
    assert_eq!(v["status"], "enabled");
    assert!(
        v.get("secret").is_none(),
        "the secret is shown only on create and rotation"
    );
    for (method, path) in [
        ("GET", format!("/v1/webhook-endpoints/{a}")),
        ("DELETE", format!("/v1/webhook-endpoints/{a}")),
        ("GET", format!("/v1/webhook-endpoints/{a}/deliveries")),
        ("POST", format!("/v1/webhook-endpoints/{a}/rotate-secret")),
        ("POST", format!("/v1/webhook-endpoints/{a}/test")),
    ] {
        let (st, _) = api(r, method, &path, "globex-key", None).await;
        assert_eq!(st, 404, "{method} {path} for another tenant");
    }
    let (st, _) = api(
        r,
        "PATCH",
        &format!("/v1/webhook-endpoints/{a}"),
        "globex-key",
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!(st, 404);
    // a field given as null is refused, not read as "keep the old value" (schemathesis
    // found `{"url": null}` answered 200); null clears only the connection filter
    for field in ["url", "events", "description", "status"] {
        let (st, v) = api(
            r,
            "PATCH",
            &format!("/v1/webhook-endpoints/{a}"),
            "acme-key",
            Some(json!({ field: null })),
        )
        .await;
        assert_eq!(st, 400, "PATCH {field}: null → {v}");
        assert!(
            v["error"].as_str().unwrap().contains(field),
            "names the field: {v}"
        );
    }
    let (_, v) = api(r, "GET", "/v1/webhook-endpoints", "globex-key", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["id"], g);

    // --- created, then updated, with the API's record shape
    let mut o1 = order("shop-1", "acme", "820982911946154508", "open");
    produce(&infra, &o1).await;
    let id = RecordKey::new("shop-1", Model::Order, "820982911946154508").record_id();
    let first = eventually(30, "order.created at a", || {
        rx.delivered_at("/a").first().cloned()
    })
    .await;
    assert_eq!(first.event_type(), "order.created");
    let served = eventually_async(30, "the view to serve the order", || async {
        let (st, v) = api(&query, "GET", &format!("/v1/orders/{id}"), "acme-key", None).await;
        (st == 200).then_some(v)
    })
    .await;
    let mut data = first.json["data"].clone();
    let version = data.as_object_mut().unwrap().remove("version").unwrap();
    assert_eq!(
        data, served["data"],
        "the event data is the record as GET serves it"
    );
    assert!(version.as_i64().unwrap() >= 0);
    assert_eq!(first.json["timestamp"], served["data"]["modified_at"]);
    // the same version again at a new offset (an at-least-once re-emission of the
    // processor): not a change, so the next event at `a` is the update below
    produce(&infra, &o1).await;

    o1.meta.modified_at = ingot_model::format_utc(&chrono::Utc::now());
    o1.data = match o1.data {
        ingot_model::RecordData::Order(mut o) => {
            o.status = "closed".into();
            ingot_model::RecordData::Order(o)
        }
        d => d,
    };
    produce(&infra, &o1).await;
    produce(&infra, &customer("shop-1", "acme", "77")).await;
    produce(&infra, &customer("shop-2", "acme", "78")).await;
    produce(&infra, &order("glx-1", "globex", "2001", "open")).await;
    produce_delete(&infra, &o1).await;

    let at_a = eventually(30, "three events at a", || {
        let d = rx.delivered_at("/a");
        (d.len() >= 3).then_some(d)
    })
    .await;
    let at_g = eventually(30, "globex's order at g", || {
        let d = rx.delivered_at("/g");
        (!d.is_empty()).then_some(d)
    })
    .await;
    let at_c = eventually(30, "the customer at c", || {
        let d = rx.delivered_at("/c");
        (!d.is_empty()).then_some(d)
    })
    .await;
    let types: Vec<&str> = at_a.iter().map(Got::event_type).collect();
    assert_eq!(types, ["order.created", "order.updated", "order.deleted"]);
    let versions: Vec<i64> = at_a.iter().map(Got::version).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions increase: {versions:?}"
    );
    assert_eq!(at_a[1].json["data"]["status"], "closed");
    assert_eq!(
        at_a[2].json["data"],
        json!({
            "id": id,
            "remote_id": "820982911946154508",
            "connection_id": "shop-1",
            "remote_deleted": true,
            "remote_deleted_at": o1.meta.remote_updated_at,
            "version": versions[2],
        })
    );
    let ids: BTreeSet<&str> = at_a.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "one webhook-id per change");
    for g in &at_a {
        assert_eq!(g.verified_by, [0], "signed with a's secret only");
        assert_eq!(g.signatures.len(), 1);
        assert!(g.json["data"].get("remote_data").is_none());
    }
    // tenants and filters: globex gets only its own record, c only shop-1's customer
    assert_eq!(at_g.len(), 1);
    assert_eq!(at_g[0].remote_id(), "2001");
    assert_eq!(at_g[0].verified_by, [2]);
    assert_eq!(at_c.len(), 1);
    assert_eq!(at_c[0].event_type(), "customer.created");
    assert_eq!(at_c[0].remote_id(), "77");
    assert!(rx
        .at("/a")
        .iter()
        .all(|g| g.json["data"]["tenant_id"] != "globex"));

    // --- the delivery log
    let log = settled_deliveries(r, &a, "acme-key", 3).await;
    assert_eq!(log[0]["event_type"], "order.deleted", "newest first");
    for d in log {
        assert_eq!(d["status"], "delivered");
        assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
        assert_eq!(d["attempts"][0]["status_code"], 200);
        assert!(d["attempts"][0]["latency_ms"].is_u64());
    }
    let (_, v) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{a}/deliveries?status=pending"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(v["data"], json!([]));
    let (_, v) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{a}/deliveries?limit=2"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let (_, v) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{a}/deliveries?limit=2&cursor={cursor}"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["event_type"], "order.created");
    assert_eq!(v["next_cursor"], Value::Null);
    let (st, _) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{a}/deliveries?status=lost"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(st, 400);

    // --- rotation: both secrets sign during the overlap
    let (st, v) = api(
        r,
        "POST",
        &format!("/v1/webhook-endpoints/{a}/rotate-secret"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let a_new = secret_of(&v);
    assert_ne!(a_new, a_secret);
    rx.set_secrets(&[&a_secret, &c_secret, &g_secret, &a_new]);
    produce(&infra, &order("shop-1", "acme", "5", "open")).await;
    let rotated = eventually(30, "a delivery after rotation", || {
        rx.delivered_at("/a")
            .into_iter()
            .find(|g| g.remote_id() == "5")
    })
    .await;
    assert_eq!(rotated.signatures.len(), 2);
    assert_eq!(
        rotated.verified_by,
        [0, 3],
        "old and new secret both verify"
    );

    // --- the test ping, signed like the rest
    let (st, v) = api(
        r,
        "POST",
        &format!("/v1/webhook-endpoints/{a}/test"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["delivered"], true, "{v}");
    let ping = rx
        .delivered_at("/a")
        .into_iter()
        .find(|g| g.event_type() == "ping")
        .expect("ping received");
    assert_eq!(ping.id, v["message_id"].as_str().unwrap());
    assert_eq!(ping.verified_by, [0, 3]);

    // --- replay of a time range: the same ids, types and bodies again
    let before: BTreeMap<String, Vec<u8>> = rx
        .delivered_at("/a")
        .into_iter()
        .filter(|g| g.event_type() != "ping")
        .map(|g| (g.id.clone(), g.body.clone()))
        .collect();
    assert_eq!(before.len(), 4);
    let until = chrono::Utc::now() + chrono::Duration::seconds(1);
    let (st, v) = api(
        r,
        "POST",
        &format!("/v1/webhook-endpoints/{a}/replay"),
        "acme-key",
        Some(json!({"since": started.to_rfc3339(), "until": until.to_rfc3339()})),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["replayed"], 4);
    let replayed = eventually(30, "the replayed events", || {
        let d: Vec<Got> = rx
            .delivered_at("/a")
            .into_iter()
            .filter(|g| g.event_type() != "ping")
            .collect();
        (d.len() >= 8).then(|| d[4..].to_vec())
    })
    .await;
    let again: BTreeMap<String, Vec<u8>> = replayed
        .iter()
        .map(|g| (g.id.clone(), g.body.clone()))
        .collect();
    assert_eq!(again, before, "replays carry the original ids and bodies");
    let (_, v) = api(r, "POST", &format!("/v1/webhook-endpoints/{a}/replay"), "acme-key", Some(json!({"since": until.to_rfc3339(), "until": (until + chrono::Duration::hours(1)).to_rfc3339()}))).await;
    assert_eq!(v["replayed"], 0, "{v}");
    let (st, _) = api(
        r,
        "POST",
        &format!("/v1/webhook-endpoints/{a}/replay"),
        "acme-key",
        Some(json!({"since": "yesterday"})),
    )
    .await;
    assert_eq!(st, 400);

    // --- delete
    let (st, _) = api(
        r,
        "DELETE",
        &format!("/v1/webhook-endpoints/{c}"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{c}"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(st, 404);

    let _ = mstop.send(true);
    mat.await.unwrap().unwrap();
    fwd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_the_id_and_body_and_hold_back_only_that_record() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let fwd = start_forwarder(&infra, fast_config(), &infra.state_dir("fwd")).await;
    let (e, secret) = create_endpoint(
        &fwd.router,
        "acme-key",
        json!({"url": format!("{}/e", rx.url)}),
    )
    .await;
    rx.set_secrets(&[&secret]);
    let v1_id = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let v1 = v1_id.clone();
    rx.answer_with(move |g, n| match g.remote_id() {
        "r1" if g.json["data"]["status"] == "open" => {
            *v1.lock().unwrap() = Some(g.id.clone());
            if n < 3 {
                Answer::status(500)
            } else {
                Answer::OK
            }
        }
        "r3" if n == 0 => Answer {
            status: 429,
            retry_after: Some(3),
            delay: None,
        },
        "r4" if n == 0 => Answer {
            status: 200,
            retry_after: None,
            delay: Some(Duration::from_secs(3)), // longer than timeout_secs = 2
        },
        _ => Answer::OK,
    });
    produce(&infra, &order("shop-1", "acme", "r1", "open")).await;
    produce(&infra, &order("shop-1", "acme", "r2", "open")).await;
    produce(&infra, &order("shop-1", "acme", "r3", "open")).await;
    produce(&infra, &order("shop-1", "acme", "r4", "open")).await;
    produce(&infra, &order("shop-1", "acme", "r1", "closed")).await;

    let done = eventually(60, "every record delivered", || {
        let d = rx.delivered_at("/e");
        let ids: BTreeSet<&str> = d.iter().map(|g| g.remote_id()).collect();
        (ids.len() == 4
            && d.iter()
                .any(|g| g.remote_id() == "r1" && g.json["data"]["status"] == "closed"))
        .then_some(d)
    })
    .await;
    let all = rx.at("/e");
    assert!(
        all.iter().all(|g| g.verified_by == [0]),
        "every attempt is signed"
    );
    let v1_id = v1_id.lock().unwrap().clone().unwrap();
    let r1v1: Vec<&Got> = all.iter().filter(|g| g.id == v1_id).collect();
    assert_eq!(r1v1.len(), 4, "three 500s, then 200");
    assert!(
        r1v1.iter().all(|g| g.body == r1v1[0].body),
        "same body on every retry"
    );
    for w in r1v1.windows(2) {
        assert!(
            w[1].timestamp > w[0].timestamp,
            "fresh webhook-timestamp per attempt"
        );
        assert_ne!(
            w[1].signatures, w[0].signatures,
            "fresh signature per attempt"
        );
    }
    let v1_ok = r1v1.last().unwrap();
    let r1v2 = all
        .iter()
        .find(|g| g.remote_id() == "r1" && g.json["data"]["status"] == "closed")
        .unwrap();
    assert_ne!(r1v2.id, v1_id);
    assert!(
        r1v2.at > v1_ok.at,
        "the later change waits for the earlier one"
    );
    assert_eq!(r1v2.event_type(), "order.updated");
    let r2 = done.iter().find(|g| g.remote_id() == "r2").unwrap();
    assert!(r2.at < v1_ok.at, "other records flow while r1 is retried");
    // 429 + Retry-After: 3 s, longer than the 1.1 s schedule
    let r3: Vec<&Got> = all.iter().filter(|g| g.remote_id() == "r3").collect();
    assert_eq!(r3.len(), 2);
    let waited = r3[1].at - r3[0].at;
    assert!(
        waited >= Duration::from_millis(2900),
        "Retry-After honoured: {waited:?}"
    );
    // a timeout is a failed attempt, retried with the same id
    let r4: Vec<&Got> = all.iter().filter(|g| g.remote_id() == "r4").collect();
    assert_eq!(r4.len(), 2);
    assert_eq!(r4[0].id, r4[1].id);
    let log = settled_deliveries(&fwd.router, &e, "acme-key", 5).await;
    let find = |msg: &str| log.iter().find(|d| d["message_id"] == msg).unwrap().clone();
    let d1 = find(&v1_id);
    assert_eq!(d1["status"], "delivered");
    let codes: Vec<Value> = d1["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(500), json!(500), json!(200)]);
    let d4 = find(&r4[0].id);
    assert_eq!(d4["attempts"][0]["error"], "timeout");
    assert_eq!(d4["attempts"][0]["status_code"], Value::Null);
    let d3 = find(&r3[0].id);
    assert_eq!(d3["attempts"][0]["status_code"], 429);
    fwd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_and_continuous_failure_disable_and_reenabling_resumes() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let cfg = ingot_forwarder::ForwarderConfig {
        disable_after_failing_secs: 2.5,
        retry_schedule_secs: vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        ..fast_config()
    };
    let fwd = start_forwarder(&infra, cfg, &infra.state_dir("fwd")).await;
    let r = &fwd.router;
    let (e, _) = create_endpoint(r, "acme-key", json!({"url": format!("{}/gone", rx.url)})).await;
    let (h, _) = create_endpoint(r, "acme-key", json!({"url": format!("{}/down", rx.url)})).await;
    let (_f, _) = create_endpoint(r, "acme-key", json!({"url": format!("{}/fine", rx.url)})).await;
    let gone = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let g2 = gone.clone();
    rx.answer_with(move |g, _| match g.path.as_str() {
        "/gone" if g2.load(std::sync::atomic::Ordering::SeqCst) => Answer::status(410),
        "/down" => Answer::status(500),
        _ => Answer::OK,
    });
    produce(&infra, &order("shop-1", "acme", "x1", "open")).await;
    let disabled = |id: String| async move {
        let (_, v) = api(
            r,
            "GET",
            &format!("/v1/webhook-endpoints/{id}"),
            "acme-key",
            None,
        )
        .await;
        (v["status"] == "disabled").then_some(v)
    };
    let v = eventually_async(30, "410 to disable the endpoint", || disabled(e.clone())).await;
    assert!(
        v["disabled_reason"].as_str().unwrap().contains("410"),
        "{v}"
    );
    let v = eventually_async(30, "continuous failure to disable the endpoint", || {
        disabled(h.clone())
    })
    .await;
    assert!(
        v["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed since"),
        "{v}"
    );
    let first_try = rx.at("/gone");
    assert_eq!(
        first_try.len(),
        1,
        "nothing more is sent to a disabled endpoint"
    );
    // a disabled endpoint gets no new deliveries (x2 reaches /fine, not /gone)
    produce(&infra, &order("shop-1", "acme", "x2", "open")).await;
    eventually(30, "x2 at the healthy endpoint", || {
        rx.delivered_at("/fine")
            .into_iter()
            .find(|g| g.remote_id() == "x2")
    })
    .await;
    let (_, v) = api(
        r,
        "GET",
        &format!("/v1/webhook-endpoints/{e}/deliveries"),
        "acme-key",
        None,
    )
    .await;
    let log = v["data"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["attempts"][0]["status_code"], 410);
    // re-enabled, the paused delivery goes out with its original id
    gone.store(false, std::sync::atomic::Ordering::SeqCst);
    let (st, v) = api(
        r,
        "PATCH",
        &format!("/v1/webhook-endpoints/{e}"),
        "acme-key",
        Some(json!({"status": "enabled"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["disabled_reason"], Value::Null);
    let resumed = eventually(30, "the paused delivery after re-enabling", || {
        rx.delivered_at("/gone").first().cloned()
    })
    .await;
    assert_eq!(resumed.id, first_try[0].id);
    assert_eq!(resumed.remote_id(), "x1");
    assert!(rx.at("/gone").iter().all(|g| g.remote_id() != "x2"));
    fwd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_refuses_private_addresses() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let cfg = ingot_forwarder::ForwarderConfig::default(); // allow_insecure_urls = false
    let fwd = start_forwarder(&infra, cfg, &infra.state_dir("fwd")).await;
    // every documented route is routed (and wants a key)
    for (method, path) in ingot_forwarder::api::ROUTES {
        let path = path.replace("{id}", "ep_x");
        let (st, _) = api(
            &fwd.router,
            &method.to_uppercase(),
            &path,
            "no-such-key",
            None,
        )
        .await;
        assert_eq!(st, 401, "{method} {path}");
    }
    let port = rx.url.rsplit(':').next().unwrap().to_string();
    for url in [
        rx.url.clone(),                        // http
        format!("https://127.0.0.1:{port}/x"), // loopback
        format!("https://localhost:{port}/x"),
        "https://10.1.2.3/x".to_string(), // private
        "https://192.168.0.10/x".to_string(),
        "https://172.20.0.1/x".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(), // metadata, link-local
        "https://[::1]/x".to_string(),
        "https://[fd00:ec2::254]/x".to_string(),
        "https://[::ffff:127.0.0.1]/x".to_string(),
    ] {
        let (st, v) = api(
            &fwd.router,
            "POST",
            "/v1/webhook-endpoints",
            "acme-key",
            Some(json!({"url": url})),
        )
        .await;
        assert_eq!(st, 400, "{url}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with("url:"), "{v}");
    }
    // a name that resolves to loopback is refused at creation and by the sender's resolver
    if tokio::net::lookup_host(("ip6-localhost", 443))
        .await
        .is_ok()
    {
        let (st, _) = api(
            &fwd.router,
            "POST",
            "/v1/webhook-endpoints",
            "acme-key",
            Some(json!({"url": format!("https://ip6-localhost:{port}/x")})),
        )
        .await;
        assert_eq!(st, 400);
    }
    let sender = ingot_forwarder::http::Sender::new(Duration::from_secs(2), 1024, false);
    let res = sender
        .send(
            &format!("https://127.0.0.1:{port}/x"),
            "msg_1",
            b"{}",
            &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
        )
        .await;
    assert!(res.error.is_some() && res.status.is_none(), "{res:?}");
    assert!(rx.all().is_empty(), "nothing reached the private address");
    fwd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_pending_deliveries_loses_none() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let state = infra.state_dir("fwd");
    let fwd = start_forwarder(&infra, fast_config(), &state).await;
    let (_, secret) = create_endpoint(
        &fwd.router,
        "acme-key",
        json!({"url": format!("{}/e", rx.url)}),
    )
    .await;
    rx.set_secrets(&[&secret]);
    rx.answer_with(|_, _| Answer::status(503));
    for i in 0..20 {
        produce(&infra, &order("shop-1", "acme", &format!("p{i}"), "open")).await;
    }
    let seen_before = eventually(30, "an attempt for every record", || {
        let ids: BTreeMap<String, String> = rx
            .all()
            .into_iter()
            .map(|g| (g.remote_id().to_string(), g.id))
            .collect();
        (ids.len() == 20).then_some(ids)
    })
    .await;
    fwd.crash().await;
    for i in 20..25 {
        produce(&infra, &order("shop-1", "acme", &format!("p{i}"), "open")).await;
    }
    rx.answer_with(|_, _| Answer::OK);
    let fwd = start_forwarder(&infra, fast_config(), &state).await;
    let delivered = eventually(60, "every record after the restart", || {
        let d: BTreeMap<String, String> = rx
            .delivered()
            .into_iter()
            .map(|g| (g.remote_id().to_string(), g.id))
            .collect();
        (d.len() == 25).then_some(d)
    })
    .await;
    for (rid, id) in &seen_before {
        assert_eq!(
            &delivered[rid], id,
            "{rid} delivered with its original webhook-id"
        );
    }
    assert!(rx.all().iter().all(|g| g.verified_by == [0]));
    let (_, v) = api(
        &fwd.router,
        "GET",
        "/v1/webhook-endpoints",
        "acme-key",
        None,
    )
    .await;
    let e = v["data"][0]["id"].as_str().unwrap().to_string();
    // the receiver has every answer; the forwarder records each after reading it
    let pending = format!("/v1/webhook-endpoints/{e}/deliveries?status=pending");
    eventually_async(30, "no delivery left pending", || async {
        let (_, v) = api(&fwd.router, "GET", &pending, "acme-key", None).await;
        (v["data"] == json!([])).then_some(())
    })
    .await;
    fwd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_from_produce_to_receipt() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let fwd = start_forwarder(&infra, fast_config(), &infra.state_dir("fwd")).await;
    create_endpoint(
        &fwd.router,
        "acme-key",
        json!({"url": format!("{}/e", rx.url)}),
    )
    .await;
    let mut ack = Vec::new();
    // warm-up: the first record also pays the consumer's start and the schema lookup
    produce(&infra, &order("shop-1", "acme", "warm", "open")).await;
    eventually(30, "the warm-up record", || rx.delivered().first().cloned()).await;
    let n = 200;
    let mut produced = BTreeMap::new();
    for i in 0..n {
        let rec = order("shop-1", "acme", &format!("l{i}"), "open");
        let t = Instant::now();
        produce(&infra, &rec).await;
        ack.push(t.elapsed());
        produced.insert(format!("l{i}"), t);
        tokio::time::sleep(Duration::from_millis(5)).await; // pacing, not a wait for a condition
    }
    let got = eventually(60, "every record", || {
        let d = rx.delivered();
        (d.len() > n).then_some(d)
    })
    .await;
    let mut lat: Vec<Duration> = got
        .iter()
        .filter_map(|g| produced.get(g.remote_id()).map(|t| g.at - *t))
        .collect();
    lat.sort();
    assert_eq!(lat.len(), n);
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    ack.sort();
    println!(
        "produce acknowledged (part of the figure below): p50 {:?}, p99 {:?}",
        ack[n / 2],
        ack[n * 99 / 100]
    );
    println!(
        "forwarder latency, normalized record produced -> change webhook received (loopback, {n} records): p50 {:?}, p99 {:?}, max {:?}",
        p(0.50),
        p(0.99),
        lat[lat.len() - 1]
    );
    fwd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_directory_resumes_from_the_committed_offsets() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let state = infra.state_dir("fwd");
    let cfg = fast_config();
    let group = cfg.group_id.clone();
    let fwd = start_forwarder(&infra, cfg.clone(), &state).await;
    create_endpoint(
        &fwd.router,
        "acme-key",
        json!({"url": format!("{}/e", rx.url)}),
    )
    .await;
    let mut produced = 0;
    for i in 0..6 {
        produce(&infra, &order("shop-1", "acme", &format!("s{i}"), "open")).await;
        produced += 1;
    }
    eventually(30, "six deliveries", || {
        (rx.delivered().len() == 6).then_some(())
    })
    .await;
    // offsets are committed to the group once the jobs are stored
    eventually_async(
        30,
        "the committed offsets to cover every record",
        || async {
            let c = infra
                .kafka
                .committed_offsets(&group, "normalized.order")
                .await
                .ok()?;
            (c.iter().filter_map(|(_, o)| *o).sum::<i64>() == produced).then_some(())
        },
    )
    .await;
    fwd.stop().await;
    std::fs::remove_dir_all(&state).unwrap();
    let fwd = start_forwarder(&infra, cfg, &state).await;
    produce(&infra, &order("shop-1", "acme", "s6", "open")).await;
    let got = eventually(30, "the record produced after the restart", || {
        let d = rx.delivered();
        d.iter().any(|g| g.remote_id() == "s6").then_some(d)
    })
    .await;
    assert_eq!(
        got.len(),
        7,
        "nothing before the committed offsets is sent again"
    );
    fwd.stop().await;
}

/// No redirect is followed and at most `max_response_bytes` of a response are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_bodies_are_read_only_so_far() {
    use axum::routing::post;
    let followed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f2 = followed.clone();
    let app = axum::Router::new()
        .route(
            "/moved",
            post(|| async { (axum::http::StatusCode::FOUND, [("location", "/target")], "") }),
        )
        .route(
            "/target",
            post(move || {
                f2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .route("/big", post(|| async { "x".repeat(8 << 20) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sender = ingot_forwarder::http::Sender::new(Duration::from_secs(5), 1024, true);
    let secret = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"];
    let res = sender
        .send(&format!("http://{addr}/moved"), "msg_1", b"{}", &secret)
        .await;
    assert_eq!(res.status, Some(302));
    assert!(!res.success());
    assert_eq!(
        followed.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "redirect not followed"
    );
    let res = sender
        .send(&format!("http://{addr}/big"), "msg_2", b"{}", &secret)
        .await;
    assert!(res.success(), "{res:?}");
    assert_eq!(
        res.response.as_deref().map(str::len),
        Some(256),
        "only a prefix is kept"
    );
    server.abort();
}

fn all_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_secrets_are_sealed_at_rest_and_sign_after_a_restart() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let topic = ingot_forwarder::ENDPOINTS_TOPIC;
    // an endpoint written in clear by an older ingot
    let legacy_secret = ingot_forwarder::sign::generate_secret();
    let legacy = json!({
        "id": "ep_legacy", "tenant_id": "globex", "url": format!("{}/legacy", rx.url),
        "events": ["*"], "status": "enabled",
        "secrets": [{"secret": legacy_secret, "expires_at": null}],
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
    });
    infra
        .producer
        .send(
            topic,
            b"ep_legacy",
            Some(legacy.to_string().as_bytes()),
            &[],
        )
        .await
        .unwrap();
    let state = infra.state_dir("fwd");
    let fwd = start_forwarder(&infra, fast_config(), &state).await;
    let (a, first) = create_endpoint(
        &fwd.router,
        "acme-key",
        json!({"url": format!("{}/a", rx.url), "events": ["order.*"]}),
    )
    .await;
    let (st, v) = api(
        &fwd.router,
        "POST",
        &format!("/v1/webhook-endpoints/{a}/rotate-secret"),
        "acme-key",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let second = v["secret"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    fwd.stop().await;

    // the topic's latest values hold sealed secrets only (the current and the rotated-out
    // one of `a`, and the legacy one sealed on open), each naming key test-k1
    let records = infra.kafka.read_all(topic).await.unwrap();
    let latest = |id: &str| {
        let m = records
            .iter()
            .rev()
            .find(|m| m.key_str() == Some(id))
            .unwrap();
        String::from_utf8(m.value.clone().unwrap()).unwrap()
    };
    for (id, n) in [(a.as_str(), 2), ("ep_legacy", 1)] {
        let text = latest(id);
        for s in [&first, &second, &legacy_secret] {
            assert!(!text.contains(s.as_str()), "{id}: {text}");
        }
        assert!(!text.contains("whsec_"), "{id}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let secrets = v["secrets"].as_array().unwrap();
        assert_eq!(secrets.len(), n, "{v}");
        for s in secrets {
            assert!(
                s["secret"]
                    .as_str()
                    .unwrap()
                    .starts_with("ingot-sealed:v1:test-k1:"),
                "{v}"
            );
        }
    }
    assert!(latest(&a).contains("\"expires_at\":\"20"), "rotation kept");
    // no record the forwarder wrote, nor any file of the broker, holds a secret it made
    for m in &records {
        let text = String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).to_string();
        assert!(!text.contains(&first) && !text.contains(&second), "{text}");
    }
    for file in all_files_under(&infra.dir.path().join("broker")) {
        let bytes = std::fs::read(&file).unwrap();
        for s in [&first, &second] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "a secret in {}",
                file.display()
            );
        }
    }

    // without the key the endpoints do not open, and the error names the key needed
    let (other, _) = ingot_model::Keyring::generate("k9").unwrap();
    let err = ingot_forwarder::Forwarder::open(
        fast_config(),
        &infra.state_dir("other"),
        infra.kafka.clone(),
        infra.codec.clone(),
        auth(),
        other,
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("sealed with key \"test-k1\", which is not configured"),
        "{err}"
    );

    // after a restart with the key, both active secrets of `a` sign, and the legacy one
    let fwd = start_forwarder(&infra, fast_config(), &state).await;
    rx.set_secrets(&[&second, &first, &legacy_secret]);
    produce(&infra, &order("shop-1", "acme", "s1", "open")).await;
    produce(&infra, &order("shop-9", "globex", "s2", "open")).await;
    let a_got = eventually(30, "the acme delivery", || {
        rx.delivered_at("/a").into_iter().next()
    })
    .await;
    assert_eq!(a_got.remote_id(), "s1");
    assert_eq!(
        a_got.verified_by,
        [0, 1],
        "signed with current and previous"
    );
    let l_got = eventually(30, "the legacy endpoint's delivery", || {
        rx.delivered_at("/legacy").into_iter().next()
    })
    .await;
    assert_eq!(l_got.remote_id(), "s2");
    assert_eq!(l_got.verified_by, [2]);
    fwd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_normalized_records_are_dead_lettered_and_forwarding_goes_on() {
    use ingot_model::dlq::{HEADER_REASON as HEADER_DLQ_REASON, HEADER_SOURCE, TOPIC as DLQ_TOPIC};
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    let state = infra.state_dir("fwd");
    let fwd = start_forwarder(&infra, fast_config(), &state).await;
    let (_, secret) = create_endpoint(
        &fwd.router,
        "acme-key",
        json!({"url": format!("{}/e", rx.url)}),
    )
    .await;
    rx.set_secrets(&[&secret]);
    let topic = Model::Order.normalized_topic();
    // 1. a value that is no Avro at all under a record key; 2. a good value under a key
    //    that is no record key; 3. a good record
    let garbage: &[u8] = b"not avro at all";
    let (pp, po) = infra
        .producer
        .send(&topic, b"shop-1/order/1", Some(garbage), &[])
        .await
        .unwrap();
    let good = infra
        .codec
        .encode_record(&order("shop-1", "acme", "2", "open"))
        .await
        .unwrap();
    let (kp, ko) = infra
        .producer
        .send(&topic, b"no-slashes-here", Some(&good), &[])
        .await
        .unwrap();
    produce(&infra, &order("shop-1", "acme", "3", "open")).await;
    let got = eventually(30, "the good record", || rx.delivered().into_iter().next()).await;
    assert_eq!(got.remote_id(), "3");

    let dlq_of = |dlq: &[ingot_kafka::Message], source: String| {
        dlq.iter()
            .filter(|m| m.header(HEADER_SOURCE) == Some(source.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    };
    let dlq = infra.kafka.read_all(DLQ_TOPIC).await.unwrap();
    let undecodable = dlq_of(&dlq, format!("{topic}/{pp}@{po}"));
    assert_eq!(undecodable.len(), 1, "{dlq:?}");
    assert_eq!(undecodable[0].value.as_deref(), Some(garbage));
    assert_eq!(undecodable[0].key.as_deref(), Some(&b"shop-1/order/1"[..]));
    let reason = undecodable[0].header(HEADER_DLQ_REASON).unwrap();
    assert_eq!(undecodable[0].header("ingot-dlq-stage"), Some("forwarder"));
    assert!(
        reason.starts_with("undecodable normalized value: "),
        "{reason}"
    );
    let bad_key = dlq_of(&dlq, format!("{topic}/{kp}@{ko}"));
    assert_eq!(bad_key.len(), 1, "{dlq:?}");
    assert_eq!(bad_key[0].value.as_deref(), Some(&good[..]));
    assert_eq!(
        bad_key[0].header(HEADER_DLQ_REASON),
        Some("unusable normalized record: key is not a record key")
    );

    // after a restart the pills are not dead-lettered again, and records keep flowing
    fwd.stop().await;
    let fwd = start_forwarder(&infra, fast_config(), &state).await;
    produce(&infra, &order("shop-1", "acme", "4", "open")).await;
    eventually(30, "the record after the restart", || {
        rx.delivered()
            .iter()
            .any(|g| g.remote_id() == "4")
            .then_some(())
    })
    .await;
    let ids: Vec<String> = rx
        .delivered()
        .iter()
        .map(|g| g.remote_id().to_string())
        .collect();
    assert_eq!(ids, ["3", "4"], "no event from a pill");
    let dlq = infra.kafka.read_all(DLQ_TOPIC).await.unwrap();
    assert_eq!(dlq_of(&dlq, format!("{topic}/{pp}@{po}")).len(), 1);
    assert_eq!(dlq_of(&dlq, format!("{topic}/{kp}@{ko}")).len(), 1);
    fwd.stop().await;
}
