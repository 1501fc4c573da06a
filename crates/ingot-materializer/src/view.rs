use ingot_kafka::{
    AvroCodec, Consumer, KafkaError, KafkaSettings, Message, Offset, StreamConsumer,
    TopicPartitionList,
};
use ingot_model::{Model, RecordKey};
use ingot_store::{decode_offset, encode_offset, offset_key, Batch, Store};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

const RECORDS: &str = "records";
const BY_MODIFIED: &str = "by_modified";
const OFFSETS: &str = "offsets";

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Store(#[from] ingot_store::StoreError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("normalized record {topic}/{partition}@{offset} unreadable: {reason}")]
    BadRecord {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
}

/// Where the materializer dead-letters normalized values it cannot use (the processor's
/// dead-letter topic, with the same headers).
pub const DLQ_TOPIC: &str = "raw.dlq";
/// Header on dead letters: why the value could not be used.
pub const HEADER_DLQ_REASON: &str = "ingot-dlq-reason";
/// Header on dead letters: where the value was, `<topic>/<partition>@<offset>`.
pub const HEADER_SOURCE: &str = "ingot-source";

/// What the materializer makes of one normalized message.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A record's decoded value (flat JSON).
    Record(Value),
    /// A Kafka tombstone: the record was deleted.
    Tombstone,
    /// A value it cannot use, already dead-lettered: only its offset is consumed.
    DeadLettered,
}

/// Why a normalized message cannot be applied whatever happens later (a poison pill), or
/// `None`. Values are checked by decoding; this checks the rest.
pub fn unusable(m: &Message) -> Option<String> {
    let model = Model::from_normalized_topic(&m.topic)?;
    let key: RecordKey = match m.key_str().and_then(|k| k.parse().ok()) {
        Some(k) => k,
        None => return Some("key is not a record key".into()),
    };
    (key.model != model).then(|| format!("record key {key} is not a {model} key"))
}

/// The materialized view: records by `<model>/<id>`, an index by (`modified_at`, `id`)
/// per model, and the next offset to apply per normalized partition.
#[derive(Clone)]
pub struct View {
    store: Store,
    /// Next offset per (topic, partition), mirrored in memory for freshness reports.
    offsets: Arc<RwLock<BTreeMap<(String, i32), i64>>>,
    caught_up: Arc<std::sync::atomic::AtomicBool>,
}

/// A range query (DESIGN §6). Times are exclusive bounds.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub connection_ids: Option<HashSet<String>>,
    pub tenant_id: String,
    pub connection_id: Option<String>,
    pub remote_id: Option<String>,
    pub modified_after: Option<i64>,
    pub modified_before: Option<i64>,
    pub remote_updated_after: Option<i64>,
    pub remote_updated_before: Option<i64>,
    pub include_deleted: bool,
    pub limit: usize,
    /// Position after which to continue: (modified_at nanos, id).
    pub after: Option<(i64, String)>,
}

/// One page of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Value>,
    /// The (modified_at, id) of the last record when more may follow.
    pub next: Option<(i64, String)>,
}

fn record_key(model: Model, id: &str) -> Vec<u8> {
    format!("{model}/{id}").into_bytes()
}

