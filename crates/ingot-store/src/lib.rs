//! RocksDB state for ingot's stages: named column families, ordered iteration, and atomic
//! write batches so that consumed offsets are stored in the same batch as the data they
//! produced (DESIGN §3 rule 6). The only crate that links rocksdb.
//!
//! Invariants:
//! - a [`Batch`] is applied atomically (all or nothing) and survives a process crash once
//!   [`Store::write`] returns (write-ahead log on); one written by [`Store::write_unlogged`]
//!   may be lost in a crash, whole, with every unlogged one after it, and in a store opened
//!   with [`StoreOptions::atomic_flush`] what survives is the state after some batch;
//! - keys iterate in byte order; callers build big-endian keys for ordered scans;
//! - a [`PrefixIter`] is bounded by its prefix inside RocksDB (`iterate_upper_bound`):
//!   it can never return, or step over, a key outside the prefix;
//! - [`Store::open_versioned`] keeps a format marker: a database written in another format
//!   is emptied (every column family dropped) before it is used, never read.
//!
//! - memory is bounded per process, not per key: every store shares one block cache
//!   that holds data, index and filter blocks and is charged for the memtables
//!   ([`set_memory_budget`]); what grows with the keys stored is on disk.
//!
//! Calls block: async callers run them in `spawn_blocking` or a dedicated thread.

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, Direction,
    IteratorMode, Options, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteBufferManager,
    WriteOptions, DB,
};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The memory budget of every store in the process, in bytes, unless
/// [`set_memory_budget`] set another before the first store opened: 128 MiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 128 << 20;

/// The process's shared RocksDB memory: one LRU block cache (data, index and filter
/// blocks) of the whole budget, and a write-buffer manager that charges the memtables to
/// it (half of the budget at most; a store flushes when they would exceed it).
struct Memory {
    cache: Cache,
    write_buffers: WriteBufferManager,
    budget: usize,
}

static MEMORY: OnceLock<Memory> = OnceLock::new();

/// Sets the memory budget (bytes) of every store of the process. Only the first call
/// before any store opens counts; returns whether this call set it.
pub fn set_memory_budget(bytes: usize) -> bool {
    let mut set = false;
    MEMORY.get_or_init(|| {
        set = true;
        Memory::new(bytes)
    });
    set
}

fn memory() -> &'static Memory {
    MEMORY.get_or_init(|| Memory::new(DEFAULT_MEMORY_BUDGET))
}

impl Memory {
    fn new(budget: usize) -> Self {
        let budget = budget.max(8 << 20);
        let cache = Cache::new_lru_cache(budget);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            budget / 2,
            false,
            cache.clone(),
        );
        Memory {
            cache,
            write_buffers,
            budget,
        }
    }
}

/// Where a store's memory is, in bytes (RocksDB's own accounting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// The process-wide block cache in use (shared by every store; includes the
    /// memtables' reservations), of [`MemoryUsage::budget`].
    pub cache: u64,
    /// The budget the cache is bounded by.
    pub budget: u64,
    /// This store's memtables (`rocksdb.cur-size-all-mem-tables`, all column families).
    pub memtables: u64,
    /// This store's table readers outside the cache (`rocksdb.estimate-table-readers-mem`):
    /// the part that grows with the data stored.
    pub table_readers: u64,
    /// Keys of the first column family asked for, the store's records
    /// (`rocksdb.estimate-num-keys`).
    pub keys: u64,
}

/// How far a store's compactions are behind ([`Store::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Files in level 0 (`rocksdb.num-files-at-level0`): every read checks each one, and
    /// writes slow down at 20 and stop at 36 (RocksDB's defaults).
    pub l0_files: u64,
    /// Bytes compactions still have to rewrite (`rocksdb.estimate-pending-compaction-bytes`).
    pub pending_compaction_bytes: u64,
    /// Compactions running now, in the whole store (`rocksdb.num-running-compactions`).
    pub running_compactions: u64,
    /// Write stalls (delays and stops) since the store opened
    /// (`rocksdb.db-write-stall-stats`, summed).
    pub write_stalls: u64,
    /// Bytes in table and blob files.
    pub live_bytes: u64,
}

