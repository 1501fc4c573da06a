//! Shared by the materializer's broker tests: records and a bounded wait.
#![allow(dead_code)]

use ingot_model::{Model, NormalizedRecord, Order, RecordData, RecordKey, RecordMeta};
use std::time::{Duration, Instant};

/// A normalized order of connection `shop-1` (tenant `acme`), as the processor writes it.
pub fn order(remote_id: &str) -> (String, NormalizedRecord) {
    let key = RecordKey::new("shop-1", Model::Order, remote_id);
    let rec = NormalizedRecord {
        meta: RecordMeta {
            id: key.record_id(),
            remote_id: remote_id.into(),
            connection_id: "shop-1".into(),
            tenant_id: "acme".into(),
            provider: "shopify".into(),
            remote_created_at: None,
            remote_updated_at: "2026-01-02T00:00:00Z".into(),
            remote_deleted: false,
            modified_at: "2026-01-03T00:00:00Z".into(),
            mapping_version: "shopify/1".into(),
            raw_topic: "raw.shopify".into(),
            raw_partition: 0,
            raw_offset: 1,
            remote_data: None,
        },
        data: RecordData::Order(Order {
            order_number: Some(format!("#{remote_id}")),
            status: "open".into(),
            payment_status: "paid".into(),
            fulfillment_status: "unfulfilled".into(),
            ..Default::default()
        }),
    };
    (key.to_string(), rec)
}

/// Polls `done` until it holds, failing if the materializer stopped or 60 s passed.
pub async fn until(
    task: &tokio::task::JoinHandle<Result<(), ingot_materializer::ViewError>>,
    what: &str,
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            !task.is_finished(),
            "the materializer stopped while waiting for {what}"
        );
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
