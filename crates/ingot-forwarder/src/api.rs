//! The endpoints API (`Authorization: Bearer <api key>`, tenant-scoped: another tenant's
//! endpoint is a 404):
//! - `POST /v1/webhook-endpoints` `{"url", "events"?, "connection_ids"?, "description"?}` →
//!   201 with the endpoint and its `secret` (shown only here and on rotation);
//! - `GET /v1/webhook-endpoints` → `{"data": [...]}`; `GET|PATCH|DELETE
//!   /v1/webhook-endpoints/{id}` (PATCH: `url`, `events`, `connection_ids`, `description`,
//!   `status` `enabled|disabled`; re-enabling resumes the paused deliveries);
//! - `POST /v1/webhook-endpoints/{id}/rotate-secret` → `{"secret", "previous_secret_expires_at"}`;
//!   the previous secret keeps signing until then;
//! - `GET /v1/webhook-endpoints/{id}/deliveries?status=pending|delivered|failed&limit=1..100&cursor=`
//!   → `{"data": [...], "next_cursor"}`, newest first, each with its attempts;
//! - `POST /v1/webhook-endpoints/{id}/replay` `{"since", "until"}` (RFC 3339, `until`
//!   exclusive, default now) → 202 `{"replayed": n}`;
//! - `POST /v1/webhook-endpoints/{id}/test` → a signed `ping` sent at once → 200
//!   `{"message_id", "delivered", "status_code", "latency_ms", "error"}`.

use crate::endpoints::{validate_event_pattern, Endpoint, EndpointStatus, SigningSecret};
use crate::engine::{blocking, replay, send_test, Shared};
use crate::http::check_url_resolving;
use crate::sign::generate_secret;
use crate::store::{Delivery, DeliveryStatus};
use crate::ForwarderError;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use ingot_http::{ApiError, Caller, JsonObject};
use ingot_model::auth::{Auth, Principal};
use ingot_model::Secret;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The router's state: the forwarder's shared parts (`Arc<Shared>` is not a local type,
/// so the `FromRef` impls that [`Caller`] and `State<Arc<Shared>>` need are on this wrapper).
#[derive(Clone)]
struct ApiState(Arc<Shared>);

impl FromRef<ApiState> for Auth {
    fn from_ref(s: &ApiState) -> Auth {
        s.0.auth.clone()
    }
}

impl FromRef<ApiState> for Arc<Shared> {
    fn from_ref(s: &ApiState) -> Arc<Shared> {
        s.0.clone()
    }
}

type St = State<Arc<Shared>>;

/// A storage failure: 503 `storage unavailable, retry` (logged).
fn internal(e: ForwarderError) -> ApiError {
    ApiError::unavailable("webhook-endpoints-api", e)
}

/// The endpoint `id` if the caller may see it, else 404.
fn owned(s: &Shared, who: &Principal, id: &str) -> Result<Endpoint, ApiError> {
    s.endpoints
        .get(id)
        .filter(|e| who.may_see(&e.tenant_id, e.connection_ids.as_deref()))
        .ok_or(ApiError::NotFound)
}

/// An endpoint as the API shows it (no secrets).
fn public(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "connection_ids": e.connection_ids,
        "description": e.description,
        "status": e.status,
        "disabled_reason": e.disabled_reason,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    })
}

fn delivery_view(d: &Delivery) -> Value {
    json!({
        "id": d.seq.to_string(),
        "message_id": d.message_id,
        "event_type": d.event_type,
        "record_id": d.record_id,
        "version": d.version,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": (d.status == DeliveryStatus::Pending)
            .then(|| chrono::DateTime::from_timestamp_millis(d.next_attempt_ms))
            .flatten()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "created_at": d.created_at,
        "finished_at": d.finished_at,
        "replay": d.replay,
    })
}

/// The endpoints routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/webhook-endpoints", post(create).get(list))
        .route(
            "/v1/webhook-endpoints/{id}",
            get(get_one).patch(patch).delete(delete),
        )
        .route("/v1/webhook-endpoints/{id}/rotate-secret", post(rotate))
        .route("/v1/webhook-endpoints/{id}/deliveries", get(deliveries))
        .route("/v1/webhook-endpoints/{id}/replay", post(replay_range))
        .route("/v1/webhook-endpoints/{id}/test", post(test))
        .with_state(ApiState(shared))
}

/// Every route above, as `(method, path)`: kept in step with `openapi.json` by a test.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/webhook-endpoints"),
    ("get", "/v1/webhook-endpoints"),
    ("get", "/v1/webhook-endpoints/{id}"),
    ("patch", "/v1/webhook-endpoints/{id}"),
    ("delete", "/v1/webhook-endpoints/{id}"),
    ("post", "/v1/webhook-endpoints/{id}/rotate-secret"),
    ("get", "/v1/webhook-endpoints/{id}/deliveries"),
    ("post", "/v1/webhook-endpoints/{id}/replay"),
    ("post", "/v1/webhook-endpoints/{id}/test"),
];

