//! A minimal Confluent-compatible schema registry (the REST subset that
//! `schema_registry_converter` and common clients use), stored in the compacted
//! `_schemas` topic: every registration is produced (and acknowledged) there before it is
//! answered, and the registry rebuilds itself from the topic on start.
//!
//! Endpoints (Confluent REST API v1, <https://docs.confluent.io/platform/current/schema-registry/develop/api.html>):
//! `GET /subjects`, `GET /subjects/{s}/versions`, `POST /subjects/{s}/versions`,
//! `GET /subjects/{s}/versions/{v|latest}`, `POST /subjects/{s}` (lookup),
//! `GET /schemas/ids/{id}`, `GET|PUT /config`, `GET|PUT /config/{s}`,
//! `POST /compatibility/subjects/{s}/versions/{v|latest}`.
//! Only AVRO schemas; compatibility levels NONE, BACKWARD (default), FORWARD, FULL and
//! their `_TRANSITIVE` forms, checked with apache-avro's schema-compatibility module.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingot_kafka::{KafkaError, KafkaSettings, Producer, Reader};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

const TOPIC: &str = "_schemas";
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("registry listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("_schemas record at offset {offset} unreadable: {reason}")]
    Corrupt { offset: i64, reason: String },
}

/// One entry of the `_schemas` log (key `schema/<subject>/<version>` or `config/<subject>`,
/// `config/` for the global level).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum LogEntry {
    Schema {
        subject: String,
        version: u32,
        id: u32,
        schema: String,
    },
    Config {
        subject: Option<String>,
        level: String,
    },
}

#[derive(Default)]
struct Registry_ {
    /// id → schema text (as first registered).
    schemas: BTreeMap<u32, String>,
    /// subject → versions (index = version − 1) of schema ids.
    subjects: BTreeMap<String, Vec<u32>>,
    global_level: Option<String>,
    levels: BTreeMap<String, String>,
}

impl Registry_ {
    /// Applies one log entry. A schema entry must name an existing version or the next
    /// one (versions start at 1 and have no gaps); anything else is refused, unapplied.
    fn apply(&mut self, e: LogEntry) -> Result<(), String> {
        match e {
            LogEntry::Schema {
                subject,
                version,
                id,
                schema,
            } => {
                let next = self.subjects.get(&subject).map_or(0, Vec::len) + 1;
                let v = version as usize;
                if v == 0 || v > next {
                    return Err(format!(
                        "subject {subject:?}: version {version} is not between 1 and the next version {next}"
                    ));
                }
                self.schemas.insert(id, schema);
                let versions = self.subjects.entry(subject).or_default();
                if v == next {
                    versions.push(id);
                } else {
                    versions[v - 1] = id;
                }
            }
            LogEntry::Config {
                subject: None,
                level,
            } => self.global_level = Some(level),
            LogEntry::Config {
                subject: Some(s),
                level,
            } => {
                self.levels.insert(s, level);
            }
        }
        Ok(())
    }

    fn level(&self, subject: &str) -> String {
        self.levels
            .get(subject)
            .or(self.global_level.as_ref())
            .cloned()
            .unwrap_or_else(|| "BACKWARD".to_string())
    }

    /// The id of an equal schema (same canonical form), anywhere.
    fn find_id(&self, canonical: &str) -> Option<u32> {
        self.schemas.iter().find_map(|(id, text)| {
            Schema::parse_str(text)
                .ok()
                .filter(|s| s.canonical_form() == canonical)
                .map(|_| *id)
        })
    }
}

/// The registry: state plus the producer that writes its log.
#[derive(Clone)]
pub struct Registry {
    state: Arc<RwLock<Registry_>>,
    producer: Producer,
    /// Serializes registrations (id and version allocation).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

struct ApiError(StatusCode, u32, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.1, "message": self.2});
        (self.0, [("content-type", CONTENT_TYPE)], body.to_string()).into_response()
    }
}

fn ok(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", CONTENT_TYPE)],
        v.to_string(),
    )
        .into_response()
}

fn subject_not_found(s: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        40401,
        format!("Subject '{s}' not found."),
    )
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

