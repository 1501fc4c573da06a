//! A connection's description (what `POST /v1/connections` takes) and its stored form
//! (what the `ingot.connections` control topic holds: [`StoredConnection`], with the
//! credentials and webhook secrets sealed by a [`Keyring`]).

use crate::secret::{Keyring, SealError, Secret};
use crate::Provider;
use serde::{Deserialize, Serialize};

/// One end user's link to one 3PA account. Its secrets are [`Secret`]s: `Debug` prints
/// `***`, and it has no `Serialize` (store it through [`ConnectionSpec::seal`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    pub webhook_secrets: Vec<Secret>,
    /// How far back the historical sync goes, in days (default 730).
    #[serde(default)]
    pub history_days: Option<u32>,
    /// Reconciliation poll interval in seconds (default 43200 = 12 h; NetSuite 900).
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// The 3PA account's IANA time zone where its API needs local times. Required for a
    /// synced NetSuite connection (SuiteQL dates carry no offset).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Records per page to request.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// No sync at all (webhooks only), e.g. for static demo connections.
    #[serde(default)]
    pub sync_disabled: bool,
    /// Which 3PA API the sync uses where there are several (Shopify: `graphql`, the
    /// default, or `rest` for custom apps on older API versions).
    #[serde(default)]
    pub api: Option<String>,
    /// The 3PA API version to request (Shopify `YYYY-MM`); default: the connector's pinned one.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Whether the historical sync runs through the 3PA's bulk export where it has one
    /// (Shopify GraphQL bulk operations); default `true`. `false`: paged listing.
    #[serde(default)]
    pub bulk_backfill: Option<bool>,
    /// Set by ingot, never by the caller (not accepted in `POST /v1/connections`): the
    /// signing secret ingot generated for the webhook subscriptions it manages on 3PAs
    /// that take one per subscription (WooCommerce). Ingest accepts deliveries signed with
    /// it besides `webhook_secrets`.
    #[serde(skip)]
    pub generated_webhook_secret: Option<Secret>,
    /// Set by ingot: the 3PA said the app was removed (Shopify `app/uninstalled`); the
    /// connection's sync is stopped.
    #[serde(skip)]
    pub disconnected: Option<Disconnected>,
}

/// Why and when a connection was disconnected by its 3PA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnected {
    /// RFC 3339 UTC.
    pub at: String,
    /// E.g. `shopify app/uninstalled webhook`.
    pub reason: String,
}

/// API credentials of a connection. Never logged (`Debug` prints `***`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    pub access_token: Option<Secret>,
    #[serde(default)]
    pub consumer_key: Option<Secret>,
    #[serde(default)]
    pub consumer_secret: Option<Secret>,
}

/// A connection as the `ingot.connections` control topic stores it (JSON): the
/// [`ConnectionSpec`] with every credential and webhook secret sealed
/// (`ingot-sealed:v1:<key id>:…`, bound to `<connection id>/<field>`). Values written
/// before sealing existed hold them in clear and still read ([`StoredConnection::unseal`]
/// tells so), and are sealed again on their next write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredConnection {
    pub id: String,
    #[serde(default)]
    pub tenant: String,
    pub provider: Provider,
    #[serde(default)]
    pub shop_domain: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub credentials: StoredCredentials,
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
    #[serde(default)]
    pub history_days: Option<u32>,
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub sync_disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_backfill: Option<bool>,
    /// Sealed like the other secrets (context `<id>/generated_webhook_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_webhook_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected: Option<Disconnected>,
}

/// [`Credentials`] as stored: sealed texts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCredentials {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub consumer_key: Option<String>,
    #[serde(default)]
    pub consumer_secret: Option<String>,
}

/// The associated data a secret of connection `id` is sealed with.
fn context(id: &str, field: &str) -> String {
    format!("{id}/{field}")
}

impl ConnectionSpec {
    /// The stored form, every secret sealed under `keyring`'s current key.
    pub fn seal(&self, keyring: &Keyring) -> StoredConnection {
        self.seal_with(|context, s| keyring.seal(context, s))
    }

