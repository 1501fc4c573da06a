//! Test support: the real embedded broker and registry, a producer of normalized records
//! (as the processor writes them), a real receiver that verifies every request with its own
//! HMAC-SHA256 (hmac + sha2, not the `standardwebhooks` crate), and API calls through
//! `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use ingot_kafka::{AvroCodec, KafkaSettings, Producer};
use ingot_model::auth::{Auth, Tenant};
use ingot_model::{Model, NormalizedRecord, RecordData, RecordKey, RecordMeta};
use serde_json::Value;
use sha2::Sha256;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

static SERIAL: Mutex<()> = Mutex::new(());

/// Two embedded brokers in one process interfere: tests run one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `f` every 20 ms until it is `Some`, or panics after `secs`.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for an async check.
pub async fn eventually_async<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Infra {
    pub kafka: KafkaSettings,
    pub codec: AvroCodec,
    pub registry_url: String,
    pub producer: Producer,
    pub dir: tempfile::TempDir,
    _cluster: ingot_embedded::LocalCluster,
}

impl Infra {
    pub async fn start() -> Infra {
        let dir = tempfile::tempdir().unwrap();
        let cluster = ingot_embedded::LocalCluster::start(dir.path(), Duration::from_secs(3600))
            .await
            .unwrap();
        let kafka = cluster.kafka.clone();
        let registry_url = cluster.registry_url.clone();
        let codec = AvroCodec::new(&registry_url).unwrap();
        Infra {
            registry_url,
            producer: Producer::new(&kafka).unwrap(),
            kafka,
            codec,
            dir,
            _cluster: cluster,
        }
    }

    pub fn state_dir(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// The key that seals endpoint secrets in the tests (fixed, so a child process shares it).
pub const KEY_SPEC: &str = "test-k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub fn keyring() -> ingot_model::Keyring {
    ingot_model::Keyring::from_specs([&ingot_model::Secret::new(KEY_SPEC)]).unwrap()
}

pub fn auth() -> Auth {
    Auth::new(&tenants())
}

pub fn tenants() -> Vec<Tenant> {
    vec![
        Tenant {
            id: "acme".into(),
            api_keys: vec!["acme-key".into()],
            connections: None,
        },
        Tenant {
            id: "globex".into(),
            api_keys: vec!["globex-key".into()],
            connections: None,
        },
    ]
}

/// A fast configuration for tests.
pub fn fast_config() -> ingot_forwarder::ForwarderConfig {
    ingot_forwarder::ForwarderConfig {
        retry_schedule_secs: vec![0.0, 1.1, 1.1, 1.1, 1.1, 1.1],
        retry_jitter: 0.0,
        timeout_secs: 2.0,
        allow_insecure_urls: true,
        ..Default::default()
    }
}

pub struct Running {
    pub router: axum::Router,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<Result<(), ingot_forwarder::ForwarderError>>,
}

impl Running {
    /// A clean stop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }

    /// Drops the forwarder at whatever await point it is (as close to a crash as one
    /// process gets; the kill -9 test uses a child process).
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
        drop(self.router);
    }
}

pub async fn start_forwarder(
    infra: &Infra,
    cfg: ingot_forwarder::ForwarderConfig,
    state: &Path,
) -> Running {
    // after a crash, the old instance's aborted tasks release the RocksDB lock shortly
    let deadline = Instant::now() + Duration::from_secs(10);
    let fwd = loop {
        match ingot_forwarder::Forwarder::open(
            cfg.clone(),
            state,
            infra.kafka.clone(),
            infra.codec.clone(),
            auth(),
            keyring(),
        )
        .await
        {
            Ok(f) => break f,
            Err(ingot_forwarder::ForwarderError::Store(e)) if Instant::now() < deadline => {
                eprintln!("state still locked ({e}), retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("forwarder did not open: {e}"),
        }
    };
    let router = fwd.router();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(fwd.run(rx));
    Running { router, stop, task }
}

/// The endpoint's delivery log (`data` of `GET …/deliveries`) once `n` messages
/// are in it and none is `pending`. A receiver has the request before the
/// forwarder records its answer, so a test waits for the record, not the receipt.
pub async fn settled_deliveries(
    router: &axum::Router,
    endpoint: &str,
    key: &str,
    n: usize,
) -> Vec<Value> {
    let path = format!("/v1/webhook-endpoints/{endpoint}/deliveries?limit=100");
    eventually_async(30, &format!("{n} settled deliveries"), || async {
        let (st, v) = api(router, "GET", &path, key, None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let log = v["data"].as_array()?.clone();
        (log.len() == n && log.iter().all(|d| d["status"] != "pending")).then_some(log)
    })
    .await
}

/// Calls the API in-process.
pub async fn api(
    router: &axum::Router,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            axum::body::Body::from(serde_json::to_vec(&b).unwrap())
        }
        None => axum::body::Body::empty(),
    };
    let res = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, v)
}

