//! Property tests of the query API's input handling, through its real router over a real
//! RocksDB view: arbitrary cursors and query strings get `200` or `400` with the error
//! envelope — never a panic or a `500` — and paging with any page size returns every
//! record exactly once.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use ingot_kafka::Message;
use ingot_materializer::{router, ApiState, Entry, Tenant, View};
use ingot_model::{Model, RecordKey};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tower::ServiceExt;

/// Cases per property (`PROPTEST_CASES` overrides).
const CASES: u32 = 500;
const RECORDS: usize = 30;

fn order(connection: &str, remote_id: usize, offset: i64) -> (Message, Entry) {
    let remote_id = remote_id.to_string();
    let key = RecordKey::new(connection, Model::Order, &remote_id);
    // a few records share one modified_at: the cursor must order ties by id
    let modified = format!("2026-01-03T00:00:{:02}Z", offset / 3);
    let value = json!({
        "id": key.record_id(), "remote_id": remote_id, "connection_id": connection,
        "tenant_id": "acme", "provider": "shopify", "remote_deleted": false,
        "remote_updated_at": "2026-01-02T00:00:00Z", "modified_at": modified,
        "status": "open",
    });
    let m = Message {
        topic: Model::Order.normalized_topic(),
        partition: 0,
        offset,
        key: Some(key.to_string().into_bytes()),
        value: Some(Vec::new()),
        headers: Vec::new(),
        timestamp_ms: None,
    };
    (m, Entry::Record(value))
}

struct Api {
    app: axum::Router,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Api {
        Api::with_scan_limit(ingot_materializer::MAX_SCAN)
    }

    fn with_scan_limit(rows: usize) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let view = View::open(dir.path()).unwrap().with_scan_limit(rows);
        let records: Vec<_> = (0..RECORDS)
            .map(|i| order(if i % 2 == 0 { "shop-1" } else { "shop-2" }, i, i as i64))
            .collect();
        view.apply(&records).unwrap();
        let tenants = [Tenant {
            id: "acme".into(),
            api_keys: vec!["k".into()],
            connections: None,
        }];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Api {
            app: router(ApiState::new(view, &tenants)),
            rt,
            _dir: dir,
        }
    }

    fn get(&self, path_and_query: &str) -> (StatusCode, Value) {
        self.rt.block_on(async {
            let resp = self
                .app
                .clone()
                .oneshot(
                    Request::get(path_and_query)
                        .header("authorization", "Bearer k")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }
}

/// Every byte but unreserved ones as `%XX`.
fn pct(s: &[u8]) -> String {
    s.iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn cursor_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // anything at all
        proptest::collection::vec(any::<u8>(), 0..80),
        // base64 of anything
        proptest::collection::vec(any::<u8>(), 0..60).prop_map(|b| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(b)
                .into_bytes()
        }),
        // well-formed cursors with hostile parts
        (any::<i64>(), ".{0,40}").prop_map(|(n, id)| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{n}:{id}"))
                .into_bytes()
        }),
        (".{0,20}", ".{0,20}").prop_map(|(n, id)| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{n}:{id}"))
                .into_bytes()
        }),
    ]
}

fn ok_or_400(status: StatusCode, body: &Value) -> Result<(), TestCaseError> {
    match status {
        StatusCode::OK => prop_assert!(body["data"].is_array(), "{body}"),
        StatusCode::BAD_REQUEST => prop_assert!(body["error"].is_string(), "{body}"),
        other => prop_assert!(false, "status {other}: {body}"),
    }
    Ok(())
}

#[test]
fn arbitrary_cursors_get_200_or_400() {
    let api = Api::new();
    proptest!(ProptestConfig::with_cases(CASES), |(c in cursor_text(), connection in any::<bool>())| {
        let filter = if connection { "&connection_id=shop-1" } else { "" };
        let (s, body) = api.get(&format!("/v1/orders?cursor={}{filter}", pct(&c)));
        ok_or_400(s, &body)?;
    });
}

