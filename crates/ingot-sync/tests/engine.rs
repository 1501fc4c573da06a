//! The sync engine and the connections API against the real embedded broker and registry.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ingot_kafka::{AvroCodec, KafkaSettings, Producer};
use ingot_model::auth::{Auth, Tenant};
use ingot_model::{ConnectionSpec, Keyring, Model};
use ingot_sync::{Engine, SyncSettings, SyncState, CONNECTIONS_TOPIC};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The embedded broker keeps process-wide state: the tests of this binary run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Infra {
    kafka: KafkaSettings,
    codec: AvroCodec,
    dir: tempfile::TempDir,
    _cluster: ingot_embedded::LocalCluster,
}

async fn infra() -> Infra {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ingot_embedded::LocalCluster::start(dir.path(), Duration::from_secs(10))
        .await
        .unwrap();
    Infra {
        kafka: cluster.kafka.clone(),
        codec: AvroCodec::new(&cluster.registry_url).unwrap(),
        dir,
        _cluster: cluster,
    }
}

fn settings() -> SyncSettings {
    SyncSettings {
        retry_after_failure: Duration::from_millis(200),
        ..SyncSettings::default()
    }
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SECRETS: [&str; 4] = [
    "shpat_live_token_9f8e7d",
    "ck_live_key_1a2b3c",
    "cs_live_secret_4d5e6f",
    "whsec_signing_7a8b9c",
];
const LEGACY_SECRET: &str = "whsec_legacy_in_clear_5e6f";

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
async fn credentials_and_webhook_secrets_are_sealed_at_rest() {
    let _serial = SERIAL.lock().await;
    let infra = infra().await;
    let (ring, key) = Keyring::generate("k1").unwrap();
    let engine = Engine::open_sealed(
        infra.kafka.clone(),
        infra.codec.clone(),
        settings(),
        ring.clone(),
    )
    .await
    .unwrap();
    let spec: ConnectionSpec = serde_json::from_value(json!({
        "id": "woo-1", "tenant": "acme", "provider": "woocommerce",
        "base_url": "https://w.example", "sync_disabled": true,
        "credentials": {"access_token": SECRETS[0], "consumer_key": SECRETS[1], "consumer_secret": SECRETS[2]},
        "webhook_secrets": [SECRETS[3]],
    }))
    .unwrap();
    assert!(engine.upsert_connection(spec.clone()).await.unwrap());
    // a connection written in clear by an older ingot
    let legacy = json!({
        "id": "old-1", "tenant": "acme", "provider": "shopify", "shop_domain": "o.myshopify.com",
        "sync_disabled": true, "webhook_secrets": [LEGACY_SECRET],
    });
    Producer::new(&infra.kafka)
        .unwrap()
        .send(
            CONNECTIONS_TOPIC,
            b"old-1",
            Some(legacy.to_string().as_bytes()),
            &[],
        )
        .await
        .unwrap();
    engine.stop();
    drop(engine);

    // reopening seals the legacy one and reads both back whole
    let engine = Engine::open_sealed(
        infra.kafka.clone(),
        infra.codec.clone(),
        settings(),
        ring.clone(),
    )
    .await
    .unwrap();
    assert_eq!(engine.connection("woo-1"), Some(spec.clone()));
    let old = engine.connection("old-1").unwrap();
    assert_eq!(old.webhook_secrets[0].expose(), LEGACY_SECRET);
    let debug = format!("{:?}", engine.connections());
    for s in SECRETS.iter().chain(&[LEGACY_SECRET]) {
        assert!(!debug.contains(s), "{debug}");
    }

    // the topic's latest values hold no secret, only sealed values naming key k1
    let records = infra.kafka.read_all(CONNECTIONS_TOPIC).await.unwrap();
    let latest = |id: &str| {
        records
            .iter()
            .rev()
            .find(|m| m.key_str() == Some(id))
            .and_then(|m| m.value.clone())
            .map(|v| String::from_utf8(v).unwrap())
            .unwrap()
    };
    for id in ["woo-1", "old-1"] {
        let text = latest(id);
        for s in SECRETS.iter().chain(&[LEGACY_SECRET]) {
            assert!(!text.contains(s), "{id}: {text}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        for sealed in v["webhook_secrets"].as_array().unwrap() {
            assert!(
                sealed.as_str().unwrap().starts_with("ingot-sealed:v1:k1:"),
                "{v}"
            );
        }
    }
    // no record the engine wrote, nor any file of the broker, holds these secrets
    for m in &records {
        let text = String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).to_string();
        for s in SECRETS {
            assert!(!text.contains(s), "{text}");
        }
    }
    for file in all_files_under(&infra.dir.path().join("broker")) {
        let bytes = std::fs::read(&file).unwrap();
        for s in SECRETS {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s} in {}",
                file.display()
            );
        }
    }
    engine.stop();
    drop(engine);

    // without the key the store does not open, and says which key it needs
    let err = Engine::open(infra.kafka.clone(), infra.codec.clone(), settings())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("sealed with key \"k1\", which is not configured"),
        "{err}"
    );
    // after a rotation (new key current, k1 kept as old) everything still opens
    let (_, k2) = Keyring::generate("k2").unwrap();
    let rotated = Keyring::from_specs([&k2, &key]).unwrap();
    let engine = Engine::open_sealed(
        infra.kafka.clone(),
        infra.codec.clone(),
        settings(),
        rotated,
    )
    .await
    .unwrap();
    assert_eq!(engine.connection("woo-1"), Some(spec));
    let from_reader = ingot_sync::read_connections_sealed(&infra.kafka, &ring)
        .await
        .unwrap();
    assert_eq!(from_reader.len(), 2);
    engine.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connections_api_refuses_out_of_range_settings_with_a_reason() {
    let _serial = SERIAL.lock().await;
    let infra = infra().await;
    let (ring, _) = Keyring::generate("k1").unwrap();
    let engine = Engine::open_sealed(infra.kafka.clone(), infra.codec.clone(), settings(), ring)
        .await
        .unwrap();
    let auth = Auth::new(&[Tenant {
        id: "acme".into(),
        api_keys: vec!["key-1".into()],
        connections: None,
    }]);
    let app = ingot_sync::api::router(engine.clone(), auth);
    let post = |body: Value| {
        Request::post("/v1/connections")
            .header("authorization", "Bearer key-1")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for (field, value, reason) in [
        (
            "history_days",
            json!(1_000_000_000u64),
            "history_days 1000000000 is out of range 1..=3650",
        ),
        (
            "poll_interval_secs",
            json!(1_000_000_000_000_000_000u64),
            "poll_interval_secs 1000000000000000000 is out of range 1..=2592000",
        ),
    ] {
        let mut body = json!({
            "id": "shop-9", "provider": "shopify", "shop_domain": "s.myshopify.com",
            "credentials": {"access_token": "shpat_x"}, "webhook_secrets": ["s"],
        });
        body[field] = value;
        let resp = app.clone().oneshot(post(body)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{field}");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"], reason);
        assert_eq!(engine.connection("shop-9"), None, "nothing stored");
    }
    // a NetSuite connection cannot sync without its account's time zone
    let resp = app
        .clone()
        .oneshot(post(json!({
            "id": "ns-9", "provider": "netsuite", "base_url": "http://127.0.0.1:9",
            "credentials": {"access_token": "t"},
        })))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v["error"],
        "timezone (the account's IANA time zone, e.g. \"America/New_York\") is required for provider netsuite unless sync_disabled"
    );
    assert_eq!(engine.connection("ns-9"), None, "nothing stored");
    engine.stop();
}

