//! Normalized values decoded straight to JSON text: no `apache_avro::types::Value`, no
//! `serde_json::Value` tree, one pass over the datum.
//!
//! [`FlatDecoder::decode`] gives, for a datum of the writer's schema, exactly the bytes
//! `serde_json` writes for the record's flat JSON form as [`AvroCodec::decode_record`]
//! gives it (`apache_avro`'s datum reader, then `serde_json::Value::try_from`): members in
//! `serde_json::Map`'s order at every depth, strings escaped by `serde_json`. It accepts
//! and refuses the same datums as that path, `apache_avro`'s leniencies at the end of the
//! input included (a boolean, a union or a string's bytes missing there read as `null`),
//! and ignores bytes after the datum as it does, with one exception: a datum with more
//! array items than [`ITEMS_PER_BYTE`] per byte of it is refused (only items that take no
//! bytes, `null`s or arrays of them, can reach that; `apache_avro` would build every item,
//! and arrays of such arrays multiply without bound). Schemas using types it does not
//! transcode (floats, bytes, fixed, maps, decimals, uuids, durations) are decoded through
//! that generic path, so the result is the same for every schema.
//!
//! The view stores a record without one member (`remote_data`) and needs a few top-level
//! members as values: a [`FlatRecord`] is the JSON cut around that member, the member's
//! text and those values. [`FlatRecord::from_json`] makes the same from a
//! `serde_json::Value` (the reference the decoder is tested against).

use crate::avro::{AvroCodec, SchemaError};
use apache_avro::schema::{Name, ResolvedSchema, Schema};
use std::borrow::Cow;
use std::collections::HashMap;

/// The magic byte and schema id of the schema-registry wire format: the writer schema's
/// registry id and the datum after them.
///
/// Errors: [`SchemaError::Decode`] when `bytes` is shorter than 5 bytes or does not start
/// with the magic byte 0 (the converter's own check).
pub fn wire_schema_id(bytes: &[u8]) -> Result<(u32, &[u8]), SchemaError> {
    match bytes {
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => Err(SchemaError::Decode(format!(
            "not in the schema-registry wire format (magic byte 0, 4-byte schema id): {} bytes{}",
            bytes.len(),
            bytes
                .first()
                .map(|b| format!(", first byte {b:#04x}"))
                .unwrap_or_default()
        ))),
    }
}

impl AvroCodec {
    /// A [`FlatDecoder`] for the writer schema registered under `id` (from the registry,
    /// cached by the converter after the first lookup), cutting out member `cut` and
    /// capturing the top-level members `fields`.
    ///
    /// Errors: [`SchemaError::Registry`] when the registry could not answer (transient:
    /// retry); [`SchemaError::Decode`] when it has no usable schema under `id`.
    pub async fn flat_decoder(
        &self,
        id: u32,
        cut: &str,
        fields: &[&str],
    ) -> Result<FlatDecoder, SchemaError> {
        let schema = self.writer_schema(id).await?;
        FlatDecoder::new(&schema.parsed, cut, fields)
    }
}

/// A top-level member's value, when it is a string (an Avro string or enum symbol, also
/// in a union) or a boolean: what `serde_json::Value::as_str` / `as_bool` would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
}

impl Scalar<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            Scalar::Bool(_) => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            Scalar::Str(_) => None,
        }
    }
}

/// A record's flat JSON object without member `cut`, and what was asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatRecord<'a> {
    /// The object as `serde_json` writes it, without `cut`, in two parts: `json[..split]`
    /// is `{` and the members before the first one whose key sorts after `cut` (in the
    /// map's order), `json[split..]` those from it on and `}`. A record that is not an
    /// object gives `{}` (split 1).
    pub json: Vec<u8>,
    pub split: usize,
    /// The value of `cut` when it is a string (`None`: absent, `null` or another type).
    pub cut: Option<Cow<'a, str>>,
    /// The values of the top-level members asked for, in the order asked.
    pub fields: Vec<Option<Scalar<'a>>>,
}

