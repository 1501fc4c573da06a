//! Replays (DESIGN §6): re-standardizing a selection of the raw log — or redriving the
//! dead-letter topic — with the current mappings, through the processor's normal path,
//! with zero 3PA calls. Plain data shared by the processor (which runs replays), the API
//! and the CLI (which request and follow them).
//!
//! A replay lives in the compacted control topic [`REPLAYS_TOPIC`]:
//! - key `<replay id>`: the [`ReplaySpec`] (written by whoever requests it, rewritten with
//!   `cancelled: true` to cancel it);
//! - key `<replay id>/<p>`: the [`UnitProgress`] of unit *p*, written by the processor
//!   instance that owns raw partition *p* (of every provider, by the `range` assignor),
//!   after each replay batch: the checkpoint a resumed replay starts from, and its counts.

use crate::Model;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The control topic of replays (topology/topics.toml).
pub const REPLAYS_TOPIC: &str = "ingot.replays";

/// At most this many sample diffs per model in a dry-run report.
pub const SAMPLES_PER_MODEL: usize = 3;

/// What a replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReplaySource {
    /// The raw topics (`raw.<provider>`).
    #[default]
    Raw,
    /// The dead-letter topic (`raw.dlq`): each entry is re-processed at the raw position
    /// it was dead-lettered from.
    Dlq,
}

/// A replay request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplaySpec {
    /// `rpl_` + UUID.
    pub id: String,
    /// The tenant that asked (`None`: an operator through the CLI).
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub source: ReplaySource,
    /// Connections whose raw events are replayed; empty: every connection (CLI only: the
    /// API always fills in the tenant's connections).
    #[serde(default)]
    pub connection_ids: Vec<String>,
    /// Models replayed; empty: every model.
    #[serde(default)]
    pub models: Vec<Model>,
    /// Range of the raw log by receive time (the raw record's timestamp), inclusive.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Dead-letter redrive only: entries whose reason contains this text.
    #[serde(default)]
    pub reason_contains: Option<String>,
    /// Write nothing; report what would change.
    #[serde(default)]
    pub dry_run: bool,
    pub created_at: DateTime<Utc>,
    /// Units (raw partition numbers) the replay is split into: the partition count of the
    /// raw topics when it was requested.
    pub units: u32,
    #[serde(default)]
    pub cancelled: bool,
}

impl ReplaySpec {
    /// A new request with a fresh id.
    pub fn new(source: ReplaySource, units: u32) -> Self {
        ReplaySpec {
            id: format!("rpl_{}", uuid::Uuid::new_v4().simple()),
            tenant_id: None,
            source,
            connection_ids: Vec::new(),
            models: Vec::new(),
            since: None,
            until: None,
            reason_contains: None,
            dry_run: false,
            created_at: Utc::now(),
            units,
            cancelled: false,
        }
    }

    /// Does the raw event with this record key and receive time (ms) belong to the
    /// selection? Keys are `<connection>/<model>/<remote_id>`; connection ids contain no
    /// `/`.
    pub fn selects(&self, record_key: &str, received_ms: Option<i64>) -> bool {
        let mut parts = record_key.splitn(3, '/');
        let (Some(conn), Some(model)) = (parts.next(), parts.next()) else {
            return false;
        };
        if !self.connection_ids.is_empty() && !self.connection_ids.iter().any(|c| c == conn) {
            return false;
        }
        if !self.models.is_empty() && !self.models.iter().any(|m| m.as_str() == model) {
            return false;
        }
        let in_range = |t: i64| {
            self.since.is_none_or(|s| t >= s.timestamp_millis())
                && self.until.is_none_or(|u| t <= u.timestamp_millis())
        };
        match received_ms {
            Some(t) => in_range(t),
            None => self.since.is_none() && self.until.is_none(),
        }
    }

    /// The control-topic key of unit `unit`'s progress.
    pub fn unit_key(&self, unit: i32) -> String {
        format!("{}/{unit}", self.id)
    }
}

/// How a unit found where to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seek {
    /// The broker's timestamp index (`offsets_for_times`).
    TimestampLookup,
    /// From the beginning, filtering by timestamp (brokers without a timestamp index).
    Scan,
}

/// Counts of a replay (one unit, or summed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplayCounts {
    /// Raw (or dead-letter) records read, selected or not.
    pub scanned: u64,
    /// Selected raw events re-standardized.
    pub read: u64,
    /// New normalized records (or tombstones) produced — would be, in a dry run.
    pub reemitted: u64,
    /// Selected events that changed nothing (same content, or superseded by a newer
    /// version).
    pub unchanged: u64,
    /// Events that could not be standardized (dead-lettered; in a redrive, still so).
    pub dead_lettered: u64,
    /// Events of topics ingot does not map.
    pub skipped: u64,
}

