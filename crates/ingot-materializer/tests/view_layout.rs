//! The view's layout through its public API and the query API's handlers (real RocksDB,
//! no broker: the view is filled directly): responses are byte-identical to building them
//! as JSON values (the previous implementation, kept here as the reference), except that
//! `remote_data` is the 3PA's own text, tenants and
//! connections are isolated by construction, limited keys merge their connections in
//! order, and a view of another format is emptied at open.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ingot_kafka::Message;
use ingot_materializer::{router, ApiState, Entry, Tenant, View};
use ingot_model::{Model, RecordKey};
use serde_json::{json, Value};
use tower::ServiceExt;

fn msg(connection: &str, remote_id: &str, offset: i64, headers: &[(&str, &str)]) -> Message {
    Message {
        topic: Model::Order.normalized_topic(),
        partition: 0,
        offset,
        key: Some(
            RecordKey::new(connection, Model::Order, remote_id)
                .to_string()
                .into_bytes(),
        ),
        value: Some(Vec::new()),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        timestamp_ms: None,
    }
}

fn order(tenant: &str, connection: &str, remote_id: &str, modified: &str) -> Value {
    json!({
        "id": RecordKey::new(connection, Model::Order, remote_id).record_id(),
        "remote_id": remote_id, "connection_id": connection, "tenant_id": tenant,
        "provider": "shopify", "remote_deleted": false, "remote_created_at": null,
        "remote_updated_at": "2026-01-02T00:00:00Z", "modified_at": modified,
        "mapping_version": "shopify/1", "raw_topic": "raw.shopify", "raw_partition": 0,
        "raw_offset": 7, "status": "open", "total": "404.95", "currency": "EUR",
        "note": "naïve 𝄞 \u{2028} \"quoted\" </script>",
        "line_items": [{"name": "Parka", "quantity": 1, "price": "249.00"}],
        "zeta": 1.5e300,
        "remote_data": REMOTE_DATA,
    })
}

/// The 3PA's text of the records' `remote_data`: served as is (spaces, key order and
/// `2.50` included), never through a JSON tree.
const REMOTE_DATA: &str =
    r#"{"id": 820982911946154508, "b": [1, 2.50, "x"], "a": {"z": null, "y": "é"}}"#;

/// The bytes the view serves for `expected` (built by [`present`] as a tree): the same
/// bytes, but `remote_data` as the 3PA's text where the tree re-serialized it.
fn served(expected: &[u8]) -> String {
    let tree: Value = serde_json::from_str(REMOTE_DATA).unwrap();
    String::from_utf8(expected.to_vec())
        .unwrap()
        .replace(&serde_json::to_string(&tree).unwrap(), REMOTE_DATA)
}

/// The previous implementation's record presentation (a `serde_json` tree).
fn present(mut v: Value, include_remote_data: bool) -> Value {
    if let Some(obj) = v.as_object_mut() {
        let raw = obj.remove("remote_data");
        if include_remote_data {
            let parsed = raw
                .and_then(|r| {
                    r.as_str()
                        .map(|s| serde_json::from_str(s).unwrap_or(Value::String(s.to_string())))
                })
                .unwrap_or(Value::Null);
            obj.insert("remote_data".into(), parsed);
        }
    }
    v
}

fn freshness(view: &View) -> Value {
    let mut out = serde_json::Map::new();
    for ((t, p), o) in view.freshness() {
        out.insert(format!("{t}/{p}"), json!(o));
    }
    Value::Object(out)
}

