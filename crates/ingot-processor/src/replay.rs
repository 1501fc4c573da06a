//! Replays, run by the processor that owns the partitions (DESIGN §6, `ingot_model::replay`).
//!
//! A replay is split into units, one per raw partition number *p*; the instance that owns
//! raw partition *p* (of every provider, by the `range` assignor) runs unit *p*, so the
//! replay's decisions and the live traffic's go through the same state in one loop, one
//! batch at a time: a replay never reverts a newer live version, and the version rule
//! (with mapping versions, rule 6) decides what a re-standardized event changes.
//!
//! The processor loop alternates: one replay batch, then whatever live batch is ready,
//! each planned while the other (or the unit's previous batch) is in flight, in the
//! loop's two-deep pipeline ([`Processor::run`]); live traffic waits at most one replay
//! batch. A unit's checkpoint (next offset per topic-partition) and counts go to
//! `ingot.replays` after each batch — in exactly-once mode inside the batch's
//! transaction, otherwise once its outputs are acknowledged (with its state write) — so a
//! replay interrupted by a crash or a rebalance resumes there. A batch planned against a
//! batch in flight that then fails is dropped and read again.
//!
//! A dry run plans the same batches with an overlay that outlives them and writes
//! nothing but its progress; at the end of a unit it reads the current normalized records
//! of the keys that would change and reports, per model, how many change, which
//! top-level fields change how often, and a few sample diffs.

use crate::{Processor, ProcessorError};
use chrono::Utc;
use ingot_kafka::{Consumer, KafkaSettings, Message, Offset, Reader, TopicPartitionList};
use ingot_model::dlq;
use ingot_model::replay::{
    DryRunReport, FieldChange, ModelDiff, ReplayBook, ReplayCounts, ReplaySource, ReplaySpec,
    SampleDiff, Seek, UnitCursor, UnitProgress, REPLAYS_TOPIC, SAMPLES_PER_MODEL,
};
use ingot_model::{Model, NormalizedRecord, Version};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most records a replay batch reads (selected or not) before it is processed.
const MAX_SCAN_PER_BATCH: usize = 5_000;

/// The replays this processor knows (tailed from `ingot.replays`) and the units it runs.
pub(crate) struct Replays {
    book: Arc<Mutex<ReplayBook>>,
    tail: tokio::task::JoinHandle<()>,
    running: BTreeMap<(String, i32), Unit>,
    /// Units this instance finished (the tail may not have seen the record yet).
    finished: HashSet<(String, i32)>,
}

impl Drop for Replays {
    fn drop(&mut self) {
        self.tail.abort();
    }
}

impl Replays {
    /// Stops the tail and waits until its consumer is dropped (an aborted task is dropped
    /// by the runtime later; a stop must not leave a client talking to a broker that the
    /// process stops next).
    pub(crate) async fn close(mut self) {
        self.tail.abort();
        let _ = (&mut self.tail).await;
    }
}

/// One unit being run.
struct Unit {
    spec: ReplaySpec,
    /// The progress of the batches that landed (the last checkpoint written).
    progress: UnitProgress,
    /// The progress after the unit's batch in flight, if one is.
    inflight: Option<UnitProgress>,
    /// Reads on from `inflight`, else from `progress` (`None`: opened on the next plan).
    reader: Option<Reader>,
    dry: Option<DryRun>,
}

impl Unit {
    /// Where the next batch starts: after the batch in flight, else the last checkpoint.
    fn base(&self) -> &UnitProgress {
        self.inflight.as_ref().unwrap_or(&self.progress)
    }
}

/// A replay batch planned, to be started by the processor loop.
pub(crate) struct ReplayPlanned {
    pub(crate) unit: (String, i32),
    pub(crate) plan: crate::Plan,
    pub(crate) landing: crate::Landing,
    /// The unit's progress once the batch lands (for [`Replays::started`]).
    pub(crate) progress: UnitProgress,
}

