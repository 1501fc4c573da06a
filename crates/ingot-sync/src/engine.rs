use crate::status::{Backfill, ModelStatus, SyncState};
use crate::subscriptions::{self, WebhookHealth};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ingot_connectors::bulk::{BulkExport, BulkState};
use ingot_connectors::subscriptions::{
    callback_url, subscriptions_for, unmanaged_reason, WebhookSubscriptions,
};
use ingot_connectors::{
    connector_for, Connector, ConnectorConfig, ConnectorError, Deletion, RemoteRecord, Window,
};
use ingot_kafka::{AvroCodec, KafkaError, KafkaSettings, Producer, Reader};
use ingot_model::{
    format_utc, ConnectionSpec, Keyring, Model, RawEvent, RecordKey, StoredConnection,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// One raw event to write for the sync.
struct RawItem<'a> {
    model: Model,
    remote_id: &'a str,
    topic: &'a str,
    payload: &'a [u8],
    event_id: String,
    triggered_at: Option<String>,
}

/// Tries to start a bulk export while the shop runs as many as it may before the run
/// fails (and is retried after `retry_after_failure`, its checkpoint kept).
pub const MAX_BULK_SLOT_WAITS: u32 = 30;

/// Consecutive pages that bring only record versions the listing already returned
/// before a listing counts as stalled (a 3PA whose paging loops).
pub const MAX_STALLED_PAGES: u32 = 3;

/// Progress of one listing (one historical-sync window or one reconciliation run): the
/// distinct records it returned and the continuations it was given. Whatever a connector
/// does, a listing that repeats a continuation or keeps returning versions it already
/// returned stops with [`ConnectorError::NoProgress`] instead of looping.
#[derive(Default)]
struct Listing {
    tokens: HashSet<String>,
    ids: HashSet<(Model, String)>,
    versions: HashSet<(Model, String, i64, u32)>,
    stalled: u32,
}

impl Listing {
    /// Accounts for one page; returns how many of its records are new to this listing.
    fn page(
        &mut self,
        items: &[RemoteRecord],
        next: Option<&ingot_connectors::PageToken>,
    ) -> Result<u64, ConnectorError> {
        let mut new_ids = 0;
        let mut new_versions = 0;
        for r in items {
            if self.ids.insert((r.model, r.remote_id.clone())) {
                new_ids += 1;
            }
            let t = (
                r.model,
                r.remote_id.clone(),
                r.updated_at.timestamp(),
                r.updated_at.timestamp_subsec_nanos(),
            );
            if self.versions.insert(t) {
                new_versions += 1;
            }
        }
        if !items.is_empty() && new_versions == 0 {
            self.stalled += 1;
            if self.stalled >= MAX_STALLED_PAGES {
                return Err(ConnectorError::NoProgress(format!(
                    "{} pages in a row returned only records this listing already had",
                    self.stalled
                )));
            }
        } else if new_versions > 0 {
            self.stalled = 0;
        }
        if let Some(t) = next {
            if !self.tokens.insert(t.0.clone()) {
                return Err(ConnectorError::NoProgress(format!(
                    "the 3PA returned a continuation it had already returned in this listing ({:.80})",
                    t.0
                )));
            }
        }
        Ok(new_ids)
    }

    fn deletion_page(
        &mut self,
        next: Option<&ingot_connectors::PageToken>,
    ) -> Result<(), ConnectorError> {
        if let Some(t) = next {
            if !self.tokens.insert(format!("deletions:{}", t.0)) {
                return Err(ConnectorError::NoProgress(format!(
                    "the deletion feed returned a continuation it had already returned ({:.80})",
                    t.0
                )));
            }
        }
        Ok(())
    }
}

/// Compacted control topic: key = connection id, value = [`StoredConnection`] JSON (secrets
/// sealed with the engine's [`Keyring`]), tombstone = deleted.
pub const CONNECTIONS_TOPIC: &str = "ingot.connections";
/// Compacted checkpoint topic: key = `<connection_id>/<model>`, value = `ModelStatus` JSON.
pub const SYNC_TOPIC: &str = "ingot.sync";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("schema: {0}")]
    Schema(#[from] ingot_kafka::SchemaError),
    #[error("control record {topic}@{offset} unreadable: {reason}")]
    Corrupt {
        topic: String,
        offset: i64,
        reason: String,
    },
    #[error("connection {0:?} not found")]
    NotFound(String),
    #[error("invalid connection: {0}")]
    Invalid(String),
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Width of a historical-sync window (each is listed, then checkpointed).
    pub window: ChronoDuration,
    /// How far each reconciliation reaches back before the cursor (inclusive overlap).
    pub overlap: ChronoDuration,
    /// Wait after a failed run before trying again (capped by the poll interval).
    pub retry_after_failure: Duration,
    pub models: Vec<Model>,
    /// Pause between two polls of a running bulk export (and between two tries to start
    /// one while the shop runs as many as it may).
    pub bulk_poll_interval: Duration,
    /// Bulk jobs a historical sync starts (a failed or expired one is started again)
    /// before it falls back to the paged listing.
    pub bulk_attempts: u32,
    /// `[http] public_url`: where 3PAs reach ingot's webhook receiver. `None`: ingot
    /// subscribes to nothing and polling carries every connection.
    pub public_url: Option<String>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            window: ChronoDuration::days(30),
            overlap: ChronoDuration::minutes(10),
            retry_after_failure: Duration::from_secs(60),
            models: Model::ALL.to_vec(),
            bulk_poll_interval: Duration::from_secs(2),
            bulk_attempts: 2,
            public_url: None,
        }
    }
}

/// A connection's running sync and its wake-up signal.
type SyncTask = (JoinHandle<()>, Arc<Notify>);

struct Inner {
    kafka: KafkaSettings,
    producer: Producer,
    codec: AvroCodec,
    settings: SyncSettings,
    /// Seals secrets in `ingot.connections`; `None` (an engine opened without one) stores
    /// them in clear, as before sealing existed.
    keyring: Option<Keyring>,
    connections: RwLock<BTreeMap<String, ConnectionSpec>>,
    statuses: RwLock<HashMap<(String, Model), ModelStatus>>,
    /// Webhook subscription health per connection (`ingot.sync`, `<id>/webhooks`).
    webhooks: RwLock<HashMap<String, WebhookHealth>>,
    tasks: Mutex<HashMap<String, SyncTask>>,
    /// Reconciliations asked for through the API, not started yet.
    forced: Mutex<HashSet<(String, Model)>>,
    changes: watch::Sender<u64>,
}

