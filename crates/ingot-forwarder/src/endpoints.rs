//! Webhook endpoints: what an ISV registered, event-sourced in the compacted
//! `ingot.webhook-endpoints` topic (key = endpoint id, JSON [`Endpoint`] with its signing
//! secrets sealed by the [`Keyring`], tombstone = deleted) and mirrored in memory. Every
//! change is produced and acknowledged before it is applied; a tail of the topic applies
//! changes made by other processes.

use crate::ForwarderError;
use chrono::{DateTime, Utc};
use ingot_kafka::{Consumer, KafkaError, KafkaSettings, Message, Producer, StreamConsumer};
use ingot_model::{Keyring, Model, SealError, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The control topic of endpoints (declared in `topology/topics.toml`).
pub const ENDPOINTS_TOPIC: &str = "ingot.webhook-endpoints";

/// One signing secret (`whsec_…`) of an endpoint and, once rotated out, when it stops
/// signing. `Debug` prints the secret as `***` ([`Secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecret {
    pub secret: Secret,
    /// RFC 3339; `None` while it is the current secret.
    pub expires_at: Option<String>,
}

impl SigningSecret {
    /// Does it still sign at `now` (current, or rotated out and not yet expired)?
    pub fn signs_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at
            .as_deref()
            .and_then(|t| ingot_model::parse_time(t, false).ok())
            .is_none_or(|t| t > now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    Enabled,
    Disabled,
}

/// An endpoint. Its serde form has no secrets (they are stored sealed, see [`Stored`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `ep_<32 hex>`.
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    /// Patterns: `*`, `<model>.*`, `*.<op>`, `<model>.<op>` with op `created|updated|deleted`.
    pub events: Vec<String>,
    /// Only these connections (`None`: every connection of the tenant).
    #[serde(default)]
    pub connection_ids: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    pub status: EndpointStatus,
    /// Why the endpoint was disabled (by ingot: `410 Gone`, continuous failure; or by the ISV).
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Newest first; the first is the current secret.
    #[serde(skip)]
    pub secrets: Vec<SigningSecret>,
    pub created_at: String,
    pub updated_at: String,
}

/// A secret as stored: sealed (`ingot-sealed:v1:…`), or in clear as written before
/// sealing existed (read, then stored again sealed).
#[derive(Serialize, Deserialize)]
struct StoredSecret {
    secret: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// The control-topic value: the endpoint and its sealed secrets.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    endpoint: Endpoint,
    secrets: Vec<StoredSecret>,
}

/// The associated data an endpoint's secrets are sealed with (a sealed secret copied to
/// another endpoint does not open).
fn seal_context(id: &str) -> String {
    format!("webhook-endpoint/{id}/secret")
}

/// The control-topic value of `e`, every secret sealed under `keyring`'s current key.
fn seal(keyring: &Keyring, e: &Endpoint) -> Vec<u8> {
    let context = seal_context(&e.id);
    let stored = Stored {
        endpoint: e.clone(),
        secrets: e
            .secrets
            .iter()
            .map(|s| StoredSecret {
                secret: keyring.seal(&context, &s.secret),
                expires_at: s.expires_at.clone(),
            })
            .collect(),
    };
    serde_json::to_vec(&stored).expect("endpoint serializes")
}

/// Reads a control-topic value; the flag says whether some secret was stored in clear.
fn unseal(keyring: &Keyring, value: &[u8]) -> Result<(Endpoint, bool), String> {
    let stored: Stored = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let mut endpoint = stored.endpoint;
    let context = seal_context(&endpoint.id);
    let mut clear = false;
    endpoint.secrets = stored
        .secrets
        .into_iter()
        .map(|s| {
            let secret = if Keyring::is_sealed(&s.secret) {
                keyring.open(&context, &s.secret)?
            } else {
                clear = true;
                Secret::new(s.secret)
            };
            Ok(SigningSecret {
                secret,
                expires_at: s.expires_at,
            })
        })
        .collect::<Result<_, SealError>>()
        .map_err(|e| format!("endpoint {:?}: {e}", endpoint.id))?;
    Ok((endpoint, clear))
}

