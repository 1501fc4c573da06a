//! The delivery engine: the consumer that turns normalized records into durable delivery
//! jobs, and the scheduler that attempts them in order per (endpoint, record key).

use crate::config::ForwarderConfig;
use crate::endpoints::{Endpoint, Endpoints};
use crate::event::{change_of, message_id, Change, HEADER_MODIFIED_AT, HEADER_TENANT};
use crate::http::{AttemptResult, Sender};
use crate::store::{
    created_key, queue_key, Attempt, Delivery, DeliveryStatus, DeliveryStore, CREATED, HEALTH,
    MAX_ATTEMPTS_KEPT, OFFSETS, QUEUE, SEEN,
};
use crate::ForwarderError;
use chrono::{DateTime, Utc};
use ingot_kafka::{
    AvroCodec, Consumer, KafkaError, KafkaSettings, Message, Offset, Producer, Reader, SchemaError,
    StreamConsumer, TopicPartitionList,
};
use ingot_model::auth::Auth;
use ingot_model::dlq;
use ingot_model::Model;
use ingot_store::{encode_offset, offset_key, Batch};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Everything the consumer, the scheduler, the attempts and the API share.
pub(crate) struct Shared {
    pub cfg: ForwarderConfig,
    pub endpoints: Endpoints,
    pub store: DeliveryStore,
    pub sender: Sender,
    pub kafka: KafkaSettings,
    pub codec: AvroCodec,
    /// Dead letters (to [`dlq::TOPIC`]).
    pub producer: Producer,
    pub auth: Auth,
    pub sched: mpsc::UnboundedSender<SchedMsg>,
    pub labels: Labels,
    /// Next offset per normalized partition whose jobs are stored.
    pub offsets: RwLock<BTreeMap<(String, i32), i64>>,
}

/// Runs blocking store work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ingot_store::StoreError> + Send + 'static,
) -> Result<T, ForwarderError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(ForwarderError::Task(e.to_string())),
    }
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Bounded metric labels: the first `n` endpoints seen get their id, the rest `other`.
pub(crate) struct Labels {
    n: usize,
    known: Mutex<Vec<String>>,
}

impl Labels {
    pub fn new(n: usize) -> Self {
        Labels {
            n,
            known: Mutex::new(Vec::new()),
        }
    }

    pub fn label(&self, ep: &str) -> String {
        let mut k = self.known.lock().expect("labels lock");
        if k.iter().any(|x| x == ep) {
            return ep.to_string();
        }
        if k.len() < self.n {
            k.push(ep.to_string());
            return ep.to_string();
        }
        "other".to_string()
    }
}

// ---------------------------------------------------------------------------------------
// consumer

