//! The connections API:
//! - `POST /v1/connections` (a `ConnectionSpec` JSON; the tenant is the caller's) → 201 and
//!   the connection (secrets omitted); the historical sync starts at once; 200 when an
//!   identical connection exists; 409 when another connection has that id (connections
//!   are not replaced in place: DELETE first); 400 for another tenant's name;
//! - `GET /v1/connections`, `GET /v1/connections/{id}` (404 for other tenants' ids);
//!   Each connection says its `state` (`active`, or `disconnected` with `disconnected:
//!   {at, reason}` after Shopify's `app/uninstalled`) and `webhooks`: `managed: true` with
//!   the callback URL and per-topic subscription health (`id`, `active`, `last_checked`,
//!   `last_error`, `last_healthy`, `last_healed`), or `managed: false`, `carried_by:
//!   "polling"` and the `reason` (no `[http] public_url`, a provider without a
//!   subscriptions API such as NetSuite);
//! - `DELETE /v1/connections/{id}` → 204 once ingot's webhook subscriptions were removed
//!   from the 3PA too; 200 with a `warning` when some could not be (the connection is
//!   deleted all the same);
//! - `POST /v1/connections/{id}/resync` → 202, a fresh historical sync;
//! - `POST /v1/connections/{id}/reconcile` → 202 and the run it started
//!   (`{"run": {"connection_id", "kind": "reconcile", "requested_at", "models": [{"model",
//!   "from"}]}}`): a reconciliation of every model now, from its cursor minus the overlap
//!   (the historical sync is untouched); 409 while a model has no cursor yet (its
//!   historical sync has not finished) or the connection is not synced;
//! - `GET /v1/connections/{id}/sync-status` → per model: state, phase, cursor,
//!   last_success, last_run_started, records_seen (distinct records per listing, summed),
//!   records_written (raw events written, repeats included), last_run_records (distinct
//!   records of the current or last run), deletions_seen, last_error, progress_percent;
//!   plus `connection_state` and `webhooks` as above;
//! - `/v1/replays`: see [`crate::replays`].
//!
//! The key is the [`Caller`] extractor's (401 before anything else) and every error answer
//! is the shared envelope [`ApiError`] (`{"error": "<reason>"}`).

use crate::engine::{Engine, EngineError};
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingot_http::{ApiError, Caller, JsonObject};
use ingot_model::auth::{Auth, Principal};
use ingot_model::ConnectionSpec;
use serde_json::{json, Value};

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) engine: Engine,
    pub(crate) auth: Auth,
}

impl FromRef<ApiState> for Auth {
    fn from_ref(s: &ApiState) -> Auth {
        s.auth.clone()
    }
}

/// A connection as the API shows it: no credentials, no webhook secrets; its state
/// (`active`, `disconnected`) and how webhooks reach it (`webhooks`: managed
/// subscriptions and their health, or why polling carries it).
fn public(s: &ApiState, spec: &ConnectionSpec) -> Value {
    json!({
        "id": spec.id,
        "provider": spec.provider,
        "shop_domain": spec.shop_domain,
        "base_url": spec.base_url,
        "history_days": spec.history_days(),
        "poll_interval_secs": spec.poll_interval_secs(),
        "timezone": spec.timezone,
        "sync_disabled": spec.sync_disabled,
        "webhook_secrets": spec.webhook_secrets.len(),
        "generated_webhook_secret": spec.generated_webhook_secret.is_some(),
        "state": if spec.disconnected.is_some() { "disconnected" } else { "active" },
        "disconnected": spec.disconnected,
        "webhooks": s.engine.webhooks_view(spec),
    })
}

/// The connection `id` if the caller may read it, else 404.
fn owned(s: &ApiState, who: &Principal, id: &str) -> Result<ConnectionSpec, ApiError> {
    s.engine
        .connection(id)
        .filter(|c| who.may_read(&c.tenant, &c.id))
        .ok_or(ApiError::NotFound)
}

/// An engine error as answered: 404, 400 with the reason, or 503 (logged).
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(_) => ApiError::NotFound,
            EngineError::Invalid(m) => ApiError::BadRequest(m),
            other => ApiError::unavailable("connections-api", other),
        }
    }
}

