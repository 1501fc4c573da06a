//! The forwarder's durable state in RocksDB (through `ingot-store`).
//!
//! Column families and keys (`\0` separates parts; record keys and endpoint ids never
//! contain it; `seq` is a big-endian u64 allocated in increasing order):
//! - `offsets`: `<topic>\0<partition>` → next normalized offset to consume;
//! - `seen`: record key → `1` (the forwarder has seen a version of it, so the next one is
//!   `updated`) or `0` (its last version was a tombstone: the next one is `created`),
//!   then the 16-byte digest of that version ([`crate::event::Change::digest`]): the same
//!   version re-emitted at a later offset (at-least-once) is not forwarded again;
//! - `created`: `<record key>\0<offset>` → `` (the versions that were `created` events, so a
//!   replay gives them the same type);
//! - `deliveries`: `<endpoint>\0<!seq>` → [`Delivery`] JSON (inverted seq: newest first);
//! - `bodies`: `<endpoint>\0<seq>` → the exact body bytes, while the delivery is pending;
//! - `queue`: `<endpoint>\0<record key>\0<seq>` → `` for every pending delivery: the head
//!   of a `(endpoint, record key)` prefix is the only one that may be attempted;
//! - `health`: endpoint → first failure (ms since epoch) of its current failure streak;
//! - `meta`: `next_seq` → u64.
//!
//! Invariant: a delivery's `deliveries`, `bodies` and `queue` entries, the consumed offsets
//! and the `seen`/`created` markers of the records that produced it are written in one
//! atomic batch, so a crash never loses a job nor creates it twice.

use ingot_store::{Batch, Store};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub(crate) const OFFSETS: &str = "offsets";
pub(crate) const SEEN: &str = "seen";
pub(crate) const CREATED: &str = "created";
pub(crate) const DELIVERIES: &str = "deliveries";
pub(crate) const BODIES: &str = "bodies";
pub(crate) const QUEUE: &str = "queue";
pub(crate) const HEALTH: &str = "health";
pub(crate) const META: &str = "meta";
const CFS: &[&str] = &[
    OFFSETS, SEEN, CREATED, DELIVERIES, BODIES, QUEUE, HEALTH, META,
];
const NEXT_SEQ: &[u8] = b"next_seq";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its turn or its next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up after the retry schedule.
    Failed,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One HTTP attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// RFC 3339.
    pub at: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The first bytes of the response body (lossy UTF-8), if any.
    #[serde(default)]
    pub response: Option<String>,
}

/// At most this many attempts are kept per delivery (the latest).
pub(crate) const MAX_ATTEMPTS_KEPT: usize = 20;

/// One message to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub seq: u64,
    pub endpoint_id: String,
    /// `webhook-id`: the same for a change on every retry and replay.
    pub message_id: String,
    pub event_type: String,
    pub record_key: String,
    pub record_id: String,
    /// The normalized offset of the change.
    pub version: i64,
    pub status: DeliveryStatus,
    /// Failed attempts counted against the retry schedule.
    pub failures: u32,
    pub attempts: Vec<Attempt>,
    /// Not before this time (ms since epoch) is the next attempt made.
    pub next_attempt_ms: i64,
    pub created_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// RFC 3339 time of the change (`modified_at`), for lag figures.
    pub changed_at: String,
    #[serde(default)]
    pub replay: bool,
}

/// The state store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct DeliveryStore {
    pub store: Store,
    /// Next sequence number; held while a batch with new deliveries is written.
    seq: Arc<Mutex<u64>>,
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

pub(crate) fn delivery_key(ep: &str, seq: u64) -> Vec<u8> {
    join(&[ep.as_bytes(), &(!seq).to_be_bytes()])
}

pub(crate) fn body_key(ep: &str, seq: u64) -> Vec<u8> {
    join(&[ep.as_bytes(), &seq.to_be_bytes()])
}

pub(crate) fn queue_prefix(ep: &str, rk: &str) -> Vec<u8> {
    let mut k = join(&[ep.as_bytes(), rk.as_bytes()]);
    k.push(0);
    k
}

