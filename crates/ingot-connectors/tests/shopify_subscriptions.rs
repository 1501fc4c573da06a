//! The Shopify webhook subscriptions client against the simulator's GraphQL endpoint
//! (real HTTP on 127.0.0.1): create/list/delete round trips in both callback shapes,
//! paging, already-gone deletes, `userErrors`, and the simulator's signed deliveries.

use axum::http::HeaderMap;
use ingot_connectors::http::RetryPolicy;
use ingot_connectors::shopify::subscriptions::{Shape, ShopifySubscriptions, TOPICS};
use ingot_connectors::subscriptions::{subscriptions_for, WebhookSubscriptions};
use ingot_connectors::{ConnectorConfig, ConnectorError};
use ingot_model::Provider;
use ingot_testkit::shopify::{Resource, ShopifySim, ShopifySimConfig};
use ingot_testkit::woocommerce::webhooks::signature;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn config(sim: &ShopifySim, version: Option<&str>) -> ConnectorConfig {
    ConnectorConfig {
        base_url: sim.base_url(),
        access_token: Some(sim.access_token().into()),
        api_version: version.map(str::to_string),
        ..Default::default()
    }
}

fn client(sim: &ShopifySim, version: Option<&str>) -> ShopifySubscriptions {
    ShopifySubscriptions::with_policy(
        config(sim, version),
        RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
        },
    )
}

async fn round_trip(version: Option<&str>, shape: Shape) {
    let sim = ShopifySim::start(ShopifySimConfig::small(5, 10)).await;
    let c = client(&sim, version);
    assert_eq!(c.shape(), shape);
    assert!(c.list().await.unwrap().is_empty());
    let url = "http://127.0.0.1:9/webhooks/shopify/c1";
    let mut made = Vec::new();
    for t in TOPICS {
        let s = c.create(t, url, None).await.unwrap();
        assert!(
            s.id.starts_with("gid://shopify/WebhookSubscription/"),
            "{s:?}"
        );
        assert_eq!((s.topic.as_str(), s.callback_url.as_str()), (*t, url));
        assert!(s.active);
        made.push(s);
    }
    let listed = c.list().await.unwrap();
    assert_eq!(listed, made);
    // the simulator holds exactly these
    let held = sim.subscriptions();
    assert_eq!(held.len(), TOPICS.len());
    assert!(held.iter().all(|s| s.uri == url));
    // enable is a no-op that answers the subscription
    assert_eq!(c.enable(&made[0].id).await.unwrap(), made[0]);
    // delete one; deleting it again (already gone) is a success
    c.delete(&made[0].id).await.unwrap();
    c.delete(&made[0].id).await.unwrap();
    let after = c.list().await.unwrap();
    assert_eq!(after, made[1..].to_vec());
    assert!(matches!(
        c.enable(&made[0].id).await,
        Err(ConnectorError::Rejected { status: 404, .. })
    ));
}

#[tokio::test]
async fn subscriptions_round_trip_with_uri_on_the_pinned_version() {
    round_trip(None, Shape::Uri).await;
}

#[tokio::test]
async fn subscriptions_round_trip_with_endpoint_callback_url_before_2025_10() {
    round_trip(Some("2025-07"), Shape::Endpoint).await;
}

#[tokio::test]
async fn the_uri_shape_is_refused_by_an_older_version_so_the_shape_matters() {
    // selecting `uri` on 2025-07 is an undefinedField error (as the schema answers)
    let sim = ShopifySim::start(ShopifySimConfig::small(5, 10)).await;
    let old = client(&sim, Some("2025-07"));
    old.create("ORDERS_CREATE", "http://127.0.0.1:9/x", None)
        .await
        .unwrap();
    let gql = ingot_connectors::shopify::ShopifyGraphql::new(&config(&sim, Some("2025-07")));
    let r: Result<serde_json::Value, _> = gql
        .execute(
            "{ webhookSubscriptions(first: 5) { nodes { id uri } } }",
            serde_json::json!({}),
        )
        .await;
    assert!(
        matches!(&r, Err(ConnectorError::Rejected { message, .. }) if message.contains("uri")),
        "{r:?}"
    );
}

#[tokio::test]
async fn listing_pages_past_100_subscriptions() {
    let sim = ShopifySim::start(ShopifySimConfig::small(6, 10)).await;
    let c = client(&sim, None);
    for i in 0..130 {
        c.create(
            "ORDERS_UPDATED",
            &format!("http://127.0.0.1:9/cb/{i}"),
            None,
        )
        .await
        .unwrap();
    }
    let listed = c.list().await.unwrap();
    assert_eq!(listed.len(), 130);
    let mut ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 130, "no subscription listed twice");
}

