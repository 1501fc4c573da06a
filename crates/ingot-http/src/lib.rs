//! What every HTTP surface of ingot shares (query API, connections, replays, webhook
//! endpoints, webhook receiver, rate limits), so that no surface has its own copy:
//!
//! - [`Caller`], the one extractor from `Authorization: Bearer <api key>` to the
//!   [`Principal`] behind it; a missing, malformed or unknown key is rejected with
//!   [`ApiError::Unauthorized`] (401) before any parameter or body is looked at (axum runs
//!   the parts extractors, in argument order, before the body extractor: a handler takes
//!   `Caller` right after `State`);
//! - [`JsonObject`], the one body extractor: a JSON object deserialized into the route's
//!   type, anything else a 400 in the envelope;
//! - [`ApiError`], the one error envelope: every non-2xx answer is `{"error": "<reason>"}`
//!   with `content-type: application/json`.
//!
//! A surface's router state implements `FromRef<State> for Auth`; tenant checks
//! (`Principal::may_read`, `Principal::may_see`) stay with the handlers.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ingot_model::auth::{Auth, Principal};
use std::fmt;
use std::sync::Arc;

/// The reason of [`ApiError::Unauthorized`].
pub const UNAUTHORIZED: &str = "missing or unknown API key";
/// The reason of [`ApiError::Unavailable`]: the client should retry.
pub const UNAVAILABLE: &str = "storage unavailable, retry";
/// The reason of [`ApiError::Internal`].
pub const INTERNAL: &str = "internal error";

/// An error answer of any HTTP surface, written as `{"error": "<reason>"}`
/// (`application/json`) with the variant's status.
///
/// The reasons are for a person to read. They never echo identifiers the caller may not
/// see (another tenant's connection or endpoint is a plain [`ApiError::NotFound`]), and the
/// inner errors of [`ApiError::Unavailable`] and [`ApiError::Internal`] are logged, never
/// answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 401 `missing or unknown API key`: no `Authorization: Bearer <key>` header, or a key
    /// no tenant has.
    Unauthorized,
    /// 404 `not found`: absent, or not the caller's (the same answer, so that the status
    /// says nothing about other tenants).
    NotFound,
    /// 400 with the reason: a parameter or body the caller should change
    /// (`<field>: <what is wrong>` where there is a field).
    BadRequest(String),
    /// 409 with the reason: the request conflicts with the current state (an existing
    /// connection with the same id, a reconciliation before the historical sync).
    Conflict(String),
    /// 429 `rate limit exceeded for this API key: retry after <n> s` with `Retry-After: <n>`
    /// (whole seconds).
    TooManyRequests {
        /// Seconds until the key may call again (`Retry-After`).
        retry_after_secs: u64,
    },
    /// 503 `storage unavailable, retry`: ours, and a retry may help (Kafka, RocksDB). The
    /// `error` is logged at `error` level with its `component`, never answered.
    Unavailable {
        /// The `component` field of the log line (`connections-api`, `replays`, ...).
        component: &'static str,
        /// What failed, for the log.
        error: String,
    },
    /// 500 `internal error`: ours, and a retry will not help. Logged like
    /// [`ApiError::Unavailable`].
    Internal {
        /// The `component` field of the log line.
        component: &'static str,
        /// What failed, for the log.
        error: String,
    },
    /// Any other status with its own reason, for answers the variants above do not name
    /// (the webhook receiver's 401 `invalid signature` and 404 `unknown connection`, a 404
    /// that says which item of a list is missing, a 503 whose cause the handler logged
    /// with more context). Not for 2xx.
    Status(StatusCode, String),
}

impl ApiError {
    /// [`ApiError::Unavailable`] from any error (logged when answered).
    pub fn unavailable(component: &'static str, error: impl fmt::Display) -> Self {
        ApiError::Unavailable {
            component,
            error: error.to_string(),
        }
    }

    /// [`ApiError::Internal`] from any error (logged when answered).
    pub fn internal(component: &'static str, error: impl fmt::Display) -> Self {
        ApiError::Internal {
            component,
            error: error.to_string(),
        }
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Status(status, _) => *status,
        }
    }

    /// The reason answered in `{"error": ...}`.
    pub fn reason(&self) -> String {
        match self {
            ApiError::Unauthorized => UNAUTHORIZED.to_string(),
            ApiError::NotFound => "not found".to_string(),
            ApiError::BadRequest(m) | ApiError::Conflict(m) | ApiError::Status(_, m) => m.clone(),
            ApiError::TooManyRequests { retry_after_secs } => {
                format!("rate limit exceeded for this API key: retry after {retry_after_secs} s")
            }
            ApiError::Unavailable { .. } => UNAVAILABLE.to_string(),
            ApiError::Internal { .. } => INTERNAL.to_string(),
        }
    }
}

