use futures::future::try_join_all;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
    StreamConsumer,
};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::{Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Low and high watermarks of a partition. Retries for up to 30 s while the partition
/// has no leader yet (a topic just created on Apache Kafka answers
/// `NotLeaderForPartition` for a moment).
fn watermarks<C: ConsumerContext, T: Consumer<C>>(
    consumer: &T,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, partition, Timeout::After(Duration::from_secs(10))) {
            Err(RdKafkaError::MetadataFetch(
                Code::NotLeaderForPartition
                | Code::LeaderNotAvailable
                | Code::UnknownTopicOrPartition
                | Code::NotCoordinator,
            )) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return Ok(r?),
        }
    }
}

/// Runs a blocking librdkafka call (transactions, metadata) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RdKafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(KafkaError::Metadata(format!(
            "blocking kafka call failed: {e}"
        ))),
    }
}

/// Header on normalized topics that marks a delete (its value is `delete`).
pub const OP_HEADER: &str = "ingot-op";
pub const OP_DELETE: &str = "delete";

/// Errors of Kafka I/O. All are the broker's or the network's; a retry may help.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: {0}")]
    Client(#[from] RdKafkaError),
    #[error("kafka send to {topic} failed: {reason}")]
    Send { topic: String, reason: String },
    #[error("kafka metadata: {0}")]
    Metadata(String),
}

/// What the broker behind a [`KafkaSettings`] can do. The pipeline asks for these, never
/// for a broker's brand (BROKER.md): the embedded Tansu 0.6 has neither, Apache Kafka both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Transactions (`InitProducerId` with a transactional id, `AddOffsetsToTxn`, `EndTxn`)
    /// and `read_committed` that hides aborted records: the exactly-once mode.
    pub transactions: bool,
    /// Correct `ListOffsets` by timestamp (`offsets_for_times`): replay by time.
    pub timestamp_lookup: bool,
}

impl Capabilities {
    /// A real Kafka (≥ 2.8): everything.
    pub const KAFKA: Capabilities = Capabilities {
        transactions: true,
        timestamp_lookup: true,
    };
    /// A broker with neither (the embedded Tansu 0.6).
    pub const NONE: Capabilities = Capabilities {
        transactions: false,
        timestamp_lookup: false,
    };
}

/// Default of [`KafkaSettings::max_message_bytes`]: room for a 5 MiB webhook wrapped in
/// its raw event, and for the normalized record that carries it as `remote_data`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 12 * 1024 * 1024;

/// How long a consumer's fetch may wait for data on the broker (`fetch.wait.max.ms`), in
/// milliseconds, unless [`KafkaSettings::fetch_wait_ms`] or the user's properties say
/// otherwise. Apache Kafka answers as soon as data arrives, so this bounds only an idle
/// consumer's polling.
pub const DEFAULT_FETCH_WAIT_MS: u32 = 50;

/// How to reach Kafka: `bootstrap.servers` plus any librdkafka properties
/// (`security.protocol`, `sasl.*`, ...), applied to every client.
///
/// Property precedence: ingot's tunable defaults (batching, fetch waits, timeouts) <
/// the user's `properties` < the settings ingot's guarantees depend on (`acks=all`,
/// idempotence, manual offset commits, `read_committed`), which cannot be overridden.
#[derive(Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub properties: BTreeMap<String, String>,
    /// Replication factor for topics ingot creates (1 on the embedded broker).
    pub replication_factor: i32,
    /// What the broker supports.
    pub capabilities: Capabilities,
    /// Largest record ingot produces and the topics accept (`message.max.bytes` of the
    /// producer, `max.message.bytes` of every topic it creates), in bytes.
    pub max_message_bytes: usize,
    /// Every consumer's `fetch.wait.max.ms` (a user's property of that name still wins):
    /// [`DEFAULT_FETCH_WAIT_MS`], or less on a broker that holds every fetch that long
    /// even when it has data (the embedded Tansu: docs/design-embedded-broker.md).
    pub fetch_wait_ms: u32,
}

