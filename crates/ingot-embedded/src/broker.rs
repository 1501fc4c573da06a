use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("embedded broker: {0}")]
    Tansu(String),
    #[error("embedded broker did not accept connections on 127.0.0.1:{0} within 10 s")]
    NotReady(u16),
    /// Another process (often another ingot) listens there: connecting to it would mix two
    /// instances' data.
    #[error("127.0.0.1:{port} is in use ({source}): another ingot or broker runs there; set [embedded] kafka_port (INGOT_EMBEDDED__KAFKA_PORT) to a free port")]
    PortInUse { port: u16, source: std::io::Error },
}

/// The in-process Tansu broker (sqlite storage, so data and committed offsets survive a
/// restart). It runs on its own tokio runtime (two worker threads), so that stopping it
/// stops everything it spawned — connection handlers and the maintenance task included —
/// as a process exit would. Dropping it stops the broker.
pub struct EmbeddedBroker {
    pub port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl EmbeddedBroker {
    /// Starts a broker on `127.0.0.1:port` storing in `<data_dir>/broker.db`, and waits
    /// until it accepts connections. Compaction runs as a maintenance task every
    /// `compaction_interval`.
    pub async fn start(
        data_dir: &Path,
        port: u16,
        compaction_interval: Duration,
    ) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(data_dir).map_err(|source| BrokerError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let abs = std::path::absolute(data_dir.join("broker.db")).map_err(|source| {
            BrokerError::DataDir {
                path: data_dir.to_path_buf(),
                source,
            }
        })?;
        // Tansu joins the URL path onto the working directory after stripping one leading
        // `/`; a `//`-prefixed path keeps it absolute.
        let storage = Url::parse(&format!(
            "sqlite:///{}?maintenance_interval={}s",
            abs.display(),
            compaction_interval.as_secs().max(1)
        ))
        .map_err(|e| BrokerError::Tansu(e.to_string()))?;
        let listener = Url::parse(&format!("tcp://127.0.0.1:{port}"))
            .map_err(|e| BrokerError::Tansu(e.to_string()))?;
        // the readiness check below connects to the port: it must be ours
        drop(
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|source| BrokerError::PortInUse { port, source })?,
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("embedded-broker")
            .enable_all()
            .build()
            .map_err(|e| BrokerError::Tansu(format!("broker runtime: {e}")))?;
        let (built_tx, built_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (indexed_tx, indexed_rx) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            type Tansu = tansu_broker::broker::Broker<
                tansu_broker::coordinator::group::administrator::Controller<
                    tansu_storage::StorageContainer,
                >,
                tansu_storage::StorageContainer,
            >;
            let built = Tansu::builder()
                .node_id(111)
                .cluster_id("ingot-embedded")
                .incarnation_id(uuid::Uuid::new_v4())
                .advertised_listener(listener.clone())
                .storage(storage)
                .listener(listener)
                .silent(true)
                .build()
                .await;
            let mut broker = match built {
                Ok(b) => {
                    let _ = built_tx.send(Ok(()));
                    b
                }
                Err(e) => {
                    let _ = built_tx.send(Err(format!("{e:?}")));
                    return;
                }
            };
            // its tables exist now; it serves once ingot's indexes are added (Tansu sets
            // no busy timeout: a write of its own that met the index build would fail)
            if indexed_rx.await.is_err() {
                return;
            }
            if let Err(e) = broker.serve(Instant::now()).await {
                tracing::error!(component = "embedded-broker", error = ?e, "broker stopped");
            }
        });
        let broker = EmbeddedBroker {
            port,
            runtime: Some(runtime),
        };
        built_rx
            .await
            .map_err(|_| BrokerError::Tansu("broker task ended during start-up".into()))?
            .map_err(BrokerError::Tansu)?;
        add_indexes(&abs).await?;
        let _ = indexed_tx.send(());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(BrokerError::NotReady(port));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(component = "embedded-broker", port, db = %abs.display(), "broker up");
        Ok(broker)
    }

    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Indexes Tansu 0.6's sqlite schema lacks, added to its database file once its tables
/// exist (`CREATE INDEX IF NOT EXISTS`: a restart finds them there). Without them its
/// costs grow with the history it stores (docs/design-embedded-broker.md):
/// - `header` has no index, yet a fetch looks up each record's headers by
///   `(topition, offset_id)` (`header_fetch.sql`), and deleting a record cascades to its
///   headers by the same columns: both scanned the whole table, once per record;
/// - the compaction pass (`policy_compact.sql`, every maintenance interval) groups the
///   records of compacted topics by `(topition, k)`: without an index that reads every
///   row, and a row's `k` is stored after its value, so every value's overflow pages too.
async fn add_indexes(db: &Path) -> Result<(), BrokerError> {
    let fail = |e: libsql::Error| BrokerError::Tansu(format!("adding indexes: {e}"));
    let conn = libsql::Builder::new_local(db)
        .build()
        .await
        .map_err(fail)?
        .connect()
        .map_err(fail)?;
    // the broker does not serve yet, but another process may hold this file
    conn.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS ingot_header_record ON header (topition, offset_id);
         CREATE INDEX IF NOT EXISTS ingot_record_key ON record (topition, k, offset_id);",
    )
    .await
    .map_err(fail)?;
    Ok(())
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // wait (bounded) until every broker task is gone, so a restart on the same
            // files starts clean; done on a plain thread because this may run inside async code
            let _ = std::thread::spawn(move || rt.shutdown_timeout(Duration::from_secs(5))).join();
        }
    }
}

#[cfg(test)]
mod port_tests {
    use super::*;

    /// The indexes ingot adds to Tansu's database, read back from sqlite's catalogue by
    /// another connection once the broker has stopped, and again after a restart on the
    /// same files (`IF NOT EXISTS`: a second start must not fail on them).
    #[tokio::test]
    async fn the_broker_database_gets_ingots_indexes_and_keeps_them_across_a_restart() {
        async fn indexes(db: &Path) -> Vec<(String, String)> {
            let conn = libsql::Builder::new_local(db)
                .build()
                .await
                .unwrap()
                .connect()
                .unwrap();
            let mut rows = conn
                .query(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ingot_%' ORDER BY name",
                    (),
                )
                .await
                .unwrap();
            let mut out = Vec::new();
            while let Some(r) = rows.next().await.unwrap() {
                out.push((r.get::<String>(0).unwrap(), r.get::<String>(1).unwrap()));
            }
            out
        }
        let dir = tempfile::tempdir().unwrap();
        let want = vec![
            ("ingot_header_record".to_string(), "header".to_string()),
            ("ingot_record_key".to_string(), "record".to_string()),
        ];
        for _start in 0..2 {
            let port = crate::free_port().unwrap();
            let broker = EmbeddedBroker::start(dir.path(), port, Duration::from_secs(3600))
                .await
                .unwrap();
            drop(broker);
            assert_eq!(indexes(&dir.path().join("broker.db")).await, want);
        }
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_error_not_someone_elses_broker() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let err = EmbeddedBroker::start(dir.path(), port, Duration::from_secs(3600))
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(err, BrokerError::PortInUse { port: p, .. } if p == port),
            "{err}"
        );
    }
}
