use crate::status::{Backfill, ModelStatus, SyncState};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ingot_connectors::{
    connector_for, Connector, ConnectorConfig, ConnectorError, Deletion, RemoteRecord, Window,
};
use ingot_kafka::{AvroCodec, KafkaError, KafkaSettings, Producer, Reader};
use ingot_model::{format_utc, ConnectionSpec, Model, RawEvent, RecordKey};
use std::collections::{BTreeMap, HashMap};
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

/// Compacted control topic: key = connection id, value = `ConnectionSpec` JSON, tombstone = deleted.
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
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            window: ChronoDuration::days(30),
            overlap: ChronoDuration::minutes(10),
            retry_after_failure: Duration::from_secs(60),
            models: Model::ALL.to_vec(),
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
    connections: RwLock<BTreeMap<String, ConnectionSpec>>,
    statuses: RwLock<HashMap<(String, Model), ModelStatus>>,
    tasks: Mutex<HashMap<String, SyncTask>>,
    changes: watch::Sender<u64>,
}

/// The sync engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn status_key(connection: &str, model: Model) -> String {
    format!("{connection}/{model}")
}

fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    ingot_model::parse_time(s, true).ok()
}

impl Engine {
    /// Reads the connections and checkpoints back from their control topics.
    pub async fn open(
        kafka: KafkaSettings,
        codec: AvroCodec,
        settings: SyncSettings,
    ) -> Result<Engine, EngineError> {
        let mut connections = BTreeMap::new();
        for m in kafka.read_all(CONNECTIONS_TOPIC).await? {
            let Some(id) = m.key_str().map(str::to_string) else {
                continue;
            };
            match &m.value {
                None => {
                    connections.remove(&id);
                }
                Some(v) => {
                    let spec: ConnectionSpec =
                        serde_json::from_slice(v).map_err(|e| EngineError::Corrupt {
                            topic: CONNECTIONS_TOPIC.into(),
                            offset: m.offset,
                            reason: e.to_string(),
                        })?;
                    connections.insert(id, spec);
                }
            }
        }
        let mut statuses = HashMap::new();
        for m in kafka.read_all(SYNC_TOPIC).await? {
            let Some((conn, model)) = m.key_str().and_then(|k| k.rsplit_once('/')) else {
                continue;
            };
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
        Ok(Engine {
            inner: Arc::new(Inner {
                producer: Producer::new(&kafka)?,
                kafka,
                codec,
                settings,
                connections: RwLock::new(connections),
                statuses: RwLock::new(statuses),
                tasks: Mutex::new(HashMap::new()),
                changes,
            }),
        })
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
    pub async fn upsert_connection(&self, spec: ConnectionSpec) -> Result<bool, EngineError> {
        if spec.id.is_empty() || spec.id.contains('/') {
            return Err(EngineError::Invalid(
                "id must be non-empty and contain no '/'".into(),
            ));
        }
        let existed = self.inner.connections.read().expect("lock").get(&spec.id) == Some(&spec);
        if existed {
            return Ok(false);
        }
        let created = self.connection(&spec.id).is_none();
        let value = serde_json::to_vec(&spec).expect("spec serializes");
        self.inner
            .producer
            .send(CONNECTIONS_TOPIC, spec.id.as_bytes(), Some(&value), &[])
            .await?;
        self.inner
            .connections
            .write()
            .expect("lock")
            .insert(spec.id.clone(), spec.clone());
        self.inner.changes.send_modify(|n| *n += 1);
        self.start(&spec);
        Ok(created)
    }

    /// Removes a connection: a tombstone on the control topic, its sync stopped.
    pub async fn delete_connection(&self, id: &str) -> Result<(), EngineError> {
        if self.connection(id).is_none() {
            return Err(EngineError::NotFound(id.to_string()));
        }
        self.inner
            .producer
            .send(CONNECTIONS_TOPIC, id.as_bytes(), None, &[])
            .await?;
        self.inner.connections.write().expect("lock").remove(id);
        self.inner.changes.send_modify(|n| *n += 1);
        if let Some((task, _)) = self.inner.tasks.lock().expect("lock").remove(id) {
            task.abort();
        }
        Ok(())
    }

    /// Starts a fresh historical sync of every model of a connection.
    pub async fn resync(&self, id: &str) -> Result<(), EngineError> {
        let spec = self
            .connection(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        if let Some((task, _)) = self.inner.tasks.lock().expect("lock").remove(id) {
            task.abort();
        }
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
        if spec.sync_disabled || spec.api_base_url().is_none() {
            return;
        }
        let engine = self.clone();
        let spec = spec.clone();
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        let id = spec.id.clone();
        let task = tokio::spawn(async move { engine.run_connection(spec, w).await });
        tasks.insert(id, (task, wake));
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
        let config = ConnectorConfig {
            base_url: spec.api_base_url().unwrap_or_default(),
            access_token: spec.credentials.access_token.clone(),
            consumer_key: spec.credentials.consumer_key.clone(),
            consumer_secret: spec.credentials.consumer_secret.clone(),
            timezone: spec.timezone.clone(),
            page_size: spec.page_size,
            max_attempts: None,
        };
        let connector = connector_for(spec.provider, config);
        let interval = Duration::from_secs(spec.poll_interval_secs().max(1));
        loop {
            let mut next = interval;
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
                if !wait.is_zero() {
                    next = next.min(wait);
                    continue;
                }
                let result = if status.cursor.is_none() {
                    self.backfill(&spec, connector.as_ref(), model).await
                } else {
                    self.reconcile(&spec, connector.as_ref(), model).await
                };
                if let Err(e) = result {
                    tracing::warn!(component = "sync", connection_id = %spec.id, %model, error = %e, "sync run failed");
                    next = next.min(self.inner.settings.retry_after_failure);
                }
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
        status.state = if status.backfill.is_some() {
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
                let from = now - ChronoDuration::days(i64::from(spec.history_days()));
                let span = (now - from).num_seconds().max(1);
                let w = self.inner.settings.window.num_seconds().max(1);
                Backfill {
                    from: format_utc(&from),
                    to: format_utc(&now),
                    windows_total: ((span + w - 1) / w) as u32,
                    windows_done: 0,
                    page: None,
                }
            }
        };
        let (Some(from), Some(to)) = (parse_utc(&bf.from), parse_utc(&bf.to)) else {
            return Err(EngineError::Invalid(
                "unreadable backfill checkpoint".into(),
            ));
        };
        status.state = SyncState::Syncing;
        status.phase = Some("backfill".into());
        status.last_run_started = Some(format_utc(&now));
        status.backfill = Some(bf.clone());
        self.persist(&spec.id, model, status.clone()).await?;
        while bf.windows_done < bf.windows_total {
            let start = from + self.inner.settings.window * bf.windows_done as i32;
            let end = (start + self.inner.settings.window).min(to);
            let window = Window {
                from: start,
                to: end,
            };
            loop {
                let page = match connector.list(model, &window, bf.page.as_ref()).await {
                    Ok(p) => p,
                    Err(ConnectorError::Unsupported(_)) => break,
                    Err(e) => {
                        status.backfill = Some(bf.clone());
                        return self
                            .fail(spec, model, status, &e)
                            .await
                            .and(Err(EngineError::Invalid(e.to_string())));
                    }
                };
                self.write_records(spec, "backfill", &page.items).await?;
                status.records_seen += page.items.len() as u64;
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
        status.backfill = None;
        status.progress_percent = Some(100.0);
        metrics::counter!("ingot_sync_runs_total", "result" => "done", "provider" => spec.provider.as_str()).increment(1);
        self.persist(&spec.id, model, status).await
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
        loop {
            let p = match connector.deletions(model, &window, page.as_ref()).await {
                Ok(p) => p,
                Err(ConnectorError::Unsupported(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
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
        let window = Window {
            from: cursor - self.inner.settings.overlap,
            to: now,
        };
        status.state = SyncState::Syncing;
        status.phase = Some("reconcile".into());
        status.last_run_started = Some(format_utc(&now));
        self.persist(&spec.id, model, status.clone()).await?;
        let mut page = None;
        loop {
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
            self.write_records(spec, "poll", &p.items).await?;
            status.records_seen += p.items.len() as u64;
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
        self.persist(&spec.id, model, status).await
    }

    /// Kafka settings (for tools).
    pub fn kafka(&self) -> &KafkaSettings {
        &self.inner.kafka
    }
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

/// The connections stored in `ingot.connections` (for processes without an engine).
pub async fn read_connections(kafka: &KafkaSettings) -> Result<Vec<ConnectionSpec>, KafkaError> {
    Ok(read_latest(kafka, CONNECTIONS_TOPIC)
        .await?
        .values()
        .filter_map(|v| serde_json::from_slice(v).ok())
        .collect())
}