/// How a store is opened ([`Store::open_versioned_with`]); the default is what
/// [`Store::open`] and [`Store::open_versioned`] use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// RocksDB's `atomic_flush`: the memtables of every column family are flushed
    /// together, so after a crash the batches written by [`Store::write_unlogged`] are
    /// there up to some batch and none after it (never a batch in part, or one column
    /// family ahead of another).
    pub atomic_flush: bool,
}

fn db_options(options: StoreOptions) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_write_buffer_manager(&memory().write_buffers);
    opts.set_atomic_flush(options.atomic_flush);
    opts
}

/// Column-family options: blocks, indexes and bloom filters in the shared cache (level-0
/// ones pinned), memtables of 16 MiB.
fn cf_options() -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&memory().cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_bloom_filter(10.0, false);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(16 << 20);
    // values of 1 KiB and more (records, remote_data) in blob files (RocksDB's integrated
    // BlobDB): compactions move their keys and references, not their bytes, which cut
    // the write amplification of a rebuild (docs/figures.md). Old blobs are collected as
    // compactions pass; blobs are cached in the shared cache.
    opts.set_enable_blob_files(true);
    opts.set_min_blob_size(1024);
    opts.set_blob_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_enable_blob_gc(true);
    opts.set_blob_cache(&memory().cache);
    opts
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (disk, corruption, lock held by another process). Ours; a retry rarely helps.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("unknown column family {0}")]
    UnknownColumnFamily(String),
    /// A [`ReadFrom::Memory`] read needs the disk: read again from
    /// [`ReadFrom::Anywhere`] (on a blocking thread).
    #[error("not in memory: the read needs the disk")]
    NotInMemory,
}

/// Where a point read may look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Memtables, the block cache, the OS page cache, the disk: the read may block on I/O.
    Anywhere,
    /// Memtables and the block cache only (RocksDB's `kBlockCacheTier`): the read never
    /// does I/O, so an async task may run it in place; when the answer (a value, or that
    /// there is none) is not all in memory it fails with [`StoreError::NotInMemory`].
    Memory,
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A RocksDB database with named column families.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

/// Writes applied atomically by [`Store::write`].
#[derive(Default)]
pub struct Batch {
    ops: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, cf: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops
            .push((cf.to_string(), key.into(), Some(value.into())));
    }
    pub fn delete(&mut self, cf: &str, key: impl Into<Vec<u8>>) {
        self.ops.push((cf.to_string(), key.into(), None));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// What [`Store::open_versioned`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// No database (or an empty one) was there: it starts empty in this format.
    New,
    /// The database is in this format.
    Same,
    /// The database was in another format (`found`: its marker, `None` for none): every
    /// column family was dropped, it starts empty in this format.
    Emptied { found: Option<Vec<u8>> },
}

/// Key of the format marker, in the default column family.
const FORMAT_KEY: &[u8] = b"ingot-store-format";

