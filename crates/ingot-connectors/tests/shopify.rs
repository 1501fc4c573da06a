//! The Shopify connector against the Shopify simulator (real HTTP on 127.0.0.1).

use chrono::{Duration as ChronoDuration, Utc};
use ingot_connectors::http::RetryPolicy;
use ingot_connectors::shopify::ShopifyConnector;
use ingot_connectors::{
    Connector, ConnectorConfig, ConnectorError, Deletion, RemoteRecord, Window,
};
use ingot_model::{Model, RawEvent};
use ingot_standardize::{mapping_for, Outcome, Standardized};
use ingot_testkit::shopify::{Endpoint, Resource, ShopifySim, ShopifySimConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn res(model: Model) -> Resource {
    match model {
        Model::Order => Resource::Orders,
        Model::Customer => Resource::Customers,
        Model::Product => Resource::Products,
    }
}

/// Runs what the connector emitted through the Shopify mapping (the sync engine's raw
/// event for a polled record or a deletion; `triggered_at` carries the deletion time).
fn standardize(topic: &str, payload: &[u8], triggered_at: Option<String>) -> Standardized {
    let event = RawEvent {
        event_id: "t".into(),
        tenant_id: "t".into(),
        connection_id: "c1".into(),
        provider: "shopify".into(),
        topic: topic.into(),
        source: "backfill".into(),
        api_version: Some(ingot_connectors::shopify::API_VERSION.into()),
        received_at: "2030-01-01T00:00:00Z".into(),
        triggered_at,
        payload: payload.to_vec(),
    };
    match mapping_for(ingot_model::Provider::Shopify).standardize(&event) {
        Ok(Outcome::Record(s)) => s,
        other => panic!(
            "{topic} {} does not standardize: {other:?}",
            String::from_utf8_lossy(payload)
        ),
    }
}

/// Whole seconds: Shopify times have second precision.
fn secs(t: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

const MODELS: [Model; 3] = [Model::Order, Model::Customer, Model::Product];

fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(3),
        timeout: Duration::from_secs(5),
    }
}

fn connector(sim: &ShopifySim, page_size: u32) -> ShopifyConnector {
    ShopifyConnector::new(ConnectorConfig {
        base_url: sim.base_url(),
        access_token: Some(sim.access_token().into()),
        page_size: Some(page_size),
        ..Default::default()
    })
    .with_retry_policy(fast_policy(5))
}

/// Two years and a day back from the simulator's clock to a minute ahead.
fn two_years(sim: &ShopifySim) -> Window {
    let now = sim.now();
    Window {
        from: now - ChronoDuration::days(731),
        to: now + ChronoDuration::minutes(1),
    }
}

