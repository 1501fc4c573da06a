//! RocksDB state for ingot's stages: named column families, ordered iteration, and atomic
//! write batches so that consumed offsets are stored in the same batch as the data they
//! produced (DESIGN §3 rule 6). The only crate that links rocksdb.
//!
//! Invariants:
//! - a [`Batch`] is applied atomically (all or nothing) and survives a process crash once
//!   [`Store::write`] returns (write-ahead log on);
//! - keys iterate in byte order; callers build big-endian keys for ordered scans.
//!
//! Calls block: async callers run them in `spawn_blocking` or a dedicated thread.

use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (disk, corruption, lock held by another process). Ours; a retry rarely helps.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("unknown column family {0}")]
    UnknownColumnFamily(String),
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

impl Store {
    /// Opens (creating if needed) the database at `path` with these column families.
    pub fn open(path: &Path, column_families: &[&str]) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = column_families
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Store { db: Arc::new(db) })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::UnknownColumnFamily(name.to_string()))
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
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

    /// Applies the batch atomically.
    pub fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for (cf, key, value) in &batch.ops {
            let handle = self.cf(cf)?;
            match value {
                Some(v) => wb.put_cf(handle, key, v),
                None => wb.delete_cf(handle, key),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
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
