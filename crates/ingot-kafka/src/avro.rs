use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use ingot_model::{Model, NormalizedRecord, RawEvent};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::avro_common::get_supplied_schema;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The Avro schemas in `schemas/*.avsc`, compiled into the binary.
pub const RAW_EVENT_AVSC: &str = include_str!("../../../schemas/raw_event.avsc");
pub const ORDER_AVSC: &str = include_str!("../../../schemas/order.avsc");
pub const CUSTOMER_AVSC: &str = include_str!("../../../schemas/customer.avsc");
pub const PRODUCT_AVSC: &str = include_str!("../../../schemas/product.avsc");

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("avro schema invalid: {0}")]
    Parse(String),
    #[error("value does not fit schema {schema}: {reason}")]
    Mismatch { schema: String, reason: String },
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("undecodable value: {0}")]
    Decode(String),
}

impl SchemaError {
    /// A decoder's error: transient ([`SchemaError::Registry`]) when the converter says
    /// a retry may cure it, otherwise the value's own ([`SchemaError::Decode`]).
    fn from_decoder(e: schema_registry_converter::error::SRCError) -> Self {
        if e.retriable {
            SchemaError::Registry(e.to_string())
        } else {
            SchemaError::Decode(e.to_string())
        }
    }

    /// The registry could not be reached or answered an error a retry can cure: the
    /// value itself may be fine, so it must be retried, never dead-lettered.
    pub fn is_transient(&self) -> bool {
        matches!(self, SchemaError::Registry(_))
    }
}

/// The parsed schemas ingot writes with.
#[derive(Debug, Clone)]
pub struct Schemas {
    pub raw_event: Schema,
    pub models: HashMap<Model, Schema>,
}

impl Schemas {
    pub fn builtin() -> Result<Self, SchemaError> {
        let parse = |s: &str| Schema::parse_str(s).map_err(|e| SchemaError::Parse(e.to_string()));
        Ok(Schemas {
            raw_event: parse(RAW_EVENT_AVSC)?,
            models: HashMap::from([
                (Model::Order, parse(ORDER_AVSC)?),
                (Model::Customer, parse(CUSTOMER_AVSC)?),
                (Model::Product, parse(PRODUCT_AVSC)?),
            ]),
        })
    }

    /// Resolves a JSON value (a record's flat JSON form) against a model's schema.
    pub fn model_value(
        &self,
        model: Model,
        json: serde_json::Value,
    ) -> Result<AvroValue, SchemaError> {
        let schema = &self.models[&model];
        json_to_avro(schema, json)
    }
}

fn json_to_avro(schema: &Schema, json: serde_json::Value) -> Result<AvroValue, SchemaError> {
    let mismatch = |reason: String| SchemaError::Mismatch {
        schema: schema_name(schema),
        reason,
    };
    let v = AvroValue::try_from(json).map_err(|e| mismatch(e.to_string()))?;
    v.resolve(schema).map_err(|e| mismatch(e.to_string()))
}

fn schema_name(s: &Schema) -> String {
    match s {
        Schema::Record(r) => r.name.fullname(None),
        other => format!("{other:?}"),
    }
}

/// One datum writer per model over the built-in schemas, their named types resolved once
/// per process: a normalized record is serialized straight from its flat JSON form
/// against the schema (serde), without an intermediate Avro value or a second resolve.
fn record_writers() -> &'static HashMap<Model, GenericDatumWriter<'static>> {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    static WRITERS: OnceLock<HashMap<Model, GenericDatumWriter<'static>>> = OnceLock::new();
    WRITERS.get_or_init(|| {
        // the schemas are compiled in and parsed by every test: no input reaches this
        let schemas = SCHEMAS.get_or_init(|| Schemas::builtin().expect("built-in schemas parse"));
        schemas
            .models
            .iter()
            .map(|(model, schema)| {
                let writer = GenericDatumWriter::builder(schema)
                    .build()
                    .expect("built-in schemas resolve");
                (*model, writer)
            })
            .collect()
    })
}

/// Avro serde in the schema-registry wire format (magic byte, 4-byte schema id, datum).
/// Schemas are registered under the topic name strategy (`<topic>-value`) on first use.
#[derive(Clone)]
pub struct AvroCodec {
    encoder: Arc<AvroEncoder>,
    decoder: Arc<AvroDecoder>,
    pub schemas: Arc<Schemas>,
    /// The registry's id of each model's schema, once registered or looked up.
    record_ids: Arc<Mutex<HashMap<Model, u32>>>,
}