/// A reconciliation run started on request ([`Engine::reconcile_now`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileRun {
    pub connection_id: String,
    /// `reconcile`.
    pub kind: &'static str,
    /// When it was asked for (RFC 3339 UTC): its models' `last_run_started` will be later.
    pub requested_at: String,
    /// The models it re-reads, each from its cursor minus the overlap.
    pub models: Vec<ReconcileModel>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileModel {
    /// The resource name (`orders`, ...).
    pub model: String,
    /// The lower bound the run re-reads from (cursor − overlap, RFC 3339 UTC).
    pub from: String,
}

/// The sync engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn status_key(connection: &str, model: Model) -> String {
    format!("{connection}/{model}")
}

/// The `ingot.sync` key of a connection's webhook subscription health.
fn webhooks_key(connection: &str) -> String {
    format!("{connection}/{WEBHOOKS_KEY}")
}

const WEBHOOKS_KEY: &str = "webhooks";

/// What `DELETE /v1/connections/{id}` did about the connection's webhook subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deleted {
    /// ingot's subscriptions removed from the 3PA.
    pub subscriptions_removed: usize,
    /// Why some could not be removed (the connection is deleted all the same).
    pub subscriptions_error: Option<String>,
}

/// 32 random bytes from the OS, hex: the signing secret of managed subscriptions.
fn generate_secret() -> ingot_model::Secret {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    ingot_model::Secret::new(hex::encode(bytes))
}

/// The connector settings of a connection.
fn connector_config(spec: &ConnectionSpec) -> ConnectorConfig {
    ConnectorConfig {
        base_url: spec.api_base_url().unwrap_or_default(),
        access_token: spec.credentials.access_token.clone(),
        consumer_key: spec.credentials.consumer_key.clone(),
        consumer_secret: spec.credentials.consumer_secret.clone(),
        timezone: spec.timezone.clone(),
        page_size: spec.page_size,
        max_attempts: None,
        api: spec.api.clone(),
        api_version: spec.api_version.clone(),
        bulk_backfill: spec.bulk_backfill,
    }
}

/// Aborts a spawned task when dropped (the initial subscription of a connection dies
/// with the connection's task).
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    ingot_model::parse_time(s, true).ok()
}

impl Engine {
    /// Reads the connections and checkpoints back from their control topics, with no
    /// keyring: secrets are stored in clear and sealed ones cannot be read. Prefer
    /// [`Engine::open_sealed`].
    pub async fn open(
        kafka: KafkaSettings,
        codec: AvroCodec,
        settings: SyncSettings,
    ) -> Result<Engine, EngineError> {
        tracing::warn!(
            component = "sync",
            "sync engine without a secrets keyring: connection credentials are stored in clear"
        );
        Self::open_with(kafka, codec, settings, None).await
    }

    /// [`Engine::open`] with the keyring that seals connection secrets at rest. Connections
    /// stored in clear (before sealing existed) are read and stored again, sealed.
    pub async fn open_sealed(
        kafka: KafkaSettings,
        codec: AvroCodec,
        settings: SyncSettings,
        keyring: Keyring,
    ) -> Result<Engine, EngineError> {
        Self::open_with(kafka, codec, settings, Some(keyring)).await
    }

    async fn open_with(
        kafka: KafkaSettings,
        codec: AvroCodec,
        settings: SyncSettings,
        keyring: Option<Keyring>,
    ) -> Result<Engine, EngineError> {
        let mut connections = BTreeMap::new();
        let mut in_clear = Vec::new();
        for m in kafka.read_all(CONNECTIONS_TOPIC).await? {
            let Some(id) = m.key_str().map(str::to_string) else {
                continue;
            };
            match &m.value {
                None => {
                    connections.remove(&id);
                    in_clear.retain(|c| c != &id);
                }
                Some(v) => {
                    let corrupt = |reason: String| EngineError::Corrupt {
                        topic: CONNECTIONS_TOPIC.into(),
                        offset: m.offset,
                        reason,
                    };
                    let stored: StoredConnection =
                        serde_json::from_slice(v).map_err(|e| corrupt(e.to_string()))?;
                    let (spec, clear) = stored
                        .unseal(keyring.as_ref(), true)
                        .map_err(|e| corrupt(format!("connection {id:?}: {e}")))?;
                    in_clear.retain(|c| c != &id);
                    if clear {
                        in_clear.push(id.clone());
                    }
                    connections.insert(id, spec);
                }
            }
        }
        let mut statuses = HashMap::new();
        let mut webhooks = HashMap::new();
        for m in kafka.read_all(SYNC_TOPIC).await? {
            let Some((conn, model)) = m.key_str().and_then(|k| k.rsplit_once('/')) else {
                continue;
            };
            if model == WEBHOOKS_KEY {
                match m
                    .value
                    .as_deref()
                    .map(serde_json::from_slice::<WebhookHealth>)
                {
                    Some(Ok(h)) => {
                        webhooks.insert(conn.to_string(), h);
                    }
                    _ => {
                        webhooks.remove(conn);
                    }
                }
                continue;
            }
            let Ok(model) = model.parse::<Model>() else {
                continue;
            };
            match &m.value {
                None => {
                    statuses.remove(&(conn.to_string(), model));
                }
                Some(v) => {
                    if let Ok(s) = serde_json::from_slice::<ModelStatus>(v) {
                        statuses.insert((conn.to_string(), model), s);
                    }
                }
            }
        }
        let (changes, _) = watch::channel(0);
        let engine = Engine {
            inner: Arc::new(Inner {
                producer: Producer::new(&kafka)?,
                kafka,
                codec,
                settings,
                keyring,
                connections: RwLock::new(connections),
                statuses: RwLock::new(statuses),
                webhooks: RwLock::new(webhooks),
                tasks: Mutex::new(HashMap::new()),
                forced: Mutex::new(HashSet::new()),
                changes,
            }),
        };
        if engine.inner.keyring.is_some() {
            for id in in_clear {
                if let Some(spec) = engine.connection(&id) {
                    tracing::info!(component = "sync", connection_id = %id, "sealing the secrets of a connection stored in clear");
                    engine.store(&spec).await?;
                }
            }
        }
        Ok(engine)
    }

    /// The control-topic value of a connection: secrets sealed when there is a keyring.
    fn stored_value(&self, spec: &ConnectionSpec) -> Vec<u8> {
        let stored = match &self.inner.keyring {
            Some(k) => spec.seal(k),
            None => spec.store_in_clear(),
        };
        serde_json::to_vec(&stored).expect("stored connection serializes")
    }

    async fn store(&self, spec: &ConnectionSpec) -> Result<(), EngineError> {
        let value = self.stored_value(spec);
        self.inner
            .producer
            .send(CONNECTIONS_TOPIC, spec.id.as_bytes(), Some(&value), &[])
            .await?;
        Ok(())
    }

