//! The Shopify GraphQL connector against the simulator's `graphql.json` (real HTTP on
//! 127.0.0.1): exact listings, shuffled ties, the cost bucket, throttling, nested variant
//! paging, the deletion feed, and "one record, one content" (every GraphQL node
//! standardizes to exactly what the REST shape of the same record gives).

use chrono::{Duration as ChronoDuration, Utc};
use ingot_connectors::http::RetryPolicy;
use ingot_connectors::shopify::{ShopifyGraphql, ShopifyGraphqlConnector};
use ingot_connectors::{
    connector_for, Connector, ConnectorConfig, ConnectorError, Deletion, RemoteRecord, Window,
};
use ingot_model::{Model, Provider, RawEvent};
use ingot_standardize::{mapping_for, Outcome, Standardized};
use ingot_testkit::shopify::{Resource, ShopifySim, ShopifySimConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const MODELS: [Model; 3] = [Model::Order, Model::Customer, Model::Product];

fn res(model: Model) -> Resource {
    match model {
        Model::Order => Resource::Orders,
        Model::Customer => Resource::Customers,
        Model::Product => Resource::Products,
    }
}

fn standardize(topic: &str, payload: &[u8]) -> Standardized {
    let event = RawEvent {
        event_id: "t".into(),
        tenant_id: "t".into(),
        connection_id: "c1".into(),
        provider: "shopify".into(),
        topic: topic.into(),
        source: "backfill".into(),
        api_version: None,
        received_at: "2030-01-01T00:00:00Z".into(),
        triggered_at: None,
        payload: payload.to_vec(),
    };
    match mapping_for(Provider::Shopify).standardize(&event) {
        Ok(Outcome::Record(s)) => s,
        other => panic!(
            "{topic} {} does not standardize: {other:?}",
            String::from_utf8_lossy(payload)
        ),
    }
}

fn secs(t: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(3),
        timeout: Duration::from_secs(10),
    }
}

fn config(sim: &ShopifySim, page_size: u32) -> ConnectorConfig {
    ConnectorConfig {
        base_url: sim.base_url(),
        access_token: Some(sim.access_token().into()),
        page_size: Some(page_size),
        ..Default::default()
    }
}

fn connector(sim: &ShopifySim, page_size: u32) -> ShopifyGraphqlConnector {
    ShopifyGraphqlConnector::new(config(sim, page_size)).with_retry_policy(fast_policy(8))
}

fn two_years(sim: &ShopifySim) -> Window {
    let now = sim.now();
    Window {
        from: now - ChronoDuration::days(731),
        to: now + ChronoDuration::minutes(1),
    }
}

async fn list_all(
    c: &dyn Connector,
    model: Model,
    window: &Window,
) -> Result<(Vec<RemoteRecord>, usize), ConnectorError> {
    let mut out = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = c.list(model, window, token.as_ref()).await?;
        pages += 1;
        out.extend(page.items);
        match page.next {
            Some(t) => token = Some(t),
            None => return Ok((out, pages)),
        }
    }
}

