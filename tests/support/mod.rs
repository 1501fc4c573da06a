//! The end-to-end harness shared by `tests/e2e.rs` and `tests/kafka.rs`: a whole ingot
//! (broker — embedded, or the Apache Kafka of `INGOT_TEST_KAFKA` —, embedded registry,
//! every stage, HTTP on a free loopback port) in a temp dir, and helpers to drive it.
#![allow(dead_code)]

use ingot::app::{self, Embedded, Infra, Running, Stages};
use ingot::config::Config;
use ingot::shopsim;
use ingot_model::{Model, RecordKey};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const KEY: &str = "test-api-key";
pub const OTHER_KEY: &str = "other-tenant-key";
/// A key of tenant acme limited to its connection `woo-1`.
pub const LIMITED_KEY: &str = "woo-only-key";
pub const SECRET: &str = "test-secret-not-real";
pub const CONN: &str = "shop-1";

/// The embedded broker keeps process-wide state (Tansu 0.6), so two brokers in one test
/// process interfere: the tests of this binary run one at a time.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A free loopback port never handed out before in this process: librdkafka clients of
/// an earlier test may still retry their old broker address for a while.
pub fn free_port() -> u16 {
    ingot_embedded::free_port().unwrap()
}

pub struct Harness {
    pub cfg: Config,
    /// `cfg` as TOML (for `ingot` child processes).
    pub cfg_text: String,
    /// The stages this process runs.
    pub stages: Stages,
    pub sync: ingot_sync::SyncSettings,
    pub infra: Option<Infra>,
    pub running: Option<Running>,
    pub base: String,
    pub client: reqwest::Client,
    pub _dir: tempfile::TempDir,
}

impl Drop for Harness {
    /// A test that ends without [`Harness::down`] still stops its stages before the
    /// embedded broker goes: a group consumer dropped after its broker is gone waits
    /// forever in librdkafka's close, which hung a CI run at the end of a test. (Every
    /// test runs on the multi-thread runtime, which `block_in_place` needs.)
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            tokio::task::block_in_place(|| {
                rt.block_on(async {
                    let _ = running.stop().await;
                })
            });
        }
    }
}

