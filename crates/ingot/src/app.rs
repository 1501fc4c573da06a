//! Assembly of ingot's stages. Every stage talks only through topics; this module only
//! starts them with the right addresses and stops them.

use crate::config::Config;
use anyhow::Context;
use ingot_kafka::{AvroCodec, KafkaSettings, Producer, Topology};
use ingot_materializer::{ApiState, Materializer, Tenant, View};

use ingot_processor::{Processor, ProcessorConfig};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where Kafka and the registry are, and the embedded pieces that must stay alive.
pub struct Infra {
    pub kafka: KafkaSettings,
    pub registry_url: String,
    #[cfg(feature = "embedded-broker")]
    _broker: Option<ingot_embedded::EmbeddedBroker>,
    _registry: Option<JoinHandle<()>>,
}

impl Drop for Infra {
    fn drop(&mut self) {
        if let Some(r) = &self._registry {
            r.abort();
        }
    }
}

/// Which embedded pieces this process starts (a per-stage process connects to the ones
/// `ingot infra` started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedded {
    Start,
    Connect,
}

impl Infra {
    /// Starts (or connects to) Kafka and the registry, then applies the topology.
    pub async fn start(cfg: &Config, embedded: Embedded) -> anyhow::Result<Infra> {
        #[cfg(feature = "embedded-broker")]
        let mut broker = None;
        let mut kafka = match &cfg.kafka {
            Some(k) => {
                let mut s = KafkaSettings::new(&k.bootstrap_servers);
                s.properties = k
                    .properties
                    .iter()
                    .map(|(a, b)| (a.clone(), b.expose().to_string()))
                    .collect();
                s.replication_factor = k.replication_factor;
                s.capabilities.transactions = k.exactly_once;
                s
            }
            None => {
                let port = cfg.embedded.kafka_port;
                if embedded == Embedded::Start {
                    #[cfg(feature = "embedded-broker")]
                    {
                        let b = ingot_embedded::EmbeddedBroker::start(
                            &cfg.storage.data_dir.join("broker"),
                            port,
                            std::time::Duration::from_secs(cfg.embedded.compaction_interval_secs),
                        )
                        .await
                        .context("starting the embedded broker")?;
                        broker = Some(b);
                    }
                    #[cfg(not(feature = "embedded-broker"))]
                    anyhow::bail!("no [kafka] configured and this build has no embedded broker");
                }
                let mut s = KafkaSettings::new(format!("127.0.0.1:{port}"));
                s.capabilities = ingot_kafka::Capabilities::NONE;
                s.fetch_wait_ms = cfg.embedded.fetch_wait_ms;
                s
            }
        };
        // one size limit: a webhook body of max_body_bytes fits its raw event, and the
        // normalized record that carries it as remote_data
        kafka.max_message_bytes = kafka
            .max_message_bytes
            .max(2 * cfg.http.max_body_bytes + 1024 * 1024);
        tracing::info!(
            component = "kafka",
            bootstrap = %kafka.bootstrap_servers,
            transactions = kafka.capabilities.transactions,
            timestamp_lookup = kafka.capabilities.timestamp_lookup,
            "broker capabilities"
        );
        let created = Topology::builtin()
            .apply(&kafka)
            .await
            .context("applying the topology")?;
        if !created.is_empty() {
            tracing::info!(component = "topology", ?created, "topics created");
        }
        let (registry_url, registry) = match &cfg.schema_registry {
            Some(r) => (r.url.trim_end_matches('/').to_string(), None),
            None => {
                let port = cfg.embedded.registry_port;
                let task = if embedded == Embedded::Start {
                    let reg = ingot_embedded::Registry::open(&kafka)
                        .await
                        .context("opening the embedded schema registry")?;
                    Some(
                        reg.serve(port)
                            .await
                            .context("serving the embedded schema registry")?,
                    )
                } else {
                    None
                };
                (format!("http://127.0.0.1:{port}"), task)
            }
        };
        Ok(Infra {
            kafka,
            registry_url,
            #[cfg(feature = "embedded-broker")]
            _broker: broker,
            _registry: registry,
        })
    }

    pub fn codec(&self) -> anyhow::Result<AvroCodec> {
        Ok(AvroCodec::new(&self.registry_url)?)
    }
}

/// Which stages a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    pub ingest: bool,
    pub processor: bool,
    pub materializer: bool,
    /// The sync engine and the connections API.
    pub sync: bool,
    /// The forwarder (change webhooks) and the webhook-endpoints API.
    pub forwarder: bool,
}

impl Stages {
    pub const ALL: Stages = Stages {
        ingest: true,
        processor: true,
        materializer: true,
        sync: true,
        forwarder: true,
    };
    pub const NONE: Stages = Stages {
        ingest: false,
        processor: false,
        materializer: false,
        sync: false,
        forwarder: false,
    };
}

