//! Kafka I/O for ingot: the topology (every topic, created explicitly), an idempotent
//! `acks=all` producer, consumers, and Avro values in the schema-registry wire format.
//!
//! The only crate that links rdkafka. It speaks plain Kafka and plain Confluent REST and
//! does not know which broker or registry is behind them (BROKER.md).
//!
//! Invariants:
//! - a send returns only once the broker acknowledged it (`acks=all`, idempotence on);
//! - a tombstone is a record with no value (never the bytes `null` or `{}`);
//! - the producer partitions with `murmur2_random` (the Java client's partitioner), so a
//!   key lands where JVM producers and Kafka Streams would put it;
//! - every consumer reads `read_committed` and commits offsets manually;
//! - no code here calls DeleteRecords, CreatePartitions or DescribeGroups (unsupported by
//!   the embedded broker); transactions and timestamp lookups are used only when
//!   [`Capabilities`] says the broker has them.

mod avro;
mod avro_decode;
mod client;
mod topology;

pub use avro::{AvroCodec, SchemaError, Schemas};
pub use avro_decode::{wire_schema_id, FlatDecoder, FlatRecord, Scalar};
pub use client::{
    create_consumer, create_group_consumer, fill_batch, group_metadata, header_str, Assignment,
    Capabilities, Filled, GroupConsumer, KafkaError, KafkaSettings, Message, OutgoingRecord,
    Producer, Reader, DEFAULT_FETCH_WAIT_MS, DEFAULT_MAX_MESSAGE_BYTES, OP_DELETE, OP_HEADER,
};
pub use rdkafka::consumer::{CommitMode, ConsumerGroupMetadata};
pub use rdkafka::consumer::{Consumer, StreamConsumer};
pub use rdkafka::error::KafkaError as RdKafkaError;
pub use rdkafka::message::{BorrowedMessage, Headers, Message as RdMessage};
pub use rdkafka::{Offset, TopicPartitionList};
pub use topology::{TopicSpec, Topology, TopologyError};
