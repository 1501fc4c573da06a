//! The materialized view (RocksDB) and its reads.
//!
//! Layout (format [`FORMAT`]). `lp(s)` is a string with its length (u32 BE) in front, so
//! no tenant, connection or model can be read as the start of another; `ts` is
//! `modified_at` in nanoseconds as offset binary (8 bytes BE, negative times first):
//!
//! | column family | key | value |
//! |---|---|---|
//! | `records` | lp(tenant) lp(model) id | head (deleted, `remote_updated_at`, connection) ‖ the record's JSON as served, without `remote_data`, cut where `remote_data` sorts |
//! | `remote_data` | the same | the 3PA object as served (JSON), when the record has one |
//! | `by_tenant` | lp(tenant) lp(model) ts id | deleted, `remote_updated_at`, `remote_id` |
//! | `by_connection` | lp(tenant) lp(connection) lp(model) ts id | the same |
//! | `locator` | lp(model) id | lp(tenant) lp(connection) `modified_at` nanos: the apply path's only read |
//! | `offsets` | topic \0 partition (4 bytes BE) | next offset (8 bytes BE) |
//!
//! Isolation by construction: every read of the query path builds its keys from the
//! caller's tenant (and, for a connection-limited key or a `connection_id` filter, from
//! each allowed connection), and iterators are bounded to their prefix inside RocksDB:
//! another tenant's rows are outside every key range a query can touch. The `locator` is
//! read only by [`View::apply`] (and the [`View::get`] helper of tests and tools).

use ingot_kafka::{
    wire_schema_id, AvroCodec, Consumer, FlatDecoder, FlatRecord, KafkaError, KafkaSettings,
    Message, Offset, Scalar, StreamConsumer, TopicPartitionList,
};
use ingot_model::auth::Principal;
use ingot_model::dlq;
use ingot_model::{Model, RecordKey};
use ingot_store::{
    decode_offset, encode_offset, offset_key, Batch, Opened, PrefixIter, ReadFrom, Store,
    StoreOptions,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

const RECORDS: &str = "records";
const REMOTE_DATA: &str = "remote_data";
const BY_TENANT: &str = "by_tenant";
const BY_CONNECTION: &str = "by_connection";
const LOCATOR: &str = "locator";
const OFFSETS: &str = "offsets";
const COLUMN_FAMILIES: &[&str] = &[
    RECORDS,
    REMOTE_DATA,
    BY_TENANT,
    BY_CONNECTION,
    LOCATOR,
    OFFSETS,
];

/// Messages per batch at most (one RocksDB write batch, one decode task).
const MAX_BATCH: usize = 1000;

/// A backlog's unlogged batches are flushed at least this often: a crash during a long
/// backlog re-consumes at most this much of it, and what it applied (tombstones included)
/// is on disk long before the topics' compaction could drop it (`delete.retention.ms`).
const UNLOGGED_FOR_AT_MOST: Duration = Duration::from_secs(10);

/// The view's format marker. A view written in another format (or before markers
/// existed) is emptied at open and rebuilt from the normalized topics.
pub const FORMAT: &[u8] = b"ingot-view/2 tenant-keyed, split remote_data";

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

/// What the materializer makes of one normalized message.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A record's decoded value (flat JSON).
    Record(Value),
    /// A record decoded straight to its stored form (what the materializer gives).
    Decoded(Decoded),
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

/// The next offsets the view reflects, and the same as the API's `freshness` JSON.
struct Offsets {
    next: BTreeMap<(String, i32), i64>,
    json: Arc<[u8]>,
}

impl Offsets {
    fn new(next: BTreeMap<(String, i32), i64>) -> Self {
        let mut obj = serde_json::Map::new();
        for ((t, p), o) in &next {
            obj.insert(format!("{t}/{p}"), Value::from(*o));
        }
        let json = serde_json::to_vec(&Value::Object(obj)).unwrap_or_else(|_| b"{}".to_vec());
        Offsets {
            next,
            json: json.into(),
        }
    }
}

/// The materialized view (layout in the module docs) and the next offset to apply per
/// normalized partition.
#[derive(Clone)]
pub struct View {
    store: Store,
    /// Next offset per (topic, partition), mirrored in memory for freshness reports.
    offsets: Arc<RwLock<Offsets>>,
    caught_up: Arc<AtomicBool>,
    /// Batches were written without the write-ahead log since the last flush.
    unlogged: Arc<AtomicBool>,
    /// Index rows one list page reads at most ([`MAX_SCAN`] unless set).
    scan_limit: usize,
}

/// Index rows one list page reads at most. Filters the index does not order by
/// (`remote_id`, `remote_updated_*`, deleted records left out) skip rows without counting
/// them, so one page could otherwise read a tenant's whole index; past this the page ends
/// early, with what it found (maybe nothing) and a cursor at the last row read.
pub const MAX_SCAN: usize = 10_000;

/// A range query (DESIGN §6). Times are exclusive bounds.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// The connections the caller may read (`None`: all of the tenant's).
    pub connection_ids: Option<HashSet<String>>,
    pub tenant_id: String,
    pub connection_id: Option<String>,
    pub remote_id: Option<String>,
    pub modified_after: Option<i64>,
    pub modified_before: Option<i64>,
    pub remote_updated_after: Option<i64>,
    pub remote_updated_before: Option<i64>,
    pub include_deleted: bool,
    pub include_remote_data: bool,
    pub limit: usize,
    /// Position after which to continue: (modified_at nanos, id).
    pub after: Option<(i64, String)>,
}

/// One page of a range query (its records were written to the caller's buffer).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub count: usize,
    /// The (modified_at, id) of the last index row read when more may follow (the last
    /// record, or a row past it the filters left out).
    pub next: Option<(i64, String)>,
}

fn lp(k: &mut Vec<u8>, s: &[u8]) {
    k.extend_from_slice(&(s.len() as u32).to_be_bytes());
    k.extend_from_slice(s);
}

/// Reads an `lp` string at the start of `b`: (the string, the rest).
fn read_lp(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let s = b.get(4..4 + n)?;
    Some((s, &b[4 + n..]))
}

fn model_name(model: Model) -> String {
    model.to_string()
}

