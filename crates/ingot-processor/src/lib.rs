//! The processor: consumes `raw.<provider>`, standardizes each raw event with the
//! provider's pure mapping, applies the version rule (DESIGN §3) against RocksDB state,
//! and produces Avro records and tombstones to the compacted `normalized.<model>` topics.
//! Raw events that cannot be standardized go to `raw.dlq` with the reason.
//!
//! Delivery, per batch of raw events (one loop, two modes):
//! - **at-least-once with idempotent effects** (any broker): outputs and the versions they
//!   set are produced and acknowledged, then the state is written (one RocksDB batch),
//!   then the consumed offsets are committed. A crash anywhere re-processes the batch,
//!   which re-emits identical records or nothing.
//! - **exactly-once** (brokers with transactions, [`ProcessorConfig::exactly_once`]): the
//!   same outputs and the consumed offsets go in one transaction
//!   (`send_offsets_to_transaction`); the state is written after the commit. Readers of
//!   the normalized topics read `read_committed`, so an aborted batch is never seen.
//!
//! Batches are pipelined two deep ([`Processor::run`]): the next batch is consumed and
//! planned while the previous one's outputs are acknowledged, but its produce starts only
//! once the previous batch has landed, so the order of outputs and the guarantee above
//! are those of one batch at a time.
//!
//! A transient failure (broker or registry unreachable) aborts the batch, rewinds the
//! consumer to the batch's first offsets and retries with backoff; nothing is
//! dead-lettered for it.
//!
//! State and scale-out: the version state is changelogged to `ingot.processor.versions`
//! (partition = the raw event's partition; raw topics and the changelog have the same
//! partition count). Instances share one consumer group with the `range` assignor, so
//! raw partition *p* of every provider belongs to one instance; before it handles a
//! message of partition *p* for the first time since *p* was assigned (or since start),
//! the instance restores partition *p* of the changelog to its end. Deletion markers are
//! real values there, so no compaction erases them.

mod replay;
mod state;

use chrono::Utc;
use ingot_kafka::{
    create_group_consumer, Assignment, AvroCodec, Consumer, GroupConsumer, KafkaError,
    KafkaSettings, Message, Producer, TopicPartitionList, OP_DELETE, OP_HEADER,
};
use ingot_model::dlq;
use ingot_model::{
    decide, Decision, Model, NormalizedRecord, Provider, RawEvent, RecordKey, RecordMeta, Version,
};
use ingot_standardize::{mapping_for, Mapping, Outcome, Standardized};
use ingot_store::Store;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use state::{RestoreStats, StateStore, VERSIONS_TOPIC};

/// Kafka headers the processor writes on normalized records.
pub const HEADER_UPDATED_AT: &str = "ingot-remote-updated-at";
pub const HEADER_RAW_PARTITION: &str = "ingot-raw-partition";
pub const HEADER_RAW_OFFSET: &str = "ingot-raw-offset";
pub const HEADER_MODIFIED_AT: &str = "ingot-modified-at";
pub const HEADER_TENANT: &str = "ingot-tenant-id";
pub const HEADER_PROVIDER: &str = "ingot-provider";

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
    /// Ours: the topics are not co-partitioned (fix the topology).
    #[error("topics are not co-partitioned: {0}")]
    Topology(String),
}

impl ProcessorError {
    /// A failure of the broker, the network or the registry, which a retry can cure.
    fn is_transient(&self) -> bool {
        matches!(self, ProcessorError::Kafka(_) | ProcessorError::Schema(_))
    }
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
    /// Tasks that standardize a batch's raw events at once, each a chunk of it (the
    /// mappings are most of a batch's CPU; the version rule after them runs in log
    /// order): the machine's available parallelism unless set. 1 standardizes on the
    /// loop's own task (the core benchmark, per core).
    pub standardize_tasks: usize,
    /// Exactly-once mode (transactions); needs a broker with transactions.
    pub exactly_once: bool,
    /// A mapping used instead of the registry's for its provider (tests of a mapping
    /// change, and replays through a candidate mapping).
    pub mapping_override: Option<MappingOverride>,
}

/// A provider's mapping replacing the one of [`mapping_for`].
#[derive(Clone)]
pub struct MappingOverride(pub Arc<dyn Mapping>);

impl std::fmt::Debug for MappingOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappingOverride({})", self.0.mapping_version())
    }
}