async fn deletions_all(
    c: &dyn Connector,
    model: Model,
    window: &Window,
) -> Result<Vec<Deletion>, ConnectorError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = c.deletions(model, window, token.as_ref()).await?;
        out.extend(page.items);
        match page.next {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// Each simulator record listed exactly once, in (updated_at, id) order, with the
/// simulator's updated_at, and its GraphQL node standardizes to exactly what its REST
/// bytes give (the whole standardized record).
fn assert_exact(sim: &ShopifySim, model: Model, got: &[RemoteRecord]) {
    let rest: BTreeMap<String, String> = sim
        .record_bytes(res(model))
        .into_iter()
        .map(|(id, b)| (id.to_string(), b))
        .collect();
    let updated: BTreeMap<String, chrono::DateTime<Utc>> = sim
        .updated_at(res(model))
        .into_iter()
        .map(|(id, t)| (id.to_string(), t))
        .collect();
    let rest_topic = format!("{}/rest", res(model).plural());
    let mut seen = BTreeSet::new();
    for r in got {
        assert!(
            seen.insert(r.remote_id.clone()),
            "{model:?} {} listed twice",
            r.remote_id
        );
        let want = rest
            .get(&r.remote_id)
            .unwrap_or_else(|| panic!("{model:?} {} not in the simulator", r.remote_id));
        assert_eq!(r.topic, format!("{}/graphql", res(model).plural()));
        assert_eq!(Some(&r.updated_at), updated.get(&r.remote_id));
        let from_graphql = standardize(&r.topic, &r.payload);
        let from_rest = standardize(&rest_topic, want.as_bytes());
        assert_eq!(
            from_graphql, from_rest,
            "{model:?} {}: GraphQL and REST standardize differently",
            r.remote_id
        );
        assert_eq!(from_graphql.remote_id(), r.remote_id);
    }
    assert_eq!(
        seen.len(),
        rest.len(),
        "{model:?}: listed {} of {}",
        seen.len(),
        rest.len()
    );
    let keys: Vec<(chrono::DateTime<Utc>, u64)> = got
        .iter()
        .map(|r| (r.updated_at, r.remote_id.parse().unwrap_or(0)))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "{model:?} not in (updated_at, id) order"
    );
}

#[tokio::test]
async fn full_listing_returns_exactly_the_simulators_records_with_rest_equal_content() {
    let sim = ShopifySim::start(ShopifySimConfig::small(7, 300)).await;
    let c = connector_for(Provider::Shopify, config(&sim, 250));
    for model in MODELS {
        let (got, pages) = list_all(c.as_ref(), model, &two_years(&sim))
            .await
            .expect("listing");
        assert_exact(&sim, model, &got);
        println!("{model:?}: {} records in {pages} calls", got.len());
    }
    let st = sim.stats();
    assert!(st.graphql_requests > 0);
    assert_eq!(
        st.per_endpoint.get("orders"),
        None,
        "the default must be GraphQL, not REST"
    );
}

#[tokio::test]
async fn rest_stays_selectable() {
    let sim = ShopifySim::start(ShopifySimConfig::small(8, 60)).await;
    let c = connector_for(
        Provider::Shopify,
        ConnectorConfig {
            api: Some("rest".into()),
            ..config(&sim, 50)
        },
    );
    let (got, _) = list_all(c.as_ref(), Model::Order, &two_years(&sim))
        .await
        .expect("listing");
    assert_eq!(got.len(), sim.ids(Resource::Orders).len());
    assert!(got.iter().all(|r| r.topic == "orders/rest"));
    assert_eq!(sim.stats().graphql_requests, 0);
}

async fn tied_shop(n: u64) -> (ShopifySim, chrono::DateTime<Utc>) {
    let sim = ShopifySim::start(ShopifySimConfig::small(21, 400)).await;
    let tie = secs(sim.now() - ChronoDuration::days(3));
    for k in 0..n {
        let id = 5_000_000_000_000 + k * 7919;
        let rec = sim.make_record(Resource::Orders, id, tie - ChronoDuration::days(1), tie);
        assert!(sim.upsert(Resource::Orders, rec));
    }
    (sim, tie)
}

#[tokio::test]
async fn shuffled_ties_are_listed_whole() {
    let (sim, tie) = tied_shop(120).await;
    sim.shuffle_ties(true);
    let c = connector(&sim, 30);
    let (got, calls) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("listing");
    assert_exact(&sim, Model::Order, &got);
    let tied = got.iter().filter(|r| r.updated_at == tie).count();
    assert!(tied >= 120, "{tied} tied records listed");
    println!(
        "graphql ties: {} records ({tied} in one second) in {calls} calls",
        got.len()
    );
}

