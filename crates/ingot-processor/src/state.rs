//! The processor's RocksDB state: the greatest version per record key (column family
//! `versions`) and how far each changelog partition was restored (`changelog`).

use crate::{ProcessorError, HEADER_RAW_OFFSET, HEADER_RAW_PARTITION, HEADER_UPDATED_AT};
use ingot_kafka::{AvroCodec, KafkaSettings, Message, Reader, OP_DELETE, OP_HEADER};
use ingot_model::{Model, NormalizedRecord, Version};
use ingot_store::{decode_offset, encode_offset, offset_key, Batch, Store};

pub const COLUMN_FAMILIES: &[&str] = &["versions", "changelog"];

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

    pub fn get_version(&self, key: &str) -> Result<Option<Version>, ingot_store::StoreError> {
        Ok(self
            .store
            .get("versions", key.as_bytes())?
            .and_then(|b| serde_json::from_slice(&b).ok()))
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
            b.put(
                "versions",
                k.as_bytes().to_vec(),
                serde_json::to_vec(v).expect("version serializes"),
            );
        }
        self.store.write(b)
    }

    /// Reads every normalized topic from where the last restore stopped to its end, and
    /// keeps the greater of the stored and the changelog version per key.
    pub async fn restore(
        &self,
        settings: &KafkaSettings,
        codec: &AvroCodec,
    ) -> Result<RestoreStats, ProcessorError> {
        let mut starts = Vec::new();
        for model in Model::ALL {
            let topic = model.normalized_topic();
            for p in settings.partitions(&topic)? {
                let from = self
                    .store
                    .get("changelog", &offset_key(&topic, p))?
                    .and_then(|b| decode_offset(&b))
                    .unwrap_or(0);
                starts.push((topic.clone(), p, from));
            }
        }
        let mut reader = Reader::new(settings, &starts)?;
        let mut stats = RestoreStats::default();
        let mut batch = Batch::new();
        let mut pending: std::collections::HashMap<String, Version> =
            std::collections::HashMap::new();
        while let Some(m) = reader.next().await? {
            let Some(key) = m.key_str().map(str::to_string) else {
                continue;
            };
            let version = changelog_version(&m, codec).await?;
            let current = match pending.get(&key) {
                Some(v) => Some(*v),
                None => self.get_version(&key)?,
            };
            let newer = current.is_none_or(|c| {
                ingot_model::decide(Some(&c), &version) != ingot_model::Decision::Drop
            });
            if newer {
                pending.insert(key, version);
            }
            batch.put(
                "changelog",
                offset_key(&m.topic, m.partition),
                encode_offset(m.offset + 1),
            );
            stats.records += 1;
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
        pending: &mut std::collections::HashMap<String, Version>,
    ) -> Result<(), ingot_store::StoreError> {
        for (k, v) in pending.drain() {
            batch.put(
                "versions",
                k.into_bytes(),
                serde_json::to_vec(&v).expect("version serializes"),
            );
        }
        self.store.write(std::mem::take(batch))
    }
}

/// The version a changelog record stands for: from the Avro value for a record, from the
/// headers for a tombstone.
async fn changelog_version(m: &Message, codec: &AvroCodec) -> Result<Version, ProcessorError> {
    let bad = |reason: String| ProcessorError::Changelog {
        topic: m.topic.clone(),
        partition: m.partition,
        offset: m.offset,
        reason,
    };
    let header_i64 = |name: &str| m.header(name).and_then(|v| v.parse::<i64>().ok());
    match &m.value {
        None => {
            if m.header(OP_HEADER) != Some(OP_DELETE) {
                return Err(bad("tombstone without ingot-op: delete".into()));
            }
            let at = m
                .header(HEADER_UPDATED_AT)
                .and_then(|t| ingot_model::parse_time(t, true).ok())
                .ok_or_else(|| bad("tombstone without deletion time".into()))?;
            Ok(Version {
                updated_at_nanos: crate::nanos(&at),
                deleted: true,
                raw_partition: header_i64(HEADER_RAW_PARTITION).unwrap_or(0) as i32,
                raw_offset: header_i64(HEADER_RAW_OFFSET).unwrap_or(0),
                content_hash: [0; 32],
            })
        }
        Some(bytes) => {
            let model = Model::from_normalized_topic(&m.topic)
                .ok_or_else(|| bad("not a normalized topic".into()))?;
            let json = codec.decode_record(bytes).await?;
            let rec = NormalizedRecord::from_json(model, json).map_err(|e| bad(e.to_string()))?;
            let at = ingot_model::parse_time(&rec.meta.remote_updated_at, true)
                .map_err(|e| bad(e.to_string()))?;
            Ok(Version {
                updated_at_nanos: crate::nanos(&at),
                deleted: false,
                raw_partition: rec.meta.raw_partition,
                raw_offset: rec.meta.raw_offset,
                content_hash: rec.data.content_hash(),
            })
        }
    }
}
