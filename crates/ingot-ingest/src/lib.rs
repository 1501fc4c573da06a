//! The webhook receiver (DESIGN §5): `POST /webhooks/{provider}/{connection_id}`.
//!
//! 1. unknown connection, or a connection of another provider → 404;
//! 2. body over the limit → 413 (before reading it all);
//! 3. the provider's signature is verified over the raw bytes, in constant time, with each
//!    of the connection's secrets (old and new during a rotation) → 401 on failure, nothing
//!    written; a WooCommerce ping (`webhook_id=N`, unsigned) → 200, nothing written;
//! 4. the raw event (payload untouched) is produced to `raw.<provider>` keyed by its record
//!    key, and only once Kafka acknowledged it (`acks=all`, idempotent) the answer is 200;
//!    Kafka unavailable → 503 so the 3PA retries.
//!
//! 5. a verified delivery that announces a change of the connection itself
//!    ([`Lifecycle`]: Shopify `app/uninstalled`) is stored like any other, then handed to
//!    the [`LifecycleSink`] (the sync engine marks the connection disconnected and stops
//!    its sync, through `ingot.connections`); a sink failure answers 503 so the 3PA
//!    retries. An ingest without a sink (a separate ingest process) logs it.
//!
//! Ingest reads nothing of the payload beyond routing fields (the object's `id`). A body
//! that is not JSON or has no id is still stored (key `<connection>/unrouted/<event id>`)
//! and the processor dead-letters it with the reason.

mod providers;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ingot_http::ApiError;
use ingot_kafka::{AvroCodec, Producer};
use ingot_model::{Provider, RawEvent, RecordKey};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use providers::{verify_hmac_base64, Lifecycle, Verdict, WebhookVerifier};

/// Receives connection changes announced by verified deliveries: `(connection id,
/// change)` → done, or why not (the delivery then gets 503 and is retried).
pub type LifecycleSink = Arc<
    dyn Fn(
            String,
            Lifecycle,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// A connection as ingest needs it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub tenant_id: String,
    pub provider: Provider,
    /// Webhook signing secrets; any of them verifies (rotation). `Debug` prints `***`.
    pub webhook_secrets: Vec<ingot_model::Secret>,
}

/// The connections ingest knows, shared with whoever keeps them current (the sync
/// engine's connection registry, or a watcher of the `ingot.connections` topic).
#[derive(Clone, Default)]
pub struct Connections(Arc<RwLock<HashMap<String, Connection>>>);

impl Connections {
    pub fn new(list: Vec<Connection>) -> Self {
        let c = Connections::default();
        c.replace(list);
        c
    }

    /// Replaces the whole set.
    pub fn replace(&self, list: Vec<Connection>) {
        *self.0.write().expect("connections lock") =
            list.into_iter().map(|c| (c.id.clone(), c)).collect();
    }

    pub fn get(&self, id: &str) -> Option<Connection> {
        self.0.read().expect("connections lock").get(id).cloned()
    }
}

/// Ingest configuration and handles.
#[derive(Clone)]
pub struct IngestState {
    connections: Connections,
    producer: Producer,
    codec: AvroCodec,
    lifecycle: Option<LifecycleSink>,
}

impl IngestState {
    pub fn new(connections: Connections, producer: Producer, codec: AvroCodec) -> Self {
        IngestState {
            connections,
            producer,
            codec,
            lifecycle: None,
        }
    }

    /// Hands connection changes ([`Lifecycle`]) to `sink`.
    pub fn with_lifecycle(mut self, sink: LifecycleSink) -> Self {
        self.lifecycle = Some(sink);
        self
    }
}

/// Default body limit: 5 MiB (Shopify caps webhook bodies well below this).
pub const DEFAULT_MAX_BODY: usize = 5 * 1024 * 1024;