impl std::fmt::Debug for KafkaSettings {
    // properties may hold credentials (`sasl.password`): only their names are printed
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("replication_factor", &self.replication_factor)
            .field("capabilities", &self.capabilities)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("fetch_wait_ms", &self.fetch_wait_ms)
            .finish()
    }
}

impl KafkaSettings {
    /// Settings for a real Kafka cluster (every capability).
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaSettings {
            bootstrap_servers: bootstrap_servers.into(),
            properties: BTreeMap::new(),
            replication_factor: 1,
            capabilities: Capabilities::KAFKA,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            fetch_wait_ms: DEFAULT_FETCH_WAIT_MS,
        }
    }

    /// A client configuration: `defaults` first, then the user's properties, then
    /// `fixed` (what ingot's guarantees depend on).
    pub fn config_with(&self, defaults: &[(&str, &str)], fixed: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        c.set("broker.address.family", "v4");
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        for (k, v) in fixed {
            c.set(*k, *v);
        }
        c
    }

    /// The plain client configuration (bootstrap servers and the user's properties).
    pub fn client_config(&self) -> ClientConfig {
        self.config_with(&[], &[])
    }

    /// Partition count of a topic, from cluster metadata.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, KafkaError> {
        let consumer: rdkafka::consumer::BaseConsumer = self.client_config().create()?;
        let md = consumer.fetch_metadata(Some(topic), Timeout::After(Duration::from_secs(10)))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| KafkaError::Metadata(format!("topic {topic} not found")))?;
        if let Some(err) = t.error() {
            return Err(KafkaError::Metadata(format!("topic {topic}: {err:?}")));
        }
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    }
}

impl KafkaSettings {
    /// The end offset (high watermark) of every partition of a topic.
    pub fn end_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>, KafkaError> {
        let consumer: rdkafka::consumer::BaseConsumer = self.client_config().create()?;
        self.partitions(topic)?
            .into_iter()
            .map(|p| {
                let (_, high) = watermarks(&consumer, topic, p)?;
                Ok((p, high))
            })
            .collect()
    }

    /// The committed offsets (next offset to consume) of consumer group `group_id` on
    /// every partition of `topic`; `None` where it committed nothing. Does not join the
    /// group.
    pub async fn committed_offsets(
        &self,
        group_id: &str,
        topic: &str,
    ) -> Result<Vec<(i32, Option<i64>)>, KafkaError> {
        let partitions = self.partitions(topic)?;
        let consumer: BaseConsumer = consumer_config(self, group_id).create()?;
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(topic, *p);
        }
        let got = blocking(move || {
            consumer.committed_offsets(tpl, Timeout::After(Duration::from_secs(10)))
        })
        .await?;
        Ok(got
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), Some(o)),
                _ => (e.partition(), None),
            })
            .collect())
    }

    /// Every record of a topic from the beginning to its current end (for tools and tests).
    pub async fn read_all(&self, topic: &str) -> Result<Vec<Message>, KafkaError> {
        let starts: Vec<(String, i32, i64)> = self
            .partitions(topic)?
            .into_iter()
            .map(|p| (topic.to_string(), p, 0))
            .collect();
        let mut reader = Reader::new(self, &starts)?;
        let mut out = Vec::new();
        while let Some(m) = reader.next().await? {
            out.push(m);
        }
        Ok(out)
    }
}

/// The consumer settings every ingot consumer shares: manual offset handling, partition
/// EOF events (for "caught up"), `read_committed` (outputs of aborted transactions are
/// never seen), short session timeouts (BROKER.md: otherwise the first join takes ~23 s).
fn consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let max_fetch = (settings.max_message_bytes + 65536).to_string();
    let fetch_wait = settings.fetch_wait_ms.to_string();
    settings.config_with(
        &[
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            ("fetch.wait.max.ms", &fetch_wait),
            // librdkafka stops fetching a partition while the local queue holds more than
            // `queued.max.messages.kbytes` (64 MiB) and looks again after this backoff,
            // 1 s by default: a consumer that drained the queue meanwhile sat idle for
            // the rest of that second (the processor through Apache Kafka waited on its
            // consumer for a third of its time; docs/figures.md, 2026-12-07)
            ("fetch.queue.backoff.ms", "10"),
            // `max.partition.fetch.bytes` is its alias: setting both (1 MiB there) left
            // the winner to the order the map gave them to librdkafka
            ("fetch.message.max.bytes", &max_fetch),
        ],
        &[
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "true"),
            ("isolation.level", "read_committed"),
        ],
    )
}