#[tokio::test]
async fn a_shop_that_never_advances_fails_with_no_progress() {
    let (sim, _) = tied_shop(120).await;
    sim.never_advance(true);
    sim.shuffle_ties(true);
    let c = connector(&sim, 20);
    for model in MODELS {
        let before = sim.stats().graphql_requests;
        let err = match list_all(&c, model, &two_years(&sim)).await {
            Err(e) => e,
            Ok((r, calls)) => panic!("{model:?}: ended with {} records in {calls} calls", r.len()),
        };
        assert!(
            matches!(err, ConnectorError::NoProgress(_)),
            "{model:?}: {err:?}"
        );
        let requests = sim.stats().graphql_requests - before;
        assert!(
            requests <= 10,
            "{model:?}: {requests} requests before failing"
        );
    }
}

#[tokio::test]
async fn the_cost_bucket_is_respected_and_its_rate_used() {
    // a bucket of 1000 points restoring 2000 points/s: a listing of 600 orders needs
    // several buckets' worth
    let sim = ShopifySim::start(ShopifySimConfig {
        graphql_bucket: 1000.0,
        graphql_restore_rate: 2000.0,
        ..ShopifySimConfig::small(15, 300)
    })
    .await;
    let c = std::sync::Arc::new(connector(&sim, 250));
    let w = two_years(&sim);
    let t = Instant::now();
    let tasks: Vec<_> = MODELS
        .into_iter()
        .map(|m| {
            let c = c.clone();
            tokio::spawn(async move { (m, list_all(c.as_ref(), m, &w).await) })
        })
        .collect();
    for task in tasks {
        let (m, r) = task.await.expect("task");
        let (got, _) = r.expect("listing");
        assert_exact(&sim, m, &got);
    }
    let elapsed = t.elapsed().as_secs_f64();
    let st = sim.stats();
    let allowed = 1000.0 + 2000.0 * elapsed;
    let share = st.graphql_cost / allowed;
    let requested_share = st.graphql_requested_cost / allowed;
    let cs = c.client().stats();
    println!(
        "graphql cost: {} requests in {elapsed:.2}s, actual {:.0} points, requested {:.0} points, allowed {:.0} \
         (bucket 1000 + 2000/s): share of the allowed cost rate used {:.1}% (actual) / {:.1}% (requested, \
         what the bucket is charged before the refund); throttled {}; client waited {:?}",
        st.graphql_requests,
        st.graphql_cost,
        st.graphql_requested_cost,
        allowed,
        100.0 * share,
        100.0 * requested_share,
        st.graphql_throttled,
        cs.waited,
    );
    // the cost used never exceeds what the bucket allows (its size plus its restore over
    // the time taken; margin: none, the server refuses anything past it), and the client
    // paced so that at most its first guesses (before an answer told it the bucket) bounced
    assert!(share <= 1.0, "actual share {share}");
    assert!(share >= 0.5, "the pacer wastes the allowed rate: {share}");
    assert!(
        st.graphql_throttled <= 2,
        "{} throttled answers",
        st.graphql_throttled
    );
    assert!(
        st.graphql_requested_cost > 1000.0,
        "the test must exceed one bucket"
    );
}

