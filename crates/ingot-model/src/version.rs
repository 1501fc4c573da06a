//! The version rule (DESIGN §3): which standardized version of a record wins, and whether
//! it produces a new normalized record. Pure; the processor applies it with RocksDB state.
//!
//! Versions are totally ordered by `(remote_updated_at, deleted, mapping version, raw
//! position)`:
//! - a strictly older `remote_updated_at` loses (rule 1);
//! - at an equal time a delete beats an upsert (rule 4: a version not after the deletion
//!   does not resurrect the record);
//! - then the newer mapping wins (rule 6): a replay re-standardizing the stored raw event
//!   with a newer mapping replaces its output when the content differs, and a lagging
//!   instance still on an older mapping never replaces a newer mapping's output of the
//!   same remote version, whatever its raw position;
//! - otherwise the later raw-log position wins (rule 2).
//!
//! The state keeps the greatest version seen, so any interleaving or duplication of the
//! same versions ends in the same state (rule 5). A new greatest version with the same
//! content as the stored one advances the state silently (rule 3); anything else is emitted.

use serde::{Deserialize, Serialize};

/// One version of a record as the version rule sees it. Also the processor's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// `remote_updated_at` (or the deletion time), nanoseconds since the Unix epoch, UTC.
    pub updated_at_nanos: i64,
    /// A deletion marker.
    pub deleted: bool,
    /// Raw-log position: partition and offset of the raw event on `raw.<provider>`.
    pub raw_partition: i32,
    pub raw_offset: i64,
    /// The revision `n` of the mapping (`<provider>/<n>`) that standardized this version;
    /// 0 for state written before mapping versions took part in the rule.
    #[serde(default)]
    pub mapping_version: u32,
    /// Content hash of the standardized fields (all zeros for a deletion).
    pub content_hash: [u8; 32],
}

impl Version {
    fn order_key(&self) -> (i64, bool, u32, i32, i64) {
        (
            self.updated_at_nanos,
            self.deleted,
            self.mapping_version,
            self.raw_partition,
            self.raw_offset,
        )
    }

    /// Length of [`Version::to_bytes`].
    pub const ENCODED_LEN: usize = 58;
    const FORMAT: u8 = 2;
    /// Format 1 (no mapping version, 54 bytes), still read.
    const FORMAT_V1: u8 = 1;
    const V1_LEN: usize = 54;

    /// The binary form stored in the processor's state and its changelog topic
    /// (`ingot.processor.versions`): format byte 2, `updated_at_nanos` (i64 BE), deleted
    /// (0/1), raw partition (i32 BE), raw offset (i64 BE), content hash (32 bytes),
    /// mapping version (u32 BE).
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[0] = Self::FORMAT;
        b[1..9].copy_from_slice(&self.updated_at_nanos.to_be_bytes());
        b[9] = self.deleted as u8;
        b[10..14].copy_from_slice(&self.raw_partition.to_be_bytes());
        b[14..22].copy_from_slice(&self.raw_offset.to_be_bytes());
        b[22..54].copy_from_slice(&self.content_hash);
        b[54..58].copy_from_slice(&self.mapping_version.to_be_bytes());
        b
    }

    /// Reads [`Version::to_bytes`], format 1 (mapping version 0) and the JSON form of
    /// earlier releases' state. `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<Version> {
        let known = (b.len() == Self::ENCODED_LEN && b.first() == Some(&Self::FORMAT))
            || (b.len() == Self::V1_LEN && b.first() == Some(&Self::FORMAT_V1));
        if known && b[9] <= 1 {
            let i64_at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
            let mut content_hash = [0u8; 32];
            content_hash.copy_from_slice(&b[22..54]);
            let mapping_version = b
                .get(54..58)
                .and_then(|m| m.try_into().ok())
                .map(u32::from_be_bytes)
                .unwrap_or(0);
            return Some(Version {
                updated_at_nanos: i64_at(1),
                deleted: b[9] == 1,
                raw_partition: i32::from_be_bytes(b[10..14].try_into().unwrap_or([0; 4])),
                raw_offset: i64_at(14),
                mapping_version,
                content_hash,
            });
        }
        if b.first() == Some(&b'{') {
            return serde_json::from_slice(b).ok();
        }
        None
    }

    /// True when `self` and `other` carry the same content (both deleted, or equal hashes).
    pub fn same_content(&self, other: &Version) -> bool {
        self.deleted == other.deleted && (self.deleted || self.content_hash == other.content_hash)
    }
}

/// What to do with an incoming version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Newer and different: produce it (a record, or a tombstone) and store it.
    Emit,
    /// Newer but the same content: store it, produce nothing.
    Absorb,
    /// Not newer than the stored version: ignore.
    Drop,
}

