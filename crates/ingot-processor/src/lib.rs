//! The processor: consumes `raw.<provider>`, standardizes each raw event with the
//! provider's pure mapping, applies the version rule (DESIGN §3) against RocksDB state,
//! and produces Avro records and tombstones to the compacted `normalized.<model>` topics.
//! Raw events that cannot be standardized go to `raw.dlq` with the reason.
//!
//! Delivery: at-least-once with idempotent effects, correct on any broker (BROKER.md).
//! For each batch: outputs are produced and acknowledged, then the state is written
//! (one RocksDB batch), then the consumed offsets are committed. A crash anywhere
//! re-processes the batch, which re-emits identical records or nothing.
//!
//! The normalized topics are the changelog of the state: on start the processor reads
//! them from the last restored position to their end, so a lost state directory is
//! rebuilt, never lost.

mod state;

use chrono::Utc;
use ingot_kafka::{
    create_consumer, AvroCodec, Consumer, KafkaError, KafkaSettings, Message, Producer,
    StreamConsumer, TopicPartitionList, OP_DELETE, OP_HEADER,
};
use ingot_model::{
    decide, Decision, Model, NormalizedRecord, Provider, RawEvent, RecordKey, RecordMeta, Version,
};
use ingot_standardize::{mapping_for, Outcome, Standardized};
use ingot_store::Store;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

pub use state::{RestoreStats, StateStore};

/// Kafka headers the processor writes on normalized records.
pub const HEADER_UPDATED_AT: &str = "ingot-remote-updated-at";
pub const HEADER_RAW_PARTITION: &str = "ingot-raw-partition";
pub const HEADER_RAW_OFFSET: &str = "ingot-raw-offset";
pub const HEADER_MODIFIED_AT: &str = "ingot-modified-at";
pub const HEADER_TENANT: &str = "ingot-tenant-id";
pub const HEADER_PROVIDER: &str = "ingot-provider";
/// Header on `raw.dlq` records: why the event could not be standardized.
pub const HEADER_DLQ_REASON: &str = "ingot-dlq-reason";
pub const DLQ_TOPIC: &str = "raw.dlq";

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Store(#[from] ingot_store::StoreError),
    #[error("schema: {0}")]
    Schema(#[from] ingot_kafka::SchemaError),
    #[error("changelog {topic}/{partition}@{offset} unreadable: {reason}")]
    Changelog {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
}

/// How the processor runs.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Consumer group (all instances of one deployment share it).
    pub group_id: String,
    /// RocksDB state directory.
    pub state_dir: PathBuf,
    /// Providers whose raw topics are consumed.
    pub providers: Vec<Provider>,
    /// Most raw events handled per batch.
    pub max_batch: usize,
}

impl ProcessorConfig {
    pub fn new(state_dir: PathBuf) -> Self {
        ProcessorConfig {
            group_id: "ingot-processor".into(),
            state_dir,
            providers: Provider::ALL.to_vec(),
            max_batch: 500,
        }
    }
}

/// What processing one batch did (also the processor's counters).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    pub received: u64,
    pub emitted: u64,
    pub absorbed: u64,
    pub dropped: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
}

/// The processor stage.
pub struct Processor {
    cfg: ProcessorConfig,
    settings: KafkaSettings,
    codec: AvroCodec,
    producer: Producer,
    state: StateStore,
}

enum Planned {
    /// A normalized record (value) or tombstone (None) to produce, and the version to store.
    Emit {
        topic: String,
        key: String,
        value: Option<Vec<u8>>,
        headers: Vec<(&'static str, String)>,
        version: Version,
    },
    Absorb {
        key: String,
        version: Version,
    },
    Dlq {
        key: Vec<u8>,
        value: Vec<u8>,
        reason: String,
        source: String,
    },
    /// A topic the mapping does not handle (counted by reason).
    Skip,
    /// Not newer than the stored version.
    Drop,
}

impl Processor {
    /// Opens the state and restores it from the normalized topics (the changelog).
    pub async fn open(
        cfg: ProcessorConfig,
        settings: KafkaSettings,
        codec: AvroCodec,
    ) -> Result<Self, ProcessorError> {
        let store = Store::open(&cfg.state_dir, state::COLUMN_FAMILIES)?;
        let state = StateStore::new(store);
        let stats = state.restore(&settings, &codec).await?;
        tracing::info!(
            component = "processor",
            restored = stats.records,
            "state restored from changelog"
        );
        Ok(Processor {
            producer: Producer::new(&settings)?,
            cfg,
            settings,
            codec,
            state,
        })
    }

