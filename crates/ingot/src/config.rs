//! Configuration: a TOML file, then `INGOT_` environment variables (`__` separates
//! levels: `INGOT_HTTP__LISTEN=127.0.0.1:9000`). Unknown keys are errors. Secrets print
//! as `***`.

use anyhow::Context;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use ingot_model::Provider;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An API key from the configuration: the one secret type ([`ingot_model::Secret`], whose
/// `Debug` prints `***`), as `.0`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ApiKey(pub ingot_model::Secret);

/// `[secrets]`: the keys that seal connection credentials and webhook secrets at rest in
/// the `ingot.connections` topic. A key is `<id>:<base64 of 32 random bytes>` (e.g.
/// `INGOT_SECRETS__KEY=k2:…`); values name the key that sealed them, so to rotate, make the
/// new key `key` and move the old one to `old_keys` until every connection was re-stored.
/// Without `key`, the embedded default generates one into `<data_dir>/secrets.key`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    #[serde(default)]
    pub key: Option<ingot_model::Secret>,
    /// Earlier keys, to open what they sealed (never to seal).
    #[serde(default)]
    pub old_keys: Vec<ingot_model::Secret>,
}

/// The file [`Config::keyring`] generates a key into when none is configured.
pub const GENERATED_KEY_FILE: &str = "secrets.key";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    /// A real Kafka cluster. Absent: the embedded broker.
    pub kafka: Option<KafkaConfig>,
    /// A real Confluent-compatible registry. Absent: the embedded registry.
    pub schema_registry: Option<RegistryConfig>,
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    #[serde(default)]
    pub processor: ProcessorSection,
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Change webhooks to the ISV's endpoints (`ingot forward`).
    #[serde(default)]
    pub forwarder: ingot_forwarder::ForwarderConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the API and webhook receiver.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest webhook body accepted (bytes); larger bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Requests per minute per API key on the `/v1` routes (429 with `Retry-After`
    /// beyond it); 0 turns the limit off.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: u32,
    /// The address 3PAs reach ingot's webhook receiver at (`https://ingot.example.com`,
    /// a path prefix allowed; http or https, no query). When set, ingot subscribes every
    /// connection with API credentials to its 3PA's webhooks (callback
    /// `<public_url>/webhooks/<provider>/<connection id>`), checks and heals them at each
    /// reconciliation and removes them when the connection is deleted. Unset: nothing
    /// is subscribed and polling carries the connections.
    #[serde(default)]
    pub public_url: Option<String>,
}

