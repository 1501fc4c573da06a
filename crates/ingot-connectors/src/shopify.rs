//! Shopify connector (to be written).

use crate::{Connector, ConnectorConfig, ConnectorError, Deletion, Page, PageToken, RemoteRecord, Window};
use async_trait::async_trait;
use ingot_model::{Model, Provider};

pub struct ShopifyConnector {
    #[allow(dead_code)]
    config: ConnectorConfig,
}

impl ShopifyConnector {
    pub fn new(config: ConnectorConfig) -> Self {
        ShopifyConnector { config }
    }
}

#[async_trait]
impl Connector for ShopifyConnector {
    fn provider(&self) -> Provider {
        Provider::Shopify
    }
    async fn list(&self, _model: Model, _window: &Window, _page: Option<&PageToken>) -> Result<Page<RemoteRecord>, ConnectorError> {
        Err(ConnectorError::Unsupported("not written yet".into()))
    }
    async fn deletions(&self, _model: Model, _window: &Window, _page: Option<&PageToken>) -> Result<Page<Deletion>, ConnectorError> {
        Err(ConnectorError::Unsupported("not written yet".into()))
    }
}
