//! Webhook endpoints: what an ISV registered, event-sourced in the compacted
//! `ingot.webhook-endpoints` topic (key = endpoint id, JSON [`Endpoint`], tombstone =
//! deleted) and mirrored in memory. Every change is produced and acknowledged before it is
//! applied; a tail of the topic applies changes made by other processes.

use crate::ForwarderError;
use chrono::{DateTime, Utc};
use ingot_kafka::{Consumer, KafkaError, KafkaSettings, Message, Producer, StreamConsumer};
use ingot_model::Model;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The control topic of endpoints (declared in `topology/topics.toml`).
pub const ENDPOINTS_TOPIC: &str = "ingot.webhook-endpoints";

/// A signing secret (`whsec_…`); `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One secret of an endpoint and, once rotated out, when it stops signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub secret: Secret,
    /// RFC 3339; `None` while it is the current secret.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    Enabled,
    Disabled,
}

/// An endpoint as stored on the control topic.
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
    pub secrets: Vec<SigningSecret>,
    pub created_at: String,
    pub updated_at: String,
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
            .filter(|s| {
                s.expires_at
                    .as_deref()
                    .and_then(|t| ingot_model::parse_time(t, false).ok())
                    .is_none_or(|t| t > now)
            })
            .map(|s| s.secret.0.as_str())
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
    changes: Arc<watch::Sender<u64>>,
    /// Serializes read-modify-write changes in this process.
    write: Arc<tokio::sync::Mutex<()>>,
}

impl Endpoints {
    /// Reads the control topic to its end.
    pub async fn load(kafka: &KafkaSettings) -> Result<Endpoints, ForwarderError> {
        let mut map = BTreeMap::new();
        for m in kafka.read_all(ENDPOINTS_TOPIC).await? {
            apply(&mut map, &m)?;
        }
        let (changes, _) = watch::channel(0);
        Ok(Endpoints {
            map: Arc::new(RwLock::new(map)),
            producer: Producer::new(kafka)?,
            changes: Arc::new(changes),
            write: Arc::new(tokio::sync::Mutex::new(())),
        })
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
        let value = endpoint.map(|e| serde_json::to_vec(e).expect("endpoint serializes"));
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
                    match parse(&msg) {
                        Ok(e) => self.apply_version(&id, msg.offset, e),
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

fn parse(m: &Message) -> Result<Option<Endpoint>, ForwarderError> {
    m.value
        .as_deref()
        .map(serde_json::from_slice::<Endpoint>)
        .transpose()
        .map_err(|e| ForwarderError::Corrupt {
            topic: ENDPOINTS_TOPIC.into(),
            offset: m.offset,
            reason: e.to_string(),
        })
}

fn apply(map: &mut BTreeMap<String, Entry>, m: &Message) -> Result<(), ForwarderError> {
    let Some(id) = m.key_str() else {
        return Ok(());
    };
    let endpoint = parse(m)?;
    map.insert(
        id.to_string(),
        Entry {
            offset: m.offset,
            endpoint,
        },
    );
    Ok(())
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
                secret: Secret("whsec_new".into()),
                expires_at: None,
            },
            SigningSecret {
                secret: Secret("whsec_old".into()),
                expires_at: Some(ingot_model::format_utc(&(now + chrono::Duration::hours(1)))),
            },
            SigningSecret {
                secret: Secret("whsec_older".into()),
                expires_at: Some(ingot_model::format_utc(&(now - chrono::Duration::hours(1)))),
            },
        ];
        assert_eq!(e.active_secrets(now), ["whsec_new", "whsec_old"]);
        assert!(!format!("{e:?}").contains("whsec_"));
    }
}