    fn seal_with(&self, seal_one: impl Fn(&str, &Secret) -> String) -> StoredConnection {
        let seal = |field: &str, s: &Option<Secret>| {
            s.as_ref().map(|s| seal_one(&context(&self.id, field), s))
        };
        StoredConnection {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            provider: self.provider,
            shop_domain: self.shop_domain.clone(),
            base_url: self.base_url.clone(),
            credentials: StoredCredentials {
                access_token: seal("access_token", &self.credentials.access_token),
                consumer_key: seal("consumer_key", &self.credentials.consumer_key),
                consumer_secret: seal("consumer_secret", &self.credentials.consumer_secret),
            },
            webhook_secrets: self
                .webhook_secrets
                .iter()
                .map(|s| seal_one(&context(&self.id, "webhook_secret"), s))
                .collect(),
            history_days: self.history_days,
            poll_interval_secs: self.poll_interval_secs,
            timezone: self.timezone.clone(),
            page_size: self.page_size,
            sync_disabled: self.sync_disabled,
            api: self.api.clone(),
            api_version: self.api_version.clone(),
            bulk_backfill: self.bulk_backfill,
            generated_webhook_secret: self
                .generated_webhook_secret
                .as_ref()
                .map(|s| seal_one(&context(&self.id, "generated_webhook_secret"), s)),
            disconnected: self.disconnected.clone(),
        }
    }

    /// Every secret a delivery for this connection may be signed with: the caller's
    /// `webhook_secrets` (old and new during a rotation), then the generated one.
    pub fn all_webhook_secrets(&self) -> Vec<Secret> {
        let mut all = self.webhook_secrets.clone();
        all.extend(self.generated_webhook_secret.clone());
        all
    }

    /// The connection as its creator described it: the fields ingot manages
    /// (`generated_webhook_secret`, `disconnected`) cleared. Two specs describe the same
    /// request when these are equal.
    pub fn as_requested(&self) -> ConnectionSpec {
        ConnectionSpec {
            generated_webhook_secret: None,
            disconnected: None,
            ..self.clone()
        }
    }

    /// Keeps what ingot manages from the stored version `old` of this connection when it
    /// is stored again (a configured connection at each start): the generated secret (the
    /// 3PA's subscriptions sign with it) for the same provider, and the disconnection while
    /// the credentials are unchanged (new credentials are a reconnection).
    pub fn keep_managed_from(&mut self, old: &ConnectionSpec) {
        if old.provider == self.provider && self.generated_webhook_secret.is_none() {
            self.generated_webhook_secret = old.generated_webhook_secret.clone();
        }
        if old.credentials == self.credentials && self.disconnected.is_none() {
            self.disconnected = old.disconnected.clone();
        }
    }
}

impl ConnectionSpec {
    /// The stored form with every secret **in clear**: only for a store that has no
    /// keyring (as ingot wrote before sealing existed). Prefer [`ConnectionSpec::seal`].
    pub fn store_in_clear(&self) -> StoredConnection {
        let clear = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_string());
        StoredConnection {
            credentials: StoredCredentials {
                access_token: clear(&self.credentials.access_token),
                consumer_key: clear(&self.credentials.consumer_key),
                consumer_secret: clear(&self.credentials.consumer_secret),
            },
            webhook_secrets: self
                .webhook_secrets
                .iter()
                .map(|s| s.expose().to_string())
                .collect(),
            generated_webhook_secret: self
                .generated_webhook_secret
                .as_ref()
                .map(|s| s.expose().to_string()),
            ..self.seal_with(|_, _| String::new())
        }
    }
}

impl StoredConnection {
    /// The connection with its secrets opened. A value stored in clear (written before
    /// sealing existed) is accepted only when `accept_clear`; the flag in the answer
    /// says whether any secret was in clear (so the caller can seal it again).
    pub fn unseal(
        self,
        keyring: Option<&Keyring>,
        accept_clear: bool,
    ) -> Result<(ConnectionSpec, bool), SealError> {
        let id = self.id.clone();
        let mut clear = false;
        let mut open = |field: &str, stored: String| -> Result<Secret, SealError> {
            if !Keyring::is_sealed(&stored) {
                if !accept_clear {
                    return Err(SealError::Clear);
                }
                clear = true;
                return Ok(Secret::new(stored));
            }
            match keyring {
                Some(k) => k.open(&context(&id, field), &stored),
                None => Err(SealError::UnknownKey(
                    stored.split(':').nth(2).unwrap_or_default().to_string(),
                )),
            }
        };
        let c = self.credentials;
        let credentials = Credentials {
            access_token: c
                .access_token
                .map(|s| open("access_token", s))
                .transpose()?,
            consumer_key: c
                .consumer_key
                .map(|s| open("consumer_key", s))
                .transpose()?,
            consumer_secret: c
                .consumer_secret
                .map(|s| open("consumer_secret", s))
                .transpose()?,
        };
        let webhook_secrets = self
            .webhook_secrets
            .into_iter()
            .map(|s| open("webhook_secret", s))
            .collect::<Result<Vec<_>, _>>()?;
        let generated_webhook_secret = self
            .generated_webhook_secret
            .map(|s| open("generated_webhook_secret", s))
            .transpose()?;
        Ok((
            ConnectionSpec {
                id: self.id,
                tenant: self.tenant,
                provider: self.provider,
                shop_domain: self.shop_domain,
                base_url: self.base_url,
                credentials,
                webhook_secrets,
                history_days: self.history_days,
                poll_interval_secs: self.poll_interval_secs,
                timezone: self.timezone,
                page_size: self.page_size,
                sync_disabled: self.sync_disabled,
                api: self.api,
                api_version: self.api_version,
                bulk_backfill: self.bulk_backfill,
                generated_webhook_secret,
                disconnected: self.disconnected,
            },
            clear,
        ))
    }
}