    /// Consumes until `shutdown` turns true. Returns the totals.
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<BatchStats, ProcessorError> {
        let consumer: StreamConsumer = create_consumer(&self.settings, &self.cfg.group_id)?;
        let topics: Vec<String> = self.cfg.providers.iter().map(|p| p.raw_topic()).collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).map_err(KafkaError::from)?;
        let mut totals = BatchStats::default();
        loop {
            let first = tokio::select! {
                _ = shutdown.changed() => break,
                m = consumer.recv() => m,
            };
            let mut batch = Vec::new();
            match first {
                Ok(m) => batch.push(Message::from_borrowed(&m)),
                Err(rdkafka_err) if is_eof(&rdkafka_err) => continue,
                Err(e) => {
                    tracing::warn!(component = "processor", error = %e, "consume error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            while batch.len() < self.cfg.max_batch {
                match tokio::time::timeout(Duration::from_millis(5), consumer.recv()).await {
                    Ok(Ok(m)) => batch.push(Message::from_borrowed(&m)),
                    Ok(Err(e)) if is_eof(&e) => break,
                    _ => break,
                }
            }
            let stats = self.process_batch(&batch).await?;
            // offsets are committed only after outputs are acknowledged and state is written
            let mut tpl = TopicPartitionList::new();
            let mut next: HashMap<(String, i32), i64> = HashMap::new();
            for m in &batch {
                let e = next
                    .entry((m.topic.clone(), m.partition))
                    .or_insert(m.offset + 1);
                *e = (*e).max(m.offset + 1);
            }
            for ((t, p), o) in next {
                tpl.add_partition_offset(&t, p, ingot_kafka::Offset::Offset(o))
                    .map_err(KafkaError::from)?;
            }
            consumer
                .commit(&tpl, rdkafka_commit_mode())
                .map_err(KafkaError::from)?;
            add(&mut totals, stats);
        }
        Ok(totals)
    }

    /// Standardizes, applies the version rule, produces, then stores the new state.
    /// Public so tests and benchmarks can drive it with messages read any way.
    pub async fn process_batch(&self, batch: &[Message]) -> Result<BatchStats, ProcessorError> {
        let mut stats = BatchStats {
            received: batch.len() as u64,
            ..Default::default()
        };
        let mut overlay: HashMap<String, Version> = HashMap::new();
        let mut plans = Vec::with_capacity(batch.len());
        for m in batch {
            let plan = self.plan(m, &mut overlay).await?;
            match &plan {
                Planned::Emit { .. } => stats.emitted += 1,
                Planned::Absorb { .. } => stats.absorbed += 1,
                Planned::Dlq { .. } => stats.dead_lettered += 1,
                Planned::Skip => stats.skipped += 1,
                Planned::Drop => stats.dropped += 1,
            }
            plans.push(plan);
        }
        // 1. produce everything and wait for the acknowledgements
        let mut outgoing = Vec::new();
        for p in &plans {
            match p {
                Planned::Emit {
                    topic,
                    key,
                    value,
                    headers,
                    ..
                } => outgoing.push((
                    topic.as_str(),
                    key.as_bytes(),
                    value.as_deref(),
                    headers
                        .iter()
                        .map(|(k, v)| (*k, v.as_bytes()))
                        .collect::<Vec<_>>(),
                )),
                Planned::Dlq {
                    key,
                    value,
                    reason,
                    source,
                } => outgoing.push((
                    DLQ_TOPIC,
                    key.as_slice(),
                    Some(value.as_slice()),
                    vec![
                        (HEADER_DLQ_REASON, reason.as_bytes()),
                        ("ingot-source", source.as_bytes()),
                    ],
                )),
                Planned::Absorb { .. } | Planned::Skip | Planned::Drop => {}
            }
        }
        let records: Vec<ingot_kafka::OutgoingRecord<'_>> = outgoing
            .iter()
            .map(|(t, k, v, h)| ingot_kafka::OutgoingRecord {
                topic: t,
                key: k,
                value: *v,
                headers: h,
            })
            .collect();
        self.producer.send_all(&records).await?;
        // 2. then make the state durable
        let versions: Vec<(String, Version)> = plans
            .iter()
            .filter_map(|p| match p {
                Planned::Emit { key, version, .. } | Planned::Absorb { key, version } => {
                    Some((key.clone(), *version))
                }
                _ => None,
            })
            .collect();
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.put_versions(&versions))
            .await
            .expect("state writer panicked")?;
        record_metrics(&stats);
        Ok(stats)
    }