    /// Notified (with a counter) whenever the set of connections changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    pub fn connections(&self) -> Vec<ConnectionSpec> {
        self.inner
            .connections
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn connection(&self, id: &str) -> Option<ConnectionSpec> {
        self.inner
            .connections
            .read()
            .expect("lock")
            .get(id)
            .cloned()
    }

    /// Per-model status of a connection.
    pub fn status(&self, id: &str) -> BTreeMap<Model, ModelStatus> {
        let st = self.inner.statuses.read().expect("lock");
        self.inner
            .settings
            .models
            .iter()
            .map(|m| {
                (
                    *m,
                    st.get(&(id.to_string(), *m)).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Stores a connection (create or replace) and (re)starts its sync. A new connection
    /// starts its historical sync at once. Returns true when it did not exist.
    ///
    /// What ingot manages on the connection (its generated webhook secret, a
    /// disconnection) is kept from the stored version; a connection whose webhook
    /// subscriptions ingot will manage on a 3PA that takes a secret per subscription
    /// (WooCommerce) gets a generated secret (32 random bytes, hex).
    pub async fn upsert_connection(&self, mut spec: ConnectionSpec) -> Result<bool, EngineError> {
        spec.validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let old = self.connection(&spec.id);
        if let Some(old) = &old {
            spec.keep_managed_from(old);
        }
        if spec.generated_webhook_secret.is_none() {
            if let Some((subs, _)) = self.subscriptions(&spec) {
                if subs.secret_per_subscription() {
                    spec.generated_webhook_secret = Some(generate_secret());
                }
            }
        }
        let existed = old.as_ref() == Some(&spec);
        if existed {
            return Ok(false);
        }
        let created = old.is_none();
        self.store(&spec).await?;
        self.inner
            .connections
            .write()
            .expect("lock")
            .insert(spec.id.clone(), spec.clone());
        self.inner.changes.send_modify(|n| *n += 1);
        self.start(&spec);
        Ok(created)
    }

    /// Removes a connection: its sync stopped, ingot's webhook subscriptions removed from
    /// the 3PA (those calling back to the connection's URL; a failure is reported in the
    /// answer and does not keep the connection), a tombstone on the control topic.
    pub async fn delete_connection(&self, id: &str) -> Result<Deleted, EngineError> {
        let Some(spec) = self.connection(id) else {
            return Err(EngineError::NotFound(id.to_string()));
        };
        self.stop_task(id);
        let mut outcome = Deleted::default();
        if let Some((subs, callback)) = self.subscriptions(&spec) {
            match subscriptions::remove_all(subs.as_ref(), &callback).await {
                Ok(n) => outcome.subscriptions_removed = n,
                Err(e) => {
                    tracing::warn!(component = "sync", connection_id = %id, error = %e, "webhook subscriptions not removed");
                    outcome.subscriptions_error = Some(e);
                }
            }
        }
        self.inner
            .producer
            .send(CONNECTIONS_TOPIC, id.as_bytes(), None, &[])
            .await?;
        self.inner
            .producer
            .send(SYNC_TOPIC, webhooks_key(id).as_bytes(), None, &[])
            .await?;
        self.inner.webhooks.write().expect("lock").remove(id);
        self.inner.connections.write().expect("lock").remove(id);
        self.inner.changes.send_modify(|n| *n += 1);
        Ok(outcome)
    }

    /// Marks a connection disconnected by its 3PA (Shopify `app/uninstalled`): stored in
    /// `ingot.connections` with the time and reason, its sync stopped. Idempotent (a
    /// repeated delivery keeps the first time). `NotFound` for an unknown id.
    pub async fn disconnect(&self, id: &str, reason: &str) -> Result<(), EngineError> {
        let Some(mut spec) = self.connection(id) else {
            return Err(EngineError::NotFound(id.to_string()));
        };
        if spec.disconnected.is_some() {
            return Ok(());
        }
        spec.disconnected = Some(ingot_model::Disconnected {
            at: format_utc(&Utc::now()),
            reason: reason.to_string(),
        });
        self.store(&spec).await?;
        self.inner
            .connections
            .write()
            .expect("lock")
            .insert(spec.id.clone(), spec.clone());
        self.stop_task(id);
        self.inner.changes.send_modify(|n| *n += 1);
        tracing::warn!(component = "sync", connection_id = %id, %reason, "connection disconnected by the 3PA; sync stopped");
        Ok(())
    }

    /// The subscriptions client and callback URL of a connection whose webhook
    /// subscriptions ingot manages: `public_url` set, API credentials (synced), a provider
    /// with a subscriptions API, not disconnected.
    fn subscriptions(
        &self,
        spec: &ConnectionSpec,
    ) -> Option<(Box<dyn WebhookSubscriptions>, String)> {
        let public = self.inner.settings.public_url.as_deref()?;
        if spec.sync_disabled || spec.api_base_url().is_none() || spec.disconnected.is_some() {
            return None;
        }
        let subs = subscriptions_for(spec.provider, connector_config(spec))?;
        match callback_url(public, spec.provider, &spec.id) {
            Ok(url) => Some((subs, url)),
            Err(e) => {
                tracing::error!(component = "sync", connection_id = %spec.id, error = %e, "no callback URL");
                None
            }
        }
    }

    /// The webhook subscription health of a connection.
    pub fn webhook_health(&self, id: &str) -> Option<WebhookHealth> {
        self.inner.webhooks.read().expect("lock").get(id).cloned()
    }

    /// How webhooks reach a connection, for the API: managed subscriptions and their
    /// health, or why nothing is subscribed and polling carries it.
    pub fn webhooks_view(&self, spec: &ConnectionSpec) -> serde_json::Value {
        let every = spec.poll_interval_secs();
        let unmanaged = |reason: String| {
            serde_json::json!({
                "managed": false,
                "carried_by": "polling",
                "reason": reason,
                "poll_interval_secs": every,
                "subscriptions": [],
            })
        };
        if let Some(d) = &spec.disconnected {
            return unmanaged(format!(
                "the connection was disconnected at {} ({}): nothing is synced",
                d.at, d.reason
            ));
        }
        if spec.sync_disabled || spec.api_base_url().is_none() {
            return serde_json::json!({
                "managed": false,
                "carried_by": "webhooks configured by hand",
                "reason": "no API credentials: ingot neither subscribes nor polls; deliveries configured in the 3PA by hand are received",
                "subscriptions": [],
            });
        }
        if self.inner.settings.public_url.is_none() {
            return unmanaged(format!(
                "no [http] public_url is configured: ingot subscribes to nothing and polling (every {every} s) carries this connection"
            ));
        }
        let Some((subs, callback)) = self.subscriptions(spec) else {
            return unmanaged(format!(
                "{}: polling (every {every} s) carries this connection",
                unmanaged_reason(spec.provider)
            ));
        };
        let health = self.webhook_health(&spec.id).unwrap_or_default();
        let list: Vec<serde_json::Value> = subs
            .topics()
            .into_iter()
            .map(|t| {
                let th = health.topics.get(&t).cloned().unwrap_or_default();
                serde_json::json!({
                    "topic": t,
                    "id": th.id,
                    "active": th.active,
                    "last_checked": th.last_checked,
                    "last_error": th.last_error,
                    "last_healthy": th.last_healthy,
                    "last_healed": th.last_healed,
                })
            })
            .collect();
        serde_json::json!({
            "managed": true,
            "carried_by": "webhooks, with reconciliation polls",
            "healthy": health.healthy(),
            "callback_url": callback,
            "last_checked": health.last_checked,
            "last_error": health.last_error,
            "heals": health.heals,
            "pending_gaps": health.gaps,
            "poll_interval_secs": every,
            "subscriptions": list,
        })
    }

    async fn persist_webhooks(&self, id: &str, health: WebhookHealth) -> Result<(), EngineError> {
        let value = serde_json::to_vec(&health).expect("health serializes");
        self.inner
            .producer
            .send(SYNC_TOPIC, webhooks_key(id).as_bytes(), Some(&value), &[])
            .await?;
        self.inner
            .webhooks
            .write()
            .expect("lock")
            .insert(id.to_string(), health);
        Ok(())
    }

    /// Checks (and heals) a connection's subscriptions; models that got a gap are
    /// queued for a reconciliation now. Never fails the sync: errors are recorded.
    async fn check_subscriptions(&self, spec: &ConnectionSpec) -> bool {
        let Some((subs, callback)) = self.subscriptions(spec) else {
            return false;
        };
        let secret = spec
            .generated_webhook_secret
            .as_ref()
            .filter(|_| subs.secret_per_subscription())
            .map(|s| s.expose().to_string());
        let before = self.webhook_health(&spec.id).unwrap_or_default();
        let (health, healed) = subscriptions::check(
            subs.as_ref(),
            &callback,
            secret.as_deref(),
            before,
            Utc::now(),
        )
        .await;
        if let Err(e) = self.persist_webhooks(&spec.id, health).await {
            tracing::warn!(component = "sync", connection_id = %spec.id, error = %e, "could not store webhook health");
        }
        let mut forced = self.inner.forced.lock().expect("lock");
        for m in &healed {
            forced.insert((spec.id.clone(), *m));
        }
        !healed.is_empty()
    }

    /// Clears a model's gap after a reconciliation that covered it.
    async fn gap_filled(&self, id: &str, model: Model) {
        let Some(mut h) = self.webhook_health(id) else {
            return;
        };
        if h.gaps.remove(model.resource()).is_some() {
            if let Err(e) = self.persist_webhooks(id, h).await {
                tracing::warn!(component = "sync", connection_id = %id, error = %e, "could not store webhook health");
            }
        }
    }

    /// Starts a fresh historical sync of every model of a connection.
    pub async fn resync(&self, id: &str) -> Result<(), EngineError> {
        let spec = self
            .connection(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        self.stop_task(id);
        for model in self.inner.settings.models.clone() {
            let mut s = self.status(id).remove(&model).unwrap_or_default();
            s.backfill = None;
            s.cursor = None;
            s.state = SyncState::Pending;
            s.progress_percent = None;
            self.persist(id, model, s).await?;
        }
        self.start(&spec);
        Ok(())
    }

    /// Starts a reconciliation of every model of a connection now (instead of at its next
    /// scheduled time): everything modified since each model's cursor minus the overlap,
    /// then the deletion feed. The historical sync (`resync`) is not affected. Fails with
    /// `Invalid` when a model has no cursor yet (its historical sync has not finished) or
    /// the connection is not synced.
    pub fn reconcile_now(&self, id: &str) -> Result<ReconcileRun, EngineError> {
        let spec = self
            .connection(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        if spec.sync_disabled || spec.api_base_url().is_none() {
            return Err(EngineError::Invalid(
                "this connection is not synced (no API credentials or sync disabled)".into(),
            ));
        }
        if let Some(d) = &spec.disconnected {
            return Err(EngineError::Invalid(format!(
                "this connection was disconnected at {} ({}); create it again to reconnect",
                d.at, d.reason
            )));
        }
        let status = self.status(id);
        let mut models = Vec::new();
        for (model, st) in &status {
            let cursor = st.cursor.as_deref().and_then(parse_utc).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{}: the historical sync has not finished (state {:?}); reconciliation starts from its cursor",
                    model.resource(),
                    st.state
                ))
            })?;
            models.push(ReconcileModel {
                model: model.resource().to_string(),
                from: format_utc(&(cursor - self.inner.settings.overlap)),
            });
        }
        let requested_at = format_utc(&Utc::now());
        {
            let mut forced = self.inner.forced.lock().expect("lock");
            for model in status.keys() {
                forced.insert((id.to_string(), *model));
            }
        }
        let tasks = self.inner.tasks.lock().expect("lock");
        match tasks.get(id) {
            Some((_, wake)) => wake.notify_one(),
            None => {
                drop(tasks);
                self.start(&spec);
            }
        }
        Ok(ReconcileRun {
            connection_id: id.to_string(),
            kind: "reconcile",
            requested_at,
            models,
        })
    }

    /// Stops a connection's task and forgets the runs asked of it.
    fn stop_task(&self, id: &str) {
        if let Some((task, _)) = self.inner.tasks.lock().expect("lock").remove(id) {
            task.abort();
        }
        self.inner
            .forced
            .lock()
            .expect("lock")
            .retain(|(c, _)| c != id);
    }

    fn take_forced(&self, id: &str, model: Model) -> bool {
        self.inner
            .forced
            .lock()
            .expect("lock")
            .remove(&(id.to_string(), model))
    }

    /// Starts the sync of every stored connection.
    pub fn start_all(&self) {
        for spec in self.connections() {
            self.start(&spec);
        }
    }

    /// Stops every sync task.
    pub fn stop(&self) {
        for (_, (task, _)) in self.inner.tasks.lock().expect("lock").drain() {
            task.abort();
        }
    }

    fn start(&self, spec: &ConnectionSpec) {
        let mut tasks = self.inner.tasks.lock().expect("lock");
        if let Some((old, _)) = tasks.remove(&spec.id) {
            old.abort();
        }
        if spec.sync_disabled || spec.api_base_url().is_none() || spec.disconnected.is_some() {
            return;
        }
        let engine = self.clone();
        let spec = spec.clone();
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        let id = spec.id.clone();
        let task = tokio::spawn(async move {
            // the loop never returns; if it dies anyway, no model may keep looking healthy
            let run = std::panic::AssertUnwindSafe(engine.clone().run_connection(spec.clone(), w));
            if let Err(reason) = guarded(run).await {
                tracing::error!(component = "sync", connection_id = %spec.id, error = %reason, "sync task died");
                for model in engine.inner.settings.models.clone() {
                    engine.mark_failed(&spec, model, &reason).await;
                }
            }
        });
        tasks.insert(id, (task, wake));
    }

    /// Records that a run of `model` ended without recording its own outcome (a panic, a
    /// Kafka error mid-run): `failed` (or `partial` inside a historical sync) with the
    /// error; the cursor stays. The view in memory changes even if Kafka is unreachable.
    async fn mark_failed(&self, spec: &ConnectionSpec, model: Model, reason: &str) {
        let mut status = self.get_status(&spec.id, model);
        status.state = if status.backfill.is_some() {
            SyncState::Partial
        } else {
            SyncState::Failed
        };
        status.last_error = Some(reason.to_string());
        metrics::counter!("ingot_sync_runs_total", "result" => "failed", "provider" => spec.provider.as_str()).increment(1);
        self.inner
            .statuses
            .write()
            .expect("lock")
            .insert((spec.id.clone(), model), status.clone());
        if let Err(e) = self.persist(&spec.id, model, status).await {
            tracing::warn!(component = "sync", connection_id = %spec.id, %model, error = %e, "could not store a failed status");
        }
    }

    async fn persist(
        &self,
        connection: &str,
        model: Model,
        status: ModelStatus,
    ) -> Result<(), EngineError> {
        let value = serde_json::to_vec(&status).expect("status serializes");
        self.inner
            .producer
            .send(
                SYNC_TOPIC,
                status_key(connection, model).as_bytes(),
                Some(&value),
                &[],
            )
            .await?;
        self.inner
            .statuses
            .write()
            .expect("lock")
            .insert((connection.to_string(), model), status);
        Ok(())
    }

    fn get_status(&self, connection: &str, model: Model) -> ModelStatus {
        self.inner
            .statuses
            .read()
            .expect("lock")
            .get(&(connection.to_string(), model))
            .cloned()
            .unwrap_or_default()
    }

    async fn run_connection(self, spec: ConnectionSpec, wake: Arc<Notify>) {
        let connector = connector_for(spec.provider, connector_config(&spec));
        let interval = Duration::from_secs(spec.poll_interval_secs().max(1));
        // the subscriptions are made beside the historical sync, never in its way
        let mut initial = AbortOnDrop(self.subscriptions(&spec).map(|_| {
            let (engine, spec) = (self.clone(), spec.clone());
            tokio::spawn(async move {
                engine.check_subscriptions(&spec).await;
            })
        }));
        loop {
            let mut next = interval;
            let mut checked = false;
            for model in self.inner.settings.models.clone() {
                let status = self.get_status(&spec.id, model);
                let due = match (&status.cursor, status.state) {
                    (None, _) => Duration::ZERO,
                    (Some(_), SyncState::Failed) => {
                        self.inner.settings.retry_after_failure.min(interval)
                    }
                    (Some(_), _) => status
                        .last_success
                        .as_deref()
                        .and_then(parse_utc)
                        .map(|t| {
                            (t + ChronoDuration::from_std(interval).unwrap_or_default()
                                - Utc::now())
                            .to_std()
                            .unwrap_or(Duration::ZERO)
                        })
                        .unwrap_or(Duration::ZERO),
                };
                let wait = if status.cursor.is_some() && status.state == SyncState::Failed {
                    // retry a failed run after a pause measured from its start
                    let started = status
                        .last_run_started
                        .as_deref()
                        .and_then(parse_utc)
                        .unwrap_or_else(Utc::now);
                    (started + ChronoDuration::from_std(due).unwrap_or_default() - Utc::now())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                } else {
                    due
                };
                // taken even without a cursor (a historical sync, which runs anyway, covers
                // what was asked): an entry left behind set every later pass's wait to
                // zero, so a failing historical sync was retried without its pause
                let forced = self.take_forced(&spec.id, model) && status.cursor.is_some();
                if !wait.is_zero() && !forced {
                    next = next.min(wait);
                    continue;
                }
                if status.cursor.is_some() && !checked {
                    // each reconciliation pass checks the subscriptions first: a heal
                    // re-enables before the listing, which then fills the gap
                    checked = true;
                    if let Some(h) = initial.0.take() {
                        let _ = h.await;
                    }
                    if self.check_subscriptions(&spec).await {
                        // this model runs now (with its gap); others run next pass
                        self.take_forced(&spec.id, model);
                    }
                }
                let run = async {
                    if status.cursor.is_none() {
                        self.backfill(&spec, connector.as_ref(), model).await
                    } else {
                        self.reconcile(&spec, connector.as_ref(), model).await
                    }
                };
                let result = match guarded(std::panic::AssertUnwindSafe(run)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(panic) => Err(panic),
                };
                if let Err(e) = result {
                    tracing::warn!(component = "sync", connection_id = %spec.id, %model, error = %e, "sync run failed");
                    // a run that failed at the 3PA has recorded it; any other end
                    // (Kafka, a panic) has not: never leave the model `syncing`
                    let st = self.get_status(&spec.id, model);
                    if !matches!(st.state, SyncState::Failed | SyncState::Partial) {
                        self.mark_failed(&spec, model, &e).await;
                    }
                    next = next.min(self.inner.settings.retry_after_failure);
                }
            }
            if self
                .inner
                .forced
                .lock()
                .expect("lock")
                .iter()
                .any(|(c, _)| c == &spec.id)
            {
                // a heal queued models this pass had already passed over
                next = Duration::ZERO;
            }
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = wake.notified() => {}
            }
        }
    }

    /// Writes listed records as raw events and waits for the acknowledgements.
    async fn write_records(
        &self,
        spec: &ConnectionSpec,
        source: &str,
        records: &[RemoteRecord],
    ) -> Result<(), EngineError> {
        let raw = records.iter().map(|r| RawItem {
            model: r.model,
            remote_id: &r.remote_id,
            topic: &r.topic,
            payload: &r.payload,
            event_id: format!(
                "{source}:{}:{}:{}",
                r.model,
                r.remote_id,
                format_utc(&r.updated_at)
            ),
            triggered_at: None,
        });
        self.write_raw(spec, source, raw).await
    }

    /// Writes deletions from a deletion feed as raw delete events (their time in
    /// `triggered_at`, which the mappings read as the deletion time).
    async fn write_deletions(
        &self,
        spec: &ConnectionSpec,
        source: &str,
        deletions: &[Deletion],
    ) -> Result<(), EngineError> {
        let raw = deletions.iter().map(|d| {
            let at = format_utc(&d.deleted_at);
            RawItem {
                model: d.model,
                remote_id: &d.remote_id,
                topic: &d.topic,
                payload: &d.payload,
                event_id: format!("{source}:delete:{}:{}:{at}", d.model, d.remote_id),
                triggered_at: Some(at),
            }
        });
        self.write_raw(spec, source, raw).await
    }

    async fn write_raw<'a>(
        &self,
        spec: &ConnectionSpec,
        source: &str,
        items: impl Iterator<Item = RawItem<'a>>,
    ) -> Result<(), EngineError> {
        let topic = spec.provider.raw_topic();
        let received_at = format_utc(&Utc::now());
        let mut encoded = Vec::new();
        for item in items {
            let ev = RawEvent {
                event_id: item.event_id,
                tenant_id: spec.tenant.clone(),
                connection_id: spec.id.clone(),
                provider: spec.provider.as_str().to_string(),
                topic: item.topic.to_string(),
                source: source.to_string(),
                api_version: None,
                received_at: received_at.clone(),
                triggered_at: item.triggered_at,
                payload: item.payload.to_vec(),
            };
            let key = RecordKey::new(&spec.id, item.model, item.remote_id).to_string();
            encoded.push((key, self.inner.codec.encode_raw(&topic, &ev).await?));
        }
        let recs: Vec<ingot_kafka::OutgoingRecord<'_>> = encoded
            .iter()
            .map(|(k, v)| ingot_kafka::OutgoingRecord {
                topic: &topic,
                partition: None,
                key: k.as_bytes(),
                value: Some(v),
                headers: &[],
            })
            .collect();
        self.inner.producer.send_all(&recs).await?;
        Ok(())
    }