/// A dry run's memory: decisions so far (the overlay) and what would change.
#[derive(Default)]
struct DryRun {
    overlay: HashMap<String, Version>,
    /// Record key → (model, per-field fingerprints of the new fields; `None`: deleted).
    changed: HashMap<String, (Model, Option<BTreeMap<String, u64>>)>,
    /// The new fields of the sample records (the first changed keys per model).
    samples: BTreeMap<Model, Vec<(String, Option<serde_json::Value>)>>,
}

impl Replays {
    /// Starts tailing `ingot.replays`.
    pub(crate) fn start(settings: &KafkaSettings) -> Result<Self, ProcessorError> {
        let book = Arc::new(Mutex::new(ReplayBook::default()));
        let consumer = ingot_kafka::create_consumer(settings, "ingot-replays-tail")?;
        let mut tpl = TopicPartitionList::new();
        for p in settings.partitions(REPLAYS_TOPIC)? {
            tpl.add_partition_offset(REPLAYS_TOPIC, p, Offset::Beginning)
                .map_err(ingot_kafka::KafkaError::from)?;
        }
        consumer
            .assign(&tpl)
            .map_err(ingot_kafka::KafkaError::from)?;
        let b = book.clone();
        let tail = tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(m) => {
                        let m = Message::from_borrowed(&m);
                        let Some(key) = m.key_str() else { continue };
                        let mut book = b.lock().unwrap_or_else(|e| e.into_inner());
                        if let Err(e) = book.apply(key, m.value.as_deref()) {
                            tracing::warn!(component = "processor", %key, error = %e, "unreadable replay record ignored");
                        }
                    }
                    Err(ingot_kafka::RdKafkaError::PartitionEOF(_)) => {}
                    Err(e) => {
                        tracing::debug!(component = "processor", error = %e, "replay tail");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(Replays {
            book,
            tail,
            running: BTreeMap::new(),
            finished: HashSet::new(),
        })
    }

    /// Adopts the units of live replays this instance owns and drops the others
    /// (cancelled, finished, or now owned by another instance).
    fn refresh(&mut self, owned: &HashSet<i32>) {
        // read under the lock (nothing here waits), without copying the book: it holds
        // every replay ever requested
        let book = self.book.clone();
        let book = book.lock().unwrap_or_else(|e| e.into_inner());
        self.running.retain(|(id, unit), _| {
            owned.contains(unit) && book.specs.get(id).is_some_and(|s| !s.cancelled)
        });
        for spec in book.specs.values() {
            if spec.cancelled {
                continue;
            }
            for &unit in owned {
                if unit < 0 || unit as u32 >= spec.units {
                    continue;
                }
                let k = (spec.id.clone(), unit);
                if self.running.contains_key(&k) || self.finished.contains(&k) {
                    continue;
                }
                let saved = book.units.get(&k);
                if saved.is_some_and(|u| u.done) {
                    self.finished.insert(k);
                    continue;
                }
                let progress = saved.cloned();
                self.running.insert(
                    k,
                    Unit {
                        spec: spec.clone(),
                        // cursors are set on the first step when there is no checkpoint
                        progress: progress.unwrap_or(UnitProgress {
                            replay_id: spec.id.clone(),
                            unit,
                            seek: Seek::Scan,
                            cursors: BTreeMap::new(),
                            counts: ReplayCounts::default(),
                            done: false,
                            report: None,
                            updated_at: Utc::now(),
                        }),
                        inflight: None,
                        reader: None,
                        // a resumed dry run starts over: its overlay was in memory
                        dry: spec.dry_run.then(DryRun::default),
                    },
                );
                if spec.dry_run {
                    if let Some(u) = self.running.get_mut(&(spec.id.clone(), unit)) {
                        u.progress.cursors.clear();
                        u.progress.counts = ReplayCounts::default();
                    }
                }
            }
        }
    }

    /// Is there a unit to run among the partitions this instance owns?
    pub(crate) fn has_work(&mut self, owned: &HashSet<i32>) -> bool {
        self.refresh(owned);
        !self.running.is_empty()
    }

    /// Is a unit running (planned, or its last batch in flight)?
    pub(crate) fn is_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// The unit whose batch is planned next: the first with batches left to plan.
    fn next_unit(&self) -> Option<(String, i32)> {
        self.running
            .iter()
            .find(|(_, u)| !u.base().done)
            .map(|(k, _)| k.clone())
    }

    /// Is there a batch left to plan (not only a last batch in flight)?
    pub(crate) fn can_plan(&self) -> bool {
        self.next_unit().is_some()
    }

    /// Is the batch planned next a dry run's?
    pub(crate) fn next_is_dry_run(&self) -> bool {
        self.next_unit()
            .and_then(|k| self.running.get(&k))
            .is_some_and(|u| u.dry.is_some())
    }

    /// A batch of `unit` was started; its progress is where the next one starts.
    pub(crate) fn started(&mut self, unit: &(String, i32), progress: UnitProgress) {
        if let Some(u) = self.running.get_mut(unit) {
            u.inflight = Some(progress);
        }
    }

    /// A batch of `unit` landed with its checkpoint.
    pub(crate) fn landed(&mut self, unit: &(String, i32), progress: UnitProgress) {
        let Some(u) = self.running.get_mut(unit) else {
            // cancelled or revoked while in flight: its checkpoint is written all the same
            return;
        };
        u.inflight = None;
        u.progress = progress;
        if u.progress.done {
            tracing::info!(component = "processor", replay = %u.spec.id, unit = unit.1, counts = ?u.progress.counts, "replay unit done");
            self.running.remove(unit);
            self.finished.insert(unit.clone());
        }
    }

    /// A batch of `unit` was dropped or failed: its reader starts again from the last
    /// batch started (a dry run starts over: its overlay holds the dropped decisions).
    pub(crate) fn reset(&mut self, unit: &(String, i32)) {
        let Some(u) = self.running.get_mut(unit) else {
            return;
        };
        u.reader = None;
        if let Some(d) = u.dry.as_mut() {
            *d = DryRun::default();
            u.inflight = None;
            u.progress.cursors.clear();
            u.progress.counts = ReplayCounts::default();
        }
    }

    /// A batch of `unit` in flight failed: the unit goes back to its last checkpoint.
    pub(crate) fn failed(&mut self, unit: &(String, i32)) {
        if let Some(u) = self.running.get_mut(unit) {
            u.inflight = None;
        }
        self.reset(unit);
    }
}

/// Fingerprints of the top-level fields of a record's standardized fields.
fn fingerprints(data: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let serde_json::Value::Object(m) = data {
        for (k, v) in m {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            v.to_string().hash(&mut h);
            out.insert(k.clone(), h.finish());
        }
    }
    out
}

/// The fields whose fingerprints differ (a field missing on one side differs).
fn changed_fields(
    old: Option<&BTreeMap<String, u64>>,
    new: Option<&BTreeMap<String, u64>>,
) -> Vec<String> {
    let empty = BTreeMap::new();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut names: Vec<&String> = o.keys().chain(n.keys()).collect();
    names.sort();
    names.dedup();
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|f| o.get(*f) != n.get(*f))
        .cloned()
        .collect();
    if old.is_some() != new.is_some() {
        out.insert(0, "remote_deleted".to_string());
    }
    out
}

