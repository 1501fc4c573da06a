//! The common models. Field names follow the shared vocabulary of Rutter, Apideck and
//! Alloy. Money fields are exact decimal strings in the record's `currency`; times are
//! RFC 3339 UTC strings. Every field a 3PA may not send is optional.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Metadata every normalized record carries (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RecordMeta {
    /// ingot's id: UUIDv5 of the record key.
    pub id: String,
    /// The 3PA's id, as a string.
    pub remote_id: String,
    pub connection_id: String,
    pub tenant_id: String,
    /// `shopify`, `woocommerce`, `netsuite`.
    pub provider: String,
    pub remote_created_at: Option<String>,
    /// The 3PA's modified time (the version of the record), RFC 3339 UTC.
    pub remote_updated_at: String,
    pub remote_deleted: bool,
    /// When ingot last changed this record, RFC 3339 UTC.
    pub modified_at: String,
    /// `<provider>/<n>`: the mapping that produced this version.
    pub mapping_version: String,
    pub raw_topic: String,
    /// A `long` in the Avro schemas: serialized as i64, so the schema-aware writer takes it.
    #[serde(serialize_with = "i32_as_i64")]
    pub raw_partition: i32,
    pub raw_offset: i64,
    /// The 3PA object as received (JSON text); served only on request.
    pub remote_data: Option<String>,
}

