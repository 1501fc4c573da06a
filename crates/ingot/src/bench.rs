//! `ingot bench`: pipeline figures, each beside a baseline measured in the same run,
//! printed as a table, never asserted. Every throughput figure is taken over `runs`
//! samples after a warm-up and printed as min / median / max.
//!
//! | figure | baseline |
//! |---|---|
//! | processor core (decode → standardize → version rule → Avro), no broker | – (records/s/core) |
//! | processor through the broker (at-least-once; and exactly-once where the broker has transactions) | pass-through: consume the same raw events and produce them again, in batches of 500, each acknowledged before the next is produced (as the processor's); one sample just before each at-least-once sample of the processor |
//! | replay of one sample's raw events through a changed mapping (every record re-emitted), by the running processor | the processor through the broker (at-least-once) |
//! | materializer rebuild of the view from `normalized.order` | a plain read of the same topic |
//! | webhook → queryable over loopback, sequential; then again under a steady load of other webhooks (`--load-rate`/s) | – (p50/p90/p99/max) |
//! | webhook → signed change webhook received by a local endpoint (the same webhooks) | – (p50/p90/p99/max) |
//! | `GET /v1/orders/{id}` requests/s (4 concurrent clients, keep-alive), p50/p99/max latency | a bare axum route serving the same response bytes |
//! | range pages (`GET /v1/orders?limit=100&cursor=…`, and `limit=500`) pages/s and rows/s, latency | a bare axum route serving the same page bytes |
//! | the first page of a small tenant (10 orders) beside a big one | a bare axum route serving the same page bytes |
//! | webhook ingest: signed deliveries from 32 concurrent senders, webhooks/s answered 200 (after the acknowledged produce) | – |
//!
//! On the embedded broker by default; `--kafka HOST:PORT` runs on that Kafka instead (a
//! scratch broker: the bench deletes and re-creates ingot's topics there).

