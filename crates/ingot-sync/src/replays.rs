//! Replay requests (DESIGN §6): written to `ingot.replays` here, run by the processor
//! (`ingot-processor`, module `replay`), followed by reading the same topic back.
//!
//! The API (tenant-scoped, Bearer auth like the rest of `/v1`):
//! - `POST /v1/replays` `{"connection_ids": [...], "models": ["order", ...], "since": RFC3339,
//!   "until": RFC3339, "dry_run": bool, "source": "raw"|"dlq", "reason_contains": "..."}`
//!   → `202` and the replay's status. `connection_ids` empty or absent: every connection
//!   the key may read. Another tenant's connection: `404`.
//! - `GET /v1/replays`, `GET /v1/replays/{id}` → status: `state` (`pending`, `running`,
//!   `done`, `cancelled`), `seek` (`timestamp_lookup` or `scan`), `total` and `position`
//!   (raw records to read and read), `counts` (`scanned`, `read`, `reemitted`,
//!   `unchanged`, `dead_lettered`, `skipped`), and for a finished dry run `report`
//!   (per model: `changed`, `fields` {field: records}, `samples` [{record_key, changes:
//!   [{field, old, new}]}]).
//! - `POST /v1/replays/{id}/cancel` → `202`.

use crate::api::{error, principal, ApiState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ingot_kafka::{KafkaError, KafkaSettings, Producer};
use ingot_model::auth::Principal;
use ingot_model::replay::{ReplayBook, ReplaySource, ReplaySpec, ReplayStatus, REPLAYS_TOPIC};
use ingot_model::{Model, Provider};
use serde::Deserialize;

/// Writes a replay request (or its cancellation: the same spec with `cancelled`).
pub async fn submit(kafka: &KafkaSettings, spec: &ReplaySpec) -> Result<(), KafkaError> {
    let value = serde_json::to_vec(spec).map_err(|e| KafkaError::Metadata(e.to_string()))?;
    Producer::new(kafka)?
        .send(REPLAYS_TOPIC, spec.id.as_bytes(), Some(&value), &[])
        .await?;
    Ok(())
}

/// Every replay and its units' progress, read from the control topic.
pub async fn read_book(kafka: &KafkaSettings) -> Result<ReplayBook, KafkaError> {
    let mut book = ReplayBook::default();
    for m in kafka.read_all(REPLAYS_TOPIC).await? {
        if let Some(k) = m.key_str() {
            if let Err(e) = book.apply(k, m.value.as_deref()) {
                tracing::warn!(component = "replays", key = k, error = %e, "unreadable replay record ignored");
            }
        }
    }
    Ok(book)
}

/// The units a replay is split into: the partition count of the raw topics (equal for
/// every provider; the processor checks it at start).
pub fn units(kafka: &KafkaSettings) -> Result<u32, KafkaError> {
    let mut n = 0;
    for p in Provider::ALL {
        n = n.max(kafka.partitions(&p.raw_topic())?.len() as u32);
    }
    Ok(n)
}

/// The body of `POST /v1/replays`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    pub connection_ids: Vec<String>,
    #[serde(default)]
    pub models: Vec<Model>,
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub source: ReplaySource,
    #[serde(default)]
    pub reason_contains: Option<String>,
}

fn may_see(who: &Principal, spec: &ReplaySpec) -> bool {
    spec.tenant_id.as_deref() == Some(who.tenant_id.as_str())
        && who
            .connections
            .as_ref()
            .is_none_or(|c| spec.connection_ids.iter().all(|id| c.contains(id)))
}

fn storage_error(e: KafkaError) -> Response {
    tracing::error!(component = "replays", error = %e, "replay control topic");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable, retry",
    )
}

pub(crate) async fn create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if let (Some(a), Some(b)) = (req.since, req.until) {
        if a > b {
            return error(StatusCode::BAD_REQUEST, "since is after until");
        }
    }
    let mine: Vec<String> = s
        .engine
        .connections()
        .into_iter()
        .filter(|c| who.may_read(&c.tenant, &c.id))
        .map(|c| c.id)
        .collect();
    let connection_ids = if req.connection_ids.is_empty() {
        mine
    } else {
        if let Some(at) = req.connection_ids.iter().position(|id| !mine.contains(id)) {
            // by position, not by id: an answer never repeats another tenant's identifiers
            return error(
                StatusCode::NOT_FOUND,
                format!("connection_ids[{at}]: no such connection for this key"),
            );
        }
        req.connection_ids
    };
    if connection_ids.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no connection to replay");
    }
    let kafka = s.engine.kafka();
    let units = match units(kafka) {
        Ok(n) => n,
        Err(e) => return storage_error(e),
    };
    let mut spec = ReplaySpec::new(req.source, units);
    spec.tenant_id = Some(who.tenant_id.clone());
    spec.connection_ids = connection_ids;
    spec.models = req.models;
    spec.since = req.since;
    spec.until = req.until;
    spec.dry_run = req.dry_run;
    spec.reason_contains = req.reason_contains;
    if let Err(e) = submit(kafka, &spec).await {
        return storage_error(e);
    }
    let status = ReplayStatus::of(&spec, []);
    (StatusCode::ACCEPTED, Json(status)).into_response()
}

pub(crate) async fn list(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let book = match read_book(s.engine.kafka()).await {
        Ok(b) => b,
        Err(e) => return storage_error(e),
    };
    let data: Vec<ReplayStatus> = book
        .specs
        .values()
        .filter(|spec| may_see(&who, spec))
        .filter_map(|spec| book.status(&spec.id))
        .collect();
    Json(serde_json::json!({ "data": data })).into_response()
}

/// The replay `id` if the caller may see it (else the ready answer: 401, 404, 503), with
/// the book it was read from.
#[allow(clippy::result_large_err)] // the Err is the ready-made HTTP answer
async fn visible(
    s: &ApiState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(ReplayBook, ReplaySpec), Response> {
    let who = principal(s, headers)?;
    let book = read_book(s.engine.kafka()).await.map_err(storage_error)?;
    let spec = book
        .specs
        .get(id)
        .filter(|spec| may_see(&who, spec))
        .cloned()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "not found"))?;
    Ok((book, spec))
}

pub(crate) async fn get_one(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match visible(&s, &headers, &id).await {
        Ok((book, spec)) => match book.status(&spec.id) {
            Some(st) => Json(st).into_response(),
            None => error(StatusCode::NOT_FOUND, "not found"),
        },
        Err(r) => r,
    }
}

pub(crate) async fn cancel(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (book, mut spec) = match visible(&s, &headers, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    spec.cancelled = true;
    if let Err(e) = submit(s.engine.kafka(), &spec).await {
        return storage_error(e);
    }
    let mut status = book
        .status(&id)
        .unwrap_or_else(|| ReplayStatus::of(&spec, []));
    if !status.finished() {
        status.state = ingot_model::replay::ReplayState::Cancelled;
    }
    (StatusCode::ACCEPTED, Json(status)).into_response()
}