const OPS: [&str; 3] = ["created", "updated", "deleted"];

/// Checks one event pattern; the error says what is accepted.
pub fn validate_event_pattern(p: &str) -> Result<(), String> {
    if p == "*" {
        return Ok(());
    }
    let ok = p.split_once('.').is_some_and(|(m, op)| {
        (m == "*" || m.parse::<Model>().is_ok()) && (op == "*" || OPS.contains(&op))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "events: {p:?} is not an event type; use <model>.<created|updated|deleted> with model one of {}, or a * wildcard (order.*, *.deleted, *)",
            Model::ALL.map(|m| m.as_str()).join(", ")
        ))
    }
}

fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" || pattern == event_type {
        return true;
    }
    match (pattern.split_once('.'), event_type.split_once('.')) {
        (Some((pm, po)), Some((em, eo))) => (pm == "*" || pm == em) && (po == "*" || po == eo),
        _ => false,
    }
}

impl Endpoint {
    /// Does this endpoint want `event_type` of a record of `tenant_id`/`connection_id`?
    pub fn wants(&self, tenant_id: &str, connection_id: &str, event_type: &str) -> bool {
        self.status == EndpointStatus::Enabled
            && self.tenant_id == tenant_id
            && self
                .connection_ids
                .as_ref()
                .is_none_or(|c| c.iter().any(|x| x == connection_id))
            && self.events.iter().any(|p| pattern_matches(p, event_type))
    }

    /// The secrets that sign at `now`: the current one and rotated ones not yet expired.
    pub fn active_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.signs_at(now))
            .map(|s| s.secret.expose())
            .collect()
    }

    pub fn enabled(&self) -> bool {
        self.status == EndpointStatus::Enabled
    }
}

struct Entry {
    /// Offset on the control topic of the version held (newer offsets win).
    offset: i64,
    endpoint: Option<Endpoint>,
}

/// The endpoints, in memory, backed by the control topic. Cheap to clone.
#[derive(Clone)]
pub struct Endpoints {
    map: Arc<RwLock<BTreeMap<String, Entry>>>,
    producer: Producer,
    keyring: Keyring,
    changes: Arc<watch::Sender<u64>>,
    /// Serializes read-modify-write changes in this process.
    write: Arc<tokio::sync::Mutex<()>>,
}

impl Endpoints {
    /// Reads the control topic to its end, opening the secrets with `keyring`. Endpoints
    /// whose secrets were stored in clear (before sealing existed) are stored again, sealed.
    pub async fn load(
        kafka: &KafkaSettings,
        keyring: Keyring,
    ) -> Result<Endpoints, ForwarderError> {
        let mut map = BTreeMap::new();
        let mut in_clear = Vec::new();
        for m in kafka.read_all(ENDPOINTS_TOPIC).await? {
            let Some(id) = m.key_str().map(str::to_string) else {
                continue;
            };
            let (endpoint, clear) = parse(&keyring, &m)?;
            in_clear.retain(|c| c != &id);
            if clear {
                in_clear.push(id.clone());
            }
            map.insert(
                id,
                Entry {
                    offset: m.offset,
                    endpoint,
                },
            );
        }
        let (changes, _) = watch::channel(0);
        let endpoints = Endpoints {
            map: Arc::new(RwLock::new(map)),
            producer: Producer::new(kafka)?,
            keyring,
            changes: Arc::new(changes),
            write: Arc::new(tokio::sync::Mutex::new(())),
        };
        for id in in_clear {
            let _g = endpoints.lock().await;
            if let Some(e) = endpoints.get(&id) {
                tracing::info!(component = "forwarder", endpoint = %id, "sealing the secrets of an endpoint stored in clear");
                endpoints.put(&id, Some(&e)).await?;
            }
        }
        Ok(endpoints)
    }