/// A consumer with ingot's defaults, for manual assignment (no group membership).
pub fn create_consumer(
    settings: &KafkaSettings,
    group_id: &str,
) -> Result<StreamConsumer, KafkaError> {
    Ok(consumer_config(settings, group_id).create()?)
}

/// Partitions revoked from and assigned to a [`GroupConsumer`], as its rebalance callbacks
/// saw them. Callbacks run inside `recv()`, so between two `recv()` calls nothing changes.
#[derive(Default)]
pub struct Assignment {
    revoked: Mutex<Vec<(String, i32)>>,
    /// Offsets processed but perhaps not yet committed (at-least-once mode): committed
    /// synchronously when their partition is revoked, so the next owner starts after them.
    processed: Mutex<HashMap<(String, i32), i64>>,
    commit_on_revoke: bool,
}

impl Assignment {
    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records the next offsets to consume after a processed batch.
    pub fn record_processed(&self, next: &HashMap<(String, i32), i64>) {
        let mut p = self.processed.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in next {
            p.insert(k.clone(), *v);
        }
    }
}

/// The rebalance listener of a [`GroupConsumer`].
pub struct GroupContext {
    assignment: Arc<Assignment>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            tracing::info!(component = "kafka", partitions = ?revoked, "partitions revoked");
            if self.assignment.commit_on_revoke {
                // the batch in hand is finished (callbacks run inside recv()); commit its
                // offsets before the partitions move so the next owner starts after it
                let mut processed = self
                    .assignment
                    .processed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let mut commit = TopicPartitionList::new();
                for k in &revoked {
                    if let Some(o) = processed.remove(k) {
                        let _ = commit.add_partition_offset(&k.0, k.1, Offset::Offset(o));
                    }
                }
                if commit.count() > 0 {
                    if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                        tracing::warn!(component = "kafka", error = %e, "commit on revoke failed; the next owner re-processes (idempotent)");
                    }
                }
            }
            self.assignment
                .revoked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(revoked);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            tracing::info!(component = "kafka", partitions = ?assigned, "partitions assigned");
        }
    }
}

/// A consumer-group member whose rebalances are visible through [`Assignment`].
pub type GroupConsumer = StreamConsumer<GroupContext>;

/// A consumer-group member with ingot's defaults and the `range` assignor: partition *p*
/// of every subscribed topic goes to the same member, so an instance that owns raw
/// partition *p* owns all of the state of partition *p* (co-partitioning, DESIGN §7).
/// `commit_on_revoke`: commit the recorded processed offsets when partitions are revoked
/// (at-least-once mode; in exactly-once mode offsets go through the transaction).
pub fn create_group_consumer(
    settings: &KafkaSettings,
    group_id: &str,
    commit_on_revoke: bool,
) -> Result<(GroupConsumer, Arc<Assignment>), KafkaError> {
    let assignment = Arc::new(Assignment {
        commit_on_revoke,
        ..Default::default()
    });
    let mut c = consumer_config(settings, group_id);
    c.set("partition.assignment.strategy", "range");
    let consumer = c.create_with_context(GroupContext {
        assignment: assignment.clone(),
    })?;
    Ok((consumer, assignment))
}

/// What [`fill_batch`] met besides messages.
#[derive(Debug, Default)]
pub struct Filled {
    /// Partitions whose end the consumer reported while the batch filled, in order
    /// (`enable.partition.eof`): each counts once the records before it are handled.
    pub eof: Vec<i32>,
    /// A consume error that ended the filling (the batch in hand stays good).
    pub error: Option<rdkafka::error::KafkaError>,
}