#[tokio::test]
async fn user_errors_are_rejections_with_shopifys_messages() {
    let sim = ShopifySim::start(ShopifySimConfig::small(7, 10)).await;
    let c = client(&sim, None);
    c.create("ORDERS_CREATE", "http://127.0.0.1:9/cb", None)
        .await
        .unwrap();
    match c
        .create("ORDERS_CREATE", "http://127.0.0.1:9/cb", None)
        .await
    {
        Err(ConnectorError::Rejected { status, message }) => {
            assert_eq!(status, 422);
            assert!(message.contains("ORDERS_CREATE"), "{message}");
            assert!(
                message.contains("webhookSubscription.callbackUrl: Address for this topic has already been taken"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    match c.create("ORDERS_CREATE", "not a url", None).await {
        Err(ConnectorError::Rejected {
            status: 422,
            message,
        }) => {
            assert!(message.contains("Address is invalid"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // an unknown topic is a top-level GraphQL error (the enum has no such value)
    match c
        .create("ORDERS_EXPLODED", "http://127.0.0.1:9/cb", None)
        .await
    {
        Err(ConnectorError::Rejected {
            status: 200,
            message,
        }) => {
            assert!(message.contains("ORDERS_EXPLODED"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // a bad token is refused, not read as an empty list
    let mut cfg = config(&sim, None);
    cfg.access_token = Some("wrong".into());
    let bad = ShopifySubscriptions::new(cfg);
    assert!(matches!(
        bad.list().await,
        Err(ConnectorError::Rejected { status: 401, .. })
    ));
    assert_eq!(sim.subscriptions().len(), 1);
}

#[test]
fn the_registry_manages_shopify_connections_of_both_apis() {
    for api in [None, Some("rest"), Some("graphql")] {
        let cfg = ConnectorConfig {
            api: api.map(str::to_string),
            ..Default::default()
        };
        let s = subscriptions_for(Provider::Shopify, cfg).expect("managed");
        assert_eq!(s.topics().len(), TOPICS.len());
        assert!(s.topics().contains(&"APP_UNINSTALLED".to_string()));
        assert!(!s.secret_per_subscription());
    }
}

type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A local callback recording every request.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, b: axum::body::Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((h, b.to_vec()));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

fn h<'a>(m: &'a HeaderMap, k: &str) -> &'a str {
    m.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn the_simulator_delivers_signed_rest_shaped_changes_to_subscribed_topics() {
    let sim = ShopifySim::start(ShopifySimConfig::small(8, 10)).await;
    let (url, got) = receiver().await;
    let c = client(&sim, None);
    for t in TOPICS {
        c.create(t, &url, None).await.unwrap();
    }
    let id = sim.ids(Resource::Orders)[0];
    let t = sim.now();
    assert!(sim.touch(Resource::Orders, id, t));
    sim.deliveries_settled().await;
    let body = sim
        .record_bytes(Resource::Orders)
        .into_iter()
        .find(|(i, _)| *i == id)
        .unwrap()
        .1;
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1, "one subscription of orders/updated");
        let (hd, b) = &got[0];
        assert_eq!(b, body.as_bytes(), "the REST JSON as served");
        assert_eq!(h(hd, "x-shopify-topic"), "orders/updated");
        assert_eq!(
            h(hd, "x-shopify-hmac-sha256"),
            signature("shpss_sim_app_client_secret", b)
        );
        assert_eq!(h(hd, "x-shopify-shop-domain"), "sim.myshopify.com");
        assert_eq!(h(hd, "x-shopify-api-version"), "2025-10");
        assert!(!h(hd, "x-shopify-webhook-id").is_empty());
        assert!(!h(hd, "x-shopify-event-id").is_empty());
        assert!(chrono::DateTime::parse_from_rfc3339(h(hd, "x-shopify-triggered-at")).is_ok());
    }
    // a new record is */create; a delete is */delete with {"id": N}
    let new_id = 9_000_000_001;
    let rec = sim.make_record(Resource::Customers, new_id, t, t);
    assert!(sim.upsert(Resource::Customers, rec));
    assert!(sim.delete(Resource::Products, sim.ids(Resource::Products)[0]));
    sim.deliveries_settled().await;
    let topics: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(hd, _)| h(hd, "x-shopify-topic").to_string())
        .collect();
    assert_eq!(
        topics,
        ["orders/updated", "customers/create", "products/delete"]
    );
    let del = got.lock().unwrap()[2].1.clone();
    let v: serde_json::Value = serde_json::from_slice(&del).unwrap();
    assert!(v["id"].is_u64() && v.as_object().unwrap().len() == 1, "{v}");
    // app/uninstalled reaches its subscription, then the app's subscriptions are gone
    sim.uninstall_app();
    sim.deliveries_settled().await;
    let last = sim.deliveries().last().cloned().unwrap();
    assert_eq!(
        (last.topic.as_str(), last.outcome),
        ("app/uninstalled", Ok(200))
    );
    assert!(sim.subscriptions().is_empty());
    assert!(c.list().await.unwrap().is_empty());
    assert_eq!(sim.deliveries().len(), 4);
}