/// Consumes the normalized topics until `shutdown`; jobs are stored, then announced to the
/// scheduler, then the offsets are committed to the consumer group.
pub(crate) async fn consume(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ForwarderError> {
    let consumer: StreamConsumer =
        ingot_kafka::create_consumer(&shared.kafka, &shared.cfg.group_id)?;
    let stored = shared.offsets.read().expect("offsets lock").clone();
    let mut tpl = TopicPartitionList::new();
    for model in Model::ALL {
        let topic = model.normalized_topic();
        let partitions = shared.kafka.partitions(&topic)?;
        let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
        if partitions
            .iter()
            .any(|p| !stored.contains_key(&(topic.clone(), *p)))
        {
            // no local state for some: continue from the group's committed offsets (a
            // lost state directory), else from the beginning
            match shared
                .kafka
                .committed_offsets(&shared.cfg.group_id, &topic)
                .await
            {
                Ok(c) => committed.extend(c.into_iter().filter_map(|(p, o)| Some((p, o?)))),
                Err(e) => {
                    tracing::warn!(component = "forwarder", %topic, error = %e, "committed offsets unavailable, reading from the beginning")
                }
            }
        }
        for p in partitions {
            let off = match stored.get(&(topic.clone(), p)).or(committed.get(&p)) {
                Some(o) if *o >= 0 => Offset::Offset(*o),
                _ => Offset::Beginning,
            };
            tpl.add_partition_offset(&topic, p, off)
                .map_err(KafkaError::from)?;
        }
    }
    consumer.assign(&tpl).map_err(KafkaError::from)?;
    tracing::info!(
        component = "forwarder",
        partitions = tpl.count(),
        "consuming normalized topics"
    );
    loop {
        let first = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            m = consumer.recv() => m,
        };
        let mut batch = Vec::new();
        match first {
            Ok(m) => batch.push(Message::from_borrowed(&m)),
            Err(ingot_kafka::RdKafkaError::PartitionEOF(_)) => continue,
            Err(e) => {
                tracing::warn!(component = "forwarder", error = %e, "consume error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        // only what the client has already fetched: no waiting for more
        let filled = ingot_kafka::fill_batch(
            &consumer,
            &mut batch,
            shared.cfg.max_batch,
            Duration::ZERO,
            |_| {},
        )
        .await;
        if let Some(e) = filled.error {
            tracing::warn!(component = "forwarder", error = %e, "consume error");
        }
        let positions = handle_batch(&shared, batch).await?;
        if !positions.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for ((t, p), o) in &positions {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                    .map_err(KafkaError::from)?;
            }
            // the jobs are durable already; a lost commit only costs a re-read that the
            // stored offsets skip
            if let Err(e) = consumer.commit(&tpl, ingot_kafka::CommitMode::Async) {
                tracing::debug!(component = "forwarder", error = %e, "offset commit failed");
            }
        }
    }
}

/// Decodes a normalized value. A registry outage (transient) is retried a few times and
/// then returned, so the batch is read again later; any other error is the value's own.
async fn decode(codec: &AvroCodec, bytes: &[u8]) -> Result<serde_json::Value, SchemaError> {
    let mut wait = Duration::from_millis(250);
    let mut attempt = 0;
    loop {
        match codec.decode_record(bytes).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < 4 => {
                tracing::warn!(component = "forwarder", error = %e, "schema registry unavailable, retrying");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
        attempt += 1;
    }
}

/// Produces each normalized message the forwarder can never use (its original key and
/// bytes) to [`dlq::TOPIC`] with its reason, source and stage, and waits for the acknowledgements.
async fn dead_letter(shared: &Shared, dead: &[(Message, String)]) -> Result<(), ForwarderError> {
    for (m, reason) in dead {
        let source = dlq::source(&m.topic, m.partition, m.offset);
        tracing::warn!(component = "forwarder", %source, %reason, "normalized record dead-lettered");
        let headers = dlq::headers(dlq::Stage::Forwarder, reason, &source);
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, &v[..])).collect();
        shared
            .producer
            .send(
                dlq::TOPIC,
                m.key.as_deref().unwrap_or_default(),
                Some(m.value.as_deref().unwrap_or_default()),
                &headers,
            )
            .await?;
        metrics::counter!("ingot_forwarder_dead_lettered_total").increment(1);
    }
    Ok(())
}

/// Stores the jobs of one batch; returns the new next offsets. A record it can never use
/// goes to the dead-letter topic (acknowledged before the offsets that pass it are stored).
async fn handle_batch(
    shared: &Arc<Shared>,
    batch: Vec<Message>,
) -> Result<BTreeMap<(String, i32), i64>, ForwarderError> {
    let next = shared.offsets.read().expect("offsets lock").clone();
    let mut positions: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut changes = Vec::new();
    let mut dead = Vec::new();
    let received = batch.len();
    for m in batch {
        let pos = (m.topic.clone(), m.partition);
        if next.get(&pos).is_some_and(|n| m.offset < *n) {
            continue; // already stored (a re-delivery)
        }
        let e = positions.entry(pos).or_insert(m.offset + 1);
        *e = (*e).max(m.offset + 1);
        let decoded = match &m.value {
            None => None,
            Some(b) => match decode(&shared.codec, b).await {
                Ok(v) => Some(v),
                // the value may be fine: nothing of this batch is stored, it is read again
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    metrics::counter!("ingot_forwarder_dropped_total", "reason" => "undecodable")
                        .increment(1);
                    dead.push((m, format!("undecodable normalized value: {e}")));
                    continue;
                }
            },
        };
        match change_of(&m, decoded) {
            Ok(c) => changes.push(c),
            Err(u) => {
                metrics::counter!("ingot_forwarder_dropped_total", "reason" => u.reason())
                    .increment(1);
                dead.push((m, format!("unusable normalized record: {u}")));
            }
        }
    }
    dead_letter(shared, &dead).await?;
    metrics::counter!("ingot_forwarder_received_total").increment(received as u64);
    if positions.is_empty() {
        return Ok(positions);
    }
    let endpoints: Vec<Endpoint> = shared
        .endpoints
        .all()
        .into_iter()
        .filter(|e| e.enabled())
        .collect();
    let store = shared.store.clone();
    let first_delay = shared.cfg.delay_before(0).unwrap_or_default();
    let pos = positions.clone();
    let jobs =
        blocking(move || store_jobs(&store, &changes, &endpoints, &pos, first_delay)).await?;
    {
        let mut o = shared.offsets.write().expect("offsets lock");
        for (k, v) in &positions {
            o.insert(k.clone(), *v);
        }
    }
    metrics::counter!("ingot_forwarder_enqueued_total").increment(jobs.len() as u64);
    for (ep, rk) in jobs {
        let _ = shared.sched.send(SchedMsg::New { ep, rk });
    }
    Ok(positions)
}