const LEVELS: [&str; 7] = [
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

/// Checks `new` against the existing versions (oldest first) under `level`.
fn compatible(level: &str, existing: &[Schema], new: &Schema) -> Result<(), String> {
    let targets: &[Schema] = if level.ends_with("_TRANSITIVE") {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let base = level.trim_end_matches("_TRANSITIVE");
    for old in targets {
        let backward = || {
            SchemaCompatibility::can_read(old, new)
                .map(|_| ())
                .map_err(|e| {
                    format!("new schema cannot read data written with an existing one: {e}")
                })
        };
        let forward = || {
            SchemaCompatibility::can_read(new, old)
                .map(|_| ())
                .map_err(|e| {
                    format!("existing schema cannot read data written with the new one: {e}")
                })
        };
        match base {
            "NONE" => {}
            "BACKWARD" => backward()?,
            "FORWARD" => forward()?,
            _ => {
                backward()?;
                forward()?
            }
        }
    }
    Ok(())
}

impl Registry {
    /// Rebuilds the registry from `_schemas` (which must exist: `topics apply` creates it).
    pub async fn open(settings: &KafkaSettings) -> Result<Self, RegistryError> {
        let mut state = Registry_::default();
        let mut reader = Reader::new(settings, &[(TOPIC.to_string(), 0, 0)])?;
        while let Some(m) = reader.next().await? {
            let Some(value) = m.value else { continue };
            let entry: LogEntry =
                serde_json::from_slice(&value).map_err(|e| RegistryError::Corrupt {
                    offset: m.offset,
                    reason: e.to_string(),
                })?;
            // one bad entry must not make the registry unopenable: skip it, loudly
            if let Err(reason) = state.apply(entry) {
                tracing::error!(component = "schema-registry", offset = m.offset, %reason, "_schemas entry ignored");
            }
        }
        Ok(Registry {
            state: Arc::new(RwLock::new(state)),
            producer: Producer::new(settings)?,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Serves the registry on `127.0.0.1:port` until the task is aborted.
    pub async fn serve(self, port: u16) -> Result<tokio::task::JoinHandle<()>, RegistryError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let app = self.router();
        Ok(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(component = "schema-registry", error = %e, "registry stopped");
            }
        }))
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/subjects", get(list_subjects))
            .route("/subjects/{subject}", post(lookup))
            .route(
                "/subjects/{subject}/versions",
                get(list_versions).post(register),
            )
            .route("/subjects/{subject}/versions/{version}", get(get_version))
            .route("/schemas/ids/{id}", get(get_by_id))
            .route("/config", get(get_global_config).put(put_global_config))
            .route("/config/{subject}", get(get_config).put(put_config))
            .route(
                "/compatibility/subjects/{subject}/versions/{version}",
                post(check_compat),
            )
            .with_state(self)
    }

    async fn append(&self, key: String, entry: LogEntry) -> Result<(), ApiError> {
        let value = serde_json::to_vec(&entry).expect("log entry serializes");
        self.producer
            .send(TOPIC, key.as_bytes(), Some(&value), &[])
            .await
            .map_err(|e| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    50001,
                    format!("Error in the backend data store: {e}"),
                )
            })?;
        // registrations allocate the next version under the write lock, so this holds
        self.state
            .write()
            .expect("registry lock")
            .apply(entry)
            .map_err(|reason| ApiError(StatusCode::INTERNAL_SERVER_ERROR, 50001, reason))?;
        Ok(())
    }

    fn resolve_version(&self, subject: &str, version: &str) -> Result<(u32, u32), ApiError> {
        let st = self.state.read().expect("registry lock");
        let versions = st
            .subjects
            .get(subject)
            .ok_or_else(|| subject_not_found(subject))?;
        let v: usize = if version == "latest" || version == "-1" {
            versions.len()
        } else {
            version.parse().map_err(|_| {
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42202,
                    format!("Invalid version {version}"),
                )
            })?
        };
        match versions.get(v.wrapping_sub(1)) {
            Some(id) => Ok((v as u32, *id)),
            None => Err(ApiError(
                StatusCode::NOT_FOUND,
                40402,
                format!("Version {version} not found."),
            )),
        }
    }

    fn version_json(&self, subject: &str, version: u32, id: u32) -> serde_json::Value {
        let st = self.state.read().expect("registry lock");
        json!({"subject": subject, "version": version, "id": id, "schema": st.schemas.get(&id)})
    }
}