impl<'a> FlatRecord<'a> {
    /// The same from a record's flat JSON form (the reference [`FlatDecoder::decode`] is
    /// held to; also how records of other origins reach the same stored form).
    ///
    /// Errors: only what `serde_json` refuses to write (nothing a decoded value holds).
    pub fn from_json(
        v: &'a serde_json::Value,
        cut: &str,
        fields: &[&str],
    ) -> Result<Self, serde_json::Error> {
        let empty = serde_json::Map::new();
        let map = v.as_object().unwrap_or(&empty);
        let mut json = Vec::with_capacity(4096);
        json.push(b'{');
        let mut split = None;
        let mut first = true;
        for (k, val) in map {
            if k == cut {
                continue;
            }
            if split.is_none() && k.as_str() > cut {
                split = Some(json.len());
                first = true;
            }
            if !first {
                json.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut json, k)?;
            json.push(b':');
            serde_json::to_writer(&mut json, val)?;
        }
        let split = split.unwrap_or(json.len());
        json.push(b'}');
        let scalar = |val: Option<&'a serde_json::Value>| match val {
            Some(serde_json::Value::String(s)) => Some(Scalar::Str(Cow::Borrowed(s.as_str()))),
            Some(serde_json::Value::Bool(b)) => Some(Scalar::Bool(*b)),
            _ => None,
        };
        Ok(FlatRecord {
            json,
            split,
            cut: match v.get(cut) {
                Some(serde_json::Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
                _ => None,
            },
            fields: fields.iter().map(|f| scalar(v.get(*f))).collect(),
        })
    }

    /// Copies what is borrowed: a record independent of the datum and the decoder.
    pub fn into_owned(self) -> FlatRecord<'static> {
        let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        FlatRecord {
            json: self.json,
            split: self.split,
            cut: self.cut.map(own),
            fields: self
                .fields
                .into_iter()
                .map(|f| {
                    f.map(|s| match s {
                        Scalar::Str(s) => Scalar::Str(own(s)),
                        Scalar::Bool(b) => Scalar::Bool(b),
                    })
                })
                .collect(),
        }
    }
}

/// A writer schema compiled for [`FlatDecoder::decode`].
#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    /// `int`, `date`, `time-millis`: a zig-zag varint that must fit an i32.
    Int,
    /// `long` and its logical types.
    Long,
    String,
    /// The symbols and their JSON text.
    Enum(Vec<(String, Vec<u8>)>),
    Union(Vec<Node>),
    Array(Box<Node>),
    /// An index into [`FlatDecoder::records`] (records may refer to themselves).
    Record(usize),
}

/// A record type: its fields in schema (datum) order, and the order `serde_json`'s map
/// gives their members.
#[derive(Debug, Default)]
struct RecordPlan {
    fields: Vec<Node>,
    /// Each field's key as JSON text (`"name"`).
    keys: Vec<Vec<u8>>,
    names: Vec<String>,
    /// Field indexes in output order.
    order: Vec<usize>,
}

/// Decodes datums of one writer schema to [`FlatRecord`]s (see the module docs).
#[derive(Debug)]
pub struct FlatDecoder {
    /// `None`: the schema is not a record of transcoded types; datums go through the
    /// generic path with `schema`.
    root: Option<usize>,
    records: Vec<RecordPlan>,
    schema: Schema,
    cut: String,
    fields: Vec<String>,
    /// For each field of the root record: its place in `fields`, if asked for.
    slots: Vec<Option<usize>>,
    /// `apache_avro`'s allocation bound (`max_allocation_bytes`), which its reader
    /// checks lengths against.
    max_bytes: usize,
}

/// Why a datum does not decode; `Eof` is the input ending inside a varint, which a union
/// index reads as `null` (as `apache_avro` does) and anything else refuses.
enum Fail {
    Eof,
    Bad(String),
}

impl From<Fail> for SchemaError {
    fn from(f: Fail) -> Self {
        SchemaError::Decode(match f {
            Fail::Eof => "the datum ends inside a varint".to_string(),
            Fail::Bad(reason) => reason,
        })
    }
}

/// What a decoded value was, for the members asked for.
enum Seen<'a> {
    Str(&'a str),
    Bool(bool),
    Other,
}

/// Array items a datum may hold per byte of it ([`FlatDecoder::decode`] refuses more):
/// an item of ingot's schemas takes at least one byte, so only a hostile datum (items of
/// no bytes, nested) comes near it.
pub const ITEMS_PER_BYTE: usize = 8;

struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Array items this datum may still hold.
    items_left: usize,
}

impl<'a> Input<'a> {
    /// A zig-zag varint of at most 10 bytes (`apache_avro`'s `zag_i64`).
    fn long(&mut self) -> Result<i64, Fail> {
        let mut z = 0u64;
        for j in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                self.pos = self.buf.len();
                return Err(Fail::Eof);
            };
            self.pos += 1;
            z |= u64::from(b & 0x7f) << (j * 7);
            if b >> 7 == 0 {
                return Ok(if z & 1 == 0 {
                    (z >> 1) as i64
                } else {
                    !(z >> 1) as i64
                });
            }
        }
        Err(Fail::Bad(format!(
            "varint longer than 10 bytes at {}",
            self.pos
        )))
    }

    fn int(&mut self) -> Result<i32, Fail> {
        let at = self.pos;
        let v = self.long()?;
        i32::try_from(v).map_err(|_| Fail::Bad(format!("int {v} out of range at {at}")))
    }

    /// A length that must be non-negative and within `max` (`apache_avro`'s `safe_len`).
    fn len(&mut self, max: usize) -> Result<usize, Fail> {
        let at = self.pos;
        let v = self.long()?;
        usize::try_from(v)
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| Fail::Bad(format!("length {v} out of range at {at}")))
    }
}

/// Writes `s` as a JSON string, escaped as `serde_json` does (a Vec cannot fail to take it).
fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