fn new_delivery(
    seq: u64,
    ep: &Endpoint,
    c: &Change,
    event_type: &str,
    first_delay: Duration,
    replay: bool,
) -> Delivery {
    let now = Utc::now();
    Delivery {
        seq,
        endpoint_id: ep.id.clone(),
        message_id: message_id(&c.record_key, c.version),
        event_type: event_type.to_string(),
        record_key: c.record_key.clone(),
        record_id: c.record_id.clone(),
        version: c.version,
        status: DeliveryStatus::Pending,
        failures: 0,
        attempts: Vec::new(),
        next_attempt_ms: now.timestamp_millis() + first_delay.as_millis() as i64,
        created_at: rfc3339(now),
        finished_at: None,
        changed_at: c.changed_at.clone(),
        replay,
    }
}

/// One atomic batch: the seen/created markers, a delivery per interested endpoint, and
/// the consumed offsets. Returns the (endpoint, record key) of every new job.
fn store_jobs(
    store: &DeliveryStore,
    changes: &[Change],
    endpoints: &[Endpoint],
    positions: &BTreeMap<(String, i32), i64>,
    first_delay: Duration,
) -> Result<Vec<(String, String)>, ingot_store::StoreError> {
    store.write_with_seqs(|alloc, batch| {
        // record key → its `seen` marker: `[1]` (exists) or `[0]` (deleted), then the
        // digest of the last version forwarded (markers from before digests have none)
        let mut overlay: HashMap<&str, Vec<u8>> = HashMap::new();
        let mut jobs = Vec::new();
        for c in changes {
            let prev = match overlay.get(c.record_key.as_str()) {
                Some(v) => Some(v.clone()),
                None => store.store.get(SEEN, c.record_key.as_bytes())?,
            };
            let exists = prev.as_ref().is_some_and(|b| b.first() == Some(&1));
            let mut marker = vec![u8::from(!c.deleted)];
            marker.extend_from_slice(&c.digest);
            if prev.as_ref() == Some(&marker) {
                // the same version again (an at-least-once re-emission at a new offset):
                // already forwarded, not a change
                metrics::counter!("ingot_forwarder_duplicates_total").increment(1);
                continue;
            }
            let created = !c.deleted && !exists;
            batch.put(SEEN, c.record_key.as_bytes().to_vec(), marker.clone());
            overlay.insert(&c.record_key, marker);
            if created {
                batch.put(CREATED, created_key(&c.record_key, c.version), Vec::new());
            }
            let event_type = c.event_type(created);
            let mut body = None;
            for ep in endpoints {
                if !ep.wants(&c.tenant_id, &c.connection_id, &event_type) {
                    continue;
                }
                let body = body.get_or_insert_with(|| c.body(&event_type));
                let d = new_delivery(alloc(), ep, c, &event_type, first_delay, false);
                DeliveryStore::put_new(batch, &d, body);
                jobs.push((ep.id.clone(), c.record_key.clone()));
            }
        }
        for ((t, p), o) in positions {
            batch.put(OFFSETS, offset_key(t, *p), encode_offset(*o));
        }
        Ok(jobs)
    })
}

// ---------------------------------------------------------------------------------------
// replay and test

