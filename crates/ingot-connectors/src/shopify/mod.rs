//! Shopify connectors: the GraphQL Admin API (the default) and the REST Admin API (legacy,
//! for custom apps on older API versions).
//!
//! - [`graphql`]: the GraphQL client ([`graphql::ShopifyGraphql`]) with cost-based
//!   throttling, shared by everything that talks GraphQL to a shop (listing, and later
//!   bulk operations and webhook subscriptions);
//! - [`listing`]: [`ShopifyGraphqlConnector`], the [`crate::Connector`] on GraphQL
//!   (`orders`, `customers`, `products` queries, the `events` deletion feed);
//! - [`subscriptions`]: [`subscriptions::ShopifySubscriptions`], the managed webhook
//!   subscriptions (`webhookSubscriptionCreate` & co.) for GraphQL and REST connections;
//! - [`rest`]: [`ShopifyConnector`], the [`crate::Connector`] on REST (its items are
//!   re-exported here, as before the split).
//!
//! [`connector`] picks one from [`crate::ConnectorConfig::api`]: `rest`, or `graphql`
//! (also the default: `None`, or anything else).

pub mod bulk;
pub mod graphql;
pub mod listing;
pub mod rest;
pub mod subscriptions;
mod ties;

pub use graphql::{ShopifyGraphql, API_VERSION as GRAPHQL_API_VERSION};
pub use listing::ShopifyGraphqlConnector;
pub use rest::*;

use crate::{Connector, ConnectorConfig};

/// The API a Shopify connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopifyApi {
    Graphql,
    Rest,
}

impl ShopifyApi {
    /// `rest` (any case) → REST; anything else, or nothing → GraphQL (the default).
    pub fn from_config(config: &ConnectorConfig) -> ShopifyApi {
        match config.api.as_deref() {
            Some(a) if a.trim().eq_ignore_ascii_case("rest") => ShopifyApi::Rest,
            _ => ShopifyApi::Graphql,
        }
    }
}

/// The Shopify connector a connection's config asks for ([`ShopifyApi::from_config`]).
pub fn connector(config: ConnectorConfig) -> Box<dyn Connector> {
    match ShopifyApi::from_config(&config) {
        ShopifyApi::Rest => Box::new(ShopifyConnector::new(config)),
        ShopifyApi::Graphql => Box::new(ShopifyGraphqlConnector::new(config)),
    }
}