impl FlatDecoder {
    /// Compiles `writer` (the schema the datums were written with), cutting member `cut`
    /// out of the top-level object and capturing the top-level members `fields`.
    ///
    /// Errors: [`SchemaError::Decode`] when the schema's named types do not resolve.
    pub fn new(writer: &Schema, cut: &str, fields: &[&str]) -> Result<Self, SchemaError> {
        let mut d = FlatDecoder {
            root: None,
            records: Vec::new(),
            schema: writer.clone(),
            cut: cut.to_string(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            slots: Vec::new(),
            max_bytes: apache_avro::util::max_allocation_bytes(
                apache_avro::util::DEFAULT_MAX_ALLOCATION_BYTES,
            ),
        };
        let resolved =
            ResolvedSchema::try_from(writer).map_err(|e| SchemaError::Decode(e.to_string()))?;
        let mut compiler = Compiler {
            names: resolved.get_names(),
            done: HashMap::new(),
            records: Vec::new(),
        };
        if let Some(Node::Record(i)) = compiler.node(writer, None) {
            d.root = Some(i);
            d.records = compiler.records;
            d.slots = d.records[i]
                .names
                .iter()
                .map(|n| fields.iter().position(|f| f == n))
                .collect();
        }
        Ok(d)
    }

    /// Decodes one datum (without the wire-format header) to its [`FlatRecord`], which
    /// borrows strings from `datum` and the decoder.
    ///
    /// Errors: [`SchemaError::Decode`] with the reason and byte offset when the datum does
    /// not fit the writer schema (the generic path's message for other schemas).
    pub fn decode<'a>(&'a self, datum: &'a [u8]) -> Result<FlatRecord<'a>, SchemaError> {
        let Some(root) = self.root else {
            return self.decode_generic(datum);
        };
        let rec = &self.records[root];
        let mut input = Input {
            buf: datum,
            pos: 0,
            items_left: datum.len().max(1).saturating_mul(ITEMS_PER_BYTE),
        };
        let mut values = Vec::with_capacity(datum.len().min(1 << 16));
        let mut ranges = Vec::with_capacity(rec.fields.len());
        let mut cut = None;
        let mut fields = vec![None; self.fields.len()];
        for ((node, name), slot) in rec.fields.iter().zip(&rec.names).zip(&self.slots) {
            let start = values.len();
            let is_cut = *name == self.cut;
            let seen = self.value(node, &mut input, (!is_cut).then_some(&mut values))?;
            ranges.push((start, values.len()));
            if let (true, Seen::Str(s)) = (is_cut, &seen) {
                cut = Some(Cow::Borrowed(*s));
            }
            let scalar = match seen {
                Seen::Str(s) => Some(Scalar::Str(Cow::Borrowed(s))),
                Seen::Bool(b) => Some(Scalar::Bool(b)),
                Seen::Other => None,
            };
            if let Some(slot) = slot {
                fields[*slot] = scalar;
            }
        }
        let mut json = Vec::with_capacity(values.len() + 24 * rec.fields.len() + 2);
        json.push(b'{');
        let mut split = None;
        let mut first = true;
        for &i in &rec.order {
            let name = rec.names[i].as_str();
            if name == self.cut {
                continue;
            }
            if split.is_none() && name > self.cut.as_str() {
                split = Some(json.len());
                first = true;
            }
            if !first {
                json.push(b',');
            }
            first = false;
            json.extend_from_slice(&rec.keys[i]);
            json.push(b':');
            json.extend_from_slice(&values[ranges[i].0..ranges[i].1]);
        }
        let split = split.unwrap_or(json.len());
        json.push(b'}');
        Ok(FlatRecord {
            json,
            split,
            cut,
            fields,
        })
    }

    /// The generic path: `apache_avro`'s datum reader, `serde_json::Value::try_from`,
    /// [`FlatRecord::from_json`].
    fn decode_generic(&self, datum: &[u8]) -> Result<FlatRecord<'static>, SchemaError> {
        let decode = |e: &dyn std::fmt::Display| SchemaError::Decode(e.to_string());
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&self.schema)
            .build()
            .and_then(|r| r.read_value(&mut std::io::Cursor::new(datum)))
            .map_err(|e| decode(&e))?;
        let json = serde_json::Value::try_from(value).map_err(|e| decode(&e))?;
        let fields: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        FlatRecord::from_json(&json, &self.cut, &fields)
            .map(FlatRecord::into_owned)
            .map_err(|e| decode(&e))
    }

    /// Decodes one value of `node`, writing its JSON to `out` (`None`: only read it).
    fn value<'a>(
        &'a self,
        node: &'a Node,
        input: &mut Input<'a>,
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<Seen<'a>, Fail> {
        fn put(out: &mut Option<&mut Vec<u8>>, b: &[u8]) {
            if let Some(o) = out {
                o.extend_from_slice(b);
            }
        }
        match node {
            Node::Null => {
                put(&mut out, b"null");
                Ok(Seen::Other)
            }
            Node::Boolean => {
                // apache_avro reads a boolean missing at the end of the input as null
                let Some(&b) = input.buf.get(input.pos) else {
                    put(&mut out, b"null");
                    return Ok(Seen::Other);
                };
                input.pos += 1;
                match b {
                    0 => {
                        put(&mut out, b"false");
                        Ok(Seen::Bool(false))
                    }
                    1 => {
                        put(&mut out, b"true");
                        Ok(Seen::Bool(true))
                    }
                    _ => Err(Fail::Bad(format!(
                        "boolean byte {b:#04x} at {}",
                        input.pos - 1
                    ))),
                }
            }
            Node::Int => {
                let v = input.int()?;
                if let Some(o) = out {
                    json_int(o, i64::from(v));
                }
                Ok(Seen::Other)
            }
            Node::Long => {
                let v = input.long()?;
                if let Some(o) = out {
                    json_int(o, v);
                }
                Ok(Seen::Other)
            }
            Node::String => {
                let len = input.len(self.max_bytes)?;
                let start = input.pos;
                if input.buf.len() - start < len {
                    // so does a string whose bytes are cut off (the input is then used up)
                    input.pos = input.buf.len();
                    put(&mut out, b"null");
                    return Ok(Seen::Other);
                }
                input.pos += len;
                let s = std::str::from_utf8(&input.buf[start..input.pos])
                    .map_err(|e| Fail::Bad(format!("string at {start} is not UTF-8: {e}")))?;
                if let Some(o) = out {
                    json_str(o, s);
                }
                Ok(Seen::Str(s))
            }
            Node::Enum(symbols) => {
                let at = input.pos;
                let i = input.int()?;
                let (symbol, json) = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| Fail::Bad(format!("enum index {i} out of range at {at}")))?;
                put(&mut out, json);
                Ok(Seen::Str(symbol))
            }
            Node::Union(variants) => {
                let at = input.pos;
                let i = match input.long() {
                    Ok(i) => i,
                    // apache_avro reads a union index missing at the end as null
                    Err(Fail::Eof) => {
                        put(&mut out, b"null");
                        return Ok(Seen::Other);
                    }
                    Err(e) => return Err(e),
                };
                let variant = usize::try_from(i)
                    .ok()
                    .and_then(|i| variants.get(i))
                    .ok_or_else(|| Fail::Bad(format!("union index {i} out of range at {at}")))?;
                self.value(variant, input, out)
            }
            Node::Array(items) => {
                put(&mut out, b"[");
                let mut count = 0usize;
                loop {
                    let at = input.pos;
                    let raw = input.long()?;
                    if raw == 0 {
                        break;
                    }
                    let n = if raw < 0 {
                        let _block_bytes = input.long()?;
                        raw.checked_neg()
                            .ok_or_else(|| Fail::Bad(format!("array block {raw} at {at}")))?
                    } else {
                        raw
                    };
                    // apache_avro's bounds: the block's count, then the items so far as Values
                    let total = usize::try_from(n)
                        .ok()
                        .filter(|n| *n <= self.max_bytes)
                        .and_then(|n| count.checked_add(n))
                        .filter(|t| {
                            t.checked_mul(std::mem::size_of::<apache_avro::types::Value>())
                                .is_some_and(|b| b <= self.max_bytes)
                        })
                        .ok_or_else(|| Fail::Bad(format!("array block {raw} at {at}")))?;
                    while count < total {
                        input.items_left = input.items_left.checked_sub(1).ok_or_else(|| {
                            Fail::Bad(format!(
                                "more array items than {ITEMS_PER_BYTE} per byte of a {}-byte datum, at {at}",
                                input.buf.len()
                            ))
                        })?;
                        if count > 0 {
                            put(&mut out, b",");
                        }
                        self.value(items, input, out.as_deref_mut())?;
                        count += 1;
                    }
                }
                put(&mut out, b"]");
                Ok(Seen::Other)
            }
            Node::Record(r) => {
                let rec = &self.records[*r];
                let Some(out) = out else {
                    for f in &rec.fields {
                        self.value(f, input, None)?;
                    }
                    return Ok(Seen::Other);
                };
                // the members in datum order after `base`, then the object in map order
                // after them; then the first part is removed
                let base = out.len();
                let mut ranges = Vec::with_capacity(rec.fields.len());
                for f in &rec.fields {
                    let start = out.len();
                    self.value(f, input, Some(out))?;
                    ranges.push((start, out.len()));
                }
                let end = out.len();
                out.push(b'{');
                for (n, &i) in rec.order.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&rec.keys[i]);
                    out.push(b':');
                    out.extend_from_within(ranges[i].0..ranges[i].1);
                }
                out.push(b'}');
                out.drain(base..end);
                Ok(Seen::Other)
            }
        }
    }
}