impl ReplayCounts {
    pub fn add(&mut self, o: &ReplayCounts) {
        self.scanned += o.scanned;
        self.read += o.read;
        self.reemitted += o.reemitted;
        self.unchanged += o.unchanged;
        self.dead_lettered += o.dead_lettered;
        self.skipped += o.skipped;
    }
}

/// One field's change in a sample diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    /// `null` when the record did not exist (or was deleted).
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

/// A sample record that would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleDiff {
    pub record_key: String,
    pub changes: Vec<FieldChange>,
}

/// What a dry run found for one model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelDiff {
    /// Records whose standardized content would change.
    pub changed: u64,
    /// Per top-level field: how many of those records change it.
    pub fields: BTreeMap<String, u64>,
    /// Up to [`SAMPLES_PER_MODEL`] records with their changed fields, old and new.
    pub samples: Vec<SampleDiff>,
}

/// A dry run's report: per model (`order`, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DryRunReport {
    pub models: BTreeMap<Model, ModelDiff>,
}

impl DryRunReport {
    pub fn merge(&mut self, o: &DryRunReport) {
        for (m, d) in &o.models {
            let mine = self.models.entry(*m).or_default();
            mine.changed += d.changed;
            for (f, n) in &d.fields {
                *mine.fields.entry(f.clone()).or_default() += n;
            }
            for s in &d.samples {
                if mine.samples.len() < SAMPLES_PER_MODEL {
                    mine.samples.push(s.clone());
                }
            }
        }
    }
}

/// Where one unit of a replay stands: its checkpoint and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitProgress {
    pub replay_id: String,
    pub unit: i32,
    pub seek: Seek,
    /// Per topic read: next offset to read and the end (exclusive) the unit stops at.
    pub cursors: BTreeMap<String, UnitCursor>,
    pub counts: ReplayCounts,
    pub done: bool,
    /// Dry runs: what would change (set when the unit is done).
    #[serde(default)]
    pub report: Option<DryRunReport>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCursor {
    pub start: i64,
    pub next: i64,
    pub end: i64,
}

/// A replay's state as the API and the CLI show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    /// No processor took it up yet.
    Pending,
    Running,
    Done,
    Cancelled,
}

/// The status of a replay: its request, the sum of its units, and (dry run) the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayStatus {
    pub id: String,
    pub state: ReplayState,
    pub dry_run: bool,
    pub source: ReplaySource,
    pub connection_ids: Vec<String>,
    pub models: Vec<Model>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub units: u32,
    pub units_done: u32,
    /// How the start was found (`timestamp_lookup` or `scan`), once known.
    pub seek: Option<Seek>,
    /// Records to read in total (sum of end − start of every unit started) and read so far.
    pub total: u64,
    pub position: u64,
    pub counts: ReplayCounts,
    pub report: Option<DryRunReport>,
}

impl ReplayStatus {
    /// Sums the progress of the units of `spec`.
    pub fn of<'a>(spec: &ReplaySpec, units: impl IntoIterator<Item = &'a UnitProgress>) -> Self {
        let mut counts = ReplayCounts::default();
        let (mut done, mut started, mut total, mut position) = (0u32, 0u32, 0u64, 0u64);
        let mut seek = None;
        let mut report: Option<DryRunReport> = None;
        for u in units {
            started += 1;
            counts.add(&u.counts);
            seek = seek.or(Some(u.seek));
            for c in u.cursors.values() {
                total += (c.end - c.start).max(0) as u64;
                position += (c.next - c.start).max(0) as u64;
            }
            if u.done {
                done += 1;
            }
            if let Some(r) = &u.report {
                report.get_or_insert_with(Default::default).merge(r);
            }
        }
        let state = if done >= spec.units {
            ReplayState::Done
        } else if spec.cancelled {
            ReplayState::Cancelled
        } else if started == 0 {
            ReplayState::Pending
        } else {
            ReplayState::Running
        };
        ReplayStatus {
            id: spec.id.clone(),
            state,
            dry_run: spec.dry_run,
            source: spec.source,
            connection_ids: spec.connection_ids.clone(),
            models: spec.models.clone(),
            since: spec.since,
            until: spec.until,
            created_at: spec.created_at,
            units: spec.units,
            units_done: done,
            seek,
            total,
            position,
            counts,
            report: if spec.dry_run && done >= spec.units {
                Some(report.unwrap_or_default())
            } else {
                report
            },
        }
    }

    pub fn finished(&self) -> bool {
        matches!(self.state, ReplayState::Done | ReplayState::Cancelled)
    }
}

