//! `ingot sync-status`: the sync status of a connection through the API, as progress bars
//! (one per model). With `--follow` it refreshes until every model has ended (`done`,
//! `failed` or `partial`), then exits: status 0 when all are `done`, otherwise an error
//! naming each model that did not finish and its `last_error` (exit status 1). A
//! connection `disconnected` by its 3PA (Shopify `app/uninstalled`) ends it with that error.
//! Below the models it shows how webhooks reach the connection: each managed subscription
//! (topic, id, active, last checked, last error), or why polling carries it.

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
        }
        let end = outcome(&status);
        if end.is_some() || !follow {
            for line in webhook_lines(&status) {
                let _ = multi.println(line);
            }
        }
        if end.is_some() || !follow {
            for b in bars.values() {
                b.abandon();
            }
            return finish(connection, end);
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
        }
        for line in webhook_lines(&status) {
            println!("{line}");
        }
        let end = outcome(&status);
        if end.is_some() || !follow {
            return finish(&connection_of(url), end);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn connection_of(url: &str) -> String {
    url.trim_end_matches("/sync-status")
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether every model of a sync-status document has ended: `None` while one is pending
/// or syncing (or there are none); `Some(Ok)` when all are `done`; `Some(Err(reasons))`
/// when all ended and some are `failed` or `partial` (one line per such model, with its
/// `last_error`).
pub fn outcome(status: &Value) -> Option<Result<(), Vec<String>>> {
    if status["connection_state"] == "disconnected" {
        return Some(Err(vec![format!(
            "connection disconnected at {}: {}",
            status["disconnected"]["at"].as_str().unwrap_or("?"),
            status["disconnected"]["reason"]
                .as_str()
                .unwrap_or("no reason recorded")
        )]));
    }
    let models = status["models"].as_object()?;
    if models.is_empty() {
        return None;
    }
    let mut failures = Vec::new();
    for (model, st) in models {
        match st["state"].as_str().unwrap_or("?") {
            "done" => {}
            state @ ("failed" | "partial") => failures.push(format!(
                "{model} {state}: {}",
                st["last_error"].as_str().unwrap_or("no error recorded")
            )),
            _ => return None,
        }
    }
    Some(if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    })
}

/// The webhook part of a sync-status document, one line each: a summary, then one line
/// per managed subscription.
pub fn webhook_lines(status: &Value) -> Vec<String> {
    let w = &status["webhooks"];
    if w.is_null() {
        return Vec::new();
    }
    if w["managed"] != true {
        return vec![format!(
            "  webhooks not managed: {}",
            w["reason"].as_str().unwrap_or("?")
        )];
    }
    let subs = w["subscriptions"].as_array().cloned().unwrap_or_default();
    let active = subs.iter().filter(|s| s["active"] == true).count();
    let mut out = vec![format!(
        "  webhooks {active}/{} active · callback {} · checked {} · heals {}{}",
        subs.len(),
        w["callback_url"].as_str().unwrap_or("-"),
        w["last_checked"].as_str().unwrap_or("never"),
        w["heals"],
        w["last_error"]
            .as_str()
            .map(|e| format!(" · error: {e}"))
            .unwrap_or_default()
    )];
    for s in subs {
        out.push(format!(
            "    {:<18} {:<8} id {:<10} checked {}  error {}",
            s["topic"].as_str().unwrap_or("?"),
            if s["active"] == true {
                "active"
            } else {
                "INACTIVE"
            },
            s["id"].as_str().unwrap_or("-"),
            s["last_checked"].as_str().unwrap_or("never"),
            s["last_error"].as_str().unwrap_or("-")
        ));
    }
    out
}

fn finish(connection: &str, end: Option<Result<(), Vec<String>>>) -> anyhow::Result<()> {
    match end {
        Some(Err(failures)) => anyhow::bail!(
            "the sync of connection {connection} did not finish: {}",
            failures.join("; ")
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_and_failed_end_the_follow_with_their_reasons() {
        let doc = |a: &str, b: &str| {
            json!({"connection_id": "c", "models": {
                "orders": {"state": a, "last_error": "paging made no progress: x"},
                "customers": {"state": b, "last_error": null},
            }})
        };
        assert_eq!(outcome(&doc("done", "done")), Some(Ok(())));
        assert_eq!(outcome(&doc("partial", "syncing")), None);
        assert_eq!(outcome(&doc("done", "pending")), None);
        assert_eq!(
            outcome(&doc("partial", "done")),
            Some(Err(vec![
                "orders partial: paging made no progress: x".to_string()
            ]))
        );
        assert_eq!(
            outcome(&doc("failed", "failed")),
            Some(Err(vec![
                "customers failed: no error recorded".to_string(),
                "orders failed: paging made no progress: x".to_string()
            ]))
        );
        assert_eq!(outcome(&json!({"models": {}})), None);
        assert_eq!(outcome(&json!("garbage")), None);
        let gone = json!({"connection_state": "disconnected",
            "disconnected": {"at": "2026-01-01T00:00:00Z", "reason": "app/uninstalled"},
            "models": {"orders": {"state": "syncing"}}});
        assert_eq!(
            outcome(&gone),
            Some(Err(vec![
                "connection disconnected at 2026-01-01T00:00:00Z: app/uninstalled".to_string()
            ]))
        );
        let hooks = json!({"webhooks": {"managed": true, "callback_url": "http://h/webhooks/woocommerce/w",
            "last_checked": "T", "heals": 1, "subscriptions": [
                {"topic": "order.created", "id": "7", "active": true, "last_checked": "T", "last_error": null},
                {"topic": "order.updated", "id": "8", "active": false, "last_checked": "T", "last_error": "HTTP 403"}]}});
        let lines = webhook_lines(&hooks);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("1/2 active"), "{lines:?}");
        assert!(
            lines[2].contains("INACTIVE") && lines[2].contains("HTTP 403"),
            "{lines:?}"
        );
        let polled =
            json!({"webhooks": {"managed": false, "reason": "no [http] public_url is configured"}});
        assert_eq!(
            webhook_lines(&polled),
            ["  webhooks not managed: no [http] public_url is configured"]
        );
        let err = finish("c", outcome(&doc("partial", "done"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the sync of connection c did not finish: orders partial: paging made no progress: x"
        );
        assert_eq!(
            connection_of("http://h/v1/connections/woo-1/sync-status"),
            "woo-1"
        );
    }
}