/// Bounds of a connection's settings, checked by [`ConnectionSpec::validate`].
pub const HISTORY_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;
/// Reconciliation interval bounds in seconds: one second (tests and simulators poll
/// fast) to 30 days.
pub const POLL_INTERVAL_SECS: std::ops::RangeInclusive<u64> = 1..=2_592_000;
/// Records per page a connection may ask a 3PA for.
pub const PAGE_SIZE: std::ops::RangeInclusive<u32> = 1..=1000;
/// Webhook signing secrets a connection may carry (old and new during a rotation, with
/// room to spare): every unauthenticated delivery that fails is hashed with each of them.
pub const MAX_WEBHOOK_SECRETS: usize = 8;

/// Why a connection was refused: every problem found, each a sentence for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct InvalidConnection(pub Vec<String>);

impl ConnectionSpec {
    /// Checks what the sync engine will compute with, whoever wrote the spec (the config
    /// file or `POST /v1/connections`): the id, the bounds above, the time zone, and that a
    /// synced connection says where its API is. Reports every problem at once.
    pub fn validate(&self) -> Result<(), InvalidConnection> {
        let mut problems = Vec::new();
        if self.id.is_empty() || self.id.contains('/') {
            problems.push(format!(
                "id {:?} must be non-empty and contain no '/'",
                self.id
            ));
        }
        if let Some(d) = self.history_days {
            if !HISTORY_DAYS.contains(&d) {
                problems.push(format!(
                    "history_days {d} is out of range {}..={}",
                    HISTORY_DAYS.start(),
                    HISTORY_DAYS.end()
                ));
            }
        }
        if let Some(p) = self.poll_interval_secs {
            if !POLL_INTERVAL_SECS.contains(&p) {
                problems.push(format!(
                    "poll_interval_secs {p} is out of range {}..={}",
                    POLL_INTERVAL_SECS.start(),
                    POLL_INTERVAL_SECS.end()
                ));
            }
        }
        if let Some(n) = self.page_size {
            if !PAGE_SIZE.contains(&n) {
                problems.push(format!(
                    "page_size {n} is out of range {}..={}",
                    PAGE_SIZE.start(),
                    PAGE_SIZE.end()
                ));
            }
        }
        if self.webhook_secrets.len() > MAX_WEBHOOK_SECRETS {
            problems.push(format!(
                "webhook_secrets holds {} secrets; at most {MAX_WEBHOOK_SECRETS}",
                self.webhook_secrets.len()
            ));
        }
        if self.webhook_secrets.iter().any(|s| s.expose().is_empty()) {
            // an HMAC keyed with nothing is one anybody can compute
            problems.push("webhook_secrets must not contain an empty secret".into());
        }
        match &self.timezone {
            Some(tz) if tz.parse::<chrono_tz::Tz>().is_err() => {
                problems.push(format!("timezone {tz:?} is not an IANA time zone"));
            }
            // SuiteQL filters and answers dates in the account's time zone, without an
            // offset (DESIGN.md, "Sync": NetSuite account timezone): a synced NetSuite
            // connection can neither ask nor read its dates without it
            None if self.provider == Provider::NetSuite && !self.sync_disabled => {
                problems.push(
                    "timezone (the account's IANA time zone, e.g. \"America/New_York\") is required for provider netsuite unless sync_disabled"
                        .into(),
                );
            }
            _ => {}
        }
        if let Some(api) = &self.api {
            if !matches!(api.as_str(), "graphql" | "rest") {
                problems.push(format!("api {api:?} must be \"graphql\" or \"rest\""));
            }
        }
        if let Some(v) = &self.api_version {
            let b = v.as_bytes();
            let ok = v == "unstable"
                || (b.len() == 7
                    && b[4] == b'-'
                    && b.iter()
                        .enumerate()
                        .all(|(i, c)| i == 4 || c.is_ascii_digit()));
            if !ok {
                problems.push(format!("api_version {v:?} must be YYYY-MM (or unstable)"));
            }
        }
        if !self.sync_disabled && self.api_base_url().is_none() {
            problems.push(
                "base_url (or shop_domain for Shopify) is required unless sync_disabled".into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidConnection(problems))
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> ConnectionSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn api_selection_is_optional_and_checked() {
        let old: StoredConnection = serde_json::from_value(serde_json::json!({
            "id": "c1", "provider": "shopify", "base_url": "http://x"
        }))
        .unwrap();
        assert_eq!(
            (old.api.as_deref(), old.api_version.as_deref()),
            (None, None)
        );
        let s = spec(
            serde_json::json!({"id": "c1", "provider": "shopify", "base_url": "http://x",
            "api": "rest", "api_version": "2024-04"}),
        );
        assert!(s.validate().is_ok());
        let stored = s.store_in_clear();
        assert_eq!(stored.api.as_deref(), Some("rest"));
        let (back, _) = stored.unseal(None, true).unwrap();
        assert_eq!(back.api_version.as_deref(), Some("2024-04"));
        let bad = spec(
            serde_json::json!({"id": "c1", "provider": "shopify", "base_url": "http://x",
            "api": "soap", "api_version": "24-4"}),
        );
        assert_eq!(bad.validate().unwrap_err().0.len(), 2);
    }

    #[test]
    fn the_stored_form_holds_no_secret_and_opens_back() {
        let spec = spec(serde_json::json!({
            "id": "shop-2", "provider": "woocommerce", "base_url": "https://w.example",
            "credentials": {"consumer_key": "ck_live_1", "consumer_secret": "cs_live_2"},
            "webhook_secrets": ["whsec_old", "whsec_new"],
        }));
        let debug = format!("{spec:?}");
        for s in ["ck_live_1", "cs_live_2", "whsec_old", "whsec_new"] {
            assert!(!debug.contains(s), "{debug}");
        }
        let (ring, _) = Keyring::generate("k1").unwrap();
        let stored = serde_json::to_string(&spec.seal(&ring)).unwrap();
        for s in ["ck_live_1", "cs_live_2", "whsec_old", "whsec_new"] {
            assert!(!stored.contains(s), "{stored}");
        }
        let back: StoredConnection = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            back.clone().unseal(Some(&ring), false),
            Ok((spec.clone(), false))
        );
        assert!(matches!(
            back.clone().unseal(None, true),
            Err(SealError::UnknownKey(k)) if k == "k1"
        ));
        // a value written before sealing: read when allowed, and said to be in clear
        let legacy: StoredConnection = serde_json::from_value(serde_json::json!({
            "id": "shop-2", "provider": "woocommerce", "base_url": "https://w.example",
            "credentials": {"consumer_key": "ck_live_1", "consumer_secret": "cs_live_2"},
            "webhook_secrets": ["whsec_old", "whsec_new"],
        }))
        .unwrap();
        assert_eq!(legacy.clone().unseal(Some(&ring), true), Ok((spec, true)));
        assert_eq!(legacy.unseal(Some(&ring), false), Err(SealError::Clear));
        // a sealed secret moved to another connection does not open
        let mut moved = back;
        moved.id = "shop-3".into();
        assert_eq!(moved.unseal(Some(&ring), false), Err(SealError::Forged));
    }

    #[test]
    fn managed_fields_are_sealed_kept_and_never_taken_from_the_caller() {
        let mut spec = spec(serde_json::json!({
            "id": "w", "provider": "woocommerce", "base_url": "https://w.example",
            "webhook_secrets": ["user-secret"],
        }));
        assert!(serde_json::from_value::<ConnectionSpec>(serde_json::json!({
            "id": "w", "provider": "woocommerce", "generated_webhook_secret": "x",
        }))
        .is_err());
        let requested = spec.clone();
        spec.generated_webhook_secret = Some(Secret::new("gen-0123456789abcdef0123456789abcdef"));
        spec.disconnected = Some(Disconnected {
            at: "2026-01-01T00:00:00Z".into(),
            reason: "test".into(),
        });
        assert_eq!(spec.as_requested(), requested);
        assert_eq!(
            spec.all_webhook_secrets()
                .iter()
                .map(|s| s.expose().to_string())
                .collect::<Vec<_>>(),
            ["user-secret", "gen-0123456789abcdef0123456789abcdef"]
        );
        let (ring, _) = Keyring::generate("k1").unwrap();
        let stored = serde_json::to_string(&spec.seal(&ring)).unwrap();
        assert!(!stored.contains("gen-0123"), "{stored}");
        let back: StoredConnection = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.unseal(Some(&ring), false), Ok((spec.clone(), false)));
        // stored again from the config: the generated secret and the disconnection stay
        let mut again = requested.clone();
        again.keep_managed_from(&spec);
        assert_eq!(again, spec);
        // new credentials reconnect
        let mut fresh = requested;
        fresh.credentials.consumer_key = Some(Secret::new("ck_new"));
        fresh.keep_managed_from(&spec);
        assert!(fresh.disconnected.is_none() && fresh.generated_webhook_secret.is_some());
    }