#[cfg(test)]
mod tests {
    #[test]
    fn openapi_lists_every_route() {
        let doc = crate::openapi_paths();
        let paths = doc["paths"].as_object().unwrap();
        let mut listed = 0;
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                assert!(
                    super::ROUTES.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} documented but not routed"
                );
                listed += 1;
            }
        }
        assert_eq!(listed, super::ROUTES.len(), "every route is documented");
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    connection_ids: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

/// Validates events and connections against the caller; returns the values to store.
/// Connections one endpoint may name in its filter.
pub const MAX_CONNECTION_IDS: usize = 1000;

fn check_filters(
    who: &Principal,
    events: Option<Vec<String>>,
    connection_ids: Option<Vec<String>>,
) -> Result<(Vec<String>, Option<Vec<String>>), ApiError> {
    let events = events.unwrap_or_else(|| vec!["*".to_string()]);
    if events.is_empty() {
        return Err(ApiError::BadRequest(
            "events: give at least one event type, or omit it for all".into(),
        ));
    }
    for e in &events {
        validate_event_pattern(e).map_err(ApiError::BadRequest)?;
    }
    // the forwarder matches every change against these lists: each item once
    let events = ingot_http::each_once(events);
    let connection_ids = connection_ids.map(ingot_http::each_once);
    if let Some(c) = connection_ids
        .as_ref()
        .filter(|c| c.len() > MAX_CONNECTION_IDS)
    {
        return Err(ApiError::BadRequest(format!(
            "connection_ids: {} connections; at most {MAX_CONNECTION_IDS} (omit it for all)",
            c.len()
        )));
    }
    // a key limited to some connections subscribes only to those
    let connection_ids = match (&who.connections, connection_ids) {
        (None, c) => c,
        (Some(allowed), None) => {
            let mut v: Vec<String> = allowed.iter().cloned().collect();
            v.sort();
            Some(v)
        }
        (Some(allowed), Some(c)) => {
            if c.iter().any(|x| !allowed.contains(x)) {
                // the id is not echoed: the answer says nothing about connections the
                // key may not read (as for replays)
                return Err(ApiError::BadRequest(
                    "connection_ids: this API key may not read one of these connections".into(),
                ));
            }
            Some(c)
        }
    };
    Ok((events, connection_ids))
}

async fn create(
    State(s): St,
    Caller(who): Caller,
    body: Result<JsonObject<CreateBody>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonObject(b) = body?;
    check_url_resolving(&b.url, s.cfg.allow_insecure_urls)
        .await
        .map_err(ApiError::BadRequest)?;
    let (events, connection_ids) = check_filters(&who, b.events, b.connection_ids)?;
    let now = ingot_model::format_utc(&Utc::now());
    let secret = generate_secret();
    let e = Endpoint {
        id: format!("ep_{}", uuid::Uuid::new_v4().simple()),
        tenant_id: who.tenant_id.clone(),
        url: b.url,
        events,
        connection_ids,
        description: b.description,
        status: EndpointStatus::Enabled,
        disabled_reason: None,
        secrets: vec![SigningSecret {
            secret: Secret::new(secret.clone()),
            expires_at: None,
        }],
        created_at: now.clone(),
        updated_at: now,
    };
    let _g = s.endpoints.lock().await;
    s.endpoints.put(&e.id, Some(&e)).await.map_err(internal)?;
    let mut v = public(&e);
    v["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list(State(s): St, Caller(who): Caller) -> Json<Value> {
    let data: Vec<Value> = s
        .endpoints
        .all()
        .iter()
        .filter(|e| who.may_see(&e.tenant_id, e.connection_ids.as_deref()))
        .map(public)
        .collect();
    Json(json!({"data": data}))
}

async fn get_one(
    State(s): St,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(public(&owned(&s, &who, &id)?)))
}

/// Any subset of the fields; a field given as `null` is a 400 (it would otherwise read as
/// absent and silently keep the old value), except `connection_ids`, where `null` clears
/// the filter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    events: Option<Vec<String>>,
    /// `null` clears the filter (every connection), absent keeps it.
    #[serde(default, with = "double_option")]
    connection_ids: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    status: Option<EndpointStatus>,
}

/// A field that, when present, must hold a value (`null` is refused).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

