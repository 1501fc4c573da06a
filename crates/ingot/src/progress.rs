//! `ingot sync-status`: the sync status of a connection through the API, as progress bars
//! (one per model) until every model is done or failed.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub async fn watch(api: &str, key: &str, connection: &str, follow: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!(
        "{}/v1/connections/{connection}/sync-status",
        api.trim_end_matches('/')
    );
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return plain(&client, &url, key, follow).await;
    }
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos:>3}% {msg}")?
        .progress_chars("=> ");
    let mut bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
    loop {
        let resp = client.get(&url).bearer_auth(key).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{url}: HTTP {}", resp.status());
        let status: Value = resp.json().await?;
        let models = status["models"].as_object().cloned().unwrap_or_default();
        let mut finished = true;
        for (model, st) in &models {
            let bar = bars.entry(model.clone()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(100));
                b.set_style(style.clone());
                b.set_prefix(model.clone());
                b
            });
            let state = st["state"].as_str().unwrap_or("?");
            bar.set_position(st["progress_percent"].as_f64().unwrap_or(0.0) as u64);
            let mut msg = format!(
                "{state} · {} records · {} deletions",
                st["records_seen"], st["deletions_seen"]
            );
            if let Some(c) = st["cursor"].as_str() {
                msg.push_str(&format!(" · cursor {c}"));
            }
            if let Some(e) = st["last_error"].as_str() {
                msg.push_str(&format!(" · error: {e}"));
            }
            bar.set_message(msg);
            finished &= matches!(state, "done" | "failed");
        }
        if finished || !follow {
            for b in bars.values() {
                b.abandon();
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Without a terminal: one line per model and poll (for logs and pipes).
async fn plain(client: &reqwest::Client, url: &str, key: &str, follow: bool) -> anyhow::Result<()> {
    loop {
        let resp = client.get(url).bearer_auth(key).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{url}: HTTP {}", resp.status());
        let status: Value = resp.json().await?;
        let mut finished = true;
        for (model, st) in status["models"].as_object().cloned().unwrap_or_default() {
            let state = st["state"].as_str().unwrap_or("?").to_string();
            println!(
                "{model:>10} {state:<8} {:>5.1}%  records {}  deletions {}  cursor {}  error {}",
                st["progress_percent"].as_f64().unwrap_or(0.0),
                st["records_seen"],
                st["deletions_seen"],
                st["cursor"].as_str().unwrap_or("-"),
                st["last_error"].as_str().unwrap_or("-")
            );
            finished &= matches!(state.as_str(), "done" | "failed");
        }
        if finished || !follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