    /// Ticks on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn get(&self, id: &str) -> Option<Endpoint> {
        self.map
            .read()
            .expect("endpoints lock")
            .get(id)
            .and_then(|e| e.endpoint.clone())
    }

    /// Every endpoint (enabled or not).
    pub fn all(&self) -> Vec<Endpoint> {
        self.map
            .read()
            .expect("endpoints lock")
            .values()
            .filter_map(|e| e.endpoint.clone())
            .collect()
    }

    /// The lock to hold around a read-modify-write of one endpoint.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    /// Stores a new version (or a deletion) and applies it once acknowledged.
    pub async fn put(&self, id: &str, endpoint: Option<&Endpoint>) -> Result<(), ForwarderError> {
        let value = endpoint.map(|e| seal(&self.keyring, e));
        let (_, offset) = self
            .producer
            .send(ENDPOINTS_TOPIC, id.as_bytes(), value.as_deref(), &[])
            .await?;
        self.apply_version(id, offset, endpoint.cloned());
        Ok(())
    }

    fn apply_version(&self, id: &str, offset: i64, endpoint: Option<Endpoint>) {
        let changed = {
            let mut map = self.map.write().expect("endpoints lock");
            match map.get(id) {
                Some(e) if e.offset >= offset => false,
                _ => {
                    map.insert(id.to_string(), Entry { offset, endpoint });
                    true
                }
            }
        };
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Disables an endpoint (by ingot), keeping its pending deliveries for a re-enable.
    pub async fn disable(&self, id: &str, reason: &str) -> Result<(), ForwarderError> {
        let _g = self.lock().await;
        let Some(mut e) = self.get(id) else {
            return Ok(());
        };
        if !e.enabled() {
            return Ok(());
        }
        e.status = EndpointStatus::Disabled;
        e.disabled_reason = Some(reason.to_string());
        e.updated_at = ingot_model::format_utc(&Utc::now());
        self.put(id, Some(&e)).await?;
        metrics::counter!("ingot_forwarder_endpoints_disabled_total").increment(1);
        tracing::warn!(
            component = "forwarder",
            endpoint = id,
            reason,
            "endpoint disabled"
        );
        Ok(())
    }

    /// Follows the control topic from `from` on (changes made by other processes) until
    /// `shutdown`.
    pub async fn tail(
        &self,
        kafka: &KafkaSettings,
        group_id: &str,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ForwarderError> {
        let start = {
            let map = self.map.read().expect("endpoints lock");
            map.values().map(|e| e.offset + 1).max().unwrap_or(0)
        };
        let consumer: StreamConsumer =
            ingot_kafka::create_consumer(kafka, &format!("{group_id}-endpoints"))?;
        let mut tpl = ingot_kafka::TopicPartitionList::new();
        tpl.add_partition_offset(ENDPOINTS_TOPIC, 0, ingot_kafka::Offset::Offset(start))
            .map_err(KafkaError::from)?;
        consumer.assign(&tpl).map_err(KafkaError::from)?;
        loop {
            let m = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                m = consumer.recv() => m,
            };
            match m {
                Ok(m) => {
                    let msg = Message::from_borrowed(&m);
                    let Some(id) = msg.key_str().map(str::to_string) else {
                        continue;
                    };
                    match parse(&self.keyring, &msg) {
                        Ok((e, _)) => self.apply_version(&id, msg.offset, e),
                        Err(e) => {
                            tracing::error!(component = "forwarder", error = %e, "endpoint record unreadable, skipped")
                        }
                    }
                }
                Err(ingot_kafka::RdKafkaError::PartitionEOF(_)) => {}
                Err(e) => {
                    tracing::warn!(component = "forwarder", error = %e, "endpoints tail error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// A control record: the endpoint (`None` for a tombstone) and whether a secret was in clear.
fn parse(keyring: &Keyring, m: &Message) -> Result<(Option<Endpoint>, bool), ForwarderError> {
    match m.value.as_deref() {
        None => Ok((None, false)),
        Some(v) => unseal(keyring, v)
            .map(|(e, clear)| (Some(e), clear))
            .map_err(|reason| ForwarderError::Corrupt {
                topic: ENDPOINTS_TOPIC.into(),
                offset: m.offset,
                reason,
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(events: &[&str], conns: Option<&[&str]>) -> Endpoint {
        Endpoint {
            id: "ep_1".into(),
            tenant_id: "acme".into(),
            url: "https://example.com/hook".into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            connection_ids: conns.map(|c| c.iter().map(|s| s.to_string()).collect()),
            description: None,
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secrets: vec![],
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn patterns_filter_by_event_tenant_and_connection() {
        let e = ep(&["order.*", "customer.deleted"], Some(&["shop-1"]));
        assert!(e.wants("acme", "shop-1", "order.created"));
        assert!(e.wants("acme", "shop-1", "order.deleted"));
        assert!(e.wants("acme", "shop-1", "customer.deleted"));
        assert!(!e.wants("acme", "shop-1", "customer.updated"));
        assert!(!e.wants("acme", "shop-2", "order.created"));
        assert!(!e.wants("globex", "shop-1", "order.created"));
        let all = ep(&["*"], None);
        assert!(all.wants("acme", "any", "product.updated"));
        assert!(ep(&["*.deleted"], None).wants("acme", "x", "product.deleted"));
        let mut off = all.clone();
        off.status = EndpointStatus::Disabled;
        assert!(!off.wants("acme", "any", "product.updated"));
    }

    #[test]
    fn pattern_validation() {
        for ok in [
            "*",
            "order.*",
            "*.deleted",
            "customer.created",
            "product.updated",
        ] {
            assert!(validate_event_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "order",
            "invoice.created",
            "order.changed",
            "",
            "order.created.x",
        ] {
            assert!(validate_event_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotated_secrets_sign_until_they_expire_and_never_print() {
        let now = Utc::now();
        let mut e = ep(&["*"], None);
        e.secrets = vec![
            SigningSecret {
                secret: Secret::new("whsec_new"),
                expires_at: None,
            },
            SigningSecret {
                secret: Secret::new("whsec_old"),
                expires_at: Some(ingot_model::format_utc(&(now + chrono::Duration::hours(1)))),
            },
            SigningSecret {
                secret: Secret::new("whsec_older"),
                expires_at: Some(ingot_model::format_utc(&(now - chrono::Duration::hours(1)))),
            },
        ];
        assert_eq!(e.active_secrets(now), ["whsec_new", "whsec_old"]);
        assert!(!format!("{e:?}").contains("whsec_"));
        assert!(!serde_json::to_string(&e).unwrap().contains("whsec_"));
    }

    #[test]
    fn stored_secrets_are_sealed_bound_to_the_endpoint_and_legacy_clear_ones_read() {
        let (ring, _) = Keyring::generate("k1").unwrap();
        let mut e = ep(&["*"], None);
        e.secrets = vec![
            SigningSecret {
                secret: Secret::new("whsec_current"),
                expires_at: None,
            },
            SigningSecret {
                secret: Secret::new("whsec_previous"),
                expires_at: Some("2030-01-01T00:00:00Z".into()),
            },
        ];
        let bytes = seal(&ring, &e);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("whsec_"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["secrets"].as_array().unwrap().len(), 2);
        for s in v["secrets"].as_array().unwrap() {
            assert!(
                s["secret"]
                    .as_str()
                    .unwrap()
                    .starts_with("ingot-sealed:v1:k1:"),
                "{s}"
            );
        }
        assert_eq!(v["secrets"][1]["expires_at"], "2030-01-01T00:00:00Z");
        assert_eq!(unseal(&ring, &bytes), Ok((e.clone(), false)));
        // another key, or the sealed secrets moved to another endpoint id: refused
        let (other, _) = Keyring::generate("k1").unwrap();
        assert!(unseal(&other, &bytes)
            .unwrap_err()
            .contains("does not open"));
        let mut moved = v.clone();
        moved["id"] = "ep_2".into();
        let moved = serde_json::to_vec(&moved).unwrap();
        assert!(unseal(&ring, &moved).is_err());
        // written in clear by an older ingot: read, flagged for sealing
        let mut clear = v;
        clear["secrets"][0]["secret"] = "whsec_current".into();
        clear["secrets"][1]["secret"] = "whsec_previous".into();
        let clear = serde_json::to_vec(&clear).unwrap();
        assert_eq!(unseal(&ring, &clear), Ok((e, true)));
    }
}