/// `topic:partition`, the key of a unit's cursor.
fn cursor_key(topic: &str, partition: i32) -> String {
    format!("{topic}:{partition}")
}

fn parse_cursor_key(k: &str) -> Option<(&str, i32)> {
    let (t, p) = k.rsplit_once(':')?;
    Some((t, p.parse().ok()?))
}

/// The raw position a processor dead letter came from; `None` for another stage's.
fn dlq_source(m: &Message) -> Option<(String, i32, i64)> {
    let stage = m.header(dlq::HEADER_STAGE).map(dlq::Stage::parse);
    if !matches!(stage, None | Some(Some(dlq::Stage::Processor))) {
        return None;
    }
    dlq::parse_source(m.header(dlq::HEADER_SOURCE)?)
}

impl Processor {
    /// Reads and plans the next batch of a replay unit this instance owns, if any, against
    /// the state and `overlay` (the decisions of the batch in flight). The plan is
    /// started by the processor loop, which tells [`Replays::started`]; a plan that is not
    /// started must be followed by [`Replays::reset`] (its unit's reader moved on).
    pub(crate) async fn replay_plan(
        &self,
        replays: &mut Replays,
        owned: &HashSet<i32>,
        restored: &mut HashSet<i32>,
        mut overlay: HashMap<String, Version>,
    ) -> Result<Option<ReplayPlanned>, ProcessorError> {
        replays.refresh(owned);
        let Some(k) = replays.next_unit() else {
            return Ok(None);
        };
        if !restored.contains(&k.1) {
            self.state.restore_partition(&self.settings, k.1).await?;
            restored.insert(k.1);
        }
        let Some(u) = replays.running.get_mut(&k) else {
            return Ok(None);
        };
        match self.replay_batch(u, &mut overlay).await {
            Ok((plan, progress, checkpoint)) => Ok(Some(ReplayPlanned {
                unit: k.clone(),
                plan,
                landing: crate::Landing::Replay {
                    unit: k,
                    progress: Box::new(progress.clone()),
                    checkpoint,
                },
                progress,
            })),
            Err(e) => {
                replays.reset(&k);
                Err(e)
            }
        }
    }