/// Applies the version rule to `incoming` given the `stored` version, if any.
pub fn decide(stored: Option<&Version>, incoming: &Version) -> Decision {
    match stored {
        None => Decision::Emit,
        Some(s) if incoming.order_key() <= s.order_key() => Decision::Drop,
        Some(s) if incoming.same_content(s) => Decision::Absorb,
        Some(_) => Decision::Emit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(t: i64, deleted: bool, offset: i64, content: u8) -> Version {
        vm(t, deleted, offset, content, 1)
    }

    fn vm(t: i64, deleted: bool, offset: i64, content: u8, mapping: u32) -> Version {
        Version {
            updated_at_nanos: t,
            deleted,
            raw_partition: 0,
            raw_offset: offset,
            mapping_version: mapping,
            content_hash: if deleted { [0; 32] } else { [content; 32] },
        }
    }

    #[test]
    fn binary_form_round_trips_and_reads_legacy_json() {
        let mut x = v(-5, true, 1 << 40, 0);
        x.raw_partition = 7;
        assert_eq!(Version::from_bytes(&x.to_bytes()), Some(x));
        let y = v(i64::MAX, false, 3, 9);
        assert_eq!(Version::from_bytes(&y.to_bytes()), Some(y));
        let json = serde_json::to_vec(&y).unwrap();
        assert_eq!(Version::from_bytes(&json), Some(y));
        assert_eq!(Version::from_bytes(b"garbage"), None);
        let mut bad = y.to_bytes();
        bad[9] = 2;
        assert_eq!(Version::from_bytes(&bad), None);
        // format 1 (54 bytes, no mapping version) reads as mapping version 0
        let mut v1 = y.to_bytes()[..54].to_vec();
        v1[0] = 1;
        let mut old = y;
        old.mapping_version = 0;
        assert_eq!(Version::from_bytes(&v1), Some(old));
        // a format byte that does not match the length is refused
        let mut wrong = y.to_bytes();
        wrong[0] = 1;
        assert_eq!(Version::from_bytes(&wrong), None);
    }

    #[test]
    fn mapping_versions_rule_6() {
        let stored = vm(100, false, 5, 1, 1);
        // a replay of the same raw event with a newer mapping: replaces when different
        assert_eq!(
            decide(Some(&stored), &vm(100, false, 5, 2, 2)),
            Decision::Emit
        );
        // ... and changes nothing when the content is the same
        assert_eq!(
            decide(Some(&stored), &vm(100, false, 5, 1, 2)),
            Decision::Absorb
        );
        // an older mapping never replaces a newer one's output of the same remote version,
        // not even from a later raw position (a lagging instance during a deploy)
        let newer = vm(100, false, 5, 2, 2);
        assert_eq!(
            decide(Some(&newer), &vm(100, false, 5, 1, 1)),
            Decision::Drop
        );
        assert_eq!(
            decide(Some(&newer), &vm(100, false, 9, 3, 1)),
            Decision::Drop
        );
        // a newer remote version wins whatever mapping produced it
        assert_eq!(
            decide(Some(&newer), &vm(101, false, 9, 3, 1)),
            Decision::Emit
        );
        // a replay of an older raw event (superseded remote version) changes nothing
        assert_eq!(
            decide(Some(&stored), &vm(99, false, 2, 7, 2)),
            Decision::Drop
        );
        // a delete still beats an upsert of the same time, whatever the mappings
        let deleted = vm(100, true, 6, 0, 1);
        assert_eq!(
            decide(Some(&deleted), &vm(100, false, 5, 2, 2)),
            Decision::Drop
        );
        assert_eq!(
            decide(Some(&deleted), &vm(100, true, 6, 0, 2)),
            Decision::Absorb
        );
    }

    #[test]
    fn the_rules_one_by_one() {
        let stored = v(100, false, 5, 1);
        // 1. strictly older is dropped, even later in the log
        assert_eq!(decide(Some(&stored), &v(99, false, 9, 2)), Decision::Drop);
        // 2. equal time, different content: later in the log wins, earlier loses
        assert_eq!(decide(Some(&stored), &v(100, false, 6, 2)), Decision::Emit);
        assert_eq!(decide(Some(&stored), &v(100, false, 4, 2)), Decision::Drop);
        // 3. same content: nothing emitted (duplicate delivery / no-op save)
        assert_eq!(decide(Some(&stored), &v(100, false, 5, 1)), Decision::Drop);
        assert_eq!(
            decide(Some(&stored), &v(200, false, 7, 1)),
            Decision::Absorb
        );
        // 4. a delete is emitted; an upsert not after it does not resurrect
        let deleted = v(150, true, 8, 0);
        assert_eq!(decide(Some(&stored), &deleted), Decision::Emit);
        assert_eq!(decide(Some(&deleted), &v(150, false, 9, 3)), Decision::Drop);
        assert_eq!(decide(Some(&deleted), &v(149, false, 9, 3)), Decision::Drop);
        assert_eq!(decide(Some(&deleted), &v(151, false, 9, 3)), Decision::Emit);
        assert_eq!(
            decide(Some(&deleted), &v(160, true, 9, 0)),
            Decision::Absorb
        );
        // first sight of a key always emits (a delete of an unknown record is a tombstone)
        assert_eq!(decide(None, &deleted), Decision::Emit);
    }

    /// Runs a sequence through the rule; returns final state and emitted versions.
    fn run(events: &[Version]) -> (Option<Version>, Vec<Version>) {
        let mut state: Option<Version> = None;
        let mut emitted = Vec::new();
        for e in events {
            match decide(state.as_ref(), e) {
                Decision::Emit => {
                    emitted.push(*e);
                    state = Some(*e);
                }
                Decision::Absorb => state = Some(*e),
                Decision::Drop => {}
            }
        }
        (state, emitted)
    }

    fn versions() -> impl Strategy<Value = Vec<Version>> {
        // distinct raw offsets (each raw event has its own position); few times and
        // contents so that ties and equal contents are common.
        prop::collection::vec((0i64..4, any::<bool>(), 0u8..3), 1..8).prop_map(|vs| {
            vs.into_iter()
                .enumerate()
                .map(|(i, (t, d, c))| v(t, d, i as i64, c))
                .collect()
        })
    }

    /// Versions from a raw log re-standardized by several mappings: every raw event is
    /// read by mapping 1 (live) and possibly again by mappings 2 and 3 (replays, lagging
    /// instances); a mapping may change the content of an event (or not).
    fn versions_with_mappings() -> impl Strategy<Value = Vec<Version>> {
        prop::collection::vec(
            (
                0i64..4,
                any::<bool>(),
                0u8..3,
                prop::collection::vec((2u32..4, 0u8..3), 0..3),
            ),
            1..7,
        )
        .prop_map(|events| {
            let mut out = Vec::new();
            for (i, (t, d, c, readings)) in events.into_iter().enumerate() {
                out.push(vm(t, d, i as i64, c, 1));
                // a mapping is deterministic: one content per (raw event, mapping)
                let readings: std::collections::BTreeMap<u32, u8> = readings.into_iter().collect();
                for (m, c2) in readings {
                    out.push(vm(t, d, i as i64, c2, m));
                }
            }
            out
        })
    }

    proptest! {
        /// Rule 5 with rule 6: any interleaving of live events and of replays through
        /// newer (or older) mappings ends in the same state — the greatest remote version
        /// as read by the newest mapping — and an older mapping's output is never emitted
        /// after a newer mapping's output of the same remote version.
        #[test]
        fn mapping_interleavings_converge(
            base in versions_with_mappings(),
            order in prop::collection::vec(any::<prop::sample::Index>(), 1..24),
        ) {
            let mut shuffled = base.clone();
            for (k, i) in order.iter().enumerate() {
                let a = k % shuffled.len();
                let b = i.index(shuffled.len());
                shuffled.swap(a, b);
            }
            let max = base.iter().max_by_key(|v| v.order_key()).copied();
            for s in [&base, &shuffled] {
                let (state, emitted) = run(s);
                prop_assert_eq!(state, max);
                for w in emitted.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    prop_assert!(
                        !(b.updated_at_nanos == a.updated_at_nanos
                            && b.deleted == a.deleted
                            && b.mapping_version < a.mapping_version),
                        "older mapping emitted after newer: {:?} then {:?}", a, b
                    );
                }
                // the emitted content ends with the final state's content
                if let (Some(last), Some(st)) = (emitted.last(), state) {
                    prop_assert!(last.same_content(&st));
                }
            }
        }

        /// Any interleaving and duplication of a set of versions ends in the same state,
        /// and each distinct version is emitted at most once.
        #[test]
        fn any_interleaving_and_duplication_converges(
            base in versions(),
            order in prop::collection::vec(any::<prop::sample::Index>(), 1..24),
        ) {
            let (reference, _) = run(&base);
            // a delivery sequence: every version at least once, plus duplicates, in any order
            let mut seq: Vec<Version> = base.clone();
            seq.extend(order.iter().map(|i| base[i.index(base.len())]));
            let mut shuffled = seq.clone();
            for (k, i) in order.iter().enumerate() {
                let a = k % shuffled.len();
                let b = i.index(shuffled.len());
                shuffled.swap(a, b);
            }
            for s in [&seq, &shuffled] {
                let (state, emitted) = run(s);
                prop_assert_eq!(state, reference);
                let mut seen = std::collections::HashSet::new();
                for e in &emitted {
                    prop_assert!(seen.insert((e.raw_partition, e.raw_offset)), "emitted twice: {:?}", e);
                }
                // the final state is the greatest version
                let max = base.iter().max_by_key(|v| v.order_key()).copied();
                prop_assert_eq!(state, max);
            }
        }
    }
}
