//! ingot on Apache Kafka: exactly-once under SIGKILL, scale-out with a killed instance,
//! deletion markers that outlive tombstone removal, timestamp lookups, and the
//! partitioner. Run against the broker of `INGOT_TEST_KAFKA` (`scripts/kafka.sh start`);
//! the tests that need Apache Kafka's capabilities say they are skipped without it (the
//! README's test command always runs them). The partitioner test runs on either broker.
//!
//! Child processes are the real `ingot` binary, killed with SIGKILL.

// Each test runs on its own runtime and holds the serial lock for its whole body on purpose.
#![allow(clippy::await_holding_lock)]

mod support;

use ingot::app::Stages;
use ingot::shopsim;
use ingot_model::{Model, RecordKey};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::process::Child;
use std::time::{Duration, Instant};
use support::*;

fn kafka_only(name: &str) -> bool {
    if test_kafka().is_none() {
        println!(
            "{name}: skipped (needs Apache Kafka: INGOT_TEST_KAFKA=$(scripts/kafka.sh start))"
        );
        return false;
    }
    true
}

/// The start of a test that needs the broker and no stage: the serial guard and a
/// harness, or `None` (skipped, with a message) without Apache Kafka.
async fn broker_only(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Harness)> {
    if !kafka_only(name) {
        return None;
    }
    let serial = serial();
    let h = Harness::start_stages(ingot_sync::SyncSettings::default(), 3600, Stages::NONE).await;
    Some((serial, h))
}

/// An order webhook body: `version` picks the financial status and the update time, so
/// every (order, version) is a distinct content at a later time.
fn order_version(id: u64, version: u32) -> Value {
    let financial = ["pending", "authorized", "paid", "partially_refunded"][version as usize % 4];
    let updated = format!("2026-11-20T1{}:00:00Z", version.min(9));
    sample_order(id, financial, &updated)
}