    /// Sets a unit's cursors: from `since` by the broker's timestamp index where it has
    /// one, else from the beginning (a scan that filters by timestamp); to the current end.
    async fn init_cursors(&self, u: &mut Unit) -> Result<(), ProcessorError> {
        let topics: Vec<String> = match u.spec.source {
            ReplaySource::Raw => self.cfg.providers.iter().map(|p| p.raw_topic()).collect(),
            ReplaySource::Dlq => vec![dlq::TOPIC.to_string()],
        };
        let lookup = self.settings.capabilities.timestamp_lookup && u.spec.since.is_some();
        u.progress.seek = if lookup {
            Seek::TimestampLookup
        } else {
            Seek::Scan
        };
        for topic in topics {
            let ends: HashMap<i32, i64> = self.settings.end_offsets(&topic)?.into_iter().collect();
            let partitions: Vec<i32> = match u.spec.source {
                // unit p reads raw partition p of every provider
                ReplaySource::Raw => vec![u.progress.unit],
                // every unit reads the whole dead-letter topic and takes the entries of
                // its raw partition
                ReplaySource::Dlq => self.settings.partitions(&topic)?,
            };
            let starts: HashMap<i32, i64> = match (lookup, u.spec.since) {
                (true, Some(since)) => self
                    .settings
                    .offsets_for_time(&topic, since.timestamp_millis())
                    .await?
                    .into_iter()
                    .collect(),
                _ => HashMap::new(),
            };
            for p in partitions {
                let end = ends.get(&p).copied().unwrap_or(0);
                let start = starts.get(&p).copied().unwrap_or(0).min(end);
                u.progress.cursors.insert(
                    cursor_key(&topic, p),
                    UnitCursor {
                        start,
                        next: start,
                        end,
                    },
                );
            }
        }
        Ok(())
    }