/// Re-sends the changes whose `modified_at` is in `[since, until)`, read from the
/// normalized topics (what compaction left of them), with their original ids and bodies.
/// Only offsets the consumer has already stored are replayed. Returns how many.
pub(crate) async fn replay(
    shared: &Arc<Shared>,
    endpoint: &Endpoint,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<usize, ForwarderError> {
    let consumed = shared.offsets.read().expect("offsets lock").clone();
    // a normalized record is produced after the raw event it came from was received, so
    // its broker timestamp is at or after its `modified_at`: nothing before the offset
    // of `since` can be in range (found with the broker's timestamp index where it has
    // one, less a margin for clocks of different machines; else every partition is read
    // from its start)
    const CLOCK_MARGIN_MS: i64 = 5 * 60 * 1000;
    let mut seek: HashMap<(String, i32), i64> = HashMap::new();
    if shared.kafka.capabilities.timestamp_lookup {
        let topics: BTreeSet<&String> = consumed.keys().map(|(t, _)| t).collect();
        for t in topics {
            for (p, o) in shared
                .kafka
                .offsets_for_time(t, since.timestamp_millis() - CLOCK_MARGIN_MS)
                .await?
            {
                seek.insert((t.clone(), p), o);
            }
        }
    }
    let starts: Vec<(String, i32, i64)> = consumed
        .iter()
        .filter_map(|((t, p), n)| {
            let from = seek.get(&(t.clone(), *p)).copied().unwrap_or(0).max(0);
            (from < *n).then(|| (t.clone(), *p, from))
        })
        .collect();
    // written in chunks, so a long range holds a bounded number of changes in memory
    // and never holds the store's sequence lock for long
    const CHUNK: usize = 1000;
    let mut changes = Vec::new();
    let mut last_digest: HashMap<String, [u8; 16]> = HashMap::new();
    let mut n = 0;
    if !starts.is_empty() {
        let mut reader = Reader::new(&shared.kafka, &starts)?;
        while let Some(m) = reader.next().await? {
            if consumed
                .get(&(m.topic.clone(), m.partition))
                .is_none_or(|n| m.offset >= *n)
            {
                continue;
            }
            let Some(at) = m
                .header(HEADER_MODIFIED_AT)
                .and_then(|t| ingot_model::parse_time(t, false).ok())
            else {
                continue;
            };
            if at < since
                || at >= until
                || m.header(HEADER_TENANT) != Some(endpoint.tenant_id.as_str())
            {
                continue;
            }
            let decoded = match &m.value {
                None => None,
                Some(b) => match decode(&shared.codec, b).await {
                    Ok(v) => Some(v),
                    Err(e) if e.is_transient() => return Err(e.into()),
                    Err(_) => continue, // dead-lettered when it was consumed
                },
            };
            if let Ok(c) = change_of(&m, decoded) {
                // a re-emission of the version just read is not a change (as live)
                if last_digest.insert(c.record_key.clone(), c.digest) != Some(c.digest) {
                    changes.push(c);
                }
            }
            if changes.len() >= CHUNK {
                n += enqueue_replayed(shared, endpoint, std::mem::take(&mut changes)).await?;
            }
        }
    }
    n += enqueue_replayed(shared, endpoint, changes).await?;
    Ok(n)
}

/// Stores one chunk of replayed changes as deliveries to `endpoint` (with their original
/// ids and types) and hands them to the scheduler; returns how many.
async fn enqueue_replayed(
    shared: &Arc<Shared>,
    endpoint: &Endpoint,
    changes: Vec<Change>,
) -> Result<usize, ForwarderError> {
    if changes.is_empty() {
        return Ok(0);
    }
    let store = shared.store.clone();
    let ep = endpoint.clone();
    let first_delay = shared.cfg.delay_before(0).unwrap_or_default();
    let jobs = blocking(move || {
        store.write_with_seqs(|alloc, batch| {
            let mut jobs = Vec::new();
            for c in &changes {
                let created = !c.deleted && store.is_created(&c.record_key, c.version)?;
                let event_type = c.event_type(created);
                if !ep.wants(&c.tenant_id, &c.connection_id, &event_type) {
                    continue;
                }
                let d = new_delivery(alloc(), &ep, c, &event_type, first_delay, true);
                DeliveryStore::put_new(batch, &d, &c.body(&event_type));
                jobs.push((ep.id.clone(), c.record_key.clone()));
            }
            Ok(jobs)
        })
    })
    .await?;
    let n = jobs.len();
    for (ep, rk) in jobs {
        let _ = shared.sched.send(SchedMsg::New { ep, rk });
    }
    Ok(n)
}

/// Sends one signed `ping` event at once (not queued, not retried).
pub(crate) async fn send_test(
    shared: &Arc<Shared>,
    endpoint: &Endpoint,
) -> (String, AttemptResult) {
    let now = Utc::now();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "ping",
        "timestamp": rfc3339(now),
        "data": {"endpoint_id": endpoint.id, "message": "test event from ingot"},
    }))
    .expect("json serializes");
    let secrets = endpoint.active_secrets(now);
    let res = shared
        .sender
        .send(&endpoint.url, &id, &body, &secrets)
        .await;
    (id, res)
}