// ---------------------------------------------------------------------------------------
// normalized records, as the processor writes them

pub fn customer(connection: &str, tenant: &str, remote_id: &str) -> NormalizedRecord {
    let mut rec = order(connection, tenant, remote_id, "open");
    let key = RecordKey::new(connection, Model::Customer, remote_id);
    rec.meta.id = key.record_id();
    rec.data = RecordData::Customer(ingot_model::Customer {
        email: Some(format!("c{remote_id}@example.com")),
        status: "active".into(),
        ..Default::default()
    });
    rec
}

pub fn order(connection: &str, tenant: &str, remote_id: &str, status: &str) -> NormalizedRecord {
    let key = RecordKey::new(connection, Model::Order, remote_id);
    let now = ingot_model::format_utc(&chrono::Utc::now());
    NormalizedRecord {
        meta: RecordMeta {
            id: key.record_id(),
            remote_id: remote_id.into(),
            connection_id: connection.into(),
            tenant_id: tenant.into(),
            provider: "shopify".into(),
            remote_created_at: Some("2026-11-01T00:00:00Z".into()),
            remote_updated_at: now.clone(),
            remote_deleted: false,
            modified_at: now,
            mapping_version: "shopify/1".into(),
            raw_topic: "raw.shopify".into(),
            raw_partition: 0,
            raw_offset: 1,
            remote_data: Some(format!("{{\"id\":{remote_id}}}")),
        },
        data: RecordData::Order(ingot_model::Order {
            order_number: Some(format!("#{remote_id}")),
            status: status.into(),
            payment_status: "paid".into(),
            fulfillment_status: "unfulfilled".into(),
            currency: Some("USD".into()),
            total_price: Some("19.99".into()),
            ..Default::default()
        }),
    }
}

fn headers_for(meta: &RecordMeta, op: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ingot-remote-updated-at", meta.remote_updated_at.clone()),
        ("ingot-raw-partition", meta.raw_partition.to_string()),
        ("ingot-raw-offset", meta.raw_offset.to_string()),
        ("ingot-modified-at", meta.modified_at.clone()),
        ("ingot-tenant-id", meta.tenant_id.clone()),
        ("ingot-provider", meta.provider.clone()),
        ("ingot-op", op.to_string()),
    ]
}

/// Produces a record to `normalized.<model>`; returns (partition, offset).
pub async fn produce(infra: &Infra, rec: &NormalizedRecord) -> (i32, i64) {
    let model = rec.data.model();
    let key = RecordKey::new(&rec.meta.connection_id, model, &rec.meta.remote_id).to_string();
    let value = infra.codec.encode_record(rec).await.unwrap();
    let hs = headers_for(&rec.meta, "upsert");
    let hs: Vec<(&str, &[u8])> = hs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    infra
        .producer
        .send(&model.normalized_topic(), key.as_bytes(), Some(&value), &hs)
        .await
        .unwrap()
}

/// Produces a tombstone for a record.
pub async fn produce_delete(infra: &Infra, rec: &NormalizedRecord) -> (i32, i64) {
    let model = rec.data.model();
    let key = RecordKey::new(&rec.meta.connection_id, model, &rec.meta.remote_id).to_string();
    let mut meta = rec.meta.clone();
    meta.modified_at = ingot_model::format_utc(&chrono::Utc::now());
    let hs = headers_for(&meta, "delete");
    let hs: Vec<(&str, &[u8])> = hs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    infra
        .producer
        .send(&model.normalized_topic(), key.as_bytes(), None, &hs)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// the receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    /// The request path (tests give each endpoint its own).
    pub path: String,
    pub id: String,
    pub timestamp: i64,
    pub signatures: Vec<String>,
    pub body: Vec<u8>,
    pub json: Value,
    pub at: Instant,
    /// Which of the receiver's secrets verified the request (index into `secrets`).
    pub verified_by: Vec<usize>,
    /// The status answered.
    pub answered: u16,
    /// The answer was delayed (a slow receiver: the sender may have timed out).
    pub slow: bool,
}

