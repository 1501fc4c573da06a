//! WooCommerce connector against the WooCommerce simulator (real HTTP on 127.0.0.1).

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, TimeZone, Utc};
use ingot_connectors::http::RetryPolicy;
use ingot_connectors::woocommerce::WooCommerceConnector;
use ingot_connectors::{Connector, ConnectorConfig, ConnectorError, RemoteRecord, Window};
use ingot_model::{Model, RawEvent};
use ingot_standardize::{mapping_for, Outcome};
use ingot_testkit::woocommerce::{StoreTz, WooRecordView, WooResource, WooSim, WooSimConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const ORDERS: &str = "GET /wp-json/wc/v3/orders";

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        timeout: Duration::from_millis(1500),
    }
}

fn config(sim: &WooSim, page_size: u32) -> ConnectorConfig {
    ConnectorConfig {
        base_url: sim.base_url().to_string(),
        consumer_key: Some(sim.config().consumer_key.clone().into()),
        consumer_secret: Some(sim.config().consumer_secret.clone().into()),
        page_size: Some(page_size),
        ..Default::default()
    }
}

fn connector(sim: &WooSim, page_size: u32, attempts: u32) -> WooCommerceConnector {
    WooCommerceConnector::with_policy(config(sim, page_size), policy(attempts))
}

async fn list_all(
    c: &dyn Connector,
    model: Model,
    window: &Window,
) -> Result<(Vec<RemoteRecord>, usize), ConnectorError> {
    let mut out = Vec::new();
    let mut page = None;
    let mut calls = 0;
    loop {
        let p = c.list(model, window, page.as_ref()).await?;
        calls += 1;
        out.extend(p.items);
        match p.next {
            Some(n) => page = Some(n),
            None => return Ok((out, calls)),
        }
        assert!(calls < 10_000, "listing does not end");
    }
}

fn small(seed: u64) -> WooSimConfig {
    WooSimConfig {
        seed,
        orders: 600,
        customers: 150,
        products: 60,
        ..Default::default()
    }
}

fn expected_product_payload(v: &WooRecordView) -> Vec<u8> {
    let body = String::from_utf8(v.body.clone()).unwrap();
    let is_variable = body.contains("\"type\":\"variable\"");
    if !is_variable {
        return v.body.clone();
    }
    let vars: Vec<String> = v
        .variations
        .iter()
        .map(|b| String::from_utf8(b.clone()).unwrap())
        .collect();
    format!(
        "{},\"_ingot_variations\":[{}]}}",
        &body[..body.len() - 1],
        vars.join(",")
    )
    .into_bytes()
}

fn standardize(r: &RemoteRecord) -> Outcome {
    let event = RawEvent {
        event_id: "t".into(),
        tenant_id: "t".into(),
        connection_id: "c1".into(),
        provider: "woocommerce".into(),
        topic: r.topic.clone(),
        source: "backfill".into(),
        api_version: None,
        received_at: "2025-06-01T12:00:00Z".into(),
        triggered_at: None,
        payload: r.payload.clone(),
    };
    match mapping_for(ingot_model::Provider::WooCommerce).standardize(&event) {
        Ok(o) => o,
        Err(e) => panic!("record {} does not standardize: {e}", r.remote_id),
    }
}

#[tokio::test]
async fn full_listing_equals_the_simulator() {
    let sim = WooSim::start(small(7)).await;
    let c = connector(&sim, 100, 3);
    let now = sim.now();
    let window = Window {
        from: now - ChronoDuration::days(800),
        to: now,
    };
    for (model, res) in [
        (Model::Order, WooResource::Orders),
        (Model::Customer, WooResource::Customers),
        (Model::Product, WooResource::Products),
    ] {
        let started = Instant::now();
        let (records, calls) = list_all(&c, model, &window).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "woocommerce {model:?}: {} records in {calls} pages, {:.3}s, {:.0} records/s",
            records.len(),
            secs,
            records.len() as f64 / secs
        );
        let expected: BTreeMap<String, WooRecordView> = sim
            .records(res)
            .into_iter()
            .filter(|v| v.status != "trash")
            .map(|v| (v.id.to_string(), v))
            .collect();
        let ids: Vec<&String> = records.iter().map(|r| &r.remote_id).collect();
        let unique: BTreeSet<&String> = ids.iter().copied().collect();
        assert_eq!(
            ids.len(),
            unique.len(),
            "{model:?}: a record was listed twice"
        );
        assert_eq!(
            unique,
            expected.keys().collect::<BTreeSet<_>>(),
            "{model:?}: id sets differ"
        );
        for r in &records {
            let v = &expected[&r.remote_id];
            let want = if model == Model::Product {
                expected_product_payload(v)
            } else {
                v.body.clone()
            };
            assert_eq!(
                r.payload, want,
                "{model:?} {}: payload differs",
                r.remote_id
            );
            assert_eq!(r.updated_at, v.modified_gmt);
            assert_eq!(
                r.topic,
                format!(
                    "{}.rest",
                    match model {
                        Model::Order => "order",
                        Model::Customer => "customer",
                        Model::Product => "product",
                    }
                )
            );
            assert!(matches!(standardize(r), Outcome::Record(_)));
        }
        // Listings are ordered by (modified, id) for orders/products.
        if model != Model::Customer {
            let keys: Vec<(DateTime<Utc>, u64)> = records
                .iter()
                .map(|r| (r.updated_at, r.remote_id.parse().unwrap()))
                .collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]));
        }
    }
    let counters = sim.faults().counters();
    println!(
        "woocommerce requests: {} {:?}",
        counters.requests, counters.per_endpoint
    );
}