fn index_key(model: Model, modified_nanos: i64, id: &str) -> Vec<u8> {
    let mut k = format!("{model}\0").into_bytes();
    // offset binary so negative times sort before positive ones
    k.extend_from_slice(&((modified_nanos as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn parse_nanos(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str)
        .and_then(|s| ingot_model::parse_time(s, true).ok())
        .and_then(|t| t.timestamp_nanos_opt())
}

impl View {
    pub fn open(dir: &Path) -> Result<Self, ViewError> {
        let store = Store::open(dir, &[RECORDS, BY_MODIFIED, OFFSETS])?;
        let mut offsets = BTreeMap::new();
        for (k, v) in store.scan_prefix(OFFSETS, b"")? {
            if let (Some(pos), Some(off)) = (k.iter().position(|b| *b == 0), decode_offset(&v)) {
                if let (Ok(topic), Ok(p)) = (
                    std::str::from_utf8(&k[..pos]),
                    k[pos + 1..].try_into().map(i32::from_be_bytes),
                ) {
                    offsets.insert((topic.to_string(), p), off);
                }
            }
        }
        Ok(View {
            store,
            offsets: Arc::new(RwLock::new(offsets)),
            caught_up: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    /// The next offset per normalized partition the view reflects.
    pub fn freshness(&self) -> BTreeMap<(String, i32), i64> {
        self.offsets.read().expect("offsets lock").clone()
    }

    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets
            .read()
            .expect("offsets lock")
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// True once the view reached the end of every normalized partition at least once.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// One record (including deleted ones; callers decide).
    pub fn get(&self, model: Model, id: &str) -> Result<Option<Value>, ViewError> {
        Ok(self
            .store
            .get(RECORDS, &record_key(model, id))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Applies decoded normalized messages and their offsets in one atomic batch. Messages
    /// below a partition's stored next offset are skipped; dead-lettered ones only move
    /// the offset.
    pub fn apply(&self, msgs: &[(Message, Entry)]) -> Result<usize, ViewError> {
        let mut batch = Batch::new();
        let mut applied = 0;
        let mut next = self.freshness();
        // records written earlier in this batch, by record key
        let mut pending: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        for (m, value) in msgs {
            let pos = (m.topic.clone(), m.partition);
            if next.get(&pos).is_some_and(|n| m.offset < *n) {
                continue;
            }
            next.insert(pos, m.offset + 1);
            batch.put(
                OFFSETS,
                offset_key(&m.topic, m.partition),
                encode_offset(m.offset + 1),
            );
            let Some(model) = Model::from_normalized_topic(&m.topic) else {
                continue;
            };
            let value = match value {
                Entry::DeadLettered => continue,
                Entry::Record(v) => Some(v),
                Entry::Tombstone => None,
            };
            let bad = |reason: &str| ViewError::BadRecord {
                topic: m.topic.clone(),
                partition: m.partition,
                offset: m.offset,
                reason: reason.to_string(),
            };
            let key: RecordKey = m
                .key_str()
                .and_then(|k| k.parse().ok())
                .ok_or_else(|| bad("key is not a record key"))?;
            let id = key.record_id();
            let rk = record_key(model, &id);
            let previous = match pending.get(&rk) {
                Some(v) => Some(v.clone()),
                None => self.get(model, &id)?,
            };
            let new = match value {
                Some(v) => v.clone(),
                None => {
                    // tombstone: a deleted record is a stub of its identity. Its last
                    // content is not kept: compaction removes it from the topic, so a view
                    // rebuilt from the topic could not show it (same answers after a rebuild).
                    let header = |name: &str| {
                        m.header(name)
                            .map(|v| Value::String(v.to_string()))
                            .unwrap_or(Value::Null)
                    };
                    serde_json::json!({
                        "id": id,
                        "remote_id": key.remote_id,
                        "connection_id": key.connection_id,
                        "tenant_id": header("ingot-tenant-id"),
                        "provider": header("ingot-provider"),
                        "remote_deleted": true,
                        "remote_deleted_at": header("ingot-remote-updated-at"),
                        "modified_at": header("ingot-modified-at"),
                    })
                }
            };
            if let Some(prev) = &previous {
                if let Some(n) = parse_nanos(prev.get("modified_at")) {
                    batch.delete(BY_MODIFIED, index_key(model, n, &id));
                }
            }
            let n = parse_nanos(new.get("modified_at")).unwrap_or(0);
            batch.put(BY_MODIFIED, index_key(model, n, &id), Vec::new());
            batch.put(
                RECORDS,
                rk.clone(),
                serde_json::to_vec(&new).expect("json serializes"),
            );
            pending.insert(rk, new);
            applied += 1;
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
            *self.offsets.write().expect("offsets lock") = next;
        }
        Ok(applied)
    }

    /// A page of records of `model` ordered by (`modified_at`, `id`).
    pub fn list(&self, model: Model, q: &ListQuery) -> Result<Page, ViewError> {
        // point lookup when the record key is fully given
        if let (Some(c), Some(r)) = (&q.connection_id, &q.remote_id) {
            let id = RecordKey::new(c.clone(), model, r.clone()).record_id();
            let rec = self.get(model, &id)?.filter(|v| self.matches(v, q));
            return Ok(Page {
                records: rec.into_iter().collect(),
                next: None,
            });
        }
        let prefix = format!("{model}\0").into_bytes();
        let start = match &q.after {
            Some((n, id)) => {
                let mut k = index_key(model, *n, id);
                k.push(0); // strictly after
                k
            }
            None => match q.modified_after {
                Some(n) => index_key(model, n.saturating_add(1), ""),
                None => prefix.clone(),
            },
        };
        let mut records = Vec::new();
        let mut last = None;
        let mut more = false;
        let mut err = None;
        self.store.scan_from(BY_MODIFIED, &start, |k, _| {
            if !k.starts_with(&prefix) {
                return false;
            }
            let rest = &k[prefix.len()..];
            if rest.len() < 8 {
                return true;
            }
            let nanos =
                (u64::from_be_bytes(rest[..8].try_into().expect("8 bytes")) ^ (1 << 63)) as i64;
            if q.modified_before.is_some_and(|b| nanos >= b) {
                return false;
            }
            let id = String::from_utf8_lossy(&rest[8..]).to_string();
            if records.len() == q.limit {
                more = true;
                return false;
            }
            match self.get(model, &id) {
                Ok(Some(v)) if self.matches(&v, q) => {
                    records.push(v);
                    last = Some((nanos, id));
                }
                Ok(_) => {}
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        Ok(Page {
            records,
            next: if more { last } else { None },
        })
    }

    fn matches(&self, v: &Value, q: &ListQuery) -> bool {
        let s = |f: &str| v.get(f).and_then(Value::as_str);
        if s("tenant_id") != Some(q.tenant_id.as_str()) {
            return false;
        }
        if let Some(allowed) = &q.connection_ids {
            if !s("connection_id").is_some_and(|c| allowed.contains(c)) {
                return false;
            }
        }
        if q.connection_id
            .as_deref()
            .is_some_and(|c| s("connection_id") != Some(c))
        {
            return false;
        }
        if q.remote_id
            .as_deref()
            .is_some_and(|r| s("remote_id") != Some(r))
        {
            return false;
        }
        if !q.include_deleted && v.get("remote_deleted").and_then(Value::as_bool) == Some(true) {
            return false;
        }
        let updated = parse_nanos(v.get("remote_updated_at"));
        if let Some(a) = q.remote_updated_after {
            if updated.is_none_or(|u| u <= a) {
                return false;
            }
        }
        if let Some(b) = q.remote_updated_before {
            if updated.is_none_or(|u| u >= b) {
                return false;
            }
        }
        true
    }
}

/// Runs the consumer that keeps a [`View`] current.
pub struct Materializer {
    view: View,
    settings: KafkaSettings,
    codec: AvroCodec,
}

impl Materializer {
    pub fn new(view: View, settings: KafkaSettings, codec: AvroCodec) -> Self {
        Materializer {
            view,
            settings,
            codec,
        }
    }

    /// Consumes every partition of every normalized topic (no consumer group: each replica
    /// builds the whole view) until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ViewError> {
        let consumer: StreamConsumer =
            ingot_kafka::create_consumer(&self.settings, "ingot-materializer")?;
        let mut tpl = TopicPartitionList::new();
        let mut not_eof: HashSet<(String, i32)> = HashSet::new();
        for model in Model::ALL {
            let topic = model.normalized_topic();
            for p in self.settings.partitions(&topic)? {
                let offset = match self.view.next_offset(&topic, p) {
                    Some(o) => Offset::Offset(o),
                    None => Offset::Beginning,
                };
                tpl.add_partition_offset(&topic, p, offset)
                    .map_err(KafkaError::from)?;
                not_eof.insert((topic.clone(), p));
            }
        }
        consumer.assign(&tpl).map_err(KafkaError::from)?;
        let producer = ingot_kafka::Producer::new(&self.settings)?;
        // an empty partition reports EOF at once; check high watermarks too
        for (t, p) in not_eof.clone() {
            if let Ok((_, high)) = consumer.fetch_watermarks(&t, p, Duration::from_secs(5)) {
                if self.view.next_offset(&t, p).unwrap_or(0) >= high {
                    not_eof.remove(&(t, p));
                }
            }
        }
        self.mark_caught_up(&not_eof);
        loop {
            let first = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                m = consumer.recv() => m,
            };
            let mut batch = Vec::new();
            match first {
                Ok(m) => batch.push(Message::from_borrowed(&m)),
                Err(ingot_kafka::RdKafkaError::PartitionEOF(p)) => {
                    not_eof.retain(|(_, q)| *q != p);
                    self.mark_caught_up(&not_eof);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(component = "materializer", error = %e, "consume error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            let mut eof_in_batch = Vec::new();
            while batch.len() < 1000 {
                match tokio::time::timeout(Duration::from_millis(2), consumer.recv()).await {
                    Ok(Ok(m)) => batch.push(Message::from_borrowed(&m)),
                    // an EOF met while filling the batch counts once the batch is applied
                    Ok(Err(ingot_kafka::RdKafkaError::PartitionEOF(p))) => {
                        eof_in_batch.push(p);
                        break;
                    }
                    _ => break,
                }
            }
            let mut decoded = Vec::with_capacity(batch.len());
            let mut dead = Vec::new();
            for m in batch {
                let entry = if let Some(reason) = unusable(&m) {
                    dead.push((m.clone(), reason));
                    Entry::DeadLettered
                } else {
                    match &m.value {
                        None => Entry::Tombstone,
                        Some(bytes) => match self.codec.decode_record(bytes).await {
                            Ok(v) => Entry::Record(v),
                            // the registry is unreachable: the value may be fine, retry later
                            Err(e) if e.is_transient() => {
                                return Err(ViewError::BadRecord {
                                    topic: m.topic.clone(),
                                    partition: m.partition,
                                    offset: m.offset,
                                    reason: e.to_string(),
                                })
                            }
                            Err(e) => {
                                dead.push((
                                    m.clone(),
                                    format!("undecodable normalized value: {e}"),
                                ));
                                Entry::DeadLettered
                            }
                        },
                    }
                };
                decoded.push((m, entry));
            }
            // dead letters are acknowledged before the offsets that pass them are written;
            // a re-delivery of an offset already passed is not dead-lettered twice
            dead.retain(|(m, _)| {
                self.view
                    .next_offset(&m.topic, m.partition)
                    .is_none_or(|n| m.offset >= n)
            });
            self.dead_letter(&producer, &dead).await?;
            let view = self.view.clone();
            let n = tokio::task::spawn_blocking(move || view.apply(&decoded))
                .await
                .expect("view writer panicked")?;
            metrics::counter!("ingot_materializer_applied_total").increment(n as u64);
            tracing::debug!(component = "materializer", applied = n, "batch applied");
            if !eof_in_batch.is_empty() {
                not_eof.retain(|(_, q)| !eof_in_batch.contains(q));
                self.mark_caught_up(&not_eof);
            }
        }
    }

    /// Produces each poison pill (its original key and bytes) to [`DLQ_TOPIC`] with its
    /// reason and source, and waits for the acknowledgements.
    async fn dead_letter(
        &self,
        producer: &ingot_kafka::Producer,
        dead: &[(Message, String)],
    ) -> Result<(), ViewError> {
        for (m, reason) in dead {
            let source = format!("{}/{}@{}", m.topic, m.partition, m.offset);
            tracing::warn!(component = "materializer", %source, %reason, "normalized value dead-lettered");
            producer
                .send(
                    DLQ_TOPIC,
                    m.key.as_deref().unwrap_or_default(),
                    Some(m.value.as_deref().unwrap_or_default()),
                    &[
                        (HEADER_DLQ_REASON, reason.as_bytes()),
                        (HEADER_SOURCE, source.as_bytes()),
                    ],
                )
                .await?;
            metrics::counter!("ingot_materializer_dead_lettered_total").increment(1);
        }
        Ok(())
    }

    fn mark_caught_up(&self, not_eof: &HashSet<(String, i32)>) {
        // PartitionEOF carries only the partition number; a partition counts as caught
        // up once its number reported EOF (all normalized topics share partition numbers).
        if not_eof.is_empty() && !self.view.is_caught_up() {
            self.view
                .caught_up
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::info!(component = "materializer", "view caught up");
        }
    }
}
