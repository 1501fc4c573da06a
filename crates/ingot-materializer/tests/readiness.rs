//! Readiness against the real embedded broker: the view reports caught up only once every
//! (topic, partition) it reads is applied to its end. librdkafka's EOF event names only
//! the partition number, and the empty `normalized.customer` / `normalized.product`
//! partitions report theirs at once: before readiness was kept per (topic, partition),
//! those EOFs marked `normalized.order`'s partitions of the same numbers as read while
//! thousands of orders were still to apply.
//!
//! On transactional topics (Apache Kafka, exactly-once) the consumer position passes the
//! final commit marker, so position ≥ high watermark holds there too (measured with
//! librdkafka 2.12.1, the version rdkafka-sys bundles: 15 records in 3 transactions, EOF
//! with position 18 = the high watermark); the end-to-end restart tests wait for `/readyz`
//! and then compare every answer on both brokers.

use ingot_kafka::{AvroCodec, OutgoingRecord, Producer};
use ingot_materializer::{Materializer, View};
use ingot_model::{Model, RecordKey};
use std::time::Duration;
use support::{order, until};
use tokio::sync::watch;

mod support;

const ORDERS: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_caught_up_only_when_every_topic_partition_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ingot_embedded::LocalCluster::start(dir.path(), Duration::from_secs(10))
        .await
        .unwrap();
    let kafka = cluster.kafka.clone();
    let codec = AvroCodec::new(&cluster.registry_url).unwrap();
    let producer = Producer::new(&kafka).unwrap();
    let topic = Model::Order.normalized_topic();
    let mut encoded = Vec::with_capacity(ORDERS);
    for i in 0..ORDERS {
        let (key, rec) = order(&(1000 + i).to_string());
        let value = codec
            .encode_record(Model::Order, rec.to_json())
            .await
            .unwrap();
        encoded.push((key, value));
    }
    for chunk in encoded.chunks(500) {
        let records: Vec<OutgoingRecord<'_>> = chunk
            .iter()
            .map(|(k, v)| OutgoingRecord {
                topic: &topic,
                partition: None,
                key: k.as_bytes(),
                value: Some(v),
                headers: &[],
            })
            .collect();
        producer.send_all(&records).await.unwrap();
    }
    let ends = kafka.end_offsets(&topic).unwrap();
    assert_eq!(
        ends.iter().map(|(_, o)| *o).sum::<i64>(),
        ORDERS as i64,
        "every order on the topic"
    );
    for model in [Model::Customer, Model::Product] {
        let empty = kafka.end_offsets(&model.normalized_topic()).unwrap();
        assert!(empty.iter().all(|(_, o)| *o == 0), "{model:?} is empty");
    }

    let view = View::open(&dir.path().join("view")).unwrap();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(Materializer::new(view.clone(), kafka.clone(), codec.clone()).run(rx));
    until(&task, "the view to report caught up", || {
        view.is_caught_up()
    })
    .await;
    // read right at readiness: every order partition is applied to its end
    let applied = view.freshness();
    for (p, end) in &ends {
        let next = applied.get(&(topic.clone(), *p)).copied().unwrap_or(0);
        assert!(
            next >= *end,
            "caught up with {topic}/{p} applied to {next} of {end} ({applied:?})"
        );
    }
    let last = RecordKey::new("shop-1", Model::Order, (1000 + ORDERS - 1).to_string());
    assert!(view.get(Model::Order, &last.record_id()).unwrap().is_some());
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}
