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
//!
//! Errors are the shared envelope ([`ApiError`]): 401 (the [`Caller`] extractor, before
//! the body), 400, 404, 503 when the control topic cannot be read or written.

use crate::api::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ingot_http::{ApiError, Caller, JsonObject};
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
    // each read is a fresh client (metadata, watermarks, fetches): a broker busy with other
    // clients can fail one of those calls, so a failed read is tried twice more (after
    // 100 ms, then 300 ms) before the caller sees the error (schemathesis met one such
    // 503 on the embedded broker)
    let mut pause = std::time::Duration::from_millis(100);
    let mut failed = 0;
    let messages = loop {
        match kafka.read_all(REPLAYS_TOPIC).await {
            Ok(m) => break m,
            Err(e) if failed < 2 => {
                failed += 1;
                tracing::warn!(component = "replays", error = %e, failed, "reading the replay book failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 3;
            }
            Err(e) => return Err(e),
        }
    };
    let mut book = ReplayBook::default();
    for m in messages {
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

/// The control topic unavailable: 503 `storage unavailable, retry` (logged).
fn storage_error(e: KafkaError) -> ApiError {
    ApiError::unavailable("replays", format!("replay control topic: {e}"))
}

pub(crate) async fn create(
    State(s): State<ApiState>,
    Caller(who): Caller,
    body: Result<JsonObject<ReplayRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonObject(req) = body?;
    if let (Some(a), Some(b)) = (req.since, req.until) {
        if a > b {
            return Err(ApiError::BadRequest("since is after until".into()));
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
            return Err(ApiError::Status(
                StatusCode::NOT_FOUND,
                format!("connection_ids[{at}]: no such connection for this key"),
            ));
        }
        // the processor matches every raw event it reads against these lists
        ingot_http::each_once(req.connection_ids)
    };
    if connection_ids.is_empty() {
        return Err(ApiError::BadRequest("no connection to replay".into()));
    }
    let models = ingot_http::each_once(req.models);
    let kafka = s.engine.kafka();
    // metadata requests block (librdkafka): not on an async worker
    let units = {
        let kafka = kafka.clone();
        tokio::task::spawn_blocking(move || units(&kafka))
            .await
            .map_err(|e| ApiError::unavailable("replays", format!("replay units: {e}")))?
            .map_err(storage_error)?
    };
    let mut spec = ReplaySpec::new(req.source, units);
    spec.tenant_id = Some(who.tenant_id.clone());
    spec.connection_ids = connection_ids;
    spec.models = models;
    spec.since = req.since;
    spec.until = req.until;
    spec.dry_run = req.dry_run;
    spec.reason_contains = req.reason_contains;
    submit(kafka, &spec).await.map_err(storage_error)?;
    let status = ReplayStatus::of(&spec, []);
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

pub(crate) async fn list(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let book = read_book(s.engine.kafka()).await.map_err(storage_error)?;
    let data: Vec<ReplayStatus> = book
        .specs
        .values()
        .filter(|spec| may_see(&who, spec))
        .filter_map(|spec| book.status(&spec.id))
        .collect();
    Ok(Json(serde_json::json!({ "data": data })))
}

/// The replay `id` if the caller may see it (else 404, or 503 when the book cannot be
/// read), with the book it was read from.
async fn visible(
    s: &ApiState,
    who: &Principal,
    id: &str,
) -> Result<(ReplayBook, ReplaySpec), ApiError> {
    let book = read_book(s.engine.kafka()).await.map_err(storage_error)?;
    let spec = book
        .specs
        .get(id)
        .filter(|spec| may_see(who, spec))
        .cloned()
        .ok_or(ApiError::NotFound)?;
    Ok((book, spec))
}

pub(crate) async fn get_one(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<ReplayStatus>, ApiError> {
    let (book, spec) = visible(&s, &who, &id).await?;
    book.status(&spec.id).map(Json).ok_or(ApiError::NotFound)
}

pub(crate) async fn cancel(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (book, mut spec) = visible(&s, &who, &id).await?;
    spec.cancelled = true;
    submit(s.engine.kafka(), &spec)
        .await
        .map_err(storage_error)?;
    let mut status = book
        .status(&id)
        .unwrap_or_else(|| ReplayStatus::of(&spec, []));
    if !status.finished() {
        status.state = ingot_model::replay::ReplayState::Cancelled;
    }
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}
