//! `ingot bench`: figures for the pipeline on the embedded broker, printed, never asserted.
//!
//! 1. baseline: N raw events produced straight to `raw.shopify` (acks=all) — the broker's
//!    own write rate on this machine;
//! 2. processor: the same N events standardized, versioned and produced to
//!    `normalized.order` — records/s and the ratio to the baseline;
//! 3. materializer: N normalized records applied to the view — records/s;
//! 4. webhook → queryable latency over loopback (POST, then poll the API), p50/p90/max.

use crate::app::{self, Embedded, Infra, Stages};
use crate::demo::{demo_config, API_KEY, CONNECTION, SECRET, SHOP};
use crate::shopsim;
use ingot_kafka::Producer;
use ingot_model::{Model, RawEvent, RecordKey};
use std::time::{Duration, Instant};

async fn wait_until(what: &str, mut f: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !f()? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn run(records: usize, samples: usize) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let port = |_: u8| ingot_embedded::free_port();
    let mut cfg = demo_config(&format!("127.0.0.1:{}", port(0)?), &dir)?;
    cfg.embedded.kafka_port = port(1)?;
    cfg.embedded.registry_port = port(2)?;
    let infra = Infra::start(&cfg, Embedded::Start).await?;
    let codec = infra.codec()?;
    let producer = Producer::new(&infra.kafka)?;
    println!(
        "ingot bench: {records} Shopify orders, embedded broker (sqlite) in {}",
        dir.display()
    );

    // 1. baseline
    let mut encoded = Vec::with_capacity(records);
    for i in 0..records {
        let id = 900_000_000_000_000_000u64 + i as u64;
        let body = shopsim::order(
            id,
            1000 + i as u64,
            None,
            &[(1, 11, "Parka", "249.00", 1)],
            "10.00",
            "paid",
            "2026-11-20T10:30:00-05:00",
        );
        let ev = RawEvent {
            event_id: format!("bench-{i}"),
            tenant_id: "acme".into(),
            connection_id: CONNECTION.into(),
            provider: "shopify".into(),
            topic: "orders/create".into(),
            source: "webhook".into(),
            api_version: Some("2026-04".into()),
            received_at: "2026-11-20T15:30:00Z".into(),
            triggered_at: None,
            payload: serde_json::to_vec(&body)?,
        };
        let key = RecordKey::new(CONNECTION, Model::Order, id.to_string()).to_string();
        encoded.push((key, codec.encode_raw("raw.shopify", &ev).await?));
    }
    let t = Instant::now();
    for chunk in encoded.chunks(500) {
        let recs: Vec<ingot_kafka::OutgoingRecord<'_>> = chunk
            .iter()
            .map(|(k, v)| ingot_kafka::OutgoingRecord {
                topic: "raw.shopify",
                key: k.as_bytes(),
                value: Some(v),
                headers: &[],
            })
            .collect();
        producer.send_all(&recs).await?;
    }
    let base = t.elapsed();
    let base_rate = records as f64 / base.as_secs_f64();
    println!(
        "  baseline   produce raw (acks=all)      {:>8.0} records/s  ({:.2} s)",
        base_rate,
        base.as_secs_f64()
    );

    // 2. processor alone. Steady state: from its first output to its last; start-up and
    //    the consumer-group join are reported apart.
    let t = Instant::now();
    let only = |s: Stages| app::start(&cfg, &infra, s, None);
    let proc_only = only(Stages {
        processor: true,
        ..Stages::NONE
    })
    .await?;
    let kafka = infra.kafka.clone();
    let produced = || -> anyhow::Result<i64> {
        Ok(kafka
            .end_offsets("normalized.order")?
            .iter()
            .map(|(_, o)| *o)
            .sum::<i64>())
    };
    wait_until("the processor's first output", || Ok(produced()? > 0)).await?;
    let startup = t.elapsed();
    let first = Instant::now();
    wait_until("the processor", || Ok(produced()? >= records as i64)).await?;
    report(
        "processor  raw → normalized (Avro)",
        records,
        first.elapsed(),
        base_rate,
        startup,
    );
    proc_only.stop().await?;

    // 3. materializer alone, measured the same way
    let t = Instant::now();
    let mat = only(Stages {
        materializer: true,
        ..Stages::NONE
    })
    .await?;
    let view = mat.view.clone().expect("view");
    let applied = || {
        view.freshness()
            .iter()
            .filter(|((t, _), _)| t == "normalized.order")
            .map(|(_, o)| *o)
            .sum::<i64>()
    };
    wait_until("the materializer's first record", || Ok(applied() > 0)).await?;
    let startup = t.elapsed();
    let first = Instant::now();
    wait_until("the materializer", || Ok(applied() >= records as i64)).await?;
    report(
        "materializer normalized → view",
        records,
        first.elapsed(),
        base_rate,
        startup,
    );
    drop(view); // releases the view's RocksDB lock before the next start
    mat.stop().await?;

    // 4. webhook → queryable
    let running = app::start(&cfg, &infra, Stages::ALL, None).await?;
    let base_url = format!("http://{}", running.http_addr.expect("http"));
    let client = reqwest::Client::new();
    let mut lat = Vec::new();
    for i in 0..samples {
        let id = 800_000_000_000_000_000u64 + i as u64;
        let body = shopsim::order(
            id,
            5000,
            None,
            &[(1, 11, "Parka", "249.00", 1)],
            "10.00",
            "paid",
            "2026-11-20T10:30:00-05:00",
        );
        let d = shopsim::delivery(
            SHOP,
            SECRET,
            "orders/create",
            &body,
            &format!("lat-{i}"),
            "2026-11-20T15:30:00Z",
        );
        let path = format!(
            "{base_url}/v1/orders/{}",
            RecordKey::new(CONNECTION, Model::Order, id.to_string()).record_id()
        );
        let t = Instant::now();
        anyhow::ensure!(
            shopsim::send(&client, &base_url, CONNECTION, &d).await? == 200,
            "webhook rejected"
        );
        loop {
            if client
                .get(&path)
                .bearer_auth(API_KEY)
                .send()
                .await?
                .status()
                .as_u16()
                == 200
            {
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(30),
                "record never became queryable"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    println!("  webhook → queryable (loopback, {samples} samples)  p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms", pct(0.5), pct(0.9), pct(1.0));
    running.stop().await?;
    drop(infra);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn report(what: &str, records: usize, took: Duration, base_rate: f64, startup: Duration) {
    let rate = records as f64 / took.as_secs_f64().max(1e-9);
    println!(
        "  {what:<38} {rate:>8.0} records/s  ({:.2} s, {:.2}× baseline; start-up {:.2} s before the first record)",
        took.as_secs_f64(),
        rate / base_rate,
        startup.as_secs_f64()
    );
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ingot-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