use crate::app::{self, Embedded, Infra, Stages};
use crate::demo::{demo_config, API_KEY, CONNECTION, SECRET, SHOP};
use crate::shopsim;
use ingot_kafka::{Message, Producer, Topology};
use ingot_model::{Model, RawEvent, RecordKey};
use ingot_processor::{Processor, ProcessorConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What to measure.
pub struct BenchArgs {
    /// Raw events per throughput sample.
    pub records: usize,
    /// Webhook → queryable samples.
    pub samples: usize,
    /// Throughput samples per figure (after one warm-up).
    pub runs: usize,
    /// A scratch Kafka instead of the embedded broker.
    pub kafka: Option<String>,
    /// Only the query figures (and the webhook → queryable latency): skips the processor
    /// and materializer throughput figures.
    pub queries_only: bool,
    /// Only the processor core figure, then return (for a profiler).
    pub core_only: bool,
    /// Only the materializer rebuild figure and its plain-read baseline, then return (for
    /// a profiler): the raw events go through the processor once, unmeasured, to fill
    /// `normalized.order`.
    pub rebuild_only: bool,
    /// Only the processor through the broker (at-least-once, and exactly-once where the
    /// broker has transactions) and its pass-through baseline, then return.
    pub processor_only: bool,
    /// Only the history figures, at these stored-history sizes (records).
    pub history: Vec<usize>,
    /// Webhooks/s of the steady load under which the latency is measured a second time
    /// (0: no second series).
    pub load_rate: u32,
}

/// The bench's second, small tenant: 10 orders beside the big one's `records`.
const SMALL_TENANT: &str = "small";
const SMALL_KEY: &str = "small-tenant-key";
const SMALL_CONNECTION: &str = "small-shop";
const SMALL_ORDERS: usize = 10;
/// Requests per query sample, and concurrent clients.
const QUERY_REQUESTS: usize = 2000;
const QUERY_CLIENTS: usize = 4;

async fn wait_until(what: &str, mut f: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    while !f()? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Rates of several samples.
struct Rates(Vec<f64>);

impl Rates {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn show(&self) -> String {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        format!(
            "{:>8.0} {:>8.0} {:>8.0}",
            v[0],
            self.median(),
            v[v.len() - 1]
        )
    }
}

fn row(what: &str, r: &Rates, baseline: Option<&Rates>) {
    let ratio = baseline
        .map(|b| match r.median() / b.median() {
            x if x < 0.1 => format!("{x:.3}×"),
            x => format!("{x:.2}×"),
        })
        .unwrap_or_else(|| "–".into());
    println!("| {what:<58} | {} | {ratio:>6} |", r.show());
}

/// A Shopify-size order (≈ 4 KB of JSON, 5 line items) as a raw event of `connection`.
fn raw_order(i: usize, connection: &str) -> anyhow::Result<(String, RawEvent)> {
    raw_order_of(i, "acme", connection)
}

fn raw_order_of(i: usize, tenant: &str, connection: &str) -> anyhow::Result<(String, RawEvent)> {
    let id = 900_000_000_000_000_000u64 + i as u64;
    let c = shopsim::customer(
        7_408_123_456_789_001,
        "Ada",
        "Lovelace",
        "ada@example.com",
        "2026-11-01T09:00:00-05:00",
    );
    let body = shopsim::order(
        id,
        1000 + i as u64,
        Some(&c),
        &[
            (1, 11, "Parka", "249.00", 1),
            (2, 21, "Beanie", "29.50", 2),
            (3, 31, "Gloves", "19.99", 1),
            (4, 41, "Scarf", "35.00", 1),
            (5, 51, "Socks", "9.95", 3),
        ],
        "10.00",
        "paid",
        "2026-11-20T10:30:00-05:00",
    );
    let ev = shopify_webhook(
        format!("bench-{i}"),
        tenant,
        connection,
        "orders/create",
        &body,
    )?;
    let key = RecordKey::new(connection, Model::Order, id.to_string()).to_string();
    Ok((key, ev))
}

/// A Shopify webhook's raw event carrying `body`, as ingest would store it.
fn shopify_webhook(
    event_id: String,
    tenant: &str,
    connection: &str,
    topic: &str,
    body: &serde_json::Value,
) -> anyhow::Result<RawEvent> {
    Ok(RawEvent {
        event_id,
        tenant_id: tenant.into(),
        connection_id: connection.into(),
        provider: "shopify".into(),
        topic: topic.into(),
        source: "webhook".into(),
        api_version: Some("2026-04".into()),
        received_at: "2026-11-20T15:30:00Z".into(),
        triggered_at: None,
        payload: serde_json::to_vec(body)?,
    })
}

/// `records` raw orders of `connection`, encoded for `raw.shopify`.
async fn encode_orders(
    codec: &ingot_kafka::AvroCodec,
    connection: &str,
    records: usize,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::with_capacity(records);
    for i in 0..records {
        let (key, ev) = raw_order(i, connection)?;
        out.push((key, codec.encode_raw("raw.shopify", &ev).await?));
    }
    Ok(out)
}

async fn produce_raw(producer: &Producer, encoded: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for chunk in encoded.chunks(1000) {
        let recs: Vec<ingot_kafka::OutgoingRecord<'_>> = chunk
            .iter()
            .map(|(k, v)| ingot_kafka::OutgoingRecord {
                topic: "raw.shopify",
                partition: None,
                key: k.as_bytes(),
                value: Some(v),
                headers: &[],
            })
            .collect();
        producer.send_all(&recs).await?;
    }
    Ok(())
}

fn sum_end(kafka: &ingot_kafka::KafkaSettings, topic: &str) -> anyhow::Result<i64> {
    Ok(kafka.end_offsets(topic)?.iter().map(|(_, o)| *o).sum())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let records = args.records;
    let runs = args.runs.max(1);
    let dir = tempfile_dir()?;
    let port = |_: u8| ingot_embedded::free_port();
    let mut cfg = demo_config(&format!("127.0.0.1:{}", port(0)?), &dir)?;
    cfg.tenants.push(crate::config::TenantConfig {
        id: SMALL_TENANT.into(),
        api_keys: vec![crate::config::ApiKey(SMALL_KEY.into())],
        connections: None,
        limited_keys: Vec::new(),
    });
    // the figures measure the API, not its per-key rate limit (600/min by default: a
    // latency poll would wait out the limiter's 100 ms slots)
    cfg.http.rate_limit_per_minute = 0;
    cfg.embedded.kafka_port = port(1)?;
    cfg.embedded.registry_port = port(2)?;
    // the throughput figures read the same topics several times and compare counts: the
    // embedded broker's compaction pass (every 10 s by default) would remove the replay's
    // superseded records between two reads. The history figures keep it, as a user's
    // broker runs it.
    if args.history.is_empty() {
        cfg.embedded.compaction_interval_secs = 3600;
    }
    if let Some(b) = &args.kafka {
        Topology::builtin()
            .delete_all(&ingot_kafka::KafkaSettings::new(b.clone()))
            .await?;
        cfg.kafka = Some(crate::config::KafkaConfig {
            bootstrap_servers: b.clone(),
            properties: Default::default(),
            replication_factor: 1,
            exactly_once: true,
        });
    }
    let infra = Infra::start(&cfg, Embedded::Start).await?;
    let kafka = infra.kafka.clone();
    let codec = infra.codec()?;
    let producer = Producer::new(&kafka)?;
    let broker = match &args.kafka {
        Some(b) => format!("Kafka at {b}"),
        None => "the embedded broker (Tansu 0.6, sqlite)".to_string(),
    };
    println!(
        "ingot bench: {records} Shopify orders (≈ 4 KB, 5 line items) per sample, {runs} samples after a warm-up, on {broker}; \
         build profile: {}",
        if cfg!(debug_assertions) { "dev (dependencies at opt-level 2)" } else { "release" }
    );
    if !args.history.is_empty() {
        println!("history figures, probe of {records} orders per level\n");
        history(&cfg, &infra, &producer, &codec, &args, records).await?;
        return finish(producer, infra, &dir);
    }
    let encoded = encode_orders(&codec, CONNECTION, records).await?;
    let body = raw_order(0, CONNECTION)?.1.payload.len();
    println!("webhook body {body} bytes\n");
    println!("| figure | min | median | max | × baseline |");
    println!("|---|---|---|---|---|");

    // 0. produce the raw events (also the broker's own write rate)
    let t = Instant::now();
    produce_raw(&producer, &encoded).await?;
    let produce = Rates(vec![records as f64 / t.elapsed().as_secs_f64()]);
    row(
        "produce the raw events (acks=all, one sample)",
        &produce,
        None,
    );

    if args.rebuild_only {
        fill_normalized(&kafka, &codec, &dir, runs, records).await?;
        rebuild(&cfg, &infra, &kafka, &dir, runs).await?;
        return finish(producer, infra, &dir);
    }

    if !args.queries_only {
        // 1. processor core, no broker: the same events as messages, planned in batches of 500
        {
            let msgs: Vec<Message> = encoded
                .iter()
                .enumerate()
                .map(|(i, (k, v))| Message {
                    topic: "raw.shopify".into(),
                    partition: (i % 3) as i32,
                    offset: i as i64,
                    key: Some(k.as_bytes().to_vec()),
                    value: Some(v.clone()),
                    headers: Vec::new(),
                    timestamp_ms: None,
                })
                .collect();
            // one task: the figure is per core
            let mut pc = ProcessorConfig::new(dir.join("core-state"));
            pc.standardize_tasks = 1;
            let p = Processor::open(pc, kafka.clone(), codec.clone()).await?;
            let mut rates = Vec::new();
            for sample in 0..=runs {
                let t = Instant::now();
                let mut emitted = 0;
                for batch in msgs.chunks(500) {
                    emitted += p.plan_only(batch).await?.emitted;
                }
                anyhow::ensure!(emitted == records as u64, "core emitted {emitted}");
                if sample > 0 {
                    rates.push(records as f64 / t.elapsed().as_secs_f64());
                }
            }
            row(
                "processor core: decode → standardize → version rule → Avro",
                &Rates(rates),
                None,
            );
        }
        if args.core_only {
            return finish(producer, infra, &dir);
        }

        // 2. baseline: pass-through consume → produce of the same raw events, one sample
        // just before each at-least-once sample of the processor (below), so each pair
        // meets the broker in the same state (single samples drifted by a third across a
        // run when the baseline's samples all ran first)
        let mut pass = Rates(Vec::new());

        // 3. the processor through the broker: a fresh group and state per sample
        let modes: &[bool] = if kafka.capabilities.transactions {
            &[false, true]
        } else {
            &[false]
        };
        let mut alo_rates = None;
        let mut replay_rates = Vec::new();
        for &eos in modes {
            let mut rates = Vec::new();
            for sample in 0..=runs {
                if !eos {
                    let rate =
                        pass_through(&kafka, &format!("bench-pass-{sample}"), records).await?;
                    if sample > 0 {
                        pass.0.push(rate);
                    }
                }
                // new records for each sample (the version changelog remembers earlier ones);
                // the earlier samples' raw events are read and dropped before the first output
                let fresh =
                    encode_orders(&codec, &format!("bench-{eos}-{sample}"), records).await?;
                produce_raw(&producer, &fresh).await?;
                let mut pc = ProcessorConfig::new(dir.join(format!("proc-{eos}-{sample}")));
                pc.group_id = format!("bench-processor-{eos}-{sample}");
                pc.exactly_once = eos;
                let p = Processor::open(pc, kafka.clone(), codec.clone()).await?;
                let start = sum_end(&kafka, "normalized.order")?;
                let (tx, rx) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(p.run(rx));
                let k = kafka.clone();
                wait_until("the processor's first output", || {
                    Ok(sum_end(&k, "normalized.order")? > start)
                })
                .await?;
                let t = Instant::now();
                let window = (!eos).then(|| ProfileWindow::enable("processor"));
                // exactly-once: the end offsets also count one commit marker per partition and
                // transaction (< 1 % of the offsets with batches of 500)
                wait_until("the processor", || {
                    Ok(sum_end(&k, "normalized.order")? - start >= records as i64)
                })
                .await?;
                let took = t.elapsed();
                drop(window);
                let _ = tx.send(true);
                task.await??;
                if sample > 0 {
                    rates.push(records as f64 / took.as_secs_f64());
                }
                if !eos && !args.processor_only {
                    // the same records replayed through a mapping revision that changes them
                    let rate = replay_sample(&kafka, &codec, &dir, sample, records).await?;
                    if sample > 0 {
                        replay_rates.push(rate);
                    }
                }
            }
            let rates = Rates(rates);
            if !eos {
                row(
                    "baseline: pass-through consume raw → produce (same broker)",
                    &pass,
                    None,
                );
            }
            let what = if eos {
                "processor through the broker, exactly-once (transactions)"
            } else {
                "processor through the broker, at-least-once"
            };
            row(what, &rates, Some(&pass));
            if eos {
                if let Some(alo) = &alo_rates {
                    row("  exactly-once vs at-least-once", &rates, Some(alo));
                }
            } else {
                if !args.processor_only {
                    row(
                        "replay through a changed mapping (all re-emitted), at-least-once",
                        &Rates(std::mem::take(&mut replay_rates)),
                        Some(&rates),
                    );
                }
                alo_rates = Some(rates);
            }
        }
        if args.processor_only {
            return finish(producer, infra, &dir);
        }

        rebuild(&cfg, &infra, &kafka, &dir, runs).await?;
    }

    // 5. webhook → queryable, sequential; the processor group first catches up with the
    // raw events of the figures above
    let running = app::start(&cfg, &infra, Stages::ALL, None).await?;
    processor_caught_up(&cfg, &kafka).await?;
    let base_url = format!("http://{}", running.http_addr.expect("http"));
    let client = reqwest::Client::new();
    // an ISV endpoint for order.created, subscribed once the forwarder has read the
    // figures' records (so only the samples below are delivered to it)
    group_caught_up(
        &kafka,
        &cfg.forwarder.group_id,
        &[Model::Order.normalized_topic()],
        i64::from(kafka.capabilities.transactions),
    )
    .await?;
    let changes = subscribe_receiver(&client, &base_url).await?;
    // sequential, then again under a steady load of other senders' webhooks
    let view = running.view.clone().expect("view");
    let mut sequential = latencies(&client, &base_url, &changes, 0, args.samples).await?;
    sequential.backlog = pipeline_backlog(&cfg, &kafka, &view).await?;
    print_latencies("sequential", sequential);
    if args.load_rate > 0 {
        let (stop, load) = steady_load(&base_url, args.load_rate, 0);
        let (stop_sampling, sampling) = sample_lag(&cfg, &kafka, &view);
        let mut under_load = latencies(&client, &base_url, &changes, 1, args.samples).await;
        let _ = stop_sampling.send(true);
        let lags = sampling.await??;
        // where the pipeline stood at the series' end, before the load stops
        if let Ok(l) = &mut under_load {
            l.backlog = format!(
                "{}\n  {}",
                pipeline_backlog(&cfg, &kafka, &view).await?,
                lag_line(&lags)
            );
        }
        let _ = stop.send(true);
        let (sent, took) = load.await??;
        print_latencies(
            &format!(
                "under a load of {:.0} other webhooks/s (asked {}, {LOAD_SENDERS} senders)",
                sent as f64 / took.as_secs_f64(),
                args.load_rate
            ),
            under_load?,
        );
    }
    // 6. the query API beside a bare axum route serving the same bytes
    queries(&running, &kafka, &producer, &codec, runs).await?;
    // 7. webhook ingest under concurrent senders: signed deliveries, each 200 only after
    // the acknowledged produce to the raw topic
    let ingest = ingest_rates(&base_url, records.min(5000), runs).await?;
    println!();
    println!("| figure | min | median | max | × baseline |");
    println!("|---|---|---|---|---|");
    row(
        &format!("webhook ingest, {INGEST_SENDERS} concurrent senders (webhooks/s accepted)"),
        &ingest,
        None,
    );
    running.stop().await?;
    drop(infra);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The processor group's id and the raw topics it reads.
fn processor_group(cfg: &crate::config::Config) -> (String, Vec<String>) {
    let group = cfg
        .processor
        .group_id
        .clone()
        .unwrap_or_else(|| "ingot-processor".into());
    let topics = ingot_model::Provider::ALL
        .iter()
        .map(|p| p.raw_topic())
        .collect();
    (group, topics)
}

/// A background task of the bench, stopped by sending `true` on its channel.
type Stoppable<T> = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<T>>,
);

/// The processor's lag (raw events not committed) and the view's (`normalized.order`
/// records not applied), sampled every second until `true` is sent on the returned
/// channel; the task returns the samples, in order. The broker's offsets are read on a
/// blocking thread, so the pipeline's own runtime workers are not held.
fn sample_lag(
    cfg: &crate::config::Config,
    kafka: &ingot_kafka::KafkaSettings,
    view: &ingot_materializer::View,
) -> Stoppable<Vec<(i64, i64)>> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (group, topics) = processor_group(cfg);
    let (kafka, view) = (kafka.clone(), view.clone());
    let task = tokio::spawn(async move {
        let topic = Model::Order.normalized_topic();
        // a transactional topic ends in a commit marker no applied offset passes
        let slack = i64::from(kafka.capabilities.transactions);
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => return Ok(samples),
            }
            let processor = group_lag(&kafka, &group, &topics, 0).await?;
            let (k, t) = (kafka.clone(), topic.clone());
            let ends = tokio::task::spawn_blocking(move || k.end_offsets(&t)).await??;
            let viewed: i64 = ends
                .iter()
                .map(|&(p, end)| (end - view.next_offset(&topic, p).unwrap_or(0) - slack).max(0))
                .sum();
            samples.push((processor, viewed));
        }
    });
    (stop, task)
}

