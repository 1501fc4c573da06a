//! The WooCommerce webhooks client against the simulator's `/wp-json/wc/v3/webhooks`
//! (real HTTP on 127.0.0.1), and the simulator's deliveries and auto-disable.

use ingot_connectors::http::RetryPolicy;
use ingot_connectors::subscriptions::{Subscription, WebhookSubscriptions};
use ingot_connectors::woocommerce::webhooks::{WooCommerceWebhooks, TOPICS};
use ingot_connectors::{ConnectorConfig, ConnectorError};
use ingot_model::Model;
use ingot_testkit::woocommerce::webhooks::signature;
use ingot_testkit::woocommerce::{WooResource, WooSim, WooSimConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn client(sim: &WooSim) -> WooCommerceWebhooks {
    WooCommerceWebhooks::with_policy(
        ConnectorConfig {
            base_url: sim.base_url().to_string(),
            consumer_key: Some(sim.config().consumer_key.clone().into()),
            consumer_secret: Some(sim.config().consumer_secret.clone().into()),
            ..Default::default()
        },
        RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
        },
    )
}

async fn small_sim() -> WooSim {
    WooSim::start(WooSimConfig {
        orders: 3,
        customers: 2,
        products: 2,
        ..WooSimConfig::default()
    })
    .await
}

/// A receiver of deliveries: answers `status` and keeps (headers, body) of each request.
type Seen = Arc<Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

async fn receiver(status: u16) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push((headers, body.to_vec()));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test]
async fn create_list_enable_and_delete_round_trip() {
    let sim = small_sim().await;
    let c = client(&sim);
    assert_eq!(c.topics().len(), TOPICS.len());
    assert_eq!(c.model_of("order.restored"), Some(Model::Order));
    assert_eq!(c.model_of("customer.deleted"), Some(Model::Customer));
    assert_eq!(c.model_of("coupon.created"), None);
    assert!(c.secret_per_subscription());
    assert!(c.list().await.unwrap().is_empty());
    let (url, seen) = receiver(200).await;
    let mut made = Vec::new();
    for t in c.topics() {
        let s = c.create(&t, &url, Some("s3cret")).await.unwrap();
        assert_eq!(
            (s.topic.as_str(), s.callback_url.as_str()),
            (t.as_str(), url.as_str())
        );
        assert!(s.active);
        made.push(s);
    }
    // every creation as `active` pinged the URL with `webhook_id=N`, unsigned
    let pings: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, b)| {
            assert!(h.get("x-wc-webhook-signature").is_none());
            String::from_utf8(b.clone()).unwrap()
        })
        .collect();
    assert_eq!(pings.len(), made.len());
    assert_eq!(pings[0], format!("webhook_id={}", made[0].id));
    // the list pages (11 webhooks, 100 per page) and matches what was created
    let mut listed = c.list().await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    made.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, made);
    // the simulator keeps the secret; the API never returns it
    assert!(sim.webhooks().iter().all(|w| w.secret == "s3cret"));

    // a disabled webhook is enabled again
    let first: u64 = made[0].id.parse().unwrap();
    assert!(sim.set_webhook_status(first, "disabled"));
    let off = c.list().await.unwrap();
    assert!(!off.iter().find(|s| s.id == made[0].id).unwrap().active);
    let on = c.enable(&made[0].id).await.unwrap();
    assert!(on.active, "{on:?}");
    assert!(c.list().await.unwrap().iter().all(|s| s.active));

    // delete removes it; deleting it again (404) is not an error
    c.delete(&made[0].id).await.unwrap();
    c.delete(&made[0].id).await.unwrap();
    assert_eq!(c.list().await.unwrap().len(), made.len() - 1);
    assert!(matches!(
        c.delete("not-a-number").await,
        Err(ConnectorError::Rejected { status: 400, .. })
    ));
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_woocommerce_headers() {
    let sim = small_sim().await;
    let c = client(&sim);
    let (url, seen) = receiver(200).await;
    let sub: Subscription = c.create("order.created", &url, Some("k&y")).await.unwrap();
    c.create("order.deleted", &url, Some("k&y")).await.unwrap();
    seen.lock().unwrap().clear(); // the pings
    let id = sim.create(WooResource::Orders);
    sim.delete(WooResource::Orders, id);
    sim.deliveries_settled().await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let (h, body) = &got[0];
    let hv = |n: &str| h.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(hv("x-wc-webhook-topic"), "order.created");
    assert_eq!(hv("x-wc-webhook-resource"), "order");
    assert_eq!(hv("x-wc-webhook-event"), "created");
    assert_eq!(hv("x-wc-webhook-id"), sub.id);
    assert_eq!(hv("x-wc-webhook-signature"), signature("k&y", body));
    assert_eq!(hv("content-type"), "application/json");
    assert!(hv("x-wc-webhook-source").ends_with('/'));
    assert!(!hv("x-wc-webhook-delivery-id").is_empty());
    let order: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(order["id"], id);
    assert_eq!(got[1].1, format!("{{\"id\":{id}}}").into_bytes());
    assert_eq!(got[1].0.get("x-wc-webhook-topic").unwrap(), "order.deleted");
    // a known HMAC-SHA256 vector, base64 (RFC 4231 style check of the helper)
    assert_eq!(
        signature("key", b"The quick brown fox jumps over the lazy dog"),
        "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
    );
}