async fn get_bytes(app: &axum::Router, key: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let resp = app
        .clone()
        .oneshot(
            Request::get(path)
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/json"
    );
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

fn tenants() -> Vec<Tenant> {
    vec![
        Tenant {
            id: "acme".into(),
            api_keys: vec!["acme-key".into()],
            connections: None,
        },
        Tenant {
            id: "acme".into(),
            api_keys: vec!["acme-b-key".into()],
            connections: Some(vec!["acme-b".into(), "acme-c".into()]),
        },
        Tenant {
            id: "globex".into(),
            api_keys: vec!["globex-key".into()],
            connections: None,
        },
    ]
}

#[tokio::test]
async fn responses_are_the_bytes_the_json_tree_gave() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open(dir.path()).unwrap();
    let a = order("acme", "acme-a", "1", "2026-01-03T00:00:00Z");
    let mut plain = order("acme", "acme-a", "2", "2026-01-04T00:00:00Z");
    plain.as_object_mut().unwrap().remove("remote_data");
    let mut not_json = order("acme", "acme-a", "3", "2026-01-05T00:00:00Z");
    not_json["remote_data"] = json!("<xml>not json</xml>");
    view.apply(&[
        (msg("acme-a", "1", 0, &[]), Entry::Record(a.clone())),
        (msg("acme-a", "2", 1, &[]), Entry::Record(plain.clone())),
        (msg("acme-a", "3", 2, &[]), Entry::Record(not_json.clone())),
        (
            msg(
                "acme-a",
                "4",
                3,
                &[
                    ("ingot-tenant-id", "acme"),
                    ("ingot-provider", "shopify"),
                    ("ingot-remote-updated-at", "2026-01-06T00:00:00Z"),
                    ("ingot-modified-at", "2026-01-06T00:00:01Z"),
                ],
            ),
            Entry::Tombstone,
        ),
    ])
    .unwrap();
    let app = router(ApiState::new(view.clone(), &tenants()));
    let fresh = freshness(&view);
    assert_eq!(fresh, json!({"normalized.order/0": 4}));
    // read from the memtables (in place), then from files no read has cached yet (the
    // in-memory read says so and the GET reads again on a blocking thread): same bytes
    for phase in ["in memory", "flushed"] {
        if phase == "flushed" {
            view.memory(true).unwrap();
        }
        for (rec, remote) in [(&a, "1"), (&plain, "2"), (&not_json, "3")] {
            let id = RecordKey::new("acme-a", Model::Order, remote).record_id();
            for include in [true, false] {
                let q = if include {
                    "?include_remote_data=true"
                } else {
                    ""
                };
                let (s, body) = get_bytes(&app, "acme-key", &format!("/v1/orders/{id}{q}")).await;
                assert_eq!(s, StatusCode::OK, "{phase}");
                let expected = serde_json::to_vec(
                    &json!({"data": present(rec.clone(), include), "freshness": fresh}),
                )
                .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&body),
                    served(&expected),
                    "{phase}: GET {remote} include_remote_data={include}"
                );
            }
        }
    }
    // the deleted record: 404 on GET, a stub in lists with include_deleted
    let id4 = RecordKey::new("acme-a", Model::Order, "4").record_id();
    let (s, _) = get_bytes(&app, "acme-key", &format!("/v1/orders/{id4}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let stub = json!({
        "id": id4, "remote_id": "4", "connection_id": "acme-a", "tenant_id": "acme",
        "provider": "shopify", "remote_deleted": true,
        "remote_deleted_at": "2026-01-06T00:00:00Z", "modified_at": "2026-01-06T00:00:01Z",
    });
    for include in [false, true] {
        let q = if include {
            "&include_remote_data=true"
        } else {
            ""
        };
        let (s, body) = get_bytes(
            &app,
            "acme-key",
            &format!("/v1/orders?include_deleted=true&limit=3{q}"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let page: Value = serde_json::from_slice(&body).unwrap();
        let data: Vec<Value> = [&a, &plain, &not_json]
            .iter()
            .map(|r| present((*r).clone(), include))
            .collect();
        let expected = serde_json::to_vec(&json!({
            "data": data, "freshness": fresh, "next_cursor": page["next_cursor"],
        }))
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&body), served(&expected));
        let cursor = page["next_cursor"].as_str().expect("a 4th record follows");
        let (_, body) = get_bytes(
            &app,
            "acme-key",
            &format!("/v1/orders?include_deleted=true&limit=3&cursor={cursor}{q}"),
        )
        .await;
        let expected = serde_json::to_vec(&json!({
            "data": [present(stub.clone(), include)], "freshness": fresh, "next_cursor": null,
        }))
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&body), served(&expected));
    }
    // without include_deleted the stub is not listed
    let (_, body) = get_bytes(&app, "acme-key", "/v1/orders?limit=10").await;
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_cursor"], Value::Null);
    // the tools' helper sees the record with remote_data, as served
    assert_eq!(
        view.get(Model::Order, a["id"].as_str().unwrap())
            .unwrap()
            .unwrap(),
        present(a.clone(), true)
    );
}

