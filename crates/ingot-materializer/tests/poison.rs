//! The materializer against the real embedded broker and registry: a poison pill goes to
//! `raw.dlq` and the view goes on, now and after a restart.

use ingot_kafka::{AvroCodec, Producer};
use ingot_materializer::{Materializer, View};
use ingot_model::dlq::{HEADER_REASON as HEADER_DLQ_REASON, HEADER_SOURCE, TOPIC as DLQ_TOPIC};
use ingot_model::{Model, RecordKey};
use std::time::Duration;
use support::{order, until};
use tokio::sync::watch;

mod support;

/// The embedded broker keeps process-wide state: the tests of this binary run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_pill_is_dead_lettered_and_the_view_goes_on() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = ingot_embedded::LocalCluster::start(dir.path(), Duration::from_secs(10))
        .await
        .unwrap();
    let kafka = cluster.kafka.clone();
    let codec = AvroCodec::new(&cluster.registry_url).unwrap();
    let producer = Producer::new(&kafka).unwrap();
    let topic = Model::Order.normalized_topic();

    // 1. a value that is no Avro at all; 2. a good value under a key that is no record
    //    key; 3. a good record
    let garbage: &[u8] = b"not avro at all";
    let (pp, po) = producer
        .send(&topic, b"shop-1/order/1", Some(garbage), &[])
        .await
        .unwrap();
    let (k2, r2) = order("2");
    let good = codec.encode_record(&r2).await.unwrap();
    let (kp, ko) = producer
        .send(&topic, b"no-slashes-here", Some(&good), &[])
        .await
        .unwrap();
    let (gp, go) = producer
        .send(&topic, k2.as_bytes(), Some(&good), &[])
        .await
        .unwrap();

    let view = View::open(&dir.path().join("view")).unwrap();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(Materializer::new(view.clone(), kafka.clone(), codec.clone()).run(rx));
    let id2 = RecordKey::new("shop-1", Model::Order, "2").record_id();
    until(
        &task,
        "the good record and the offsets past both pills",
        || {
            view.get(Model::Order, &id2).ok().flatten().is_some()
                && view.next_offset(&topic, pp).is_some_and(|n| n > po)
                && view.next_offset(&topic, kp).is_some_and(|n| n > ko)
                && view.next_offset(&topic, gp).is_some_and(|n| n > go)
        },
    )
    .await;
    let got = view.get(Model::Order, &id2).unwrap().unwrap();
    assert_eq!(got["order_number"], "#2");
    let id1 = RecordKey::new("shop-1", Model::Order, "1").record_id();
    assert_eq!(
        view.get(Model::Order, &id1).unwrap(),
        None,
        "no record from the pill"
    );

    // both pills are in raw.dlq with their bytes, reason and source
    let dlq = kafka.read_all(DLQ_TOPIC).await.unwrap();
    let find = |source: String| {
        dlq.iter()
            .filter(|m| m.header(HEADER_SOURCE) == Some(source.as_str()))
            .collect::<Vec<_>>()
    };
    let undecodable = find(format!("{topic}/{pp}@{po}"));
    assert_eq!(undecodable.len(), 1, "{dlq:?}");
    assert_eq!(undecodable[0].value.as_deref(), Some(garbage));
    assert_eq!(undecodable[0].key.as_deref(), Some(&b"shop-1/order/1"[..]));
    let reason = undecodable[0].header(HEADER_DLQ_REASON).unwrap();
    assert_eq!(
        undecodable[0].header("ingot-dlq-stage"),
        Some("materializer")
    );
    assert!(
        reason.starts_with("undecodable normalized value: "),
        "{reason}"
    );
    let bad_key = find(format!("{topic}/{kp}@{ko}"));
    assert_eq!(bad_key.len(), 1, "{dlq:?}");
    assert_eq!(bad_key[0].value.as_deref(), Some(&good[..]));
    assert_eq!(
        bad_key[0].header(HEADER_DLQ_REASON),
        Some("key is not a record key")
    );

    // a restart goes on from past the pills: new records arrive, nothing is re-dead-lettered
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(Materializer::new(view.clone(), kafka.clone(), codec.clone()).run(rx));
    let (k3, r3) = order("3");
    let v3 = codec.encode_record(&r3).await.unwrap();
    producer
        .send(&topic, k3.as_bytes(), Some(&v3), &[])
        .await
        .unwrap();
    let id3 = RecordKey::new("shop-1", Model::Order, "3").record_id();
    until(&task, "a record after the restart", || {
        view.get(Model::Order, &id3).ok().flatten().is_some()
    })
    .await;
    let dlq = kafka.read_all(DLQ_TOPIC).await.unwrap();
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}