async fn patch(
    State(s): St,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Result<JsonObject<PatchBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let JsonObject(b) = body?;
    if let Some(u) = &b.url {
        check_url_resolving(u, s.cfg.allow_insecure_urls)
            .await
            .map_err(ApiError::BadRequest)?;
    }
    let _g = s.endpoints.lock().await;
    let mut e = owned(&s, &who, &id)?;
    if b.events.is_some() || b.connection_ids.is_some() {
        let conns = match b.connection_ids {
            Some(c) => c,
            None => e.connection_ids.clone(),
        };
        let events = b.events.or_else(|| Some(e.events.clone()));
        let (ev, c) = check_filters(&who, events, conns)?;
        e.events = ev;
        e.connection_ids = c;
    }
    if let Some(u) = b.url {
        e.url = u;
    }
    if let Some(d) = b.description {
        e.description = Some(d);
    }
    let re_enabled = b.status == Some(EndpointStatus::Enabled) && !e.enabled();
    if let Some(st) = b.status {
        e.status = st;
        e.disabled_reason = match st {
            EndpointStatus::Enabled => None,
            EndpointStatus::Disabled => Some("disabled through the API".into()),
        };
    }
    e.updated_at = ingot_model::format_utc(&Utc::now());
    if re_enabled {
        // a fresh start for the continuous-failure rule
        let store = s.store.clone();
        let ep = id.clone();
        blocking(move || store.clear_health(&ep))
            .await
            .map_err(internal)?;
    }
    s.endpoints.put(&id, Some(&e)).await.map_err(internal)?;
    Ok(Json(public(&e)))
}

async fn delete(
    State(s): St,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _g = s.endpoints.lock().await;
    owned(&s, &who, &id)?;
    s.endpoints.put(&id, None).await.map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    State(s): St,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let _g = s.endpoints.lock().await;
    let mut e = owned(&s, &who, &id)?;
    let now = Utc::now();
    let overlap = chrono::Duration::from_std(crate::config::secs(s.cfg.secret_overlap_secs))
        .unwrap_or(chrono::Duration::hours(24));
    let expires = ingot_model::format_utc(&(now + overlap));
    let mut secrets: Vec<SigningSecret> = e
        .secrets
        .into_iter()
        .filter(|x| x.signs_at(now))
        .map(|mut x| {
            if x.expires_at.is_none() {
                x.expires_at = Some(expires.clone());
            }
            x
        })
        .collect();
    let secret = generate_secret();
    secrets.insert(
        0,
        SigningSecret {
            secret: Secret::new(secret.clone()),
            expires_at: None,
        },
    );
    e.secrets = secrets;
    e.updated_at = ingot_model::format_utc(&now);
    s.endpoints.put(&id, Some(&e)).await.map_err(internal)?;
    Ok(Json(
        json!({"id": id, "secret": secret, "previous_secret_expires_at": expires}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn deliveries(
    State(s): St,
    Caller(who): Caller,
    Path(id): Path<String>,
    q: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    // the endpoint before the parameters: another tenant's id is a 404 whatever the query
    owned(&s, &who, &id)?;
    let Query(q) = q?;
    let status = match q.status.as_deref().map(|x| (x, DeliveryStatus::parse(x))) {
        None => None,
        Some((_, Some(st))) => Some(st),
        Some((x, None)) => {
            return Err(ApiError::BadRequest(format!(
                "status: {x:?} is not pending, delivered or failed"
            )))
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit: must be between 1 and 100".into(),
        ));
    }
    let before = match q.cursor.as_deref().map(str::parse::<u64>) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => {
            return Err(ApiError::BadRequest(
                "cursor: not a cursor this API returned".into(),
            ))
        }
    };
    let store = s.store.clone();
    let (data, next) = blocking(move || {
        store.list(&id, before, limit, 10_000, |d| {
            status.is_none_or(|st| d.status == st)
        })
    })
    .await
    .map_err(internal)?;
    Ok(Json(json!({
        "data": data.iter().map(delivery_view).collect::<Vec<_>>(),
        "next_cursor": next.map(|n| n.to_string()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    since: String,
    #[serde(default)]
    until: Option<String>,
}

async fn replay_range(
    State(s): St,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Result<JsonObject<ReplayBody>, ApiError>,
) -> Result<Response, ApiError> {
    let e = owned(&s, &who, &id)?;
    let JsonObject(b) = body?;
    let time = |name: &str, v: &str| {
        ingot_model::parse_time(v, false).map_err(|_| {
            ApiError::BadRequest(format!("{name}: expected an RFC 3339 time, got {v:?}"))
        })
    };
    let since = time("since", &b.since)?;
    let until = b
        .until
        .as_deref()
        .map(|u| time("until", u))
        .transpose()?
        .unwrap_or_else(Utc::now);
    if until <= since {
        return Err(ApiError::BadRequest("until: must be after since".into()));
    }
    let n = replay(&s, &e, since, until).await.map_err(internal)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"replayed": n}))).into_response())
}

async fn test(
    State(s): St,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = owned(&s, &who, &id)?;
    let (message_id, res) = send_test(&s, &e).await;
    Ok(Json(json!({
        "message_id": message_id,
        "delivered": res.success(),
        "status_code": res.status,
        "latency_ms": res.latency.as_millis() as u64,
        "error": res.error,
    })))
}
