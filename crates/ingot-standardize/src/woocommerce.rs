//! WooCommerce mapping (REST v3 JSON, also the webhook bodies). To be written.
use crate::{Mapping, Outcome, StandardizeError};
use ingot_model::{Model, Provider, RawEvent, RawOp};

pub struct WooCommerceMapping;

impl Mapping for WooCommerceMapping {
    fn provider(&self) -> Provider {
        Provider::WooCommerce
    }
    fn mapping_version(&self) -> &'static str {
        "woocommerce/1"
    }
    fn route(&self, topic: &str) -> Option<(Model, RawOp)> {
        let (resource, verb) = topic.split_once('/')?;
        let model = match resource {
            "orders" => Model::Order,
            "customers" => Model::Customer,
            "products" => Model::Product,
            _ => return None,
        };
        let op = match verb {
            "create" | "updated" | "update" | "paid" | "cancelled" | "fulfilled" | "partially_fulfilled" | "edited" => RawOp::Upsert,
            "delete" => RawOp::Delete,
            _ => return None,
        };
        Some((model, op))
    }
    fn standardize(&self, _event: &RawEvent) -> Result<Outcome, StandardizeError> {
        Err(StandardizeError::MalformedPayload("shopify mapping not written yet".into()))
    }
}