async fn list_all(
    c: &ShopifyConnector,
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
    c: &ShopifyConnector,
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

/// The listing holds each simulator record exactly once, with its exact bytes, in
/// (updated_at, id) order.
fn assert_exact(sim: &ShopifySim, model: Model, got: &[RemoteRecord]) {
    let expected: BTreeMap<String, String> = sim
        .record_bytes(res(model))
        .into_iter()
        .map(|(id, b)| (id.to_string(), b))
        .collect();
    let mut seen = BTreeSet::new();
    for r in got {
        assert!(
            seen.insert(r.remote_id.clone()),
            "{model:?} {} listed twice",
            r.remote_id
        );
        let want = expected
            .get(&r.remote_id)
            .unwrap_or_else(|| panic!("{model:?} {} not in the simulator", r.remote_id));
        assert_eq!(
            std::str::from_utf8(&r.payload).ok(),
            Some(want.as_str()),
            "payload bytes of {}",
            r.remote_id
        );
        assert_eq!(r.model, model);
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "{model:?}: listed {} of {}",
        seen.len(),
        expected.len()
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
async fn full_listing_returns_exactly_the_simulators_records() {
    let sim = ShopifySim::start(ShopifySimConfig::small(7, 1500)).await;
    let c = connector(&sim, 100);
    let w = two_years(&sim);
    for model in MODELS {
        let t = Instant::now();
        let (got, pages) = list_all(&c, model, &w).await.expect("listing");
        let secs = t.elapsed().as_secs_f64();
        assert_exact(&sim, model, &got);
        let topic = match model {
            Model::Order => "orders/rest",
            Model::Customer => "customers/rest",
            Model::Product => "products/rest",
        };
        assert!(got.iter().all(|r| r.topic == topic));
        for r in &got {
            match standardize(&r.topic, &r.payload, None) {
                Standardized::Upsert {
                    remote_id,
                    remote_updated_at,
                    ..
                } => {
                    assert_eq!(remote_id, r.remote_id);
                    assert_eq!(remote_updated_at, r.updated_at);
                }
                other => panic!("not an upsert: {other:?}"),
            }
        }
        println!(
            "{model:?}: {} records in {pages} pages, {secs:.3}s, {:.0} records/s",
            got.len(),
            got.len() as f64 / secs
        );
    }
    // closed and cancelled orders are included (status=any)
    let orders = sim.records(Resource::Orders);
    assert!(
        orders.iter().any(|o| !o["closed_at"].is_null())
            && orders.iter().any(|o| o["closed_at"].is_null())
    );
    assert_eq!(sim.stats().bucket_overflows, 0);
}

#[tokio::test]
async fn window_bounds_are_inclusive_and_narrow() {
    let sim = ShopifySim::start(ShopifySimConfig::small(8, 400)).await;
    let c = connector(&sim, 50);
    let all = sim.updated_at(Resource::Orders);
    let mut times: Vec<_> = all.iter().map(|(_, t)| *t).collect();
    times.sort();
    let (from, to) = (times[100], times[200]);
    let (got, _) = list_all(&c, Model::Order, &Window { from, to })
        .await
        .expect("listing");
    let want: BTreeSet<String> = all
        .iter()
        .filter(|(_, t)| *t >= from && *t <= to)
        .map(|(id, _)| id.to_string())
        .collect();
    let got_ids: BTreeSet<String> = got.iter().map(|r| r.remote_id.clone()).collect();
    assert_eq!(got_ids, want);
    assert!(got.iter().any(|r| r.updated_at == from) && got.iter().any(|r| r.updated_at == to));
}

#[tokio::test]
async fn ties_on_updated_at_across_page_boundaries_are_neither_missed_nor_doubled() {
    let sim = ShopifySim::start(ShopifySimConfig::small(9, 20)).await;
    let t0 = secs(sim.now() - ChronoDuration::hours(3));
    // 9 orders sharing one updated_at, ids interleaved with 6 others a second before/after
    for k in 0..15u64 {
        let id = 6_000_000_000_000 + k * 37;
        let updated = match k % 5 {
            0 => t0 - ChronoDuration::seconds(1),
            4 => t0 + ChronoDuration::seconds(1),
            _ => t0,
        };
        let rec = sim.make_record(Resource::Orders, id, t0 - ChronoDuration::days(1), updated);
        assert!(sim.upsert(Resource::Orders, rec));
    }
    for page_size in [1, 2, 3, 4, 7] {
        let c = connector(&sim, page_size);
        let (got, pages) = list_all(&c, Model::Order, &two_years(&sim))
            .await
            .expect("listing");
        assert_exact(&sim, Model::Order, &got);
        assert!(pages > 1);
        let same = got.iter().filter(|r| r.updated_at == t0).count();
        assert_eq!(same, 9, "page size {page_size}");
    }
}

#[tokio::test]
async fn records_modified_during_a_listing_are_not_missed() {
    let sim = ShopifySim::start(ShopifySimConfig::small(10, 300)).await;
    let ids = sim.ids(Resource::Orders);
    let (early, late) = (ids[0], ids[ids.len() - 1]);
    let bumped = secs(sim.now() + ChronoDuration::seconds(5));
    sim.set_page_hook(Box::new(move |data, ep, page| {
        if ep == Endpoint::List(Resource::Orders) && page == 2 {
            // one record already served moves forward, one not yet served too
            data.touch(Resource::Orders, early, bumped);
            data.touch(Resource::Orders, late, bumped);
        }
    }));
    let c = connector(&sim, 25);
    let w = Window {
        from: sim.now() - ChronoDuration::days(731),
        to: sim.now() + ChronoDuration::minutes(5),
    };
    let (got, _) = list_all(&c, Model::Order, &w).await.expect("listing");
    let got_ids: BTreeSet<u64> = got
        .iter()
        .filter_map(|r| r.remote_id.parse().ok())
        .collect();
    assert_eq!(
        got_ids,
        sim.ids(Resource::Orders)
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    // the newest version of each touched record is the last one listed
    for id in [early, late] {
        let last = got
            .iter()
            .rev()
            .find(|r| r.remote_id == id.to_string())
            .map(|r| r.updated_at);
        assert_eq!(last, Some(bumped), "{id}");
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = ShopifySim::start(ShopifySimConfig {
        retry_after: "1.0".into(),
        ..ShopifySimConfig::small(11, 30)
    })
    .await;
    let c = connector(&sim, 250);
    sim.fail_next_with_429(2);
    let t = Instant::now();
    let (got, _) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("listing after 429s");
    let waited = t.elapsed();
    assert_exact(&sim, Model::Order, &got);
    let st = sim.stats();
    assert_eq!(st.rate_limited, 2);
    assert!(
        waited >= Duration::from_secs(2),
        "waited only {waited:?} for two Retry-After: 1.0"
    );
    println!("two 429s with Retry-After 1.0: waited {waited:?}, then succeeded");
}

#[tokio::test]
async fn a_page_failing_three_times_then_succeeding() {
    let sim = ShopifySim::start(ShopifySimConfig::small(12, 200)).await;
    sim.fail_page(Endpoint::List(Resource::Orders), 2, 3, 503);
    let c = connector(&sim, 50);
    let (got, pages) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("listing");
    assert!(pages >= 3);
    assert_exact(&sim, Model::Order, &got);
    assert_eq!(sim.stats().injected_errors, 3);
}

#[tokio::test]
async fn a_page_failing_past_the_budget_is_unavailable() {
    let sim = ShopifySim::start(ShopifySimConfig::small(13, 200)).await;
    sim.fail_page(Endpoint::List(Resource::Orders), 2, 100, 500);
    let c = connector(&sim, 50).with_retry_policy(fast_policy(3));
    let w = two_years(&sim);
    let first = c.list(Model::Order, &w, None).await.expect("page 1");
    let next = first.next.expect("a second page");
    let err = c
        .list(Model::Order, &w, Some(&next))
        .await
        .expect_err("page 2 fails");
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    assert_eq!(sim.stats().injected_errors, 3);
    // the same token works once the 3PA recovers: the engine can retry from its checkpoint
    sim.clear_faults();
    let page2 = c
        .list(Model::Order, &w, Some(&next))
        .await
        .expect("page 2 after recovery");
    assert!(!page2.items.is_empty());
}

#[tokio::test]
async fn hanging_requests_time_out_and_are_retried() {
    let sim = ShopifySim::start(ShopifySimConfig::small(14, 50)).await;
    let policy = RetryPolicy {
        timeout: Duration::from_millis(300),
        ..fast_policy(3)
    };
    let c = connector(&sim, 250).with_retry_policy(policy);
    sim.hang_next(1, Duration::from_secs(30));
    let t = Instant::now();
    let (got, _) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("retried after the timeout");
    assert_exact(&sim, Model::Order, &got);
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.hang_next(10, Duration::from_secs(30));
    let err = c
        .list(Model::Order, &two_years(&sim), None)
        .await
        .expect_err("every attempt hangs");
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn pacer_keeps_the_bucket_below_the_limit() {
    // a standard shop's bucket: 40 requests, leaking 2/s; the connector assumes the default.
    let sim = ShopifySim::start(ShopifySimConfig {
        bucket_size: 40,
        leak_per_sec: 2.0,
        ..ShopifySimConfig::small(15, 800)
    })
    .await;
    let c = std::sync::Arc::new(connector(&sim, 25));
    let w = two_years(&sim);
    let t = Instant::now();
    // the three models concurrently through one connector (one shared pacer)
    let tasks: Vec<_> = MODELS
        .into_iter()
        .map(|m| {
            let c = c.clone();
            tokio::spawn(async move { (m, list_all(&c, m, &w).await) })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        let (m, r) = task.await.expect("task");
        let (got, _) = r.expect("listing");
        assert_exact(&sim, m, &got);
        total += got.len();
    }
    let secs = t.elapsed().as_secs_f64();
    let st = sim.stats();
    let after_burst = (st.requests as f64 - 32.0).max(0.0) / (secs - 0.0).max(0.001);
    println!(
        "pacer: {} requests in {secs:.1}s ({:.2}/s mean, {:.2}/s beyond the first 32; allowed 2/s sustained, bucket 40), \
         max bucket level {:.1}/40, max {} requests in 1 s, 429s {}, {} records ({:.0} records/s)",
        st.requests,
        st.mean_per_second(),
        after_burst,
        st.max_bucket_level,
        st.max_per_second,
        st.rate_limited,
        total,
        total as f64 / secs
    );
    assert_eq!(st.rate_limited, 0, "the pacer must stay under the limit");
    assert!(
        st.max_bucket_level <= 33.0,
        "bucket reached {}",
        st.max_bucket_level
    );
    assert!(
        st.requests > 40,
        "the test must exceed one bucket ({} requests)",
        st.requests
    );
}

#[tokio::test]
async fn without_read_all_orders_only_the_last_60_days() {
    let sim = ShopifySim::start(ShopifySimConfig {
        read_all_orders: false,
        ..ShopifySimConfig::small(16, 1000)
    })
    .await;
    let c = connector(&sim, 250);
    let (got, _) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("listing");
    let cutoff = sim.now() - ChronoDuration::days(60);
    let recent: BTreeSet<String> = sim
        .records(Resource::Orders)
        .iter()
        .filter(|o| {
            o["created_at"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .is_some_and(|t| t.with_timezone(&Utc) >= cutoff)
        })
        .filter_map(|o| o["id"].as_u64().map(|i| i.to_string()))
        .collect();
    let got_ids: BTreeSet<String> = got.iter().map(|r| r.remote_id.clone()).collect();
    assert_eq!(got_ids, recent);
    assert!(
        got_ids.len() < sim.ids(Resource::Orders).len() / 4,
        "{} of {}",
        got_ids.len(),
        sim.ids(Resource::Orders).len()
    );
    sim.set_read_all_orders(true);
    let (all, _) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("listing");
    assert_exact(&sim, Model::Order, &all);
}

#[tokio::test]
async fn deletions_feed() {
    let sim = ShopifySim::start(ShopifySimConfig {
        deleted_fraction: 0.05,
        ..ShopifySimConfig::small(17, 600)
    })
    .await;
    let victim = sim.ids(Resource::Orders)[3];
    assert!(sim.delete(Resource::Orders, victim));
    let c = connector(&sim, 10);
    let w = two_years(&sim);
    for model in MODELS {
        let got = deletions_all(&c, model, &w).await.expect("deletions");
        let want = sim.destroy_events(res(model));
        assert!(!want.is_empty(), "{model:?} has destroy events");
        assert_eq!(got.len(), want.len(), "{model:?}");
        let topic = match model {
            Model::Order => "orders/delete",
            Model::Customer => "customers/delete",
            Model::Product => "products/delete",
        };
        for (d, (id, at)) in got.iter().zip(want.iter()) {
            assert_eq!(d.remote_id, id.to_string());
            assert_eq!(d.deleted_at, *at);
            assert_eq!(d.topic, topic);
            assert_eq!(d.payload, format!("{{\"id\":{id}}}").into_bytes());
            assert!(!sim.ids(res(model)).contains(id));
            let st = standardize(&d.topic, &d.payload, Some(d.deleted_at.to_rfc3339()));
            assert!(
                matches!(&st, Standardized::Delete { remote_id, .. } if *remote_id == d.remote_id),
                "{st:?}"
            );
        }
    }
    let orders = deletions_all(&c, Model::Order, &w)
        .await
        .expect("deletions");
    assert!(orders.iter().any(|d| d.remote_id == victim.to_string()));
    // a narrow window: only the deletion just made
    let now = sim.now();
    let recent = deletions_all(
        &c,
        Model::Order,
        &Window {
            from: now - ChronoDuration::seconds(5),
            to: now,
        },
    )
    .await
    .expect("deletions");
    assert_eq!(
        recent
            .iter()
            .map(|d| d.remote_id.clone())
            .collect::<Vec<_>>(),
        vec![victim.to_string()]
    );
}

#[tokio::test]
async fn bad_token_is_rejected_with_401() {
    let sim = ShopifySim::start(ShopifySimConfig::small(18, 10)).await;
    let c = ShopifyConnector::new(ConnectorConfig {
        base_url: sim.base_url(),
        access_token: Some("shpat_wrong".into()),
        ..Default::default()
    });
    let err = c
        .list(Model::Order, &two_years(&sim), None)
        .await
        .expect_err("401");
    assert!(
        matches!(err, ConnectorError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    let err = c
        .deletions(Model::Product, &two_years(&sim), None)
        .await
        .expect_err("401");
    assert!(
        matches!(err, ConnectorError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(sim.stats().unauthorized, 2);
}

/// The simulator itself is faithful where connectors usually go wrong.
#[tokio::test]
async fn simulator_is_faithful_on_status_pagination_params_and_limits() {
    let sim = ShopifySim::start(ShopifySimConfig::small(19, 300)).await;
    let http = reqwest::Client::new();
    let url = format!("{}/admin/api/2024-04/orders.json", sim.base_url());
    let get = |q: Vec<(&'static str, String)>| {
        http.get(&url)
            .query(&q)
            .header("X-Shopify-Access-Token", sim.access_token())
            .send()
    };
    // default status=open hides closed/cancelled orders
    let r = get(vec![("limit", "50".into())]).await.expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-shopify-shop-api-call-limit").is_some());
    let link = r
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("link");
    let body: serde_json::Value = r.json().await.expect("json");
    let open = body["orders"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(open, 50);
    let total_open = sim
        .records(Resource::Orders)
        .iter()
        .filter(|o| o["closed_at"].is_null() && o["cancelled_at"].is_null())
        .count();
    assert!(total_open > 50 && total_open < sim.ids(Resource::Orders).len());
    assert!(body["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|o| o["closed_at"].is_null()));
    // a next-page request with a filter is a 400
    let pi = ingot_connectors::shopify::next_page_info(&link).expect("page_info");
    let r = get(vec![("page_info", pi.clone()), ("status", "any".into())])
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = get(vec![("page_info", pi), ("limit", "10".into())])
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.status(), 200);
    let link = r
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        link.contains("rel=\"previous\"") && link.contains("rel=\"next\""),
        "{link}"
    );
    // one page: no Link header; a zone-less filter is read in the shop's zone (Q-S8)
    let mut times: Vec<_> = sim
        .updated_at(Resource::Orders)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    times.sort();
    let threshold = times[times.len() - 100];
    let local = threshold
        .with_timezone(&chrono_tz::America::New_York)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let r = get(vec![
        ("status", "any".into()),
        ("limit", "250".into()),
        ("updated_at_min", local),
    ])
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("link").is_none());
    let body: serde_json::Value = r.json().await.expect("json");
    let want = times.iter().filter(|t| **t >= threshold).count();
    assert_eq!(body["orders"].as_array().map(Vec::len), Some(want));
    let r = get(vec![("updated_at_min", "2024-13-01".into())])
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    // the bucket: 429 with Retry-After 2.0 once it is full
    sim.set_rate_limit(3, 0.001);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = get(vec![]).await.expect("send");
        statuses.push((
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_string()),
        ));
    }
    assert_eq!(statuses[3], (429, Some("2.0".to_string())));
    assert!(statuses[..3].iter().all(|s| s.0 == 200));
}

#[tokio::test]
async fn default_data_set_full_sync_with_a_realistic_bucket() {
    // 3000 orders, 500 customers, 300 products over 2 years; bucket 40 leaking 2/s.
    let t = Instant::now();
    let sim = ShopifySim::start(ShopifySimConfig::default()).await;
    let started = t.elapsed();
    let c = ShopifyConnector::new(ConnectorConfig {
        base_url: sim.base_url(),
        access_token: Some(sim.access_token().into()),
        ..Default::default()
    });
    let w = two_years(&sim);
    let t = Instant::now();
    let mut total = 0;
    for model in MODELS {
        let (got, _) = list_all(&c, model, &w).await.expect("listing");
        assert_exact(&sim, model, &got);
        total += got.len();
        let dels = deletions_all(&c, model, &w).await.expect("deletions");
        assert_eq!(dels.len(), sim.destroy_events(res(model)).len());
    }
    let secs = t.elapsed().as_secs_f64();
    let st = sim.stats();
    println!(
        "default data set (generated in {started:?}): {total} records + deletions in {secs:.2}s ({:.0} records/s), \
         {} requests, max bucket {:.0}/40, 429s {}",
        total as f64 / secs,
        st.requests,
        st.max_bucket_level,
        st.rate_limited
    );
    assert_eq!(st.rate_limited, 0);
}

/// A shop with `n` extra orders sharing one `updated_at` second, ids interleaved with the
/// generated ones' range.
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
async fn ties_in_a_changing_non_id_order_are_listed_whole_in_bounded_requests() {
    const TIED: u64 = 300;
    const PAGE: u32 = 50;
    let (sim, tie) = tied_shop(TIED).await;
    let tied: BTreeSet<String> = sim
        .updated_at(Resource::Orders)
        .into_iter()
        .filter(|(_, t)| *t == tie)
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(tied.len() as u64 >= TIED);
    sim.shuffle_ties(true);

    // what following page_info through a shuffled tie gives: records lost and repeated
    let http = reqwest::Client::new();
    let url = format!("{}/admin/api/2024-04/orders.json", sim.base_url());
    let mut q: Vec<(&str, String)> = vec![
        ("limit", PAGE.to_string()),
        ("status", "any".into()),
        ("order", "updated_at asc".into()),
    ];
    let mut naive = Vec::new();
    loop {
        let r = http
            .get(&url)
            .query(&q)
            .header("X-Shopify-Access-Token", sim.access_token())
            .send()
            .await
            .expect("send");
        let link = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(ingot_connectors::shopify::next_page_info);
        let body: serde_json::Value = r.json().await.expect("json");
        naive.extend(
            body["orders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["id"].as_u64()),
        );
        match link {
            Some(pi) => q = vec![("limit", PAGE.to_string()), ("page_info", pi)],
            None => break,
        }
    }
    let naive_set: BTreeSet<u64> = naive.iter().copied().collect();
    assert!(
        naive_set.len() < sim.ids(Resource::Orders).len() && naive.len() > naive_set.len(),
        "the fault should break page_info paging inside the tie ({} listed, {} distinct, {} records)",
        naive.len(),
        naive_set.len(),
        sim.ids(Resource::Orders).len()
    );

    // the connector lists every record once, in (updated_at, id) order
    sim.reset_stats();
    let c = connector(&sim, PAGE);
    let (got, calls) = list_all(&c, Model::Order, &two_years(&sim))
        .await
        .expect("listing");
    assert_exact(&sim, Model::Order, &got);
    let got_ids: BTreeSet<String> = got.iter().map(|r| r.remote_id.clone()).collect();
    assert!(tied.is_subset(&got_ids));
    assert_eq!(
        got.iter().filter(|r| r.updated_at == tie).count(),
        tied.len()
    );
    let requests = sim.stats().per_endpoint["orders"];
    let total = got.len() as u64;
    let pages = total.div_ceil(u64::from(PAGE));
    println!(
        "shopify ties: {total} records ({} tied in one second) in {calls} calls, {requests} requests, {:.3} requests/record",
        tied.len(),
        requests as f64 / total as f64
    );
    // each full main page costs itself plus the tie of its last second (one short page,
    // or ceil(n / page) for the big tie)
    assert!(
        requests <= 2 * pages + TIED.div_ceil(u64::from(PAGE)) + 2,
        "{requests} requests for {total} records"
    );
}

#[tokio::test]
async fn a_shop_that_never_advances_fails_with_no_progress() {
    let (sim, _) = tied_shop(120).await;
    sim.never_advance(true);
    sim.shuffle_ties(true);
    let c = connector(&sim, 20);
    for model in MODELS {
        let before = sim.stats().requests;
        let err = match list_all(&c, model, &two_years(&sim)).await {
            Err(e) => e,
            Ok((r, calls)) => panic!("{model:?}: ended with {} records in {calls} calls", r.len()),
        };
        assert!(
            matches!(err, ConnectorError::NoProgress(_)),
            "{model:?}: {err:?}"
        );
        let requests = sim.stats().requests - before;
        assert!(
            requests <= 10,
            "{model:?}: {requests} requests before failing"
        );
    }
}
