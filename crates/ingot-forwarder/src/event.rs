//! From a normalized record (or tombstone) to a change event: its type, its stable
//! `webhook-id` and its body. Pure, deterministic: the same log entry always gives the same
//! id and the same body bytes (retries and replays are identical).

use ingot_kafka::Message;
use ingot_model::{Model, NormalizedRecord, RecordKey};
use serde_json::{json, Value};
use uuid::Uuid;

/// Kafka headers the processor writes on normalized records (see `ingot-processor`).
pub const HEADER_TENANT: &str = "ingot-tenant-id";
pub const HEADER_MODIFIED_AT: &str = "ingot-modified-at";
pub const HEADER_UPDATED_AT: &str = "ingot-remote-updated-at";

/// Namespace of message ids (UUIDv5 of `<record key>@<version>`).
const MESSAGE_NAMESPACE: Uuid = Uuid::from_u128(0x3c2d_8e6a_51f0_4b8e_9a47_0f6d_2b1c_7e90);

/// `webhook-id` of a change: `msg_` + UUIDv5(`<record key>@<normalized offset>`) in hex.
/// The normalized offset strictly increases per record (a record key always maps to one
/// partition), so the pair names one version.
pub fn message_id(record_key: &str, version: i64) -> String {
    format!(
        "msg_{}",
        Uuid::new_v5(
            &MESSAGE_NAMESPACE,
            format!("{record_key}@{version}").as_bytes()
        )
        .simple()
    )
}

/// What changed, read from a normalized message.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub record_key: String,
    pub model: Model,
    pub tenant_id: String,
    pub connection_id: String,
    pub record_id: String,
    /// The normalized offset.
    pub version: i64,
    /// RFC 3339: when ingot made this version (`modified_at`); the event's `timestamp`.
    pub changed_at: String,
    /// The `data` of the event (the API's record shape plus `version`).
    pub data: Value,
    pub deleted: bool,
    /// What identifies this version's bytes (the first 16 bytes of the SHA-256 of the
    /// normalized value; of the deletion time for a tombstone): an at-least-once
    /// re-emission of the same version has the same digest and is not a new change.
    pub digest: [u8; 16],
}

impl Change {
    /// `<model>.created|updated|deleted`.
    pub fn event_type(&self, created: bool) -> String {
        let op = if self.deleted {
            "deleted"
        } else if created {
            "created"
        } else {
            "updated"
        };
        format!("{}.{op}", self.model)
    }

    /// The event body: `{"type", "timestamp", "data"}`.
    pub fn body(&self, event_type: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": event_type,
            "timestamp": self.changed_at,
            "data": self.data,
        }))
        .expect("json serializes")
    }
}

/// Why a normalized message gives no change (counted, then dead-lettered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("not a normalized topic")]
    Topic,
    #[error("key is not a record key")]
    Key,
    #[error("value does not read as a normalized record: {0}")]
    Value(String),
    #[error("tombstone without tenant header")]
    Tenant,
}

impl Unusable {
    pub fn reason(&self) -> &'static str {
        match self {
            Unusable::Topic => "topic",
            Unusable::Key => "key",
            Unusable::Value(_) => "value",
            Unusable::Tenant => "tenant",
        }
    }
}

/// The record as `GET /v1/<resource>/{id}` serves it under `data`: the stored flat JSON
/// without `remote_data` (served only on request).
pub fn api_record(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("remote_data");
    }
    v
}

/// Reads a normalized message; `decoded` is the value's flat JSON (`None` for a tombstone).
fn digest(bytes: &[u8]) -> [u8; 16] {
    use sha2::Digest;
    let full = sha2::Sha256::digest(bytes);
    let mut d = [0; 16];
    d.copy_from_slice(&full[..16]);
    d
}