/// The lag samples of [`sample_lag`] as one line: the largest of each, and the processor's
/// and the view's largest lag in each 10 s of the series.
fn lag_line(samples: &[(i64, i64)]) -> String {
    let max =
        |f: fn(&(i64, i64)) -> i64, part: &[(i64, i64)]| part.iter().map(f).max().unwrap_or(0);
    let windows = |f: fn(&(i64, i64)) -> i64| {
        samples
            .chunks(10)
            .map(|w| max(f, w).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "lag sampled each second over {} s: processor at most {} raw events, view at most {} records; by 10 s, processor: {}; view: {}",
        samples.len(),
        max(|s| s.0, samples),
        max(|s| s.1, samples),
        windows(|s| s.0),
        windows(|s| s.1),
    )
}

/// Where a pipeline is behind: raw events the processor has not committed, and the view's
/// compaction backlog (what a latency series that was cut short prints).
async fn pipeline_backlog(
    cfg: &crate::config::Config,
    kafka: &ingot_kafka::KafkaSettings,
    view: &ingot_materializer::View,
) -> anyhow::Result<String> {
    let (group, topics) = processor_group(cfg);
    let lag = group_lag(kafka, &group, &topics, 0).await?;
    let b = view.backlog()?;
    Ok(format!(
        "processor {lag} raw events behind; view: {} level-0 files, {:.0} MB of compaction debt, {} compactions running, {} write stalls so far, {:.0} MB on disk",
        b.l0_files,
        b.pending_compaction_bytes as f64 / 1e6,
        b.running_compactions,
        b.write_stalls,
        b.live_bytes as f64 / 1e6
    ))
}

/// Waits until the processor group has committed every raw event (15 min at most).
async fn processor_caught_up(
    cfg: &crate::config::Config,
    kafka: &ingot_kafka::KafkaSettings,
) -> anyhow::Result<()> {
    let (group, topics) = processor_group(cfg);
    group_caught_up(kafka, &group, &topics, 0).await
}

/// Records of `topics` that consumer group `group` has not committed yet, beyond `slack`
/// per partition (see [`group_caught_up`]).
async fn group_lag(
    kafka: &ingot_kafka::KafkaSettings,
    group: &str,
    topics: &[String],
    slack: i64,
) -> anyhow::Result<i64> {
    let mut behind = 0i64;
    for topic in topics {
        let committed = kafka.committed_offsets(group, topic).await?;
        // a blocking client call: on a blocking thread, not the pipeline's runtime workers
        let (k, t) = (kafka.clone(), topic.clone());
        for (part, end) in tokio::task::spawn_blocking(move || k.end_offsets(&t)).await?? {
            let c = committed
                .iter()
                .find(|(q, _)| *q == part)
                .and_then(|(_, o)| *o)
                .unwrap_or(0);
            behind += (end - c - slack).max(0);
        }
    }
    Ok(behind)
}

/// Waits until consumer group `group` has committed every record of `topics` (15 min at
/// most), allowing `slack` offsets per partition (1 where the topics are written in
/// transactions: a topic then ends in a commit marker, which no committed offset passes).
async fn group_caught_up(
    kafka: &ingot_kafka::KafkaSettings,
    group: &str,
    topics: &[String],
    slack: i64,
) -> anyhow::Result<()> {
    let caught_up = Instant::now();
    loop {
        let behind = group_lag(kafka, group, topics, slack).await?;
        if behind == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            caught_up.elapsed() < Duration::from_secs(900),
            "group {group} did not catch up ({behind} records behind)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A [`change_receiver`] subscribed to `order.created` as an endpoint of the API at
/// `base_url`.
async fn subscribe_receiver(client: &reqwest::Client, base_url: &str) -> anyhow::Result<Changes> {
    let (receiver, changes) = change_receiver().await?;
    let r = client
        .post(format!("{base_url}/v1/webhook-endpoints"))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"url": receiver, "events": ["order.created"]}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "endpoint not created: {}",
        r.text().await?
    );
    Ok(changes)
}

/// Arrival times of change webhooks by the order's remote id ([`change_receiver`]).
type Changes = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// A receiver of change webhooks on loopback: the arrival time of each `order.created`
/// by the order's remote id.
async fn change_receiver() -> anyhow::Result<(String, Changes)> {
    let got: Changes = Default::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/changes",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                    if let Some(id) = v["data"]["remote_id"].as_str() {
                        store
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(id.to_string())
                            .or_insert(at);
                    }
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/changes", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, got))
}

