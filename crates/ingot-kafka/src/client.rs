use futures::future::try_join_all;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::{Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

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

/// How to reach Kafka: `bootstrap.servers` plus any librdkafka properties
/// (`security.protocol`, `sasl.*`, ...), applied to every client.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub properties: BTreeMap<String, String>,
    /// Replication factor for topics ingot creates (1 on the embedded broker).
    pub replication_factor: i32,
}

impl KafkaSettings {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaSettings {
            bootstrap_servers: bootstrap_servers.into(),
            properties: BTreeMap::new(),
            replication_factor: 1,
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        c.set("broker.address.family", "v4");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
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
                let (_, high) =
                    consumer.fetch_watermarks(topic, p, Timeout::After(Duration::from_secs(10)))?;
                Ok((p, high))
            })
            .collect()
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

/// A consumer with ingot's defaults: manual offset handling, partition EOF events (for
/// "caught up"), short session timeouts (BROKER.md: otherwise the first join takes ~23 s).
pub fn create_consumer(
    settings: &KafkaSettings,
    group_id: &str,
) -> Result<StreamConsumer, KafkaError> {
    let mut c = settings.client_config();
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "50");
    Ok(c.create()?)
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

/// An idempotent producer (`acks=all`, `enable.idempotence=true`); sends complete only once
/// acknowledged.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    send_timeout: Duration,
}

/// One record to send; `value: None` is a tombstone.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl Producer {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let mut c = settings.client_config();
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "15000")
            .set("compression.type", "none");
        Ok(Producer {
            inner: c.create()?,
            send_timeout: Duration::from_secs(15),
        })
    }

    /// Sends one record and waits for the broker's acknowledgement. Returns (partition, offset).
    pub async fn send(
        &self,
        topic: &str,
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
                .map(|r| self.send(r.topic, r.key, r.value, r.headers)),
        )
        .await
    }
}

pub use Outgoing as OutgoingRecord;

/// Reads assigned partitions from given offsets up to their current end (high watermark at
/// start), without a consumer group: used to restore state from a changelog topic.
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
        let mut c = settings.client_config();
        c.set("group.id", "ingot-reader-unused")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50");
        let consumer: StreamConsumer = c.create()?;
        let mut tpl = TopicPartitionList::new();
        let mut remaining = BTreeMap::new();
        for (topic, partition, start) in starts {
            let (low, high) = consumer.fetch_watermarks(
                topic,
                *partition,
                Timeout::After(Duration::from_secs(10)),
            )?;
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

    /// The next record, or `None` once every partition reached the end it had at start.
    pub async fn next(&mut self) -> Result<Option<Message>, KafkaError> {
        loop {
            if self.remaining.is_empty() {
                return Ok(None);
            }
            let m = self.consumer.recv().await?;
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