/// The Apache Kafka of this run (`INGOT_TEST_KAFKA`), if any.
pub fn test_kafka() -> Option<String> {
    std::env::var("INGOT_TEST_KAFKA")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn config(dir: &Path, http: u16, kafka: u16, registry: u16, compaction: u64) -> Config {
    Config::from_toml(&config_text(dir, http, kafka, registry, compaction)).unwrap()
}

/// The harness's configuration file.
pub fn config_text(dir: &Path, http: u16, kafka: u16, registry: u16, compaction: u64) -> String {
    let broker = match test_kafka() {
        Some(b) => format!("[kafka]\nbootstrap_servers = \"{b}\"\n"),
        None => String::new(),
    };
    // a group id never used before on a shared broker: committed offsets of an earlier
    // run must not apply to this run's (re-created) topics
    let run = uuid::Uuid::new_v4().simple();
    format!(
        r#"{broker}
[http]
listen = "127.0.0.1:{http}"
max_body_bytes = 200000
# the tests poll the API (wait_for) faster than the default per-key limit allows
rate_limit_per_minute = 0
[storage]
data_dir = "{}"
[embedded]
kafka_port = {kafka}
registry_port = {registry}
compaction_interval_secs = {compaction}
[forwarder]
allow_insecure_urls = true
retry_schedule_secs = [0, 1, 1, 1]
group_id = "ingot-forwarder-{kafka}-{run}"
[processor]
group_id = "ingot-processor-{kafka}-{run}"
[[tenants]]
id = "acme"
api_keys = ["{KEY}"]
[[tenants.limited_keys]]
key = "{LIMITED_KEY}"
connections = ["woo-1"]
[[tenants]]
id = "globex"
api_keys = ["{OTHER_KEY}"]
[[connections]]
id = "{CONN}"
tenant = "acme"
provider = "shopify"
shop_domain = "demo.myshopify.com"
webhook_secrets = ["old-secret-being-rotated-out", "{SECRET}"]
[[connections]]
id = "woo-1"
tenant = "acme"
provider = "woocommerce"
base_url = "https://example.com"
webhook_secrets = ["{SECRET}"]
[[connections]]
id = "globex-shop"
tenant = "globex"
provider = "shopify"
webhook_secrets = ["globex-secret"]
"#,
        dir.display()
    )
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(ingot_sync::SyncSettings::default()).await
    }

    pub async fn start_with(sync: ingot_sync::SyncSettings) -> Harness {
        // compaction off (hourly) by default so tests can count versions per key
        Self::start_full(sync, 3600).await
    }

    pub async fn start_full(sync: ingot_sync::SyncSettings, compaction_secs: u64) -> Harness {
        // the forwarder only where a test asks for it (`start_stages`): its group consumer,
        // dropped with the test's runtime after the broker is gone, waits in
        // librdkafka's close; tests that run it stop the harness with `down()`
        Self::start_stages(
            sync,
            compaction_secs,
            Stages {
                forwarder: false,
                ..Stages::ALL
            },
        )
        .await
    }

    /// `INGOT_TEST_LOG=<filter>` shows the stages' logs on stderr (with `--nocapture`).
    fn init_logs() {
        if let Ok(filter) = std::env::var("INGOT_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    }

    /// A harness running only `stages` in this process (other stages can run in child
    /// processes from [`Harness::config_file`]).
    pub async fn start_stages(
        sync: ingot_sync::SyncSettings,
        compaction_secs: u64,
        stages: Stages,
    ) -> Harness {
        Self::start_edited(sync, compaction_secs, stages, |text| text).await
    }

    /// A harness whose configuration text is the harness's passed through `edit` (a test
    /// that needs other limits, e.g. `max_body_bytes`, replaces the lines it changes).
    pub async fn start_edited(
        sync: ingot_sync::SyncSettings,
        compaction_secs: u64,
        stages: Stages,
        edit: impl FnOnce(String) -> String,
    ) -> Harness {
        Self::init_logs();
        if let Some(b) = test_kafka() {
            // a shared broker: every test starts from empty topics
            ingot_kafka::Topology::builtin()
                .delete_all(&ingot_kafka::KafkaSettings::new(b))
                .await
                .expect("topics deleted");
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg_text = edit(config_text(
            dir.path(),
            free_port(),
            free_port(),
            free_port(),
            compaction_secs,
        ));
        let cfg = Config::from_toml(&cfg_text).unwrap();
        let mut h = Harness {
            cfg,
            cfg_text,
            stages,
            sync,
            infra: None,
            running: None,
            base: String::new(),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        h.up().await;
        h
    }

    pub async fn up(&mut self) {
        let infra = Infra::start(&self.cfg, Embedded::Start)
            .await
            .expect("infra starts");
        let running = app::start_with(&self.cfg, &infra, self.stages, None, &self.sync)
            .await
            .expect("stages start");
        if let Some(addr) = running.http_addr {
            self.base = format!("http://{addr}");
        }
        self.infra = Some(infra);
        self.running = Some(running);
    }

    /// Stops every stage and the embedded broker and registry, as a process exit would.
    pub async fn down(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        self.infra = None;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Writes the configuration for a child `ingot` process with its own data directory
    /// `data_dir` and HTTP address `listen`; returns the file's path.
    pub fn config_file(&self, name: &str, data_dir: &Path, listen: &str) -> PathBuf {
        let text = self
            .cfg_text
            .replace(
                &format!("data_dir = \"{}\"", self.cfg.storage.data_dir.display()),
                &format!("data_dir = \"{}\"", data_dir.display()),
            )
            .replace(
                &format!("listen = \"{}\"", self.cfg.http.listen),
                &format!("listen = \"{listen}\""),
            );
        let path = self._dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn data_dir(&self) -> PathBuf {
        self.cfg.storage.data_dir.clone()
    }

    pub async fn post(&self, d: &shopsim::Delivery) -> u16 {
        shopsim::send(&self.client, &self.base, CONN, d)
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until `pred` holds (the pipeline is asynchronous), or panics after 30 s.
    pub async fn wait_for(&self, path: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = self.get(path, KEY).await;
            if pred(s, &v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: last {s} {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kafka(&self) -> &ingot_kafka::KafkaSettings {
        &self.infra.as_ref().unwrap().kafka
    }

    /// Every record on a topic for one record key, in log order.
    pub async fn records_for(&self, topic: &str, key: &str) -> Vec<ingot_kafka::Message> {
        let all = self.kafka().read_all(topic).await.unwrap();
        all.into_iter()
            .filter(|m| m.key_str() == Some(key))
            .collect()
    }

    /// Waits until the processor has consumed (committed offsets) everything on the raw
    /// topics: after this, anything it was going to emit for them is on the topics.
    pub async fn wait_processed(&self) {
        let group = self
            .cfg
            .processor
            .group_id
            .clone()
            .unwrap_or_else(|| "ingot-processor".into());
        self.wait_committed(
            &group,
            &["raw.shopify", "raw.woocommerce", "raw.netsuite"],
            0,
        )
        .await;
    }

    /// Waits until the forwarder has stored (and committed) every normalized record, so
    /// a check that nothing more was delivered does not race it. On a broker with
    /// transactions a normalized topic ends in a commit marker, which no committed offset
    /// passes.
    pub async fn wait_forwarded(&self) {
        let slack = i64::from(self.kafka().capabilities.transactions);
        let topics: Vec<String> = Model::ALL.iter().map(|m| m.normalized_topic()).collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.wait_committed(&self.cfg.forwarder.group_id, &topics, slack)
            .await;
    }

    /// Waits (30 s at most) until `group` has committed every record of `topics`, less
    /// `slack` offsets per partition.
    async fn wait_committed(&self, group: &str, topics: &[&str], slack: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut behind = Vec::new();
            for topic in topics {
                let ends = self.kafka().end_offsets(topic).unwrap();
                let committed = self.kafka().committed_offsets(group, topic).await.unwrap();
                for (p, end) in ends {
                    let c = committed
                        .iter()
                        .find(|(q, _)| *q == p)
                        .and_then(|(_, o)| *o)
                        .unwrap_or(0);
                    if c < end - slack {
                        behind.push(format!("{topic}/{p}: {c} < {end}"));
                    }
                }
            }
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{group} did not consume its topics: {behind:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn raw_count(&self) -> i64 {
        self.kafka()
            .end_offsets("raw.shopify")
            .unwrap()
            .iter()
            .map(|(_, o)| o)
            .sum()
    }
}

/// Paths where two JSON values differ (for readable assertion messages).
pub fn json_diff(path: &str, a: &Value, b: &Value) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    json_diff(
                        &format!("{path}.{k}"),
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    )
                })
                .collect()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (p, q))| json_diff(&format!("{path}[{i}]"), p, q))
            .collect(),
        _ if a == b => vec![],
        _ => vec![format!("{path}: {a} != {b}")],
    }
}

pub fn order_id(remote: u64) -> String {
    RecordKey::new(CONN, Model::Order, remote.to_string()).record_id()
}

pub fn delivery(topic: &str, body: &Value, event: &str) -> shopsim::Delivery {
    shopsim::delivery(
        "demo.myshopify.com",
        SECRET,
        topic,
        body,
        event,
        "2026-11-20T15:00:00Z",
    )
}

pub fn sample_order(id: u64, financial: &str, updated_at: &str) -> Value {
    let c = shopsim::customer(
        7_408_123_456_789_001,
        "Ada",
        "Lovelace",
        "ada@example.com",
        "2026-11-01T09:00:00-05:00",
    );
    shopsim::order(
        id,
        1001,
        Some(&c),
        &[(1, 11, "Parka", "249.00", 1), (2, 21, "Beanie", "29.50", 2)],
        "10.00",
        financial,
        updated_at,
    )
}

/// Starts `ingot <args…>` as a child process, its stderr in `log`.
pub fn spawn_ingot(args: &[&str], log: &Path) -> std::process::Child {
    let log = std::fs::File::create(log).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(args)
        .env("INGOT_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("ingot starts")
}

/// SIGKILL, as a crash would.
pub fn kill9(child: &mut std::process::Child) {
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}
