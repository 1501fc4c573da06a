//! Helpers every mapping shares: ids, exact money, times, optional text.

use crate::StandardizeError;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::marker::PhantomData;
use std::str::FromStr;

/// Parses the payload bytes as a JSON object.
pub fn parse_object(payload: &[u8]) -> Result<serde_json::Map<String, Value>, StandardizeError> {
    object(serde_json::from_slice::<Value>(payload))
}

/// Parses the payload bytes as a JSON object, keeping only the object members whose key
/// `keep` accepts, at every depth; the others are checked as JSON and skipped, never
/// built. A mapping that reads only keys `keep` accepts gets the same output as from
/// [`parse_object`] (the same parser: the same errors for the same bad input), without
/// building the tree of everything it does not read (a Shopify order's `*_set` money
/// objects, `properties`, `duties`, …: about half of a webhook body).
pub fn parse_object_keeping(
    payload: &[u8],
    keep: fn(&str) -> bool,
) -> Result<serde_json::Map<String, Value>, StandardizeError> {
    use serde::de::DeserializeSeed;
    // simd-json first (SIMD structural scan, about twice serde_json's rate here); on any
    // error the same bytes go through serde_json, so a bad payload gets exactly
    // serde_json's error, and what only serde_json reads (an integer beyond u64, read as
    // a float) reads as before
    let mut buf = payload.to_vec();
    if let Ok(mut de) = simd_json::Deserializer::from_slice(&mut buf) {
        if let Ok(v) = Kept(keep).deserialize(&mut de) {
            return object(Ok(v));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(payload);
    let parsed = Kept(keep)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    object(parsed)
}

/// The largest payload whose parse buffers a thread keeps for the next one.
const SCRATCH_KEPT_BYTES: usize = 1 << 20;

/// Parses the payload bytes as a typed object `T` (a mapping's struct for one 3PA
/// resource: [`Present`] leaves, [`Nested`] objects, [`Items`] arrays): no tree is built,
/// members `T` does not name are checked as JSON and skipped. simd-json first; on any
/// error (bad JSON, a repeated key, a top level that is no object) the bytes go through
/// [`parse_object`] and `T` is read from that tree, so bad input gets exactly the error it
/// got before, a repeated key keeps its last value (as a `serde_json::Map` does), and the
/// same payload gives the same `T` on either path.
pub fn parse_typed<T: DeserializeOwned>(payload: &[u8]) -> Result<T, StandardizeError> {
    // the parser's buffers (and the copy of the payload it parses in place) are kept
    // per thread: a payload of a few KB costs no allocation but the values' own
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<u8>, simd_json::Buffers)> =
            std::cell::RefCell::new((Vec::new(), simd_json::Buffers::default()));
    }
    let typed = SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            return None;
        };
        let (buf, buffers) = &mut *scratch;
        buf.clear();
        buf.extend_from_slice(payload);
        let typed = simd_json::Deserializer::from_slice_with_buffers(buf, buffers)
            .ok()
            .and_then(|mut de| Nested::<T>::deserialize(&mut de).ok())
            .and_then(|n| n.0);
        // a rare large body (ingest takes up to 5 MiB) does not stay held by the thread
        if buf.capacity() > SCRATCH_KEPT_BYTES {
            *scratch = Default::default();
        }
        typed
    });
    if let Some(t) = typed {
        return Ok(t);
    }
    from_object(parse_object(payload)?)
}

/// Reads a typed object `T` from a parsed tree (a GraphQL node turned into REST names,
/// or [`parse_typed`]'s fallback). Leaves accept any JSON value, so this fails only for a
/// `T` with a field of another type.
pub fn from_object<T: DeserializeOwned>(
    obj: serde_json::Map<String, Value>,
) -> Result<T, StandardizeError> {
    T::deserialize(Value::Object(obj))
        .map_err(|e| StandardizeError::MalformedPayload(format!("unexpected shape: {e}")))
}