/// The reason answered (the inner error of `Unavailable` and `Internal` is not in it).
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.reason())
    }
}

impl std::error::Error for ApiError {}

/// A body that is not the JSON the route takes (syntax, type, missing content type): 400
/// with axum's reason, in the envelope (axum's own answer is `text/plain`, 415 or 422).
impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

/// A query string the route cannot parse: 400 with axum's reason, in the envelope.
impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable { component, error } => {
                tracing::error!(component, error = %error, "unavailable, answered 503");
            }
            ApiError::Internal { component, error } => {
                tracing::error!(component, error = %error, "internal error, answered 500");
            }
            _ => {}
        }
        let mut response = (
            self.status(),
            Json(serde_json::json!({"error": self.reason()})),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

/// The caller of a request: the [`Principal`] behind its `Authorization: Bearer <key>`
/// header (scheme case-insensitive), looked up in the state's [`Auth`].
///
/// Rejects with [`ApiError::Unauthorized`] (401) when the header is missing, is not a
/// bearer key, or holds a key no tenant has. Works with any router state `S` for which
/// `Auth: FromRef<S>`.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Auth::from_ref(state)
            .principal(authorization)
            .map(Caller)
            .ok_or(ApiError::Unauthorized)
    }
}

/// The items of a list a request gave (connection ids, event types, models), each once,
/// in the order first given. Such lists filter every record a stage reads, so a list that
/// repeats itself would cost its length on each of them.
pub fn each_once<T: Eq + std::hash::Hash + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// A request body that is a JSON object (`content-type: application/json`), deserialized
/// into `T`. A handler takes `Result<JsonObject<T>, ApiError>` and applies `?` after its
/// key and path checks.
///
/// Errors, each [`ApiError::BadRequest`] (400) unless said: no JSON content type (axum's
/// reason); a body over the route's limit (413, axum's reason); `the body must be a JSON
/// object` for any other JSON value — serde's derived structs also read a JSON array, by
/// position, which no route documents; a syntax error, and `<path>: <what is wrong>`
/// when the object does not fit `T` (unknown, missing or repeated fields, wrong types),
/// with serde_json's line and column.
pub struct JsonObject<T>(pub T);

/// `content-type` is `application/json` or `application/<anything>+json` (parameters
/// such as `charset` ignored), as axum's `Json` requires.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    let sub = sub.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (sub == "json" || sub.ends_with("+json"))
}