/// Running stages; [`Running::stop`] shuts them down.
pub struct Running {
    pub http_addr: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    http: Option<JoinHandle<()>>,
    pub view: Option<View>,
    pub engine: Option<ingot_sync::Engine>,
}

impl Running {
    /// Stops every stage and waits for them.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        if let Some(e) = &self.engine {
            e.stop();
        }
        if let Some(mut h) = self.http.take() {
            // requests in flight get a few seconds to finish, then are cut
            if tokio::time::timeout(std::time::Duration::from_secs(5), &mut h)
                .await
                .is_err()
            {
                h.abort();
                let _ = h.await;
            }
        }
        for t in self.tasks.drain(..) {
            t.await.context("stage task panicked")??;
        }
        Ok(())
    }

    /// Waits until a stage ends (a failure; or forever).
    ///
    /// Cancel-safe: the stages stay in `self` while it waits, so [`Running::stop`] after a
    /// cancelled `wait` (`select!` with Ctrl-C) still stops and awaits every one of them.
    /// (It once moved them into its future: a cancelled wait detached them, `stop` awaited
    /// nothing, and the embedded broker went down under stages still running — librdkafka
    /// `Connection refused` errors at every Ctrl-C.)
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        if self.tasks.is_empty() {
            std::future::pending::<()>().await;
        }
        loop {
            if let Some(i) = self.tasks.iter().position(|t| t.is_finished()) {
                let t = self.tasks.remove(i);
                return t.await.context("stage task panicked")?;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

fn ingest_connections(specs: &[ingot_model::ConnectionSpec]) -> Vec<ingot_ingest::Connection> {
    specs
        .iter()
        .map(|c| ingot_ingest::Connection {
            id: c.id.clone(),
            tenant_id: c.tenant.clone(),
            provider: c.provider,
            // the caller's secrets and the one ingot generated for its subscriptions
            webhook_secrets: c.all_webhook_secrets(),
        })
        .collect()
}

fn tenants(cfg: &Config) -> Vec<Tenant> {
    // each tenant, and each of its connection-limited keys as a tenant entry of its own
    cfg.tenants.iter().flat_map(|t| t.tenants()).collect()
}

pub fn processor_dir(cfg: &Config) -> PathBuf {
    cfg.storage.data_dir.join("processor")
}

pub fn forwarder_dir(cfg: &Config) -> PathBuf {
    cfg.storage.data_dir.join("forwarder")
}

pub fn view_dir(cfg: &Config) -> PathBuf {
    cfg.storage.data_dir.join("view")
}

/// Starts the chosen stages against `infra`. The HTTP server (webhooks and/or API) binds
/// `cfg.http.listen`.
pub async fn start(
    cfg: &Config,
    infra: &Infra,
    stages: Stages,
    metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
) -> anyhow::Result<Running> {
    start_with(
        cfg,
        infra,
        stages,
        metrics,
        &ingot_sync::SyncSettings::default(),
    )
    .await
}

/// [`start`] with explicit sync settings (tests shorten windows and intervals).
pub async fn start_with(
    cfg: &Config,
    infra: &Infra,
    stages: Stages,
    metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    sync_settings: &ingot_sync::SyncSettings,
) -> anyhow::Result<Running> {
    let (tx, rx) = watch::channel(false);
    // before any store opens: the first configuration of the process sets the budget
    ingot_store::set_memory_budget((cfg.storage.cache_mb as usize) << 20);
    let codec = infra.codec()?;
    let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
    let mut router = axum::Router::new();
    let mut view = None;
    let static_specs: Vec<ingot_model::ConnectionSpec> =
        cfg.connections.iter().map(|c| c.spec()).collect();
    let connections = ingot_ingest::Connections::new(ingest_connections(&static_specs));
    let mut engine = None;
    let mut lifecycle: Option<ingot_ingest::LifecycleSink> = None;
    if stages.sync {
        let mut settings = sync_settings.clone();
        if settings.public_url.is_none() {
            settings.public_url = cfg.http.public_url.clone();
        }
        let e = ingot_sync::Engine::open_sealed(
            infra.kafka.clone(),
            codec.clone(),
            settings,
            cfg.keyring()?,
        )
        .await
        .context("starting the sync engine")?;
        for spec in &static_specs {
            e.upsert_connection(spec.clone())
                .await
                .context("storing a configured connection")?;
        }
        e.start_all();
        // ingest sees connections created through the API at once
        let mut changes = e.subscribe();
        let (e2, conns) = (e.clone(), connections.clone());
        conns.replace(ingest_connections(&e2.connections()));
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return Ok(()) },
                    _ = stop.changed() => { e2.stop(); return Ok(()) }
                }
                conns.replace(ingest_connections(&e2.connections()));
            }
        }));
        router = router.merge(ingot_sync::api::router(
            e.clone(),
            ingot_model::auth::Auth::new(&tenants(cfg)),
        ));
        // connection changes announced by webhooks (Shopify app/uninstalled) reach the
        // engine, which records them in ingot.connections
        let e3 = e.clone();
        lifecycle = Some(Arc::new(move |id: String, change| {
            let e = e3.clone();
            Box::pin(async move {
                match change {
                    ingot_ingest::Lifecycle::Uninstalled => e
                        .disconnect(
                            &id,
                            "the 3PA reported the app uninstalled (app/uninstalled webhook)",
                        )
                        .await
                        .map_err(|err| err.to_string()),
                }
            })
        }));
        engine = Some(e);
    } else if stages.ingest {
        // a separate ingest process: configured connections plus those in the control topic
        let (kafka, conns, statics, mut stop, keyring) = (
            infra.kafka.clone(),
            connections.clone(),
            static_specs.clone(),
            rx.clone(),
            cfg.keyring()?,
        );
        tasks.push(tokio::spawn(async move {
            loop {
                if let Ok(stored) = ingot_sync::read_connections_sealed(&kafka, &keyring).await {
                    let mut all = statics.clone();
                    all.extend(
                        stored
                            .into_iter()
                            .filter(|s| !statics.iter().any(|c| c.id == s.id)),
                    );
                    conns.replace(ingest_connections(&all));
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    _ = stop.changed() => return Ok(()),
                }
            }
        }));
    }
    if stages.processor {
        let mut pc = ProcessorConfig::new(processor_dir(cfg));
        // exactly-once wherever the broker has transactions
        pc.exactly_once = infra.kafka.capabilities.transactions;
        if let Some(g) = &cfg.processor.group_id {
            pc.group_id = g.clone();
        }
        if let Some(n) = cfg.processor.max_batch {
            pc.max_batch = n.clamp(1, 10_000);
        }
        let p = Processor::open(pc, infra.kafka.clone(), codec.clone())
            .await
            .context("starting the processor")?;
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            p.run(rx).await.context("processor failed")?;
            Ok(())
        }));
    }
    if stages.materializer {
        let v = View::open(&view_dir(cfg)).context("opening the materialized view")?;
        let m = Materializer::new(v.clone(), infra.kafka.clone(), codec.clone());
        let stalled = processor_watch(cfg, infra, rx.clone(), &mut tasks);
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            m.run(rx).await.context("materializer failed")?;
            Ok(())
        }));
        let mut api = ApiState::new(v.clone(), &tenants(cfg)).with_readiness(Arc::new(move || {
            stalled.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }));
        if let Some(render) = metrics.clone() {
            api = api.with_metrics(render);
        }
        if stages.forwarder {
            // one /openapi.json for the whole server
            api = api.with_openapi(&ingot_forwarder::openapi_paths());
        }
        router = router.merge(ingot_materializer::router(api));
        view = Some(v);
    }
    if stages.forwarder {
        let fwd = ingot_forwarder::Forwarder::open(
            cfg.forwarder.clone(),
            &forwarder_dir(cfg),
            infra.kafka.clone(),
            codec.clone(),
            ingot_model::auth::Auth::new(&tenants(cfg)),
            cfg.keyring()?,
        )
        .await
        .context("starting the forwarder")?;
        router = router.merge(fwd.router());
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            fwd.run(rx).await.context("forwarder failed")?;
            Ok(())
        }));
    }
    if stages.ingest {
        let producer = Producer::new(&infra.kafka)?;
        let mut state =
            ingot_ingest::IngestState::new(connections.clone(), producer, codec.clone());
        if let Some(sink) = lifecycle.take() {
            state = state.with_lifecycle(sink);
        }
        router = router.merge(ingot_ingest::router(state, cfg.http.max_body_bytes));
    }
    if !stages.materializer && (stages.ingest || stages.sync || stages.forwarder) {
        // the materializer's router serves /healthz and /metrics in the processes that
        // run it; the others (ingest, sync, forward alone) serve them here
        router = router.route("/healthz", axum::routing::get(|| async { "ok" }));
        if let Some(render) = metrics.clone() {
            router = router.route(
                "/metrics",
                axum::routing::get(move || {
                    let render = render.clone();
                    async move { render() }
                }),
            );
        }
    }
    // what no route serves, in the error envelope (axum's own 404 and 405 have empty
    // bodies): an unknown path is a 404; a known path with another method a 405, except a
    // POST action whose path parameter a client left empty
    // (`/v1/connections//reconcile` is sent as `/v1/connections/reconcile`, the path of
    // another route): that names no record, the 404 every such operation documents
    router = router
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                let path = uri.path();
                let (status, reason) =
                    if method == axum::http::Method::POST && is_action_without_id(path) {
                        (
                            axum::http::StatusCode::NOT_FOUND,
                            format!("not found: {path} names no record (an empty id?)"),
                        )
                    } else {
                        (
                            axum::http::StatusCode::METHOD_NOT_ALLOWED,
                            format!("method not allowed: {method} {path}"),
                        )
                    };
                ingot_http::ApiError::Status(status, reason)
            },
        )
        .fallback(|uri: axum::http::Uri| async move {
            ingot_http::ApiError::Status(
                axum::http::StatusCode::NOT_FOUND,
                format!("not found: no route serves {}", uri.path()),
            )
        });
    let mut http = None;
    let mut http_addr = None;
    if stages.ingest || stages.materializer || stages.sync || stages.forwarder {
        let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
            .await
            .with_context(|| format!("binding {}", cfg.http.listen))?;
        http_addr = Some(listener.local_addr()?);
        // per-key rate limits over every route merged above (only /v1 paths count)
        if let Some(limits) = crate::ratelimit::KeyLimits::new(
            ingot_model::auth::Auth::new(&tenants(cfg)),
            cfg.http.rate_limit_per_minute,
        ) {
            router = router.layer(axum::middleware::from_fn_with_state(
                limits,
                crate::ratelimit::limit,
            ));
        }
        let app = router.layer(axum::middleware::from_fn(trace_request));
        let mut stop = rx.clone();
        http = Some(tokio::spawn(async move {
            // graceful: at stop the server closes its (idle keep-alive) connections, whose
            // tasks hold the routers' Kafka clients, before the stages and broker go
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(component = "http", error = %e, "http server stopped");
            }
        }));
    }
    Ok(Running {
        http_addr,
        shutdown: tx,
        tasks,
        http,
        view,
        engine,
    })
}

