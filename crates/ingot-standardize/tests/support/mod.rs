//! Shared by the golden tests: where the shared fixtures are, raw events, golden files.
#![allow(dead_code)]

use ingot_model::{RawEvent, RecordData};
use ingot_standardize::{Outcome, StandardizeError, Standardized};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The shared fixtures folder (`None` when absent outside CI; a failure when `CI=true`):
/// the one rule of `ingot_testkit::fixtures`.
pub fn fixtures_dir() -> Option<PathBuf> {
    ingot_testkit::fixtures::fixtures_dir()
}

pub fn read_fixture(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("read fixture {rel}: {e}"))
}

/// A raw event as ingest would write it.
pub fn raw_event(provider: &str, topic: &str, payload: Vec<u8>) -> RawEvent {
    RawEvent {
        event_id: "evt-1".into(),
        tenant_id: "acme".into(),
        connection_id: "conn-1".into(),
        provider: provider.into(),
        topic: topic.into(),
        source: "webhook".into(),
        api_version: None,
        received_at: "2026-01-01T00:00:00Z".into(),
        triggered_at: None,
        payload,
    }
}

/// Compares `actual` with the reviewed golden file `tests/golden/<name>.json`.
/// This package's directory: the one `cargo test` names at run time, else the one it was
/// built in (a test binary that another checkout sharing the target directory built
/// would otherwise read that checkout's files, or none).
pub fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf())
}

/// `INGOT_BLESS=1` writes the file instead (then review the diff like code).
pub fn assert_golden(name: &str, actual: &serde_json::Value) {
    let path = package_dir()
        .join("tests/golden")
        .join(format!("{name}.json"));
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("INGOT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pretty).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); run with INGOT_BLESS=1 and review",
            path.display()
        )
    });
    let expected: serde_json::Value = serde_json::from_str(&expected).unwrap();
    assert_eq!(
        &expected,
        actual,
        "standardized output differs from {}",
        path.display()
    );
}

/// The JSON form of a standardize result that golden files hold.
pub fn outcome_json(r: Result<Outcome, StandardizeError>) -> Value {
    match r {
        Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            remote_created_at,
            remote_updated_at,
            data,
        })) => json!({
            "kind": "upsert",
            "remote_id": remote_id,
            "remote_created_at": remote_created_at.map(|t| ingot_model::format_utc(&t)),
            "remote_updated_at": ingot_model::format_utc(&remote_updated_at),
            "data": data.to_json(),
        }),
        Ok(Outcome::Record(Standardized::Delete {
            model,
            remote_id,
            deleted_at,
        })) => json!({
            "kind": "delete",
            "model": model.as_str(),
            "remote_id": remote_id,
            "deleted_at": ingot_model::format_utc(&deleted_at),
        }),
        Ok(Outcome::Skip(reason)) => json!({ "skip": reason }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// The parts of an upsert (remote id, created, updated as RFC 3339 UTC, data); panics otherwise.
pub fn upsert(
    r: Result<Outcome, StandardizeError>,
) -> (String, Option<String>, String, RecordData) {
    match r {
        Ok(Outcome::Record(Standardized::Upsert {
            remote_id,
            remote_created_at,
            remote_updated_at,
            data,
        })) => (
            remote_id,
            remote_created_at.map(|t| ingot_model::format_utc(&t)),
            ingot_model::format_utc(&remote_updated_at),
            data,
        ),
        other => panic!("expected an upsert, got {other:?}"),
    }
}