fn record_key(tenant: &str, model: Model, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    lp(&mut k, tenant.as_bytes());
    lp(&mut k, model_name(model).as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn tenant_prefix(tenant: &str, model: Model) -> Vec<u8> {
    let mut k = Vec::with_capacity(32);
    lp(&mut k, tenant.as_bytes());
    lp(&mut k, model_name(model).as_bytes());
    k
}

fn connection_prefix(tenant: &str, connection: &str, model: Model) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    lp(&mut k, tenant.as_bytes());
    lp(&mut k, connection.as_bytes());
    lp(&mut k, model_name(model).as_bytes());
    k
}

/// `modified_at` nanos as offset binary, so negative times sort before positive ones.
fn ts(nanos: i64) -> [u8; 8] {
    ((nanos as u64) ^ (1 << 63)).to_be_bytes()
}

fn un_ts(b: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(b.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64)
}

fn position(nanos: i64, id: &str) -> Vec<u8> {
    let mut k = ts(nanos).to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn with(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + suffix.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(suffix);
    k
}

fn locator_key(model: Model, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    lp(&mut k, model_name(model).as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Where a record is, for the apply path: its tenant, connection and index position.
#[derive(Debug, Clone, PartialEq)]
struct Locator {
    tenant: String,
    connection: String,
    modified: i64,
}

impl Locator {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.tenant.len() + self.connection.len() + 16);
        lp(&mut v, self.tenant.as_bytes());
        lp(&mut v, self.connection.as_bytes());
        v.extend_from_slice(&self.modified.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Option<Locator> {
        let (tenant, rest) = read_lp(b)?;
        let (connection, rest) = read_lp(rest)?;
        Some(Locator {
            tenant: String::from_utf8(tenant.to_vec()).ok()?,
            connection: String::from_utf8(connection.to_vec()).ok()?,
            modified: i64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
        })
    }
}

const DELETED: u8 = 1;
const HAS_UPDATED: u8 = 2;

/// What the filters of a range query need: the index entries' value (and the start of
/// a stored record): flags, `remote_updated_at` nanos.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Facts {
    deleted: bool,
    updated: Option<i64>,
}

impl Facts {
    fn encode(&self, out: &mut Vec<u8>) {
        let flags = if self.deleted { DELETED } else { 0 }
            | if self.updated.is_some() {
                HAS_UPDATED
            } else {
                0
            };
        out.push(flags);
        out.extend_from_slice(&self.updated.unwrap_or(0).to_be_bytes());
    }
    /// The facts and the bytes after them.
    fn decode(b: &[u8]) -> Option<(Facts, &[u8])> {
        let flags = *b.first()?;
        let updated = i64::from_be_bytes(b.get(1..9)?.try_into().ok()?);
        Some((
            Facts {
                deleted: flags & DELETED != 0,
                updated: (flags & HAS_UPDATED != 0).then_some(updated),
            },
            &b[9..],
        ))
    }
    fn matches(&self, q: &ListQuery) -> bool {
        if !q.include_deleted && self.deleted {
            return false;
        }
        if let Some(a) = q.remote_updated_after {
            if self.updated.is_none_or(|u| u <= a) {
                return false;
            }
        }
        if let Some(b) = q.remote_updated_before {
            if self.updated.is_none_or(|u| u >= b) {
                return false;
            }
        }
        true
    }
}

/// A stored record: facts ‖ lp(connection) ‖ split (u32 BE) ‖ JSON. The JSON is the record
/// as the API serves it without `remote_data` (keys in serde_json's order), in two parts:
/// `{` + the fields sorting before `remote_data`, then the fields after it + `}`; `split`
/// is the first part's length, so `remote_data` is spliced in at its place.
struct Stored<'a> {
    facts: Facts,
    connection: &'a [u8],
    before: &'a [u8],
    after: &'a [u8],
}

impl<'a> Stored<'a> {
    fn decode(b: &'a [u8]) -> Option<Stored<'a>> {
        let (facts, rest) = Facts::decode(b)?;
        let (connection, rest) = read_lp(rest)?;
        let split = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let json = &rest[4..];
        if split == 0 || split >= json.len() {
            return None;
        }
        Some(Stored {
            facts,
            connection,
            before: &json[..split],
            after: &json[split..],
        })
    }

    /// Writes the record as served; `remote_data`: `Some` to include it (`null` when the
    /// record has none).
    fn write(&self, out: &mut Vec<u8>, remote_data: Option<Option<&[u8]>>) {
        let (has_before, has_after) = (self.before.len() > 1, self.after.len() > 1);
        out.extend_from_slice(self.before);
        match remote_data {
            None => {
                if has_before && has_after {
                    out.push(b',');
                }
            }
            Some(rd) => {
                if has_before {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"remote_data\":");
                out.extend_from_slice(rd.unwrap_or(b"null"));
                if has_after {
                    out.push(b',');
                }
            }
        }
        out.extend_from_slice(self.after);
    }
}

/// The member the view keeps apart (its own column family), and the top-level members
/// apply reads, in the order [`FlatRecord::fields`] gives them.
const CUT: &str = "remote_data";
const FIELDS: &[&str] = &[
    "tenant_id",
    "connection_id",
    "remote_id",
    "modified_at",
    "remote_updated_at",
    "remote_deleted",
];
const TENANT: usize = 0;
const CONNECTION: usize = 1;
const REMOTE_ID: usize = 2;
const MODIFIED: usize = 3;
const UPDATED: usize = 4;
const REMOTE_DELETED: usize = 5;

/// A record in the view's stored form and what [`View::apply`] reads of it: what the
/// materializer decodes a normalized value to, before the batch reaches the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// `tenant_id` (empty when absent or not a string).
    tenant: String,
    /// `connection_id` and `remote_id` when they are strings (else the record key's).
    connection: Option<String>,
    remote_id: Option<String>,
    /// `modified_at` in nanoseconds (0 when absent or unreadable).
    modified: i64,
    facts: Facts,
    /// The record's JSON as served without `remote_data`, cut where it sorts
    /// ([`FlatRecord::json`], [`FlatRecord::split`]).
    json: Vec<u8>,
    split: usize,
    /// `remote_data` as served ([`remote_data_json`]), `None` when the record has none.
    remote_data: Option<Vec<u8>>,
}

impl Decoded {
    /// From a record decoded by [`ingot_kafka::FlatDecoder`] (or made by
    /// [`FlatRecord::from_json`]) with [`CUT`] and [`FIELDS`].
    ///
    /// Errors: only what `serde_json` refuses to write (nothing a decoded string holds).
    fn from_flat(r: FlatRecord<'_>) -> Result<Decoded, serde_json::Error> {
        let field = |i: usize| r.fields.get(i).and_then(Option::as_ref);
        let text = |i: usize| field(i).and_then(Scalar::as_str);
        let tenant = text(TENANT).unwrap_or_default().to_string();
        let connection = text(CONNECTION).map(str::to_string);
        let remote_id = text(REMOTE_ID).map(str::to_string);
        let modified = text(MODIFIED).and_then(nanos).unwrap_or(0);
        let facts = Facts {
            deleted: field(REMOTE_DELETED).and_then(Scalar::as_bool) == Some(true),
            updated: text(UPDATED).and_then(nanos),
        };
        let remote_data = r.cut.as_deref().map(remote_data_json).transpose()?;
        Ok(Decoded {
            tenant,
            connection,
            remote_id,
            modified,
            facts,
            json: r.json,
            split: r.split,
            remote_data,
        })
    }

    /// From a record's flat JSON form (a non-object counts as empty).
    ///
    /// Errors: as [`Decoded::from_flat`].
    pub fn from_json(v: &Value) -> Result<Decoded, serde_json::Error> {
        Self::from_flat(FlatRecord::from_json(v, CUT, FIELDS)?)
    }

    /// The `records` value ([`Stored`]) of this record under `connection`.
    fn encode(&self, connection: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.json.len() + connection.len() + 20);
        self.facts.encode(&mut out);
        lp(&mut out, connection.as_bytes());
        out.extend_from_slice(&(self.split as u32).to_be_bytes());
        out.extend_from_slice(&self.json);
        out
    }
}

/// `remote_data` as served: the stored text itself when it is JSON (checked, not parsed
/// into a tree: the 3PA's exact text, ids and decimals digit for digit, without the
/// whitespace around it), else the text as a JSON string.
///
/// Errors: only what `serde_json` refuses to write (nothing a string holds).
fn remote_data_json(s: &str) -> Result<Vec<u8>, serde_json::Error> {
    Ok(
        match serde_json::from_str::<&serde_json::value::RawValue>(s) {
            Ok(raw) => raw.get().as_bytes().to_vec(),
            Err(_) => serde_json::to_vec(s)?,
        },
    )
}

/// An RFC 3339 time in nanoseconds (`None`: unreadable or out of range).
fn nanos(s: &str) -> Option<i64> {
    ingot_model::parse_time(s, true)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
}

impl View {
    /// Opens the view at `dir`. A view in another format (an older ingot's) is emptied
    /// and rebuilt from the normalized topics: its offsets go with it, so the
    /// materializer reads every normalized partition from the beginning.
    pub fn open(dir: &Path) -> Result<Self, ViewError> {
        // flushed together: a backlog is written without the log (`apply_unlogged`)
        let options = StoreOptions { atomic_flush: true };
        let (store, opened) = Store::open_versioned_with(dir, COLUMN_FAMILIES, FORMAT, options)?;
        if let Opened::Emptied { found } = &opened {
            tracing::warn!(
                component = "materializer",
                dir = %dir.display(),
                found = %found.as_deref().map(String::from_utf8_lossy).unwrap_or("none (an older ingot)".into()),
                expected = %String::from_utf8_lossy(FORMAT),
                "the view was written in another format: emptied it, it is rebuilt from the normalized topics"
            );
        }
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
            offsets: Arc::new(RwLock::new(Offsets::new(offsets))),
            caught_up: Arc::new(AtomicBool::new(false)),
            unlogged: Arc::new(AtomicBool::new(false)),
            scan_limit: MAX_SCAN,
        })
    }

    /// Sets the index rows one list page reads at most (at least 1; [`MAX_SCAN`] by
    /// default).
    pub fn with_scan_limit(mut self, rows: usize) -> Self {
        self.scan_limit = rows.max(1);
        self
    }

    fn offsets(&self) -> std::sync::RwLockReadGuard<'_, Offsets> {
        self.offsets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The next offset per normalized partition the view reflects.
    pub fn freshness(&self) -> BTreeMap<(String, i32), i64> {
        self.offsets().next.clone()
    }

    /// [`View::freshness`] as the API's JSON object (`{"<topic>/<partition>": offset}`),
    /// built once per applied batch.
    pub fn freshness_json(&self) -> Arc<[u8]> {
        self.offsets().json.clone()
    }

    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets()
            .next
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// The view's memory (RocksDB's accounting; see [`ingot_store::MemoryUsage`]), after
    /// flushing its memtables when `flush` (benchmarks).
    pub fn memory(&self, flush: bool) -> Result<ingot_store::MemoryUsage, ViewError> {
        if flush {
            self.store.flush(COLUMN_FAMILIES)?;
        }
        Ok(self.store.memory(COLUMN_FAMILIES)?)
    }

    /// How far the view's compactions are behind ([`ingot_store::Store::backlog`]).
    pub fn backlog(&self) -> Result<ingot_store::Backlog, ViewError> {
        Ok(self.store.backlog(COLUMN_FAMILIES)?)
    }

    /// True once the view reached the end of every normalized partition at least once.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// One record as the API serves it with `remote_data`, whoever owns it (including
    /// deleted ones): for tests and tools. The query path is [`View::read_one`].
    pub fn get(&self, model: Model, id: &str) -> Result<Option<Value>, ViewError> {
        let Some(loc) = self
            .store
            .get(LOCATOR, &locator_key(model, id))?
            .and_then(|b| Locator::decode(&b))
        else {
            return Ok(None);
        };
        let key = record_key(&loc.tenant, model, id);
        let rd = self.store.get(REMOTE_DATA, &key)?;
        let mut out = Vec::new();
        let found = self.store.get_with(RECORDS, &key, |b| {
            Stored::decode(b).map(|r| r.write(&mut out, Some(rd.as_deref())))
        })?;
        Ok(found
            .flatten()
            .and_then(|()| serde_json::from_slice(&out).ok()))
    }

    /// Writes record `id` of `model` as the API serves it to `out` if `who` may read it and
    /// it is not deleted; returns whether it did. Reads only `who`'s tenant's rows, from
    /// `from`.
    ///
    /// Errors: [`ViewError::Store`] with [`ingot_store::StoreError::NotInMemory`] when
    /// `from` is [`ReadFrom::Memory`] and a row is not in memory (`out` is then unchanged).
    pub fn read_one(
        &self,
        who: &Principal,
        model: Model,
        id: &str,
        include_remote_data: bool,
        from: ReadFrom,
        out: &mut Vec<u8>,
    ) -> Result<bool, ViewError> {
        let key = record_key(&who.tenant_id, model, id);
        let rd = if include_remote_data {
            Some(self.store.get_from(REMOTE_DATA, &key, from)?)
        } else {
            None
        };
        let written = self.store.get_with_from(RECORDS, &key, from, |b| {
            let Some(r) = Stored::decode(b) else {
                return false;
            };
            let allowed = who.connections.as_ref().is_none_or(|c| {
                std::str::from_utf8(r.connection).is_ok_and(|conn| c.contains(conn))
            });
            if !allowed || r.facts.deleted {
                return false;
            }
            r.write(out, rd.as_ref().map(|rd| rd.as_deref()));
            true
        })?;
        Ok(written == Some(true))
    }

    /// Applies decoded normalized messages and their offsets in one atomic batch, durable
    /// once this returns (RocksDB's write-ahead log; batches applied unlogged before are
    /// flushed first). Messages below a partition's stored next offset are skipped;
    /// dead-lettered ones only move the offset. Reads only the compact locators of the
    /// batch's records (one multi-get). Returns the records applied.
    pub fn apply(&self, msgs: &[(Message, Entry)]) -> Result<usize, ViewError> {
        self.write(msgs, false)
    }

    /// [`View::apply`] without the write-ahead log, for a backlog (a rebuild, a restart's
    /// catch-up): the batch is durable only once flushed ([`View::flush_unlogged`], the
    /// next [`View::apply`], a full memtable, the store's close). A crash before that
    /// loses it whole, with the unlogged batches after it and their offsets, so they are
    /// consumed again: every column family is flushed together, what survives is the
    /// view after some batch.
    pub fn apply_unlogged(&self, msgs: &[(Message, Entry)]) -> Result<usize, ViewError> {
        self.write(msgs, true)
    }

    /// Makes the batches applied unlogged durable (a flush of every column family, waited
    /// for); nothing to do if there are none.
    pub fn flush_unlogged(&self) -> Result<(), ViewError> {
        if self.unlogged.load(Ordering::Acquire) {
            self.store.flush(COLUMN_FAMILIES)?;
            self.unlogged.store(false, Ordering::Release);
        }
        Ok(())
    }

    fn write(&self, msgs: &[(Message, Entry)], unlogged: bool) -> Result<usize, ViewError> {
        struct Change<'m> {
            m: &'m Message,
            model: Model,
            key: RecordKey,
            id: String,
            entry: &'m Entry,
        }
        let mut batch = Batch::new();
        let mut next = self.freshness();
        let mut changes = Vec::new();
        for (m, entry) in msgs {
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
            if let Entry::DeadLettered = entry {
                continue;
            }
            let key: RecordKey = m
                .key_str()
                .and_then(|k| k.parse().ok())
                .ok_or_else(|| bad(m, "key is not a record key"))?;
            let id = key.record_id();
            changes.push(Change {
                m,
                model,
                key,
                id,
                entry,
            });
        }
        let locator_keys: Vec<Vec<u8>> = changes
            .iter()
            .map(|c| locator_key(c.model, &c.id))
            .collect();
        let stored = self.store.multi_get(LOCATOR, &locator_keys)?;
        // locators written earlier in this batch
        let mut latest: HashMap<&[u8], Locator> = HashMap::new();
        for ((c, lk), stored) in changes.iter().zip(&locator_keys).zip(stored) {
            let previous = match latest.get(lk.as_slice()) {
                Some(l) => Some(l.clone()),
                None => stored.as_deref().and_then(Locator::decode),
            };
            let json_err = |e: serde_json::Error| bad(c.m, &e.to_string());
            let made;
            let (d, tenant) = match c.entry {
                Entry::Decoded(d) => (d, d.tenant.clone()),
                Entry::Record(v) => {
                    made = Decoded::from_json(v).map_err(json_err)?;
                    (&made, made.tenant.clone())
                }
                // skipped above
                Entry::DeadLettered => continue,
                Entry::Tombstone => {
                    // tombstone: a deleted record is a stub of its identity. Its last
                    // content is not kept: compaction removes it from the topic, so a view
                    // rebuilt from the topic could not show it (same answers after a rebuild).
                    let header = |name: &str| {
                        c.m.header(name)
                            .map(|v| Value::String(v.to_string()))
                            .unwrap_or(Value::Null)
                    };
                    let stub = serde_json::json!({
                        "id": c.id,
                        "remote_id": c.key.remote_id,
                        "connection_id": c.key.connection_id,
                        "tenant_id": header("ingot-tenant-id"),
                        "provider": header("ingot-provider"),
                        "remote_deleted": true,
                        "remote_deleted_at": header("ingot-remote-updated-at"),
                        "modified_at": header("ingot-modified-at"),
                    });
                    made = Decoded::from_json(&stub).map_err(json_err)?;
                    // a tombstone without its tenant header stays where the record was
                    let tenant =
                        c.m.header("ingot-tenant-id")
                            .map(str::to_string)
                            .or_else(|| previous.as_ref().map(|p| p.tenant.clone()))
                            .unwrap_or_default();
                    (&made, tenant)
                }
            };
            let connection = d
                .connection
                .clone()
                .unwrap_or_else(|| c.key.connection_id.clone());
            let remote_id = d.remote_id.as_deref().unwrap_or(&c.key.remote_id);
            let rk = record_key(&tenant, c.model, &c.id);
            if let Some(p) = &previous {
                let at = position(p.modified, &c.id);
                batch.delete(BY_TENANT, with(&tenant_prefix(&p.tenant, c.model), &at));
                batch.delete(
                    BY_CONNECTION,
                    with(&connection_prefix(&p.tenant, &p.connection, c.model), &at),
                );
                if p.tenant != tenant {
                    let old = record_key(&p.tenant, c.model, &c.id);
                    batch.delete(RECORDS, old.clone());
                    batch.delete(REMOTE_DATA, old);
                }
            }
            let mut entry = Vec::with_capacity(9 + remote_id.len());
            d.facts.encode(&mut entry);
            entry.extend_from_slice(remote_id.as_bytes());
            let at = position(d.modified, &c.id);
            batch.put(
                BY_TENANT,
                with(&tenant_prefix(&tenant, c.model), &at),
                entry.clone(),
            );
            batch.put(
                BY_CONNECTION,
                with(&connection_prefix(&tenant, &connection, c.model), &at),
                entry,
            );
            match &d.remote_data {
                Some(rd) => batch.put(REMOTE_DATA, rk.clone(), rd.clone()),
                None => batch.delete(REMOTE_DATA, rk.clone()),
            }
            batch.put(RECORDS, rk, d.encode(&connection));
            let loc = Locator {
                tenant,
                connection,
                modified: d.modified,
            };
            batch.put(LOCATOR, lk.clone(), loc.encode());
            latest.insert(lk.as_slice(), loc);
        }
        if !batch.is_empty() {
            if unlogged {
                self.unlogged.store(true, Ordering::Release);
                self.store.write_unlogged(batch)?;
            } else {
                // what was written without the log is on disk before anything is logged
                self.flush_unlogged()?;
                self.store.write(batch)?;
            }
            *self.offsets.write().unwrap_or_else(|e| e.into_inner()) = Offsets::new(next);
        }
        Ok(changes.len())
    }

    /// A page of records of `model` ordered by (`modified_at`, `id`), written to `out` as
    /// the API serves them, separated by commas. Scans only the caller's tenant's index
    /// (or, for a connection-limited caller or a `connection_id` filter, the index of each
    /// allowed connection, merged), and reads index and records from one snapshot. Reads
    /// at most the scan limit of index rows ([`MAX_SCAN`]): a page can end with fewer
    /// than `limit` records, even none, and a cursor.
    pub fn list(&self, model: Model, q: &ListQuery, out: &mut Vec<u8>) -> Result<Page, ViewError> {
        let allowed = |c: &str| q.connection_ids.as_ref().is_none_or(|set| set.contains(c));
        let snap = self.store.snapshot();
        let rd_of = |keys: &[Vec<u8>]| -> Result<Option<Vec<Option<Vec<u8>>>>, ViewError> {
            if q.include_remote_data {
                Ok(Some(snap.multi_get(REMOTE_DATA, keys)?))
            } else {
                Ok(None)
            }
        };
        // point lookup when the record key is fully given
        if let (Some(c), Some(r)) = (&q.connection_id, &q.remote_id) {
            if !allowed(c) {
                return Ok(Page {
                    count: 0,
                    next: None,
                });
            }
            let id = RecordKey::new(c.clone(), model, r.clone()).record_id();
            let keys = vec![record_key(&q.tenant_id, model, &id)];
            let recs = snap.multi_get(RECORDS, &keys)?;
            let rds = rd_of(&keys)?;
            let mut count = 0;
            if let Some(r) = recs[0].as_deref().and_then(Stored::decode) {
                if r.connection == c.as_bytes() && r.facts.matches(q) {
                    r.write(out, rds.as_ref().map(|rds| rds[0].as_deref()));
                    count = 1;
                }
            }
            return Ok(Page { count, next: None });
        }
        let (cf, prefixes): (&str, Vec<Vec<u8>>) = match (&q.connection_id, &q.connection_ids) {
            (Some(c), _) if !allowed(c) => (BY_CONNECTION, Vec::new()),
            (Some(c), _) => (
                BY_CONNECTION,
                vec![connection_prefix(&q.tenant_id, c, model)],
            ),
            (None, Some(set)) => {
                let mut conns: Vec<&String> = set.iter().collect();
                conns.sort();
                let prefixes = conns
                    .into_iter()
                    .map(|c| connection_prefix(&q.tenant_id, c, model))
                    .collect();
                (BY_CONNECTION, prefixes)
            }
            (None, None) => (BY_TENANT, vec![tenant_prefix(&q.tenant_id, model)]),
        };
        let from = match &q.after {
            Some((n, id)) => {
                let mut k = position(*n, id);
                k.push(0); // strictly after
                k
            }
            None => match q.modified_after {
                Some(n) => ts(n.saturating_add(1)).to_vec(),
                None => Vec::new(),
            },
        };
        let mut iters: Vec<PrefixIter<'_>> = prefixes
            .iter()
            .map(|p| snap.prefix_iter(cf, p, &from))
            .collect::<Result<_, _>>()?;
        let mut hits = Vec::new();
        let mut last = None;
        let mut more = false;
        let mut scanned = 0;
        loop {
            // the smallest (modified_at, id) among the sources
            let mut best: Option<(usize, &[u8])> = None;
            for (i, it) in iters.iter().enumerate() {
                if let Some((k, _)) = it.current()? {
                    if best.is_none_or(|(_, b)| k < b) {
                        best = Some((i, k));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let Some((k, v)) = iters[i].current()? else {
                break;
            };
            let Some(nanos) = un_ts(k) else {
                iters[i].advance();
                continue;
            };
            if q.modified_before.is_some_and(|b| nanos >= b) {
                break;
            }
            if hits.len() == q.limit || scanned == self.scan_limit {
                more = true;
                break;
            }
            scanned += 1;
            let id = String::from_utf8_lossy(&k[8..]).to_string();
            let matches = Facts::decode(v).is_some_and(|(facts, remote_id)| {
                facts.matches(q)
                    && q.remote_id
                        .as_deref()
                        .is_none_or(|r| r.as_bytes() == remote_id)
            });
            if matches {
                hits.push(record_key(&q.tenant_id, model, &id));
            }
            last = Some((nanos, id));
            iters[i].advance();
        }
        drop(iters);
        let recs = snap.multi_get(RECORDS, &hits)?;
        let rds = rd_of(&hits)?;
        let mut count = 0;
        for (i, rec) in recs.iter().enumerate() {
            if let Some(r) = rec.as_deref().and_then(Stored::decode) {
                if count > 0 {
                    out.push(b',');
                }
                r.write(out, rds.as_ref().map(|rds| rds[i].as_deref()));
                count += 1;
            }
        }
        Ok(Page {
            count,
            next: if more { last } else { None },
        })
    }
}

fn bad(m: &Message, reason: &str) -> ViewError {
    ViewError::BadRecord {
        topic: m.topic.clone(),
        partition: m.partition,
        offset: m.offset,
        reason: reason.to_string(),
    }
}

/// A message to dead-letter, and why.
type DeadLetter = (Message, String);

/// The writer schemas of a batch's values: their decoders, and why the registry refused
/// the others (no such schema, or none this decoder reads).
struct Schemas {
    decoders: HashMap<u32, Arc<FlatDecoder>>,
    refused: HashMap<u32, String>,
}

impl Schemas {
    /// What the materializer makes of each message (`pills`: [`unusable`] of each), and
    /// the messages to dead-letter with their reasons.
    fn decode(
        &self,
        batch: Vec<Message>,
        pills: Vec<Option<String>>,
    ) -> (Vec<(Message, Entry)>, Vec<DeadLetter>) {
        let mut decoded = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for (m, pill) in batch.into_iter().zip(pills) {
            let entry = match (pill, &m.value) {
                (Some(reason), _) => Err(reason),
                (None, None) => Ok(Entry::Tombstone),
                (None, Some(bytes)) => self
                    .value(bytes)
                    .map(Entry::Decoded)
                    .map_err(|e| format!("undecodable normalized value: {e}")),
            };
            let entry = entry.unwrap_or_else(|reason| {
                dead.push((m.clone(), reason));
                Entry::DeadLettered
            });
            decoded.push((m, entry));
        }
        (decoded, dead)
    }

    /// A value in the schema-registry wire format, decoded to the view's stored form.
    ///
    /// Errors: why not, when it is not in the wire format, its schema was refused or the
    /// datum does not fit that schema.
    fn value(&self, bytes: &[u8]) -> Result<Decoded, String> {
        let (id, datum) = wire_schema_id(bytes).map_err(|e| e.to_string())?;
        let Some(decoder) = self.decoders.get(&id) else {
            return Err(self
                .refused
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("schema {id} unknown")));
        };
        let flat = decoder.decode(datum).map_err(|e| e.to_string())?;
        Decoded::from_flat(flat).map_err(|e| e.to_string())
    }
}

/// A batch being applied to the view on a blocking thread, and the partitions whose end
/// it reaches.
struct Writing {
    task: tokio::task::JoinHandle<Result<usize, ViewError>>,
    eof: Vec<i32>,
}

impl Writing {
    /// Waits for the batch to be applied; then its partitions' ends count.
    async fn land(
        self,
        m: &Materializer,
        not_eof: &mut HashSet<(String, i32)>,
    ) -> Result<(), ViewError> {
        let n = self.task.await.expect("view writer panicked")?;
        metrics::counter!("ingot_materializer_applied_total").increment(n as u64);
        tracing::debug!(component = "materializer", applied = n, "batch applied");
        if !self.eof.is_empty() {
            not_eof.retain(|(_, q)| !self.eof.contains(q));
            m.mark_caught_up(not_eof);
        }
        Ok(())
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
    ///
    /// A backlog (a full batch waiting: a rebuild, a restart's catch-up, a burst) is
    /// applied without the write-ahead log ([`View::apply_unlogged`]) until the consumer
    /// runs dry, then flushed (and every [`UNLOGGED_FOR_AT_MOST`] while it lasts); batches
    /// of live traffic are applied with it.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ViewError> {
        // the loop drains the prefetch queue (64 MiB by default: a few thousand records of
        // ≈ 10 KB) faster than librdkafka's default back-off of 1 s refills it once full,
        // and would wait for most of that second; a setting of the user's goes first
        let mut settings = self.settings.clone();
        settings
            .properties
            .entry("fetch.queue.backoff.ms".into())
            .or_insert_with(|| "10".into());
        let consumer: StreamConsumer =
            ingot_kafka::create_consumer(&settings, "ingot-materializer")?;
        let mut tpl = TopicPartitionList::new();
        let mut not_eof: HashSet<(String, i32)> = HashSet::new();
        for model in Model::ALL {
            let topic = model.normalized_topic();
            for p in self.settings.partitions(&topic)? {
                // a partition the view has nothing of is read from offset 0, given as a
                // number: a logical one (`Beginning`) costs librdkafka an offset lookup of
                // ≈ 0.5 s first. Normalized topics are compacted, never truncated, so their
                // logs start at 0; one that did not would be reset to its earliest offset
                // (`auto.offset.reset`).
                let offset = Offset::Offset(self.view.next_offset(&topic, p).unwrap_or(0));
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
        // the batch being written to RocksDB while the next one is consumed and decoded
        let mut writing: Option<Writing> = None;
        // batches are applied unlogged since the last full one, until the consumer runs dry
        let mut backlog = false;
        let mut backlog_since = std::time::Instant::now();
        // a decoder per writer schema (registry id) met
        let mut decoders: HashMap<u32, Arc<FlatDecoder>> = HashMap::new();
        loop {
            // with a batch being written or a backlog unflushed, only what is already
            // here: an idle poll lands the batch and flushes the backlog
            let wait = if writing.is_some() || backlog {
                Duration::from_millis(1)
            } else {
                Duration::from_secs(3600)
            };
            let first = tokio::select! {
                _ = shutdown.changed() => {
                    if let Some(w) = writing.take() {
                        w.land(&self, &mut not_eof).await?;
                    }
                    self.flush_backlog(&mut backlog).await?;
                    return Ok(());
                }
                m = tokio::time::timeout(wait, consumer.recv()) => m,
            };
            let first = match first {
                Ok(m) => m,
                Err(_) => {
                    if let Some(w) = writing.take() {
                        w.land(&self, &mut not_eof).await?;
                    }
                    self.flush_backlog(&mut backlog).await?;
                    continue;
                }
            };
            let mut batch = Vec::new();
            match first {
                Ok(m) => batch.push(Message::from_borrowed(&m)),
                Err(ingot_kafka::RdKafkaError::PartitionEOF(p)) => {
                    // the end counts once what came before it is applied
                    if let Some(w) = writing.take() {
                        w.land(&self, &mut not_eof).await?;
                    }
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
            // an EOF met while filling the batch counts once the batch is applied; the
            // other partitions' records go on filling it
            let filled = ingot_kafka::fill_batch(
                &consumer,
                &mut batch,
                MAX_BATCH,
                Duration::from_millis(2),
                |_| {},
            )
            .await;
            if let Some(e) = &filled.error {
                tracing::warn!(component = "materializer", error = %e, "consume error");
            }
            let eof_in_batch = filled.eof;
            let full = batch.len() == MAX_BATCH;
            if full && !backlog {
                backlog_since = std::time::Instant::now();
            }
            backlog |= full;
            // the writer schemas of the batch's values, from the registry once per id
            let pills: Vec<Option<String>> = batch.iter().map(unusable).collect();
            let mut refused = HashMap::new();
            for (m, pill) in batch.iter().zip(&pills) {
                let Some(Ok((id, _))) = m.value.as_deref().map(wire_schema_id) else {
                    continue;
                };
                if pill.is_some() || decoders.contains_key(&id) || refused.contains_key(&id) {
                    continue;
                }
                match self.codec.flat_decoder(id, CUT, FIELDS).await {
                    Ok(d) => {
                        decoders.insert(id, Arc::new(d));
                    }
                    // the registry is unreachable: the value may be fine, retry later
                    Err(e) if e.is_transient() => return Err(bad(m, &e.to_string())),
                    Err(e) => {
                        refused.insert(id, e.to_string());
                    }
                }
            }
            // decoded on a blocking thread while the previous batch is written
            let schemas = Schemas {
                decoders: decoders.clone(),
                refused,
            };
            let (decoded, mut dead) =
                tokio::task::spawn_blocking(move || schemas.decode(batch, pills))
                    .await
                    .expect("normalized value decoder panicked");
            // the previous batch is written while this one was decoded; it lands first
            if let Some(w) = writing.take() {
                w.land(&self, &mut not_eof).await?;
            }
            // a long backlog is made durable as it goes, not only once it ends
            if backlog && backlog_since.elapsed() >= UNLOGGED_FOR_AT_MOST {
                self.flush_backlog(&mut backlog).await?;
                backlog = full;
                backlog_since = std::time::Instant::now();
            }
            // dead letters are acknowledged before the offsets that pass them are written;
            // a re-delivery of an offset already passed is not dead-lettered twice
            dead.retain(|(m, _)| {
                self.view
                    .next_offset(&m.topic, m.partition)
                    .is_none_or(|n| m.offset >= n)
            });
            // a pill met in a backlog: what came before it is made durable first, and the
            // batch that passes it is written with the log, so a crash after the pill's
            // acknowledgement does not dead-letter it again (only a crash between the two
            // can: at-least-once, as in live traffic)
            if !dead.is_empty() {
                self.flush_backlog(&mut backlog).await?;
            }
            self.dead_letter(&producer, &dead).await?;
            let view = self.view.clone();
            let unlogged = backlog;
            writing = Some(Writing {
                task: tokio::task::spawn_blocking(move || {
                    if unlogged {
                        view.apply_unlogged(&decoded)
                    } else {
                        view.apply(&decoded)
                    }
                }),
                eof: eof_in_batch,
            });
        }
    }

    /// Makes the backlog's unlogged batches durable, if there is a backlog.
    async fn flush_backlog(&self, backlog: &mut bool) -> Result<(), ViewError> {
        if std::mem::take(backlog) {
            let view = self.view.clone();
            tokio::task::spawn_blocking(move || view.flush_unlogged())
                .await
                .expect("view flush panicked")?;
        }
        Ok(())
    }

    /// Produces each poison pill (its original key and bytes) to [`dlq::TOPIC`] with its
    /// reason and source, and waits for the acknowledgements.
    async fn dead_letter(
        &self,
        producer: &ingot_kafka::Producer,
        dead: &[DeadLetter],
    ) -> Result<(), ViewError> {
        for (m, reason) in dead {
            let source = dlq::source(&m.topic, m.partition, m.offset);
            tracing::warn!(component = "materializer", %source, %reason, "normalized value dead-lettered");
            let headers = dlq::headers(dlq::Stage::Materializer, reason, &source);
            let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, &v[..])).collect();
            producer
                .send(
                    dlq::TOPIC,
                    m.key.as_deref().unwrap_or_default(),
                    Some(m.value.as_deref().unwrap_or_default()),
                    &headers,
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
            self.view.caught_up.store(true, Ordering::Release);
            tracing::info!(component = "materializer", "view caught up");
        }
    }
}

#[cfg(test)]
#[allow(deprecated)] // to_avro_datum: the plain datum writer, as the processor's bytes
mod tests {
    use super::*;
    use ingot_model::*;

    /// The stored form as the view made it before values were decoded straight to it:
    /// the record's JSON object re-serialized, `remote_data` checked in the tree.
    mod before {
        use super::super::{lp, Facts};
        use serde_json::Value;

        pub fn encode_stored(facts: Facts, connection: &str, v: &Value) -> Vec<u8> {
            let empty = serde_json::Map::new();
            let map = v.as_object().unwrap_or(&empty);
            let mut json = Vec::with_capacity(4096);
            json.push(b'{');
            let mut split = None;
            let mut first = true;
            for (k, val) in map {
                if k == "remote_data" {
                    continue;
                }
                if split.is_none() && k.as_str() > "remote_data" {
                    split = Some(json.len());
                    first = true;
                }
                if !first {
                    json.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut json, k).unwrap();
                json.push(b':');
                serde_json::to_writer(&mut json, val).unwrap();
            }
            let split = split.unwrap_or(json.len());
            json.push(b'}');
            let mut out = Vec::new();
            facts.encode(&mut out);
            lp(&mut out, connection.as_bytes());
            out.extend_from_slice(&(split as u32).to_be_bytes());
            out.extend_from_slice(&json);
            out
        }

        pub fn remote_data_json(v: &Value) -> Option<Vec<u8>> {
            match v.get("remote_data") {
                Some(Value::String(s)) => Some(
                    match serde_json::from_str::<&serde_json::value::RawValue>(s) {
                        Ok(raw) => raw.get().as_bytes().to_vec(),
                        Err(_) => serde_json::to_vec(s).unwrap(),
                    },
                ),
                _ => None,
            }
        }

        pub fn parse_nanos(v: Option<&Value>) -> Option<i64> {
            v.and_then(Value::as_str)
                .and_then(|s| ingot_model::parse_time(s, true).ok())
                .and_then(|t| t.timestamp_nanos_opt())
        }

        /// (tenant, connection, remote_id, modified, stored record, remote_data)
        pub type Parts = (String, String, String, i64, Vec<u8>, Option<Vec<u8>>);

        pub fn parts(v: &Value, key_connection: &str, key_remote_id: &str) -> Parts {
            let s = |f: &str| v.get(f).and_then(Value::as_str);
            let connection = s("connection_id").unwrap_or(key_connection).to_string();
            let facts = Facts {
                deleted: v.get("remote_deleted").and_then(Value::as_bool) == Some(true),
                updated: parse_nanos(v.get("remote_updated_at")),
            };
            (
                s("tenant_id").unwrap_or_default().to_string(),
                connection.clone(),
                s("remote_id").unwrap_or(key_remote_id).to_string(),
                parse_nanos(v.get("modified_at")).unwrap_or(0),
                encode_stored(facts, &connection, v),
                remote_data_json(v),
            )
        }
    }

    fn parts(d: &Decoded, key_connection: &str, key_remote_id: &str) -> before::Parts {
        let connection = d.connection.as_deref().unwrap_or(key_connection);
        (
            d.tenant.clone(),
            connection.to_string(),
            d.remote_id.as_deref().unwrap_or(key_remote_id).to_string(),
            d.modified,
            d.encode(connection),
            d.remote_data.clone(),
        )
    }

    /// A Shopify-like 3PA object as JSON text (ids beyond 2^53, decimals, escapes).
    fn shopify_order(id: u64) -> String {
        format!(
            r##"{{"id":{id},"name":"#1001","email":"ada@example.com","total_price":"1280.95","note":"a \"quoted\" note\n","line_items":[{{"id":1,"price":"249.00","title":"Parka é 😀"}}],"updated_at":"2026-11-20T10:30:00-05:00"}}"##
        )
    }

    fn records() -> Vec<NormalizedRecord> {
        let meta = |remote_id: &str, remote_data: Option<String>| RecordMeta {
            id: RecordKey::new("shop-1", Model::Order, remote_id).record_id(),
            remote_id: remote_id.into(),
            connection_id: "shop-1".into(),
            tenant_id: "acme".into(),
            provider: "shopify".into(),
            remote_created_at: Some("2026-11-20T15:00:00Z".into()),
            remote_updated_at: "2026-11-20T15:30:00Z".into(),
            remote_deleted: false,
            modified_at: "2026-11-20T15:31:00.123456789Z".into(),
            mapping_version: "shopify/1".into(),
            raw_topic: "raw.shopify".into(),
            raw_partition: 1,
            raw_offset: 41,
            remote_data,
        };
        let order = Order {
            order_number: Some("#1001".into()),
            status: "open".into(),
            payment_status: "paid".into(),
            fulfillment_status: "unfulfilled".into(),
            currency: Some("EUR".into()),
            billing_address: Some(Address {
                first_name: Some("Ada".into()),
                city: Some("London".into()),
                ..Default::default()
            }),
            line_items: (0..5)
                .map(|n| LineItem {
                    remote_id: Some(n.to_string()),
                    name: Some("Parka \u{2028}".into()),
                    quantity: 1,
                    unit_price: Some("249.00".into()),
                    ..Default::default()
                })
                .collect(),
            tags: vec!["vip".into()],
            total_price: Some("1280.95".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        for (i, rd) in [
            Some(shopify_order(900_000_000_000_000_001)),
            // JSON with whitespace around it: served without it
            Some(format!(" \n{}\t", shopify_order(2))),
            Some("\"just a JSON string\"".into()),
            // not JSON: served as a JSON string
            Some("not json {".into()),
            Some(String::new()),
            None,
        ]
        .into_iter()
        .enumerate()
        {
            let mut rec = NormalizedRecord {
                meta: meta(&format!("9000000000000000{i:02}"), rd),
                data: RecordData::Order(order.clone()),
            };
            if i == 4 {
                rec.meta.remote_deleted = true;
                rec.meta.modified_at = "not a time".into();
            }
            out.push(rec);
        }
        out.push(NormalizedRecord {
            meta: meta("7", None),
            data: RecordData::Customer(Customer {
                email: Some("bob@example.com".into()),
                status: "active".into(),
                ..Default::default()
            }),
        });
        out.push(NormalizedRecord {
            meta: meta("8", Some("[]".into())),
            data: RecordData::Product(Product::default()),
        });
        out
    }

    /// The datum of `rec` as the processor writes it, and its flat JSON form as the
    /// materializer decoded it before (the registry's schema is the built-in one).
    fn datum(rec: &NormalizedRecord) -> (apache_avro::Schema, Vec<u8>, Value) {
        let schemas = ingot_kafka::Schemas::builtin().unwrap();
        let model = rec.data.model();
        let schema = schemas.models[&model].clone();
        let datum =
            apache_avro::to_avro_datum(&schema, schemas.model_value(model, rec.to_json()).unwrap())
                .unwrap();
        let value = apache_avro::from_avro_datum(&schema, &mut &datum[..], None).unwrap();
        (schema, datum, Value::try_from(value).unwrap())
    }

    /// Real records decode straight to the bytes the view stored before (record, index
    /// facts, `remote_data`), whatever their `remote_data`: JSON, JSON with whitespace
    /// around it, not JSON, empty, none.
    #[test]
    fn decoded_records_are_stored_as_before() {
        for rec in records() {
            let (schema, datum, value) = datum(&rec);
            let decoder = FlatDecoder::new(&schema, CUT, FIELDS).unwrap();
            let d = Decoded::from_flat(decoder.decode(&datum).unwrap()).unwrap();
            let want = before::parts(&value, "key-conn", "key-remote");
            assert_eq!(
                parts(&d, "key-conn", "key-remote"),
                want,
                "{}",
                rec.meta.remote_id
            );
            assert_eq!(d.facts.deleted, rec.meta.remote_deleted);
            // and so does the flat JSON form (tests and tombstone stubs take that path)
            let j = Decoded::from_json(&value).unwrap();
            assert_eq!(parts(&j, "key-conn", "key-remote"), want);
        }
    }

    /// A tombstone's stub, with and without its headers, is stored as before.
    #[test]
    fn tombstone_stubs_are_stored_as_before() {
        for headers in [true, false] {
            let h = |v: &str| {
                if headers {
                    Value::String(v.into())
                } else {
                    Value::Null
                }
            };
            let stub = serde_json::json!({
                "id": "8d8b2c0e-0000-5000-8000-000000000000",
                "remote_id": "820982911946154508",
                "connection_id": "shop-1",
                "tenant_id": h("acme"),
                "provider": h("shopify"),
                "remote_deleted": true,
                "remote_deleted_at": h("2026-11-20T15:30:00Z"),
                "modified_at": h("2026-11-20T15:31:00Z"),
            });
            let d = Decoded::from_json(&stub).unwrap();
            assert_eq!(parts(&d, "k", "r"), before::parts(&stub, "k", "r"));
            assert!(d.facts.deleted);
        }
    }

    /// Every row of every column family, in key order.
    fn rows(view: &View) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for cf in COLUMN_FAMILIES {
            for (k, v) in view.store.scan_prefix(cf, b"").unwrap() {
                out.push((*cf, k, v));
            }
        }
        out
    }

    /// The same messages applied as decoded values and as flat JSON give the same rows,
    /// new versions and tombstones among them; the rows survive a reopen of an unlogged
    /// (never caught up) view.
    #[test]
    fn decoded_and_json_entries_give_the_same_view() {
        let msgs = |decoded: bool| -> Vec<(Message, Entry)> {
            let mut out = Vec::new();
            let mut offset = 0;
            for round in 0..2 {
                for mut rec in records() {
                    rec.meta.modified_at = format!("2026-11-2{round}T15:31:00Z");
                    let (schema, datum, value) = datum(&rec);
                    let key = RecordKey::new(
                        rec.meta.connection_id.clone(),
                        rec.data.model(),
                        rec.meta.remote_id.clone(),
                    );
                    let entry = if decoded {
                        let decoder = FlatDecoder::new(&schema, CUT, FIELDS).unwrap();
                        Entry::Decoded(Decoded::from_flat(decoder.decode(&datum).unwrap()).unwrap())
                    } else {
                        Entry::Record(value)
                    };
                    let m = |offset: i64,
                             value: Option<Vec<u8>>,
                             headers: Vec<(String, Vec<u8>)>| Message {
                        topic: rec.data.model().normalized_topic(),
                        partition: 0,
                        offset,
                        key: Some(key.to_string().into_bytes()),
                        value,
                        headers,
                        timestamp_ms: None,
                    };
                    out.push((m(offset, Some(datum), Vec::new()), entry));
                    offset += 1;
                    if round == 1 && rec.meta.remote_id.ends_with('3') {
                        let headers = vec![("ingot-op".to_string(), b"delete".to_vec())];
                        out.push((m(offset, None, headers), Entry::Tombstone));
                        offset += 1;
                    }
                }
            }
            out
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (va, vb) = (View::open(a.path()).unwrap(), View::open(b.path()).unwrap());
        assert_eq!(
            va.apply(&msgs(true)).unwrap(),
            vb.apply(&msgs(false)).unwrap()
        );
        let rows_a = rows(&va);
        assert_eq!(rows_a, rows(&vb));
        assert!(rows_a.iter().any(|(cf, _, _)| *cf == REMOTE_DATA));
        drop(va);
        assert_eq!(rows(&View::open(a.path()).unwrap()), rows_a);
    }

    /// Batches applied unlogged are flushed before a logged one, or on request; the rows
    /// are the same either way.
    #[test]
    fn unlogged_batches_are_flushed_before_a_logged_one() {
        let dir = tempfile::tempdir().unwrap();
        let view = View::open(dir.path()).unwrap();
        let batch = |offset: i64| {
            let rec = &records()[0];
            let (_, datum, value) = datum(rec);
            let key = RecordKey::new("shop-1", Model::Order, rec.meta.remote_id.clone());
            vec![(
                Message {
                    topic: Model::Order.normalized_topic(),
                    partition: 0,
                    offset,
                    key: Some(key.to_string().into_bytes()),
                    value: Some(datum),
                    headers: Vec::new(),
                    timestamp_ms: None,
                },
                Entry::Record(value),
            )]
        };
        view.apply_unlogged(&batch(0)).unwrap();
        assert!(view.unlogged.load(Ordering::Acquire));
        view.apply(&batch(1)).unwrap();
        assert!(!view.unlogged.load(Ordering::Acquire));
        view.apply_unlogged(&batch(2)).unwrap();
        view.flush_unlogged().unwrap();
        assert!(!view.unlogged.load(Ordering::Acquire));
        view.flush_unlogged().unwrap();
        assert_eq!(
            view.next_offset(&Model::Order.normalized_topic(), 0),
            Some(3)
        );
        let logged = tempfile::tempdir().unwrap();
        let other = View::open(logged.path()).unwrap();
        for offset in 0..3 {
            other.apply(&batch(offset)).unwrap();
        }
        assert_eq!(rows(&view), rows(&other));
    }
}
