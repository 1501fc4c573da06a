//! `ingot replay`: asks the running processor(s) to re-standardize a selection of the raw
//! log (or to redrive the dead-letter topic) and follows the replay with a progress bar
//! until it ends; Ctrl-C cancels it. Talks to Kafka (the configured one, or the embedded
//! broker of a running `ingot run`); no 3PA is called.

use crate::app::{Embedded, Infra};
use crate::config::Config;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ingot_model::replay::{ReplaySource, ReplaySpec, ReplayState, ReplayStatus};
use ingot_model::Model;
use std::time::Duration;

/// What to replay (the CLI's arguments).
#[derive(Debug, Clone, Default)]
pub struct ReplayArgs {
    pub connections: Vec<String>,
    pub models: Vec<Model>,
    /// RFC 3339, any offset.
    pub since: Option<String>,
    pub until: Option<String>,
    pub dry_run: bool,
    pub dlq: bool,
    pub reason: Option<String>,
    /// Print the final status as JSON instead of text.
    pub json: bool,
}

fn time(s: &Option<String>, what: &str) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    s.as_deref()
        .map(|t| ingot_model::parse_time(t, false).with_context(|| format!("--{what} {t}")))
        .transpose()
}

pub async fn run(cfg: Config, args: ReplayArgs) -> anyhow::Result<()> {
    let source = if args.dlq {
        ReplaySource::Dlq
    } else {
        ReplaySource::Raw
    };
    if source == ReplaySource::Raw && args.connections.is_empty() {
        anyhow::bail!("name the connection(s) to replay: --connection ID… (or --dlq)");
    }
    let since = time(&args.since, "since")?;
    let until = time(&args.until, "until")?;
    if let (Some(a), Some(b)) = (since, until) {
        anyhow::ensure!(a <= b, "--since is after --until");
    }
    let infra = Infra::start(&cfg, Embedded::Connect)
        .await
        .context("reaching Kafka (with the embedded broker, `ingot run` must be running)")?;
    let kafka = infra.kafka.clone();
    let mut spec = ReplaySpec::new(source, ingot_sync::replays::units(&kafka)?);
    spec.connection_ids = args.connections.clone();
    spec.models = args.models.clone();
    spec.since = since;
    spec.until = until;
    spec.dry_run = args.dry_run;
    spec.reason_contains = args.reason.clone();
    ingot_sync::replays::submit(&kafka, &spec).await?;
    eprintln!(
        "replay {} requested{}: {} {}",
        spec.id,
        if spec.dry_run {
            " (dry run: nothing is written)"
        } else {
            ""
        },
        match source {
            ReplaySource::Raw => "raw events of",
            ReplaySource::Dlq => "dead letters of",
        },
        if spec.connection_ids.is_empty() {
            "every connection".to_string()
        } else {
            spec.connection_ids.join(", ")
        }
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} raw records {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let status = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                spec.cancelled = true;
                ingot_sync::replays::submit(&kafka, &spec).await?;
                bar.abandon_with_message("cancelled");
                eprintln!("replay {} cancelled", spec.id);
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let book = ingot_sync::replays::read_book(&kafka).await?;
        let Some(st) = book.status(&spec.id) else {
            continue;
        };
        bar.set_length(st.total);
        bar.set_position(st.position);
        let seek = match st.seek {
            Some(ingot_model::replay::Seek::TimestampLookup) => "timestamp lookup",
            Some(ingot_model::replay::Seek::Scan) => "scan",
            None => "waiting for a processor",
        };
        bar.set_message(format!(
            "({seek}; units {}/{}; re-emitted {}, unchanged {}, dead-lettered {})",
            st.units_done,
            st.units,
            st.counts.reemitted,
            st.counts.unchanged,
            st.counts.dead_lettered
        ));
        if st.finished() {
            break st;
        }
    };
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status, secs));
    }
    Ok(())
}

/// The text report of a finished replay.
pub fn render(st: &ReplayStatus, secs: f64) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let c = &st.counts;
    let state = match st.state {
        ReplayState::Done => "done",
        ReplayState::Cancelled => "cancelled",
        ReplayState::Running => "running",
        ReplayState::Pending => "pending",
    };
    let _ = writeln!(
        o,
        "replay {} {state}: start found by {}; scanned {}, read {}, {} {}, unchanged {}, dead-lettered {}, skipped {} ({:.0} records/s)",
        st.id,
        match st.seek {
            Some(ingot_model::replay::Seek::TimestampLookup) => "timestamp lookup",
            _ => "scan",
        },
        c.scanned,
        c.read,
        if st.dry_run { "would change" } else { "re-emitted" },
        c.reemitted,
        c.unchanged,
        c.dead_lettered,
        c.skipped,
        c.scanned as f64 / secs.max(0.001),
    );
    if let Some(r) = &st.report {
        if r.models.is_empty() {
            let _ = writeln!(o, "nothing would change");
        }
        for (model, d) in &r.models {
            let _ = writeln!(o, "{}: {} records would change", model.as_str(), d.changed);
            let mut fields: Vec<(&String, &u64)> = d.fields.iter().collect();
            fields.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (f, n) in fields {
                let _ = writeln!(o, "  {f:<24} {n}");
            }
            for s in &d.samples {
                let _ = writeln!(o, "  sample {}:", s.record_key);
                for ch in &s.changes {
                    let _ = writeln!(
                        o,
                        "    {}: {} → {}",
                        ch.field,
                        short(&ch.old),
                        short(&ch.new)
                    );
                }
            }
        }
    }
    o
}

fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}