/// Fills `batch` up to `max` messages with what `consumer` delivers, each within `wait`
/// (`Duration::ZERO`: only what the client already holds): the one consume-batch loop of
/// every stage. `before_push` runs before each message is added (a rebalance runs inside
/// `recv()`, so a stage can drop what a revocation took back).
///
/// A partition-EOF event does not end the batch: a consumer at the end of busy partitions
/// gets one after almost every fetch, and a batch ended at each one stayed at a few
/// records, so a stage that spends a commit per batch fell behind for good under a steady
/// load (the processor capped at ≈ 550 records/s on Apache Kafka; `docs/figures.md`,
/// 2026-12-08).
pub async fn fill_batch<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    batch: &mut Vec<Message>,
    max: usize,
    wait: Duration,
    mut before_push: impl FnMut(&mut Vec<Message>),
) -> Filled {
    let mut filled = Filled::default();
    while batch.len() < max {
        let next = if wait.is_zero() {
            futures::FutureExt::now_or_never(consumer.recv())
        } else {
            tokio::time::timeout(wait, consumer.recv()).await.ok()
        };
        match next {
            Some(Ok(m)) => {
                let m = Message::from_borrowed(&m);
                before_push(batch);
                batch.push(m);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => filled.eof.push(p),
            Some(Err(e)) => {
                filled.error = Some(e);
                break;
            }
            None => break,
        }
    }
    filled
}

/// An owned Kafka record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record's timestamp (ms since the epoch), if the broker gave one.
    pub timestamp_ms: Option<i64>,
}

impl Message {
    pub fn from_borrowed(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Message {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        }
    }

    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_str(&self.headers, name)
    }
}

/// The UTF-8 value of a header, by name.
pub fn header_str<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// An idempotent producer (`acks=all`, `enable.idempotence=true`, the Java client's
/// `murmur2_random` partitioner); sends complete only once acknowledged. A transactional
/// producer ([`Producer::transactional`]) also groups sends and consumed offsets into
/// transactions.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    send_timeout: Duration,
}

/// One record to send; `value: None` is a tombstone.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    /// `None`: the partitioner (murmur2 of the key) decides.
    pub partition: Option<i32>,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// How long a transaction may stay open before the broker aborts it: bounds how long a
/// crashed instance's open transaction holds back `read_committed` readers.
const TRANSACTION_TIMEOUT_MS: &str = "15000";