/// Writes a connection to the control topic as an older ingot did, without validation.
async fn store_unvalidated(kafka: &KafkaSettings, spec: &Value) {
    let id = spec["id"].as_str().unwrap();
    Producer::new(kafka)
        .unwrap()
        .send(
            CONNECTIONS_TOPIC,
            id.as_bytes(),
            Some(spec.to_string().as_bytes()),
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netsuite_connection_without_its_time_zone_stops_its_sync_and_holds_no_worker() {
    let _serial = SERIAL.lock().await;
    let infra = infra().await;
    // stored by an older ingot, which took it: the connector refuses every call at once,
    // and the historical sync retried the same window forever without yielding (one
    // such connection held a runtime worker; schemathesis made two and hung `ingot demo`)
    let stored = json!({
        "id": "ns-nozone", "tenant": "acme", "provider": "netsuite",
        "base_url": "http://127.0.0.1:9", "credentials": {"access_token": "t"},
    });
    store_unvalidated(&infra.kafka, &stored).await;
    // the engine on a runtime of its own, so that a sync task that never yields holds
    // its workers and not the test's: the wait below then fails instead of hanging
    let engine_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ring, _) = Keyring::generate("k1").unwrap();
    let (kafka, codec) = (infra.kafka.clone(), infra.codec.clone());
    let engine = engine_rt
        .spawn(async move {
            let engine = Engine::open_sealed(kafka, codec, settings(), ring)
                .await
                .unwrap();
            engine.start_all();
            engine
        })
        .await
        .unwrap();
    // partial: a historical sync that stopped, to resume at its checkpoint once fixed
    wait_until("every model partial", || {
        let st = engine.status("ns-nozone");
        st.len() == Model::ALL.len() && st.values().all(|s| s.state == SyncState::Partial)
    })
    .await;
    for (model, s) in engine.status("ns-nozone") {
        assert_eq!(
            s.last_error.as_deref(),
            Some("the connection's settings: the NetSuite connector needs config.timezone (the account's IANA time zone)"),
            "{model}"
        );
        assert_eq!(s.cursor, None, "{model}");
        assert_eq!(s.records_written, 0, "{model}");
    }
    engine.stop();
    engine_rt.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_cannot_run_is_marked_failed_with_its_error() {
    let _serial = SERIAL.lock().await;
    let infra = infra().await;
    // a connection stored (by an older ingot, without validation) with a history the
    // calendar cannot hold: its historical sync panicked and it looked `pending` forever
    let stored = json!({
        "id": "shop-big", "tenant": "acme", "provider": "shopify",
        "shop_domain": "s.myshopify.com", "base_url": "http://127.0.0.1:9",
        "credentials": {"access_token": "shpat_x"}, "history_days": 1_000_000_000u64,
    });
    store_unvalidated(&infra.kafka, &stored).await;
    let (ring, _) = Keyring::generate("k1").unwrap();
    let engine = Engine::open_sealed(infra.kafka.clone(), infra.codec.clone(), settings(), ring)
        .await
        .unwrap();
    engine.start_all();
    wait_until("every model failed", || {
        engine
            .status("shop-big")
            .values()
            .all(|s| s.state == SyncState::Failed)
    })
    .await;
    for (model, s) in engine.status("shop-big") {
        assert_eq!(
            s.last_error.as_deref(),
            Some("invalid connection: history_days 1000000000 reaches before the calendar"),
            "{model}"
        );
        assert_eq!(s.cursor, None, "{model}");
    }
    assert_eq!(engine.status("shop-big").len(), Model::ALL.len());
    engine.stop();
}

/// A WooCommerce store with `tied` orders sharing one modified second (more than a page).
async fn tied_woo(
    tied: usize,
) -> (
    ingot_testkit::woocommerce::WooSim,
    chrono::DateTime<chrono::Utc>,
) {
    use ingot_testkit::woocommerce::{WooResource, WooSim, WooSimConfig};
    let sim = WooSim::start(WooSimConfig {
        seed: 5,
        orders: 150,
        customers: 30,
        products: 10,
        ..WooSimConfig::default()
    })
    .await;
    let tie = sim.now() - chrono::Duration::days(40);
    for _ in 0..tied {
        sim.create_at(WooResource::Orders, tie);
    }
    (sim, tie)
}

fn woo_spec(id: &str, sim: &ingot_testkit::woocommerce::WooSim, page_size: u32) -> ConnectionSpec {
    serde_json::from_value(json!({
        "id": id, "tenant": "acme", "provider": "woocommerce", "base_url": sim.base_url(),
        "credentials": {"consumer_key": sim.config().consumer_key, "consumer_secret": sim.config().consumer_secret},
        "history_days": 3650, "poll_interval_secs": 3600, "page_size": page_size,
    }))
    .unwrap()
}

/// The distinct remote ids of `model` the engine wrote to the raw topic for `connection`.
async fn raw_ids(kafka: &KafkaSettings, connection: &str, model: Model) -> (Vec<String>, usize) {
    let prefix = format!("{connection}/{model}/");
    let mut ids = std::collections::BTreeSet::new();
    let mut writes = 0;
    for m in kafka.read_all("raw.woocommerce").await.unwrap() {
        if let Some(id) = m.key_str().and_then(|k| k.strip_prefix(prefix.as_str())) {
            ids.insert(id.to_string());
            writes += 1;
        }
    }
    (ids.into_iter().collect(), writes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_historical_sync_over_shuffled_ties_gets_every_record_once_and_ends_done() {
    use ingot_testkit::woocommerce::WooResource;
    let _serial = SERIAL.lock().await;
    let infra = infra().await;
    const TIED: usize = 230;
    const PAGE: u32 = 25;
    let (sim, _) = tied_woo(TIED).await;
    sim.faults().shuffle_ties(true);
    let (ring, _) = Keyring::generate("k1").unwrap();
    let engine = Engine::open_sealed(
        infra.kafka.clone(),
        infra.codec.clone(),
        SyncSettings {
            models: vec![Model::Order],
            window: chrono::Duration::days(365),
            ..settings()
        },
        ring,
    )
    .await
    .unwrap();
    assert!(engine
        .upsert_connection(woo_spec("woo-ties", &sim, PAGE))
        .await
        .unwrap());
    wait_until("the orders backfill ended", || {
        matches!(
            engine.status("woo-ties")[&Model::Order].state,
            SyncState::Done | SyncState::Failed | SyncState::Partial
        )
    })
    .await;
    let st = engine.status("woo-ties")[&Model::Order].clone();
    assert_eq!(st.state, SyncState::Done, "{st:?}");
    assert_eq!(st.last_error, None);
    let expected: Vec<String> = sim
        .records(WooResource::Orders)
        .into_iter()
        .filter(|v| v.status != "trash")
        .map(|v| v.id.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let (got, writes) = raw_ids(&infra.kafka, "woo-ties", Model::Order).await;
    assert_eq!(
        got, expected,
        "the raw topic holds every order of the store"
    );
    assert_eq!(writes, expected.len(), "each order written once");
    assert_eq!(st.records_seen, expected.len() as u64, "{st:?}");
    assert_eq!(st.last_run_records, expected.len() as u64, "{st:?}");
    assert_eq!(st.records_written, writes as u64, "{st:?}");
    let requests = sim.faults().counters().per_endpoint["GET /wp-json/wc/v3/orders"];
    let n = expected.len() as u64;
    println!(
        "woocommerce shuffled ties through the engine: {n} orders ({TIED} in one second), {requests} requests, {:.3} requests/order",
        requests as f64 / n as f64
    );
    // 10 windows of 365 days (at least one request each), plus per full page one tie
    // request, plus the big tie's own pages
    let windows = 3650u64.div_ceil(365) + 1;
    assert!(
        requests
            <= windows
                + 2 * n.div_ceil(u64::from(PAGE))
                + (TIED as u64).div_ceil(u64::from(PAGE))
                + 2,
        "{requests} requests for {n} orders"
    );
    engine.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_never_advances_fails_the_run_visibly_instead_of_looping() {
    let _serial = SERIAL.lock().await;
    let infra = infra().await;
    let (sim, _) = tied_woo(60).await;
    sim.faults().never_advance(true);
    let (ring, _) = Keyring::generate("k1").unwrap();
    let engine = Engine::open_sealed(
        infra.kafka.clone(),
        infra.codec.clone(),
        SyncSettings {
            models: vec![Model::Order, Model::Customer],
            window: chrono::Duration::days(365),
            // no automatic retry within the test
            retry_after_failure: Duration::from_secs(3600),
            ..settings()
        },
        ring,
    )
    .await
    .unwrap();
    engine
        .upsert_connection(woo_spec("woo-stuck", &sim, 20))
        .await
        .unwrap();
    wait_until("every model failed", || {
        engine
            .status("woo-stuck")
            .values()
            .all(|s| s.state == SyncState::Failed)
    })
    .await;
    for (model, s) in engine.status("woo-stuck") {
        let e = s.last_error.clone().unwrap_or_default();
        assert!(e.starts_with("paging made no progress: "), "{model}: {e}");
        assert_eq!(s.cursor, None, "{model}");
    }
    // one request per empty window (10 of 365 days per model), then a handful before
    // each model's listing fails: bounded, not a loop
    let requests = sim.faults().counters().requests;
    assert!(
        requests <= 2 * 11 + 10,
        "{requests} requests before failing"
    );
    engine.stop();
}