/// The smallest key greater than every key starting with `prefix` (`None`: no bound, the
/// prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Store {
    /// Opens the database at `path` in format `format` with these column families. A
    /// database with another marker, or with none but with column families, was written
    /// by another version: its column families are dropped (and re-created empty) before
    /// the marker is written, so a crash in between is met the same way at the next open.
    pub fn open_versioned(
        path: &Path,
        column_families: &[&str],
        format: &[u8],
    ) -> Result<(Self, Opened), StoreError> {
        Self::open_versioned_with(path, column_families, format, StoreOptions::default())
    }

    /// [`Store::open_versioned`] with `options`.
    pub fn open_versioned_with(
        path: &Path,
        column_families: &[&str],
        format: &[u8],
        options: StoreOptions,
    ) -> Result<(Self, Opened), StoreError> {
        let existing = DB::list_cf(&Options::default(), path).unwrap_or_default();
        // no database there: the one opened below is new, its column families empty
        let new = !path.join("CURRENT").exists();
        let mut names: Vec<String> = column_families.iter().map(|s| s.to_string()).collect();
        for e in &existing {
            if e != "default" && !names.contains(e) {
                names.push(e.clone());
            }
        }
        let cfs = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
        let mut db = DB::open_cf_descriptors(&db_options(options), path, cfs)?;
        let found = db.get(FORMAT_KEY)?;
        let opened = if found.as_deref() == Some(format) {
            Opened::Same
        } else {
            let had_data = found.is_some() || existing.iter().any(|e| e != "default");
            // a new database's column families were just created empty
            if !new {
                for name in &names {
                    db.drop_cf(name)?;
                }
                for name in column_families {
                    db.create_cf(name, &cf_options())?;
                }
            }
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            db.put_opt(FORMAT_KEY, format, &wo)?;
            if had_data {
                Opened::Emptied { found }
            } else {
                Opened::New
            }
        };
        Ok((Store { db: Arc::new(db) }, opened))
    }

    /// Opens (creating if needed) the database at `path` with these column families.
    pub fn open(path: &Path, column_families: &[&str]) -> Result<Self, StoreError> {
        let cfs = column_families
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_options()));
        let db = DB::open_cf_descriptors(&db_options(StoreOptions::default()), path, cfs)?;
        Ok(Store { db: Arc::new(db) })
    }

    /// This store's memory and the shared cache's, from RocksDB's properties (summed over
    /// `column_families`).
    pub fn memory(&self, column_families: &[&str]) -> Result<MemoryUsage, StoreError> {
        let mem = memory();
        let mut usage = MemoryUsage {
            cache: mem.cache.get_usage() as u64,
            budget: mem.budget as u64,
            ..Default::default()
        };
        for (i, name) in column_families.iter().enumerate() {
            let cf = self.cf(name)?;
            let prop = |p: &str| -> Result<u64, StoreError> {
                Ok(self.db.property_int_value_cf(cf, p)?.unwrap_or(0))
            };
            usage.memtables += prop("rocksdb.cur-size-all-mem-tables")?;
            usage.table_readers += prop("rocksdb.estimate-table-readers-mem")?;
            if i == 0 {
                usage.keys = prop("rocksdb.estimate-num-keys")?;
            }
        }
        Ok(usage)
    }

    /// How far this store's compactions are behind, from RocksDB's properties (summed
    /// over `column_families`): what a write stall or a slow read at scale comes from.
    pub fn backlog(&self, column_families: &[&str]) -> Result<Backlog, StoreError> {
        let mut backlog = Backlog {
            running_compactions: self
                .db
                .property_int_value("rocksdb.num-running-compactions")?
                .unwrap_or(0),
            ..Default::default()
        };
        // the stalls since the store opened: each column family's (level 0, memtables,
        // pending bytes) and the store's own (the shared write buffer manager)
        let stalls = |text: Option<String>, names: &[&str]| -> u64 {
            let text = text.unwrap_or_default();
            let pairs = text.trim().trim_start_matches("Write Stall (count):");
            pairs
                .split(',')
                .filter_map(|pair| pair.split_once(':'))
                .filter(|(name, _)| names.is_empty() || names.contains(&name.trim()))
                .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
                .sum()
        };
        for name in column_families {
            let cf = self.cf(name)?;
            let prop = |p: &str| -> Result<u64, StoreError> {
                Ok(self.db.property_int_value_cf(cf, p)?.unwrap_or(0))
            };
            backlog.l0_files += prop("rocksdb.num-files-at-level0")?;
            backlog.pending_compaction_bytes += prop("rocksdb.estimate-pending-compaction-bytes")?;
            backlog.live_bytes +=
                prop("rocksdb.total-sst-files-size")? + prop("rocksdb.total-blob-file-size")?;
            backlog.write_stalls += stalls(
                self.db
                    .property_value_cf(cf, "rocksdb.cf-write-stall-stats")?,
                &["total-delays", "total-stops"],
            );
        }
        backlog.write_stalls +=
            stalls(self.db.property_value("rocksdb.db-write-stall-stats")?, &[]);
        Ok(backlog)
    }

    /// Flushes every memtable of `column_families` to disk in one flush and waits for it
    /// (atomic across them in a store opened with [`StoreOptions::atomic_flush`]): what
    /// [`Store::write_unlogged`] wrote is then durable.
    pub fn flush(&self, column_families: &[&str]) -> Result<(), StoreError> {
        let cfs = column_families
            .iter()
            .map(|name| self.cf(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut opts = rocksdb::FlushOptions::default();
        opts.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &opts)?;
        Ok(())
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::UnknownColumnFamily(name.to_string()))
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_from(cf, key, ReadFrom::Anywhere)
    }

    /// [`Store::get`] from `from`.
    ///
    /// Errors: [`StoreError::NotInMemory`] when `from` is [`ReadFrom::Memory`] and the
    /// answer needs a read from disk.
    pub fn get_from(
        &self,
        cf: &str,
        key: &[u8],
        from: ReadFrom,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_with_from(cf, key, from, <[u8]>::to_vec)
    }

    /// Calls `f` with the value of `key`, read in place (no copy), if there is one.
    pub fn get_with<T>(
        &self,
        cf: &str,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        self.get_with_from(cf, key, ReadFrom::Anywhere, f)
    }

    /// [`Store::get_with`] from `from`.
    ///
    /// Errors: [`StoreError::NotInMemory`] as [`Store::get_from`].
    pub fn get_with_from<T>(
        &self,
        cf: &str,
        key: &[u8],
        from: ReadFrom,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        let mut opts = ReadOptions::default();
        if from == ReadFrom::Memory {
            opts.set_read_tier(rocksdb::ReadTier::BlockCache);
        }
        match self.db.get_pinned_cf_opt(self.cf(cf)?, key, &opts) {
            Ok(v) => Ok(v.map(|v| f(&v))),
            Err(e) if from == ReadFrom::Memory && e.kind() == rocksdb::ErrorKind::Incomplete => {
                Err(StoreError::NotInMemory)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A consistent view of the database as of now, for reads that must agree with each
    /// other (an index scan and the records it points to).
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            store: self,
            snap: self.db.snapshot(),
        }
    }

    /// Values of many keys of one column family, in the order of `keys` (one RocksDB
    /// `multi_get`: one call per batch instead of one per key).
    pub fn multi_get(
        &self,
        cf: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let handle = self.cf(cf)?;
        self.db
            .multi_get_cf(keys.iter().map(|k| (handle, k.as_slice())))
            .into_iter()
            .map(|r| r.map_err(StoreError::from))
            .collect()
    }

    /// Applies the batch atomically, through the write-ahead log: it survives a process
    /// crash once this returns.
    pub fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.write_with(batch, false)
    }

    /// Applies the batch atomically without the write-ahead log (it is not copied to the
    /// log: the cheaper write of a store rebuilt from elsewhere). It is on disk once its
    /// memtables are flushed (when they fill, at [`Store::flush`], or when the
    /// store closes); a crash before that loses it, and every unlogged batch after it.
    /// Before a logged write follows unlogged ones, [`Store::flush`] them, or a
    /// crash could keep the later batch without the earlier ones.
    pub fn write_unlogged(&self, batch: Batch) -> Result<(), StoreError> {
        self.write_with(batch, true)
    }

    fn write_with(&self, batch: Batch, unlogged: bool) -> Result<(), StoreError> {
        // sized once: a batch of large values is not copied again as it grows
        let bytes: usize = batch
            .ops
            .iter()
            .map(|(_, k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 16)
            .sum();
        let mut wb = WriteBatch::with_capacity_bytes(bytes + 12);
        for (cf, key, value) in &batch.ops {
            let handle = self.cf(cf)?;
            match value {
                Some(v) => wb.put_cf(handle, key, v),
                None => wb.delete_cf(handle, key),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        opts.disable_wal(unlogged);
        self.db.write_opt(wb, &opts)?;
        Ok(())
    }

    /// Calls `f(key, value)` for keys `>= start` in byte order until it returns `false`.
    pub fn scan_from(
        &self,
        cf: &str,
        start: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for item in self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// Every (key, value) whose key starts with `prefix`.
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        self.scan_from(cf, prefix, |k, v| {
            if !k.starts_with(prefix) {
                return false;
            }
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }
}

/// A point-in-time view of a [`Store`].
pub struct Snapshot<'a> {
    store: &'a Store,
    snap: SnapshotWithThreadMode<'a, DB>,
}

impl<'a> Snapshot<'a> {
    /// An iterator over the keys of `cf` that start with `prefix`, from the first one
    /// `>= prefix ‖ from`. Bounded inside RocksDB: it never reads past the prefix.
    pub fn prefix_iter(
        &self,
        cf: &str,
        prefix: &[u8],
        from: &[u8],
    ) -> Result<PrefixIter<'_>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.to_vec());
        if let Some(end) = prefix_end(prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.snap.raw_iterator_cf_opt(self.store.cf(cf)?, ro);
        let mut start = prefix.to_vec();
        start.extend_from_slice(from);
        it.seek(&start);
        Ok(PrefixIter {
            it,
            prefix_len: prefix.len(),
        })
    }

    /// Values of many keys of one column family as of the snapshot, in the order of `keys`.
    pub fn multi_get(
        &self,
        cf: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let handle = self.store.cf(cf)?;
        self.snap
            .multi_get_cf_opt(
                keys.iter().map(|k| (handle, k.as_slice())),
                ReadOptions::default(),
            )
            .into_iter()
            .map(|r| r.map_err(StoreError::from))
            .collect()
    }
}

/// A forward iterator over one prefix of a column family ([`Snapshot::prefix_iter`]).
pub struct PrefixIter<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
    prefix_len: usize,
}

/// A key and its value, borrowed from an iterator.
pub type KeyValueRef<'a> = (&'a [u8], &'a [u8]);

impl PrefixIter<'_> {
    /// The current key without its prefix, and its value; `None` at the end of the prefix.
    pub fn current(&self) -> Result<Option<KeyValueRef<'_>>, StoreError> {
        if !self.it.valid() {
            self.it.status()?;
            return Ok(None);
        }
        match (self.it.key(), self.it.value()) {
            (Some(k), Some(v)) => Ok(Some((&k[self.prefix_len.min(k.len())..], v))),
            _ => Ok(None),
        }
    }

    /// Moves to the next key.
    pub fn advance(&mut self) {
        if self.it.valid() {
            self.it.next();
        }
    }
}