    /// Reads and plans one batch of a unit: its outputs, its progress after it, and (in
    /// at-least-once mode) the checkpoint record to write once the outputs are
    /// acknowledged; in exactly-once mode and in a dry run the checkpoint is among the
    /// outputs.
    async fn replay_batch(
        &self,
        u: &mut Unit,
        live: &mut HashMap<String, Version>,
    ) -> Result<(crate::Plan, UnitProgress, Option<crate::Out>), ProcessorError> {
        if u.base().cursors.is_empty() {
            self.init_cursors(u).await?;
        }
        if u.reader.is_none() {
            let starts: Vec<(String, i32, i64)> = u
                .base()
                .cursors
                .iter()
                .filter(|(_, c)| c.next < c.end)
                .filter_map(|(k, c)| parse_cursor_key(k).map(|(t, p)| (t.to_string(), p, c.next)))
                .collect();
            u.reader = Some(Reader::new(&self.settings, &starts)?);
        }
        let mut cursors = u.base().cursors.clone();
        let mut counts = ReplayCounts::default();
        let mut batch: Vec<Message> = Vec::new();
        // dead-letter redrive: an entry that fails again with the same reason stays where
        // it is (no new entry); a new reason is dead-lettered again
        let mut old_reasons: HashMap<String, String> = HashMap::new();
        let mut scanned = 0usize;
        let reader = u.reader.as_mut().expect("set above");
        while batch.len() < self.cfg.max_batch
            && scanned < MAX_SCAN_PER_BATCH
            && cursors.values().any(|c| c.next < c.end)
        {
            let Some(m) = reader.next().await? else {
                // the reader's end was reached: nothing more below the unit's ends
                for c in cursors.values_mut() {
                    c.next = c.end;
                }
                break;
            };
            let ck = cursor_key(&m.topic, m.partition);
            let Some(c) = cursors.get_mut(&ck) else {
                continue;
            };
            if m.offset < c.next || m.offset >= c.end {
                if m.offset >= c.end {
                    c.next = c.end;
                }
                continue;
            }
            c.next = m.offset + 1;
            scanned += 1;
            match u.spec.source {
                ReplaySource::Raw => {
                    counts.scanned += 1;
                    let selected = m
                        .key_str()
                        .is_some_and(|k| u.spec.selects(k, m.timestamp_ms));
                    if selected {
                        batch.push(m);
                    }
                }
                ReplaySource::Dlq => {
                    let Some((topic, partition, offset)) = dlq_source(&m) else {
                        continue;
                    };
                    if partition != u.progress.unit
                        || !self.cfg.providers.iter().any(|p| p.raw_topic() == topic)
                    {
                        // another unit's, or not a raw event (a materializer dead letter)
                        continue;
                    }
                    counts.scanned += 1;
                    let reason = m.header(dlq::HEADER_REASON).unwrap_or_default().to_string();
                    let selected = m
                        .key_str()
                        .is_some_and(|k| u.spec.selects(k, m.timestamp_ms))
                        && u.spec
                            .reason_contains
                            .as_deref()
                            .is_none_or(|r| reason.contains(r));
                    if selected {
                        old_reasons.insert(dlq::source(&topic, partition, offset), reason);
                        batch.push(Message {
                            topic,
                            partition,
                            offset,
                            ..m
                        });
                    }
                }
            }
        }
        counts.read = batch.len() as u64;
        let done = cursors.values().all(|c| c.next >= c.end);
        let (overlay, collect) = match u.dry.as_mut() {
            Some(d) => (&mut d.overlay, true),
            None => (live, false),
        };
        let mut plan = self
            .plan_batch(&batch, overlay, collect, Some(u.spec.created_at))
            .await?;
        plan.out.retain(|o| {
            if o.topic != dlq::TOPIC {
                return true;
            }
            let header = |name: &str| {
                o.headers
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| String::from_utf8_lossy(v).to_string())
            };
            let source = header(dlq::HEADER_SOURCE).unwrap_or_default();
            old_reasons.get(&source) != header(dlq::HEADER_REASON).as_ref()
        });
        counts.reemitted = plan.stats.emitted;
        counts.unchanged = plan.stats.absorbed + plan.stats.dropped;
        counts.dead_lettered = plan.stats.dead_lettered;
        counts.skipped = plan.stats.skipped;