    /// Marks a run failed (or partial for a historical sync) with the error; the cursor stays.
    async fn fail(
        &self,
        spec: &ConnectionSpec,
        model: Model,
        mut status: ModelStatus,
        error: &ConnectorError,
    ) -> Result<(), EngineError> {
        // a listing that stopped advancing is a failed run even inside a historical sync:
        // resuming at the checkpoint would only repeat it
        status.state =
            if status.backfill.is_some() && !matches!(error, ConnectorError::NoProgress(_)) {
                SyncState::Partial
            } else {
                SyncState::Failed
            };
        status.last_error = Some(error.to_string());
        metrics::counter!("ingot_sync_runs_total", "result" => "failed", "provider" => spec.provider.as_str()).increment(1);
        self.persist(&spec.id, model, status).await
    }

    /// The historical sync: windows from `to − history` to `to`, oldest first, a checkpoint
    /// after every acknowledged page. Resumes at its checkpoint.
    async fn backfill(
        &self,
        spec: &ConnectionSpec,
        connector: &dyn Connector,
        model: Model,
    ) -> Result<(), EngineError> {
        let mut status = self.get_status(&spec.id, model);
        let now = Utc::now();
        let mut bf = match status.backfill.clone() {
            Some(b) => b,
            None => {
                let from = ChronoDuration::try_days(i64::from(spec.history_days()))
                    .and_then(|d| now.checked_sub_signed(d))
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "history_days {} reaches before the calendar",
                            spec.history_days()
                        ))
                    })?;
                let span = (now - from).num_seconds().max(1);
                let w = self.inner.settings.window.num_seconds().max(1);
                Backfill {
                    from: format_utc(&from),
                    to: format_utc(&now),
                    windows_total: ((span + w - 1) / w) as u32,
                    windows_done: 0,
                    page: None,
                    bulk: None,
                }
            }
        };
        let (Some(from), Some(to)) = (parse_utc(&bf.from), parse_utc(&bf.to)) else {
            return Err(EngineError::Invalid(
                "unreadable backfill checkpoint".into(),
            ));
        };
        if bf.windows_done == 0 && bf.page.is_none() && bf.bulk.is_none() {
            status.last_run_records = 0;
        }
        status.state = SyncState::Syncing;
        status.phase = Some("backfill".into());
        status.last_run_started = Some(format_utc(&now));
        status.backfill = Some(bf.clone());
        self.persist(&spec.id, model, status.clone()).await?;
        if let Some(bulk) = connector.bulk() {
            let fell_back = bf.bulk.as_ref().is_some_and(|b| b.state == "fallback");
            if !fell_back && bf.windows_done == 0 && bf.page.is_none() {
                let whole = Window { from, to };
                match self
                    .bulk_backfill(spec, bulk, model, whole, &mut bf, &mut status)
                    .await?
                {
                    Ok(true) => bf.windows_done = bf.windows_total,
                    Ok(false) => {}
                    Err(e) => {
                        status.backfill = Some(bf.clone());
                        return self
                            .fail(spec, model, status, &e)
                            .await
                            .and(Err(EngineError::Invalid(e.to_string())));
                    }
                }
            }
        }
        'windows: while bf.windows_done < bf.windows_total {
            let start = from + self.inner.settings.window * bf.windows_done as i32;
            let end = (start + self.inner.settings.window).min(to);
            let window = Window {
                from: start,
                to: end,
            };
            let mut listing = Listing::default();
            if let Some(t) = &bf.page {
                listing.tokens.insert(t.0.clone());
            }
            loop {
                // a connector may answer at once (an error before any request): every
                // page loop gives the runtime back now and then, whatever it answers
                tokio::task::coop::consume_budget().await;
                let page = match connector.list(model, &window, bf.page.as_ref()).await {
                    Ok(p) => p,
                    // the connector lists no such model: no window has anything to list
                    // (leaving only this window's loop, as before, retried the same window
                    // forever without yielding: two calls of it held both runtime workers)
                    Err(ConnectorError::Unsupported(_)) => {
                        bf.windows_done = bf.windows_total;
                        bf.page = None;
                        break 'windows;
                    }
                    Err(e) => {
                        status.backfill = Some(bf.clone());
                        return self
                            .fail(spec, model, status, &e)
                            .await
                            .and(Err(EngineError::Invalid(e.to_string())));
                    }
                };
                let fresh = match listing.page(&page.items, page.next.as_ref()) {
                    Ok(n) => n,
                    Err(e) => {
                        status.backfill = Some(bf.clone());
                        return self
                            .fail(spec, model, status, &e)
                            .await
                            .and(Err(EngineError::Invalid(e.to_string())));
                    }
                };
                self.write_records(spec, "backfill", &page.items).await?;
                status.records_written += page.items.len() as u64;
                status.records_seen += fresh;
                status.last_run_records += fresh;
                bf.page = page.next;
                let last_page = bf.page.is_none();
                if last_page {
                    bf.windows_done += 1;
                }
                status.progress_percent =
                    Some(100.0 * f64::from(bf.windows_done) / f64::from(bf.windows_total.max(1)));
                status.backfill = Some(bf.clone());
                self.persist(&spec.id, model, status.clone()).await?;
                if last_page {
                    break;
                }
            }
        }
        // deletions that happened during the history window
        if let Err(e) = self
            .deletions(
                spec,
                connector,
                model,
                Window { from, to },
                &mut status,
                "backfill",
            )
            .await
        {
            status.backfill = Some(bf);
            return self
                .fail(spec, model, status, &e)
                .await
                .and(Err(EngineError::Invalid(e.to_string())));
        }
        status.state = SyncState::Done;
        status.cursor = Some(format_utc(&to));
        status.last_success = Some(format_utc(&Utc::now()));
        status.last_error = None;
        status.bulk = status.backfill.take().and_then(|b| b.bulk);
        status.progress_percent = Some(100.0);
        metrics::counter!("ingot_sync_runs_total", "result" => "done", "provider" => spec.provider.as_str()).increment(1);
        self.persist(&spec.id, model, status).await
    }

    /// The historical sync of `window` through the connector's bulk export. `Ok(true)`:
    /// every record of the window was written; `Ok(false)`: the jobs kept failing and the
    /// paged windows carry on (`bulk.state = "fallback"`); `Err`: a 3PA failure that
    /// leaves the checkpoint (the job id, the records read) for the next run.
    async fn bulk_backfill(
        &self,
        spec: &ConnectionSpec,
        bulk: &dyn BulkExport,
        model: Model,
        window: Window,
        bf: &mut Backfill,
        status: &mut ModelStatus,
    ) -> Result<Result<bool, ConnectorError>, EngineError> {
        let poll = self.inner.settings.bulk_poll_interval;
        let mut b = bf.bulk.clone().unwrap_or_default();
        let mut slot_waits = 0u32;
        macro_rules! save {
            () => {{
                bf.bulk = Some(b.clone());
                status.backfill = Some(bf.clone());
                self.persist(&spec.id, model, status.clone()).await?;
            }};
        }
        loop {
            let id = match b.operation_id.clone() {
                Some(id) => id,
                None if b.attempts >= self.inner.settings.bulk_attempts.max(1) => {
                    tracing::warn!(component = "sync", connection_id = %spec.id, %model, attempts = b.attempts, error = ?b.last_error, "bulk export failed; falling back to the paged listing");
                    b.state = "fallback".into();
                    save!();
                    return Ok(Ok(false));
                }
                None => match bulk.start(model, &window).await {
                    Ok(id) => {
                        b.operation_id = Some(id.clone());
                        b.attempts += 1;
                        b.state = "running".into();
                        b.objects = 0;
                        b.records_done = 0;
                        save!();
                        id
                    }
                    Err(ConnectorError::RateLimited { retry_after }) => {
                        // the shop runs as many bulk jobs as it may (another app's, or
                        // another connection's of the same shop): wait for a slot, for a
                        // while; then the run fails and is retried like any other
                        slot_waits += 1;
                        if slot_waits > MAX_BULK_SLOT_WAITS {
                            return Ok(Err(ConnectorError::RateLimited { retry_after }));
                        }
                        b.state = "starting".into();
                        save!();
                        tokio::time::sleep(retry_after.unwrap_or(poll).max(poll)).await;
                        continue;
                    }
                    // the shop will not run one (no bulk access for this app, a query
                    // it refuses): the paged listing carries the historical sync
                    Err(e @ (ConnectorError::Unsupported(_) | ConnectorError::Rejected { .. })) => {
                        tracing::warn!(component = "sync", connection_id = %spec.id, %model, error = %e, "bulk export refused; falling back to the paged listing");
                        b.state = "fallback".into();
                        b.last_error = Some(e.to_string());
                        save!();
                        return Ok(Ok(false));
                    }
                    Err(e) => return Ok(Err(e)),
                },
            };
            let state = match bulk.poll(&id).await {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            let url = match state {
                BulkState::Running { objects } => {
                    if objects != b.objects || b.state != "running" {
                        b.objects = objects;
                        b.state = "running".into();
                        save!();
                    }
                    tokio::time::sleep(poll).await;
                    continue;
                }
                BulkState::Failed { reason } => {
                    tracing::warn!(component = "sync", connection_id = %spec.id, %model, operation = %id, %reason, "bulk export failed");
                    b.last_error = Some(format!("bulk operation {id} failed: {reason}"));
                    b.operation_id = None;
                    save!();
                    continue;
                }
                BulkState::Completed { url: None, objects } => {
                    b.objects = objects;
                    b.state = "done".into();
                    save!();
                    return Ok(Ok(true));
                }
                BulkState::Completed {
                    url: Some(url),
                    objects,
                } => {
                    b.objects = objects;
                    url
                }
            };
            let mut reader = match bulk.open(model, &url).await {
                Ok(r) => r,
                // an expired result (its URL lasts 7 days) is a failed job: start another
                Err(ConnectorError::Rejected {
                    status: code,
                    message,
                }) => {
                    b.last_error = Some(format!(
                        "bulk operation {id}: result unavailable ({code}): {message}"
                    ));
                    b.operation_id = None;
                    save!();
                    continue;
                }
                Err(e) => return Ok(Err(e)),
            };
            if let Err(e) = reader.skip(b.records_done).await {
                return Ok(Err(e));
            }
            b.state = "reading".into();
            let batch = spec.page_size.unwrap_or(250).clamp(1, 10_000) as usize;
            loop {
                let records = match reader.next_batch(batch).await {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                if records.is_empty() {
                    break;
                }
                self.write_records(spec, "backfill", &records).await?;
                let n = records.len() as u64;
                // one line per record in a bulk result: every record is distinct
                status.records_written += n;
                status.records_seen += n;
                status.last_run_records += n;
                b.records_done += n;
                if b.objects > 0 {
                    status.progress_percent =
                        Some((100.0 * b.records_done as f64 / b.objects as f64).min(99.0));
                }
                save!();
            }
            b.state = "done".into();
            save!();
            return Ok(Ok(true));
        }
    }

    async fn deletions(
        &self,
        spec: &ConnectionSpec,
        connector: &dyn Connector,
        model: Model,
        window: Window,
        status: &mut ModelStatus,
        source: &str,
    ) -> Result<(), ConnectorError> {
        let mut page = None;
        let mut listing = Listing::default();
        loop {
            tokio::task::coop::consume_budget().await;
            let p = match connector.deletions(model, &window, page.as_ref()).await {
                Ok(p) => p,
                Err(ConnectorError::Unsupported(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            listing.deletion_page(p.next.as_ref())?;
            self.write_deletions(spec, source, &p.items)
                .await
                .map_err(|e| ConnectorError::Unavailable(format!("kafka: {e}")))?;
            status.deletions_seen += p.items.len() as u64;
            page = p.next;
            if page.is_none() {
                return Ok(());
            }
        }
    }

    /// A reconciliation run: everything modified in [cursor − overlap, now], then the
    /// deletion feed for the same window; the cursor moves to `now` only if all succeeded.
    async fn reconcile(
        &self,
        spec: &ConnectionSpec,
        connector: &dyn Connector,
        model: Model,
    ) -> Result<(), EngineError> {
        let mut status = self.get_status(&spec.id, model);
        let Some(cursor) = status.cursor.as_deref().and_then(parse_utc) else {
            return Err(EngineError::Invalid("reconcile without a cursor".into()));
        };
        let now = Utc::now();
        // a gap left by a healed subscription: from the time it was last known healthy
        let gap = self.webhook_health(&spec.id).and_then(|h| h.gap(model));
        let from = match gap {
            Some(Some(t)) => cursor.min(t),
            _ => cursor,
        };
        let window = Window {
            from: from - self.inner.settings.overlap,
            to: now,
        };
        status.state = SyncState::Syncing;
        status.phase = Some("reconcile".into());
        status.last_run_started = Some(format_utc(&now));
        status.last_run_records = 0;
        self.persist(&spec.id, model, status.clone()).await?;
        let mut page = None;
        let mut listing = Listing::default();
        loop {
            tokio::task::coop::consume_budget().await;
            let p = match connector.list(model, &window, page.as_ref()).await {
                Ok(p) => p,
                Err(ConnectorError::Unsupported(_)) => break,
                Err(e) => {
                    return self
                        .fail(spec, model, status, &e)
                        .await
                        .and(Err(EngineError::Invalid(e.to_string())))
                }
            };
            let fresh = match listing.page(&p.items, p.next.as_ref()) {
                Ok(n) => n,
                Err(e) => {
                    return self
                        .fail(spec, model, status, &e)
                        .await
                        .and(Err(EngineError::Invalid(e.to_string())))
                }
            };
            self.write_records(spec, "poll", &p.items).await?;
            status.records_written += p.items.len() as u64;
            status.records_seen += fresh;
            status.last_run_records += fresh;
            page = p.next;
            if page.is_none() {
                break;
            }
        }
        if let Err(e) = self
            .deletions(spec, connector, model, window, &mut status, "poll")
            .await
        {
            return self
                .fail(spec, model, status, &e)
                .await
                .and(Err(EngineError::Invalid(e.to_string())));
        }
        status.state = SyncState::Done;
        status.cursor = Some(format_utc(&now));
        status.last_success = Some(format_utc(&Utc::now()));
        status.last_error = None;
        metrics::counter!("ingot_sync_runs_total", "result" => "done", "provider" => spec.provider.as_str()).increment(1);
        self.persist(&spec.id, model, status).await?;
        if gap.is_some() {
            self.gap_filled(&spec.id, model).await;
        }
        Ok(())
    }

    /// Kafka settings (for tools).
    pub fn kafka(&self) -> &KafkaSettings {
        &self.inner.kafka
    }
}

/// Runs `fut`, turning a panic into `Err(message)` so the caller can record it.
async fn guarded<F: std::future::Future>(
    fut: std::panic::AssertUnwindSafe<F>,
) -> Result<F::Output, String> {
    use futures::FutureExt;
    fut.catch_unwind().await.map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        format!("internal error: the sync task panicked: {msg}")
    })
}

/// Reads a compacted control topic's last value per key (used by processes that only
/// watch connections, e.g. a separate ingest).
pub async fn read_latest(
    kafka: &KafkaSettings,
    topic: &str,
) -> Result<BTreeMap<String, Vec<u8>>, KafkaError> {
    let mut out = BTreeMap::new();
    let starts: Vec<(String, i32, i64)> = kafka
        .partitions(topic)?
        .into_iter()
        .map(|p| (topic.to_string(), p, 0))
        .collect();
    let mut reader = Reader::new(kafka, &starts)?;
    while let Some(m) = reader.next().await? {
        if let Some(k) = m.key_str().map(str::to_string) {
            match m.value {
                Some(v) => {
                    out.insert(k, v);
                }
                None => {
                    out.remove(&k);
                }
            }
        }
    }
    Ok(out)
}

/// The connections stored in `ingot.connections` (for processes without an engine), with
/// no keyring: only connections stored in clear. Prefer [`read_connections_sealed`].
pub async fn read_connections(kafka: &KafkaSettings) -> Result<Vec<ConnectionSpec>, KafkaError> {
    read_connections_with(kafka, None).await
}

/// The connections stored in `ingot.connections`, their secrets opened with `keyring`.
/// One that does not open (another key, a damaged value) is left out, with an error log.
pub async fn read_connections_sealed(
    kafka: &KafkaSettings,
    keyring: &Keyring,
) -> Result<Vec<ConnectionSpec>, KafkaError> {
    read_connections_with(kafka, Some(keyring)).await
}

async fn read_connections_with(
    kafka: &KafkaSettings,
    keyring: Option<&Keyring>,
) -> Result<Vec<ConnectionSpec>, KafkaError> {
    Ok(read_latest(kafka, CONNECTIONS_TOPIC)
        .await?
        .into_iter()
        .filter_map(|(id, v)| {
            let opened = serde_json::from_slice::<StoredConnection>(&v)
                .map_err(|e| e.to_string())
                .and_then(|s| s.unseal(keyring, true).map_err(|e| e.to_string()));
            match opened {
                Ok((spec, _)) => Some(spec),
                Err(reason) => {
                    tracing::error!(component = "sync", connection_id = %id, %reason, "stored connection unreadable");
                    None
                }
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_run_becomes_an_error_with_its_message() {
        let ok = guarded(std::panic::AssertUnwindSafe(async { 7 })).await;
        assert_eq!(ok, Ok(7));
        let died = guarded(std::panic::AssertUnwindSafe(async {
            if ok.is_ok() {
                panic!("TimeDelta::days out of bounds");
            }
        }))
        .await;
        assert_eq!(
            died,
            Err("internal error: the sync task panicked: TimeDelta::days out of bounds".into())
        );
        let formatted = guarded(std::panic::AssertUnwindSafe(async {
            if ok.is_ok() {
                panic!("window {} of {}", 3, 4);
            }
        }))
        .await;
        assert_eq!(
            formatted,
            Err("internal error: the sync task panicked: window 3 of 4".into())
        );
    }
}
