//! The query API (DESIGN §6), axum.
//!
//! - `GET /v1/{resource}/{id}` → `{"data": {...}, "freshness": {...}}`, 404 if absent,
//!   deleted, or another tenant's;
//! - `GET /v1/{resource}?connection_id=&remote_id=&modified_after=&modified_before=&remote_updated_after=&remote_updated_before=&include_deleted=&include_remote_data=&limit=&cursor=`
//!   → `{"data": [...], "next_cursor": "…" | null, "freshness": {...}}`, ordered by
//!   (`modified_at`, `id`); times are RFC 3339, exclusive bounds; `limit` 1–500 (default 50);
//!   a page reads at most [`crate::MAX_SCAN`] index rows, so with filters that skip most
//!   records it can hold fewer than `limit`, even none, and still a `next_cursor`: page on
//!   until `next_cursor` is null;
//! - `Authorization: Bearer <api key>` (the shared [`Caller`] extractor: 401 before any
//!   parameter is read); a key belongs to one tenant and may be limited to some connections;
//! - errors are the shared envelope [`ApiError`] (`{"error": "<reason>"}`): 400, 401, 404,
//!   500;
//! - `freshness` maps `normalized.<model>/<partition>` to the next offset the view will
//!   apply: the view reflects everything before it.
//!
//! `remote_data` (the 3PA object as received) is omitted unless `include_remote_data=true`.
//!
//! Responses are spliced from the view's stored bytes (records as served, `remote_data`
//! apart, the freshness object built once per applied batch): no JSON tree is built on
//! the query path. The bytes are those `serde_json` writes for the same objects (keys in
//! order), so answers are byte-identical to building them as values.

use crate::view::{ListQuery, View};
use crate::ReadFrom;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use ingot_http::{ApiError, Caller};
use ingot_model::Model;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use ingot_model::auth::Auth;
pub use ingot_model::auth::Tenant;

/// Shared state of the API.
#[derive(Clone)]
pub struct ApiState {
    view: View,
    auth: Auth,
    metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    readiness: Option<Readiness>,
    /// The `/openapi.json` served: this API's, plus what [`ApiState::with_openapi`] added.
    openapi: Arc<String>,
}

/// A readiness check beyond the view's own: `Some(reason)` while not ready.
pub type Readiness = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl ApiState {
    pub fn new(view: View, tenants: &[Tenant]) -> Self {
        ApiState {
            view,
            auth: Auth::new(tenants),
            metrics: None,
            readiness: None,
            openapi: Arc::new(include_str!("openapi.json").to_string()),
        }
    }

    /// Adds the `paths` and `components` of another API served by the same server (e.g.
    /// `ingot_forwarder::openapi_paths()`) to the `/openapi.json` this router serves.
    pub fn with_openapi(mut self, extra: &Value) -> Self {
        let mut doc: Value =
            serde_json::from_str(&self.openapi).expect("the served openapi.json is JSON");
        if let Some(paths) = extra.get("paths").and_then(Value::as_object) {
            if let Some(into) = doc["paths"].as_object_mut() {
                into.extend(paths.clone());
            }
        }
        if let Some(components) = extra.get("components").and_then(Value::as_object) {
            for (section, items) in components {
                let into = &mut doc["components"][section];
                match (into.as_object_mut(), items.as_object()) {
                    (Some(into), Some(items)) => into.extend(items.clone()),
                    _ => *into = items.clone(),
                }
            }
        }
        self.openapi = Arc::new(doc.to_string());
        self
    }

    /// Adds a readiness check (e.g. "the processor makes progress") to `/readyz`.
    pub fn with_readiness(mut self, check: Readiness) -> Self {
        self.readiness = Some(check);
        self
    }

    /// Sets the Prometheus renderer for `/metrics`.
    pub fn with_metrics(mut self, render: Arc<dyn Fn() -> String + Send + Sync>) -> Self {
        self.metrics = Some(render);
        self
    }
}

/// The keys [`Caller`] checks.
impl FromRef<ApiState> for Auth {
    fn from_ref(s: &ApiState) -> Auth {
        s.auth.clone()
    }
}

/// A JSON body made of stored bytes.
fn json_body(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A failure of the view or of its blocking task: 500 `internal error` (logged).
fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("api", e)
}

