use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;
use tokio::task::JoinHandle;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("embedded broker: {0}")]
    Tansu(String),
    #[error("embedded broker did not accept connections on 127.0.0.1:{0} within 10 s")]
    NotReady(u16),
}

/// The in-process Tansu broker (sqlite storage, so data and committed offsets survive a
/// restart). Dropping it stops the broker task.
pub struct EmbeddedBroker {
    pub port: u16,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts a broker on `127.0.0.1:port` storing in `<data_dir>/broker.db`, and waits
    /// until it accepts connections. Compaction runs as a maintenance task every 10 s.
    pub async fn start(data_dir: &Path, port: u16) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(data_dir).map_err(|source| BrokerError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let abs = std::path::absolute(data_dir.join("broker.db")).map_err(|source| BrokerError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        // Tansu joins the URL path onto the working directory after stripping one leading
        // `/`; a `//`-prefixed path keeps it absolute.
        let storage = Url::parse(&format!("sqlite:///{}?maintenance_interval=10s", abs.display()))
            .map_err(|e| BrokerError::Tansu(e.to_string()))?;
        let listener = Url::parse(&format!("tcp://127.0.0.1:{port}")).map_err(|e| BrokerError::Tansu(e.to_string()))?;
        type Tansu = tansu_broker::broker::Broker<
            tansu_broker::coordinator::group::administrator::Controller<tansu_storage::StorageContainer>,
            tansu_storage::StorageContainer,
        >;
        let mut broker = Tansu::builder()
            .node_id(111)
            .cluster_id("ingot-embedded")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(listener.clone())
            .storage(storage)
            .listener(listener)
            .silent(true)
            .build()
            .await
            .map_err(|e| BrokerError::Tansu(format!("{e:?}")))?;
        let task = tokio::spawn(async move {
            if let Err(e) = broker.serve(Instant::now()).await {
                tracing::error!(component = "embedded-broker", error = ?e, "broker stopped");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            if Instant::now() > deadline || task.is_finished() {
                return Err(BrokerError::NotReady(port));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(component = "embedded-broker", port, db = %abs.display(), "broker up");
        Ok(EmbeddedBroker { port, task })
    }

    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