#[test]
fn arbitrary_query_strings_get_200_or_400() {
    let api = Api::new();
    let names = prop_oneof![
        Just("cursor"),
        Just("limit"),
        Just("connection_id"),
        Just("remote_id"),
        Just("modified_after"),
        Just("modified_before"),
        Just("remote_updated_after"),
        Just("remote_updated_before"),
        Just("include_deleted"),
        Just("include_remote_data"),
        Just("nonsense"),
    ];
    let pairs =
        proptest::collection::vec((names, proptest::collection::vec(any::<u8>(), 0..30)), 0..6);
    proptest!(ProptestConfig::with_cases(CASES), |(pairs in pairs)| {
        let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", pct(v))).collect();
        let (s, body) = api.get(&format!("/v1/orders?{}", q.join("&")));
        ok_or_400(s, &body)?;
    });
}

#[test]
fn paging_with_any_page_size_returns_every_record_once() {
    let api = Api::new();
    proptest!(ProptestConfig::with_cases(64), |(limit in 1usize..=40, connection in any::<bool>())| {
        let filter = if connection { "&connection_id=shop-1" } else { "" };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..=RECORDS {
            let c = cursor.as_deref().map(|c| format!("&cursor={}", pct(c.as_bytes()))).unwrap_or_default();
            let (s, body) = api.get(&format!("/v1/orders?limit={limit}{filter}{c}"));
            prop_assert_eq!(s, StatusCode::OK, "{}", body);
            for r in body["data"].as_array().unwrap() {
                seen.push(r["remote_id"].as_str().unwrap().to_string());
            }
            cursor = body["next_cursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        prop_assert!(cursor.is_none(), "paging did not end");
        let unique: BTreeSet<&String> = seen.iter().collect();
        prop_assert_eq!(unique.len(), seen.len(), "a record came twice: {:?}", seen);
        let expected = if connection { RECORDS.div_ceil(2) } else { RECORDS };
        prop_assert_eq!(seen.len(), expected);
    });
}

/// Pages whose filters skip most index rows end after the scan limit with what they found
/// and a cursor; paging on still returns every matching record once, and ends.
#[test]
fn a_page_reads_at_most_the_scan_limit_and_paging_still_finds_every_record() {
    const SCAN: usize = 7;
    let api = Api::with_scan_limit(SCAN);
    for (filter, expected) in [
        ("&remote_id=17", vec!["17".to_string()]),
        ("&remote_id=no-such-order", vec![]),
        (
            "&connection_id=shop-2",
            (0..RECORDS)
                .filter(|i| i % 2 == 1)
                .map(|i| i.to_string())
                .collect(),
        ),
        ("", (0..RECORDS).map(|i| i.to_string()).collect()),
    ] {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        loop {
            pages += 1;
            assert!(pages <= RECORDS + 1, "{filter}: paging did not end");
            let c = cursor
                .as_deref()
                .map(|c| format!("&cursor={}", pct(c.as_bytes())))
                .unwrap_or_default();
            let (s, body) = api.get(&format!("/v1/orders?limit=500{filter}{c}"));
            assert_eq!(s, StatusCode::OK, "{body}");
            let data = body["data"].as_array().unwrap();
            assert!(
                data.len() <= SCAN,
                "{filter}: {} records from {SCAN} rows",
                data.len()
            );
            seen.extend(
                data.iter()
                    .map(|r| r["remote_id"].as_str().unwrap().to_string()),
            );
            cursor = body["next_cursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(sorted, want, "{filter}");
        // every page but the last read SCAN rows: the pages it took say how many were read
        let rows = if filter.starts_with("&connection_id") {
            RECORDS.div_ceil(2)
        } else {
            RECORDS
        };
        assert_eq!(
            pages,
            rows / SCAN + 1,
            "{filter}: {pages} pages for {rows} rows"
        );
    }
}