/// A member of a typed object as the tree-based helpers read it: `None` when the key is
/// absent, `Some(Value::Null)` when it is `null` (a distinction the status tables use),
/// else the value as `serde_json::Value` would hold it. Declare it as
/// `#[serde(default, deserialize_with = "common::present")] key: Present`.
pub type Present = Option<Value>;

/// Deserializes a member that is there, whatever its value (see [`Present`]).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Present, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A member read as `T` when it is a JSON object, `None` for anything else (absent,
/// `null`, a string, an array, …), as `Value::as_object` reads a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Nested<T>(pub Option<T>);

impl<T> Default for Nested<T> {
    fn default() -> Self {
        Nested(None)
    }
}

/// A member read as a list when it is a JSON array (`None` otherwise, as
/// `Value::as_array`): each entry `Some(T)` when it is an object, `None` when not.
#[derive(Debug, Clone, PartialEq)]
pub struct Items<T>(pub Option<Vec<Option<T>>>);

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items(None)
    }
}

impl<T> Items<T> {
    /// The object entries (other entries and a non-array skipped).
    pub fn objects(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten().flatten()
    }

    /// Whether the member is an array.
    pub fn is_array(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the member is an array with at least one entry (of any shape).
    pub fn is_non_empty_array(&self) -> bool {
        self.0.as_ref().is_some_and(|a| !a.is_empty())
    }
}

/// How [`Nested`] and [`Items`] read a value: an object, an array, or any other shape
/// (checked as JSON, never built).
trait Shape<'de>: Sized {
    fn other() -> Self;
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
    fn array<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>;
}

impl<'de, T: Deserialize<'de>> Shape<'de> for Nested<T> {
    fn other() -> Self {
        Nested(None)
    }
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| Nested(Some(t)))
    }
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Nested(None))
    }
}

impl<'de, T: Deserialize<'de>> Shape<'de> for Items<T> {
    fn other() -> Self {
        Items(None)
    }
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Items(None))
    }
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Nested(item)) = seq.next_element::<Nested<T>>()? {
            out.push(item);
        }
        Ok(Items(Some(out)))
    }
}

/// The visitor of a [`Shape`].
struct ShapeVisitor<S>(PhantomData<S>);

impl<'de, S: Shape<'de>> Visitor<'de> for ShapeVisitor<S> {
    type Value = S;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<S, E> {
        Ok(S::other())
    }
    fn visit_i64<E>(self, _: i64) -> Result<S, E> {
        Ok(S::other())
    }
    fn visit_u64<E>(self, _: u64) -> Result<S, E> {
        Ok(S::other())
    }
    fn visit_f64<E>(self, _: f64) -> Result<S, E> {
        Ok(S::other())
    }
    fn visit_str<E>(self, _: &str) -> Result<S, E> {
        Ok(S::other())
    }
    fn visit_unit<E>(self) -> Result<S, E> {
        Ok(S::other())
    }
    fn visit_none<E>(self) -> Result<S, E> {
        Ok(S::other())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<S, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S, A::Error> {
        S::object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S, A::Error> {
        S::array(seq)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(PhantomData))
    }
}

fn object(
    parsed: Result<Value, serde_json::Error>,
) -> Result<serde_json::Map<String, Value>, StandardizeError> {
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(StandardizeError::MalformedPayload(format!(
            "expected a JSON object, got {}",
            kind(&other)
        ))),
        Err(e) => Err(StandardizeError::MalformedPayload(format!(
            "invalid JSON: {e}"
        ))),
    }
}

/// A JSON value built like `serde_json::Value`'s own visitor builds it, except that
/// object members whose key is not kept are skipped ([`serde::de::IgnoredAny`]).
#[derive(Clone, Copy)]
struct Kept(fn(&str) -> bool);

/// An object key: `Some` when kept. Keys arrive borrowed (or from the parser's scratch
/// buffer for escaped ones), so a skipped key is never allocated.
struct KeptKey(fn(&str) -> bool);

