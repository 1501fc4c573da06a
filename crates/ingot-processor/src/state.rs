//! The processor's RocksDB state: the greatest version per record key (column family
//! `versions`, binary [`Version`]s) and how far each partition of the version changelog
//! was restored (`changelog`).
//!
//! The changelog is the compacted topic [`VERSIONS_TOPIC`]: every version the state
//! takes (emitted or absorbed, deletion markers included as real values) is produced
//! there, to the partition number of the raw event that produced it, before the state
//! is written. It is never tombstoned, so compaction (which drops tombstones after
//! `delete.retention.ms` on Apache Kafka) never erases a deletion marker.

use crate::ProcessorError;
use ingot_kafka::{KafkaSettings, Reader};
use ingot_model::Version;
use ingot_store::{decode_offset, encode_offset, offset_key, Batch, Store};
use std::collections::HashMap;

pub const COLUMN_FAMILIES: &[&str] = &["versions", "changelog"];

/// The version changelog topic (topology/topics.toml).
pub const VERSIONS_TOPIC: &str = "ingot.processor.versions";

/// What a restore read.
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreStats {
    pub records: u64,
}

#[derive(Clone)]
pub struct StateStore {
    store: Store,
}

impl StateStore {
    pub fn new(store: Store) -> Self {
        StateStore { store }
    }

    /// Opens the state in `dir` (tools and benchmarks; the processor opens its own).
    pub fn open(dir: &std::path::Path) -> Result<Self, ingot_store::StoreError> {
        Ok(StateStore::new(Store::open(dir, COLUMN_FAMILIES)?))
    }

    /// The state's memory (RocksDB's accounting), after flushing its memtables when
    /// `flush` (benchmarks).
    pub fn memory(&self, flush: bool) -> Result<ingot_store::MemoryUsage, ingot_store::StoreError> {
        if flush {
            self.store.flush(COLUMN_FAMILIES)?;
        }
        self.store.memory(COLUMN_FAMILIES)
    }

    pub fn get_version(&self, key: &str) -> Result<Option<Version>, ingot_store::StoreError> {
        Ok(self
            .store
            .get("versions", key.as_bytes())?
            .and_then(|b| Version::from_bytes(&b)))
    }

    /// The stored versions of many keys, in order (one multi-get).
    pub fn get_versions(
        &self,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Version>>, ingot_store::StoreError> {
        Ok(self
            .store
            .multi_get("versions", keys)?
            .into_iter()
            .map(|b| b.and_then(|b| Version::from_bytes(&b)))
            .collect())
    }

    pub fn put_versions(
        &self,
        versions: &[(String, Version)],
    ) -> Result<(), ingot_store::StoreError> {
        if versions.is_empty() {
            return Ok(());
        }
        let mut b = Batch::new();
        for (k, v) in versions {
            b.put("versions", k.as_bytes().to_vec(), v.to_bytes().to_vec());
        }
        self.store.write(b)
    }

    /// Reads partition `partition` of the version changelog from where the last restore of
    /// it stopped to its end, and keeps the greater of the stored and the changelog version
    /// per key. Run before the processor handles raw partition `partition`.
    pub async fn restore_partition(
        &self,
        settings: &KafkaSettings,
        partition: i32,
    ) -> Result<RestoreStats, ProcessorError> {
        let from = self
            .store
            .get("changelog", &offset_key(VERSIONS_TOPIC, partition))?
            .and_then(|b| decode_offset(&b))
            .unwrap_or(0);
        let mut reader = Reader::new(settings, &[(VERSIONS_TOPIC.to_string(), partition, from)])?;
        let mut stats = RestoreStats::default();
        let mut batch = Batch::new();
        let mut pending: HashMap<String, Version> = HashMap::new();
        while let Some(m) = reader.next().await? {
            batch.put(
                "changelog",
                offset_key(&m.topic, m.partition),
                encode_offset(m.offset + 1),
            );
            stats.records += 1;
            let (Some(key), Some(version)) = (
                m.key_str().map(str::to_string),
                m.value.as_deref().and_then(Version::from_bytes),
            ) else {
                return Err(ProcessorError::Changelog {
                    topic: m.topic.clone(),
                    partition: m.partition,
                    offset: m.offset,
                    reason: "not a record key and a binary version".into(),
                });
            };
            let current = match pending.get(&key) {
                Some(v) => Some(*v),
                None => self.get_version(&key)?,
            };
            if current.is_none_or(|c| {
                ingot_model::decide(Some(&c), &version) != ingot_model::Decision::Drop
            }) {
                pending.insert(key, version);
            }
            if batch.len() > 5000 {
                self.flush(&mut batch, &mut pending)?;
            }
        }
        self.flush(&mut batch, &mut pending)?;
        Ok(stats)
    }

    fn flush(
        &self,
        batch: &mut Batch,
        pending: &mut HashMap<String, Version>,
    ) -> Result<(), ingot_store::StoreError> {
        for (k, v) in pending.drain() {
            batch.put("versions", k.into_bytes(), v.to_bytes().to_vec());
        }
        self.store.write(std::mem::take(batch))
    }
}