#[tokio::test]
async fn throttled_answers_are_retried_after_the_documented_wait() {
    // another app drained the bucket: the client's first guess (a full bucket) bounces
    let sim = ShopifySim::start(ShopifySimConfig {
        graphql_bucket: 1000.0,
        graphql_restore_rate: 1000.0,
        ..ShopifySimConfig::small(16, 80)
    })
    .await;
    sim.set_graphql_available(0.0);
    let c = connector(&sim, 250);
    let t = Instant::now();
    let (got, _) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("listing");
    assert_exact(&sim, Model::Order, &got);
    let st = sim.stats();
    println!(
        "throttled answers {} (client saw {}), {} requests in {:?}",
        st.graphql_throttled,
        c.client().stats().throttled,
        st.graphql_requests,
        t.elapsed()
    );
    assert!(
        st.graphql_throttled >= 1 && st.graphql_throttled <= 2,
        "{}",
        st.graphql_throttled
    );
    assert_eq!(c.client().stats().throttled, st.graphql_throttled);
    // the first wait was (requested − 0) / 1000 per s: at least a few hundred ms
    assert!(
        c.client().stats().waited >= Duration::from_millis(150),
        "{:?}",
        c.client().stats().waited
    );
    // a bucket that never restores: every answer THROTTLED; past the budget, RateLimited
    sim.set_graphql_rate_limit(1000.0, 0.0);
    sim.set_graphql_available(0.0);
    let c = ShopifyGraphqlConnector::new(config(&sim, 10)).with_retry_policy(fast_policy(2));
    let err = c
        .list(Model::Customer, &two_years(&sim), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn products_with_more_variants_than_one_page_are_completed() {
    let sim = ShopifySim::start(ShopifySimConfig::small(17, 30)).await;
    let id = sim.ids(Resource::Products)[0];
    let mut p = sim
        .records(Resource::Products)
        .into_iter()
        .next()
        .expect("a product");
    let variants: Vec<serde_json::Value> = (0..130u64)
        .map(|k| {
            serde_json::json!({"id": 44_900_000_000_000u64 + k, "product_id": id, "title": format!("V{k}"),
                "price": "5.50", "sku": format!("SKU-V{k}"), "position": k + 1, "option1": format!("V{k}"),
                "option2": null, "option3": null, "compare_at_price": null, "barcode": null,
                "inventory_quantity": k, "updated_at": p["updated_at"].clone(),
                "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", 44_900_000_000_000u64 + k)})
        })
        .collect();
    p["variants"] = serde_json::Value::Array(variants);
    assert!(sim.upsert(Resource::Products, p));
    let c = connector(&sim, 250);
    let (got, _) = list_all(&c, Model::Product, &two_years(&sim))
        .await
        .expect("listing");
    assert_exact(&sim, Model::Product, &got);
    let big = got
        .iter()
        .find(|r| r.remote_id == id.to_string())
        .expect("listed");
    match standardize(&big.topic, &big.payload) {
        Standardized::Upsert {
            data: ingot_model::RecordData::Product(p),
            ..
        } => {
            assert_eq!(p.variants.len(), 130)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deletions_feed_through_events() {
    let sim = ShopifySim::start(ShopifySimConfig::small(9, 200)).await;
    let victim = sim.ids(Resource::Orders)[3];
    assert!(sim.delete(Resource::Orders, victim));
    let c = connector(&sim, 7);
    let w = two_years(&sim);
    for model in MODELS {
        let got = deletions_all(&c, model, &w).await.expect("deletions");
        let want: Vec<(String, chrono::DateTime<Utc>)> = sim
            .destroy_events(res(model))
            .into_iter()
            .filter(|(_, t)| *t >= secs(w.from) && *t <= w.to)
            .map(|(id, t)| (id.to_string(), t))
            .collect();
        let have: Vec<(String, chrono::DateTime<Utc>)> = got
            .iter()
            .map(|d| (d.remote_id.clone(), d.deleted_at))
            .collect();
        assert_eq!(have, want, "{model:?}");
        for d in &got {
            assert_eq!(d.topic, format!("{}/delete", res(model).plural()));
            assert_eq!(
                d.payload,
                format!("{{\"id\":{}}}", d.remote_id).into_bytes()
            );
        }
    }
    let orders = deletions_all(&c, Model::Order, &w)
        .await
        .expect("deletions");
    assert!(orders.iter().any(|d| d.remote_id == victim.to_string()));
    assert!(
        orders.len() >= 2,
        "the data set has order deletions besides the victim"
    );
}

#[tokio::test]
async fn errors_are_clear_never_panics() {
    let sim = ShopifySim::start(ShopifySimConfig::small(10, 20)).await;
    let bad = ShopifyGraphqlConnector::new(ConnectorConfig {
        access_token: Some("nope".into()),
        ..config(&sim, 10)
    })
    .with_retry_policy(fast_policy(2));
    let err = bad
        .list(Model::Order, &two_years(&sim), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    let client = ShopifyGraphql::new(&config(&sim, 10)).with_retry_policy(fast_policy(2));
    // an unknown field: the simulator's schema check, a GraphQL error
    let err = client
        .execute::<serde_json::Value>(
            "{ orders(first: 1) { nodes { nope } } }",
            serde_json::json!({}),
        )
        .await
        .unwrap_err();
    match err {
        ConnectorError::Rejected { message, .. } => {
            assert!(message.contains("undefinedField"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // a syntax error
    let err = client
        .execute::<serde_json::Value>("{ orders(first: ", serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected { .. }), "{err:?}");
    // data of another shape than asked for
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Wrong {
        shop: String,
    }
    let err = client
        .execute::<Wrong>(
            "{ orders(first: 1) { nodes { id } } }",
            serde_json::json!({}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Malformed(_)), "{err:?}");
    // 5xx past the budget
    sim.fail_next_with_status(5, 503);
    let err = client
        .execute::<serde_json::Value>(
            "{ orders(first: 1) { nodes { id } } }",
            serde_json::json!({}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
}

/// Runs one bulk job to the end: its records and the polls it took.
async fn bulk_all(c: &dyn Connector, model: Model, window: &Window) -> Vec<RemoteRecord> {
    use ingot_connectors::bulk::BulkState;
    let bulk = c.bulk().expect("GraphQL connections have bulk exports");
    let id = bulk.start(model, window).await.unwrap();
    let url = loop {
        match bulk.poll(&id).await.unwrap() {
            BulkState::Running { .. } => tokio::task::yield_now().await,
            BulkState::Completed { url, .. } => break url,
            BulkState::Failed { reason } => panic!("bulk job failed: {reason}"),
        }
    };
    let Some(url) = url else { return Vec::new() };
    let mut reader = bulk.open(model, &url).await.unwrap();
    let mut out = Vec::new();
    loop {
        let batch = reader.next_batch(100).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// A bulk job returns exactly the simulator's records, each standardizing to what its
/// REST shape gives (nested line items, shipping lines, discounts, refund transactions
/// and variants rebuilt from `__parentId`), in far fewer requests than paging; prints
/// both rates (records/s, same run, same simulator).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_exports_hold_exactly_the_listing_with_the_same_content() {
    let sim = ShopifySim::start(ShopifySimConfig::small(31, 600)).await;
    sim.set_read_all_orders(true);
    let c = connector(&sim, 250);
    let w = two_years(&sim);
    for model in MODELS {
        sim.reset_stats();
        let t = Instant::now();
        let (paged, pages) = list_all(&c, model, &w).await.unwrap();
        let paged_secs = t.elapsed().as_secs_f64();
        let paged_requests = sim.stats().graphql_requests;
        let paged_cost = sim.stats().graphql_cost;
        sim.reset_stats();
        let t = Instant::now();
        let bulk = bulk_all(&c, model, &w).await;
        let bulk_secs = t.elapsed().as_secs_f64();
        let bulk_requests = sim.stats().graphql_requests;
        let bulk_cost = sim.stats().graphql_cost;
        assert_exact(&sim, model, &bulk);
        assert_eq!(bulk.len(), paged.len(), "{model:?}");
        assert!(bulk.iter().all(|r| r.topic == paged[0].topic));
        assert!(bulk_requests <= 3, "{model:?}: {bulk_requests} requests");
        println!(
            "figure: {model:?} {} records: bulk {:.0} rec/s in {bulk_requests} GraphQL requests ({bulk_cost} points); paged {:.0} rec/s in {paged_requests} requests, {pages} pages ({paged_cost} points); bulk/paged {:.2}x",
            bulk.len(),
            bulk.len() as f64 / bulk_secs,
            paged.len() as f64 / paged_secs,
            paged_secs / bulk_secs
        );
    }
    // one job at a time per shop (API 2025-10): a second start is refused as a rate limit
    let bulk = c.bulk().unwrap();
    let _running = bulk.start(Model::Order, &w).await.unwrap();
    assert!(matches!(
        bulk.start(Model::Customer, &w).await,
        Err(ConnectorError::RateLimited { .. })
    ));
    assert_eq!(sim.bulk_stats().refused_in_progress, 1);
}