    async fn plan(
        &self,
        m: &Message,
        overlay: &mut HashMap<String, Version>,
    ) -> Result<Planned, ProcessorError> {
        let source = format!("{}/{}@{}", m.topic, m.partition, m.offset);
        let dlq = |reason: String| {
            tracing::warn!(component = "processor", %source, %reason, "raw event dead-lettered");
            Ok(Planned::Dlq {
                key: m.key.clone().unwrap_or_default(),
                value: m.value.clone().unwrap_or_default(),
                reason,
                source: source.clone(),
            })
        };
        let Some(bytes) = m.value.as_deref() else {
            return dlq("raw event without value".into());
        };
        let event = match self.codec.decode_raw(bytes).await {
            Ok(e) => e,
            Err(e) => return dlq(format!("undecodable raw event: {e}")),
        };
        let provider: Provider = match event.provider.parse() {
            Ok(p) => p,
            Err(e) => return dlq(e.to_string()),
        };
        let mapping = mapping_for(provider);
        let standardized = match mapping.standardize(&event) {
            Ok(Outcome::Record(s)) => s,
            Ok(Outcome::Skip(reason)) => {
                metrics::counter!("ingot_processor_skipped_total", "reason" => reason, "provider" => provider.as_str()).increment(1);
                return Ok(Planned::Skip);
            }
            Err(e) => return dlq(e.to_string()),
        };
        let key = RecordKey::new(
            &event.connection_id,
            standardized.model(),
            standardized.remote_id(),
        );
        let key_str = key.to_string();
        let (version, record, headers) =
            self.version_and_output(&event, m, &key, standardized, mapping.mapping_version());
        let stored = match overlay.get(&key_str) {
            Some(v) => Some(*v),
            None => {
                let state = self.state.clone();
                let k = key_str.clone();
                tokio::task::spawn_blocking(move || state.get_version(&k))
                    .await
                    .expect("state reader panicked")?
            }
        };
        let decision = decide(stored.as_ref(), &version);
        Ok(match decision {
            Decision::Drop => Planned::Drop,
            Decision::Absorb => {
                overlay.insert(key_str.clone(), version);
                Planned::Absorb {
                    key: key_str,
                    version,
                }
            }
            Decision::Emit => {
                // encode only what is emitted: most re-deliveries are dropped above
                let value = match record {
                    None => None,
                    Some(r) => match self.codec.encode_record(key.model, r.to_json()).await {
                        Ok(v) => Some(v),
                        // a record that does not fit its schema is a mapping bug for this
                        // payload: the event is dead-lettered, the pipeline goes on
                        Err(e @ ingot_kafka::SchemaError::Mismatch { .. }) => {
                            return dlq(e.to_string())
                        }
                        Err(e) => return Err(e.into()),
                    },
                };
                overlay.insert(key_str.clone(), version);
                Planned::Emit {
                    topic: key.model.normalized_topic(),
                    key: key_str,
                    value,
                    headers,
                    version,
                }
            }
        })
    }