/// Key of a consumed-offset entry: `<topic>\0<partition as 4 bytes BE>`.
pub fn offset_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut k = topic.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Encodes an offset value (8 bytes BE).
pub fn encode_offset(offset: i64) -> Vec<u8> {
    offset.to_be_bytes().to_vec()
}

pub fn decode_offset(bytes: &[u8]) -> Option<i64> {
    bytes.try_into().ok().map(i64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_never_touch_the_disk_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &["data"]).unwrap();
        // large values go to blob files (min_blob_size 1 KiB), small ones stay in the table
        let (small, large) = (b"small".to_vec(), vec![7u8; 4096]);
        let mut b = Batch::new();
        b.put("data", b"s".to_vec(), small.clone());
        b.put("data", b"l".to_vec(), large.clone());
        s.write(b).unwrap();
        // in the memtable: found in memory
        let mem = |k: &[u8]| s.get_from("data", k, ReadFrom::Memory);
        assert_eq!(mem(b"s").unwrap(), Some(small.clone()));
        assert_eq!(mem(b"l").unwrap(), Some(large.clone()));
        s.flush(&["data"]).unwrap();
        // flushed to files nobody has read yet: not in the block (or blob) cache
        for k in [&b"s"[..], b"l"] {
            assert!(matches!(mem(k), Err(StoreError::NotInMemory)), "{k:?}");
        }
        // read from anywhere, then cached: memory reads find them
        assert_eq!(s.get("data", b"s").unwrap(), Some(small.clone()));
        assert_eq!(s.get("data", b"l").unwrap(), Some(large.clone()));
        assert_eq!(mem(b"s").unwrap(), Some(small));
        assert_eq!(
            s.get_with_from("data", b"l", ReadFrom::Memory, <[u8]>::len)
                .unwrap(),
            Some(4096)
        );
    }

    #[test]
    fn batch_is_atomic_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &["data", "offsets"]).unwrap();
            let mut b = Batch::new();
            b.put("data", b"k1".to_vec(), b"v1".to_vec());
            b.put("offsets", offset_key("raw.shopify", 2), encode_offset(41));
            s.write(b).unwrap();
            let mut bad = Batch::new();
            bad.put("data", b"k2".to_vec(), b"v2".to_vec());
            bad.put("nope", b"x".to_vec(), b"y".to_vec());
            assert!(matches!(
                s.write(bad),
                Err(StoreError::UnknownColumnFamily(_))
            ));
        }
        let s = Store::open(dir.path(), &["data", "offsets"]).unwrap();
        assert_eq!(s.get("data", b"k1").unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(s.get("data", b"k2").unwrap(), None);
        assert_eq!(
            s.multi_get("data", &[b"k2".to_vec(), b"k1".to_vec()])
                .unwrap(),
            vec![None, Some(b"v1".to_vec())]
        );
        let off = s
            .get("offsets", &offset_key("raw.shopify", 2))
            .unwrap()
            .unwrap();
        assert_eq!(decode_offset(&off), Some(41));
    }

    #[test]
    fn a_store_of_another_format_is_emptied_and_the_same_format_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            // an "old" store: no marker, its own column families
            let s = Store::open(dir.path(), &["old", "offsets"]).unwrap();
            let mut b = Batch::new();
            b.put("offsets", b"k".to_vec(), b"v".to_vec());
            b.put("old", b"x".to_vec(), b"y".to_vec());
            s.write(b).unwrap();
        }
        {
            let (s, opened) =
                Store::open_versioned(dir.path(), &["offsets", "new"], b"v2").unwrap();
            assert_eq!(opened, Opened::Emptied { found: None });
            assert_eq!(
                s.get("offsets", b"k").unwrap(),
                None,
                "the old offsets are gone"
            );
            let mut b = Batch::new();
            b.put("new", b"a".to_vec(), b"1".to_vec());
            s.write(b).unwrap();
        }
        {
            let (s, opened) =
                Store::open_versioned(dir.path(), &["offsets", "new"], b"v2").unwrap();
            assert_eq!(opened, Opened::Same);
            assert_eq!(s.get("new", b"a").unwrap().as_deref(), Some(&b"1"[..]));
            assert_eq!(
                s.get_with("new", b"a", |v| v.len()).unwrap(),
                Some(1),
                "read in place"
            );
        }
        let (s, opened) = Store::open_versioned(dir.path(), &["offsets", "new"], b"v3").unwrap();
        assert_eq!(
            opened,
            Opened::Emptied {
                found: Some(b"v2".to_vec())
            }
        );
        assert_eq!(s.get("new", b"a").unwrap(), None);
        let fresh = tempfile::tempdir().unwrap();
        let (_, opened) = Store::open_versioned(fresh.path(), &["x"], b"v3").unwrap();
        assert_eq!(opened, Opened::New);
    }

    #[test]
    fn a_prefix_iterator_stays_inside_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &["idx"]).unwrap();
        let mut b = Batch::new();
        for k in ["a/1", "a/2", "a/3", "a0", "b/1"] {
            b.put("idx", k.as_bytes().to_vec(), k.as_bytes().to_vec());
        }
        b.put("idx", vec![0xff, 0xff], b"ff".to_vec());
        s.write(b).unwrap();
        let snap = s.snapshot();
        let walk = |prefix: &[u8], from: &[u8]| {
            let mut it = snap.prefix_iter("idx", prefix, from).unwrap();
            let mut out = Vec::new();
            while let Some((k, v)) = it.current().unwrap() {
                out.push((String::from_utf8_lossy(k).to_string(), v.len()));
                it.advance();
            }
            out
        };
        assert_eq!(
            walk(b"a/", b""),
            [("1".to_string(), 3), ("2".into(), 3), ("3".into(), 3)]
        );
        assert_eq!(walk(b"a/", b"2"), [("2".to_string(), 3), ("3".into(), 3)]);
        assert_eq!(walk(b"a/", b"4"), []);
        assert_eq!(walk(b"c/", b""), []);
        assert_eq!(
            walk(&[0xff], b"").len(),
            1,
            "an all-0xff prefix has no upper bound"
        );
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(
            snap.multi_get("idx", &[b"a/2".to_vec(), b"zz".to_vec()])
                .unwrap(),
            vec![Some(b"a/2".to_vec()), None]
        );
    }

    #[test]
    fn prefix_scan_is_ordered_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &["idx"]).unwrap();
        let mut b = Batch::new();
        for k in ["a/2", "a/1", "b/1", "a/3"] {
            b.put("idx", k.as_bytes().to_vec(), Vec::new());
        }
        s.write(b).unwrap();
        let keys: Vec<String> = s
            .scan_prefix("idx", b"a/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(keys, ["a/1", "a/2", "a/3"]);
    }
}