impl ProcessorConfig {
    pub fn new(state_dir: PathBuf) -> Self {
        ProcessorConfig {
            group_id: "ingot-processor".into(),
            state_dir,
            providers: Provider::ALL.to_vec(),
            max_batch: 500,
            standardize_tasks: std::thread::available_parallelism().map_or(1, usize::from),
            exactly_once: false,
            mapping_override: None,
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

/// Progress of a running processor, for readiness: when it last finished a batch, and
/// whether it was idle (nothing to consume) then.
#[derive(Debug, Default)]
pub struct Progress {
    /// Milliseconds since the epoch of the last finished batch or idle poll.
    pub last_progress_ms: AtomicI64,
}

impl Progress {
    fn touch(&self) {
        self.last_progress_ms
            .store(Utc::now().timestamp_millis(), Ordering::Release);
    }
}

/// The processor stage.
pub struct Processor {
    cfg: ProcessorConfig,
    settings: KafkaSettings,
    codec: AvroCodec,
    standardizer: Standardizer,
    producer: Producer,
    state: StateStore,
    progress: Arc<Progress>,
}

/// One record to produce.
struct Out {
    topic: String,
    partition: Option<i32>,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(&'static str, Vec<u8>)>,
}

/// What a batch will produce and the state it will set.
#[derive(Default)]
struct Plan {
    out: Vec<Out>,
    versions: Vec<(String, Version)>,
    stats: BatchStats,
    /// When asked for (dry runs): every emitted change, in order — record key, model and
    /// the standardized fields (`None`: a deletion).
    changes: Vec<(String, Model, Option<serde_json::Value>)>,
}

/// A standardized raw event waiting for the version rule.
struct Candidate {
    key: RecordKey,
    key_str: String,
    raw_partition: i32,
    version: Version,
    record: Option<NormalizedRecord>,
    headers: Vec<(&'static str, String)>,
    source: String,
    /// The raw event's index in its batch (a dead letter carries its bytes).
    index: usize,
}

enum Step {
    Candidate(Box<Candidate>),
    Dlq(Out),
    Skip,
}

impl Processor {
    /// Opens the state, checks co-partitioning and prepares the producer (transactional in
    /// exactly-once mode). State is restored per partition when it is first consumed.
    pub async fn open(
        cfg: ProcessorConfig,
        settings: KafkaSettings,
        codec: AvroCodec,
    ) -> Result<Self, ProcessorError> {
        std::fs::create_dir_all(&cfg.state_dir).map_err(|e| {
            ProcessorError::Topology(format!("state dir {}: {e}", cfg.state_dir.display()))
        })?;
        let store = Store::open(&cfg.state_dir, state::COLUMN_FAMILIES)?;
        let state = StateStore::new(store);
        let changelog = settings.partitions(VERSIONS_TOPIC)?.len();
        for p in &cfg.providers {
            let raw = settings.partitions(&p.raw_topic())?.len();
            if raw != changelog {
                return Err(ProcessorError::Topology(format!(
                    "{} has {raw} partitions, {VERSIONS_TOPIC} {changelog}: they must be equal",
                    p.raw_topic()
                )));
            }
        }
        let producer = if cfg.exactly_once {
            let id = format!("{}-{}", cfg.group_id, instance_id(&cfg.state_dir)?);
            let p = Producer::transactional(&settings, &id).await?;
            tracing::info!(component = "processor", transactional_id = %id, "exactly-once mode: outputs and consumed offsets commit in one transaction");
            p
        } else {
            tracing::info!(
                component = "processor",
                "at-least-once mode with idempotent effects (no transactions)"
            );
            Producer::new(&settings)?
        };
        Ok(Processor {
            producer,
            standardizer: Standardizer {
                codec: codec.clone(),
                mapping_override: cfg.mapping_override.clone(),
            },
            cfg,
            settings,
            codec,
            state,
            progress: Arc::new(Progress::default()),
        })
    }

    /// The processor's progress (for readiness).
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Restores every partition of the version changelog (tools and tests; `run`
    /// restores each partition when it is first consumed).
    pub async fn restore_all(&self) -> Result<RestoreStats, ProcessorError> {
        let mut total = RestoreStats::default();
        for p in self.settings.partitions(VERSIONS_TOPIC)? {
            total.records += self
                .state
                .restore_partition(&self.settings, p)
                .await?
                .records;
        }
        Ok(total)
    }

    /// Consumes until `shutdown` turns true. Returns the totals.
    ///
    /// Batches are pipelined two deep: while batch *n*'s outputs are produced (and, in
    /// exactly-once mode, committed with its offsets) in a task of their own, batch *n+1*
    /// is consumed and planned against the state plus *n*'s decisions (an overlay).
    /// Batch *n+1*'s produce starts only after *n* has landed (acks, then state, then
    /// offsets), so outputs keep log order and a failure of *n* rewinds to *n*'s first
    /// offsets and drops *n+1*'s plan: the guarantee is the one of a stop-and-wait loop.
    ///
    /// Replay batches (`replay.rs`) take part in the same pipeline: the loop alternates
    /// one replay batch and whatever live batch is ready, each planned while the other is
    /// in flight, so live traffic waits at most one replay batch and a replay runs at the
    /// processor's own rate.
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<BatchStats, ProcessorError> {
        let eos = self.cfg.exactly_once;
        let (consumer, assignment) =
            create_group_consumer(&self.settings, &self.cfg.group_id, !eos)?;
        let topics: Vec<String> = self.cfg.providers.iter().map(|p| p.raw_topic()).collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).map_err(KafkaError::from)?;
        let mut totals = BatchStats::default();
        let mut restored: HashSet<i32> = HashSet::new();
        let mut backoff = Backoff::default();
        let mut replays = replay::Replays::start(&self.settings)?;
        let mut inflight: Option<InFlight> = None;
        let mut cx = LandCx {
            consumer: &consumer,
            assignment: &assignment,
            totals: &mut totals,
            backoff: &mut backoff,
        };
        self.progress.touch();
        loop {
            let owned = owned_partitions(&consumer);
            if replays.has_work(&owned) {
                if replays.next_is_dry_run() {
                    // a dry run's overlay is its own: it plans against landed state only
                    if let Some(f) = inflight.take() {
                        self.land_or_rewind(f, &mut replays, &mut cx).await?;
                    }
                }
                let overlay: HashMap<String, Version> = inflight
                    .as_ref()
                    .map(|f| f.versions.iter().cloned().collect())
                    .unwrap_or_default();
                match self
                    .replay_plan(&mut replays, &owned, &mut restored, overlay)
                    .await
                {
                    Ok(None) => {}
                    Ok(Some(replay::ReplayPlanned {
                        unit,
                        plan,
                        landing,
                        progress,
                    })) => {
                        let landed = match inflight.take() {
                            Some(f) => self.land_or_rewind(f, &mut replays, &mut cx).await?,
                            None => true,
                        };
                        if !landed {
                            // planned against decisions that did not land: read again
                            replays.reset(&unit);
                        } else {
                            match self.start(plan, landing, &consumer) {
                                Ok(f) => {
                                    replays.started(&unit, progress);
                                    inflight = Some(f);
                                }
                                Err(e) if e.is_transient() => {
                                    tracing::warn!(component = "processor", error = %e, "replay batch failed; retrying it");
                                    replays.reset(&unit);
                                    cx.backoff.wait().await;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Err(e) if e.is_transient() => {
                        // the unit's reader was reset by replay_plan
                        tracing::warn!(component = "processor", error = %e, "replay batch failed; retrying it");
                        cx.backoff.wait().await;
                    }
                    Err(e) => return Err(e),
                }
            }
            // with a batch in flight, only what is already here: an idle poll lands it
            let wait = if replays.is_running() || inflight.is_some() {
                Duration::from_millis(1)
            } else {
                Duration::from_secs(1)
            };
            let first = tokio::select! {
                _ = shutdown.changed() => break,
                m = tokio::time::timeout(wait, consumer.recv()) => m,
            };
            let mut batch = Vec::new();
            match first {
                Ok(Ok(m)) => {
                    let m = Message::from_borrowed(&m);
                    forget_revoked(&assignment, &mut restored, &mut batch);
                    batch.push(m);
                }
                // idle: nothing arrived in `wait`, or the end of a partition
                Err(_) => {}
                Ok(Err(e)) if is_eof(&e) => {}
                Ok(Err(e)) => {
                    tracing::warn!(component = "processor", error = %e, "consume error");
                    if inflight.is_none() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            // fill the batch with what the consumer already holds
            if !batch.is_empty() {
                // a rebalance runs inside recv(): what it revoked was collected before it,
                // what recv() returns now is of the new assignment
                let filled = ingot_kafka::fill_batch(
                    &consumer,
                    &mut batch,
                    self.cfg.max_batch,
                    Duration::from_millis(1),
                    |batch| forget_revoked(&assignment, &mut restored, batch),
                )
                .await;
                if let Some(e) = filled.error {
                    tracing::warn!(component = "processor", error = %e, "consume error");
                }
            }
            forget_revoked(&assignment, &mut restored, &mut batch);
            if batch.is_empty() {
                // an idle poll lands the batch in flight, unless it is a replay batch
                // the next replay batch is about to be planned against
                let replay_next =
                    inflight.as_ref().is_some_and(InFlight::is_replay) && replays.can_plan();
                if !replay_next {
                    if let Some(f) = inflight.take() {
                        self.land_or_rewind(f, &mut replays, &mut cx).await?;
                    }
                }
                self.progress.touch();
                continue;
            }
            let first = first_offsets(&batch);
            let next = next_offsets(&batch);
            let mut overlay: HashMap<String, Version> = inflight
                .as_ref()
                .map(|f| f.versions.iter().cloned().collect())
                .unwrap_or_default();
            let planned = self.prepare(&batch, &mut restored, &mut overlay).await;
            // the batch in flight lands (or fails and rewinds) before this one starts
            if let Some(f) = inflight.take() {
                match self.land(f, &mut replays, &mut cx).await? {
                    Landed::Done => {}
                    Landed::Failed { rewind: failed } => {
                        // this batch was planned against decisions that did not land: it
                        // is consumed again (from the failed batch's offsets where both
                        // read a partition)
                        let mut to = first;
                        to.extend(failed);
                        rewind(&consumer, &to);
                        continue;
                    }
                }
            }
            let started = match planned {
                Ok(plan) => self.start(plan, Landing::Live { first, next }, &consumer),
                Err(e) => Err(e),
            };
            match started {
                Ok(f) => inflight = Some(f),
                Err(e) if e.is_transient() => {
                    tracing::warn!(component = "processor", error = %e, "batch failed; rewinding to retry it");
                    rewind(&consumer, &first_offsets(&batch));
                    cx.backoff.wait().await;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(f) = inflight.take() {
            self.land_or_rewind(f, &mut replays, &mut cx).await?;
        }
        let _ = assignment;
        // the tail's consumer closes before run returns (while the broker is still up)
        replays.close().await;
        Ok(totals)
    }

    /// Restores the state of the batch's partitions where needed and plans the batch
    /// against the state and `overlay` (the decisions of the batch in flight).
    async fn prepare(
        &self,
        batch: &[Message],
        restored: &mut HashSet<i32>,
        overlay: &mut HashMap<String, Version>,
    ) -> Result<Plan, ProcessorError> {
        let partitions: HashSet<i32> = batch.iter().map(|m| m.partition).collect();
        for p in partitions {
            if !restored.contains(&p) {
                // the batch in flight has no outputs for `p` (its version records go to
                // the partitions of its own messages), so the restore reads all of `p`
                let stats = self.state.restore_partition(&self.settings, p).await?;
                tracing::info!(
                    component = "processor",
                    partition = p,
                    records = stats.records,
                    "state of partition restored from the version changelog"
                );
                restored.insert(p);
            }
        }
        let t = std::time::Instant::now();
        let plan = self.plan_batch(batch, overlay, false, None).await;
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return plan;
        }
        // how long the batch's oldest event waited on the broker and in the consumer
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let (oldest_ms, oldest_partition) = batch
            .iter()
            .filter_map(|m| Some((m.timestamp_ms?, m.partition)))
            .min()
            .map_or((0, -1), |(ts, p)| (now_ms - ts, p));
        tracing::debug!(
            component = "processor",
            received = batch.len(),
            plan_ms = t.elapsed().as_secs_f64() * 1e3,
            oldest_ms,
            oldest_partition,
            "batch planned"
        );
        plan
    }

    /// Starts producing a planned batch in a task of its own: in exactly-once mode inside
    /// a transaction that also commits the consumed offsets of a live batch (aborted on
    /// failure).
    fn start(
        &self,
        plan: Plan,
        landing: Landing,
        consumer: &GroupConsumer,
    ) -> Result<InFlight, ProcessorError> {
        let cgm = if self.cfg.exactly_once {
            let cgm = ingot_kafka::group_metadata(consumer)?;
            self.producer.begin_transaction()?;
            Some(cgm)
        } else {
            None
        };
        let producer = self.producer.clone();
        let out = plan.out;
        let offsets = match &landing {
            Landing::Live { next, .. } => next.clone(),
            Landing::Replay { .. } => HashMap::new(),
        };
        let task = tokio::spawn(async move {
            let eos = cgm.is_some();
            let produced = async {
                let t = std::time::Instant::now();
                produce(&producer, &out).await?;
                let acked = t.elapsed();
                if let Some(cgm) = cgm {
                    producer.commit_transaction_of(&offsets, cgm).await?;
                }
                tracing::debug!(
                    component = "processor",
                    outputs = out.len(),
                    acked_ms = acked.as_secs_f64() * 1e3,
                    committed_ms = t.elapsed().as_secs_f64() * 1e3,
                    "batch produced"
                );
                Ok::<(), ProcessorError>(())
            }
            .await;
            if let (Err(e), true) = (&produced, eos) {
                if let Err(abort) = producer.abort_transaction().await {
                    tracing::error!(component = "processor", error = %abort, "transaction abort failed");
                    return Err(ProcessorError::Topology(format!(
                        "transaction failed ({e}) and could not be aborted ({abort})"
                    )));
                }
            }
            produced
        });
        Ok(InFlight {
            task,
            landing,
            versions: plan.versions,
            stats: plan.stats,
        })
    }

    /// [`Processor::land`], and after a failure the rewind of the failed batch.
    /// Returns whether the batch landed.
    async fn land_or_rewind(
        &self,
        f: InFlight,
        replays: &mut replay::Replays,
        cx: &mut LandCx<'_>,
    ) -> Result<bool, ProcessorError> {
        match self.land(f, replays, cx).await? {
            Landed::Done => Ok(true),
            Landed::Failed { rewind: to } => {
                rewind(cx.consumer, &to);
                Ok(false)
            }
        }
    }

    /// Waits for a batch in flight; when it is acknowledged (and committed, in
    /// exactly-once mode) writes its state, then commits its offsets (a live batch,
    /// at-least-once) or writes its unit's checkpoint (a replay batch, at-least-once).
    /// After a transient failure `backoff` is waited and the offsets a live batch must be
    /// consumed again from are returned (a failed replay unit reads again from its
    /// checkpoint).
    async fn land(
        &self,
        f: InFlight,
        replays: &mut replay::Replays,
        cx: &mut LandCx<'_>,
    ) -> Result<Landed, ProcessorError> {
        let produced = match f.task.await {
            Ok(r) => r,
            Err(e) => Err(ProcessorError::Topology(format!(
                "producer task failed: {e}"
            ))),
        };
        match produced {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                tracing::warn!(component = "processor", error = %e, retry_in_ms = cx.backoff.next.as_millis() as u64, "batch failed; rewinding to retry it");
                cx.backoff.wait().await;
                return Ok(Landed::Failed {
                    rewind: match f.landing {
                        Landing::Live { first, .. } => first,
                        Landing::Replay { unit, .. } => {
                            replays.failed(&unit);
                            HashMap::new()
                        }
                    },
                });
            }
            Err(e) => return Err(e),
        }
        match f.landing {
            Landing::Live { next, .. } => {
                let t = std::time::Instant::now();
                self.write_state(f.versions).await?;
                tracing::debug!(
                    component = "processor",
                    received = f.stats.received,
                    state_ms = t.elapsed().as_secs_f64() * 1e3,
                    "batch landed"
                );
                if !self.cfg.exactly_once {
                    let mut tpl = TopicPartitionList::new();
                    for ((t, p), o) in &next {
                        tpl.add_partition_offset(t, *p, ingot_kafka::Offset::Offset(*o))
                            .map_err(KafkaError::from)?;
                    }
                    cx.consumer
                        .commit(&tpl, rdkafka_commit_mode())
                        .map_err(KafkaError::from)?;
                    cx.assignment.record_processed(&next);
                }
                record_metrics(&f.stats);
                add(cx.totals, f.stats);
            }
            Landing::Replay {
                unit,
                progress,
                checkpoint,
            } => {
                // the checkpoint follows the acknowledged outputs; the state is a cache of
                // the acknowledged changelog, so both are written at once
                let checkpoint = checkpoint.map(|c| vec![c]).unwrap_or_default();
                let (state, written) = tokio::join!(
                    self.write_state(f.versions),
                    produce(&self.producer, &checkpoint)
                );
                state?;
                if let Err(e) = written {
                    if !e.is_transient() {
                        return Err(e);
                    }
                    tracing::warn!(component = "processor", error = %e, "replay checkpoint not written; the unit resumes from the previous one");
                    cx.backoff.wait().await;
                    replays.failed(&unit);
                    return Ok(Landed::Failed {
                        rewind: HashMap::new(),
                    });
                }
                replays.landed(&unit, *progress);
            }
        }
        cx.backoff.reset();
        self.progress.touch();
        Ok(Landed::Done)
    }

    /// Standardizes, applies the version rule, produces and waits for the acks, then
    /// stores the new state (at-least-once; no offsets). Public so tests and benchmarks
    /// can drive it with messages read any way; the state of the messages' partitions
    /// must have been restored.
    pub async fn process_batch(&self, batch: &[Message]) -> Result<BatchStats, ProcessorError> {
        let plan = self
            .plan_batch(batch, &mut HashMap::new(), false, None)
            .await?;
        produce(&self.producer, &plan.out).await?;
        self.write_state(plan.versions).await?;
        record_metrics(&plan.stats);
        Ok(plan.stats)
    }

    /// Decodes, standardizes, applies the version rule (reading the state) and encodes
    /// the outputs of `batch`, without producing them or writing the state: the
    /// processor's own cost per record, for benchmarks.
    pub async fn plan_only(&self, batch: &[Message]) -> Result<BatchStats, ProcessorError> {
        Ok(self
            .plan_batch(batch, &mut HashMap::new(), false, None)
            .await?
            .stats)
    }

    async fn write_state(&self, versions: Vec<(String, Version)>) -> Result<(), ProcessorError> {
        let state = self.state.clone();
        match tokio::task::spawn_blocking(move || state.put_versions(&versions)).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(ProcessorError::Topology(format!(
                "state writer failed: {e}"
            ))),
        }
    }

    /// Decodes and standardizes every raw event, reads the stored versions of their keys
    /// in one multi-get, and applies the version rule in log order (an overlay carries
    /// each decision to later events of the same key in the batch). `overlay` starts with
    /// the decisions not in the state yet: the batch in flight's, or a dry run's (which
    /// outlives the batch: a dry run writes nothing); `collect` gathers the changes.
    async fn plan_batch(
        &self,
        batch: &[Message],
        overlay: &mut HashMap<String, Version>,
        collect: bool,
        modified_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Plan, ProcessorError> {
        let mut plan = Plan {
            stats: BatchStats {
                received: batch.len() as u64,
                ..Default::default()
            },
            ..Default::default()
        };
        let steps = self.standardize_all(batch, modified_at).await?;
        let keys: Vec<Vec<u8>> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Candidate(c) => Some(c.key_str.as_bytes().to_vec()),
                _ => None,
            })
            .collect();
        let state = self.state.clone();
        let stored = match tokio::task::spawn_blocking(move || state.get_versions(&keys)).await {
            Ok(r) => r?,
            Err(e) => {
                return Err(ProcessorError::Topology(format!(
                    "state reader failed: {e}"
                )))
            }
        };
        let mut stored = stored.into_iter();
        for step in steps {
            let c = match step {
                Step::Skip => {
                    plan.stats.skipped += 1;
                    continue;
                }
                Step::Dlq(out) => {
                    plan.stats.dead_lettered += 1;
                    plan.out.push(out);
                    continue;
                }
                Step::Candidate(c) => c,
            };
            let from_store = stored.next().flatten();
            let current = overlay.get(&c.key_str).copied().or(from_store);
            match decide(current.as_ref(), &c.version) {
                Decision::Drop => plan.stats.dropped += 1,
                Decision::Absorb => {
                    plan.stats.absorbed += 1;
                    overlay.insert(c.key_str.clone(), c.version);
                    plan.out.push(version_out(&c));
                    plan.versions.push((c.key_str.clone(), c.version));
                }
                Decision::Emit => {
                    // encode only what is emitted: most re-deliveries are dropped above
                    let value = match &c.record {
                        None => None,
                        Some(r) => match self.codec.encode_record(r).await {
                            Ok(v) => Some(v),
                            // a record that does not fit its schema is a mapping bug for
                            // this payload: the event is dead-lettered, the pipeline goes on
                            Err(e @ ingot_kafka::SchemaError::Mismatch { .. }) => {
                                plan.stats.dead_lettered += 1;
                                plan.out.push(dlq_out(
                                    &c.source,
                                    batch[c.index].key.clone().unwrap_or_default(),
                                    batch[c.index].value.clone().unwrap_or_default(),
                                    e.to_string(),
                                ));
                                continue;
                            }
                            Err(e) => return Err(e.into()),
                        },
                    };
                    plan.stats.emitted += 1;
                    overlay.insert(c.key_str.clone(), c.version);
                    if collect {
                        plan.changes.push((
                            c.key_str.clone(),
                            c.key.model,
                            c.record.as_ref().map(|r| r.data.to_json()),
                        ));
                    }
                    plan.out.push(Out {
                        topic: c.key.model.normalized_topic(),
                        partition: None,
                        key: c.key_str.as_bytes().to_vec(),
                        value,
                        headers: c
                            .headers
                            .iter()
                            .map(|(k, v)| (*k, v.as_bytes().to_vec()))
                            .collect(),
                    });
                    plan.out.push(version_out(&c));
                    plan.versions.push((c.key_str.clone(), c.version));
                }
            }
        }
        Ok(plan)
    }

    /// Standardizes a batch's raw events, in their order ([`Standardizer::standardize`]):
    /// with more than one of `standardize_tasks`, chunks of at least 64 events go to
    /// tasks of their own (on other worker threads) while the first is standardized
    /// here. A panic in a mapping is resumed here, as if it had happened inline.
    async fn standardize_all(
        &self,
        batch: &[Message],
        modified_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Vec<Step>, ProcessorError> {
        const MIN_CHUNK: usize = 64;
        let chunks = self
            .cfg
            .standardize_tasks
            .min(batch.len() / MIN_CHUNK)
            .max(1);
        let size = batch.len().div_ceil(chunks).max(1);
        let mut parts = batch.chunks(size);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts
            .enumerate()
            .map(|(i, chunk)| {
                let standardizer = self.standardizer.clone();
                let chunk = chunk.to_vec();
                let base = (i + 1) * size;
                tokio::spawn(async move {
                    standardizer
                        .standardize_chunk(&chunk, base, modified_at)
                        .await
                })
            })
            .collect();
        let mut steps = Vec::with_capacity(batch.len());
        steps.extend(
            self.standardizer
                .standardize_chunk(first, 0, modified_at)
                .await?,
        );
        for task in others {
            match task.await {
                Ok(chunk) => steps.extend(chunk?),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    return Err(ProcessorError::Topology(format!(
                        "standardize task failed: {e}"
                    )))
                }
            }
        }
        Ok(steps)
    }
}

/// What standardizing raw events needs: shared with the tasks that standardize chunks
/// of a batch.
#[derive(Clone)]
struct Standardizer {
    codec: AvroCodec,
    mapping_override: Option<MappingOverride>,
}

impl Standardizer {
    /// The mapping of `provider`: the override for its provider, else the registry's.
    fn mapping(&self, provider: Provider) -> &dyn Mapping {
        match &self.mapping_override {
            Some(o) if o.0.provider() == provider => o.0.as_ref(),
            _ => mapping_for(provider),
        }
    }

    /// [`Standardizer::standardize`] of each event of `chunk`, whose first is event
    /// `base` of its batch.
    async fn standardize_chunk(
        &self,
        chunk: &[Message],
        base: usize,
        modified_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Vec<Step>, ProcessorError> {
        let mut steps = Vec::with_capacity(chunk.len());
        for (i, m) in chunk.iter().enumerate() {
            steps.push(self.standardize(m, base + i, modified_at).await?);
        }
        Ok(steps)
    }

    /// Decodes and standardizes one raw event (`modified_at`: a replay's time, see
    /// [`Processor::version_and_output`]). Errors only for transient failures
    /// (registry unreachable); anything wrong with the event itself is a DLQ step.
    async fn standardize(
        &self,
        m: &Message,
        index: usize,
        modified_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Step, ProcessorError> {
        let source = format!("{}/{}@{}", m.topic, m.partition, m.offset);
        let dlq = |reason: String| {
            Ok(Step::Dlq(dlq_out(
                &source,
                m.key.clone().unwrap_or_default(),
                m.value.clone().unwrap_or_default(),
                reason,
            )))
        };
        let Some(bytes) = m.value.as_deref() else {
            return dlq("raw event without value".into());
        };
        let event = match self.codec.decode_raw(bytes).await {
            Ok(e) => e,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => return dlq(format!("undecodable raw event: {e}")),
        };
        let provider: Provider = match event.provider.parse() {
            Ok(p) => p,
            Err(e) => return dlq(e.to_string()),
        };
        let mapping = self.mapping(provider);
        let standardized = match mapping.standardize(&event) {
            Ok(Outcome::Record(s)) => s,
            Ok(Outcome::Skip(reason)) => {
                metrics::counter!("ingot_processor_skipped_total", "reason" => reason, "provider" => provider.as_str()).increment(1);
                return Ok(Step::Skip);
            }
            Err(e) => return dlq(e.to_string()),
        };
        let key = RecordKey::new(
            &event.connection_id,
            standardized.model(),
            standardized.remote_id(),
        );
        let key_str = key.to_string();
        let (version, record, headers) = self.version_and_output(
            event,
            m,
            &key,
            standardized,
            mapping.mapping_version(),
            modified_at,
        );
        debug_assert_eq!(
            version.mapping_version,
            ingot_standardize::revision(mapping.mapping_version())
        );
        Ok(Step::Candidate(Box::new(Candidate {
            key,
            key_str,
            raw_partition: m.partition,
            version,
            record,
            headers,
            source,
            index,
        })))
    }

    /// The version of a standardized record, the normalized record it would produce
    /// (`None` for a delete: a tombstone) and the Kafka headers.
    fn version_and_output(
        &self,
        event: RawEvent,
        m: &Message,
        key: &RecordKey,
        s: Standardized,
        mapping_version: &str,
        modified_at: Option<chrono::DateTime<Utc>>,
    ) -> (
        Version,
        Option<NormalizedRecord>,
        Vec<(&'static str, String)>,
    ) {
        // the raw event's receive time, or the replay's time when later: a record a replay
        // changes (or a redrive brings) is modified now, for readers that poll by
        // `modified_at`; a re-processed replay batch still re-emits identical records
        let received = ingot_model::parse_time(&event.received_at, true).ok();
        let modified_at = match (received, modified_at) {
            (Some(r), Some(m)) => r.max(m),
            (r, m) => r.or(m).unwrap_or_else(Utc::now),
        };
        let modified_at = ingot_model::format_utc(&modified_at);
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
                    mapping_version: ingot_standardize::revision(mapping_version),
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
                    mapping_version: ingot_standardize::revision(mapping_version),
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
                        // the payload moves into the record: no copy of its ≈ 4 KB
                        remote_data: String::from_utf8(event.payload).ok(),
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

/// Produces `out` and waits until every record is acknowledged.
async fn produce(producer: &Producer, out: &[Out]) -> Result<(), ProcessorError> {
    let headers: Vec<Vec<(&str, &[u8])>> = out
        .iter()
        .map(|o| o.headers.iter().map(|(k, v)| (*k, v.as_slice())).collect())
        .collect();
    let records: Vec<ingot_kafka::OutgoingRecord<'_>> = out
        .iter()
        .zip(&headers)
        .map(|(o, h)| ingot_kafka::OutgoingRecord {
            topic: &o.topic,
            partition: o.partition,
            key: &o.key,
            value: o.value.as_deref(),
            headers: h,
        })
        .collect();
    producer.send_all(&records).await?;
    Ok(())
}

/// A batch whose outputs are being produced while the next batch is planned.
struct InFlight {
    /// The produce (and, in exactly-once mode, the transaction's commit).
    task: tokio::task::JoinHandle<Result<(), ProcessorError>>,
    /// What is done once the outputs are acknowledged.
    landing: Landing,
    versions: Vec<(String, Version)>,
    stats: BatchStats,
}

impl InFlight {
    fn is_replay(&self) -> bool {
        matches!(self.landing, Landing::Replay { .. })
    }
}

/// What a batch in flight does once its outputs are acknowledged.
enum Landing {
    /// A live batch: commit the consumed offsets.
    Live {
        /// The first offset of each of the batch's partitions: where a failure rewinds to.
        first: HashMap<(String, i32), i64>,
        /// The next offsets to consume after the batch.
        next: HashMap<(String, i32), i64>,
    },
    /// A replay batch: its unit's progress after it, and (at-least-once) the checkpoint
    /// record to write once the outputs are acknowledged (in exactly-once mode and in a
    /// dry run it is among the outputs).
    Replay {
        unit: (String, i32),
        progress: Box<ingot_model::replay::UnitProgress>,
        checkpoint: Option<Out>,
    },
}

/// The outcome of [`Processor::land`].
enum Landed {
    Done,
    /// A transient failure: the offsets to consume again from (none for a replay batch).
    Failed {
        rewind: HashMap<(String, i32), i64>,
    },
}

/// What landing a batch updates.
struct LandCx<'a> {
    consumer: &'a GroupConsumer,
    assignment: &'a Assignment,
    totals: &'a mut BatchStats,
    backoff: &'a mut Backoff,
}

/// Exponential backoff between retries of a failed batch: 100 ms doubling to 5 s.
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(5));
    }

    fn reset(&mut self) {
        *self = Backoff::default();
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

/// The raw partition numbers this instance is assigned (of any provider: the `range`
/// assignor gives partition *p* of every provider to the same instance).
fn owned_partitions(consumer: &GroupConsumer) -> HashSet<i32> {
    consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Partitions revoked since the last call now belong to another instance (or come back
/// re-assigned, re-delivered from the committed offset): their messages collected so far
/// are left out of the batch, and their state must be restored again before use.
fn forget_revoked(assignment: &Assignment, restored: &mut HashSet<i32>, batch: &mut Vec<Message>) {
    for (topic, p) in assignment.take_revoked() {
        restored.remove(&p);
        batch.retain(|m| !(m.topic == topic && m.partition == p));
    }
}

/// The changelog record of a version the state takes: to the raw event's partition, so
/// the instance owning raw partition *p* finds its state in changelog partition *p*.
fn version_out(c: &Candidate) -> Out {
    Out {
        topic: VERSIONS_TOPIC.to_string(),
        partition: Some(c.raw_partition),
        key: c.key_str.as_bytes().to_vec(),
        value: Some(c.version.to_bytes().to_vec()),
        headers: Vec::new(),
    }
}

fn dlq_out(source: &str, key: Vec<u8>, value: Vec<u8>, reason: String) -> Out {
    tracing::warn!(component = "processor", %source, %reason, "raw event dead-lettered");
    Out {
        topic: dlq::TOPIC.to_string(),
        partition: None,
        key,
        value: Some(value),
        headers: dlq::headers(dlq::Stage::Processor, &reason, source).to_vec(),
    }
}

/// The next offset to consume per partition after `batch`.
fn next_offsets(batch: &[Message]) -> HashMap<(String, i32), i64> {
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for m in batch {
        let e = next
            .entry((m.topic.clone(), m.partition))
            .or_insert(m.offset + 1);
        *e = (*e).max(m.offset + 1);
    }
    next
}

/// The first offset of each partition of `batch`.
fn first_offsets(batch: &[Message]) -> HashMap<(String, i32), i64> {
    let mut first: HashMap<(String, i32), i64> = HashMap::new();
    for m in batch {
        let e = first
            .entry((m.topic.clone(), m.partition))
            .or_insert(m.offset);
        *e = (*e).min(m.offset);
    }
    first
}

/// Seeks every partition of a failed batch back to its first offset (`first`), so the
/// batch is consumed again.
fn rewind(consumer: &GroupConsumer, first: &HashMap<(String, i32), i64>) {
    for ((t, p), o) in first {
        if let Err(e) = consumer.seek(
            t,
            *p,
            ingot_kafka::Offset::Offset(*o),
            Duration::from_secs(5),
        ) {
            tracing::warn!(component = "processor", topic = %t, partition = p, error = %e, "seek back failed");
        }
    }
}

/// This instance's stable id (a UUID kept in the state directory): the suffix of its
/// `transactional.id`, so a restarted instance fences its previous incarnation.
fn instance_id(state_dir: &std::path::Path) -> Result<String, ProcessorError> {
    let path = state_dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id)
        .map_err(|e| ProcessorError::Topology(format!("writing {}: {e}", path.display())))?;
    Ok(id)
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