/// The API's routes (without the webhook receiver, which ingest adds).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/{resource}", get(list))
        .route("/v1/{resource}/{id}", get(get_one))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .with_state(state)
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if !s.view.is_caught_up() {
        return (StatusCode::SERVICE_UNAVAILABLE, "catching up").into_response();
    }
    if let Some(reason) = s.readiness.as_ref().and_then(|check| check()) {
        return (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    match &s.metrics {
        Some(render) => ([("content-type", "text/plain; version=0.0.4")], render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics not enabled").into_response(),
    }
}

async fn openapi(State(s): State<ApiState>) -> Response {
    (
        [("content-type", "application/json")],
        s.openapi.as_str().to_string(),
    )
        .into_response()
}

fn model(resource: &str) -> Result<Model, ApiError> {
    Model::from_resource(resource).ok_or(ApiError::NotFound)
}

#[derive(Deserialize, Default)]
struct GetParams {
    #[serde(default)]
    include_remote_data: bool,
}

async fn get_one(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path((resource, id)): Path<(String, String)>,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let model = model(&resource)?;
    // after the key check, and in the JSON error envelope (axum's own is text/plain)
    let Query(params) = params?;
    let include_remote_data = params.include_remote_data;
    let read = move |view: &View, from: ReadFrom| {
        // the freshness first: the record read after it reflects at least those offsets
        let freshness = view.freshness_json();
        let mut body = Vec::with_capacity(4096);
        body.extend_from_slice(b"{\"data\":");
        if !view.read_one(&who, model, &id, include_remote_data, from, &mut body)? {
            return Ok(None);
        }
        body.extend_from_slice(b",\"freshness\":");
        body.extend_from_slice(&freshness);
        body.push(b'}');
        Ok::<_, crate::ViewError>(Some(body))
    };
    // in place when the rows are in memory (no I/O: a few µs); else on a blocking thread
    let body = match read(&s.view, ReadFrom::Memory) {
        Err(crate::ViewError::Store(ingot_store::StoreError::NotInMemory)) => {
            let view = s.view.clone();
            tokio::task::spawn_blocking(move || read(&view, ReadFrom::Anywhere))
                .await
                .map_err(internal)?
        }
        done => done,
    }
    .map_err(internal)?
    .ok_or(ApiError::NotFound)?;
    Ok(json_body(body))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    connection_id: Option<String>,
    remote_id: Option<String>,
    modified_after: Option<String>,
    modified_before: Option<String>,
    remote_updated_after: Option<String>,
    remote_updated_before: Option<String>,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    include_remote_data: bool,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|s| {
            ingot_model::parse_time(s, false)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("{name}: expected an RFC 3339 time, got {s:?}"))
                })
        })
        .transpose()
}

fn encode_cursor(nanos: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{nanos}:{id}"))
}

fn decode_cursor(c: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::BadRequest("cursor: not a cursor this API returned".into());
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (n, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((n.parse().map_err(|_| bad())?, id.to_string()))
}

async fn list(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(resource): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let model = model(&resource)?;
    let Query(p) = params?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit: must be between 1 and 500".into(),
        ));
    }
    let q = ListQuery {
        tenant_id: who.tenant_id.clone(),
        connection_ids: who.connections.clone(),
        connection_id: p.connection_id.clone(),
        remote_id: p.remote_id.clone(),
        modified_after: time_param("modified_after", &p.modified_after)?,
        modified_before: time_param("modified_before", &p.modified_before)?,
        remote_updated_after: time_param("remote_updated_after", &p.remote_updated_after)?,
        remote_updated_before: time_param("remote_updated_before", &p.remote_updated_before)?,
        include_deleted: p.include_deleted,
        include_remote_data: p.include_remote_data,
        limit,
        after: p.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let view = s.view.clone();
    let body = tokio::task::spawn_blocking(move || {
        let freshness = view.freshness_json();
        let mut body = Vec::with_capacity(4096 * limit.min(100) + 256);
        body.extend_from_slice(b"{\"data\":[");
        let page = view.list(model, &q, &mut body)?;
        body.extend_from_slice(b"],\"freshness\":");
        body.extend_from_slice(&freshness);
        body.extend_from_slice(b",\"next_cursor\":");
        match page.next {
            Some((n, id)) => {
                // base64url: nothing to escape
                body.push(b'"');
                body.extend_from_slice(encode_cursor(n, &id).as_bytes());
                body.push(b'"');
            }
            None => body.extend_from_slice(b"null"),
        }
        body.push(b'}');
        Ok::<_, crate::ViewError>(body)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(json_body(body))
}