// ---------------------------------------------------------------------------------------
// scheduler

pub(crate) enum SchedMsg {
    /// `(ep, rk)` may have a new pending delivery.
    New { ep: String, rk: String },
    Done {
        ep: String,
        rk: String,
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Attempt again at this time (ms since epoch).
    Retry(i64),
    /// Delivered or given up: the next delivery of the queue may go.
    Finished,
    /// The endpoint is disabled: park until it is enabled again.
    Parked,
    /// The endpoint is gone.
    Orphan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Waiting,
    Ready,
    InFlight,
    Parked,
}

pub(crate) struct Scheduler {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<SchedMsg>,
    /// The head of each non-empty (endpoint, record key) queue.
    active: HashMap<(String, String), (u64, St)>,
    timers: BinaryHeap<Reverse<(i64, u64, String, String)>>,
    ready: BTreeMap<String, VecDeque<String>>,
    parked: HashMap<String, Vec<String>>,
    inflight: usize,
    inflight_ep: HashMap<String, usize>,
    backlog: HashMap<String, i64>,
    attempts: JoinSet<()>,
}

impl Scheduler {
    pub fn new(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<SchedMsg>) -> Self {
        Scheduler {
            shared,
            rx,
            active: HashMap::new(),
            timers: BinaryHeap::new(),
            ready: BTreeMap::new(),
            parked: HashMap::new(),
            inflight: 0,
            inflight_ep: HashMap::new(),
            backlog: HashMap::new(),
            attempts: JoinSet::new(),
        }
    }

    async fn schedule_head(&mut self, ep: &str, rk: &str, seq: u64) -> Result<(), ForwarderError> {
        let store = self.shared.store.clone();
        let e = ep.to_string();
        let d = blocking(move || store.delivery(&e, seq)).await?;
        let at = d.map(|d| d.next_attempt_ms).unwrap_or_else(now_ms);
        if at <= now_ms() {
            // due already: straight to the ready queue (no timer round trip)
            self.active
                .insert((ep.to_string(), rk.to_string()), (seq, St::Ready));
            self.ready
                .entry(ep.to_string())
                .or_default()
                .push_back(rk.to_string());
        } else {
            self.active
                .insert((ep.to_string(), rk.to_string()), (seq, St::Waiting));
            self.timers
                .push(Reverse((at, seq, ep.to_string(), rk.to_string())));
        }
        Ok(())
    }

    async fn advance(&mut self, ep: &str, rk: &str) -> Result<(), ForwarderError> {
        let store = self.shared.store.clone();
        let (e, r) = (ep.to_string(), rk.to_string());
        match blocking(move || store.queue_head(&e, &r)).await? {
            Some(seq) => self.schedule_head(ep, rk, seq).await,
            None => {
                self.active.remove(&(ep.to_string(), rk.to_string()));
                Ok(())
            }
        }
    }

    /// Loads the pending queues (before the consumer adds to them, so the backlog counts
    /// are exact).
    pub async fn restore(mut self) -> Result<Self, ForwarderError> {
        let store = self.shared.store.clone();
        let (heads, counts) = blocking(move || store.heads()).await?;
        for (ep, n) in counts {
            self.backlog.insert(ep, n as i64);
        }
        let n_heads = heads.len();
        for h in heads {
            self.schedule_head(&h.endpoint_id, &h.record_key, h.seq)
                .await?;
        }
        tracing::info!(
            component = "forwarder",
            queues = n_heads,
            "pending deliveries restored"
        );
        Ok(self)
    }

