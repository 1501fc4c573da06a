use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A third-party app (3PA) ingot can connect to. Serialized in lower case
/// (`shopify`, `woocommerce`, `netsuite`); it names the raw topic `raw.<provider>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Shopify,
    WooCommerce,
    NetSuite,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Shopify, Provider::WooCommerce, Provider::NetSuite];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Shopify => "shopify",
            Provider::WooCommerce => "woocommerce",
            Provider::NetSuite => "netsuite",
        }
    }

    /// The raw topic of this provider: `raw.<provider>`.
    pub fn raw_topic(self) -> String {
        format!("raw.{}", self.as_str())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = RecordKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| RecordKeyError::UnknownProvider(s.to_string()))
    }
}

/// A common model. Topics are singular (`normalized.order`), API resources plural (`orders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Order,
    Customer,
    Product,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Order, Model::Customer, Model::Product];

    /// Singular name, as in record keys and topic names: `order`.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Order => "order",
            Model::Customer => "customer",
            Model::Product => "product",
        }
    }

    /// Plural API resource name: `orders`.
    pub fn resource(self) -> &'static str {
        match self {
            Model::Order => "orders",
            Model::Customer => "customers",
            Model::Product => "products",
        }
    }

    pub fn from_resource(s: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.resource() == s)
    }

    /// The compacted normalized topic of this model: `normalized.<model>`.
    pub fn normalized_topic(self) -> String {
        format!("normalized.{}", self.as_str())
    }

    pub fn from_normalized_topic(topic: &str) -> Option<Model> {
        topic
            .strip_prefix("normalized.")
            .and_then(|m| m.parse().ok())
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Model {
    type Err = RecordKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| RecordKeyError::UnknownModel(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordKeyError {
    #[error("record key {0:?} is not <connection_id>/<model>/<remote_id>")]
    Malformed(String),
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
}

/// `<connection_id>/<model>/<remote_id>`: the Kafka key of a record on raw and normalized
/// topics. A connection id contains no `/`; the remote id may.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub connection_id: String,
    pub model: Model,
    pub remote_id: String,
}

/// Namespace of ingot's record ids (UUIDv5 of the record key).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_0b7c_4f7e_4c54_9d0e_1c2b_3a4f_5e60);

impl RecordKey {
    pub fn new(
        connection_id: impl Into<String>,
        model: Model,
        remote_id: impl Into<String>,
    ) -> Self {
        RecordKey {
            connection_id: connection_id.into(),
            model,
            remote_id: remote_id.into(),
        }
    }

    /// ingot's public id of this record: UUIDv5 of the key string. Stable across replays.
    pub fn record_id(&self) -> String {
        Uuid::new_v5(&ID_NAMESPACE, self.to_string().as_bytes()).to_string()
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.connection_id, self.model, self.remote_id
        )
    }
}

impl FromStr for RecordKey {
    type Err = RecordKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(c), Some(m), Some(r)) if !c.is_empty() && !r.is_empty() => {
                Ok(RecordKey::new(c, m.parse()?, r))
            }
            _ => Err(RecordKeyError::Malformed(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_key_round_trips_and_keeps_large_ids_exact() {
        let key = RecordKey::new("shop-1", Model::Order, "820982911946154508");
        assert_eq!(key.to_string(), "shop-1/order/820982911946154508");
        let back: RecordKey = "shop-1/order/820982911946154508".parse().unwrap();
        assert_eq!(back, key);
        assert_eq!(back.remote_id, "820982911946154508");
    }

    #[test]
    fn record_id_is_uuid_v5_of_the_key_and_stable() {
        let a = RecordKey::new("shop-1", Model::Order, "1").record_id();
        let b = RecordKey::new("shop-1", Model::Order, "1").record_id();
        let c = RecordKey::new("shop-1", Model::Customer, "1").record_id();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!("shop-1/order".parse::<RecordKey>().is_err());
        assert!("shop-1/invoice/1".parse::<RecordKey>().is_err());
        assert!("/order/1".parse::<RecordKey>().is_err());
    }
}