#[tokio::test]
async fn store_in_utc_minus_5_nothing_missed_or_doubled_at_window_edges() {
    let mut cfg = small(11);
    cfg.orders = 40;
    cfg.timezone = StoreTz::Fixed(FixedOffset::west_opt(5 * 3600).unwrap());
    let sim = WooSim::start(cfg).await;
    let b = Utc.with_ymd_and_hms(2025, 3, 10, 4, 30, 0).unwrap();
    let mut near = Vec::new();
    // Around the edge: -5 h (the local/UTC trap), -1 s, the edge, +1 s, and a burst of 13
    // records in the edge second (across page boundaries with page size 5).
    for dt in [-5 * 3600, -2, -1, 0, 1, 2, 5 * 3600] {
        near.push(sim.create_at(WooResource::Orders, b + ChronoDuration::seconds(dt)));
    }
    for _ in 0..13 {
        near.push(sim.create_at(WooResource::Orders, b));
    }
    let c = connector(&sim, 5, 3);
    let a = b - ChronoDuration::days(3);
    let z = b + ChronoDuration::days(3);
    let w1 = Window {
        from: a,
        to: b - ChronoDuration::nanoseconds(1),
    };
    let w2 = Window { from: b, to: z };
    let (r1, _) = list_all(&c, Model::Order, &w1).await.unwrap();
    let (r2, _) = list_all(&c, Model::Order, &w2).await.unwrap();
    let in_range: BTreeMap<String, DateTime<Utc>> = sim
        .records(WooResource::Orders)
        .into_iter()
        .filter(|v| v.modified_gmt >= a && v.modified_gmt <= z)
        .map(|v| (v.id.to_string(), v.modified_gmt))
        .collect();
    for r in &r1 {
        assert!(
            r.updated_at < b,
            "{} at {} listed in the window before the edge",
            r.remote_id,
            r.updated_at
        );
    }
    for r in &r2 {
        assert!(
            r.updated_at >= b,
            "{} at {} listed in the window after the edge",
            r.remote_id,
            r.updated_at
        );
    }
    let mut all: Vec<String> = r1
        .iter()
        .chain(r2.iter())
        .map(|r| r.remote_id.clone())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, all.len(), "a record was listed twice");
    assert_eq!(
        all.into_iter().collect::<BTreeSet<_>>(),
        in_range.keys().cloned().collect::<BTreeSet<_>>()
    );
    for id in &near {
        assert!(in_range.contains_key(&id.to_string()));
    }
    // Inclusive bounds: a window of exactly one second holds the 14 records of that second.
    let (exact, _) = list_all(&c, Model::Order, &Window { from: b, to: b })
        .await
        .unwrap();
    assert_eq!(exact.len(), 14);
}

