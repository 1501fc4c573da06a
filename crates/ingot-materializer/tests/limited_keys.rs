//! A key limited to some connections sees only their records (404 for the rest), through
//! the query API's handlers (no broker: the view is filled directly).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ingot_kafka::Message;
use ingot_materializer::{router, ApiState, Entry, Tenant, View};
use ingot_model::{Model, RecordKey};
use serde_json::{json, Value};
use tower::ServiceExt;

fn order(connection: &str, remote_id: &str, offset: i64) -> (Message, Entry) {
    let key = RecordKey::new(connection, Model::Order, remote_id);
    let value = json!({
        "id": key.record_id(), "remote_id": remote_id, "connection_id": connection,
        "tenant_id": "acme", "provider": "shopify", "remote_deleted": false,
        "remote_updated_at": "2026-01-02T00:00:00Z", "modified_at": "2026-01-03T00:00:00Z",
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

async fn get(app: &axum::Router, key: &str, path: &str) -> (StatusCode, Value) {
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
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_connection_limited_key_sees_only_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open(dir.path()).unwrap();
    view.apply(&[order("shop-1", "1", 0), order("shop-2", "2", 1)])
        .unwrap();
    let tenants = [
        Tenant {
            id: "acme".into(),
            api_keys: vec!["all-key".into()],
            connections: None,
        },
        Tenant {
            id: "acme".into(),
            api_keys: vec![ingot_model::auth::hash_api_key("shop-1-key").into()],
            connections: Some(vec!["shop-1".into()]),
        },
    ];
    let app = router(ApiState::new(view, &tenants));
    let id1 = RecordKey::new("shop-1", Model::Order, "1").record_id();
    let id2 = RecordKey::new("shop-2", Model::Order, "2").record_id();

    let (s, v) = get(&app, "shop-1-key", &format!("/v1/orders/{id1}")).await;
    assert_eq!(
        (s, v["data"]["remote_id"].clone()),
        (StatusCode::OK, json!("1"))
    );
    let (s, _) = get(&app, "shop-1-key", &format!("/v1/orders/{id2}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another connection's record");
    let (s, v) = get(&app, "shop-1-key", "/v1/orders").await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["remote_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1"]);
    let (_, v) = get(&app, "shop-1-key", "/v1/orders?connection_id=shop-2").await;
    assert_eq!(v["data"], json!([]));
    // the unlimited key of the same tenant sees both
    let (_, v) = get(&app, "all-key", "/v1/orders").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (s, _) = get(&app, "all-key", &format!("/v1/orders/{id2}")).await;
    assert_eq!(s, StatusCode::OK);
}