pub(crate) fn queue_key(ep: &str, rk: &str, seq: u64) -> Vec<u8> {
    let mut k = queue_prefix(ep, rk);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn created_key(rk: &str, offset: i64) -> Vec<u8> {
    join(&[rk.as_bytes(), &offset.to_be_bytes()])
}

fn endpoint_prefix(ep: &str) -> Vec<u8> {
    let mut k = ep.as_bytes().to_vec();
    k.push(0);
    k
}

/// Pending deliveries per endpoint.
pub(crate) type PendingCounts = Vec<(String, u64)>;

/// A pending delivery at the head of its queue, as found at start-up.
pub(crate) struct Head {
    pub endpoint_id: String,
    pub record_key: String,
    pub seq: u64,
}

impl DeliveryStore {
    pub fn open(dir: &Path) -> Result<Self, ingot_store::StoreError> {
        let store = Store::open(dir, CFS)?;
        let next = store
            .get(META, NEXT_SEQ)?
            .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(1);
        Ok(DeliveryStore {
            store,
            seq: Arc::new(Mutex::new(next)),
        })
    }

    /// Builds a batch with `f`, which allocates sequence numbers with the given closure,
    /// and writes it atomically (with the new `next_seq`).
    pub fn write_with_seqs<T>(
        &self,
        f: impl FnOnce(&mut dyn FnMut() -> u64, &mut Batch) -> Result<T, ingot_store::StoreError>,
    ) -> Result<T, ingot_store::StoreError> {
        let mut guard = self.seq.lock().expect("seq lock");
        let mut next = *guard;
        let mut batch = Batch::new();
        let out = {
            let mut alloc = || {
                let s = next;
                next += 1;
                s
            };
            f(&mut alloc, &mut batch)?
        };
        if next != *guard {
            batch.put(META, NEXT_SEQ.to_vec(), next.to_be_bytes().to_vec());
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
        }
        *guard = next;
        Ok(out)
    }

    /// Adds a new pending delivery (its log entry, body and queue entry) to a batch.
    pub fn put_new(batch: &mut Batch, d: &Delivery, body: &[u8]) {
        batch.put(
            DELIVERIES,
            delivery_key(&d.endpoint_id, d.seq),
            serde_json::to_vec(d).expect("delivery serializes"),
        );
        batch.put(BODIES, body_key(&d.endpoint_id, d.seq), body.to_vec());
        batch.put(
            QUEUE,
            queue_key(&d.endpoint_id, &d.record_key, d.seq),
            Vec::new(),
        );
    }

    /// Stores an updated delivery; a finished one leaves its queue and loses its body.
    pub fn put_updated(batch: &mut Batch, d: &Delivery) {
        batch.put(
            DELIVERIES,
            delivery_key(&d.endpoint_id, d.seq),
            serde_json::to_vec(d).expect("delivery serializes"),
        );
        if d.status != DeliveryStatus::Pending {
            batch.delete(BODIES, body_key(&d.endpoint_id, d.seq));
            batch.delete(QUEUE, queue_key(&d.endpoint_id, &d.record_key, d.seq));
        }
    }

    pub fn delivery(
        &self,
        ep: &str,
        seq: u64,
    ) -> Result<Option<Delivery>, ingot_store::StoreError> {
        Ok(self
            .store
            .get(DELIVERIES, &delivery_key(ep, seq))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    pub fn body(&self, ep: &str, seq: u64) -> Result<Option<Vec<u8>>, ingot_store::StoreError> {
        self.store.get(BODIES, &body_key(ep, seq))
    }

    /// The pending delivery at the head of `(ep, rk)`'s queue.
    pub fn queue_head(&self, ep: &str, rk: &str) -> Result<Option<u64>, ingot_store::StoreError> {
        let prefix = queue_prefix(ep, rk);
        let mut head = None;
        self.store.scan_from(QUEUE, &prefix, |k, _| {
            if k.starts_with(&prefix) && k.len() == prefix.len() + 8 {
                head = k[prefix.len()..].try_into().ok().map(u64::from_be_bytes);
            }
            false
        })?;
        Ok(head)
    }

    /// The head of every queue, and the number of pending deliveries per endpoint.
    pub fn heads(&self) -> Result<(Vec<Head>, PendingCounts), ingot_store::StoreError> {
        let mut heads: Vec<Head> = Vec::new();
        let mut counts: Vec<(String, u64)> = Vec::new();
        self.store.scan_from(QUEUE, b"", |k, _| {
            if k.len() < 10 {
                return true;
            }
            let (rest, seq) = k.split_at(k.len() - 8);
            let seq = u64::from_be_bytes(seq.try_into().expect("8 bytes"));
            let rest = &rest[..rest.len() - 1];
            let Some(pos) = rest.iter().position(|b| *b == 0) else {
                return true;
            };
            let ep = String::from_utf8_lossy(&rest[..pos]).to_string();
            let rk = String::from_utf8_lossy(&rest[pos + 1..]).to_string();
            match counts.last_mut() {
                Some((e, n)) if *e == ep => *n += 1,
                _ => counts.push((ep.clone(), 1)),
            }
            let new_queue = heads
                .last()
                .is_none_or(|h| h.endpoint_id != ep || h.record_key != rk);
            if new_queue {
                heads.push(Head {
                    endpoint_id: ep,
                    record_key: rk,
                    seq,
                });
            }
            true
        })?;
        Ok((heads, counts))
    }

    /// Deliveries of an endpoint, newest first, starting after `before` (a seq), keeping
    /// those `keep` accepts, at most `limit`, looking at no more than `scan_limit` entries.
    /// Returns the page and whether more may follow.
    pub fn list(
        &self,
        ep: &str,
        before: Option<u64>,
        limit: usize,
        scan_limit: usize,
        keep: impl Fn(&Delivery) -> bool,
    ) -> Result<(Vec<Delivery>, Option<u64>), ingot_store::StoreError> {
        let prefix = endpoint_prefix(ep);
        let start = match before {
            Some(s) if s > 0 => delivery_key(ep, s - 1),
            Some(_) => return Ok((Vec::new(), None)),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        let mut scanned = 0;
        let mut last_seen = None;
        let mut more = false;
        self.store.scan_from(DELIVERIES, &start, |k, v| {
            if !k.starts_with(&prefix) {
                return false;
            }
            if out.len() == limit || scanned == scan_limit {
                more = true;
                return false;
            }
            scanned += 1;
            if let Ok(d) = serde_json::from_slice::<Delivery>(v) {
                last_seen = Some(d.seq);
                if keep(&d) {
                    out.push(d);
                }
            }
            true
        })?;
        Ok((out, if more { last_seen } else { None }))
    }

    /// Deletes everything kept for an endpoint (after it was deleted).
    pub fn purge_endpoint(&self, ep: &str) -> Result<usize, ingot_store::StoreError> {
        let prefix = endpoint_prefix(ep);
        let mut batch = Batch::new();
        let mut n = 0;
        for cf in [DELIVERIES, BODIES, QUEUE] {
            for (k, _) in self.store.scan_prefix(cf, &prefix)? {
                if cf == QUEUE {
                    n += 1;
                }
                batch.delete(cf, k);
            }
        }
        batch.delete(HEALTH, ep.as_bytes().to_vec());
        self.store.write(batch)?;
        Ok(n)
    }

    /// Removes finished deliveries that finished before `cutoff` (RFC 3339 compare on
    /// parsed times). Returns how many.
    pub fn prune(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, ingot_store::StoreError> {
        let mut batch = Batch::new();
        let mut n = 0;
        self.store.scan_from(DELIVERIES, b"", |k, v| {
            if let Ok(d) = serde_json::from_slice::<Delivery>(v) {
                let old = d
                    .finished_at
                    .as_deref()
                    .and_then(|t| ingot_model::parse_time(t, false).ok())
                    .is_some_and(|t| t < cutoff);
                if d.status != DeliveryStatus::Pending && old {
                    batch.delete(DELIVERIES, k.to_vec());
                    n += 1;
                }
            }
            n < 100_000
        })?;
        if !batch.is_empty() {
            self.store.write(batch)?;
        }
        Ok(n)
    }

    pub fn failing_since(&self, ep: &str) -> Result<Option<i64>, ingot_store::StoreError> {
        Ok(self
            .store
            .get(HEALTH, ep.as_bytes())?
            .and_then(|b| b.try_into().ok().map(i64::from_be_bytes)))
    }

    pub fn clear_health(&self, ep: &str) -> Result<(), ingot_store::StoreError> {
        let mut b = Batch::new();
        b.delete(HEALTH, ep.as_bytes().to_vec());
        self.store.write(b)
    }

    pub fn is_created(&self, rk: &str, offset: i64) -> Result<bool, ingot_store::StoreError> {
        Ok(self.store.get(CREATED, &created_key(rk, offset))?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(ep: &str, rk: &str, seq: u64) -> Delivery {
        Delivery {
            seq,
            endpoint_id: ep.into(),
            message_id: format!("msg_{seq}"),
            event_type: "order.created".into(),
            record_key: rk.into(),
            record_id: "id".into(),
            version: seq as i64,
            status: DeliveryStatus::Pending,
            failures: 0,
            attempts: vec![],
            next_attempt_ms: 0,
            created_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            changed_at: "2026-01-01T00:00:00Z".into(),
            replay: false,
        }
    }

    #[test]
    fn queues_have_one_head_per_record_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = DeliveryStore::open(dir.path()).unwrap();
            s.write_with_seqs(|alloc, b| {
                for (ep, rk) in [
                    ("ep_a", "c/order/1"),
                    ("ep_a", "c/order/1"),
                    ("ep_a", "c/order/2"),
                    ("ep_b", "c/order/1"),
                ] {
                    let d = delivery(ep, rk, alloc());
                    DeliveryStore::put_new(b, &d, b"{}");
                }
                Ok(())
            })
            .unwrap();
        }
        let s = DeliveryStore::open(dir.path()).unwrap();
        let (heads, counts) = s.heads().unwrap();
        let hs: Vec<(String, String, u64)> = heads
            .iter()
            .map(|h| (h.endpoint_id.clone(), h.record_key.clone(), h.seq))
            .collect();
        let t = |e: &str, r: &str, s: u64| (e.to_string(), r.to_string(), s);
        assert_eq!(
            hs,
            [
                t("ep_a", "c/order/1", 1),
                t("ep_a", "c/order/2", 3),
                t("ep_b", "c/order/1", 4)
            ]
        );
        assert_eq!(counts, [("ep_a".to_string(), 3), ("ep_b".to_string(), 1)]);
        // finishing the head makes the next one the head; sequence numbers continue
        let mut d = s.delivery("ep_a", 1).unwrap().unwrap();
        d.status = DeliveryStatus::Delivered;
        let mut b = Batch::new();
        DeliveryStore::put_updated(&mut b, &d);
        s.store.write(b).unwrap();
        assert_eq!(s.queue_head("ep_a", "c/order/1").unwrap(), Some(2));
        assert_eq!(s.body("ep_a", 1).unwrap(), None);
        assert_eq!(s.body("ep_a", 2).unwrap().as_deref(), Some(&b"{}"[..]));
        let next = s.write_with_seqs(|alloc, _| Ok(alloc())).unwrap();
        assert_eq!(next, 5);
        // the log lists newest first and pages
        let (page, more) = s.list("ep_a", None, 2, 100, |_| true).unwrap();
        assert_eq!(page.iter().map(|d| d.seq).collect::<Vec<_>>(), [3, 2]);
        let (page, more2) = s.list("ep_a", more, 2, 100, |_| true).unwrap();
        assert_eq!(page.iter().map(|d| d.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(more2, None);
        assert_eq!(s.purge_endpoint("ep_a").unwrap(), 2);
        assert!(s
            .list("ep_a", None, 10, 100, |_| true)
            .unwrap()
            .0
            .is_empty());
        assert_eq!(s.heads().unwrap().1, [("ep_b".to_string(), 1)]);
    }
}