/// Writes `v` as `serde_json` does (a Vec cannot fail to take it).
fn json_int(out: &mut Vec<u8>, v: i64) {
    let _ = serde_json::to_writer(&mut *out, &v);
}

/// Compiles schemas to [`Node`]s, each named record once (by its full name).
struct Compiler<'s> {
    names: &'s HashMap<Name, &'s Schema>,
    done: HashMap<String, usize>,
    records: Vec<RecordPlan>,
}

impl Compiler<'_> {
    /// The node of `schema` read within `namespace` (the enclosing record's, as
    /// `apache_avro` resolves names), or `None` for a type that is not transcoded.
    fn node(&mut self, schema: &Schema, namespace: Option<&str>) -> Option<Node> {
        Some(match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Node::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Node::Long,
            Schema::String => Node::String,
            Schema::Enum(e) => Node::Enum(
                e.symbols
                    .iter()
                    .map(|s| {
                        let mut json = Vec::with_capacity(s.len() + 2);
                        json_str(&mut json, s);
                        (s.clone(), json)
                    })
                    .collect(),
            ),
            Schema::Union(u) => Node::Union(
                u.variants()
                    .iter()
                    .map(|v| self.node(v, namespace))
                    .collect::<Option<_>>()?,
            ),
            Schema::Array(a) => Node::Array(Box::new(self.node(&a.items, namespace)?)),
            Schema::Record(r) => {
                let full = r.name.fully_qualified_name(namespace);
                if let Some(&i) = self.done.get(&full.to_string()) {
                    return Some(Node::Record(i));
                }
                let i = self.records.len();
                self.records.push(RecordPlan::default());
                self.done.insert(full.to_string(), i);
                let inner = full.namespace();
                let mut plan = RecordPlan::default();
                let mut order = serde_json::Map::new();
                for (n, f) in r.fields.iter().enumerate() {
                    plan.fields.push(self.node(&f.schema, inner)?);
                    let mut key = Vec::with_capacity(f.name.len() + 2);
                    json_str(&mut key, &f.name);
                    plan.keys.push(key);
                    plan.names.push(f.name.clone());
                    order.insert(f.name.clone(), serde_json::Value::from(n));
                }
                // the order serde_json's map gives the members (sorted, or as inserted
                // with `preserve_order`); two fields of one name are left to the generic path
                if order.len() != r.fields.len() {
                    return None;
                }
                plan.order = order
                    .values()
                    .filter_map(|v| v.as_u64().map(|n| n as usize))
                    .collect();
                self.records[i] = plan;
                Node::Record(i)
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(namespace);
                let schema = *self.names.get(full.as_ref())?;
                return self.node(schema, full.namespace());
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
#[allow(deprecated)] // to_avro_datum: the plain datum writer is what we test against
mod tests {
    use super::*;
    use crate::avro::tests::{meta, records};
    use crate::avro::Schemas;
    use apache_avro::types::Value as AvroValue;
    use ingot_model::*;

    const CUT: &str = "remote_data";
    const FIELDS: &[&str] = &[
        "tenant_id",
        "connection_id",
        "remote_id",
        "modified_at",
        "remote_updated_at",
        "remote_deleted",
    ];

    /// What the materializer's path before this module gave: the converter's datum
    /// reader, `serde_json::Value::try_from`, then the cut.
    fn reference(schema: &Schema, datum: &[u8]) -> Option<FlatRecord<'static>> {
        let v = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .and_then(|r| r.read_value(&mut std::io::Cursor::new(datum)))
            .ok()?;
        let json = serde_json::Value::try_from(v).ok()?;
        Some(
            FlatRecord::from_json(&json, CUT, FIELDS)
                .unwrap()
                .into_owned(),
        )
    }

    /// The decoder and the reference agree on `datum`: the same record, or both refuse it.
    fn agree(d: &FlatDecoder, schema: &Schema, datum: &[u8]) -> bool {
        let got = d.decode(datum).ok().map(FlatRecord::into_owned);
        let want = reference(schema, datum);
        assert_eq!(got, want, "datum {datum:?}");
        want.is_some()
    }

    /// A small deterministic generator (xorshift) for the mutations.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Every prefix of `datum`, and `n` copies with random bytes changed, inserted or
    /// removed: the decoder and the reference agree on each.
    fn agree_on_mutations(d: &FlatDecoder, schema: &Schema, datum: &[u8], n: usize) {
        assert!(agree(d, schema, datum), "the datum itself decodes");
        let mut accepted = 0;
        for len in 0..datum.len() {
            accepted += usize::from(agree(d, schema, &datum[..len]));
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ datum.len() as u64);
        for _ in 0..n {
            let mut m = datum.to_vec();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(m.len());
                match rng.below(4) {
                    0 => m[at] = rng.next() as u8,
                    1 => m[at] ^= 1 << rng.below(8),
                    2 => m.insert(at, rng.next() as u8),
                    _ => {
                        m.remove(at);
                    }
                }
            }
            accepted += usize::from(agree(d, schema, &m));
        }
        // the mutations reach both outcomes
        assert!(accepted > 0);
    }

    /// Every model's records, with a JSON, a non-JSON and no `remote_data`, decode to the
    /// reference's bytes, and so do their prefixes and mutations (or both refuse them).
    #[test]
    fn records_of_every_model_decode_as_the_generic_path_does() {
        let schemas = Schemas::builtin().unwrap();
        for data in records() {
            for rd in [Some(r#"{"id": 1, "b": [true]} "#), Some("not json"), None] {
                let model = data.model();
                let mut rec = NormalizedRecord {
                    meta: meta(rd),
                    data: data.clone(),
                };
                rec.meta.remote_deleted = rd.is_none();
                let schema = &schemas.models[&model];
                let datum = apache_avro::to_avro_datum(
                    schema,
                    schemas.model_value(model, rec.to_json()).unwrap(),
                )
                .unwrap();
                let d = FlatDecoder::new(schema, CUT, FIELDS).unwrap();
                assert!(d.root.is_some(), "{model:?} is transcoded");
                let got = d.decode(&datum).unwrap();
                // what the view reads of it
                assert_eq!(got.cut.as_deref(), rd);
                assert_eq!(got.fields[0], Some(Scalar::Str("acme".into())));
                assert_eq!(got.fields[5], Some(Scalar::Bool(rd.is_none())));
                let (before, after) = got.json.split_at(got.split);
                let whole = [before, b",", after].concat();
                let json: serde_json::Value = serde_json::from_slice(&whole).unwrap();
                assert!(json.get(CUT).is_none());
                assert_eq!(json["id"], rec.meta.id.as_str());
                agree_on_mutations(&d, schema, &datum, 300);
            }
        }
    }

    fn rich_schema() -> Schema {
        Schema::parse_str(
            r#"{"type": "record", "name": "Root", "namespace": "t.a", "fields": [
                {"name": "zeta", "type": "string"},
                {"name": "remote_data", "type": ["null", "string"]},
                {"name": "tenant_id", "type": {"type": "enum", "name": "Tenant", "symbols": ["acme", "globex"]}},
                {"name": "Remote_id", "type": "long"},
                {"name": "when", "type": {"type": "int", "logicalType": "date"}},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "remote_deleted", "type": ["null", "boolean", "string"]},
                {"name": "next", "type": ["null", {"type": "record", "name": "Node", "namespace": "t.b", "fields": [
                    {"name": "v", "type": "int"},
                    {"name": "next", "type": ["null", "Node"]},
                    {"name": "tag", "type": "t.a.Tenant"}]}]},
                {"name": "nodes", "type": {"type": "array", "items": "t.b.Node"}},
                {"name": "_n", "type": "null"},
                {"name": "Zed", "type": "boolean"}
            ]}"#,
        )
        .unwrap()
    }

    fn rich_value() -> AvroValue {
        let node = |v: i32, next: Option<AvroValue>| {
            AvroValue::Record(vec![
                ("v".into(), AvroValue::Int(v)),
                (
                    "next".into(),
                    match next {
                        None => AvroValue::Union(0, Box::new(AvroValue::Null)),
                        Some(n) => AvroValue::Union(1, Box::new(n)),
                    },
                ),
                ("tag".into(), AvroValue::Enum(1, "globex".into())),
            ])
        };
        AvroValue::Record(vec![
            ("zeta".into(), AvroValue::String("z\u{7f}\"".into())),
            (
                "remote_data".into(),
                AvroValue::Union(1, Box::new(AvroValue::String("[1,2]".into()))),
            ),
            ("tenant_id".into(), AvroValue::Enum(0, "acme".into())),
            ("Remote_id".into(), AvroValue::Long(-1)),
            ("when".into(), AvroValue::Date(19000)),
            ("at".into(), AvroValue::TimestampMillis(1_700_000_000_000)),
            (
                "remote_deleted".into(),
                AvroValue::Union(1, Box::new(AvroValue::Boolean(true))),
            ),
            (
                "next".into(),
                AvroValue::Union(1, Box::new(node(1, Some(node(2, None))))),
            ),
            (
                "nodes".into(),
                AvroValue::Array(vec![node(3, None), node(4, Some(node(5, None)))]),
            ),
            ("_n".into(), AvroValue::Null),
            ("Zed".into(), AvroValue::Boolean(false)),
        ])
    }

    /// Enums, logical types, named types across namespaces, recursion and multi-branch
    /// unions decode as the generic path does, mutated too.
    #[test]
    fn named_recursive_and_logical_types_decode_as_the_generic_path_does() {
        let schema = rich_schema();
        let datum = apache_avro::to_avro_datum(&schema, rich_value()).unwrap();
        let d = FlatDecoder::new(&schema, CUT, FIELDS).unwrap();
        assert!(d.root.is_some());
        let got = d.decode(&datum).unwrap();
        assert_eq!(got.cut.as_deref(), Some("[1,2]"));
        assert_eq!(got.fields[0], Some(Scalar::Str("acme".into())));
        assert_eq!(got.fields[2], None, "keys are case-sensitive");
        assert_eq!(got.fields[5], Some(Scalar::Bool(true)));
        agree_on_mutations(&d, &schema, &datum, 3000);
    }

    /// A schema with types the decoder does not transcode goes through the generic path.
    #[test]
    fn other_types_go_through_the_generic_path() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "f", "type": "double"},
                {"name": "m", "type": {"type": "map", "values": "long"}},
                {"name": "remote_data", "type": "string"},
                {"name": "tenant_id", "type": "string"}
            ]}"#,
        )
        .unwrap();
        let value = AvroValue::Record(vec![
            ("f".into(), AvroValue::Double(0.1)),
            (
                "m".into(),
                AvroValue::Map([("b".to_string(), AvroValue::Long(2))].into()),
            ),
            ("remote_data".into(), AvroValue::String("{}".into())),
            ("tenant_id".into(), AvroValue::String("acme".into())),
        ]);
        let datum = apache_avro::to_avro_datum(&schema, value).unwrap();
        let d = FlatDecoder::new(&schema, CUT, FIELDS).unwrap();
        assert!(d.root.is_none());
        let got = d.decode(&datum).unwrap();
        assert_eq!(got.json, br#"{"f":0.1,"m":{"b":2}"tenant_id":"acme"}"#);
        assert_eq!(&got.json[got.split..], br#""tenant_id":"acme"}"#);
        assert_eq!(got.cut.as_deref(), Some("{}"));
        agree_on_mutations(&d, &schema, &datum, 300);
    }

    /// Array blocks written with their byte size (a negative count) read as plain ones.
    #[test]
    fn array_blocks_with_byte_sizes_decode() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "xs", "type": {"type": "array", "items": "long"}}]}"#,
        )
        .unwrap();
        let d = FlatDecoder::new(&schema, CUT, FIELDS).unwrap();
        // -2 items (zig-zag 3) of 2 bytes (zig-zag 4): 1, -1; then 1 item: 2; end
        let datum = [3, 4, 2, 1, 2, 4, 0];
        assert_eq!(d.decode(&datum).unwrap().json, br#"{"xs":[1,-1,2]}"#);
        agree_on_mutations(&d, &schema, &datum, 2000);
    }

    /// Arrays of arrays of `null` (items of no bytes): eight bytes would ask for 10¹² items
    /// as JSON text; the decoder refuses them with a reason, and takes a datum within the
    /// bound.
    #[test]
    fn items_of_no_bytes_are_bounded_by_the_datums_size() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "xs", "type": {"type": "array", "items": {"type": "array", "items": "null"}}}]}"#,
        )
        .unwrap();
        let d = FlatDecoder::new(&schema, CUT, FIELDS).unwrap();
        assert!(d.root.is_some(), "null and arrays are transcoded");
        // zig-zag varints: a block of 1 000 000 inner arrays, each a block of 1 000 000
        // nulls, then the ends
        let million = [0x80, 0x89, 0x7a];
        let datum = [&million[..], &million[..], &[0], &[0]].concat();
        let err = d.decode(&datum).unwrap_err().to_string();
        assert!(
            err.contains("more array items than 8 per byte of a 8-byte datum"),
            "{err}"
        );
        // 2 inner arrays of 3 nulls, 6 bytes: 8 items, within 48
        let datum = [4, 6, 0, 6, 0, 0];
        assert_eq!(
            d.decode(&datum).unwrap().json,
            br#"{"xs":[[null,null,null],[null,null,null]]}"#
        );
        assert!(agree(&d, &schema, &datum));
    }

    #[test]
    fn the_wire_format_header_is_checked() {
        assert_eq!(
            wire_schema_id(&[0, 0, 0, 1, 2, 9]).unwrap(),
            (258, &[9u8][..])
        );
        assert_eq!(wire_schema_id(&[0, 0, 0, 0, 7]).unwrap(), (7, &[][..]));
        for bad in [&b""[..], &[0, 0, 0, 1], b"not avro at all"] {
            assert!(matches!(wire_schema_id(bad), Err(SchemaError::Decode(_))));
        }
    }
}