    /// Runs until `shutdown`; in-flight attempts then get `shutdown_grace_secs` and are
    /// abandoned after (they stay pending and are attempted again after a restart, with the
    /// same `webhook-id`).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ForwarderError> {
        let mut endpoint_changes = self.shared.endpoints.subscribe();
        self.on_endpoints().await?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            self.dispatch();
            let wait = self
                .timers
                .peek()
                .map(|Reverse((at, ..))| Duration::from_millis((*at - now_ms()).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.changed() => break,
                m = self.rx.recv() => match m {
                    Some(m) => self.on_msg(m).await?,
                    None => break,
                },
                r = endpoint_changes.changed() => {
                    if r.is_err() { break }
                    self.on_endpoints().await?;
                }
                _ = tokio::time::sleep(wait) => self.fire_timers(),
                _ = tick.tick() => {
                    ticks += 1;
                    self.gauges();
                    if ticks % 600 == 1 {
                        self.prune().await;
                    }
                }
                Some(_) = self.attempts.join_next(), if !self.attempts.is_empty() => {}
            }
        }
        // let attempts under way finish (and record their outcome) for a moment, so a
        // clean stop sends few duplicates; the rest stay pending and go again after a start
        let grace = crate::config::secs(self.shared.cfg.shutdown_grace_secs);
        let attempts = &mut self.attempts;
        let _ = tokio::time::timeout(grace, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        self.attempts.abort_all();
        while self.attempts.join_next().await.is_some() {}
        Ok(())
    }

    async fn prune(&self) {
        let store = self.shared.store.clone();
        let cutoff = Utc::now()
            - chrono::Duration::from_std(crate::config::secs(
                self.shared.cfg.delivery_log_retention_secs,
            ))
            .unwrap_or(chrono::Duration::days(7));
        match blocking(move || store.prune(cutoff)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(component = "forwarder", pruned = n, "delivery log pruned"),
            Err(e) => {
                tracing::warn!(component = "forwarder", error = %e, "delivery log prune failed")
            }
        }
    }

    fn gauges(&self) {
        let mut by_label: HashMap<String, i64> = HashMap::new();
        for (ep, n) in &self.backlog {
            *by_label.entry(self.shared.labels.label(ep)).or_default() += (*n).max(0);
        }
        for (label, n) in by_label {
            metrics::gauge!("ingot_forwarder_backlog", "endpoint" => label).set(n as f64);
        }
        metrics::gauge!("ingot_forwarder_in_flight").set(self.inflight as f64);
    }