/// The replays of the control topic, folded: requests and their units' progress.
#[derive(Debug, Default, Clone)]
pub struct ReplayBook {
    pub specs: BTreeMap<String, ReplaySpec>,
    pub units: BTreeMap<(String, i32), UnitProgress>,
}

impl ReplayBook {
    /// Applies one control-topic record (`None`: a tombstone). Unreadable values are
    /// ignored (and reported by the caller).
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), serde_json::Error> {
        match key.split_once('/') {
            None => match value {
                None => {
                    self.specs.remove(key);
                }
                Some(v) => {
                    let spec: ReplaySpec = serde_json::from_slice(v)?;
                    self.specs.insert(key.to_string(), spec);
                }
            },
            Some((id, unit)) => {
                let Ok(unit) = unit.parse::<i32>() else {
                    return Ok(());
                };
                match value {
                    None => {
                        self.units.remove(&(id.to_string(), unit));
                    }
                    Some(v) => {
                        let p: UnitProgress = serde_json::from_slice(v)?;
                        self.units.insert((id.to_string(), unit), p);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn status(&self, id: &str) -> Option<ReplayStatus> {
        let spec = self.specs.get(id)?;
        Some(ReplayStatus::of(
            spec,
            self.units
                .range((id.to_string(), i32::MIN)..=(id.to_string(), i32::MAX))
                .map(|(_, u)| u),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_connection_model_and_time() {
        let mut s = ReplaySpec::new(ReplaySource::Raw, 3);
        s.connection_ids = vec!["shop-1".into()];
        s.models = vec![Model::Order];
        s.since = Some("2026-01-01T00:00:00Z".parse().unwrap());
        let t = s.since.unwrap().timestamp_millis();
        assert!(s.selects("shop-1/order/7", Some(t)));
        assert!(!s.selects("shop-1/order/7", Some(t - 1)));
        assert!(!s.selects("shop-10/order/7", Some(t)));
        assert!(!s.selects("shop-1/customer/7", Some(t)));
        assert!(!s.selects("garbage", Some(t)));
        assert!(!s.selects("shop-1/order/7", None));
        let all = ReplaySpec::new(ReplaySource::Raw, 3);
        assert!(all.selects("x/product/1", None));
    }

    #[test]
    fn status_sums_units_and_ends_when_all_are_done() {
        let mut spec = ReplaySpec::new(ReplaySource::Raw, 2);
        spec.dry_run = true;
        let mut book = ReplayBook::default();
        book.apply(&spec.id, Some(&serde_json::to_vec(&spec).unwrap()))
            .unwrap();
        assert_eq!(book.status(&spec.id).unwrap().state, ReplayState::Pending);
        let unit = |u: i32, done: bool, changed: u64| UnitProgress {
            replay_id: spec.id.clone(),
            unit: u,
            seek: Seek::Scan,
            cursors: [(
                "raw.shopify".to_string(),
                UnitCursor {
                    start: 10,
                    next: 15,
                    end: 20,
                },
            )]
            .into(),
            counts: ReplayCounts {
                read: 5,
                reemitted: changed,
                ..Default::default()
            },
            done,
            report: done.then(|| DryRunReport {
                models: [(
                    Model::Order,
                    ModelDiff {
                        changed,
                        fields: [("note".to_string(), changed)].into(),
                        samples: vec![],
                    },
                )]
                .into(),
            }),
            updated_at: Utc::now(),
        };
        for (u, done, c) in [(0, true, 2), (1, false, 1)] {
            book.apply(
                &spec.unit_key(u),
                Some(&serde_json::to_vec(&unit(u, done, c)).unwrap()),
            )
            .unwrap();
        }
        let st = book.status(&spec.id).unwrap();
        assert_eq!(st.state, ReplayState::Running);
        assert_eq!((st.total, st.position, st.counts.read), (20, 10, 10));
        book.apply(
            &spec.unit_key(1),
            Some(&serde_json::to_vec(&unit(1, true, 1)).unwrap()),
        )
        .unwrap();
        let st = book.status(&spec.id).unwrap();
        assert_eq!(st.state, ReplayState::Done);
        let r = st.report.unwrap();
        assert_eq!(r.models[&Model::Order].changed, 3);
        assert_eq!(r.models[&Model::Order].fields["note"], 3);
    }
}