/// The connections routes.
pub fn router(engine: Engine, auth: Auth) -> Router {
    Router::new()
        .route("/v1/connections", post(create).get(list))
        .route("/v1/connections/{id}", get(get_one).delete(delete))
        .route("/v1/connections/{id}/resync", post(resync))
        .route("/v1/connections/{id}/reconcile", post(reconcile))
        .route("/v1/connections/{id}/sync-status", get(sync_status))
        .route(
            "/v1/replays",
            post(crate::replays::create).get(crate::replays::list),
        )
        .route("/v1/replays/{id}", get(crate::replays::get_one))
        .route("/v1/replays/{id}/cancel", post(crate::replays::cancel))
        .with_state(ApiState { engine, auth })
}

async fn create(
    State(s): State<ApiState>,
    Caller(who): Caller,
    body: Result<JsonObject<ConnectionSpec>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonObject(mut spec) = body?;
    if !spec.tenant.is_empty() && spec.tenant != who.tenant_id {
        return Err(ApiError::BadRequest(
            "tenant: a connection belongs to the caller's tenant; omit the field".into(),
        ));
    }
    spec.tenant = who.tenant_id.clone();
    if !who.may_read(&who.tenant_id, &spec.id) {
        // checked before the id is looked up, so the answer says nothing about it
        return Err(ApiError::BadRequest(
            "id: this API key is limited to some connections and may create only those".into(),
        ));
    }
    if let Some(existing) = s.engine.connection(&spec.id) {
        if existing.as_requested() == spec {
            return Ok((StatusCode::OK, Json(public(&s, &existing))).into_response());
        }
        return Err(ApiError::Conflict(
            "a connection with this id exists (configured or created earlier); DELETE it first or pick another id".into(),
        ));
    }
    spec.validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let id = spec.id.clone();
    let created = s.engine.upsert_connection(spec.clone()).await?;
    let stored = s.engine.connection(&id).unwrap_or(spec);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(public(&s, &stored))).into_response())
}

async fn list(State(s): State<ApiState>, Caller(who): Caller) -> Json<Value> {
    let data: Vec<Value> = s
        .engine
        .connections()
        .iter()
        .filter(|c| who.may_read(&c.tenant, &c.id))
        .map(|c| public(&s, c))
        .collect();
    Json(json!({"data": data}))
}

async fn get_one(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &who, &id)?;
    Ok(Json(json!({"data": public(&s, &c)})))
}

async fn delete(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&s, &who, &id)?;
    let d = s.engine.delete_connection(&id).await?;
    Ok(match d.subscriptions_error {
        None => StatusCode::NO_CONTENT.into_response(),
        // deleted, but some of ingot's subscriptions may still exist at the 3PA
        Some(e) => (
            StatusCode::OK,
            Json(json!({
                "deleted": true,
                "subscriptions_removed": d.subscriptions_removed,
                "warning": format!("some webhook subscriptions could not be removed from the 3PA (remove them there): {e}"),
            })),
        )
            .into_response(),
    })
}

async fn resync(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&s, &who, &id)?;
    s.engine.resync(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "historical sync restarted"})),
    )
        .into_response())
}

async fn reconcile(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&s, &who, &id)?;
    match s.engine.reconcile_now(&id) {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(json!({ "run": run }))).into_response()),
        // not yet reconcilable (no cursor, not synced): the state, not the request
        Err(EngineError::Invalid(m)) => Err(ApiError::Conflict(m)),
        Err(e) => Err(e.into()),
    }
}

async fn sync_status(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let conn = owned(&s, &who, &id)?;
    let models: serde_json::Map<String, Value> = s
        .engine
        .status(&id)
        .into_iter()
        .map(|(m, st)| {
            (
                m.resource().to_string(),
                serde_json::to_value(st).expect("status serializes"),
            )
        })
        .collect();
    Ok(Json(json!({
        "connection_id": id,
        "connection_state": if conn.disconnected.is_some() { "disconnected" } else { "active" },
        "disconnected": conn.disconnected,
        "models": models,
        "webhooks": s.engine.webhooks_view(&conn),
    })))
}