fn parse_schema(body: &SchemaBody) -> Result<Schema, ApiError> {
    if let Some(t) = &body.schema_type {
        if t != "AVRO" {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                42201,
                format!("Unsupported schema type {t}: this registry stores AVRO only"),
            ));
        }
    }
    Schema::parse_str(&body.schema).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {e}"),
        )
    })
}

async fn list_subjects(State(r): State<Registry>) -> Response {
    let st = r.state.read().expect("registry lock");
    ok(json!(st.subjects.keys().collect::<Vec<_>>()))
}

async fn list_versions(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let st = r.state.read().expect("registry lock");
    let versions = st
        .subjects
        .get(&subject)
        .ok_or_else(|| subject_not_found(&subject))?;
    Ok(ok(json!((1..=versions.len()).collect::<Vec<_>>())))
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> Result<Response, ApiError> {
    let schema = parse_schema(&body)?;
    let canonical = schema.canonical_form();
    let _guard = r.write_lock.lock().await;
    let (existing_id, existing, level, next_id, next_version) = {
        let st = r.state.read().expect("registry lock");
        let ids = st.subjects.get(&subject).cloned().unwrap_or_default();
        let existing: Vec<Schema> = ids
            .iter()
            .filter_map(|id| st.schemas.get(id).and_then(|t| Schema::parse_str(t).ok()))
            .collect();
        let in_subject = ids
            .iter()
            .zip(&existing)
            .find(|(_, s)| s.canonical_form() == canonical)
            .map(|(id, _)| *id);
        let next_id = st
            .find_id(&canonical)
            .unwrap_or_else(|| st.schemas.keys().last().copied().unwrap_or(0) + 1);
        (
            in_subject,
            existing,
            st.level(&subject),
            next_id,
            ids.len() as u32 + 1,
        )
    };
    if let Some(id) = existing_id {
        return Ok(ok(json!({"id": id})));
    }
    compatible(&level, &existing, &schema).map_err(|reason| {
        ApiError(StatusCode::CONFLICT, 409, format!("Schema being registered is incompatible with an earlier schema for subject \"{subject}\" ({level}): {reason}"))
    })?;
    r.append(
        format!("schema/{subject}/{next_version}"),
        LogEntry::Schema {
            subject,
            version: next_version,
            id: next_id,
            schema: body.schema,
        },
    )
    .await?;
    Ok(ok(json!({"id": next_id})))
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> Result<Response, ApiError> {
    let canonical = parse_schema(&body)?.canonical_form();
    let found = {
        let st = r.state.read().expect("registry lock");
        let ids = st
            .subjects
            .get(&subject)
            .ok_or_else(|| subject_not_found(&subject))?;
        ids.iter().enumerate().find_map(|(i, id)| {
            st.schemas
                .get(id)
                .and_then(|t| Schema::parse_str(t).ok())
                .filter(|s| s.canonical_form() == canonical)
                .map(|_| (i as u32 + 1, *id))
        })
    };
    match found {
        Some((v, id)) => Ok(ok(r.version_json(&subject, v, id))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            40403,
            "Schema not found".into(),
        )),
    }
}

async fn get_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (v, id) = r.resolve_version(&subject, &version)?;
    Ok(ok(r.version_json(&subject, v, id)))
}

async fn get_by_id(State(r): State<Registry>, Path(id): Path<u32>) -> Result<Response, ApiError> {
    let st = r.state.read().expect("registry lock");
    match st.schemas.get(&id) {
        Some(s) => Ok(ok(json!({"schema": s}))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            40403,
            "Schema not found".into(),
        )),
    }
}

async fn get_global_config(State(r): State<Registry>) -> Response {
    let st = r.state.read().expect("registry lock");
    ok(json!({"compatibilityLevel": st.global_level.clone().unwrap_or_else(|| "BACKWARD".into())}))
}