impl AvroCodec {
    /// `registry_url`: a Confluent-compatible registry (the embedded one or a real one).
    pub fn new(registry_url: &str) -> Result<Self, SchemaError> {
        let settings = || {
            SrSettings::new_builder(registry_url.to_string())
                .no_proxy()
                .set_timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| SchemaError::Registry(e.to_string()))
        };
        Ok(AvroCodec {
            encoder: Arc::new(AvroEncoder::new(settings()?)),
            decoder: Arc::new(AvroDecoder::new(settings()?)),
            schemas: Arc::new(Schemas::builtin()?),
            record_ids: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn strategy(topic: &str, schema: &Schema) -> SubjectNameStrategy {
        SubjectNameStrategy::TopicNameStrategyWithSchema(
            topic.to_string(),
            false,
            get_supplied_schema(schema),
        )
    }

    /// Encodes a raw event for `raw.<provider>` / `raw.dlq`.
    pub async fn encode_raw(&self, topic: &str, event: &RawEvent) -> Result<Vec<u8>, SchemaError> {
        let schema = &self.schemas.raw_event;
        let value = apache_avro::to_value(event)
            .and_then(|v| v.resolve(schema))
            .map_err(|e| SchemaError::Mismatch {
                schema: schema_name(schema),
                reason: e.to_string(),
            })?;
        self.encode_value(topic, schema, value).await
    }

    /// Encodes a normalized record for `normalized.<model>` (its model's topic).
    ///
    /// The record is serialized straight from its structs against the schema (serde, the
    /// fields in schema order): the bytes equal those of the generic path (its flat JSON
    /// resolved to an Avro value, then written; tested), at a fraction of its cost. A
    /// record that does not fit is [`SchemaError::Mismatch`], found while writing.
    pub async fn encode_record(&self, rec: &NormalizedRecord) -> Result<Vec<u8>, SchemaError> {
        let model = rec.data.model();
        let id = self.record_schema_id(model).await?;
        // the payload (`remote_data`, most of a record's bytes) plus the fields: the datum
        // is written without growing the buffer (each growth copied it)
        let payload = rec.meta.remote_data.as_ref().map_or(0, String::len);
        let mut out = Vec::with_capacity(payload + 4096);
        out.push(0u8);
        out.extend_from_slice(&id.to_be_bytes());
        record_writers()[&model]
            .write_ser(&mut out, rec)
            .map_err(|e| SchemaError::Mismatch {
                schema: schema_name(&self.schemas.models[&model]),
                reason: e.to_string(),
            })?;
        Ok(out)
    }

    /// The registry id of `model`'s schema under `normalized.<model>-value`, registered on
    /// first use (through the converter, which caches it too), then kept here.
    async fn record_schema_id(&self, model: Model) -> Result<u32, SchemaError> {
        if let Some(id) = self.lock_ids().get(&model) {
            return Ok(*id);
        }
        let strategy = Self::strategy(&model.normalized_topic(), &self.schemas.models[&model]);
        let subject = strategy
            .get_subject()
            .map_err(|e| SchemaError::Registry(e.to_string()))?;
        let schema = self
            .encoder
            .get_schema_and_id(&subject, strategy)
            .await
            .map_err(|e| SchemaError::Registry(e.to_string()))?;
        self.lock_ids().insert(model, schema.id);
        Ok(schema.id)
    }

    fn lock_ids(&self) -> std::sync::MutexGuard<'_, HashMap<Model, u32>> {
        // a poisoned lock only means another thread panicked while inserting an id
        self.record_ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn encode_value(
        &self,
        topic: &str,
        schema: &Schema,
        value: AvroValue,
    ) -> Result<Vec<u8>, SchemaError> {
        self.encoder
            .encode_value(value, &Self::strategy(topic, schema))
            .await
            .map_err(|e| SchemaError::Registry(e.to_string()))
    }

    /// The writer schema registered under `id` (from the registry, cached by the
    /// converter after the first lookup).
    ///
    /// Errors: [`SchemaError::Registry`] when the registry could not answer (transient:
    /// retry); [`SchemaError::Decode`] when it has no usable schema under `id`.
    pub(crate) async fn writer_schema(
        &self,
        id: u32,
    ) -> Result<Arc<schema_registry_converter::avro_common::AvroSchema>, SchemaError> {
        self.decoder
            .get_schema(id)
            .await
            .map_err(SchemaError::from_decoder)
    }

    async fn decode_value(&self, bytes: &[u8]) -> Result<AvroValue, SchemaError> {
        self.decoder
            .decode(Some(bytes))
            .await
            .map(|r| r.value)
            .map_err(SchemaError::from_decoder)
    }

    /// Decodes a raw event (schema-registry wire format) against its writer schema,
    /// straight into the struct (`apache_avro`'s schema-aware serde reader: the payload
    /// is copied once, with no intermediate Avro value). Lengths are bounded by
    /// `apache_avro`'s allocation limit, as on its generic path; bytes after the datum are
    /// ignored.
    ///
    /// Errors: [`SchemaError::Registry`] when the registry could not answer (transient:
    /// retry); [`SchemaError::Decode`] when the bytes are not the wire format, the id has
    /// no usable schema, or the datum does not fit the schema or the struct.
    pub async fn decode_raw(&self, bytes: &[u8]) -> Result<RawEvent, SchemaError> {
        let (id, mut datum) = crate::avro_decode::wire_schema_id(bytes)?;
        let schema = self.writer_schema(id).await?;
        apache_avro::reader::datum::GenericDatumReader::builder(&schema.parsed)
            .build()
            .and_then(|r| r.read_deser::<RawEvent>(&mut datum))
            .map_err(|e| SchemaError::Decode(e.to_string()))
    }

    /// Decodes a normalized value to its flat JSON form.
    pub async fn decode_record(&self, bytes: &[u8]) -> Result<serde_json::Value, SchemaError> {
        let v = self.decode_value(bytes).await?;
        serde_json::Value::try_from(v).map_err(|e| SchemaError::Decode(e.to_string()))
    }
}

#[cfg(test)]
#[allow(deprecated)] // to_avro_datum / from_avro_datum: the plain datum codec is what we test against
pub(crate) mod tests {
    use super::*;
    use ingot_model::*;

    /// A record's metadata (the cases share it), with `remote_data`.
    pub(crate) fn meta(remote_data: Option<&str>) -> RecordMeta {
        RecordMeta {
            id: "8d8b2c0e-0000-5000-8000-000000000000".into(),
            remote_id: "820982911946154508".into(),
            connection_id: "shop-1".into(),
            tenant_id: "acme".into(),
            provider: "shopify".into(),
            remote_created_at: Some("2022-01-01T00:00:00Z".into()),
            remote_updated_at: "2022-01-02T00:00:00Z".into(),
            remote_deleted: false,
            modified_at: "2026-01-01T00:00:00Z".into(),
            mapping_version: "shopify/1".into(),
            raw_topic: "raw.shopify".into(),
            raw_partition: 2,
            raw_offset: 41,
            remote_data: remote_data.map(str::to_string),
        }
    }

    /// A record of every model: populated (escapes, negative and extreme numbers,
    /// empty strings), then with only the required fields.
    pub(crate) fn records() -> Vec<RecordData> {
        let addr = Address {
            line1: Some("151 \"Example\" Street\n".into()),
            country_code: Some("CA".into()),
            ..Default::default()
        };
        vec![
            RecordData::Order(Order {
                order_number: Some("#1001".into()),
                status: "open".into(),
                payment_status: "paid".into(),
                fulfillment_status: "unfulfilled".into(),
                currency: Some("USD".into()),
                billing_address: Some(addr.clone()),
                line_items: vec![
                    LineItem {
                        remote_id: Some("1".into()),
                        quantity: 2,
                        unit_price: Some("9.99".into()),
                        ..Default::default()
                    },
                    LineItem {
                        remote_id: Some("2".into()),
                        quantity: -7,
                        name: Some("Tab\tand \u{1}control".into()),
                        ..Default::default()
                    },
                ],
                discounts: vec![Discount {
                    code: Some("X".into()),
                    amount: Some("1.00".into()),
                    kind: None,
                }],
                shipping_lines: vec![ShippingLine {
                    title: Some("Std".into()),
                    ..Default::default()
                }],
                tax_lines: vec![TaxLine {
                    rate: Some("0.06".into()),
                    ..Default::default()
                }],
                tags: vec!["Léon".into(), String::new()],
                total_price: Some("404.95".into()),
                ..Default::default()
            }),
            RecordData::Customer(Customer {
                email: Some("bob@example.com".into()),
                status: "active".into(),
                accepts_marketing: Some(true),
                orders_count: Some(i64::MIN),
                default_address: Some(addr),
                ..Default::default()
            }),
            RecordData::Product(Product {
                name: Some("Shirt\u{2028}😀".into()),
                status: "active".into(),
                options: vec![ProductOption {
                    name: "Size".into(),
                    values: vec!["S".into()],
                }],
                variants: vec![ProductVariant {
                    remote_id: "1".into(),
                    inventory_quantity: Some(5),
                    options: vec![VariantOption {
                        name: "Size".into(),
                        value: "S".into(),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            RecordData::Order(Order::default()),
            RecordData::Customer(Customer::default()),
            RecordData::Product(Product::default()),
        ]
    }

    /// Every model, populated and bare, fits its schema and comes back equal.
    #[test]
    fn every_model_fits_its_schema_and_round_trips() {
        let schemas = Schemas::builtin().unwrap();
        for data in records() {
            let model = data.model();
            let rec = NormalizedRecord {
                meta: meta(Some("{\"id\":1}")),
                data,
            };
            let avro = schemas.model_value(model, rec.to_json()).unwrap();
            let schema = &schemas.models[&model];
            let bytes = apache_avro::to_avro_datum(schema, avro).unwrap();
            // the writer encode_record uses gives the same bytes, straight from the structs
            let direct = record_writers()[&model].write_ser_to_vec(&rec).unwrap();
            assert_eq!(direct, bytes, "{model:?}: direct and generic datums differ");
            let back = apache_avro::from_avro_datum(schema, &mut &bytes[..], None).unwrap();
            let json = serde_json::Value::try_from(back).unwrap();
            assert_eq!(NormalizedRecord::from_json(model, json).unwrap(), rec);
        }
    }

    /// Records with only their required fields (nulls and empty lists everywhere else)
    /// give the same bytes on the direct writer; a value that does not fit is an error.
    #[test]
    fn the_direct_writer_matches_the_generic_path_and_refuses_misfits() {
        let schemas = Schemas::builtin().unwrap();
        for data in [
            RecordData::Order(Order::default()),
            RecordData::Customer(Customer::default()),
            RecordData::Product(Product::default()),
        ] {
            let model = data.model();
            let rec = NormalizedRecord {
                meta: meta(Some("{\"id\":1}")),
                data,
            };
            let generic = apache_avro::to_avro_datum(
                &schemas.models[&model],
                schemas.model_value(model, rec.to_json()).unwrap(),
            )
            .unwrap();
            let direct = record_writers()[&model].write_ser_to_vec(&rec).unwrap();
            assert_eq!(direct, generic, "{model:?}");
        }
        // a record that does not fit the writer's schema (a customer's fields against the
        // order schema) is an error, not a panic
        let misfit = NormalizedRecord {
            meta: meta(Some("{\"id\":1}")),
            data: RecordData::Customer(Customer {
                first_name: Some("Ada".into()),
                ..Default::default()
            }),
        };
        let err = record_writers()[&Model::Order]
            .write_ser_to_vec(&misfit)
            .unwrap_err();
        assert!(err.to_string().contains("first_name"), "{err}");
    }

    #[test]
    fn raw_event_fits_its_schema() {
        let schemas = Schemas::builtin().unwrap();
        let ev = RawEvent {
            event_id: "e".into(),
            tenant_id: "acme".into(),
            connection_id: "shop-1".into(),
            provider: "shopify".into(),
            topic: "orders/create".into(),
            source: "webhook".into(),
            api_version: Some("2026-04".into()),
            received_at: "2026-01-01T00:00:00Z".into(),
            triggered_at: None,
            payload: b"{\"id\": 820982911946154508}".to_vec(),
        };
        let v = apache_avro::to_value(&ev)
            .unwrap()
            .resolve(&schemas.raw_event)
            .unwrap();
        let bytes = apache_avro::to_avro_datum(&schemas.raw_event, v).unwrap();
        let back = apache_avro::from_avro_datum(&schemas.raw_event, &mut &bytes[..], None).unwrap();
        assert_eq!(apache_avro::from_value::<RawEvent>(&back).unwrap(), ev);
    }
}