fn ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["connection_id"].as_str().unwrap(),
                r["remote_id"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn tenants_and_limited_keys_read_only_their_prefixes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open(dir.path()).unwrap();
    // acme: connections a, b, c interleaved in time; globex: many records at the same times
    let mut msgs = Vec::new();
    let mut off = 0;
    for i in 0..12 {
        let conn = ["acme-a", "acme-b", "acme-c"][i % 3];
        let modified = format!("2026-01-03T00:00:{:02}Z", i);
        let r = i.to_string();
        msgs.push((
            msg(conn, &r, off, &[]),
            Entry::Record(order("acme", conn, &r, &modified)),
        ));
        off += 1;
        let g = format!("g{i}");
        msgs.push((
            msg("globex-shop", &g, off, &[]),
            Entry::Record(order("globex", "globex-shop", &g, &modified)),
        ));
        off += 1;
    }
    assert_eq!(view.apply(&msgs).unwrap(), 24);
    let app = router(ApiState::new(view.clone(), &tenants()));

    // the whole tenant, in (modified_at, id) order, paged by 5
    let mut all = Vec::new();
    let mut path = "/v1/orders?limit=5".to_string();
    loop {
        let (s, body) = get_bytes(&app, "acme-key", &path).await;
        assert_eq!(s, StatusCode::OK);
        all.extend(ids(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/orders?limit=5&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12)
        .map(|i| format!("{}/{i}", ["acme-a", "acme-b", "acme-c"][i % 3]))
        .collect();
    assert_eq!(all, expected);

    // the limited key: connections b and c merged in order, across pages of 3
    let mut limited = Vec::new();
    let mut path = "/v1/orders?limit=3".to_string();
    loop {
        let (_, body) = get_bytes(&app, "acme-b-key", &path).await;
        limited.extend(ids(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/orders?limit=3&cursor={c}"),
            None => break,
        }
    }
    let expected_bc: Vec<String> = expected
        .iter()
        .filter(|k| !k.starts_with("acme-a/"))
        .cloned()
        .collect();
    assert_eq!(limited, expected_bc);
    // with a time window and a connection filter
    let (_, body) = get_bytes(
        &app,
        "acme-b-key",
        "/v1/orders?connection_id=acme-c&modified_after=2026-01-03T00:00:02Z&modified_before=2026-01-03T00:00:08Z",
    )
    .await;
    // acme-c holds 2, 5, 8, 11; after :02 and before :08, both exclusive
    assert_eq!(ids(&body), ["acme-c/5"]);
    let (_, body) = get_bytes(&app, "acme-b-key", "/v1/orders?connection_id=acme-a").await;
    assert!(ids(&body).is_empty(), "a connection outside the key's");
    let (_, body) = get_bytes(
        &app,
        "acme-b-key",
        "/v1/orders?connection_id=acme-a&remote_id=0",
    )
    .await;
    assert!(ids(&body).is_empty(), "a point lookup outside the key's");
    let (_, body) = get_bytes(&app, "acme-b-key", "/v1/orders?remote_id=4").await;
    assert_eq!(ids(&body), ["acme-b/4"]);

    // another tenant's ids: 404 on GET, nothing in lists, whatever the filters
    let gid = RecordKey::new("globex-shop", Model::Order, "g1").record_id();
    let (s, _) = get_bytes(&app, "acme-key", &format!("/v1/orders/{gid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for q in [
        "connection_id=globex-shop",
        "connection_id=globex-shop&remote_id=g1",
        "remote_id=g1",
        "include_deleted=true&limit=500",
    ] {
        let (s, body) = get_bytes(&app, "acme-key", &format!("/v1/orders?{q}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            ids(&body).iter().all(|k| k.starts_with("acme-")),
            "{q}: {:?}",
            ids(&body)
        );
    }
    let (_, body) = get_bytes(&app, "globex-key", "/v1/orders?limit=500").await;
    assert_eq!(ids(&body).len(), 12);
    assert!(ids(&body).iter().all(|k| k.starts_with("globex-shop/")));
}

#[tokio::test]
async fn versions_replace_each_other_and_a_tombstone_without_a_tenant_header_stays_put() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open(dir.path()).unwrap();
    let v1 = order("acme", "acme-a", "1", "2026-01-03T00:00:00Z");
    let v2 = order("acme", "acme-a", "1", "2026-01-04T00:00:00Z");
    // two versions in one batch, then one in the next: one index entry, the last version
    view.apply(&[
        (msg("acme-a", "1", 0, &[]), Entry::Record(v1)),
        (msg("acme-a", "1", 1, &[]), Entry::Record(v2.clone())),
    ])
    .unwrap();
    // a re-delivered offset is skipped
    assert_eq!(
        view.apply(&[(
            msg("acme-a", "1", 1, &[]),
            Entry::Record(order("acme", "acme-a", "1", "2027-01-01T00:00:00Z"))
        )])
        .unwrap(),
        0
    );
    let app = router(ApiState::new(view.clone(), &tenants()));
    let (_, body) = get_bytes(&app, "acme-key", "/v1/orders?include_deleted=true").await;
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["data"], json!([present(v2, false)]));
    // a tombstone without the tenant header stays in the record's tenant
    view.apply(&[(msg("acme-a", "1", 2, &[]), Entry::Tombstone)])
        .unwrap();
    let (_, body) = get_bytes(&app, "acme-key", "/v1/orders?include_deleted=true").await;
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["remote_deleted"], true);
    let (_, body) = get_bytes(&app, "acme-key", "/v1/orders").await;
    assert!(ids(&body).is_empty());
    assert_eq!(
        view.next_offset(&Model::Order.normalized_topic(), 0),
        Some(3)
    );
}

#[test]
fn a_view_of_another_format_is_emptied_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        // the previous layout: records by <model>/<id>, one index per model, offsets
        let s =
            ingot_store::Store::open(dir.path(), &["records", "by_modified", "offsets"]).unwrap();
        let mut b = ingot_store::Batch::new();
        b.put(
            "records",
            b"order/x".to_vec(),
            br#"{"tenant_id":"acme"}"#.to_vec(),
        );
        b.put(
            "offsets",
            ingot_store::offset_key("normalized.order", 0),
            ingot_store::encode_offset(41),
        );
        s.write(b).unwrap();
    }
    let view = View::open(dir.path()).unwrap();
    assert_eq!(
        view.next_offset("normalized.order", 0),
        None,
        "the offsets went with the old records: the materializer reads from the beginning"
    );
    view.apply(&[(
        msg("acme-a", "1", 0, &[]),
        Entry::Record(order("acme", "acme-a", "1", "2026-01-03T00:00:00Z")),
    )])
    .unwrap();
    drop(view);
    let view = View::open(dir.path()).unwrap();
    assert_eq!(
        view.next_offset("normalized.order", 0),
        Some(1),
        "same format: kept"
    );
    let id = RecordKey::new("acme-a", Model::Order, "1").record_id();
    assert!(view.get(Model::Order, &id).unwrap().is_some());
}
