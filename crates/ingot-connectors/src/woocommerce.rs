//! WooCommerce connector (to be written).

use crate::{Connector, ConnectorConfig, ConnectorError, Deletion, Page, PageToken, RemoteRecord, Window};
use async_trait::async_trait;
use ingot_model::{Model, Provider};

pub struct WooCommerceConnector {
    #[allow(dead_code)]
    config: ConnectorConfig,
}

impl WooCommerceConnector {
    pub fn new(config: ConnectorConfig) -> Self {
        WooCommerceConnector { config }
    }
}

#[async_trait]
impl Connector for WooCommerceConnector {
    fn provider(&self) -> Provider {
        Provider::WooCommerce
    }
    async fn list(&self, _model: Model, _window: &Window, _page: Option<&PageToken>) -> Result<Page<RemoteRecord>, ConnectorError> {
        Err(ConnectorError::Unsupported("not written yet".into()))
    }
    async fn deletions(&self, _model: Model, _window: &Window, _page: Option<&PageToken>) -> Result<Page<Deletion>, ConnectorError> {
        Err(ConnectorError::Unsupported("not written yet".into()))
    }
}