impl<T, S> FromRequest<S> for JsonObject<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::BadRequest(
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::Status(e.status(), e.body_text()))?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
        // axum's reasons, the field's path first (serde_json reports some wrong types,
        // such as `null` for an enum, as syntax)
        let syntax = |e: &dyn std::fmt::Display| {
            ApiError::BadRequest(format!("Failed to parse the request body as JSON: {e}"))
        };
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let t = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            if e.inner().is_data() {
                ApiError::BadRequest(format!(
                    "Failed to deserialize the JSON body into the target type: {e}"
                ))
            } else {
                syntax(&e)
            }
        })?;
        de.end().map_err(|e| syntax(&e))?;
        Ok(JsonObject(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{FromRef, State};
    use axum::routing::get;
    use axum::Router;
    use ingot_model::auth::Tenant;

    #[derive(Clone)]
    struct TestState {
        auth: Auth,
    }

    impl FromRef<TestState> for Auth {
        fn from_ref(s: &TestState) -> Auth {
            s.auth.clone()
        }
    }

    async fn whoami(State(_): State<TestState>, Caller(who): Caller) -> String {
        who.tenant_id.clone()
    }

    /// A body whose fields are all optional: the shape serde also reads from `[]`.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        count: Option<u32>,
    }

    async fn patch(
        Caller(_): Caller,
        body: Result<JsonObject<Patch>, ApiError>,
    ) -> Result<String, ApiError> {
        let JsonObject(p) = body?;
        Ok(format!("{:?} {:?}", p.name, p.count))
    }

    async fn limited(Caller(_): Caller) -> Result<String, ApiError> {
        Err(ApiError::TooManyRequests {
            retry_after_secs: 7,
        })
    }

    /// Serves a router over a real socket; returns its base URL.
    async fn serve() -> String {
        let state = TestState {
            auth: Auth::new(&[Tenant {
                id: "acme".into(),
                api_keys: vec!["k-acme".into()],
                connections: None,
            }]),
        };
        let app = Router::new()
            .route("/whoami", get(whoami))
            .route("/limited", get(limited))
            .route("/patch", axum::routing::patch(patch))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn body(r: reqwest::Response) -> serde_json::Value {
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/json",
            "the envelope is JSON"
        );
        r.json().await.unwrap()
    }

    /// Only a JSON object reaches the handler; everything else is a 400 with its reason.
    #[tokio::test]
    async fn a_body_must_be_a_json_object() {
        let base = serve().await;
        let http = reqwest::Client::new();
        let send = |text: &'static str, json: bool| {
            let mut r = http
                .patch(format!("{base}/patch"))
                .bearer_auth("k-acme")
                .body(text);
            if json {
                r = r.header(header::CONTENT_TYPE, "application/json");
            }
            r.send()
        };
        for (text, answer) in [
            ("{}", "None None"),
            (r#"{"name": "a", "count": 2}"#, r#"Some("a") Some(2)"#),
        ] {
            let r = send(text, true).await.unwrap();
            assert_eq!(r.status(), 200, "{text}");
            assert_eq!(r.text().await.unwrap(), answer);
        }
        for text in ["[]", r#"["a", 2]"#, r#""a""#, "1", "null", "true"] {
            let r = send(text, true).await.unwrap();
            assert_eq!(r.status(), 400, "{text}");
            assert_eq!(
                body(r).await["error"],
                "the body must be a JSON object",
                "{text}"
            );
        }
        for (text, json, reason) in [
            (r#"{"name": 1}"#, true, "name: invalid type: integer `1`"),
            (r#"{"nme": "a"}"#, true, "unknown field `nme`"),
            (
                r#"{"name": "a", "name": "b"}"#,
                true,
                "duplicate field `name`",
            ),
            (r#"{"name": "a"} x"#, true, "trailing characters"),
            (
                r#"{"name": "#,
                true,
                "Failed to parse the request body as JSON",
            ),
            (
                "{}",
                false,
                "Expected request with `Content-Type: application/json`",
            ),
        ] {
            let r = send(text, json).await.unwrap();
            assert_eq!(r.status(), 400, "{text}");
            let got = body(r).await["error"].as_str().unwrap().to_string();
            assert!(got.contains(reason), "{text}: {got}");
        }
    }

    #[tokio::test]
    async fn caller_and_envelope_over_a_socket() {
        let base = serve().await;
        let http = reqwest::Client::new();

        // no header
        let r = http.get(format!("{base}/whoami")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            body(r).await,
            serde_json::json!({"error": "missing or unknown API key"})
        );

        // an unknown key, and a known key under another scheme
        for auth in ["Bearer nope", "Basic k-acme", "k-acme"] {
            let r = http
                .get(format!("{base}/whoami"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{auth}");
            assert_eq!(body(r).await["error"], "missing or unknown API key");
        }

        // the right key: the handler sees the principal
        let r = http
            .get(format!("{base}/whoami"))
            .bearer_auth("k-acme")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "acme");

        // 429 with Retry-After, in the envelope
        let r = http
            .get(format!("{base}/limited"))
            .bearer_auth("k-acme")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            body(r).await,
            serde_json::json!({"error": "rate limit exceeded for this API key: retry after 7 s"})
        );
    }

    #[test]
    fn statuses_and_reasons() {
        let cases = [
            (ApiError::Unauthorized, 401, UNAUTHORIZED),
            (ApiError::NotFound, 404, "not found"),
            (
                ApiError::BadRequest("limit: too big".into()),
                400,
                "limit: too big",
            ),
            (ApiError::Conflict("exists".into()), 409, "exists"),
            (
                ApiError::unavailable("test", "broker down"),
                503,
                UNAVAILABLE,
            ),
            (ApiError::internal("test", "join error"), 500, INTERNAL),
            (
                ApiError::Status(StatusCode::UNAUTHORIZED, "invalid signature".into()),
                401,
                "invalid signature",
            ),
        ];
        for (e, status, reason) in cases {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.reason(), reason, "{e:?}");
            // the inner error is never answered
            assert!(!e.to_string().contains("broker down"));
        }
    }

    #[test]
    fn each_once_keeps_the_first_of_each_in_order() {
        assert_eq!(
            each_once(vec!["b", "a", "b", "c", "a"]),
            vec!["b", "a", "c"]
        );
        assert_eq!(each_once(Vec::<u8>::new()), Vec::<u8>::new());
    }
}