/// How long the processor group may leave raw events unconsumed without committing any
/// progress before `/readyz` says it has stalled.
const STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Watches the processor group (whichever processes run it): while raw events wait and
/// its committed offsets have not moved for [`STALL_AFTER`], the returned reason is set
/// (and `/readyz` answers 503 with it).
fn processor_watch(
    cfg: &Config,
    infra: &Infra,
    mut stop: watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<anyhow::Result<()>>>,
) -> Arc<std::sync::Mutex<Option<String>>> {
    let stalled = Arc::new(std::sync::Mutex::new(None));
    let group = cfg
        .processor
        .group_id
        .clone()
        .unwrap_or_else(|| ProcessorConfig::new(PathBuf::new()).group_id);
    let (kafka, out) = (infra.kafka.clone(), stalled.clone());
    tasks.push(tokio::spawn(async move {
        let mut last: Option<(Vec<Option<i64>>, std::time::Instant)> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = stop.changed() => return Ok(()),
            }
            let mut committed = Vec::new();
            let mut behind = false;
            for p in ingot_model::Provider::ALL {
                let topic = p.raw_topic();
                let (Ok(ends), Ok(done)) = (
                    kafka.end_offsets(&topic),
                    kafka.committed_offsets(&group, &topic).await,
                ) else {
                    continue;
                };
                for (part, end) in ends {
                    let c = done.iter().find(|(q, _)| *q == part).and_then(|(_, o)| *o);
                    behind |= c.unwrap_or(0) < end;
                    committed.push(c);
                }
            }
            let now = std::time::Instant::now();
            let since = match &last {
                Some((prev, at)) if *prev == committed => *at,
                _ => now,
            };
            last = Some((committed, since));
            let reason = (behind && now.duration_since(since) >= STALL_AFTER).then(|| {
                format!(
                    "processor stalled: raw events wait and group {group} committed nothing for {} s",
                    now.duration_since(since).as_secs()
                )
            });
            if reason.is_some() != out.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                match &reason {
                    Some(r) => tracing::error!(component = "processor", reason = %r, "not ready"),
                    None => tracing::info!(component = "processor", "processor makes progress again"),
                }
            }
            *out.lock().unwrap_or_else(|e| e.into_inner()) = reason;
        }
    }));
    stalled
}

async fn trace_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    tracing::debug!(component = "http", %method, %path, status = res.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    metrics::counter!("ingot_http_requests_total", "status" => res.status().as_u16().to_string())
        .increment(1);
    res
}

/// `/v1/<collection>/<action>`: the path of a POST action on a record
/// (`/v1/<collection>/{id}/<action>`) with its id left empty.
fn is_action_without_id(path: &str) -> bool {
    const ACTIONS: &[(&str, &[&str])] = &[
        ("connections", &["resync", "reconcile"]),
        ("webhook-endpoints", &["rotate-secret", "replay", "test"]),
        ("replays", &["cancel"]),
    ];
    let mut parts = path.trim_start_matches('/').split('/');
    let (Some("v1"), Some(collection), Some(action), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    ACTIONS
        .iter()
        .any(|(c, actions)| *c == collection && actions.contains(&action))
}