        let mut progress = u.base().clone();
        progress.cursors = cursors;
        progress.counts.add(&counts);
        progress.updated_at = Utc::now();
        if let Some(d) = u.dry.as_mut() {
            for (key, model, data) in plan.changes.drain(..) {
                let prints = data.as_ref().map(fingerprints);
                let samples = d.samples.entry(model).or_default();
                if let Some(s) = samples.iter_mut().find(|(k, _)| *k == key) {
                    s.1 = data;
                } else if samples.len() < SAMPLES_PER_MODEL && !d.changed.contains_key(&key) {
                    samples.push((key.clone(), data));
                }
                d.changed.insert(key, (model, prints));
            }
            // a dry run writes nothing but its progress
            plan.out.clear();
            plan.versions.clear();
            if done {
                // the counts stay the emits the real replay would make (a record emitted
                // twice counts twice there too); the report counts records
                progress.report = Some(self.dry_run_report(d).await?);
            }
        }
        progress.done = done;
        let progress_out = crate::Out {
            topic: REPLAYS_TOPIC.to_string(),
            partition: None,
            key: u.spec.unit_key(progress.unit).into_bytes(),
            value: Some(serde_json::to_vec(&progress).unwrap_or_default()),
            headers: Vec::new(),
        };
        if self.cfg.exactly_once || u.dry.is_some() {
            plan.out.push(progress_out);
            Ok((plan, progress, None))
        } else {
            Ok((plan, progress, Some(progress_out)))
        }
    }

    /// The end of a dry-run unit: reads the current normalized records of the keys that
    /// would change and compares them field by field with the new ones.
    async fn dry_run_report(&self, d: &mut DryRun) -> Result<DryRunReport, ProcessorError> {
        let models: HashSet<Model> = d.changed.values().map(|(m, _)| *m).collect();
        let sample_keys: HashSet<String> = d
            .samples
            .values()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        let mut old: HashMap<String, Option<BTreeMap<String, u64>>> = HashMap::new();
        let mut old_samples: HashMap<String, serde_json::Value> = HashMap::new();
        let mut starts = Vec::new();
        for m in &models {
            for p in self.settings.partitions(&m.normalized_topic())? {
                starts.push((m.normalized_topic(), p, 0));
            }
        }
        let mut reader = Reader::new(&self.settings, &starts)?;
        while let Some(msg) = reader.next().await? {
            let Some(key) = msg.key_str() else { continue };
            if !d.changed.contains_key(key) {
                continue;
            }
            let Some(model) = Model::from_normalized_topic(&msg.topic) else {
                continue;
            };
            let data = match msg.value.as_deref() {
                None => None,
                Some(v) => {
                    let json = self.codec.decode_record(v).await?;
                    NormalizedRecord::from_json(model, json)
                        .ok()
                        .map(|r| r.data.to_json())
                }
            };
            if sample_keys.contains(key) {
                match &data {
                    Some(v) => old_samples.insert(key.to_string(), v.clone()),
                    None => old_samples.remove(key),
                };
            }
            old.insert(key.to_string(), data.as_ref().map(fingerprints));
        }
        let mut report = DryRunReport::default();
        for (key, (model, new)) in &d.changed {
            let before = old.get(key).and_then(|o| o.as_ref());
            let fields = changed_fields(before, new.as_ref());
            if fields.is_empty() {
                continue;
            }
            let md: &mut ModelDiff = report.models.entry(*model).or_default();
            md.changed += 1;
            for f in fields {
                *md.fields.entry(f).or_default() += 1;
            }
        }
        for (model, samples) in &d.samples {
            for (key, new) in samples {
                let old_v = old_samples.get(key);
                let get = |v: Option<&serde_json::Value>, f: &str| {
                    v.and_then(|v| v.get(f))
                        .cloned()
                        .unwrap_or(serde_json::Value::Null)
                };
                let (o, n) = (
                    old.get(key).and_then(|o| o.as_ref()),
                    d.changed.get(key).and_then(|(_, p)| p.as_ref()),
                );
                let changes: Vec<FieldChange> = changed_fields(o, n)
                    .into_iter()
                    .map(|f| FieldChange {
                        old: get(old_v, &f),
                        new: get(new.as_ref(), &f),
                        field: f,
                    })
                    .collect();
                if !changes.is_empty() {
                    report
                        .models
                        .entry(*model)
                        .or_default()
                        .samples
                        .push(SampleDiff {
                            record_key: key.clone(),
                            changes,
                        });
                }
            }
        }
        Ok(report)
    }
}