#[tokio::test]
async fn repeated_failed_deliveries_disable_the_webhook_as_woocommerce_does() {
    let sim = small_sim().await;
    let c = client(&sim);
    let (url, _seen) = receiver(500).await;
    let sub = c.create("order.updated", &url, Some("s")).await.unwrap();
    let order = sim.records(WooResource::Orders)[0].id;
    // failed_delivery(): the count grows to 6, the 7th failure finds it > 5 and disables
    for i in 1..=6 {
        sim.touch(WooResource::Orders, order);
        sim.deliveries_settled().await;
        let w = &sim.webhooks()[0];
        assert_eq!(
            (w.status.as_str(), w.failure_count),
            ("active", i),
            "after {i}"
        );
    }
    sim.touch(WooResource::Orders, order);
    sim.deliveries_settled().await;
    assert_eq!(sim.webhooks()[0].status, "disabled");
    let listed = c.list().await.unwrap();
    assert!(!listed[0].active, "{listed:?}");
    // a disabled webhook is not delivered to
    let before = sim.deliveries().len();
    sim.touch(WooResource::Orders, order);
    sim.deliveries_settled().await;
    assert_eq!(sim.deliveries().len(), before);
    // re-enabled over REST: the count is not reset, one more failure disables it again
    c.enable(&sub.id).await.unwrap();
    assert_eq!(sim.webhooks()[0].failure_count, 6);
    sim.touch(WooResource::Orders, order);
    sim.deliveries_settled().await;
    assert_eq!(sim.webhooks()[0].status, "disabled");
    // a configurable threshold
    let sim2 = small_sim().await;
    sim2.set_max_delivery_failures(0);
    sim2.fail_deliveries(true);
    client(&sim2)
        .create("order.updated", &url, None)
        .await
        .unwrap();
    let o2 = sim2.records(WooResource::Orders)[0].id;
    sim2.touch(WooResource::Orders, o2);
    sim2.touch(WooResource::Orders, o2);
    sim2.deliveries_settled().await;
    assert_eq!(sim2.webhooks()[0].status, "disabled");
    assert!(sim2.deliveries().iter().all(|d| !d.success));
}

#[tokio::test]
async fn a_refusing_store_is_a_rejection_not_a_retry_loop() {
    let sim = small_sim().await;
    let c = client(&sim);
    sim.reject_webhook_api(Some(403));
    assert!(matches!(
        c.list().await,
        Err(ConnectorError::Rejected { status: 403, .. })
    ));
    assert!(matches!(
        c.create("order.created", "http://127.0.0.1:9/x", None)
            .await,
        Err(ConnectorError::Rejected { status: 403, .. })
    ));
    sim.reject_webhook_api(None);
    // WooCommerce validates topics and URLs
    assert!(matches!(
        c.create("order.exploded", "http://127.0.0.1:9/x", None)
            .await,
        Err(ConnectorError::Rejected { status: 400, .. })
    ));
    assert!(matches!(
        c.create("order.created", "ftp://127.0.0.1/x", None).await,
        Err(ConnectorError::Rejected { status: 400, .. })
    ));
    let bad_auth = WooCommerceWebhooks::new(ConnectorConfig {
        base_url: sim.base_url().to_string(),
        consumer_key: Some("ck_wrong".into()),
        consumer_secret: Some("cs_wrong".into()),
        ..Default::default()
    });
    assert!(matches!(
        bad_auth.list().await,
        Err(ConnectorError::Rejected { status: 401, .. })
    ));
}