    /// The version of a standardized record, the normalized record it would produce
    /// (`None` for a delete: a tombstone) and the Kafka headers.
    fn version_and_output(
        &self,
        event: &RawEvent,
        m: &Message,
        key: &RecordKey,
        s: Standardized,
        mapping_version: &str,
    ) -> (
        Version,
        Option<NormalizedRecord>,
        Vec<(&'static str, String)>,
    ) {
        let modified_at = ingot_model::parse_time(&event.received_at, true)
            .map(|t| ingot_model::format_utc(&t))
            .unwrap_or_else(|_| ingot_model::format_utc(&Utc::now()));
        let lineage = |updated: &str| {
            vec![
                (HEADER_UPDATED_AT, updated.to_string()),
                (HEADER_RAW_PARTITION, m.partition.to_string()),
                (HEADER_RAW_OFFSET, m.offset.to_string()),
                (HEADER_MODIFIED_AT, modified_at.clone()),
                (HEADER_TENANT, event.tenant_id.clone()),
                (HEADER_PROVIDER, event.provider.clone()),
            ]
        };
        match s {
            Standardized::Delete { deleted_at, .. } => {
                let at = ingot_model::format_utc(&deleted_at);
                let version = Version {
                    updated_at_nanos: nanos(&deleted_at),
                    deleted: true,
                    raw_partition: m.partition,
                    raw_offset: m.offset,
                    content_hash: [0; 32],
                };
                let mut headers = lineage(&at);
                headers.push((OP_HEADER, OP_DELETE.to_string()));
                (version, None, headers)
            }
            Standardized::Upsert {
                remote_id,
                remote_created_at,
                remote_updated_at,
                data,
            } => {
                let version = Version {
                    updated_at_nanos: nanos(&remote_updated_at),
                    deleted: false,
                    raw_partition: m.partition,
                    raw_offset: m.offset,
                    content_hash: data.content_hash(),
                };
                let updated = ingot_model::format_utc(&remote_updated_at);
                let record = NormalizedRecord {
                    meta: RecordMeta {
                        id: key.record_id(),
                        remote_id,
                        connection_id: event.connection_id.clone(),
                        tenant_id: event.tenant_id.clone(),
                        provider: event.provider.clone(),
                        remote_created_at: remote_created_at.map(|t| ingot_model::format_utc(&t)),
                        remote_updated_at: updated.clone(),
                        remote_deleted: false,
                        modified_at: modified_at.clone(),
                        mapping_version: mapping_version.to_string(),
                        raw_topic: m.topic.clone(),
                        raw_partition: m.partition,
                        raw_offset: m.offset,
                        remote_data: String::from_utf8(event.payload.clone()).ok(),
                    },
                    data,
                };
                let mut headers = lineage(&updated);
                headers.push((OP_HEADER, "upsert".to_string()));
                (version, Some(record), headers)
            }
        }
    }
}

/// Nanoseconds since the epoch, saturating outside 1677–2262.
pub fn nanos(t: &chrono::DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn is_eof(e: &ingot_kafka::RdKafkaError) -> bool {
    matches!(e, ingot_kafka::RdKafkaError::PartitionEOF(_))
}

/// Asynchronous: a synchronous commit blocks a runtime worker with no timeout when the
/// broker is gone. A commit that is lost only means the batch is processed again, which
/// the version rule makes harmless (at-least-once).
fn rdkafka_commit_mode() -> ingot_kafka::CommitMode {
    ingot_kafka::CommitMode::Async
}

fn add(t: &mut BatchStats, s: BatchStats) {
    t.received += s.received;
    t.emitted += s.emitted;
    t.absorbed += s.absorbed;
    t.dropped += s.dropped;
    t.skipped += s.skipped;
    t.dead_lettered += s.dead_lettered;
}

fn record_metrics(s: &BatchStats) {
    metrics::counter!("ingot_processor_received_total").increment(s.received);
    metrics::counter!("ingot_processor_emitted_total").increment(s.emitted);
    metrics::counter!("ingot_processor_absorbed_total").increment(s.absorbed);
    metrics::counter!("ingot_processor_dropped_total", "reason" => "version_rule")
        .increment(s.dropped);
    metrics::counter!("ingot_processor_dead_lettered_total").increment(s.dead_lettered);
}

/// The model of a normalized topic.
pub fn model_of_topic(topic: &str) -> Option<Model> {
    Model::from_normalized_topic(topic)
}
