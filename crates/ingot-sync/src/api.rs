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

use crate::engine::{Engine, EngineError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingot_model::auth::{Auth, Principal};
use ingot_model::ConnectionSpec;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) engine: Engine,
    pub(crate) auth: Auth,
}

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

#[allow(clippy::result_large_err)] // the Err is the ready-made HTTP answer
pub(crate) fn principal(s: &ApiState, headers: &HeaderMap) -> Result<Arc<Principal>, Response> {
    s.auth
        .principal(headers.get("authorization").and_then(|v| v.to_str().ok()))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "missing or unknown API key"))
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

#[allow(clippy::result_large_err)]
fn owned(s: &ApiState, who: &Principal, id: &str) -> Result<ConnectionSpec, Response> {
    s.engine
        .connection(id)
        .filter(|c| who.may_read(&c.tenant, &c.id))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "not found"))
}

fn engine_error(e: EngineError) -> Response {
    match e {
        EngineError::NotFound(_) => error(StatusCode::NOT_FOUND, "not found"),
        EngineError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        other => {
            tracing::error!(component = "connections-api", error = %other, "storage error");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable, retry",
            )
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
    headers: HeaderMap,
    body: Result<Json<ConnectionSpec>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Json(mut spec) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if !spec.tenant.is_empty() && spec.tenant != who.tenant_id {
        return error(
            StatusCode::BAD_REQUEST,
            "tenant: a connection belongs to the caller's tenant; omit the field",
        );
    }
    spec.tenant = who.tenant_id.clone();
    if !who.may_read(&who.tenant_id, &spec.id) {
        // checked before the id is looked up, so the answer says nothing about it
        return error(
            StatusCode::BAD_REQUEST,
            "id: this API key is limited to some connections and may create only those",
        );
    }
    if let Some(existing) = s.engine.connection(&spec.id) {
        if existing.as_requested() == spec {
            return (StatusCode::OK, Json(public(&s, &existing))).into_response();
        }
        return error(
            StatusCode::CONFLICT,
            "a connection with this id exists (configured or created earlier); DELETE it first or pick another id",
        );
    }
    if let Err(e) = spec.validate() {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let id = spec.id.clone();
    match s.engine.upsert_connection(spec.clone()).await {
        Ok(created) => {
            let stored = s.engine.connection(&id).unwrap_or(spec);
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(public(&s, &stored))).into_response()
        }
        Err(e) => engine_error(e),
    }
}

async fn list(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let data: Vec<Value> = s
        .engine
        .connections()
        .iter()
        .filter(|c| who.may_read(&c.tenant, &c.id))
        .map(|c| public(&s, c))
        .collect();
    Json(json!({"data": data})).into_response()
}

async fn get_one(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match owned(&s, &who, &id) {
        Ok(c) => Json(json!({"data": public(&s, &c)})).into_response(),
        Err(r) => r,
    }
}

async fn delete(State(s): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = owned(&s, &who, &id) {
        return r;
    }
    match s.engine.delete_connection(&id).await {
        Ok(d) if d.subscriptions_error.is_none() => StatusCode::NO_CONTENT.into_response(),
        // deleted, but some of ingot's subscriptions may still exist at the 3PA
        Ok(d) => (
            StatusCode::OK,
            Json(json!({
                "deleted": true,
                "subscriptions_removed": d.subscriptions_removed,
                "warning": format!("some webhook subscriptions could not be removed from the 3PA (remove them there): {}", d.subscriptions_error.unwrap_or_default()),
            })),
        )
            .into_response(),
        Err(e) => engine_error(e),
    }
}

async fn resync(State(s): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = owned(&s, &who, &id) {
        return r;
    }
    match s.engine.resync(&id).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "historical sync restarted"})),
        )
            .into_response(),
        Err(e) => engine_error(e),
    }
}

async fn reconcile(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = owned(&s, &who, &id) {
        return r;
    }
    match s.engine.reconcile_now(&id) {
        Ok(run) => (StatusCode::ACCEPTED, Json(json!({ "run": run }))).into_response(),
        Err(EngineError::Invalid(m)) => error(StatusCode::CONFLICT, m),
        Err(e) => engine_error(e),
    }
}

async fn sync_status(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match principal(&s, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let conn = match owned(&s, &who, &id) {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    Json(json!({
        "connection_id": id,
        "connection_state": if conn.disconnected.is_some() { "disconnected" } else { "active" },
        "disconnected": conn.disconnected,
        "models": models,
        "webhooks": s.engine.webhooks_view(&conn),
    }))
    .into_response()
}