fn default_rate_limit() -> u32 {
    600
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    ingot_ingest::DEFAULT_MAX_BODY
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            rate_limit_per_minute: default_rate_limit(),
            public_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Root of all local state: `processor/`, `view/`, `broker/` (embedded).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// RocksDB memory of the whole process, in MiB: one block cache shared by every
    /// store (processor state, view, forwarder), holding data, index and filter blocks,
    /// with the memtables charged to it. Memory does not grow with the records stored.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u32,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

fn default_cache_mb() -> u32 {
    (ingot_store::DEFAULT_MEMORY_BUDGET >> 20) as u32
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_data_dir(),
            cache_mb: default_cache_mb(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// Extra librdkafka properties for every client (`security.protocol`, `sasl.username`, ...).
    #[serde(default)]
    /// Values are [`ingot_model::Secret`] (`sasl.password` and the like): `Debug` prints `***`.
    pub properties: BTreeMap<String, ingot_model::Secret>,
    /// Replication factor of the topics `topics apply` creates.
    #[serde(default = "default_rf")]
    pub replication_factor: i32,
    /// Exactly-once processing (transactions: outputs and consumed offsets commit
    /// together; readers see only committed records). Default on: every Kafka ≥ 2.8 has
    /// transactions. Off: at-least-once with idempotent effects, as on the embedded broker.
    #[serde(default = "default_true")]
    pub exactly_once: bool,
}

fn default_true() -> bool {
    true
}

fn default_rf() -> i32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Port of the embedded Kafka broker on 127.0.0.1.
    #[serde(default = "default_kafka_port")]
    pub kafka_port: u16,
    /// Port of the embedded schema registry on 127.0.0.1.
    #[serde(default = "default_registry_port")]
    pub registry_port: u16,
    /// How often the embedded broker compacts the compacted topics, in seconds.
    #[serde(default = "default_compaction")]
    pub compaction_interval_secs: u64,
    /// How long a consumer's fetch waits on the embedded broker (`fetch.wait.max.ms`), in
    /// milliseconds. Tansu 0.6 holds every fetch this long even when it has data, so each
    /// hop of the pipeline costs up to twice this; lower means fresher data and more idle
    /// polling. Measured (docs/design-embedded-broker.md): 50 (the default) gives webhook
    /// → queryable p50 111 ms, p99 132 ms and an idle `ingot demo` ≈ 0.6 of a core; 10
    /// gives p50 48 ms, p99 73 ms and ≈ 1.2 cores idle.
    #[serde(default = "default_embedded_fetch_wait")]
    pub fetch_wait_ms: u32,
}

fn default_embedded_fetch_wait() -> u32 {
    ingot_kafka::DEFAULT_FETCH_WAIT_MS
}

fn default_compaction() -> u64 {
    10
}

fn default_kafka_port() -> u16 {
    19092
}
fn default_registry_port() -> u16 {
    18081
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            kafka_port: default_kafka_port(),
            registry_port: default_registry_port(),
            compaction_interval_secs: default_compaction(),
            fetch_wait_ms: default_embedded_fetch_wait(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    /// The tenant's API keys, each either the key itself or, to keep no key in the file,
    /// its digest `sha256:<64 hex>` (`printf %s "$KEY" | sha256sum`).
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
    /// Limit the tenant's keys to these connections (default: all of the tenant's).
    #[serde(default)]
    pub connections: Option<Vec<String>>,
    /// Keys limited to some of the tenant's connections (within `connections` when that
    /// is set): such a key sees only their records and connections, 404 for the rest.
    #[serde(default)]
    pub limited_keys: Vec<LimitedKeyConfig>,
}

/// `[[tenants.limited_keys]]`: one API key (or its `sha256:` digest) and its connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitedKeyConfig {
    pub key: ingot_model::Secret,
    pub connections: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    pub id: String,
    pub tenant: String,
    pub provider: Provider,
    /// Shopify: `<shop>.myshopify.com`.
    #[serde(default)]
    pub shop_domain: Option<String>,
    /// WooCommerce site URL / NetSuite REST base URL, or a simulator's.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub webhook_secrets: Vec<ingot_model::Secret>,
    /// API credentials for the sync engine. Without them the connection is webhooks-only.
    #[serde(default)]
    pub access_token: Option<ingot_model::Secret>,
    #[serde(default)]
    pub consumer_key: Option<ingot_model::Secret>,
    #[serde(default)]
    pub consumer_secret: Option<ingot_model::Secret>,
    /// Historical sync depth in days (default 730).
    #[serde(default)]
    pub history_days: Option<u32>,
    /// Reconciliation interval in seconds (default 43200; NetSuite 900).
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// The 3PA account's IANA time zone (WooCommerce store, NetSuite account).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Shopify: `graphql` (default) or `rest`.
    #[serde(default)]
    pub api: Option<String>,
    /// The 3PA API version (Shopify `YYYY-MM`); default: the connector's pinned one.
    #[serde(default)]
    pub api_version: Option<String>,
}

impl ConnectionConfig {
    /// The connection as the sync engine and ingest store it.
    pub fn spec(&self) -> ingot_model::ConnectionSpec {
        let credentials = ingot_model::Credentials {
            access_token: self.access_token.clone(),
            consumer_key: self.consumer_key.clone(),
            consumer_secret: self.consumer_secret.clone(),
        };
        let sync_disabled = credentials == ingot_model::Credentials::default();
        ingot_model::ConnectionSpec {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            provider: self.provider,
            shop_domain: self.shop_domain.clone(),
            base_url: self.base_url.clone(),
            credentials,
            webhook_secrets: self.webhook_secrets.clone(),
            history_days: self.history_days,
            poll_interval_secs: self.poll_interval_secs,
            timezone: self.timezone.clone(),
            page_size: None,
            sync_disabled,
            api: self.api.clone(),
            api_version: self.api_version.clone(),
            bulk_backfill: None,
            generated_webhook_secret: None,
            disconnected: None,
        }
    }
}

impl TenantConfig {
    /// The tenant as the API layers take it: one entry for its unlimited keys, one per
    /// limited key (same tenant id, that key's connections within the tenant's limit).
    pub fn tenants(&self) -> Vec<ingot_model::auth::Tenant> {
        let mut out = vec![ingot_model::auth::Tenant {
            id: self.id.clone(),
            api_keys: self.api_keys.iter().map(|k| k.0.clone()).collect(),
            connections: self.connections.clone(),
        }];
        for k in &self.limited_keys {
            let connections = k
                .connections
                .iter()
                .filter(|c| self.connections.as_ref().is_none_or(|all| all.contains(c)))
                .cloned()
                .collect();
            out.push(ingot_model::auth::Tenant {
                id: self.id.clone(),
                api_keys: vec![k.key.clone()],
                connections: Some(connections),
            });
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSection {
    /// Consumer group of the processor (default `ingot-processor`).
    #[serde(default)]
    pub group_id: Option<String>,
    /// Most raw events per batch (live and replay), 1–10 000 (default 500).
    #[serde(default)]
    pub max_batch: Option<usize>,
}

impl Config {
    /// Loads `path` (if given) then `INGOT_*` environment overrides, and validates.
    ///
    /// Only nested variables (`INGOT_<SECTION>__<KEY>`, with `__` between levels) are
    /// configuration: `INGOT_LOG`, `INGOT_FIXTURES_DIR` and whatever `INGOT_*` a container
    /// platform injects are not config keys and are left alone.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        Self::load_with_env(path, "INGOT_")
    }

    /// The environment layer: variables named `<prefix><a>__<b>…`, as the path `a.b…`.
    fn env_layer(prefix: &str) -> Env {
        Env::prefixed(prefix)
            .filter(|k| k.as_str().contains("__"))
            .split("__")
    }

    fn load_with_env(path: Option<&Path>, env_prefix: &str) -> anyhow::Result<Config> {
        let mut fig = Figment::new();
        if let Some(p) = path {
            if !p.exists() {
                anyhow::bail!(
                    "config file {} not found: pass --config FILE or set INGOT_CONFIG \
                     (ingot.example.toml is the minimal one: the embedded broker and registry)",
                    p.display()
                );
            }
            fig = fig.merge(Toml::file(p));
        }
        Self::extract(fig.merge(Self::env_layer(env_prefix)))
    }

    /// The tenants with an API key written in clear (not as its `sha256:` digest): keys
    /// in a config file are best kept as digests, so the file opens nothing.
    pub fn tenants_with_clear_keys(&self) -> Vec<&str> {
        self.tenants
            .iter()
            .filter(|t| {
                t.api_keys
                    .iter()
                    .map(|k| &k.0)
                    .chain(t.limited_keys.iter().map(|l| &l.key))
                    .any(|k| !k.expose().starts_with("sha256:"))
            })
            .map(|t| t.id.as_str())
            .collect()
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        Self::extract(Figment::from(Toml::string(text)))
    }

    /// `text` under the environment layer, as [`Config::load`] reads a file (the demo's
    /// built-in configuration, so `INGOT_HTTP__RATE_LIMIT_PER_MINUTE` and the like apply).
    pub fn from_toml_with_env(text: &str) -> anyhow::Result<Config> {
        Self::extract(Figment::from(Toml::string(text)).merge(Self::env_layer("INGOT_")))
    }

    fn extract(fig: Figment) -> anyhow::Result<Config> {
        let cfg: Config = fig.extract().map_err(|e| {
            let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration:\n  - {}", all.join("\n  - "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The keyring that seals connection secrets in the `ingot.connections` topic:
    /// `[secrets] key` (and `old_keys`) when configured; else the key in
    /// `<data_dir>/secrets.key`, generated there (mode 0600, logged) on first use.
    pub fn keyring(&self) -> anyhow::Result<ingot_model::Keyring> {
        if let Some(key) = &self.secrets.key {
            let all = std::iter::once(key).chain(&self.secrets.old_keys);
            return ingot_model::Keyring::from_specs(all)
                .map_err(|e| anyhow::anyhow!("invalid configuration: [secrets] {e}"));
        }
        let path = self.storage.data_dir.join(GENERATED_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = ingot_model::Secret::new(text.trim().to_string());
                ingot_model::Keyring::from_specs(
                    std::iter::once(&key).chain(&self.secrets.old_keys),
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = format!("gen-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
                let (ring, spec) = ingot_model::Keyring::generate(&id)
                    .map_err(|e| anyhow::anyhow!("generating a secrets key: {e}"))?;
                std::fs::create_dir_all(&self.storage.data_dir)
                    .with_context(|| format!("creating {}", self.storage.data_dir.display()))?;
                write_private(&path, spec.expose())?;
                tracing::warn!(
                    component = "secrets",
                    path = %path.display(),
                    key_id = %id,
                    "no [secrets] key configured: generated one into the data dir; connection credentials are sealed with it, so back it up (or configure INGOT_SECRETS__KEY)"
                );
                Ok(ring)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Cross-field checks, all reported at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let tenants: std::collections::HashSet<&str> =
            self.tenants.iter().map(|t| t.id.as_str()).collect();
        let mut keys = std::collections::HashSet::new();
        for t in &self.tenants {
            let all = t
                .api_keys
                .iter()
                .map(|k| &k.0)
                .chain(t.limited_keys.iter().map(|k| &k.key));
            for k in all {
                if let Err(e) = ingot_model::auth::key_digest(k) {
                    problems.push(format!("tenant {:?}: {e}", t.id));
                }
                if !keys.insert(k.expose().to_string()) {
                    problems.push(format!(
                        "tenant {:?}: an API key is given twice (keys must be unique)",
                        t.id
                    ));
                }
            }
            for k in &t.limited_keys {
                if k.connections.is_empty() {
                    problems.push(format!(
                        "tenant {:?}: a limited key needs at least one connection",
                        t.id
                    ));
                }
            }
        }
        if let Some(u) = &self.http.public_url {
            if let Err(e) = ingot_connectors::subscriptions::check_public_url(u) {
                problems.push(format!("[http] {e}"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.connections {
            if !seen.insert(c.id.as_str()) {
                problems.push(format!("connection {:?} is defined twice", c.id));
            }
            // the same checks as `POST /v1/connections`
            if let Err(e) = c.spec().validate() {
                for p in e.0 {
                    problems.push(format!("connection {:?}: {p}", c.id));
                }
            }
            if !tenants.contains(c.tenant.as_str()) {
                problems.push(format!(
                    "connection {:?} names unknown tenant {:?}",
                    c.id, c.tenant
                ));
            }
            if c.provider != Provider::NetSuite && c.webhook_secrets.is_empty() {
                problems.push(format!(
                    "connection {:?} ({}) needs at least one webhook secret",
                    c.id, c.provider
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "))
        }
    }
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const ISSUE_CONFIG: &str = r#"
[http]
listen = "127.0.0.1:8080"
[storage]
data_dir = "./data"
[[tenants]]
id = "acme"
api_keys = ["test-api-key"]
[[connections]]
id = "shop-1"
tenant = "acme"
provider = "shopify"
shop_domain = "demo.myshopify.com"
webhook_secrets = ["test-secret-not-real"]
"#;

    #[test]
    fn the_documented_config_loads_and_hides_secrets() {
        let c = Config::from_toml(ISSUE_CONFIG).unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:8080");
        assert_eq!(c.connections[0].provider, Provider::Shopify);
        assert_eq!(
            c.connections[0].webhook_secrets[0].expose(),
            "test-secret-not-real"
        );
        assert_eq!(
            c.tenants[0].tenants()[0].api_keys[0].expose(),
            "test-api-key"
        );
        assert!(c.kafka.is_none());
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("test-secret-not-real") && !debug.contains("test-api-key"),
            "{debug}"
        );
        // Kafka client properties are secrets too (sasl.password), through the same type
        let k = Config::from_toml(
            "[kafka]\nbootstrap_servers = \"b:9092\"\n[kafka.properties]\n\"sasl.password\" = \"hunter2-not-real\"\n",
        )
        .unwrap();
        let kafka = k.kafka.as_ref().unwrap();
        assert_eq!(
            kafka.properties["sasl.password"].expose(),
            "hunter2-not-real"
        );
        let debug = format!("{k:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn only_nested_environment_variables_are_config() {
        // a prefix of its own that does not start with `INGOT_`: the variables are
        // process-wide, and tests running beside this one read the `INGOT_` layer
        let prefix = "CFGTEST1_INGOT_";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingot.toml");
        std::fs::write(&path, ISSUE_CONFIG).unwrap();
        std::env::set_var(format!("{prefix}LOG"), "debug");
        std::env::set_var(format!("{prefix}FIXTURES_DIR"), "/tmp/fixtures");
        std::env::set_var(format!("{prefix}HTTP__LISTEN"), "127.0.0.1:9123");
        let c = Config::load_with_env(Some(&path), prefix).unwrap();
        assert_eq!(
            c.http.listen, "127.0.0.1:9123",
            "nested keys still override"
        );
        // an unknown nested key is still an error
        std::env::set_var(format!("{prefix}HTTP__LISTNE"), "x");
        let err = Config::load_with_env(Some(&path), prefix)
            .unwrap_err()
            .to_string();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn the_secrets_key_comes_from_the_config_or_is_generated_once_into_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let toml = ISSUE_CONFIG.replace("./data", &dir.path().display().to_string());
        let c = Config::from_toml(&toml).unwrap();
        let ring = c.keyring().unwrap();
        let file = dir.path().join(GENERATED_KEY_FILE);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with(&format!("{}:", ring.current_id())),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // the same key the next time: what it sealed still opens
        let sealed = ring.seal("c", &ingot_model::Secret::new("s"));
        let again = c.keyring().unwrap();
        assert_eq!(again.open("c", &sealed).unwrap().expose(), "s");
        // a configured key wins; an old key still opens
        let (_, k2) = ingot_model::Keyring::generate("k2").unwrap();
        let configured = Config::from_toml(&format!(
            "{toml}[secrets]\nkey = \"{}\"\nold_keys = [\"{}\"]\n",
            k2.expose(),
            text.trim()
        ))
        .unwrap();
        let rotated = configured.keyring().unwrap();
        assert_eq!(rotated.current_id(), "k2");
        assert_eq!(rotated.open("c", &sealed).unwrap().expose(), "s");
        assert!(!format!("{configured:?}").contains(k2.expose()));
        let bad = Config::from_toml(&format!("{toml}[secrets]\nkey = \"k1:short\"\n")).unwrap();
        let err = bad.keyring().unwrap_err().to_string();
        assert!(err.contains("[secrets]"), "{err}");
    }

    #[test]
    fn keys_may_be_stored_as_digests_and_limited_to_connections() {
        let digest = ingot_model::auth::hash_api_key("limited-key");
        let c = Config::from_toml(&format!(
            "{ISSUE_CONFIG}\n[[tenants.limited_keys]]\nkey = \"{digest}\"\nconnections = [\"shop-1\"]\n"
        ).replace(
            "api_keys = [\"test-api-key\"]",
            &format!("api_keys = [\"{}\"]", ingot_model::auth::hash_api_key("test-api-key")),
        ))
        .unwrap();
        assert!(!format!("{c:?}").contains("test-api-key"));
        assert!(c.tenants_with_clear_keys().is_empty());
        assert_eq!(
            Config::from_toml(ISSUE_CONFIG)
                .unwrap()
                .tenants_with_clear_keys(),
            ["acme"]
        );
        // the shipped example keeps its key as a digest, and it is the README's key
        let example = Config::from_toml(include_str!("../../../ingot.example.toml")).unwrap();
        assert!(example.tenants_with_clear_keys().is_empty());
        let auth = ingot_model::auth::Auth::new(&example.tenants[0].tenants());
        assert_eq!(
            auth.principal(Some("Bearer test-api-key"))
                .unwrap()
                .tenant_id,
            "acme"
        );
        let auth = ingot_model::auth::Auth::new(&c.tenants[0].tenants());
        let full = auth.principal(Some("Bearer test-api-key")).unwrap();
        assert!(full.may_read("acme", "shop-1") && full.may_read("acme", "shop-2"));
        let limited = auth.principal(Some("Bearer limited-key")).unwrap();
        assert!(limited.may_read("acme", "shop-1"));
        assert!(!limited.may_read("acme", "shop-2"));
        assert!(
            auth.principal(Some(&format!("Bearer {digest}"))).is_none(),
            "the digest is no key"
        );
        // a limited key cannot widen the tenant's own limit
        let narrowed = Config::from_toml(&format!(
            "{}\n[[tenants.limited_keys]]\nkey = \"k2\"\nconnections = [\"shop-1\", \"shop-9\"]\n",
            ISSUE_CONFIG.replace(
                "api_keys = [\"test-api-key\"]",
                "api_keys = [\"test-api-key\"]\nconnections = [\"shop-9\"]"
            )
        ))
        .unwrap();
        let auth = ingot_model::auth::Auth::new(&narrowed.tenants[0].tenants());
        let k2 = auth.principal(Some("Bearer k2")).unwrap();
        assert!(k2.may_read("acme", "shop-9") && !k2.may_read("acme", "shop-1"));
        // a malformed digest and an empty limit are configuration errors
        let err = Config::from_toml(&format!(
            "{ISSUE_CONFIG}\n[[tenants.limited_keys]]\nkey = \"sha256:abc\"\nconnections = []\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sha256:") && err.contains("needs at least one connection"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_references_are_errors() {
        let err = Config::from_toml("[http]\nlisten = \"x\"\nlistne = \"y\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listne"), "{err}");
        let err =
            Config::from_toml(&ISSUE_CONFIG.replace("tenant = \"acme\"", "tenant = \"nobody\""))
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown tenant \"nobody\""), "{err}");
    }

    #[test]
    fn connection_bounds_are_checked_as_the_api_checks_them() {
        let err = Config::from_toml(&format!(
            "{ISSUE_CONFIG}history_days = 1000000000\npoll_interval_secs = 1000000000000000000\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("connection \"shop-1\": history_days 1000000000 is out of range 1..=3650")
                && err.contains(
                    "connection \"shop-1\": poll_interval_secs 1000000000000000000 is out of range 1..=2592000"
                ),
            "{err}"
        );
    }

    /// `[embedded] fetch_wait_ms`: Kafka's default when absent, the given value otherwise.
    #[test]
    fn embedded_fetch_wait_defaults_to_kafkas_and_can_be_set() {
        let absent = Config::from_toml(ISSUE_CONFIG).unwrap();
        assert_eq!(absent.embedded.fetch_wait_ms, 50);
        let set =
            Config::from_toml(&format!("{ISSUE_CONFIG}[embedded]\nfetch_wait_ms = 10\n")).unwrap();
        assert_eq!(set.embedded.fetch_wait_ms, 10);
    }
}

/// Property tests: `Config::from_toml` on arbitrary text, and on text assembled from the
/// configuration's own sections, keys and hostile values, answers `Ok` or an error —
/// never a panic.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// Cases per property (`PROPTEST_CASES` overrides).
    const CASES: u32 = 2000;

    const SECTIONS: &[&str] = &[
        "[http]",
        "[storage]",
        "[kafka]",
        "[kafka.properties]",
        "[schema_registry]",
        "[embedded]",
        "[processor]",
        "[secrets]",
        "[forwarder]",
        "[[tenants]]",
        "[[tenants.limited_keys]]",
        "[[connections]]",
        "[bogus]",
    ];

    const KEYS: &[&str] = &[
        "listen",
        "max_body_bytes",
        "rate_limit_per_minute",
        "data_dir",
        "bootstrap_servers",
        "replication_factor",
        "exactly_once",
        "url",
        "kafka_port",
        "registry_port",
        "compaction_interval_secs",
        "fetch_wait_ms",
        "group_id",
        "key",
        "old_keys",
        "id",
        "api_keys",
        "connections",
        "tenant",
        "provider",
        "shop_domain",
        "base_url",
        "webhook_secrets",
        "access_token",
        "consumer_key",
        "consumer_secret",
        "history_days",
        "poll_interval_secs",
        "timezone",
        "allow_insecure_urls",
        "retry_schedule_secs",
        "\"security.protocol\"",
        "nonsense",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            Just("18446744073709551616".to_string()),
            Just("0".to_string()),
            Just("-1".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            "[a-zA-Z0-9:/._&;%-]{0,30}".prop_map(|s| format!("{s:?}")),
            Just("\"sha256:zz\"".to_string()),
            Just(format!("\"sha256:{}\"", "a".repeat(64))),
            Just("\"shopify\"".to_string()),
            Just("\"woocommerce\"".to_string()),
            Just("\"netsuite\"".to_string()),
            Just("\"America/Los_Angeles\"".to_string()),
            Just("\"Mars/Olympus\"".to_string()),
            Just("\"256.0.0.1:99999\"".to_string()),
            proptest::collection::vec("[a-z0-9-]{0,8}", 0..4).prop_map(|v| format!("{v:?}")),
            proptest::collection::vec(any::<i32>(), 0..4).prop_map(|v| format!("{v:?}")),
            Just("{}".to_string()),
            Just("[[]]".to_string()),
            ".{0,20}",
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => (0..SECTIONS.len()).prop_map(|i| SECTIONS[i].to_string()),
            4 => ((0..KEYS.len()), value()).prop_map(|(k, v)| format!("{} = {v}", KEYS[k])),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}") {
            let _ = Config::from_toml(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Config::from_toml(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn configuration_shaped_text_never_panics(lines in proptest::collection::vec(line(), 0..30)) {
            let text = lines.join("\n");
            if let Ok(cfg) = Config::from_toml(&text) {
                // what was accepted is usable: its keys and connections resolve
                let tenants: Vec<_> = cfg.tenants.iter().flat_map(|t| t.tenants()).collect();
                let _ = ingot_model::auth::Auth::new(&tenants);
                let _: Vec<_> = cfg.connections.iter().map(|c| c.spec()).collect();
            }
        }
    }
}