/// Waits until the view holds every record id of `ids` (`model`), 30 min at most.
async fn view_holds(
    view: &ingot_materializer::View,
    model: Model,
    ids: &[String],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut missing: Vec<&String> = ids.iter().collect();
    loop {
        let mut still = Vec::new();
        for id in missing {
            if view.get(model, id)?.is_none() {
                still.push(id);
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} records never reached the view",
            still.len()
        );
        missing = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The history figures: the whole pipeline running (processor, materializer, API), the
/// stored history grown to each of `args.history` records with customers (≈ 1 KB each),
/// and at each level: raw → queryable for a probe of `probe` new orders (records/s from
/// the produce's start to the last order in the view), point GETs of the probe's orders,
/// what the view keeps in memory beyond the shared cache, its compaction backlog, and
/// webhook → queryable for `args.samples` webhooks under the `args.load_rate` load.
async fn history(
    cfg: &crate::config::Config,
    infra: &Infra,
    producer: &Producer,
    codec: &ingot_kafka::AvroCodec,
    args: &BenchArgs,
    probe: usize,
) -> anyhow::Result<()> {
    let running = app::start(cfg, infra, Stages::ALL, None).await?;
    // the pipeline is stopped on an error too, before the broker it reads goes away
    let result = history_levels(cfg, &running, infra, producer, codec, args, probe).await;
    running.stop().await?;
    result
}

/// The levels of [`history`], on the `running` pipeline.
async fn history_levels(
    cfg: &crate::config::Config,
    running: &app::Running,
    infra: &Infra,
    producer: &Producer,
    codec: &ingot_kafka::AvroCodec,
    args: &BenchArgs,
    probe: usize,
) -> anyhow::Result<()> {
    let view = running.view.clone().expect("view");
    let base = format!("http://{}", running.http_addr.expect("http"));
    let client = reqwest::Client::new();
    let changes = subscribe_receiver(&client, &base).await?;
    let mut latency_lines = Vec::new();
    println!("| history (records stored) | raw → queryable, records/s | GET /v1/orders/{{id}}, req/s | view beyond the cache, MB per million keys | fill, records/s |");
    println!("|---|---|---|---|---|");
    let mut stored = 0usize;
    let mut customer_ids = Vec::new();
    let mut backlogs = Vec::new();
    for (level_no, &level) in args.history.iter().enumerate() {
        // fill: customers up to `level`, in chunks
        let t = Instant::now();
        let from = stored;
        while stored < level {
            let n = (level - stored).min(10_000);
            let mut chunk = Vec::with_capacity(n);
            for i in stored..stored + n {
                let id = 700_000_000_000_000_000u64 + i as u64;
                let c = shopsim::customer(
                    id,
                    "Grace",
                    "Hopper",
                    &format!("grace-{i}@example.com"),
                    "2026-11-01T09:00:00-05:00",
                );
                let ev = shopify_webhook(
                    format!("history-{i}"),
                    "acme",
                    CONNECTION,
                    "customers/create",
                    &c,
                )?;
                let key = RecordKey::new(CONNECTION, Model::Customer, id.to_string());
                if i + 1 == level {
                    customer_ids.push(key.record_id());
                }
                chunk.push((key.to_string(), codec.encode_raw("raw.shopify", &ev).await?));
            }
            produce_raw(producer, &chunk).await?;
            stored += n;
        }
        processor_caught_up(cfg, &infra.kafka).await?;
        view_holds(&view, Model::Customer, &customer_ids).await?;
        let fill = (stored - from) as f64 / t.elapsed().as_secs_f64();
        // probe: new orders through the whole pipeline
        let tag = format!("history-probe-{level_no}");
        let mut probe_events = Vec::with_capacity(probe);
        let mut ids = Vec::with_capacity(probe);
        for i in 0..probe {
            let (key, ev) = raw_order_of(level_no * probe + i, "acme", CONNECTION)?;
            let mut ev = ev;
            ev.event_id = format!("{tag}-{i}");
            ids.push(key.parse::<RecordKey>()?.record_id());
            probe_events.push((key, codec.encode_raw("raw.shopify", &ev).await?));
        }
        let before = view.backlog()?;
        let t = Instant::now();
        produce_raw(producer, &probe_events).await?;
        view_holds(&view, Model::Order, &ids).await?;
        let rate = probe as f64 / t.elapsed().as_secs_f64();
        let after = view.backlog()?;
        backlogs.push(format!(
            "| {stored} | {} → {} | {:.0} → {:.0} | {} → {} | {} → {} | {:.0} |",
            before.l0_files,
            after.l0_files,
            before.pending_compaction_bytes as f64 / 1e6,
            after.pending_compaction_bytes as f64 / 1e6,
            before.running_compactions,
            after.running_compactions,
            before.write_stalls,
            after.write_stalls,
            after.live_bytes as f64 / 1e6,
        ));
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("{base}/v1/orders/{id}"))
            .collect();
        let (gets, _) = load(&urls, API_KEY, QUERY_REQUESTS, QUERY_CLIENTS).await?;
        // webhook → queryable at this history, under the steady load (or alone)
        if args.samples > 0 {
            let series = 10 + level_no as u64;
            let load = (args.load_rate > 0).then(|| steady_load(&base, args.load_rate, series));
            let window = ProfileWindow::enable("history-latency");
            let (stop_sampling, sampling) = sample_lag(cfg, &infra.kafka, &view);
            let mut l = latencies(&client, &base, &changes, series, args.samples).await;
            drop(window);
            let _ = stop_sampling.send(true);
            let lags = sampling.await??;
            if let Ok(l) = &mut l {
                l.backlog = format!(
                    "{}\n  {}",
                    pipeline_backlog(cfg, &infra.kafka, &view).await?,
                    lag_line(&lags)
                );
            }
            let how = match load {
                Some((stop, load)) => {
                    let _ = stop.send(true);
                    let (sent, took) = load.await??;
                    format!(
                        "at {stored} records stored, under a load of {:.0} other webhooks/s",
                        sent as f64 / took.as_secs_f64()
                    )
                }
                None => format!("at {stored} records stored, sequential"),
            };
            latency_lines.push((how, l?));
        }
        let m = view.memory(false)?;
        let per_million = m.table_readers as f64 * 1e6 / m.keys.max(1) as f64 / 1e6;
        println!(
            "| {} | {rate:.0} | {gets:.0} | {per_million:.2} | {fill:.0} |",
            m.keys
        );
    }
    println!();
    println!("| history (records produced) | view level-0 files, before → after the probe | compaction debt, MB | compactions running | write stalls so far | view on disk, MB |");
    println!("|---|---|---|---|---|---|");
    for line in backlogs {
        println!("{line}");
    }
    for (how, l) in latency_lines {
        println!();
        print_latencies(&how, l);
    }
    Ok(())
}

/// The materializer rebuild figure beside its baseline, then the memory figures: a plain
/// read of `normalized.order`, and a view rebuilt from it in a fresh data directory per
/// sample (`mat-<sample>`).
async fn rebuild(
    cfg: &crate::config::Config,
    infra: &Infra,
    kafka: &ingot_kafka::KafkaSettings,
    dir: &std::path::Path,
    runs: usize,
) -> anyhow::Result<()> {
    // 4. materializer rebuild vs a plain read of the same topic; the rebuild ends when
    // the view has applied the last record of every partition (not at readiness, which
    // counts an EOF of any topic's partition p: see docs/figures.md)
    let read = kafka.read_all("normalized.order").await?;
    let total = read.len();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for m in &read {
        let at = last.entry(m.partition).or_insert(m.offset);
        *at = (*at).max(m.offset);
    }
    drop(read);
    let mut plain = Vec::new();
    for sample in 0..=runs {
        let t = Instant::now();
        let n = kafka.read_all("normalized.order").await?.len();
        anyhow::ensure!(n == total, "plain read got {n} of {total}");
        if sample > 0 {
            plain.push(total as f64 / t.elapsed().as_secs_f64());
        }
    }
    let plain = Rates(plain);
    row(
        &format!("baseline: plain read of normalized.order ({total} records)"),
        &plain,
        None,
    );
    let mut mat = Vec::new();
    for sample in 0..=runs {
        let mut c = cfg.clone();
        c.storage.data_dir = dir.join(format!("mat-{sample}"));
        let t = Instant::now();
        let m = app::start(
            &c,
            infra,
            Stages {
                materializer: true,
                ..Stages::NONE
            },
            None,
        )
        .await?;
        let view = m.view.clone().expect("view");
        wait_until("the materializer", || {
            let applied = view.freshness();
            Ok(last.iter().all(|(&p, &offset)| {
                applied
                    .get(&("normalized.order".to_string(), p))
                    .is_some_and(|&next| next > offset)
            }))
        })
        .await?;
        let took = t.elapsed();
        drop(view);
        m.stop().await?;
        if sample > 0 {
            mat.push(total as f64 / took.as_secs_f64());
        }
    }
    row(
        "materializer: rebuild the view from normalized.order",
        &Rates(mat),
        Some(&plain),
    );
    memory(dir, runs)
}

/// Runs the at-least-once processor (state `proc-false-<runs>`, which the memory figure
/// reads) over the raw events already produced until `normalized.order` holds `records`
/// more records: the input of [`rebuild`] for `--rebuild-only`.
async fn fill_normalized(
    kafka: &ingot_kafka::KafkaSettings,
    codec: &ingot_kafka::AvroCodec,
    dir: &std::path::Path,
    runs: usize,
    records: usize,
) -> anyhow::Result<()> {
    let mut pc = ProcessorConfig::new(dir.join(format!("proc-false-{runs}")));
    pc.group_id = "bench-rebuild-fill".into();
    pc.exactly_once = false;
    let p = Processor::open(pc, kafka.clone(), codec.clone()).await?;
    let start = sum_end(kafka, "normalized.order")?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(p.run(rx));
    wait_until("the processor", || {
        Ok(sum_end(kafka, "normalized.order")? - start >= records as i64)
    })
    .await?;
    let _ = tx.send(true);
    task.await??;
    Ok(())
}

/// What the view of the last rebuild and the state of the last at-least-once processor
/// sample keep in memory beyond the shared RocksDB cache, once their memtables are
/// flushed: the part that grows with the keys stored.
fn memory(dir: &std::path::Path, runs: usize) -> anyhow::Result<()> {
    let view = ingot_materializer::View::open(&dir.join(format!("mat-{runs}")).join("view"))?
        .memory(true)?;
    let state =
        ingot_processor::StateStore::open(&dir.join(format!("proc-false-{runs}")))?.memory(true)?;
    println!();
    for (what, m) in [("view", view), ("processor state", state)] {
        let per_million = m.table_readers as f64 * 1e6 / m.keys.max(1) as f64;
        println!(
            "memory, {what}: {} keys; beyond the shared cache (budget {} MiB, {} MiB in use): table readers {:.1} KiB, memtables {:.1} KiB after a flush → {:.2} MB per million keys",
            m.keys,
            m.budget >> 20,
            m.cache >> 20,
            m.table_readers as f64 / 1024.0,
            m.memtables as f64 / 1024.0,
            per_million / 1e6,
        );
    }
    Ok(())
}

/// Consumes `records` raw events with a fresh group and produces each again (to
/// `raw.dlq`, which no stage consumes), waiting for the acks: the floor
/// any consume → produce stage has on this broker. Records/s from the first message.
/// A Shopify mapping revision that changes every order (its note), for the replay figure.
struct Revised(&'static str);

impl ingot_standardize::Mapping for Revised {
    fn provider(&self) -> ingot_model::Provider {
        ingot_model::Provider::Shopify
    }
    fn mapping_version(&self) -> &'static str {
        self.0
    }
    fn route(&self, topic: &str) -> Option<(Model, ingot_model::RawOp)> {
        ingot_standardize::shopify::ShopifyMapping.route(topic)
    }
    fn standardize(
        &self,
        e: &RawEvent,
    ) -> Result<ingot_standardize::Outcome, ingot_standardize::StandardizeError> {
        use ingot_standardize::{Outcome, Standardized};
        let mut r = ingot_standardize::shopify::ShopifyMapping.standardize(e)?;
        if let Outcome::Record(Standardized::Upsert {
            data: ingot_model::RecordData::Order(o),
            ..
        }) = &mut r
        {
            o.note = Some(format!("revised by {}", self.0));
        }
        Ok(r)
    }
}

/// Replays sample `sample`'s raw events (connection `bench-false-<sample>`) with the
/// processor of that sample restarted on a new mapping revision; raw events/s from the
/// request to the end of the replay.
async fn replay_sample(
    kafka: &ingot_kafka::KafkaSettings,
    codec: &ingot_kafka::AvroCodec,
    dir: &std::path::Path,
    sample: usize,
    records: usize,
) -> anyhow::Result<f64> {
    let version: &'static str = Box::leak(format!("shopify/{}", sample + 2).into_boxed_str());
    let mut pc = ProcessorConfig::new(dir.join(format!("proc-false-{sample}")));
    pc.group_id = format!("bench-processor-false-{sample}");
    pc.mapping_override = Some(ingot_processor::MappingOverride(std::sync::Arc::new(
        Revised(version),
    )));
    let p = Processor::open(pc, kafka.clone(), codec.clone()).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(p.run(rx));
    let mut spec = ingot_model::replay::ReplaySpec::new(
        ingot_model::replay::ReplaySource::Raw,
        ingot_sync::replays::units(kafka)?,
    );
    spec.connection_ids = vec![format!("bench-false-{sample}")];
    let t = Instant::now();
    ingot_sync::replays::submit(kafka, &spec).await?;
    let status = loop {
        let book = ingot_sync::replays::read_book(kafka).await?;
        if let Some(st) = book.status(&spec.id).filter(|s| s.finished()) {
            break st;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(600),
            "the replay did not end"
        );
        // each look reads the control topic with a new consumer: not too often
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = t.elapsed();
    let _ = tx.send(true);
    task.await??;
    // the restarted processor may re-process its last uncommitted live batch with the new
    // revision first; the replay then finds those records unchanged
    anyhow::ensure!(
        status.counts.read == records as u64
            && status.counts.reemitted + status.counts.unchanged == records as u64,
        "replay read {} and re-emitted {} of {records}",
        status.counts.read,
        status.counts.reemitted
    );
    Ok(records as f64 / took.as_secs_f64())
}

/// Ends a run that stops after one part: the producer goes before the embedded broker it
/// talks to, then the scratch directory.
fn finish(producer: Producer, infra: Infra, dir: &std::path::Path) -> anyhow::Result<()> {
    drop(producer);
    drop(infra);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// The pass-through baseline: consumes `records` raw events in batches of up to 500 and
/// produces each batch again (to `raw.dlq`), acknowledged before the next is produced,
/// as the processor produces (librdkafka prefetches the next batch meanwhile).
/// Records/s from the first record consumed to the last acknowledgement.
async fn pass_through(
    kafka: &ingot_kafka::KafkaSettings,
    group: &str,
    records: usize,
) -> anyhow::Result<f64> {
    use ingot_kafka::Consumer as _;
    let (consumer, _) = ingot_kafka::create_group_consumer(kafka, group, false)?;
    consumer.subscribe(&["raw.shopify"])?;
    let producer = Producer::new(kafka)?;
    let mut seen = 0usize;
    let mut started = None;
    let mut window = None;
    while seen < records {
        let mut batch = Vec::new();
        let m = consumer.recv().await;
        match m {
            Ok(m) => batch.push(Message::from_borrowed(&m)),
            Err(ingot_kafka::RdKafkaError::PartitionEOF(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        if started.is_none() {
            started = Some(Instant::now());
            window = Some(ProfileWindow::enable("pass-through"));
        }
        while batch.len() < 500 {
            match tokio::time::timeout(Duration::from_millis(5), consumer.recv()).await {
                Ok(Ok(m)) => batch.push(Message::from_borrowed(&m)),
                _ => break,
            }
        }
        let recs: Vec<ingot_kafka::OutgoingRecord<'_>> = batch
            .iter()
            .map(|m| ingot_kafka::OutgoingRecord {
                topic: "raw.dlq",
                partition: None,
                key: m.key.as_deref().unwrap_or_default(),
                value: m.value.as_deref(),
                headers: &[],
            })
            .collect();
        producer.send_all(&recs).await?;
        seen += batch.len();
    }
    let rate = records as f64 / started.expect("started").elapsed().as_secs_f64();
    drop(window);
    Ok(rate)
}

/// A profiler's window: with `INGOT_BENCH_PERF_CTL` naming the control FIFO of a
/// `perf record --control fifo:<path> -D -1 …` (started disabled), sends `enable` when
/// made and `disable` when dropped, so the profile holds only the timed windows of one
/// figure: `INGOT_BENCH_PERF_WINDOW` (`processor`, the default, `pass-through`, or
/// `history-latency`: the latency series of `--history`, each level's).
/// Without the variable, or when the FIFO cannot be opened or written, it does nothing
/// (the figure is measured the same way). Opening a FIFO waits for its reader: start
/// `perf` first.
struct ProfileWindow(Option<std::fs::File>);

impl ProfileWindow {
    fn enable(figure: &str) -> Self {
        let wanted = std::env::var("INGOT_BENCH_PERF_WINDOW");
        if wanted.as_deref().unwrap_or("processor") != figure {
            return ProfileWindow(None);
        }
        let ctl = std::env::var_os("INGOT_BENCH_PERF_CTL").and_then(|path| {
            let mut f = std::fs::OpenOptions::new().write(true).open(path).ok()?;
            std::io::Write::write_all(&mut f, b"enable\n").ok()?;
            Some(f)
        });
        ProfileWindow(ctl)
    }
}

impl Drop for ProfileWindow {
    fn drop(&mut self) {
        if let Some(f) = &mut self.0 {
            let _ = std::io::Write::write_all(f, b"disable\n");
        }
    }
}

/// A signed Shopify delivery of a one-line order `id` (the latency and ingest figures).
fn signed_order(id: u64, topic: &str, event_id: &str) -> shopsim::Delivery {
    let body = shopsim::order(
        id,
        5000,
        None,
        &[(1, 11, "Parka", "249.00", 1)],
        "10.00",
        "paid",
        "2026-11-20T10:30:00-05:00",
    );
    shopsim::delivery(SHOP, SECRET, topic, &body, event_id, "2026-11-20T15:30:00Z")
}

/// The latency series of [`latencies`], in the order sent.
struct Latencies {
    queryable: Vec<Duration>,
    forwarded: Vec<Duration>,
    /// Why the series ended before `samples`: a probe that was not queryable (or not
    /// forwarded) within 30 s.
    cut_short: Option<String>,
    /// Where the pipeline was behind at the series' end ([`pipeline_backlog`]).
    backlog: String,
}

/// Webhook → queryable, and webhook → change webhook received at `changes`' endpoint, for
/// `samples` sequential `orders/create` webhooks of new orders (ids of `series`), after one
/// warm-up (whose wait also lets the view apply what came before, 15 min at most; past
/// that it is an error). A later probe past 30 s ends the series with what it has.
async fn latencies(
    client: &reqwest::Client,
    base_url: &str,
    changes: &std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    series: u64,
    samples: usize,
) -> anyhow::Result<Latencies> {
    let mut l = Latencies {
        queryable: Vec::with_capacity(samples),
        forwarded: Vec::with_capacity(samples),
        cut_short: None,
        backlog: String::new(),
    };
    for i in 0..=samples {
        let id = 800_000_000_000_000_000u64 + series * 10_000_000 + i as u64;
        let limit = Duration::from_secs(if i == 0 { 900 } else { 30 });
        let tag = format!("lat-{series}-{i}");
        match probe(client, base_url, changes, id, &tag, limit).await? {
            Ok(_) if i == 0 => {}
            Ok((queryable, forwarded)) => {
                l.queryable.push(queryable);
                l.forwarded.push(forwarded);
            }
            Err(what) => {
                anyhow::ensure!(i > 0, "the warm-up webhook was {what} within 15 min");
                l.cut_short = Some(format!("probe {i} of {samples} was {what} within 30 s"));
                break;
            }
        }
    }
    Ok(l)
}

/// One probe of [`latencies`]: a signed `orders/create` webhook of order `id`, then the
/// time until `GET /v1/orders/{id}` answers 200 and until its change webhook reached
/// `changes`, polled every millisecond; `Err` names what did not happen within `limit`.
async fn probe(
    client: &reqwest::Client,
    base_url: &str,
    changes: &std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    id: u64,
    event_id: &str,
    limit: Duration,
) -> anyhow::Result<Result<(Duration, Duration), &'static str>> {
    let d = signed_order(id, "orders/create", event_id);
    let path = format!(
        "{base_url}/v1/orders/{}",
        RecordKey::new(CONNECTION, Model::Order, id.to_string()).record_id()
    );
    let t = Instant::now();
    anyhow::ensure!(
        shopsim::send(client, base_url, CONNECTION, &d).await? == 200,
        "webhook rejected"
    );
    loop {
        let s = client
            .get(&path)
            .bearer_auth(API_KEY)
            .send()
            .await?
            .status();
        if s.as_u16() == 200 {
            break;
        }
        if t.elapsed() > limit {
            return Ok(Err("not queryable"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let queryable = t.elapsed();
    let key = id.to_string();
    loop {
        if let Some(at) = changes.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Ok((queryable, at.duration_since(t))));
        }
        if t.elapsed() > limit {
            return Ok(Err("not forwarded"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Prints p50/p90/p99/max of both series of [`latencies`], the p50 of their first and
/// last hundred probes (a latency that drifts up shows there), and why a series was cut
/// short.
fn print_latencies(how: &str, l: Latencies) {
    for (what, mut lat) in [
        ("webhook → queryable", l.queryable),
        (
            "webhook → change webhook received (order.created)",
            l.forwarded,
        ),
    ] {
        if lat.is_empty() {
            continue;
        }
        let p50_of = |part: &[Duration]| {
            let mut part = part.to_vec();
            part.sort();
            ms_at(&part, 0.5)
        };
        let (first, last) = (
            p50_of(&lat[..lat.len().min(100)]),
            p50_of(&lat[lat.len().saturating_sub(100)..]),
        );
        lat.sort();
        println!(
            "{what} over loopback, {} webhooks, {how}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (p50 of the first 100 {first:.1} ms, of the last 100 {last:.1} ms)",
            lat.len(),
            ms_at(&lat, 0.5),
            ms_at(&lat, 0.9),
            ms_at(&lat, 0.99),
            ms_at(&lat, 1.0)
        );
    }
    if let Some(why) = l.cut_short {
        println!("  {how}: the series ended early: {why}");
    }
    if !l.backlog.is_empty() {
        println!("  {how}, at the end: {}", l.backlog);
    }
}

/// Senders of the steady load under which the second latency series is measured.
const LOAD_SENDERS: usize = 8;

/// A steady load beside the latency probes: [`LOAD_SENDERS`] keep-alive clients, each
/// sending signed `orders/updated` deliveries of distinct orders (ids of `series`) at `rate /
/// LOAD_SENDERS` per second (a tick missed while a request is out is skipped, not made
/// up), until `true` is sent on the returned channel. The task returns how many were
/// sent and over how long; every answer must be a 200.
fn steady_load(base_url: &str, rate: u32, series: u64) -> Stoppable<(usize, Duration)> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let base = base_url.to_string();
    let task = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let period = Duration::from_secs_f64(LOAD_SENDERS as f64 / f64::from(rate.max(1)));
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..LOAD_SENDERS {
            let (client, base, stopped) = (client.clone(), base.clone(), stopped.clone());
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut sent = 0usize;
                while !*stopped.borrow() {
                    tick.tick().await;
                    let id = 820_000_000_000_000_000u64
                        + series * 100_000_000
                        + (sent * LOAD_SENDERS + c) as u64;
                    let d = signed_order(id, "orders/updated", &format!("load-{c}-{sent}"));
                    let status = shopsim::send(&client, &base, CONNECTION, &d).await?;
                    anyhow::ensure!(status == 200, "webhook answered {status}");
                    sent += 1;
                }
                anyhow::Ok(sent)
            });
        }
        let mut sent = 0;
        while let Some(r) = tasks.join_next().await {
            sent += r??;
        }
        Ok((sent, t.elapsed()))
    });
    (stop, task)
}

/// Concurrent senders of the ingest figure.
const INGEST_SENDERS: usize = 32;

/// Signed `orders/updated` deliveries of `n` distinct orders from [`INGEST_SENDERS`]
/// keep-alive clients: webhooks/s accepted (every answer must be a 200), `runs` samples
/// after a warm-up. The deliveries are signed before the clock starts.
async fn ingest_rates(base_url: &str, n: usize, runs: usize) -> anyhow::Result<Rates> {
    let client = reqwest::Client::new();
    let mut rates = Vec::new();
    for sample in 0..=runs {
        let deliveries: Vec<shopsim::Delivery> = (0..n)
            .map(|i| {
                let id = 810_000_000_000_000_000u64 + (sample * n + i) as u64;
                signed_order(id, "orders/updated", &format!("ingest-{sample}-{i}"))
            })
            .collect();
        let deliveries = std::sync::Arc::new(deliveries);
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..INGEST_SENDERS {
            let (client, base, deliveries) =
                (client.clone(), base_url.to_string(), deliveries.clone());
            tasks.spawn(async move {
                for d in deliveries.iter().skip(c).step_by(INGEST_SENDERS) {
                    let status = shopsim::send(&client, &base, CONNECTION, d).await?;
                    anyhow::ensure!(status == 200, "webhook answered {status}");
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        if sample > 0 {
            rates.push(n as f64 / t.elapsed().as_secs_f64());
        }
    }
    Ok(Rates(rates))
}

/// The `p` quantile (0..=1) of sorted latencies `lat`, in milliseconds.
fn ms_at(lat: &[Duration], p: f64) -> f64 {
    lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// Query samples: requests/s per sample, and every request's latency (sorted).
struct Load {
    rates: Rates,
    latencies: Vec<Duration>,
}

/// `requests` GETs of `urls` (cycled) from `clients` concurrent keep-alive clients:
/// requests/s, and each request's latency (send → last body byte). Every answer must be
/// a 200.
async fn load(
    urls: &[String],
    key: &str,
    requests: usize,
    clients: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, key) = (client.clone(), key.to_string());
        let mine: Vec<String> = (c..requests)
            .step_by(clients)
            .map(|i| urls[i % urls.len()].clone())
            .collect();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(mine.len());
            for u in mine {
                let sent = Instant::now();
                let r = client.get(&u).bearer_auth(&key).send().await?;
                anyhow::ensure!(r.status() == 200, "{u}: {}", r.status());
                r.bytes().await?;
                lat.push(sent.elapsed());
            }
            anyhow::Ok(lat)
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    while let Some(r) = tasks.join_next().await {
        latencies.extend(r??);
    }
    Ok((requests as f64 / t.elapsed().as_secs_f64(), latencies))
}

/// Samples of [`load`]: `runs` after a warm-up.
async fn load_rates(urls: &[String], key: &str, runs: usize) -> anyhow::Result<Load> {
    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    for sample in 0..=runs {
        let (r, lat) = load(urls, key, QUERY_REQUESTS, QUERY_CLIENTS).await?;
        if sample > 0 {
            rates.push(r);
            latencies.extend(lat);
        }
    }
    latencies.sort();
    Ok(Load {
        rates: Rates(rates),
        latencies,
    })
}

/// A query figure's row: requests/s (and rows/s for pages of `rows`) beside its baseline,
/// then the latency of the figure's own requests.
fn query_row(what: &str, l: &Load, baseline: Option<&Load>, rows: usize) {
    let ratio = baseline
        .map(|b| format!("{:.2}×", l.rates.median() / b.rates.median()))
        .unwrap_or_else(|| "–".into());
    let rows_per_s = if rows > 1 {
        format!("{:.0}", l.rates.median() * rows as f64)
    } else {
        "–".into()
    };
    println!(
        "| {what:<58} | {} | {ratio:>6} | {rows_per_s:>8} | {:>6.2} | {:>6.2} | {:>6.2} |",
        l.rates.show(),
        ms_at(&l.latencies, 0.5),
        ms_at(&l.latencies, 0.99),
        ms_at(&l.latencies, 1.0),
    );
}

/// A bare axum server answering every `path → body` of `routes` (the query string is
/// ignored): the floor of any handler on this machine, same bytes over the same loopback.
async fn bare_axum(
    routes: Vec<(String, axum::body::Bytes)>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let table: std::sync::Arc<std::collections::HashMap<String, axum::body::Bytes>> =
        std::sync::Arc::new(routes.into_iter().collect());
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let table = table.clone();
        async move {
            use axum::response::IntoResponse;
            match table.get(uri.path()) {
                Some(b) => ([("content-type", "application/json")], b.clone()).into_response(),
                None => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, task))
}

/// The body of `GET url` as `key`, which must answer 200.
async fn fetch(
    client: &reqwest::Client,
    url: String,
    key: &str,
) -> anyhow::Result<axum::body::Bytes> {
    let r = client.get(&url).bearer_auth(key).send().await?;
    anyhow::ensure!(r.status() == 200, "{url}: {}", r.status());
    Ok(r.bytes().await?)
}

/// Every page of tenant acme's orders at `limit`, by following the cursors: each page's
/// URL and body, and the ids in order.
async fn every_page(
    client: &reqwest::Client,
    base: &str,
    limit: usize,
) -> anyhow::Result<(Vec<(String, axum::body::Bytes)>, Vec<String>)> {
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/orders?limit={limit}&cursor={c}"),
            None => format!("{base}/v1/orders?limit={limit}"),
        };
        let body = fetch(client, url.clone(), API_KEY).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        for r in v["data"].as_array().into_iter().flatten() {
            ids.push(r["id"].as_str().unwrap_or_default().to_string());
        }
        pages.push((url, body));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok((pages, ids)),
        }
    }
}

/// The query figures against the running API, each beside a bare axum route serving the
/// same response bytes: point GETs, range pages of the big tenant, the small tenant's page.
async fn queries(
    running: &app::Running,
    kafka: &ingot_kafka::KafkaSettings,
    producer: &Producer,
    codec: &ingot_kafka::AvroCodec,
    runs: usize,
) -> anyhow::Result<()> {
    let base = format!("http://{}", running.http_addr.expect("http"));
    let view = running.view.clone().expect("view");
    // the small tenant's orders, then wait until the view has everything on the topic
    let mut small = Vec::new();
    for i in 0..SMALL_ORDERS {
        let (key, ev) = raw_order_of(i, SMALL_TENANT, SMALL_CONNECTION)?;
        small.push((key, codec.encode_raw("raw.shopify", &ev).await?));
    }
    produce_raw(producer, &small).await?;
    let k = kafka.clone();
    let v = view.clone();
    let client = reqwest::Client::new();
    let small_page = format!("{base}/v1/orders?limit=100");
    let mut seen_small = 0;
    let deadline = Instant::now() + Duration::from_secs(900);
    while seen_small < SMALL_ORDERS {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the small tenant's orders never arrived"
        );
        let body: serde_json::Value = client
            .get(&small_page)
            .bearer_auth(SMALL_KEY)
            .send()
            .await?
            .json()
            .await?;
        seen_small = body["data"].as_array().map_or(0, Vec::len);
        if seen_small < SMALL_ORDERS {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_until("the view to reach the end of normalized.order", || {
        let ends = k.end_offsets("normalized.order")?;
        // with transactions a partition ends with a commit marker, which is never
        // delivered: the view's next offset stops one short of the end
        let marker = i64::from(k.capabilities.transactions);
        Ok(ends
            .iter()
            .all(|(p, end)| v.next_offset("normalized.order", *p).unwrap_or(0) >= *end - marker))
    })
    .await?;
    let fetch = |url: String, key: &'static str| fetch(&client, url, key);
    // every page of the big tenant, by following the cursors: at limit 100 (which also
    // gives the ids), and at the API's largest page, 500
    let (pages, ids) = every_page(&client, &base, 100).await?;
    let (pages_500, _) = every_page(&client, &base, 500).await?;
    let one = fetch(format!("{base}/v1/orders/{}", ids[0]), API_KEY).await?;
    let one_rd = fetch(
        format!("{base}/v1/orders/{}?include_remote_data=true", ids[0]),
        API_KEY,
    )
    .await?;
    let small_body = fetch(small_page.clone(), SMALL_KEY).await?;
    println!(
        "
query API: {} orders of tenant acme and {SMALL_ORDERS} of tenant {SMALL_TENANT};
{QUERY_REQUESTS} requests per sample from {QUERY_CLIENTS} concurrent keep-alive clients, {runs} samples after a warm-up;
record {} bytes ({} with remote_data), page of 100 ≈ {} bytes, of 500 ≈ {} bytes;
latency: each request's, send → last body byte, over every sample
",
        ids.len(),
        one.len(),
        one_rd.len(),
        pages[0].1.len(),
        pages_500[0].1.len()
    );
    println!(
        "| figure (requests/s) | min | median | max | × baseline | rows/s | p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let (bare, bare_task) = bare_axum(vec![
        ("/one".into(), one.clone()),
        ("/one-rd".into(), one_rd.clone()),
        ("/page".into(), pages[0].1.clone()),
        ("/page-500".into(), pages_500[0].1.clone()),
        ("/small".into(), small_body.clone()),
    ])
    .await?;
    let gets: Vec<String> = ids
        .iter()
        .take(1000)
        .map(|id| format!("{base}/v1/orders/{id}"))
        .collect();
    let gets_rd: Vec<String> = gets
        .iter()
        .map(|u| format!("{u}?include_remote_data=true"))
        .collect();
    let urls = |pages: &[(String, axum::body::Bytes)]| -> Vec<String> {
        pages.iter().map(|(u, _)| u.clone()).collect()
    };
    // (figure, its URLs, its key, rows per answer; the baseline's name, its bare route)
    let figures = [
        (
            "GET /v1/orders/{id}".to_string(),
            gets,
            API_KEY,
            1,
            "the same record bytes".to_string(),
            "/one",
        ),
        (
            "GET /v1/orders/{id}?include_remote_data=true".to_string(),
            gets_rd,
            API_KEY,
            1,
            "the same bytes with remote_data".to_string(),
            "/one-rd",
        ),
        (
            format!("range pages of 100, every page of acme ({})", pages.len()),
            urls(&pages),
            API_KEY,
            100,
            "a page of 100 (same bytes)".to_string(),
            "/page",
        ),
        (
            format!(
                "range pages of 500, every page of acme ({})",
                pages_500.len()
            ),
            urls(&pages_500),
            API_KEY,
            500,
            "a page of 500 (same bytes)".to_string(),
            "/page-500",
        ),
        (
            format!("the small tenant's first page, beside acme's {}", ids.len()),
            vec![small_page],
            SMALL_KEY,
            SMALL_ORDERS,
            format!("the small tenant's page ({SMALL_ORDERS})"),
            "/small",
        ),
    ];
    for (what, urls, key, rows, baseline, route) in figures {
        let b = load_rates(&[format!("{bare}{route}")], key, runs).await?;
        query_row(&format!("baseline: bare axum, {baseline}"), &b, None, rows);
        query_row(&what, &load_rates(&urls, key, runs).await?, Some(&b), rows);
    }
    bare_task.abort();
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ingot-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