    #[test]
    fn validation_bounds_what_the_sync_engine_computes_with() {
        let ok = spec(serde_json::json!({
            "id": "shop-2", "provider": "shopify", "shop_domain": "s.myshopify.com",
            "history_days": 730, "poll_interval_secs": 43200, "timezone": "America/New_York",
        }));
        assert_eq!(ok.validate(), Ok(()));
        for (field, value, reason) in [
            (
                "history_days",
                serde_json::json!(1_000_000_000u64),
                "history_days 1000000000 is out of range 1..=3650",
            ),
            (
                "history_days",
                serde_json::json!(0),
                "history_days 0 is out of range 1..=3650",
            ),
            (
                "poll_interval_secs",
                serde_json::json!(1_000_000_000_000_000_000u64),
                "poll_interval_secs 1000000000000000000 is out of range 1..=2592000",
            ),
            (
                "poll_interval_secs",
                serde_json::json!(0),
                "poll_interval_secs 0 is out of range 1..=2592000",
            ),
            (
                "page_size",
                serde_json::json!(0),
                "page_size 0 is out of range 1..=1000",
            ),
            (
                "timezone",
                serde_json::json!("Mars/Olympus"),
                "timezone \"Mars/Olympus\" is not an IANA time zone",
            ),
            (
                "id",
                serde_json::json!("a/b"),
                "id \"a/b\" must be non-empty and contain no '/'",
            ),
        ] {
            let mut v = serde_json::json!({
                "id": "shop-2", "provider": "shopify", "shop_domain": "s.myshopify.com",
            });
            v[field] = value;
            assert_eq!(
                spec(v).validate(),
                Err(InvalidConnection(vec![reason.to_string()])),
                "{field}"
            );
        }
        let edges = spec(serde_json::json!({
            "id": "n", "provider": "netsuite", "base_url": "http://x", "timezone": "UTC",
            "history_days": 3650, "poll_interval_secs": 2_592_000,
        }));
        assert_eq!(edges.validate(), Ok(()));
        let no_zone =
            spec(serde_json::json!({"id": "n", "provider": "netsuite", "base_url": "http://x"}));
        assert_eq!(
            no_zone.validate().unwrap_err().to_string(),
            "timezone (the account's IANA time zone, e.g. \"America/New_York\") is required for provider netsuite unless sync_disabled"
        );
        let not_synced =
            spec(serde_json::json!({"id": "n", "provider": "netsuite", "sync_disabled": true}));
        assert_eq!(not_synced.validate(), Ok(()));
        let secrets = |n: usize, s: &str| {
            spec(serde_json::json!({
                "id": "w", "provider": "woocommerce", "base_url": "http://x",
                "webhook_secrets": vec![s; n],
            }))
            .validate()
        };
        assert_eq!(secrets(MAX_WEBHOOK_SECRETS, "s"), Ok(()));
        assert_eq!(
            secrets(MAX_WEBHOOK_SECRETS + 1, "s")
                .unwrap_err()
                .to_string(),
            "webhook_secrets holds 9 secrets; at most 8"
        );
        assert_eq!(
            secrets(1, "").unwrap_err().to_string(),
            "webhook_secrets must not contain an empty secret"
        );
        let nowhere = spec(serde_json::json!({"id": "w", "provider": "woocommerce"}));
        assert_eq!(
            nowhere.validate().unwrap_err().to_string(),
            "base_url (or shop_domain for Shopify) is required unless sync_disabled"
        );
        // every problem at once
        let many = spec(serde_json::json!({
            "id": "", "provider": "shopify", "sync_disabled": true,
            "history_days": 0, "poll_interval_secs": 0,
        }));
        assert_eq!(many.validate().unwrap_err().0.len(), 3);
    }
}