impl Got {
    pub fn event_type(&self) -> &str {
        self.json["type"].as_str().unwrap_or_default()
    }
    pub fn remote_id(&self) -> &str {
        self.json["data"]["remote_id"].as_str().unwrap_or_default()
    }
    pub fn version(&self) -> i64 {
        self.json["data"]["version"].as_i64().unwrap_or(-1)
    }
}

/// What to answer: status, `Retry-After`, delay before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub delay: Option<Duration>,
}

impl Answer {
    pub const OK: Answer = Answer {
        status: 200,
        retry_after: None,
        delay: None,
    };
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            ..Answer::OK
        }
    }
}

type Policy = Arc<dyn Fn(&Got, usize) -> Answer + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Got>>>,
    secrets: Arc<Mutex<Vec<String>>>,
    policy: Arc<Mutex<Policy>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

/// The signature of `<id>.<ts>.<body>` under a `whsec_` secret: HMAC-SHA256 with the
/// base64-decoded key, base64-encoded (Standard Webhooks, written here independently).
pub fn hmac_signature(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Receiver {
    pub async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let secrets: Arc<Mutex<Vec<String>>> = Arc::default();
        let policy: Arc<Mutex<Policy>> = Arc::new(Mutex::new(Arc::new(|_, _| Answer::OK)));
        let (g, s, p) = (got.clone(), secrets.clone(), policy.clone());
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let (g, s, p) = (g.clone(), s.clone(), p.clone());
                async move { receive(g, s, p, uri.path().to_string(), headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}"),
            got,
            secrets,
            policy,
            task: Arc::new(task),
        }
    }

    /// The secrets to verify with (index order is what `verified_by` refers to).
    pub fn set_secrets(&self, secrets: &[&str]) {
        *self.secrets.lock().unwrap() = secrets.iter().map(|s| s.to_string()).collect();
    }

    /// `f(request, n)`: n = how many requests with this webhook-id came before.
    pub fn answer_with(&self, f: impl Fn(&Got, usize) -> Answer + Send + Sync + 'static) {
        *self.policy.lock().unwrap() = Arc::new(f);
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn delivered(&self) -> Vec<Got> {
        self.all()
            .into_iter()
            .filter(|g| (200..300).contains(&g.answered) && !g.slow)
            .collect()
    }

    /// Requests to one path answered 2xx.
    pub fn delivered_at(&self, path: &str) -> Vec<Got> {
        self.delivered()
            .into_iter()
            .filter(|g| g.path == path)
            .collect()
    }

    /// Requests to one path.
    pub fn at(&self, path: &str) -> Vec<Got> {
        self.all().into_iter().filter(|g| g.path == path).collect()
    }

    pub fn clear(&self) {
        self.got.lock().unwrap().clear();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

async fn receive(
    got: Arc<Mutex<Vec<Got>>>,
    secrets: Arc<Mutex<Vec<String>>>,
    policy: Arc<Mutex<Policy>>,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = h("webhook-id");
    let timestamp: i64 = h("webhook-timestamp").parse().unwrap_or(-1);
    let signatures: Vec<String> = h("webhook-signature")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let verified_by: Vec<usize> = secrets
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            let expected = format!("v1,{}", hmac_signature(s, &id, timestamp, &body));
            signatures.contains(&expected)
        })
        .map(|(i, _)| i)
        .collect();
    let mut g = Got {
        path,
        id: id.clone(),
        timestamp,
        signatures,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body: body.to_vec(),
        at: Instant::now(),
        verified_by,
        answered: 0,
        slow: false,
    };
    let answer = {
        let list = got.lock().unwrap();
        let n = list.iter().filter(|x| x.id == id).count();
        let p = policy.lock().unwrap().clone();
        p(&g, n)
    };
    g.answered = answer.status;
    g.slow = answer.delay.is_some();
    got.lock().unwrap().push(g);
    if let Some(d) = answer.delay {
        tokio::time::sleep(d).await; // the behaviour under test: a slow receiver
    }
    let mut res = (StatusCode::from_u16(answer.status).unwrap(), "ok").into_response();
    if let Some(s) = answer.retry_after {
        res.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    res
}