pub fn change_of(m: &Message, decoded: Option<Value>) -> Result<Change, Unusable> {
    let model = Model::from_normalized_topic(&m.topic).ok_or(Unusable::Topic)?;
    let key: RecordKey = m
        .key_str()
        .and_then(|k| k.parse().ok())
        .filter(|k: &RecordKey| k.model == model)
        .ok_or(Unusable::Key)?;
    let record_key = key.to_string();
    let record_id = key.record_id();
    let version = m.offset;
    match decoded {
        Some(json) => {
            let rec = NormalizedRecord::from_json(model, json.clone())
                .map_err(|e| Unusable::Value(e.to_string()))?;
            let mut data = api_record(json);
            if let Some(obj) = data.as_object_mut() {
                obj.insert("version".into(), json!(version));
            }
            Ok(Change {
                record_key,
                model,
                tenant_id: rec.meta.tenant_id,
                connection_id: rec.meta.connection_id,
                record_id,
                version,
                changed_at: rec.meta.modified_at,
                data,
                deleted: false,
                digest: digest(m.value.as_deref().unwrap_or_default()),
            })
        }
        None => {
            let tenant = m.header(HEADER_TENANT).ok_or(Unusable::Tenant)?;
            let changed_at = m
                .header(HEADER_MODIFIED_AT)
                .map(str::to_string)
                .unwrap_or_default();
            let data = json!({
                "id": record_id,
                "remote_id": key.remote_id,
                "connection_id": key.connection_id,
                "remote_deleted": true,
                "remote_deleted_at": m.header(HEADER_UPDATED_AT),
                "version": version,
            });
            Ok(Change {
                record_key,
                model,
                tenant_id: tenant.to_string(),
                connection_id: key.connection_id,
                record_id,
                version,
                changed_at,
                data,
                deleted: true,
                digest: digest(m.header(HEADER_UPDATED_AT).unwrap_or_default().as_bytes()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(value: bool) -> Message {
        Message {
            topic: "normalized.order".into(),
            partition: 1,
            offset: 42,
            timestamp_ms: None,
            key: Some(b"shop-1/order/820982911946154508".to_vec()),
            value: value.then(|| b"avro".to_vec()),
            headers: vec![
                ("ingot-tenant-id".into(), b"acme".to_vec()),
                ("ingot-modified-at".into(), b"2026-01-02T00:00:00Z".to_vec()),
                (
                    "ingot-remote-updated-at".into(),
                    b"2026-01-01T00:00:00Z".to_vec(),
                ),
                ("ingot-op".into(), b"delete".to_vec()),
            ],
        }
    }

    #[test]
    fn ids_are_stable_per_version() {
        let a = message_id("shop-1/order/1", 7);
        assert_eq!(a, message_id("shop-1/order/1", 7));
        assert_ne!(a, message_id("shop-1/order/1", 8));
        assert_ne!(a, message_id("shop-1/order/2", 7));
        assert!(a.starts_with("msg_") && a.len() == 36);
    }

    #[test]
    fn tombstones_become_deleted_stubs() {
        let c = change_of(&msg(false), None).unwrap();
        assert_eq!(c.event_type(false), "order.deleted");
        let body: Value = serde_json::from_slice(&c.body("order.deleted")).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "order.deleted",
                "timestamp": "2026-01-02T00:00:00Z",
                "data": {
                    "id": RecordKey::new("shop-1", Model::Order, "820982911946154508").record_id(),
                    "remote_id": "820982911946154508",
                    "connection_id": "shop-1",
                    "remote_deleted": true,
                    "remote_deleted_at": "2026-01-01T00:00:00Z",
                    "version": 42,
                }
            })
        );
    }

    #[test]
    fn records_keep_the_api_shape_plus_version() {
        let rec = NormalizedRecord {
            meta: ingot_model::RecordMeta {
                id: "x".into(),
                remote_id: "820982911946154508".into(),
                connection_id: "shop-1".into(),
                tenant_id: "acme".into(),
                modified_at: "2026-01-02T00:00:00Z".into(),
                remote_data: Some("{}".into()),
                ..Default::default()
            },
            data: ingot_model::RecordData::Order(ingot_model::Order {
                status: "open".into(),
                ..Default::default()
            }),
        };
        let c = change_of(&msg(true), Some(rec.to_json())).unwrap();
        assert_eq!(c.tenant_id, "acme");
        assert_eq!(c.event_type(true), "order.created");
        assert_eq!(c.data["version"], 42);
        assert_eq!(c.data["status"], "open");
        assert!(c.data.get("remote_data").is_none());
        assert_eq!(c.body("order.created"), c.body("order.created"));
        let mut wrong = msg(true);
        wrong.key = Some(b"shop-1/customer/1".to_vec());
        assert_eq!(change_of(&wrong, Some(rec.to_json())), Err(Unusable::Key));
    }
}