impl Producer {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Self::with(settings, None)
    }

    /// A transactional producer with this `transactional.id` (stable per instance, so a
    /// restarted instance fences its previous incarnation); `init_transactions` is done.
    /// Fails when the broker has no transactions.
    pub async fn transactional(
        settings: &KafkaSettings,
        transactional_id: &str,
    ) -> Result<Self, KafkaError> {
        let p = Self::with(settings, Some(transactional_id))?;
        let inner = p.inner.clone();
        blocking(move || inner.init_transactions(Timeout::After(Duration::from_secs(30)))).await?;
        Ok(p)
    }

    fn with(settings: &KafkaSettings, transactional_id: Option<&str>) -> Result<Self, KafkaError> {
        let max = settings.max_message_bytes.to_string();
        let mut fixed = vec![("acks", "all"), ("enable.idempotence", "true")];
        if let Some(id) = transactional_id {
            fixed.push(("transactional.id", id));
            fixed.push(("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS));
            // librdkafka: message.timeout.ms must not exceed transaction.timeout.ms
            fixed.push(("message.timeout.ms", "10000"));
        }
        let c = settings.config_with(
            &[
                ("linger.ms", "2"),
                ("message.timeout.ms", "15000"),
                ("compression.type", "none"),
                ("partitioner", "murmur2_random"),
                ("message.max.bytes", &max),
                ("queue.buffering.max.kbytes", "1048576"),
            ],
            &fixed,
        );
        Ok(Producer {
            inner: c.create()?,
            send_timeout: Duration::from_secs(15),
        })
    }

    /// Starts a transaction (transactional producers only).
    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        Ok(self.inner.begin_transaction()?)
    }

    /// Adds the consumed offsets (`next` offsets to read, per topic-partition) of
    /// `consumer`'s group to the open transaction and commits it: outputs and offsets
    /// become visible together, or not at all (with no offsets, only the outputs: a
    /// replay batch). On error the caller aborts.
    pub async fn commit_transaction<C: ConsumerContext + 'static>(
        &self,
        offsets: &HashMap<(String, i32), i64>,
        consumer: &StreamConsumer<C>,
    ) -> Result<(), KafkaError> {
        self.commit_transaction_of(offsets, group_metadata(consumer)?)
            .await
    }

    /// [`Producer::commit_transaction`] with the group metadata taken beforehand (from
    /// [`group_metadata`]): for a commit that runs in a task of its own.
    pub async fn commit_transaction_of(
        &self,
        offsets: &HashMap<(String, i32), i64>,
        cgm: ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        let inner = self.inner.clone();
        blocking(move || {
            if tpl.count() > 0 {
                inner.send_offsets_to_transaction(
                    &tpl,
                    &cgm,
                    Timeout::After(Duration::from_secs(30)),
                )?;
            }
            inner.commit_transaction(Timeout::After(Duration::from_secs(30)))
        })
        .await
    }

    /// Aborts the open transaction: none of its records become visible to
    /// `read_committed` readers.
    pub async fn abort_transaction(&self) -> Result<(), KafkaError> {
        let inner = self.inner.clone();
        blocking(move || inner.abort_transaction(Timeout::After(Duration::from_secs(30)))).await
    }

    /// Sends one record and waits for the broker's acknowledgement. Returns (partition, offset).
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), KafkaError> {
        self.send_to(topic, None, key, value, headers).await
    }

    /// [`Producer::send`] to an explicit partition (`None`: the partitioner decides).
    pub async fn send_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), KafkaError> {
        let mut hs = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            hs = hs.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key).headers(hs);
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        match self
            .inner
            .send(rec, Timeout::After(self.send_timeout))
            .await
        {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((e, _)) => Err(KafkaError::Send {
                topic: topic.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Sends many records concurrently (pipelined, order per partition kept by the
    /// idempotent producer) and waits until all are acknowledged.
    pub async fn send_all(&self, records: &[Outgoing<'_>]) -> Result<Vec<(i32, i64)>, KafkaError> {
        try_join_all(
            records
                .iter()
                .map(|r| self.send_to(r.topic, r.partition, r.key, r.value, r.headers)),
        )
        .await
    }
}

pub use Outgoing as OutgoingRecord;

/// The group metadata of `consumer`, which a transaction's offsets are committed under.
pub fn group_metadata<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
) -> Result<ConsumerGroupMetadata, KafkaError> {
    consumer
        .group_metadata()
        .ok_or_else(|| KafkaError::Metadata("consumer has no group metadata".into()))
}

/// Reads assigned partitions from given offsets up to their current end, without a
/// consumer group: used to restore state from a changelog topic and to read control
/// topics. Reads `read_committed`; the end of a partition is its last stable offset at
/// start, and a partition counts as read once the consumer's position reaches it (a
/// transactional topic ends with commit markers, which are never delivered).
pub struct Reader {
    consumer: StreamConsumer,
    remaining: BTreeMap<(String, i32), i64>,
}

impl Reader {
    /// `starts`: (topic, partition, first offset to read). Partitions already at their end
    /// are skipped.
    pub fn new(
        settings: &KafkaSettings,
        starts: &[(String, i32, i64)],
    ) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer = consumer_config(settings, "ingot-reader-unused").create()?;
        let mut tpl = TopicPartitionList::new();
        let mut remaining = BTreeMap::new();
        for (topic, partition, start) in starts {
            let (low, high) = watermarks(&consumer, topic, *partition)?;
            let from = (*start).max(low);
            if from < high {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(from))?;
                remaining.insert((topic.clone(), *partition), high);
            }
        }
        if tpl.count() > 0 {
            consumer.assign(&tpl)?;
        }
        Ok(Reader {
            consumer,
            remaining,
        })
    }

    /// Drops the partitions whose position reached their end (after an EOF or a pause).
    fn settle(&mut self) {
        let Ok(pos) = self.consumer.position() else {
            return;
        };
        for e in pos.elements() {
            let k = (e.topic().to_string(), e.partition());
            if let (Some(&end), Offset::Offset(o)) = (self.remaining.get(&k), e.offset()) {
                if o >= end {
                    self.remaining.remove(&k);
                }
            }
        }
    }

    /// The next record, or `None` once every partition reached the end it had at start.
    pub async fn next(&mut self) -> Result<Option<Message>, KafkaError> {
        loop {
            if self.remaining.is_empty() {
                return Ok(None);
            }
            // the client answers at once while it holds fetched records, and callers
            // skip most of what they read (a replay, other tenants' records): each record
            // spends tokio's cooperative budget, so a long read gives its worker back
            tokio::task::coop::consume_budget().await;
            let m = match tokio::time::timeout(Duration::from_millis(500), self.consumer.recv())
                .await
            {
                Err(_) => {
                    self.settle();
                    continue;
                }
                Ok(Err(RdKafkaError::PartitionEOF(p))) => {
                    self.settle();
                    // the EOF event names only a partition number: exact when the reader
                    // reads one topic (all restores and control-topic reads do)
                    let topics: std::collections::BTreeSet<&String> =
                        self.remaining.keys().map(|(t, _)| t).collect();
                    if topics.len() == 1 {
                        let t = topics.into_iter().next().cloned().unwrap_or_default();
                        self.remaining.remove(&(t, p));
                    }
                    continue;
                }
                Ok(r) => r?,
            };
            let msg = Message::from_borrowed(&m);
            let k = (msg.topic.clone(), msg.partition);
            let Some(&end) = self.remaining.get(&k) else {
                continue;
            };
            if msg.offset + 1 >= end {
                self.remaining.remove(&k);
            }
            if msg.offset < end {
                return Ok(Some(msg));
            }
        }
    }
}

impl KafkaSettings {
    /// For each partition of `topic`, the first offset whose record timestamp is at or
    /// after `timestamp_ms` (ms since the epoch), or the end offset if none is. Needs
    /// [`Capabilities::timestamp_lookup`]; without it, callers scan from the beginning
    /// and filter (the embedded broker answers 0 past the end).
    pub async fn offsets_for_time(
        &self,
        topic: &str,
        timestamp_ms: i64,
    ) -> Result<Vec<(i32, i64)>, KafkaError> {
        if !self.capabilities.timestamp_lookup {
            return Err(KafkaError::Metadata(
                "this broker has no timestamp lookup (offsets_for_times)".into(),
            ));
        }
        let partitions = self.partitions(topic)?;
        let ends: HashMap<i32, i64> = self.end_offsets(topic)?.into_iter().collect();
        let consumer: BaseConsumer = consumer_config(self, "ingot-time-lookup").create()?;
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Offset(timestamp_ms))?;
        }
        let found = blocking(move || {
            consumer.offsets_for_times(tpl, Timeout::After(Duration::from_secs(10)))
        })
        .await?;
        Ok(found
            .elements()
            .iter()
            .map(|e| {
                let end = ends.get(&e.partition()).copied().unwrap_or(0);
                let o = match e.offset() {
                    Offset::Offset(o) if o >= 0 => o,
                    _ => end,
                };
                (e.partition(), o)
            })
            .collect())
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    /// The consumer's fetch wait: the settings' value, which the user's property of the
    /// same name overrides; the settings ingot's guarantees depend on stay ingot's.
    #[test]
    fn consumer_fetch_wait_comes_from_the_settings_and_a_user_property_wins() {
        let mut s = KafkaSettings::new("127.0.0.1:9");
        let get = |s: &KafkaSettings, k: &str| consumer_config(s, "g").get(k).map(str::to_string);
        assert_eq!(get(&s, "fetch.wait.max.ms").as_deref(), Some("50"));
        s.fetch_wait_ms = 7;
        assert_eq!(get(&s, "fetch.wait.max.ms").as_deref(), Some("7"));
        s.properties.insert("fetch.wait.max.ms".into(), "99".into());
        s.properties
            .insert("enable.auto.commit".into(), "true".into());
        assert_eq!(get(&s, "fetch.wait.max.ms").as_deref(), Some("99"));
        assert_eq!(get(&s, "enable.auto.commit").as_deref(), Some("false"));
    }
}