async fn post_until_2xx(client: &reqwest::Client, base: &str, d: &shopsim::Delivery) -> u32 {
    let mut attempts = 0;
    loop {
        attempts += 1;
        if let Ok(s) = shopsim::send(client, base, CONN, d).await {
            if (200..300).contains(&s) {
                return attempts;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_where_the_java_client_puts_them() {
    let _serial = serial();
    let h = Harness::start_stages(ingot_sync::SyncSettings::default(), 3600, Stages::NONE).await;
    // computed with kafka-clients 4.4.0: Utils.toPositive(Utils.murmur2(key)) % 3
    let vector = [
        ("shop-1/order/820982911946154508", 1),
        ("woo-1/order/9001", 0),
        ("shop-1/order/6", 2),
        ("shop-1/order/9", 2),
        ("shop-1/customer/10", 2),
        ("ns-1/customer/107", 0),
        ("shop-1/order/5", 1),
        ("Café/😀", 2),
    ];
    let producer = ingot_kafka::Producer::new(h.kafka()).unwrap();
    for (key, want) in vector {
        let (p, _) = producer
            .send("normalized.order", key.as_bytes(), Some(b"x"), &[])
            .await
            .unwrap();
        assert_eq!(p, want, "{key}");
    }
}

/// The one consume-batch loop of every stage reads past partition-EOF events: a batch
/// ended at each EOF stayed at a few records at the end of busy partitions, and a stage
/// spending a commit per batch fell behind for good (docs/figures.md, 2026-12-08). Here
/// two of three partitions are empty, so their EOFs come with the first fetch, around the
/// third partition's records. Runs on either broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fills_past_the_ends_of_empty_partitions() {
    use ingot_kafka::Consumer;
    let _serial = serial();
    let h = Harness::start_stages(ingot_sync::SyncSettings::default(), 3600, Stages::NONE).await;
    let producer = ingot_kafka::Producer::new(h.kafka()).unwrap();
    // one key, so one partition (2: see keys_land_where_the_java_client_puts_them)
    for i in 0..20 {
        let (p, _) = producer
            .send(
                "normalized.order",
                b"shop-1/order/6",
                Some(format!("v{i}").as_bytes()),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(p, 2);
    }
    let consumer = ingot_kafka::create_consumer(h.kafka(), "fill-batch-test").unwrap();
    let mut tpl = ingot_kafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("normalized.order", p, ingot_kafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut batch = Vec::new();
    let first =
        ingot_kafka::fill_batch(&consumer, &mut batch, 20, Duration::from_secs(10), |_| {}).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    let values: Vec<String> = batch
        .iter()
        .map(|m| String::from_utf8(m.value.clone().unwrap()).unwrap())
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    assert_eq!(
        values, want,
        "every record, in order, whatever EOFs came between"
    );
    assert!(batch.iter().all(|m| m.partition == 2));
    assert_eq!(
        batch.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (0..20).collect::<Vec<i64>>()
    );
    // nothing more: the next fill reports the ends it met (all three, over both fills)
    // and no record
    let mut more = Vec::new();
    let second =
        ingot_kafka::fill_batch(&consumer, &mut more, 100, Duration::from_secs(1), |_| {}).await;
    assert!(more.is_empty());
    let mut ends: Vec<i32> = first.eof.into_iter().chain(second.eof).collect();
    ends.sort_unstable();
    ends.dedup();
    assert_eq!(ends, vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_made_with_a_smaller_size_limit_are_raised_at_start() {
    let Some((_serial, h)) =
        broker_only("topics_made_with_a_smaller_size_limit_are_raised_at_start").await
    else {
        return;
    };
    let topology = ingot_kafka::Topology::builtin();
    let kafka = h.kafka();
    let want = kafka.max_message_bytes as i64;
    let limit = || async {
        topology
            .max_message_bytes(kafka, "raw.shopify")
            .await
            .unwrap()
    };
    assert_eq!(limit().await, Some(want));
    // as an older deployment made it: the broker's 1 MB default
    topology
        .alter(kafka, "raw.shopify", &[("max.message.bytes", "1048588")])
        .await
        .unwrap();
    assert_eq!(limit().await, Some(1_048_588));
    // the next start's apply creates nothing and raises the limit again
    assert!(topology.apply(kafka).await.unwrap().is_empty());
    assert_eq!(limit().await, Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_find_the_first_record_at_a_time() {
    let Some((_serial, h)) = broker_only("offsets_for_times_find_the_first_record_at_a_time").await
    else {
        return;
    };
    assert!(h.kafka().capabilities.timestamp_lookup);
    let producer = ingot_kafka::Producer::new(h.kafka()).unwrap();
    for i in 0..20 {
        producer
            .send("raw.dlq", format!("k{i}").as_bytes(), Some(b"v"), &[])
            .await
            .unwrap();
    }
    let all = h.kafka().read_all("raw.dlq").await.unwrap();
    assert_eq!(all.len(), 20);
    for m in &all {
        let ts = m.timestamp_ms.expect("a timestamp");
        let want = all
            .iter()
            .find(|r| r.timestamp_ms.unwrap() >= ts)
            .unwrap()
            .offset;
        let got = h.kafka().offsets_for_time("raw.dlq", ts).await.unwrap();
        assert_eq!(got, vec![(0, want)], "lookup of {ts}");
    }
    let last = all.last().unwrap().timestamp_ms.unwrap();
    assert_eq!(
        h.kafka()
            .offsets_for_time("raw.dlq", last + 60_000)
            .await
            .unwrap(),
        vec![(0, 20)],
        "past the last record: the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_outlives_tombstone_removal_and_lost_state() {
    if !kafka_only("a_deletion_outlives_tombstone_removal_and_lost_state") {
        return;
    }
    let _serial = serial();
    let mut h = Harness::start().await;
    let oid = 5_550_000_000_001u64;
    let key = RecordKey::new(CONN, Model::Order, oid.to_string()).to_string();
    let path = format!("/v1/orders/{}", order_id(oid));
    let v2 = order_version(oid, 2);
    assert_eq!(h.post(&delivery("orders/create", &v2, "d1")).await, 200);
    h.wait_for(&path, |s, _| s == 200).await;
    let delete = shopsim::delivery(
        "demo.myshopify.com",
        SECRET,
        "orders/delete",
        &json!({"id": oid}),
        "d2",
        "2026-11-20T16:00:00Z",
    );
    assert_eq!(h.post(&delete).await, 200);
    h.wait_for(&path, |s, _| s == 404).await;
    // compaction that removes tombstones at once: small segments, no retention of deletes
    let topology = ingot_kafka::Topology::builtin();
    topology
        .alter(
            h.kafka(),
            "normalized.order",
            &[
                ("segment.ms", "100"),
                ("delete.retention.ms", "0"),
                ("min.cleanable.dirty.ratio", "0.001"),
                ("min.compaction.lag.ms", "0"),
                ("max.compaction.lag.ms", "100"),
            ],
        )
        .await
        .unwrap();
    // other orders roll the segments until the cleaner has removed every record of the key
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut filler = 0u64;
    loop {
        let left = h.records_for("normalized.order", &key).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner kept {} records of the key",
            left.len()
        );
        filler += 1;
        let other = order_version(5_560_000_000_000 + filler, 1);
        assert_eq!(
            h.post(&delivery("orders/create", &other, &format!("f{filler}")))
                .await,
            200
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("tombstone removed by compaction after {filler} filler orders");
    // lose both state directories: rebuilt from the topics
    h.down().await;
    std::fs::remove_dir_all(h.data_dir().join("processor")).unwrap();
    std::fs::remove_dir_all(h.data_dir().join("view")).unwrap();
    h.up().await;
    h.wait_for("/readyz", |s, _| s == 200).await;
    // a stale update, older than the delete (a late poll page)
    let stale = order_version(oid, 3);
    assert_eq!(h.post(&delivery("orders/updated", &stale, "d3")).await, 200);
    h.wait_processed().await;
    assert_eq!(
        h.get(&path, KEY).await.0,
        404,
        "the stale update resurrected it"
    );
    assert!(h.records_for("normalized.order", &key).await.is_empty());
    // an update after the delete does bring it back (a re-created record)
    let mut newer = order_version(oid, 3);
    newer["updated_at"] = json!("2026-11-20T17:00:00Z");
    assert_eq!(h.post(&delivery("orders/updated", &newer, "d4")).await, 200);
    h.wait_for(&path, |s, _| s == 200).await;
}

/// Waits until the child's HTTP server answers `/healthz`.
async fn wait_healthy(client: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "ingot exited");
        assert!(Instant::now() < deadline, "ingot did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_killed_give_the_results_of_one() {
    if !kafka_only("two_instances_one_killed_give_the_results_of_one") {
        return;
    }
    let _serial = serial();
    // this process: broker client, registry, ingest, materializer, API; the processors
    // are two child processes in one consumer group
    let h = Harness::start_stages(
        ingot_sync::SyncSettings::default(),
        3600,
        Stages {
            processor: false,
            forwarder: false,
            ..Stages::ALL
        },
    )
    .await;
    let dir = h._dir.path().to_path_buf();
    let mut a = spawn_ingot(
        &[
            "process",
            "--config",
            h.config_file("a", &dir.join("a"), "127.0.0.1:0")
                .to_str()
                .unwrap(),
        ],
        &dir.join("a.log"),
    );
    let mut b = spawn_ingot(
        &[
            "process",
            "--config",
            h.config_file("b", &dir.join("b"), "127.0.0.1:0")
                .to_str()
                .unwrap(),
        ],
        &dir.join("b.log"),
    );
    // 30 orders (spread over the three partitions), each created then paid
    let ids: Vec<u64> = (0..30).map(|i| 6_100_000_000_000 + i).collect();
    for id in &ids {
        assert_eq!(
            h.post(&delivery(
                "orders/create",
                &order_version(*id, 1),
                &format!("c{id}")
            ))
            .await,
            200
        );
    }
    h.wait_processed().await;
    for id in &ids {
        assert_eq!(
            h.post(&delivery(
                "orders/updated",
                &order_version(*id, 2),
                &format!("u{id}")
            ))
            .await,
            200
        );
    }
    h.wait_processed().await;
    let log_a = std::fs::read_to_string(dir.join("a.log")).unwrap();
    let log_b = std::fs::read_to_string(dir.join("b.log")).unwrap();
    assert!(
        log_a.contains("partitions assigned") && log_b.contains("partitions assigned"),
        "both instances joined the group"
    );
    // kill one; its partitions move to the other, which must restore their state first
    kill9(&mut a);
    // stale updates (older than what is stored) for every order, then a newer one
    for id in &ids {
        assert_eq!(
            h.post(&delivery(
                "orders/updated",
                &order_version(*id, 1),
                &format!("s{id}")
            ))
            .await,
            200
        );
    }
    for id in &ids {
        assert_eq!(
            h.post(&delivery(
                "orders/updated",
                &order_version(*id, 3),
                &format!("n{id}")
            ))
            .await,
            200
        );
    }
    h.wait_processed().await;
    for id in &ids {
        let path = format!("/v1/orders/{}", order_id(*id));
        h.wait_for(&path, |s, v| {
            s == 200 && v["data"]["payment_status"] == "partially_refunded"
        })
        .await;
    }
    // the single-instance result: per order exactly three versions (v1, v2, v3), the
    // stale v1 re-delivery dropped; exactly-once: no duplicates either
    let all = h.kafka().read_all("normalized.order").await.unwrap();
    let codec = ingot_kafka::AvroCodec::new(&h.infra.as_ref().unwrap().registry_url).unwrap();
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &all {
        let status = match &m.value {
            Some(v) => codec.decode_record(v).await.unwrap()["payment_status"].to_string(),
            None => "tombstone".into(),
        };
        per_key
            .entry(m.key_str().unwrap().to_string())
            .or_default()
            .push(format!("{}@{} {status}", m.partition, m.offset));
    }
    if per_key.values().any(|v| v.len() != 3) {
        for f in ["a.log", "b.log"] {
            let log = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            println!("--- {f}\n{log}");
        }
    }
    assert_eq!(per_key.len(), ids.len());
    for (k, v) in &per_key {
        assert_eq!(v.len(), 3, "{k}: {v:?}");
    }
    println!(
        "two instances, one killed: {} orders, {} normalized records, 3 per order",
        ids.len(),
        all.len()
    );
    kill9(&mut b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loop_loses_nothing_and_duplicates_nothing() {
    if !kafka_only("sigkill_loop_loses_nothing_and_duplicates_nothing") {
        return;
    }
    let _serial = serial();
    // this process: only the client side (topics reset, registry for reading back);
    // ingot itself is a child process killed over and over
    let h = Harness::start_stages(ingot_sync::SyncSettings::default(), 3600, Stages::NONE).await;
    let dir = h._dir.path().to_path_buf();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    // the child runs its own embedded registry: the harness's must not hold the port
    let mut h = h;
    h.down().await;
    let cfg = h.config_file("crash", &dir.join("crash"), &listen);
    let client = reqwest::Client::new();
    // 150 orders, each created then updated: 300 distinct webhooks, sent in order by a
    // client that retries until 2xx, as Shopify does
    let ids: Vec<u64> = (0..150).map(|i| 7_100_000_000_000 + i).collect();
    let mut deliveries = Vec::new();
    for id in &ids {
        deliveries.push(delivery(
            "orders/create",
            &order_version(*id, 1),
            &format!("c{id}"),
        ));
    }
    for id in &ids {
        deliveries.push(delivery(
            "orders/updated",
            &order_version(*id, 2),
            &format!("u{id}"),
        ));
    }
    let sender = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let mut attempts = 0;
            for d in &deliveries {
                attempts += post_until_2xx(&client, &base, d).await;
            }
            attempts
        })
    };
    let mut rng_state = 0x9e3779b97f4a7c15u64;
    let mut next_rand = move |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    let mut runs = 0;
    while runs < 20 || !sender.is_finished() {
        runs += 1;
        let mut child = spawn_ingot(
            &["run", "--config", cfg.to_str().unwrap()],
            &dir.join(format!("run-{runs}.log")),
        );
        // kill at a random point: sometimes during start-up, mostly while serving
        if next_rand(4) == 0 {
            tokio::time::sleep(Duration::from_millis(100 + next_rand(700))).await;
        } else {
            wait_healthy(&client, &base, &mut child).await;
            tokio::time::sleep(Duration::from_millis(next_rand(1500))).await;
        }
        kill9(&mut child);
        assert!(runs < 200, "the sender never finished");
    }
    let attempts = sender.await.unwrap();
    // a last, undisturbed run catches up
    let mut child = spawn_ingot(
        &["run", "--config", cfg.to_str().unwrap()],
        &dir.join("final.log"),
    );
    wait_healthy(&client, &base, &mut child).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        let path = format!("{base}/v1/orders/{}", order_id(*id));
        loop {
            let r = client.get(&path).bearer_auth(KEY).send().await.unwrap();
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if s == 200 && v["data"]["payment_status"] == "paid" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "order {id} not queryable as updated: {s} {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    kill9(&mut child);
    // read back with an ordinary (read_committed) reader
    let kafka = ingot_kafka::KafkaSettings::new(test_kafka().unwrap());
    let raw = kafka.read_all("raw.shopify").await.unwrap();
    let normalized = kafka.read_all("normalized.order").await.unwrap();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for m in &normalized {
        *per_key.entry(m.key_str().unwrap().to_string()).or_default() += 1;
    }
    let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
    for n in per_key.values() {
        *histogram.entry(*n).or_default() += 1;
    }
    println!(
        "crash loop: {runs} runs killed with SIGKILL; 300 webhooks acknowledged after {attempts} attempts; \
         {} raw events (duplicates from retries included); {} normalized order records for {} orders; \
         records per order: {histogram:?}",
        raw.len(),
        normalized.len(),
        per_key.len()
    );
    assert_eq!(per_key.len(), ids.len(), "every order reached the topic");
    // exactly-once: one version per distinct content per key (create, update), however
    // often the raw events were re-delivered or re-processed
    assert_eq!(histogram, BTreeMap::from([(2, ids.len())]));
}
