//! Property test of the raw-event decoder (`AvroCodec::decode_raw`) against the embedded
//! broker and registry: arbitrary bytes, arbitrary datums behind a registered schema id,
//! and truncated or bit-flipped real encodings all give `Ok` or an error — never a panic
//! (the processor dead-letters what it cannot decode; a panic would stop the stage).
#![cfg(feature = "broker")]

use ingot_embedded::LocalCluster;
use ingot_kafka::AvroCodec;
use ingot_model::RawEvent;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Cases per property (`PROPTEST_CASES` overrides). Schema ids other than the registered
/// one cost a registry lookup each, so fewer cases than the pure properties.
const CASES: u32 = 1000;

fn event(payload: Vec<u8>) -> RawEvent {
    RawEvent {
        event_id: "evt-1".into(),
        tenant_id: "acme".into(),
        connection_id: "shop-1".into(),
        provider: "shopify".into(),
        topic: "orders/create".into(),
        source: "webhook".into(),
        api_version: Some("2026-04".into()),
        received_at: "2026-01-01T00:00:00Z".into(),
        triggered_at: None,
        payload,
    }
}

#[test]
fn arbitrary_bytes_never_panic_the_raw_decoder() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = rt
        .block_on(LocalCluster::start(dir.path(), Duration::from_secs(3600)))
        .unwrap();
    let codec = AvroCodec::new(&cluster.registry_url).unwrap();
    let good = rt
        .block_on(codec.encode_raw("raw.shopify", &event(b"{\"id\":1}".to_vec())))
        .unwrap();
    // the real encoding decodes (so the registry and the header below are real)
    let back = rt.block_on(codec.decode_raw(&good)).unwrap();
    assert_eq!(back.payload, b"{\"id\":1}");
    let header = good[..5].to_vec();
    assert_eq!(header[0], 0, "magic byte");

    let (decoded, refused) = (AtomicU32::new(0), AtomicU32::new(0));
    proptest!(ProptestConfig::with_cases(CASES), |(
        kind in 0u8..4,
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    )| {
        let input = match kind {
            // anything at all
            0 => bytes.clone(),
            // a registered schema id, then an arbitrary datum
            1 => [header.clone(), bytes.clone()].concat(),
            // a real encoding, truncated
            2 => good[..cut.index(good.len() + 1)].to_vec(),
            // a real encoding with bytes changed (past the header: the registered schema)
            _ => {
                let mut g = good.clone();
                for (i, b) in &flips {
                    let at = 5 + i.index(g.len() - 5);
                    g[at] ^= b | 1;
                }
                g
            }
        };
        let _ = match rt.block_on(codec.decode_raw(&input)) {
            Ok(_) => decoded.fetch_add(1, Ordering::Relaxed),
            Err(_) => refused.fetch_add(1, Ordering::Relaxed),
        };
    });
    let (decoded, refused) = (decoded.into_inner(), refused.into_inner());
    eprintln!("decode_raw: {decoded} decoded, {refused} refused, no panic");
    assert!(refused > 0);
    drop(cluster);
}