impl<'de> serde::de::DeserializeSeed<'de> for KeptKey {
    type Value = Option<String>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for KeptKey {
    type Value = Option<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Self::Value, E> {
        Ok((self.0)(k).then(|| k.to_string()))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Kept {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Kept {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            match key {
                Some(k) => {
                    let v = map.next_value_seed(self)?;
                    out.insert(k, v);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An id as a string: integers keep every digit (serde_json reads them as u64/i64, never
/// f64), strings pass through. `null`, `""`, `0` and other shapes are `None`
/// (WooCommerce uses `0` for "none": `customer_id: 0` is a guest, `variation_id: 0` a
/// simple product — QUIRKS Q-W8).
pub fn id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) if n.is_u64() || n.is_i64() => {
            let s = n.to_string();
            (s != "0").then_some(s)
        }
        Value::String(s) if !s.trim().is_empty() && s != "0" => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A required id; error names the field.
pub fn required_id(v: Option<&Value>, field: &'static str) -> Result<String, StandardizeError> {
    match v {
        None | Some(Value::Null) => Err(StandardizeError::MissingField(field)),
        Some(other) => id(Some(other)).ok_or_else(|| StandardizeError::InvalidField {
            field: field.to_string(),
            reason: format!("not an id: {other}"),
        }),
    }
}

/// Non-empty text; `""` and `null` are `None`.
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A decimal from a JSON string (`"404.95"`) or number (`89.99`). Numbers are read from
/// their shortest round-trip text, so `89.99` is exactly `89.99`; no arithmetic happens in
/// floats. `null` and `""` are `None`.
pub fn decimal(v: Option<&Value>, field: &str) -> Result<Option<Decimal>, StandardizeError> {
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(StandardizeError::InvalidField {
                field: field.to_string(),
                reason: format!("expected a decimal, got {}", kind(other)),
            })
        }
    };
    Decimal::from_str(&s)
        .or_else(|_| Decimal::from_scientific(&s))
        .map(Some)
        .map_err(|e| StandardizeError::InvalidField {
            field: field.to_string(),
            reason: format!("not a decimal {s:?}: {e}"),
        })
}

/// Digits after the decimal point of a currency's minor unit (ISO 4217): USD 2, JPY 0,
/// KWD 3. Unknown or missing currencies use 2.
pub fn minor_units(currency: Option<&str>) -> u32 {
    // the last code looked up, per thread: an order formats every amount in one currency,
    // and `iso_currency`'s lookup by code walks its table
    thread_local! {
        static LAST: std::cell::Cell<Option<([u8; 3], u32)>> = const { std::cell::Cell::new(None) };
    }
    let code = currency.and_then(|c| <[u8; 3]>::try_from(c.as_bytes()).ok());
    if let (Some(code), Some((last, units))) = (code, LAST.get()) {
        if last == code {
            return units;
        }
    }
    let units = currency
        .and_then(iso_currency::Currency::from_code)
        .and_then(|c| c.exponent())
        .map(u32::from)
        .unwrap_or(2);
    if let Some(code) = code {
        LAST.set(Some((code, units)));
    }
    units
}

/// Formats an amount for output: at least the currency's minor-unit digits (`10` →
/// `"10.00"` in USD), trailing zeros beyond them dropped, never rounded (`0.125` stays).
pub fn money(d: Decimal, currency: Option<&str>) -> String {
    let minor = minor_units(currency);
    let mut n = d.normalize();
    if n.scale() < minor {
        n.rescale(minor);
    }
    n.to_string()
}

/// [`decimal`] then [`money`].
pub fn money_field(
    v: Option<&Value>,
    field: &str,
    currency: Option<&str>,
) -> Result<Option<String>, StandardizeError> {
    Ok(decimal(v, field)?.map(|d| money(d, currency)))
}

/// Rounds to the currency's minor unit (banker's rounding is *not* used: half away from
/// zero, as shops print prices), e.g. a WooCommerce unit price derived from a line total.
pub fn round_money(d: Decimal, currency: Option<&str>) -> String {
    let minor = minor_units(currency);
    let r = d.round_dp_with_strategy(minor, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    money(r, currency)
}

/// A time field to UTC. `zoneless_is_utc` reads a string without offset as UTC
/// (WooCommerce `*_gmt`). `null`/`""` are `None`.
pub fn time(
    v: Option<&Value>,
    field: &str,
    zoneless_is_utc: bool,
) -> Result<Option<DateTime<Utc>>, StandardizeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => ingot_model::parse_time(s, zoneless_is_utc)
            .map(Some)
            .map_err(|e| StandardizeError::InvalidField {
                field: field.to_string(),
                reason: e.to_string(),
            }),
        Some(other) => Err(StandardizeError::InvalidField {
            field: field.to_string(),
            reason: format!("expected a time string, got {}", kind(other)),
        }),
    }
}

/// [`time`] formatted as RFC 3339 UTC.
pub fn time_string(
    v: Option<&Value>,
    field: &str,
    zoneless_is_utc: bool,
) -> Result<Option<String>, StandardizeError> {
    Ok(time(v, field, zoneless_is_utc)?.map(|t| ingot_model::format_utc(&t)))
}

/// A comma-separated tag string (`"Léon, Noël"`) or an array of strings, trimmed, empty
/// entries dropped.
pub fn tags(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| match t {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Object(o) => text(o.get("name")),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A JSON integer (or integer string) as i64; anything else `None`.
pub fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean, also from NetSuite's `"T"`/`"F"` strings.
pub fn boolean(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "T" || s == "true" => Some(true),
        Value::String(s) if s == "F" || s == "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_keep_all_digits() {
        let v: Value = serde_json::from_str(r#"{"id": 820982911946154508}"#).unwrap();
        assert_eq!(id(v.get("id")).as_deref(), Some("820982911946154508"));
        assert_eq!(id(Some(&json!("18"))).as_deref(), Some("18"));
        assert_eq!(id(Some(&json!(0))), None);
        assert_eq!(id(Some(&json!(null))), None);
    }

    #[test]
    fn money_is_exact_and_padded_to_minor_units() {
        assert_eq!(
            money_field(Some(&json!("404.95")), "x", Some("USD"))
                .unwrap()
                .as_deref(),
            Some("404.95")
        );
        assert_eq!(
            money_field(Some(&json!(195.66)), "x", Some("USD"))
                .unwrap()
                .as_deref(),
            Some("195.66")
        );
        assert_eq!(
            money_field(Some(&json!(10)), "x", Some("USD"))
                .unwrap()
                .as_deref(),
            Some("10.00")
        );
        assert_eq!(
            money_field(Some(&json!("0.9")), "x", Some("USD"))
                .unwrap()
                .as_deref(),
            Some("0.90")
        );
        assert_eq!(
            money_field(Some(&json!("1000")), "x", Some("JPY"))
                .unwrap()
                .as_deref(),
            Some("1000")
        );
        assert_eq!(
            money_field(Some(&json!("0.125")), "x", Some("USD"))
                .unwrap()
                .as_deref(),
            Some("0.125")
        );
        assert_eq!(
            money_field(Some(&json!("")), "x", Some("USD")).unwrap(),
            None
        );
        assert!(money_field(Some(&json!("abc")), "x", Some("USD")).is_err());
        let float = Decimal::from_str("14.309999999999999").unwrap();
        assert_eq!(round_money(float, Some("USD")), "14.31");
    }

    #[test]
    fn tags_split_and_trim() {
        assert_eq!(tags(Some(&json!("Léon, Noël"))), vec!["Léon", "Noël"]);
        assert_eq!(tags(Some(&json!(""))), Vec::<String>::new());
    }
}
