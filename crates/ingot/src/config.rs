//! Configuration: a TOML file, then `INGOT_` environment variables (`__` separates
//! levels: `INGOT_HTTP__LISTEN=127.0.0.1:9000`). Unknown keys are errors. Secrets print
//! as `***`.

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use ingot_model::Provider;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string: `Debug` and `Display` print `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Root of all local state: `processor/`, `view/`, `broker/` (embedded).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_data_dir(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// Extra librdkafka properties for every client (`security.protocol`, `sasl.username`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, Secret>,
    /// Replication factor of the topics `topics apply` creates.
    #[serde(default = "default_rf")]
    pub replication_factor: i32,
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    pub api_keys: Vec<Secret>,
    /// Limit the tenant's keys to these connections (default: all of the tenant's).
    #[serde(default)]
    pub connections: Option<Vec<String>>,
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
    pub webhook_secrets: Vec<Secret>,
    /// API credentials for the sync engine. Without them the connection is webhooks-only.
    #[serde(default)]
    pub access_token: Option<Secret>,
    #[serde(default)]
    pub consumer_key: Option<Secret>,
    #[serde(default)]
    pub consumer_secret: Option<Secret>,
    /// Historical sync depth in days (default 730).
    #[serde(default)]
    pub history_days: Option<u32>,
    /// Reconciliation interval in seconds (default 43200; NetSuite 900).
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// The 3PA account's IANA time zone (WooCommerce store, NetSuite account).
    #[serde(default)]
    pub timezone: Option<String>,
}

impl ConnectionConfig {
    /// The connection as the sync engine and ingest store it.
    pub fn spec(&self) -> ingot_model::ConnectionSpec {
        let reveal = |s: &Option<Secret>| s.as_ref().map(|s| s.0.clone());
        let credentials = ingot_model::Credentials {
            access_token: reveal(&self.access_token),
            consumer_key: reveal(&self.consumer_key),
            consumer_secret: reveal(&self.consumer_secret),
        };
        let sync_disabled = credentials == ingot_model::Credentials::default();
        ingot_model::ConnectionSpec {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            provider: self.provider,
            shop_domain: self.shop_domain.clone(),
            base_url: self.base_url.clone(),
            credentials,
            webhook_secrets: self.webhook_secrets.iter().map(|s| s.0.clone()).collect(),
            history_days: self.history_days,
            poll_interval_secs: self.poll_interval_secs,
            timezone: self.timezone.clone(),
            page_size: None,
            sync_disabled,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSection {
    /// Consumer group of the processor (default `ingot-processor`).
    #[serde(default)]
    pub group_id: Option<String>,
}

impl Config {
    /// Loads `path` (if given) then `INGOT_*` environment overrides, and validates.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::new();
        if let Some(p) = path {
            if !p.exists() {
                anyhow::bail!("config file {} not found", p.display());
            }
            fig = fig.merge(Toml::file(p));
        }
        fig = fig.merge(Env::prefixed("INGOT_").split("__"));
        let cfg: Config = fig.extract().map_err(|e| {
            let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration:\n  - {}", all.join("\n  - "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = Figment::from(Toml::string(text)).extract().map_err(|e| {
            let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration:\n  - {}", all.join("\n  - "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Cross-field checks, all reported at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let tenants: std::collections::HashSet<&str> =
            self.tenants.iter().map(|t| t.id.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        for c in &self.connections {
            if !seen.insert(c.id.as_str()) {
                problems.push(format!("connection {:?} is defined twice", c.id));
            }
            if c.id.contains('/') || c.id.is_empty() {
                problems.push(format!(
                    "connection id {:?} must be non-empty and contain no '/'",
                    c.id
                ));
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
            if let Some(tz) = &c.timezone {
                if tz.parse::<chrono_tz::Tz>().is_err() {
                    problems.push(format!("connection {:?}: unknown time zone {tz:?}", c.id));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "))
        }
    }
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
            c.connections[0].webhook_secrets[0].0,
            "test-secret-not-real"
        );
        assert!(c.kafka.is_none());
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("test-secret-not-real") && !debug.contains("test-api-key"),
            "{debug}"
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
}