    async fn on_msg(&mut self, m: SchedMsg) -> Result<(), ForwarderError> {
        match m {
            SchedMsg::New { ep, rk } => {
                *self.backlog.entry(ep.clone()).or_default() += 1;
                if !self.active.contains_key(&(ep.clone(), rk.clone())) {
                    self.advance(&ep, &rk).await?;
                }
            }
            SchedMsg::Done { ep, rk, outcome } => {
                self.inflight = self.inflight.saturating_sub(1);
                if let Some(n) = self.inflight_ep.get_mut(&ep) {
                    *n = n.saturating_sub(1);
                }
                let key = (ep.clone(), rk.clone());
                let Some((seq, _)) = self.active.get(&key).copied() else {
                    return Ok(());
                };
                match outcome {
                    Outcome::Retry(at) => {
                        self.active.insert(key, (seq, St::Waiting));
                        self.timers.push(Reverse((at, seq, ep, rk)));
                    }
                    Outcome::Finished => {
                        if let Some(n) = self.backlog.get_mut(&ep) {
                            *n -= 1;
                        }
                        self.advance(&ep, &rk).await?;
                    }
                    Outcome::Parked => {
                        self.active.insert(key, (seq, St::Parked));
                        self.parked.entry(ep).or_default().push(rk);
                    }
                    Outcome::Orphan => {
                        self.active.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_endpoints(&mut self) -> Result<(), ForwarderError> {
        let current: HashMap<String, Endpoint> = self
            .shared
            .endpoints
            .all()
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        // re-enabled endpoints: their parked queues go again
        let unpark: Vec<String> = self
            .parked
            .keys()
            .filter(|ep| current.get(*ep).is_some_and(|e| e.enabled()))
            .cloned()
            .collect();
        for ep in unpark {
            for rk in self.parked.remove(&ep).unwrap_or_default() {
                if let Some(st) = self.active.get_mut(&(ep.clone(), rk.clone())) {
                    st.1 = St::Ready;
                    self.ready.entry(ep.clone()).or_default().push_back(rk);
                }
            }
        }
        // deleted endpoints: drop their queues and log
        let known: HashSet<String> = self
            .active
            .keys()
            .map(|(e, _)| e.clone())
            .chain(self.backlog.keys().cloned())
            .collect();
        for ep in known.into_iter().filter(|e| !current.contains_key(e)) {
            self.active.retain(|(e, _), _| *e != ep);
            self.ready.remove(&ep);
            self.parked.remove(&ep);
            self.backlog.remove(&ep);
            metrics::gauge!("ingot_forwarder_backlog", "endpoint" => self.shared.labels.label(&ep))
                .set(0.0);
            let store = self.shared.store.clone();
            let e = ep.clone();
            let n = blocking(move || store.purge_endpoint(&e)).await?;
            tracing::info!(component = "forwarder", endpoint = %ep, dropped = n, "deleted endpoint's pending deliveries dropped");
        }
        Ok(())
    }

    fn fire_timers(&mut self) {
        let now = now_ms();
        while let Some(Reverse((at, ..))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, seq, ep, rk)) = self.timers.pop().expect("peeked");
            let key = (ep.clone(), rk.clone());
            match self.active.get_mut(&key) {
                Some(st) if st.0 == seq && st.1 == St::Waiting => {
                    st.1 = St::Ready;
                    self.ready.entry(ep).or_default().push_back(rk);
                }
                _ => {} // stale timer
            }
        }
    }

    fn dispatch(&mut self) {
        let max = self.shared.cfg.max_in_flight;
        let per_ep = self.shared.cfg.max_in_flight_per_endpoint;
        loop {
            let mut progressed = false;
            let eps: Vec<String> = self.ready.keys().cloned().collect();
            for ep in eps {
                if self.inflight >= max {
                    return;
                }
                if self.inflight_ep.get(&ep).copied().unwrap_or(0) >= per_ep {
                    continue;
                }
                let Some(rk) = self.ready.get_mut(&ep).and_then(VecDeque::pop_front) else {
                    continue;
                };
                if self.ready.get(&ep).is_some_and(VecDeque::is_empty) {
                    self.ready.remove(&ep);
                }
                let key = (ep.clone(), rk.clone());
                let Some((seq, st)) = self.active.get(&key).copied() else {
                    continue;
                };
                if st != St::Ready {
                    continue;
                }
                if self.shared.endpoints.get(&ep).is_some_and(|e| !e.enabled()) {
                    self.active.insert(key, (seq, St::Parked));
                    self.parked.entry(ep).or_default().push(rk);
                    continue;
                }
                self.active.insert(key, (seq, St::InFlight));
                self.inflight += 1;
                *self.inflight_ep.entry(ep.clone()).or_default() += 1;
                let shared = self.shared.clone();
                self.attempts.spawn(async move {
                    let outcome = match attempt(&shared, &ep, &rk, seq).await {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::error!(component = "forwarder", endpoint = %ep, error = %e, "attempt could not be recorded; retrying in 5 s");
                            Outcome::Retry(now_ms() + 5000)
                        }
                    };
                    let _ = shared.sched.send(SchedMsg::Done { ep, rk, outcome });
                });
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }
}

/// One attempt of the delivery `seq`, recorded durably before the outcome is returned.
async fn attempt(
    shared: &Arc<Shared>,
    ep_id: &str,
    rk: &str,
    seq: u64,
) -> Result<Outcome, ForwarderError> {
    let store = shared.store.clone();
    let e = ep_id.to_string();
    let (d, body) = blocking(move || Ok((store.delivery(&e, seq)?, store.body(&e, seq)?))).await?;
    let (Some(mut d), Some(body)) = (d, body) else {
        // nothing to send (finished meanwhile): leave the queue
        let store = shared.store.clone();
        let k = queue_key(ep_id, rk, seq);
        blocking(move || {
            let mut b = Batch::new();
            b.delete(QUEUE, k);
            store.store.write(b)
        })
        .await?;
        return Ok(Outcome::Finished);
    };
    if d.status != DeliveryStatus::Pending {
        let store = shared.store.clone();
        blocking(move || {
            let mut b = Batch::new();
            DeliveryStore::put_updated(&mut b, &d);
            store.store.write(b)
        })
        .await?;
        return Ok(Outcome::Finished);
    }
    let Some(endpoint) = shared.endpoints.get(ep_id) else {
        return Ok(Outcome::Orphan);
    };
    if !endpoint.enabled() {
        return Ok(Outcome::Parked);
    }
    let started = Utc::now();
    let secrets = endpoint.active_secrets(started);
    let res = shared
        .sender
        .send(&endpoint.url, &d.message_id, &body, &secrets)
        .await;
    let label = shared.labels.label(ep_id);
    let result = match (res.success(), res.status) {
        (true, _) => "success",
        (false, Some(_)) => "http_error",
        (false, None) if res.error.as_deref() == Some("timeout") => "timeout",
        (false, None) => "error",
    };
    metrics::counter!("ingot_forwarder_attempts_total", "endpoint" => label.clone(), "result" => result).increment(1);
    metrics::histogram!("ingot_forwarder_attempt_duration_seconds", "endpoint" => label.clone())
        .record(res.latency.as_secs_f64());
    d.attempts.push(Attempt {
        at: rfc3339(started),
        status_code: res.status,
        latency_ms: res.latency.as_millis() as u64,
        error: res.error.clone(),
        response: res.response.clone(),
    });
    if d.attempts.len() > MAX_ATTEMPTS_KEPT {
        d.attempts.remove(0);
    }
    let now = Utc::now();
    let mut disable: Option<String> = None;
    let mut health: Option<Option<i64>> = None; // Some(None) = clear, Some(Some(t)) = set
    let outcome = if res.success() {
        d.status = DeliveryStatus::Delivered;
        d.finished_at = Some(rfc3339(now));
        health = Some(None);
        metrics::counter!("ingot_forwarder_delivered_total", "endpoint" => label).increment(1);
        if let Ok(t) = ingot_model::parse_time(&d.changed_at, false) {
            if let Ok(lag) = (now - t).to_std() {
                metrics::histogram!("ingot_forwarder_delivery_lag_seconds")
                    .record(lag.as_secs_f64());
            }
        }
        Outcome::Finished
    } else {
        d.failures += 1;
        let mut delay = shared.cfg.delay_before(d.failures as usize);
        if let (Some(dl), Some(ra)) = (delay, res.retry_after) {
            let cap = crate::config::secs(shared.cfg.max_retry_after_secs);
            delay = Some(dl.max(ra.min(cap)));
        }
        let store = shared.store.clone();
        let e = ep_id.to_string();
        let since = blocking(move || store.failing_since(&e)).await?;
        let since = match since {
            Some(s) => s,
            None => {
                health = Some(Some(now.timestamp_millis()));
                now.timestamp_millis()
            }
        };
        if res.status == Some(410) {
            disable = Some("the endpoint answered 410 Gone".to_string());
        } else if (now.timestamp_millis() - since) as f64
            >= shared.cfg.disable_after_failing_secs * 1000.0
        {
            disable = Some(format!(
                "every delivery failed since {}",
                rfc3339(DateTime::from_timestamp_millis(since).unwrap_or(now))
            ));
        }
        match delay {
            Some(dl) => {
                d.next_attempt_ms = now.timestamp_millis() + dl.as_millis() as i64;
                Outcome::Retry(d.next_attempt_ms)
            }
            None => {
                d.status = DeliveryStatus::Failed;
                d.finished_at = Some(rfc3339(now));
                metrics::counter!("ingot_forwarder_failed_total", "endpoint" => label).increment(1);
                tracing::warn!(component = "forwarder", endpoint = ep_id, message_id = %d.message_id, "delivery given up after the retry schedule");
                Outcome::Finished
            }
        }
    };
    let store = shared.store.clone();
    let ep = ep_id.to_string();
    blocking(move || {
        let mut b = Batch::new();
        DeliveryStore::put_updated(&mut b, &d);
        match health {
            Some(None) => b.delete(HEALTH, ep.as_bytes().to_vec()),
            Some(Some(t)) => b.put(HEALTH, ep.as_bytes().to_vec(), t.to_be_bytes().to_vec()),
            None => {}
        }
        store.store.write(b)
    })
    .await?;
    if let Some(reason) = disable {
        shared.endpoints.disable(ep_id, &reason).await?;
    }
    Ok(outcome)
}