fn i32_as_i64<S: serde::Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(i64::from(*v))
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Address {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    /// State / province name.
    pub region: Option<String>,
    /// State / province code (`ON`, `KY`).
    pub region_code: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2 when the 3PA gives one.
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LineItem {
    pub remote_id: Option<String>,
    pub product_remote_id: Option<String>,
    pub variant_remote_id: Option<String>,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub quantity: i64,
    /// Price of one unit before discounts.
    pub unit_price: Option<String>,
    pub total_discount: Option<String>,
    pub total_tax: Option<String>,
    /// `unit_price × quantity − total_discount` (tax excluded), as the 3PA states it or derived.
    pub total: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Discount {
    pub code: Option<String>,
    pub amount: Option<String>,
    /// `fixed_amount`, `percentage`, `shipping`, or the 3PA's own word.
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShippingLine {
    pub remote_id: Option<String>,
    pub title: Option<String>,
    pub code: Option<String>,
    pub price: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaxLine {
    pub title: Option<String>,
    /// Rate as a decimal fraction string (`"0.06"`).
    pub rate: Option<String>,
    pub amount: Option<String>,
}

/// A sales order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Order {
    /// The human order number (Shopify `name` `#1001`, WooCommerce `number`, NetSuite `tranId`).
    pub order_number: Option<String>,
    /// `open`, `closed`, `cancelled`, `draft`, `unknown`.
    pub status: String,
    /// `pending`, `authorized`, `partially_paid`, `paid`, `partially_refunded`, `refunded`,
    /// `voided`, `failed`, `unknown`.
    pub payment_status: String,
    /// `unfulfilled`, `partially_fulfilled`, `fulfilled`, `unknown`.
    pub fulfillment_status: String,
    /// ISO 4217 code of every amount on the order.
    pub currency: Option<String>,
    /// The customer's remote id, when the order has a customer (guests have none).
    pub customer_remote_id: Option<String>,
    /// ingot id of that customer (UUIDv5 of its record key).
    pub customer_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub billing_address: Option<Address>,
    pub shipping_address: Option<Address>,
    pub line_items: Vec<LineItem>,
    pub discounts: Vec<Discount>,
    pub shipping_lines: Vec<ShippingLine>,
    pub tax_lines: Vec<TaxLine>,
    /// Sum of line items after line discounts, before shipping and tax.
    pub subtotal_price: Option<String>,
    pub total_discount: Option<String>,
    pub total_tax: Option<String>,
    pub total_shipping: Option<String>,
    pub total_price: Option<String>,
    pub total_refunded: Option<String>,
    pub tags: Vec<String>,
    pub note: Option<String>,
    pub closed_at: Option<String>,
    pub cancelled_at: Option<String>,
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Customer {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    /// `active`, `disabled`, `invited`, `unknown`.
    pub status: String,
    pub currency: Option<String>,
    pub accepts_marketing: Option<bool>,
    pub orders_count: Option<i64>,
    pub total_spent: Option<String>,
    pub tags: Vec<String>,
    pub note: Option<String>,
    pub default_address: Option<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VariantOption {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProductVariant {
    pub remote_id: String,
    pub sku: Option<String>,
    pub title: Option<String>,
    pub price: Option<String>,
    pub compare_at_price: Option<String>,
    pub options: Vec<VariantOption>,
    /// Units on hand; absent when the 3PA does not track stock for the variant.
    pub inventory_quantity: Option<i64>,
    pub barcode: Option<String>,
    pub remote_updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProductOption {
    pub name: String,
    pub values: Vec<String>,
}

/// A product with its variants (a product without variants has none here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Product {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `active`, `draft`, `archived`, `unknown`.
    pub status: String,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub handle: Option<String>,
    pub currency: Option<String>,
    pub tags: Vec<String>,
    pub options: Vec<ProductOption>,
    pub variants: Vec<ProductVariant>,
}

/// The standardized content of one record, by model.
#[allow(clippy::large_enum_variant)] // records are moved, not stored in bulk
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordData {
    Order(Order),
    Customer(Customer),
    Product(Product),
}

impl RecordData {
    pub fn model(&self) -> crate::Model {
        match self {
            RecordData::Order(_) => crate::Model::Order,
            RecordData::Customer(_) => crate::Model::Customer,
            RecordData::Product(_) => crate::Model::Product,
        }
    }

    /// SHA-256 of the canonical JSON of the standardized fields (metadata excluded): the
    /// content hash of the version rule. Field order is the struct's, so it is canonical.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        // the JSON is hashed as it is written: no buffer of the whole record
        serde_json::to_writer(&mut hasher, self).expect("record data serializes");
        hasher.finalize().into()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("record data serializes")
    }

    pub fn from_json(
        model: crate::Model,
        value: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        Ok(match model {
            crate::Model::Order => RecordData::Order(serde_json::from_value(value)?),
            crate::Model::Customer => RecordData::Customer(serde_json::from_value(value)?),
            crate::Model::Product => RecordData::Product(serde_json::from_value(value)?),
        })
    }
}

/// A normalized record: metadata plus the model's fields, flat. Its JSON form is the
/// API's record shape and, through `schemas/<model>.avsc`, the Avro value on
/// `normalized.<model>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedRecord {
    pub meta: RecordMeta,
    pub data: RecordData,
}

/// The flat form: the metadata's fields, then the model's, in declaration order — the
/// order of `schemas/<model>.avsc`, so a schema-aware Avro writer takes each field as it
/// comes (no field is buffered) and `serde_json` gets the API's record object.
impl Serialize for NormalizedRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            #[serde(flatten)]
            meta: &'a RecordMeta,
            #[serde(flatten)]
            data: &'a RecordData,
        }
        Flat {
            meta: &self.meta,
            data: &self.data,
        }
        .serialize(s)
    }
}

impl NormalizedRecord {
    /// Flat JSON object: metadata fields first, then the model's fields.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("record serializes")
    }

    /// Reads the flat JSON form back (unknown fields are ignored, so old readers accept
    /// records with newer optional fields).
    pub fn from_json(
        model: crate::Model,
        value: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        let meta: RecordMeta = serde_json::from_value(value.clone())?;
        let data = RecordData::from_json(model, value)?;
        Ok(NormalizedRecord { meta, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_ignores_metadata_and_sees_fields() {
        let a = RecordData::Customer(Customer {
            email: Some("a@example.com".into()),
            status: "active".into(),
            ..Default::default()
        });
        let mut b = a.clone();
        assert_eq!(a.content_hash(), b.content_hash());
        if let RecordData::Customer(c) = &mut b {
            c.email = Some("b@example.com".into());
        }
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn normalized_record_json_round_trips_flat() {
        let rec = NormalizedRecord {
            meta: RecordMeta {
                id: "x".into(),
                remote_id: "820982911946154508".into(),
                remote_updated_at: "2022-01-01T00:00:00Z".into(),
                ..Default::default()
            },
            data: RecordData::Product(Product {
                name: Some("Shirt".into()),
                status: "active".into(),
                ..Default::default()
            }),
        };
        let json = rec.to_json();
        assert_eq!(json["remote_id"], "820982911946154508");
        assert_eq!(json["name"], "Shirt");
        assert_eq!(
            NormalizedRecord::from_json(crate::Model::Product, json).unwrap(),
            rec
        );
    }
}
