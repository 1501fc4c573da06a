//! `ingot`: the CLI. Thin: parses arguments, loads config, hands over to `ingot::app`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ingot::app::{self, Embedded, Infra, Stages};
use ingot::config::Config;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "ingot",
    version,
    about = "Self-hosted unified API engine for commerce and ERP data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage in one process (embedded broker and registry unless configured).
    Run {
        /// The config file (TOML); `$INGOT_CONFIG`, else `./ingot.toml`.
        #[arg(long, short, env = "INGOT_CONFIG", default_value = "ingot.toml")]
        config: PathBuf,
    },
    /// Start everything on the embedded default, play a simulated Shopify shop's webhooks
    /// through it, print what the API returns, run the whole loop with a simulated Shopify
    /// store (subscriptions, bulk backfill, a live webhook), and keep the API up.
    Demo {
        /// Address of the API and webhook receiver.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where the demo keeps its data (wiped at start).
        #[arg(long, default_value = "./ingot-demo-data")]
        data_dir: PathBuf,
        /// Exit after printing instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Measure the pipeline on the embedded broker and print the figures.
    Bench {
        /// Raw events pushed through the processor and the materializer.
        #[arg(long, default_value_t = 5000)]
        records: usize,
        /// Webhook → queryable latency samples.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// Throughput samples per figure, after one warm-up.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Run on this Kafka (HOST:PORT) instead of the embedded broker. A scratch broker:
        /// the bench deletes and re-creates ingot's topics there.
        #[arg(long)]
        kafka: Option<String>,
        /// Only the query figures (and webhook → queryable): skip the processor and
        /// materializer throughput figures.
        #[arg(long)]
        queries_only: bool,
        /// Only the processor core figure (no broker in the loop), then exit: what to run
        /// under a profiler (`perf record -g -- ingot bench --core-only`).
        #[arg(long, conflicts_with = "queries_only")]
        core_only: bool,
        /// Only the materializer rebuild figure and its plain-read baseline (the raw events
        /// go through the processor once, unmeasured), then exit: what to run under a
        /// profiler (`perf record -g -- ingot bench --rebuild-only`).
        #[arg(long, conflicts_with_all = ["queries_only", "core_only"])]
        rebuild_only: bool,
        /// Only the processor through the broker and its pass-through baseline (no
        /// replay, rebuild or query figures), then exit. With `INGOT_BENCH_PERF_CTL` set to
        /// a `perf record --control fifo:` path, the bench enables the profiler for each
        /// at-least-once sample's timed window only (`docs/figures.md`).
        #[arg(long, conflicts_with_all = ["queries_only", "core_only", "rebuild_only"])]
        processor_only: bool,
        /// Only the history figures: grow the stored history to each of these record
        /// counts (customers, ≈ 1 KB) and measure, at each, raw → queryable for a probe of
        /// `--records` orders, point GETs, the view's memory and compaction backlog, and
        /// webhook → queryable for `--samples` webhooks under the `--load-rate` load.
        #[arg(long, value_delimiter = ',', conflicts_with_all = ["queries_only", "core_only", "rebuild_only", "processor_only"])]
        history: Vec<usize>,
        /// Webhooks/s of a steady load of other senders' webhooks, under which the
        /// webhook → queryable latency is measured a second time (0: skip that series).
        #[arg(long, default_value_t = 500)]
        load_rate: u32,
    },
    /// Show a connection's sync status as progress bars (per model).
    SyncStatus {
        /// The API's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// An API key of the connection's tenant.
        #[arg(long, env = "INGOT_API_KEY")]
        key: String,
        connection: String,
        /// Keep refreshing until every model has ended (done, failed or partial); exits with
        /// status 1 and the reasons unless every model is done.
        #[arg(long)]
        follow: bool,
    },
    /// Re-standardize a selection of the raw log with the current mappings (zero 3PA
    /// calls), or redrive the dead-letter topic; run by the running processor(s), followed
    /// here with a progress bar (Ctrl-C cancels).
    Replay {
        /// The config file (TOML); `$INGOT_CONFIG`, else `./ingot.toml`.
        #[arg(long, short, env = "INGOT_CONFIG", default_value = "ingot.toml")]
        config: PathBuf,
        /// Connections to replay (`--connection a b` or repeated; required unless --dlq).
        #[arg(long = "connection", num_args = 1..)]
        connections: Vec<String>,
        /// Only these models (`--model order customer` or repeated): order, customer, product.
        #[arg(long = "model", num_args = 1..)]
        models: Vec<ingot_model::Model>,
        /// Raw events received at or after this time (RFC 3339; with --dlq: dead-lettered).
        #[arg(long)]
        since: Option<String>,
        /// Raw events received at or before this time (RFC 3339; with --dlq: dead-lettered).
        #[arg(long)]
        until: Option<String>,
        /// Write nothing; report what would change (per model, per field, sample diffs).
        #[arg(long)]
        dry_run: bool,
        /// Redrive the dead-letter topic (raw.dlq) instead of the raw topics.
        #[arg(long)]
        dlq: bool,
        /// With --dlq: only entries whose reason contains this text.
        #[arg(long, requires = "dlq")]
        reason: Option<String>,
        /// Print the final status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Topic administration.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Only the embedded broker and registry (for running stages as separate processes).
    Infra {
        /// The config file (TOML); `$INGOT_CONFIG`, else `./ingot.toml`.
        #[arg(long, short, env = "INGOT_CONFIG", default_value = "ingot.toml")]
        config: PathBuf,
    },
    /// Only the webhook receiver.
    Ingest {
        /// The config file (TOML); `$INGOT_CONFIG`, else `./ingot.toml`.
        #[arg(long, short, env = "INGOT_CONFIG", default_value = "ingot.toml")]
        config: PathBuf,
    },
    /// Only the processor.
    Process {
        /// The config file (TOML); `$INGOT_CONFIG`, else `./ingot.toml`.
        #[arg(long, short, env = "INGOT_CONFIG", default_value = "ingot.toml")]
        config: PathBuf,
    },
    /// Only the forwarder: change webhooks to the ISV's endpoints and the
    /// `/v1/webhook-endpoints` API. Run one per deployment.
    Forward {
        /// The config file (TOML); `$INGOT_CONFIG`, else `./ingot.toml`.
        #[arg(long, short, env = "INGOT_CONFIG", default_value = "ingot.toml")]
        config: PathBuf,
    },
    /// Only the materializer and the query API.
    Materialize {
        /// The config file (TOML); `$INGOT_CONFIG`, else `./ingot.toml`.
        #[arg(long, short, env = "INGOT_CONFIG", default_value = "ingot.toml")]
        config: PathBuf,
        /// A read replica: no sync engine and no connections API (run the sync engine in
        /// one process per deployment).
        #[arg(long)]
        no_sync: bool,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create every topic of topology/topics.toml that does not exist (idempotent).
    Apply,
    /// Print the topology.
    List,
}

fn init_tracing() {
    // rdkafka's default client context logs every partition EOF and the broker's shutdown
    // as "global errors" (target `rdkafka::client`); ingot reports the failures that
    // matter itself. `INGOT_LOG=info,rdkafka::client=error` shows them again.
    let filter = tracing_subscriber::EnvFilter::try_from_env("INGOT_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,rdkafka::client=off,ingot=info,ingot_embedded=info,ingot_ingest=info,ingot_kafka=info,\
             ingot_processor=info,ingot_materializer=info,ingot_sync=info,ingot_connectors=info,ingot_store=info",
        )
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn install_metrics() -> anyhow::Result<Arc<dyn Fn() -> String + Send + Sync>> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(Arc::new(move || handle.render()))
}

async fn serve(cfg: Config, embedded: Embedded, stages: Option<Stages>) -> anyhow::Result<()> {
    let metrics = install_metrics()?;
    for tenant in cfg.tenants_with_clear_keys() {
        tracing::warn!(
            %tenant,
            "an API key is written in clear in the config; write it as its digest \
             (sha256:<hex of SHA-256 of the key>, `printf %s \"$KEY\" | sha256sum`) so the file opens nothing"
        );
    }
    let infra = Infra::start(&cfg, embedded).await?;
    let Some(stages) = stages else {
        tracing::info!(kafka = %infra.kafka.bootstrap_servers, registry = %infra.registry_url, "infra up; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    };
    let mut running = app::start(&cfg, &infra, stages, Some(metrics)).await?;
    if let Some(addr) = running.http_addr {
        tracing::info!(%addr, kafka = %infra.kafka.bootstrap_servers, registry = %infra.registry_url, "ingot up");
    }
    tokio::select! {
        r = running.wait() => r?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    running.stop().await
}

/// mimalloc instead of the system allocator (measured in docs/figures.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the command on a multi-threaded runtime, then shuts the runtime down with a bound:
/// a task still inside a blocking call (an rdkafka consumer closing against a broker that
/// is already gone never returns) must not keep the process, or its error, from ending.
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(cli));
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "ingot stopped with an error");
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            serve(
                Config::load(Some(&config))?,
                Embedded::Start,
                Some(Stages::ALL),
            )
            .await
        }
        Command::Infra { config } => {
            serve(Config::load(Some(&config))?, Embedded::Start, None).await
        }
        Command::Ingest { config } => {
            serve(
                Config::load(Some(&config))?,
                Embedded::Connect,
                Some(Stages {
                    ingest: true,
                    ..Stages::NONE
                }),
            )
            .await
        }
        Command::Process { config } => {
            serve(
                Config::load(Some(&config))?,
                Embedded::Connect,
                Some(Stages {
                    processor: true,
                    ..Stages::NONE
                }),
            )
            .await
        }
        Command::Forward { config } => {
            serve(
                Config::load(Some(&config))?,
                Embedded::Connect,
                Some(Stages {
                    forwarder: true,
                    ..Stages::NONE
                }),
            )
            .await
        }
        Command::Materialize { config, no_sync } => {
            serve(
                Config::load(Some(&config))?,
                Embedded::Connect,
                Some(Stages {
                    materializer: true,
                    sync: !no_sync,
                    ..Stages::NONE
                }),
            )
            .await
        }
        Command::Topics { command, config } => {
            let cfg = Config::load(config.as_deref())?;
            match command {
                TopicsCommand::List => {
                    for t in ingot_kafka::Topology::builtin().topics {
                        println!(
                            "{:<22} partitions={} cleanup.policy={} retention.ms={}",
                            t.name, t.partitions, t.cleanup_policy, t.retention_ms
                        );
                    }
                    Ok(())
                }
                TopicsCommand::Apply => {
                    // with no [kafka], the embedded broker must be up (`ingot infra`)
                    let infra = Infra::start(&cfg, Embedded::Connect).await?;
                    println!("topology applied on {}", infra.kafka.bootstrap_servers);
                    Ok(())
                }
            }
        }
        Command::Replay {
            config,
            connections,
            models,
            since,
            until,
            dry_run,
            dlq,
            reason,
            json,
        } => {
            ingot::replay::run(
                Config::load(Some(&config))?,
                ingot::replay::ReplayArgs {
                    connections,
                    models,
                    since,
                    until,
                    dry_run,
                    dlq,
                    reason,
                    json,
                },
            )
            .await
        }
        Command::SyncStatus {
            api,
            key,
            connection,
            follow,
        } => ingot::progress::watch(&api, &key, &connection, follow).await,
        Command::Bench {
            records,
            samples,
            runs,
            kafka,
            queries_only,
            core_only,
            rebuild_only,
            processor_only,
            history,
            load_rate,
        } => {
            ingot::bench::run(ingot::bench::BenchArgs {
                records,
                samples,
                runs,
                kafka,
                queries_only,
                core_only,
                rebuild_only,
                processor_only,
                history,
                load_rate,
            })
            .await
        }
        Command::Demo {
            listen,
            data_dir,
            exit,
        } => ingot::demo::run(listen, data_dir, exit, install_metrics()?)
            .await
            .map(|_| ()),
    }
}
