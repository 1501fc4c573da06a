//! `kill -9` of a forwarder process with deliveries pending: none is lost after a restart,
//! and every one keeps its `webhook-id`. The forwarder runs in a child process (this test
//! binary re-run with `INGOT_FORWARDER_CHILD` set); the broker, registry and receiver stay
//! in the parent.

#![allow(clippy::await_holding_lock)]

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use support::*;

const CHILD_ENV: &str = "INGOT_FORWARDER_CHILD";

/// Not a test of its own: the forwarder process of `kill_9_...` (returns at once otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_forwarder_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let v: Value = serde_json::from_str(&spec).unwrap();
    let kafka = ingot_kafka::KafkaSettings::new(v["bootstrap"].as_str().unwrap());
    let codec = ingot_kafka::AvroCodec::new(v["registry"].as_str().unwrap()).unwrap();
    let fwd = ingot_forwarder::Forwarder::open(
        fast_config(),
        std::path::Path::new(v["state"].as_str().unwrap()),
        kafka,
        codec,
        auth(),
        keyring(),
    )
    .await
    .unwrap();
    let (keep, rx) = tokio::sync::watch::channel(false);
    fwd.run(rx).await.unwrap(); // until killed
    drop(keep);
}

/// Kills the child when dropped (a failing test leaves no process behind).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(spec: &str) -> ChildGuard {
    let exe = std::env::current_exe().unwrap();
    ChildGuard(
        Command::new(exe)
            .args([
                "child_forwarder_process",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, spec)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_pending_deliveries_loses_none() {
    let _serial = serial();
    let infra = Infra::start().await;
    let rx = Receiver::start().await;
    // an API-only instance (never run) stores the endpoint in the control topic
    let api_only = ingot_forwarder::Forwarder::open(
        fast_config(),
        &infra.state_dir("api"),
        infra.kafka.clone(),
        infra.codec.clone(),
        auth(),
        keyring(),
    )
    .await
    .unwrap();
    let router = api_only.router();
    let (st, v) = api(
        &router,
        "POST",
        "/v1/webhook-endpoints",
        "acme-key",
        Some(json!({"url": format!("{}/e", rx.url)})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    rx.set_secrets(&[v["secret"].as_str().unwrap()]);
    drop(router);
    drop(api_only);

    let spec = json!({
        "bootstrap": infra.kafka.bootstrap_servers,
        "registry": infra.registry_url,
        "state": infra.state_dir("child").to_str().unwrap(),
    })
    .to_string();
    rx.answer_with(|_, _| Answer::status(503));
    let mut child = spawn_child(&spec);
    for i in 0..10 {
        produce(&infra, &order("shop-1", "acme", &format!("k{i}"), "open")).await;
    }
    let before = eventually(60, "an attempt for every record", || {
        let ids: BTreeMap<String, String> = rx
            .all()
            .into_iter()
            .map(|g| (g.remote_id().to_string(), g.id))
            .collect();
        (ids.len() == 10).then_some(ids)
    })
    .await;
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    for i in 10..15 {
        produce(&infra, &order("shop-1", "acme", &format!("k{i}"), "open")).await;
    }
    rx.answer_with(|_, _| Answer::OK);
    child = spawn_child(&spec);
    let delivered = eventually(90, "every record after the restart", || {
        let d: BTreeMap<String, String> = rx
            .delivered()
            .into_iter()
            .map(|g| (g.remote_id().to_string(), g.id))
            .collect();
        (d.len() == 15).then_some(d)
    })
    .await;
    for (rid, id) in &before {
        assert_eq!(
            &delivered[rid], id,
            "{rid} keeps its webhook-id across the kill"
        );
    }
    assert!(rx.all().iter().all(|g| g.verified_by == [0]));
    drop(child);
}