async fn get_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let st = r.state.read().expect("registry lock");
    match st.levels.get(&subject) {
        Some(l) => Ok(ok(json!({"compatibilityLevel": l}))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )),
    }
}

async fn set_level(
    r: &Registry,
    subject: Option<String>,
    body: ConfigBody,
) -> Result<Response, ApiError> {
    let level = body.compatibility.to_uppercase();
    if !LEVELS.contains(&level.as_str()) {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!("Invalid compatibility level {level}"),
        ));
    }
    let key = format!("config/{}", subject.clone().unwrap_or_default());
    r.append(
        key,
        LogEntry::Config {
            subject,
            level: level.clone(),
        },
    )
    .await?;
    Ok(ok(json!({"compatibility": level})))
}

async fn put_global_config(
    State(r): State<Registry>,
    Json(body): Json<ConfigBody>,
) -> Result<Response, ApiError> {
    set_level(&r, None, body).await
}

async fn put_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Json(body): Json<ConfigBody>,
) -> Result<Response, ApiError> {
    set_level(&r, Some(subject), body).await
}

async fn check_compat(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Json(body): Json<SchemaBody>,
) -> Result<Response, ApiError> {
    let schema = parse_schema(&body)?;
    let (_, id) = r.resolve_version(&subject, &version)?;
    let (old, level) = {
        let st = r.state.read().expect("registry lock");
        let old = st.schemas.get(&id).and_then(|t| Schema::parse_str(t).ok());
        (old, st.level(&subject))
    };
    let old = old.into_iter().collect::<Vec<_>>();
    let level = level.trim_end_matches("_TRANSITIVE").to_string();
    Ok(ok(
        json!({"is_compatible": compatible(&level, &old, &schema).is_ok()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    fn entry(subject: &str, version: u32, id: u32) -> LogEntry {
        LogEntry::Schema {
            subject: subject.into(),
            version,
            id,
            schema: r#""string""#.into(),
        }
    }

    #[test]
    fn log_entries_with_impossible_versions_are_refused_not_panicked_on() {
        let mut st = Registry_::default();
        let err = st.apply(entry("s-value", 0, 1)).unwrap_err();
        assert_eq!(
            err,
            "subject \"s-value\": version 0 is not between 1 and the next version 1"
        );
        // a version far past the end would allocate billions of slots
        let err = st.apply(entry("s-value", u32::MAX, 1)).unwrap_err();
        assert!(err.contains("version 4294967295"), "{err}");
        assert!(
            st.subjects.is_empty() && st.schemas.is_empty(),
            "nothing applied"
        );
        st.apply(entry("s-value", 1, 1)).unwrap();
        st.apply(entry("s-value", 2, 2)).unwrap();
        st.apply(entry("s-value", 2, 3)).unwrap(); // a re-written version replaces its id
        assert_eq!(st.subjects["s-value"], vec![1, 3]);
        assert!(st.apply(entry("s-value", 4, 4)).is_err(), "no gaps");
        assert_eq!(st.subjects["s-value"], vec![1, 3]);
    }

    #[test]
    fn backward_allows_new_optional_field_and_rejects_new_required_field() {
        let v1 = s(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#);
        let v2_ok = s(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":["null","string"],"default":null}]}"#,
        );
        let v2_bad = s(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"string"}]}"#,
        );
        assert!(compatible("BACKWARD", std::slice::from_ref(&v1), &v2_ok).is_ok());
        assert!(compatible("BACKWARD", std::slice::from_ref(&v1), &v2_bad).is_err());
        assert!(compatible("NONE", std::slice::from_ref(&v1), &v2_bad).is_ok());
        // FORWARD: old readers must read new data; dropping a field without default breaks it
        let v2_drop = s(r#"{"type":"record","name":"R","fields":[]}"#);
        assert!(compatible("FORWARD", std::slice::from_ref(&v1), &v2_drop).is_err());
        assert!(compatible("BACKWARD", std::slice::from_ref(&v1), &v2_drop).is_ok());
    }
}