#[tokio::test]
async fn records_modified_or_deleted_while_paging_do_not_hide_others() {
    let sim = WooSim::start(small(5)).await;
    let now = sim.now();
    // Window ends a day ago: touched records leave it (the classic page-shift skip).
    let window = Window {
        from: now - ChronoDuration::days(800),
        to: now - ChronoDuration::days(1),
    };
    let before: BTreeMap<u64, DateTime<Utc>> = sim
        .records(WooResource::Orders)
        .into_iter()
        .filter(|v| v.modified_gmt <= window.to)
        .map(|v| (v.id, v.modified_gmt))
        .collect();
    let ids: Vec<u64> = {
        let mut by_time: Vec<(DateTime<Utc>, u64)> =
            before.iter().map(|(id, t)| (*t, *id)).collect();
        by_time.sort();
        by_time.into_iter().map(|(_, id)| id).collect()
    };
    // While page 2 is requested, touch 3 records and delete 2 that were on page 1.
    let victims: Vec<u64> = ids[5..10].to_vec();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (touch, del) = (victims[..3].to_vec(), victims[3..].to_vec());
    let sim = std::sync::Arc::new(sim);
    let sim2 = sim.clone();
    let calls2 = calls.clone();
    sim.faults().set_page_hook(move |p| {
        if p.endpoint == ORDERS && calls2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            for id in &touch {
                sim2.touch(WooResource::Orders, *id);
            }
            for id in &del {
                sim2.delete(WooResource::Orders, *id);
            }
        }
    });
    let c = connector(&sim, 20, 3);
    let (records, _) = list_all(&c, Model::Order, &window).await.unwrap();
    sim.faults().clear_page_hook();
    let got: Vec<u64> = records
        .iter()
        .map(|r| r.remote_id.parse().unwrap())
        .collect();
    let got_set: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "a record was listed twice");
    for id in ids.iter().filter(|id| !victims.contains(id)) {
        assert!(got_set.contains(id), "order {id} (untouched) was skipped");
    }
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_honoured() {
    let sim = WooSim::start(small(3)).await;
    sim.faults().rate_limit_next(2, Duration::from_millis(400));
    let c = connector(&sim, 100, 5);
    let now = sim.now();
    let started = Instant::now();
    let (records, _) = list_all(
        &c,
        Model::Order,
        &Window {
            from: now - ChronoDuration::days(800),
            to: now,
        },
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(records.len(), 600);
    let counters = sim.faults().counters();
    assert_eq!(counters.rate_limited, 2);
    assert!(
        elapsed >= Duration::from_millis(800),
        "Retry-After not honoured: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_page_failing_three_times_then_succeeding() {
    let sim = WooSim::start(small(3)).await;
    sim.faults().fail_nth_page(ORDERS, 2, 3);
    let c = connector(&sim, 100, 5);
    let now = sim.now();
    let (records, _) = list_all(
        &c,
        Model::Order,
        &Window {
            from: now - ChronoDuration::days(800),
            to: now,
        },
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 600);
    assert_eq!(sim.faults().counters().server_errors, 3);
}

#[tokio::test]
async fn a_page_failing_past_the_budget_is_unavailable() {
    let sim = WooSim::start(small(3)).await;
    sim.faults().fail_nth_page(ORDERS, 2, 10);
    let c = connector(&sim, 100, 3);
    let now = sim.now();
    let err = list_all(
        &c,
        Model::Order,
        &Window {
            from: now - ChronoDuration::days(800),
            to: now,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    sim.faults().fail_next(10, 502);
    let err = list_all(
        &c,
        Model::Customer,
        &Window {
            from: now - ChronoDuration::days(800),
            to: now,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_hanging_request_times_out_and_is_retried() {
    let sim = WooSim::start(small(3)).await;
    sim.faults().hang_next(1);
    let c = connector(&sim, 100, 3);
    let now = sim.now();
    let (records, _) = list_all(
        &c,
        Model::Customer,
        &Window {
            from: now - ChronoDuration::days(800),
            to: now,
        },
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 150);
    assert_eq!(sim.faults().counters().hung, 1);
}

#[tokio::test]
async fn bad_credentials_are_rejected_with_401() {
    let sim = WooSim::start(small(3)).await;
    let mut cfg = config(&sim, 100);
    cfg.consumer_secret = Some("cs_wrong".into());
    let c = WooCommerceConnector::with_policy(cfg, policy(3));
    let now = sim.now();
    let err = c
        .list(
            Model::Order,
            &Window {
                from: now - ChronoDuration::days(1),
                to: now,
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(sim.faults().counters().requests, 1, "a 401 is not retried");
}

#[tokio::test]
async fn deletions_are_unsupported_and_variation_edits_reach_the_product() {
    let sim = WooSim::start(small(3)).await;
    let c = connector(&sim, 100, 3);
    let now = sim.now();
    let w = Window {
        from: now - ChronoDuration::days(800),
        to: now + ChronoDuration::days(1),
    };
    assert!(matches!(
        c.deletions(Model::Order, &w, None).await,
        Err(ConnectorError::Unsupported(_))
    ));
    // A variable product, touched after a variation edit: its payload carries the new variation.
    let product = sim
        .records(WooResource::Products)
        .into_iter()
        .find(|v| !v.variations.is_empty())
        .expect("a variable product");
    let vid = sim.variation_ids(product.id)[0];
    sim.set_now(now + ChronoDuration::hours(1));
    assert!(sim.touch_variation(product.id, vid));
    assert!(sim.touch(WooResource::Products, product.id));
    let (records, _) = list_all(
        &c,
        Model::Product,
        &Window {
            from: now + ChronoDuration::minutes(30),
            to: w.to,
        },
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 1);
    let fresh = sim
        .records(WooResource::Products)
        .into_iter()
        .find(|v| v.id == product.id)
        .unwrap();
    assert_eq!(records[0].payload, expected_product_payload(&fresh));
    // Trashed orders leave the listing; WooCommerce reports nothing else.
    let order = sim.records(WooResource::Orders)[0].id;
    assert!(sim.trash(WooResource::Orders, order));
    let (orders, _) = list_all(&c, Model::Order, &w).await.unwrap();
    assert!(!orders.iter().any(|r| r.remote_id == order.to_string()));
}

/// A store where `n` orders share one modified second (besides its seeded orders), so a
/// page of `page_size` ends inside the tie.
async fn tied_store(n: usize) -> (WooSim, DateTime<Utc>) {
    let sim = WooSim::start(WooSimConfig {
        orders: 120,
        customers: 50,
        products: 5,
        ..small(11)
    })
    .await;
    let tie = sim.now() - ChronoDuration::days(3);
    for _ in 0..n {
        sim.create_at(WooResource::Orders, tie);
    }
    (sim, tie)
}

#[tokio::test]
async fn ties_in_a_changing_non_id_order_are_listed_whole_in_bounded_requests() {
    const TIED: usize = 250;
    const PAGE: u32 = 40;
    let (sim, tie) = tied_store(TIED).await;
    let tied_ids: BTreeSet<String> = sim
        .records(WooResource::Orders)
        .into_iter()
        .filter(|v| v.modified_gmt == tie)
        .map(|v| v.id.to_string())
        .collect();
    assert!(tied_ids.len() >= TIED);
    sim.faults().shuffle_ties(true);
    let c = connector(&sim, PAGE, 3);
    let window = Window {
        from: sim.now() - ChronoDuration::days(800),
        to: sim.now(),
    };
    let (records, calls) = list_all(&c, Model::Order, &window).await.unwrap();
    let expected: BTreeSet<String> = sim
        .records(WooResource::Orders)
        .into_iter()
        .filter(|v| v.status != "trash")
        .map(|v| v.id.to_string())
        .collect();
    let got: Vec<String> = records.iter().map(|r| r.remote_id.clone()).collect();
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), got_set.len(), "a record was listed twice");
    assert_eq!(got_set, expected, "the listing differs from the store");
    assert!(tied_ids.is_subset(&got_set));
    let requests = sim.faults().counters().per_endpoint[ORDERS];
    // each full main page costs one request plus the tie of its last second (one short
    // page, or ceil(n / page) for the big tie): far from a loop
    let pages = expected.len().div_ceil(PAGE as usize) as u64;
    println!(
        "woocommerce ties: {} records ({} tied in one second) in {calls} calls, {requests} requests, {:.3} requests/record",
        expected.len(),
        tied_ids.len(),
        requests as f64 / expected.len() as f64
    );
    assert!(
        requests <= 2 * pages + (TIED as u64).div_ceil(u64::from(PAGE)) + 2,
        "{requests} requests for {} records",
        expected.len()
    );
}

#[tokio::test]
async fn a_store_that_never_advances_fails_with_no_progress() {
    let (sim, _) = tied_store(100).await;
    sim.faults().never_advance(true);
    sim.faults().shuffle_ties(true);
    let c = connector(&sim, 20, 3);
    let window = Window {
        from: sim.now() - ChronoDuration::days(800),
        to: sim.now(),
    };
    for model in [Model::Order, Model::Customer] {
        let before = sim.faults().counters().requests;
        let err = match list_all(&c, model, &window).await {
            Err(e) => e,
            Ok((r, calls)) => panic!("{model:?}: ended with {} records in {calls} calls", r.len()),
        };
        assert!(
            matches!(err, ConnectorError::NoProgress(_)),
            "{model:?}: {err:?}"
        );
        let requests = sim.faults().counters().requests - before;
        assert!(
            requests <= 10,
            "{model:?}: {requests} requests before failing"
        );
    }
}