/// The webhook routes.
pub fn router(state: IngestState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/webhooks/{provider}/{connection_id}", post(receive))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// 404 `unknown connection` (in the error envelope every HTTP surface shares,
/// [`ApiError`]: `{"error": "<reason>"}`).
fn unknown_connection() -> ApiError {
    ApiError::Status(StatusCode::NOT_FOUND, "unknown connection".into())
}

/// 503 with `reason` (the cause is logged by the caller, with the connection): the 3PA
/// retries.
fn retry(reason: &str) -> ApiError {
    ApiError::Status(StatusCode::SERVICE_UNAVAILABLE, reason.into())
}

async fn receive(
    State(s): State<IngestState>,
    Path((provider, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(conn) = s.connections.get(&connection_id) else {
        return Err(unknown_connection());
    };
    if conn.provider.as_str() != provider {
        return Err(unknown_connection());
    }
    let verifier = providers::verifier_for(conn.provider);
    let accepted = match verifier.verify(&headers, &body, &conn.webhook_secrets) {
        Verdict::Ping => {
            metrics::counter!("ingot_ingest_pings_total", "provider" => provider_label(conn.provider)).increment(1);
            return Ok(Json(json!({"status": "ping acknowledged"})).into_response());
        }
        Verdict::Unauthorized(reason) => {
            tracing::warn!(component = "ingest", connection_id = %conn.id, reason, "webhook rejected");
            metrics::counter!("ingot_ingest_rejected_total", "provider" => provider_label(conn.provider), "reason" => "signature").increment(1);
            return Err(ApiError::Status(
                StatusCode::UNAUTHORIZED,
                "invalid signature".into(),
            ));
        }
        Verdict::BadRequest(reason) => {
            tracing::warn!(component = "ingest", connection_id = %conn.id, reason, "webhook refused");
            return Err(ApiError::BadRequest(reason.to_string()));
        }
        Verdict::Accepted(a) => a,
    };
    if ingot_standardize::mapping_for(conn.provider)
        .route(&accepted.topic)
        .is_none()
    {
        // stored all the same (the raw topic is the system of record); the processor skips it
        tracing::info!(component = "ingest", connection_id = %conn.id, topic = %accepted.topic, "topic not mapped: stored, will be skipped");
    }
    let lifecycle = verifier.lifecycle(&accepted.topic);
    let event_id = accepted
        .event_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = ingot_standardize::mapping_for(conn.provider).route(&accepted.topic);
    let remote_id = route.and_then(|_| routing_id(&body));
    let key = match (route, remote_id) {
        (Some((model, _)), Some(id)) => RecordKey::new(&conn.id, model, id).to_string(),
        _ => format!("{}/unrouted/{}", conn.id, event_id),
    };
    let event = RawEvent {
        event_id,
        tenant_id: conn.tenant_id.clone(),
        connection_id: conn.id.clone(),
        provider: conn.provider.as_str().to_string(),
        topic: accepted.topic,
        source: "webhook".into(),
        api_version: accepted.api_version,
        received_at: ingot_model::format_utc(&chrono::Utc::now()),
        triggered_at: accepted.triggered_at,
        payload: body.to_vec(),
    };
    let topic = conn.provider.raw_topic();
    let value = match s.codec.encode_raw(&topic, &event).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(component = "ingest", error = %e, "raw event encoding failed");
            return Err(retry("schema registry unavailable, retry"));
        }
    };
    match s
        .producer
        .send(&topic, key.as_bytes(), Some(&value), &[])
        .await
    {
        Ok((partition, offset)) => {
            if let Some(change) = lifecycle {
                match &s.lifecycle {
                    Some(sink) => {
                        if let Err(e) = sink(conn.id.clone(), change).await {
                            tracing::error!(component = "ingest", connection_id = %conn.id, ?change, error = %e, "connection change not recorded");
                            return Err(retry("connection change not recorded, retry"));
                        }
                        tracing::info!(component = "ingest", connection_id = %conn.id, ?change, "connection change recorded");
                    }
                    None => {
                        tracing::warn!(component = "ingest", connection_id = %conn.id, ?change, "connection change received but no sync engine runs in this process")
                    }
                }
            }
            metrics::counter!("ingot_ingest_accepted_total", "provider" => provider_label(conn.provider)).increment(1);
            tracing::debug!(component = "ingest", connection_id = %conn.id, %key, partition, offset, "raw event stored");
            Ok((StatusCode::OK, Json(json!({"status": "accepted", "raw_topic": topic, "raw_partition": partition, "raw_offset": offset}))).into_response())
        }
        Err(e) => {
            tracing::error!(component = "ingest", connection_id = %conn.id, error = %e, "raw event not acknowledged");
            Err(retry(ingot_http::UNAVAILABLE))
        }
    }
}

fn provider_label(p: Provider) -> &'static str {
    p.as_str()
}

/// The routing id of a webhook body: its top-level `id` (integer digits kept exactly, or a
/// string). `None` when the body is not a JSON object with an id.
pub fn routing_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Routing {
        id: serde_json::Value,
    }
    let r: Routing = serde_json::from_slice(body).ok()?;
    match r.id {
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}
