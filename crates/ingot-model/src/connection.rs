//! A connection's persisted description (what `POST /v1/connections` takes and the
//! `ingot.connections` control topic stores).

use crate::Provider;
use serde::{Deserialize, Serialize};

/// One end user's link to one 3PA account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    pub id: String,
    /// Owning tenant (set from the caller's API key by the connections API).
    #[serde(default)]
    pub tenant: String,
    pub provider: Provider,
    /// Shopify: `<shop>.myshopify.com`.
    #[serde(default)]
    pub shop_domain: Option<String>,
    /// API base URL override (a simulator, a proxy, the WooCommerce site, the NetSuite REST
    /// host). Shopify defaults to `https://<shop_domain>`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub credentials: Credentials,
    /// Webhook signing secrets (old and new during a rotation).
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
    /// How far back the historical sync goes, in days (default 730).
    #[serde(default)]
    pub history_days: Option<u32>,
    /// Reconciliation poll interval in seconds (default 43200 = 12 h; NetSuite 900).
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// The 3PA account's IANA time zone where its API needs local times.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Records per page to request.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// No sync at all (webhooks only), e.g. for static demo connections.
    #[serde(default)]
    pub sync_disabled: bool,
}

/// API credentials of a connection. Never logged (`Debug` hides values).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub consumer_key: Option<String>,
    #[serde(default)]
    pub consumer_secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = |o: &Option<String>| if o.is_some() { "***" } else { "-" };
        write!(
            f,
            "Credentials {{ access_token: {}, consumer_key: {}, consumer_secret: {} }}",
            mark(&self.access_token),
            mark(&self.consumer_key),
            mark(&self.consumer_secret)
        )
    }
}

impl ConnectionSpec {
    pub fn history_days(&self) -> u32 {
        self.history_days.unwrap_or(730)
    }

    pub fn poll_interval_secs(&self) -> u64 {
        self.poll_interval_secs.unwrap_or(match self.provider {
            Provider::NetSuite => 900,
            _ => 43_200,
        })
    }

    /// The API base URL: the override, else `https://<shop_domain>` for Shopify.
    pub fn api_base_url(&self) -> Option<String> {
        self.base_url
            .clone()
            .or_else(|| self.shop_domain.as_ref().map(|d| format!("https://{d}")))
    }
}
