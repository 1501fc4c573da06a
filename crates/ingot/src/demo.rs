//! `ingot demo`: the main job on the embedded default, fed by the simulated shop.

use crate::app::{self, Embedded, Infra, Stages};
use crate::config::Config;
use crate::shopsim;
use anyhow::Context;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const API_KEY: &str = "test-api-key";
/// A second key of the demo's tenant, limited to the connection [`CONNECTION`]: it sees
/// nothing of the connections made later (404), as DESIGN §6's connection-scoped keys.
pub const LIMITED_API_KEY: &str = "test-limited-key";
pub const SECRET: &str = "test-secret-not-real";
pub const CONNECTION: &str = "shop-1";
pub const SHOP: &str = "demo.myshopify.com";

/// The demo's configuration: the issue's example config with the given address and data
/// dir, under the `INGOT_<SECTION>__<KEY>` environment layer.
pub fn demo_config(listen: &str, data_dir: &std::path::Path) -> anyhow::Result<Config> {
    Config::from_toml_with_env(&format!(
        r#"
[http]
listen = "{listen}"
[storage]
data_dir = "{}"
[[tenants]]
id = "acme"
api_keys = ["{API_KEY}"]
[[tenants.limited_keys]]
key = "{LIMITED_API_KEY}"
connections = ["{CONNECTION}"]
[[connections]]
id = "{CONNECTION}"
tenant = "acme"
provider = "shopify"
shop_domain = "{SHOP}"
webhook_secrets = ["{SECRET}"]
[forwarder]
# the demo's change-webhook receiver listens on loopback over plain http
allow_insecure_urls = true
retry_schedule_secs = [0, 1, 2, 5]
"#,
        data_dir.display()
    ))
}

/// The file `ingot demo` writes into its data directory: only a directory holding it (or
/// an empty one) is ever wiped.
pub const DEMO_MARKER: &str = ".ingot-demo-data";

/// Makes `dir` a fresh, empty demo data directory (with its marker). An existing `dir` is
/// deleted only if an earlier demo made it (the marker is there) or it is empty; anything
/// else (a file, someone's directory) is refused and left untouched.
pub fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        Ok(meta) if !meta.is_dir() => anyhow::bail!(
            "--data-dir {} exists and is not a directory; the demo deletes its data dir at start, so give it a new or empty one",
            dir.display()
        ),
        Ok(_) => {
            let ours = dir.join(DEMO_MARKER).is_file();
            let empty = std::fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .next()
                .is_none();
            if !ours && !empty {
                anyhow::bail!(
                    "--data-dir {} is not empty and was not made by `ingot demo` (no {DEMO_MARKER} in it); the demo deletes its data dir at start, so it refuses to touch this one: give it a new or empty directory",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir).with_context(|| format!("wiping {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "made by `ingot demo`, which deletes this directory at its next start\n",
    )
    .with_context(|| format!("writing the demo marker in {}", dir.display()))?;
    Ok(())
}

async fn api_get(client: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(API_KEY)
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// One change webhook the demo's receiver got.
struct Received {
    event_type: String,
    record_id: String,
    version: i64,
    /// The `standardwebhooks` crate's verdict (signature and timestamp).
    verified: Result<(), String>,
}

/// The ISV's side, as small as it gets: an HTTP receiver on a free loopback port that
/// verifies each request with the `standardwebhooks` crate under the endpoint's secret
/// (set once the endpoint exists) and records what it got.
struct DemoReceiver {
    url: String,
    secret: Arc<std::sync::OnceLock<String>>,
    got: Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DemoReceiver {
    async fn start() -> anyhow::Result<DemoReceiver> {
        let secret: Arc<std::sync::OnceLock<String>> = Arc::default();
        let got: Arc<std::sync::Mutex<Vec<Received>>> = Arc::default();
        let (s, g) = (secret.clone(), got.clone());
        let app = axum::Router::new().route(
            "/ingot-changes",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (s, g) = (s.clone(), g.clone());
                    async move {
                        let verified = match s.get() {
                            None => Err("no secret yet".to_string()),
                            Some(secret) => standardwebhooks::Webhook::new(secret)
                                .and_then(|wh| wh.verify(&body, &headers))
                                .map_err(|e| e.to_string()),
                        };
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let status = if verified.is_ok() {
                            axum::http::StatusCode::NO_CONTENT
                        } else {
                            axum::http::StatusCode::UNAUTHORIZED
                        };
                        g.lock().unwrap_or_else(|e| e.into_inner()).push(Received {
                            event_type: v["type"].as_str().unwrap_or("?").to_string(),
                            record_id: v["data"]["id"].as_str().unwrap_or("?").to_string(),
                            version: v["data"]["version"].as_i64().unwrap_or(-1),
                            verified,
                        });
                        status
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the demo's change-webhook receiver")?;
        let url = format!("http://{}/ingot-changes", listener.local_addr()?);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(component = "demo", error = %e, "change-webhook receiver stopped");
            }
        });
        Ok(DemoReceiver {
            url,
            secret,
            got,
            task,
        })
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for DemoReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Versions on the normalized topics (the demo's broker is fresh, so the end offsets
/// count every version the processor wrote): one change webhook each.
fn normalized_versions(infra: &Infra) -> i64 {
    ingot_model::Model::ALL
        .iter()
        .filter_map(|m| infra.kafka.end_offsets(&m.normalized_topic()).ok())
        .flatten()
        .map(|(_, end)| end)
        .sum()
}

/// Runs the demo; with `exit`, returns what its store loop section showed (tests assert
/// on it), else serves until Ctrl-C.
pub async fn run(
    listen: String,
    data_dir: PathBuf,
    exit: bool,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<StoreLoop> {
    run_edited(listen, data_dir, exit, metrics, |_| Ok(())).await
}

/// [`run`] with its configuration edited first (the test moves the embedded ports).
async fn run_edited(
    listen: String,
    data_dir: PathBuf,
    exit: bool,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
    edit: impl FnOnce(&mut Config) -> anyhow::Result<()>,
) -> anyhow::Result<StoreLoop> {
    prepare_data_dir(&data_dir)?;
    let mut cfg = demo_config(&listen, &data_dir)?;
    edit(&mut cfg)?;
    // the simulated store calls back ingot's own listen address: subscriptions are managed
    cfg.http.public_url = Some(format!("http://{listen}"));
    println!(
        "== ingot demo: embedded broker, embedded schema registry, data in {}",
        data_dir.display()
    );
    let started = Instant::now();
    let infra = Infra::start(&cfg, Embedded::Start).await?;
    let sync = ingot_sync::SyncSettings {
        // the simulated store finishes a bulk job at once: poll it often
        bulk_poll_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let running = app::start_with(&cfg, &infra, Stages::ALL, Some(metrics), &sync).await?;
    let addr = running.http_addr.context("http server not started")?;
    let base = format!("http://{addr}");
    println!(
        "   kafka {} · registry {} · API {base} (up in {} ms)",
        infra.kafka.bootstrap_servers,
        infra.registry_url,
        started.elapsed().as_millis()
    );
    let client = reqwest::Client::new();

    println!("\n== the ISV subscribes a receiver to change webhooks:");
    let receiver = DemoReceiver::start().await?;
    let r = client
        .post(format!("{base}/v1/webhook-endpoints"))
        .bearer_auth(API_KEY)
        .json(
            &serde_json::json!({"url": receiver.url, "events": ["*"], "description": "ingot demo"}),
        )
        .send()
        .await?;
    let status = r.status().as_u16();
    let endpoint: Value = r.json().await.unwrap_or(Value::Null);
    let (Some(endpoint_id), Some(secret)) = (endpoint["id"].as_str(), endpoint["secret"].as_str())
    else {
        anyhow::bail!("POST /v1/webhook-endpoints answered {status}: {endpoint}");
    };
    let _ = receiver.secret.set(secret.to_string());
    println!(
        "   POST /v1/webhook-endpoints → {status}: {endpoint_id} → {} (secret shown once: whsec_…)",
        receiver.url
    );

    println!("\n== the simulated shop {SHOP} sends signed webhooks:");
    let story = shopsim::story(SHOP, SECRET);
    let send_started = Instant::now();
    for (what, d) in &story.deliveries {
        let status = shopsim::send(&client, &base, CONNECTION, d).await?;
        println!("   {status}  {:<16} {what}", d.topic);
    }
    let mut bad = story.deliveries[0].1.clone();
    bad.headers
        .iter_mut()
        .filter(|(k, _)| k == "X-Shopify-Hmac-Sha256")
        .for_each(|(_, v)| *v = shopsim::sign("wrong-secret", &bad.body));
    println!(
        "   {}  {:<16} a forged delivery (wrong secret): rejected, nothing written",
        shopsim::send(&client, &base, CONNECTION, &bad).await?,
        bad.topic
    );

    // wait until the view reflects the whole story
    let o1 = ingot_model::RecordKey::new(
        CONNECTION,
        ingot_model::Model::Order,
        story.updated_order_id.to_string(),
    )
    .record_id();
    let o3 = ingot_model::RecordKey::new(
        CONNECTION,
        ingot_model::Model::Order,
        story.deleted_order_id.to_string(),
    )
    .record_id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s1, b1) = api_get(&client, &base, &format!("/v1/orders/{o1}")).await?;
        let (s3, _) = api_get(&client, &base, &format!("/v1/orders/{o3}")).await?;
        let (_, custs) = api_get(&client, &base, "/v1/customers").await?;
        let (_, prods) = api_get(&client, &base, "/v1/products").await?;
        let done = s1 == 200
            && b1["data"]["payment_status"] == "paid"
            && s3 == 404
            && custs["data"].as_array().map_or(0, Vec::len) == 2
            && prods["data"].as_array().map_or(0, Vec::len) == 2;
        if done {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("the API did not reflect the demo's webhooks within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "\n== all webhooks queryable {} ms after the first was sent",
        send_started.elapsed().as_millis()
    );

    // every version on the normalized topics becomes one change webhook
    let deadline = Instant::now() + Duration::from_secs(60);
    while (receiver.count() as i64) < normalized_versions(&infra) {
        if Instant::now() > deadline {
            anyhow::bail!(
                "the receiver got {} change webhooks of {} within 60 s",
                receiver.count(),
                normalized_versions(&infra)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("\n== change webhooks the receiver got (verified with the standardwebhooks crate):");
    for g in receiver
        .got
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!(
            "   {:<17} {}  version={:<3} {}",
            g.event_type,
            g.record_id,
            g.version,
            match &g.verified {
                Ok(()) => "signature verified".to_string(),
                Err(e) => format!("NOT verified: {e}"),
            }
        );
    }

    println!("\n== GET /v1/orders (what the API returns now):");
    let (_, orders) = api_get(&client, &base, "/v1/orders").await?;
    for o in orders["data"].as_array().into_iter().flatten() {
        println!(
            "   {}  remote_id={}  status={} payment={} fulfillment={}  total={} {}  lines={}  updated={}",
            o["order_number"].as_str().unwrap_or("?"),
            o["remote_id"].as_str().unwrap_or("?"),
            o["status"].as_str().unwrap_or("?"),
            o["payment_status"].as_str().unwrap_or("?"),
            o["fulfillment_status"].as_str().unwrap_or("?"),
            o["total_price"].as_str().unwrap_or("?"),
            o["currency"].as_str().unwrap_or(""),
            o["line_items"].as_array().map_or(0, Vec::len),
            o["remote_updated_at"].as_str().unwrap_or("?"),
        );
    }
    println!("   #1001 shows the paid update (the duplicate delivery made no second version);");
    println!("   #1002 kept its 12:00 version (the late 11:00 update was ignored);");
    let (s3, _) = api_get(&client, &base, &format!("/v1/orders/{o3}")).await?;
    println!("   #1003 was deleted: GET /v1/orders/{o3} → {s3}");
    let (_, with_deleted) = api_get(&client, &base, "/v1/orders?include_deleted=true").await?;
    println!(
        "   with include_deleted=true: {} orders",
        with_deleted["data"].as_array().map_or(0, Vec::len)
    );

    println!("\n== GET /v1/customers:");
    let (_, custs) = api_get(&client, &base, "/v1/customers").await?;
    for c in custs["data"].as_array().into_iter().flatten() {
        println!(
            "   {} {} <{}>  {}, {}",
            c["first_name"].as_str().unwrap_or(""),
            c["last_name"].as_str().unwrap_or(""),
            c["email"].as_str().unwrap_or(""),
            c["default_address"]["city"].as_str().unwrap_or(""),
            c["default_address"]["country_code"].as_str().unwrap_or("")
        );
    }
    println!("\n== GET /v1/products:");
    let (_, prods) = api_get(&client, &base, "/v1/products").await?;
    for p in prods["data"].as_array().into_iter().flatten() {
        let variants: Vec<String> = p["variants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{} {} ({} in stock)",
                    v["sku"].as_str().unwrap_or(""),
                    v["price"].as_str().unwrap_or(""),
                    v["inventory_quantity"]
                )
            })
            .collect();
        println!(
            "   {}: {}",
            p["name"].as_str().unwrap_or(""),
            variants.join(", ")
        );
    }
    println!("\n== one record in full: GET /v1/orders/{o1}");
    let (_, one) = api_get(&client, &base, &format!("/v1/orders/{o1}")).await?;
    println!("{}", serde_json::to_string_pretty(&one["data"])?);
    println!(
        "\n== freshness (next normalized offset per partition): {}",
        one["freshness"]
    );

    let (sim, store) = store_loop(&client, &base).await?;

    println!(
        "\n== try it yourself{}:",
        if exit {
            " (run without --exit to keep the API up)"
        } else {
            ""
        }
    );
    println!(
        "   curl -s -H 'Authorization: Bearer {API_KEY}' '{base}/v1/orders' | python3 -m json.tool"
    );
    println!("   curl -s -H 'Authorization: Bearer {API_KEY}' '{base}/v1/orders/{o1}?include_remote_data=true'");
    println!("   curl -s -H 'Authorization: Bearer {API_KEY}' '{base}/v1/customers?limit=1'");
    println!("   curl -s -H 'Authorization: Bearer {API_KEY}' '{base}/v1/orders?include_deleted=true&modified_after=2020-01-01T00:00:00Z'");
    println!("   curl -s '{base}/metrics' | grep ingot_");
    println!("   curl -s -H 'Authorization: Bearer {API_KEY}' '{base}/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=3'");
    println!(
        "   curl -s -H 'Authorization: Bearer {API_KEY}' '{base}/v1/connections/{STORE_CONNECTION}/sync-status' | python3 -m json.tool"
    );
    println!(
        "   curl -s -H 'Authorization: Bearer {API_KEY}' '{base}/v1/orders?connection_id={STORE_CONNECTION}&limit=2'"
    );
    println!(
        "   # a key limited to {CONNECTION}: its orders, and 404 for {STORE_CONNECTION}\n   curl -s -H 'Authorization: Bearer {LIMITED_API_KEY}' '{base}/v1/orders?limit=1'\n   curl -s -H 'Authorization: Bearer {LIMITED_API_KEY}' '{base}/v1/connections/{STORE_CONNECTION}'"
    );
    if !exit {
        println!("\n   serving until Ctrl-C");
        tokio::signal::ctrl_c().await?;
    }
    running.stop().await?;
    drop(sim);
    Ok(store)
}

/// The connection the demo creates for its simulated Shopify store.
pub const STORE_CONNECTION: &str = "store-1";

/// What the demo's store loop section showed.
#[derive(Debug, Clone)]
pub struct StoreLoop {
    /// The store's webhook subscriptions: (topic, callback).
    pub subscriptions: Vec<(String, String)>,
    /// Per model (`orders`, `customers`, `products`): the bulk job's id and the records
    /// it wrote.
    pub bulk_jobs: Vec<(String, String, u64)>,
    /// Per model: the records `GET /v1/<model>?connection_id=` serves, and how many the
    /// store holds.
    pub served: Vec<(String, usize, usize)>,
    /// The live change: the order's record id, the webhook the store sent (topic,
    /// status), and the latency from the change in the store to queryable.
    pub live_change: (String, String, Result<u16, String>, Duration),
}

/// Every live record of `model` for `connection`, through the paged API.
async fn count_records(
    client: &reqwest::Client,
    base: &str,
    model: &str,
    connection: &str,
) -> anyhow::Result<usize> {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/{model}?connection_id={connection}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = api_get(client, base, &path).await?;
        anyhow::ensure!(status == 200, "GET {path} answered {status}: {body}");
        n += body["data"].as_array().map_or(0, Vec::len);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(n),
        }
    }
}

/// Polls `cond` every 50 ms until it holds (its value), failing with `what` after 60 s.
async fn until<T, F: std::future::Future<Output = anyhow::Result<Option<T>>>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = cond().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("{what}: not within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole loop with a simulated Shopify store (GraphQL Admin API, bulk operations,
/// webhook subscriptions): connect it through the API, watch ingot subscribe and run
/// the historical sync as bulk jobs, then change an order in the store and time its
/// webhook to queryable. Returns the simulator (keep it up while the API serves).
async fn store_loop(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<(ingot_testkit::shopify::ShopifySim, StoreLoop)> {
    use ingot_testkit::shopify::{Resource, ShopifySim, ShopifySimConfig};
    let sim_cfg = ShopifySimConfig::small(7, 40);
    let (app_secret, domain) = (sim_cfg.app_secret.clone(), sim_cfg.shop_domain.clone());
    let sim = ShopifySim::start(sim_cfg).await;
    println!(
        "\n== a simulated Shopify store {domain} (GraphQL Admin API at {}): {} orders, {} customers, {} products",
        sim.base_url(),
        sim.ids(Resource::Orders).len(),
        sim.ids(Resource::Customers).len(),
        sim.ids(Resource::Products).len()
    );
    let r = client
        .post(format!("{base}/v1/connections"))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({
            "id": STORE_CONNECTION, "provider": "shopify", "shop_domain": domain,
            "base_url": sim.base_url(), "credentials": {"access_token": sim.access_token()},
            // Shopify signs every delivery with the app's client secret
            "webhook_secrets": [app_secret], "history_days": 760,
            "poll_interval_secs": 3600
        }))
        .send()
        .await?;
    let status = r.status().as_u16();
    let created: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status == 201,
        "POST /v1/connections answered {status}: {created}"
    );
    println!(
        "   POST /v1/connections → {status}: {STORE_CONNECTION} (webhooks managed: {}, callback {})",
        created["webhooks"]["managed"],
        created["webhooks"]["callback_url"].as_str().unwrap_or("?")
    );

    let topics = ingot_connectors::shopify::subscriptions::TOPICS;
    let subs = until("a store subscription per topic", || {
        let subs = sim.subscriptions();
        async move { Ok((subs.len() >= topics.len()).then_some(subs)) }
    })
    .await?;
    println!(
        "\n== webhook subscriptions the store now holds ({}):",
        subs.len()
    );
    for s in &subs {
        println!("   {:<17} → {}", s.topic, s.uri);
    }

    let sync_started = Instant::now();
    let status = until("the historical sync done", || async move {
        let (s, v) = api_get(
            client,
            base,
            &format!("/v1/connections/{STORE_CONNECTION}/sync-status"),
        )
        .await?;
        let done = s == 200
            && ["orders", "customers", "products"]
                .iter()
                .all(|m| v["models"][m]["state"] == "done");
        Ok(done.then_some(v))
    })
    .await?;
    let models = [
        ("orders", Resource::Orders),
        ("customers", Resource::Customers),
        ("products", Resource::Products),
    ];
    let mut served = Vec::new();
    for (m, res) in models {
        let want = sim.ids(res).len();
        let got = until("the synced records queryable", || async move {
            let n = count_records(client, base, m, STORE_CONNECTION).await?;
            Ok((n == want).then_some(n))
        })
        .await?;
        served.push((m.to_string(), got, want));
    }
    println!(
        "\n== historical sync done and queryable in {} ms, one bulk operation per model:",
        sync_started.elapsed().as_millis()
    );
    let mut bulk_jobs = Vec::new();
    for (m, got, want) in &served {
        let bulk = &status["models"][m.as_str()]["bulk"];
        let op = bulk["operation_id"].as_str().unwrap_or("?").to_string();
        let records = bulk["records_done"].as_u64().unwrap_or(0);
        println!(
            "   {m:<10} bulk {op} ({}): {records} records · GET /v1/{m}?connection_id={STORE_CONNECTION} → {got} (the store holds {want})",
            bulk["state"].as_str().unwrap_or("?")
        );
        bulk_jobs.push((m.clone(), op, records));
    }

    // a real change in the store (an updated_at alone would be absorbed by the version rule)
    let order_id = sim.ids(Resource::Orders)[0];
    let mut order = sim
        .records(Resource::Orders)
        .into_iter()
        .find(|r| r["id"] == order_id)
        .context("the store's first order")?;
    let note = "changed in the store during the demo";
    order["note"] = Value::from(note);
    order["updated_at"] = Value::from(sim.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let rid = ingot_model::RecordKey::new(
        STORE_CONNECTION,
        ingot_model::Model::Order,
        order_id.to_string(),
    )
    .record_id();
    let delivered = sim.deliveries().len();
    let changed = Instant::now();
    anyhow::ensure!(
        sim.upsert(Resource::Orders, order),
        "the store refused the change"
    );
    let rid_ref = &rid;
    until("the changed order queryable", || async move {
        let (s, v) = api_get(client, base, &format!("/v1/orders/{rid_ref}")).await?;
        Ok((s == 200 && v["data"]["note"] == note).then_some(()))
    })
    .await?;
    let latency = changed.elapsed();
    sim.deliveries_settled().await;
    let d = sim
        .deliveries()
        .get(delivered)
        .cloned()
        .context("the store delivered no webhook for the change")?;
    println!("\n== the store changes order {order_id}; its signed webhook makes it queryable:");
    println!(
        "   {:<15} → {}  GET /v1/orders/{rid}: note={note:?} {} ms after the change",
        d.topic,
        match &d.outcome {
            Ok(s) => s.to_string(),
            Err(e) => format!("failed: {e}"),
        },
        latency.as_millis()
    );
    let store = StoreLoop {
        subscriptions: subs.into_iter().map(|s| (s.topic, s.uri)).collect(),
        bulk_jobs,
        served,
        live_change: (rid, d.topic, d.outcome, latency),
    };
    Ok((sim, store))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ingot demo --exit` end to end on a temp data dir: its store loop section shows the
    /// subscriptions, one bulk job per model carrying the whole store, and the live change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_shows_the_whole_loop_with_a_simulated_store() {
        let root = tempfile::tempdir().unwrap();
        // a free port: the demo's public_url is its listen address
        let listen = format!("127.0.0.1:{}", ingot_embedded::free_port().unwrap());
        let store = run_edited(
            listen.clone(),
            root.path().join("demo"),
            true,
            Arc::new(String::new),
            |cfg| {
                // not the fixed defaults: a demo or a CI run may hold them
                cfg.embedded.kafka_port = ingot_embedded::free_port()?;
                cfg.embedded.registry_port = ingot_embedded::free_port()?;
                Ok(())
            },
        )
        .await
        .unwrap();

        let topics = ingot_connectors::shopify::subscriptions::TOPICS;
        assert_eq!(store.subscriptions.len(), topics.len(), "{store:?}");
        let callback = format!("http://{listen}/webhooks/shopify/{STORE_CONNECTION}");
        for t in topics {
            assert!(
                store
                    .subscriptions
                    .iter()
                    .any(|(topic, uri)| topic == t && *uri == callback),
                "{t}: {store:?}"
            );
        }
        let models: Vec<&str> = store.bulk_jobs.iter().map(|(m, _, _)| m.as_str()).collect();
        assert_eq!(models, ["orders", "customers", "products"]);
        for ((m, op, records), (_, got, want)) in store.bulk_jobs.iter().zip(&store.served) {
            assert!(op.starts_with("gid://shopify/BulkOperation/"), "{m}: {op}");
            assert_eq!(
                *records as usize, *want,
                "{m}: the bulk job carried the store"
            );
            assert_eq!(got, want, "{m}: the API serves the store's records");
        }
        // 40 orders, 8 customers, 4 products, less the few the generator deleted
        assert!(store.served[0].1 > 30, "{store:?}");
        let (rid, topic, outcome, latency) = &store.live_change;
        assert!(!rid.is_empty());
        assert_eq!((topic.as_str(), outcome), ("orders/updated", &Ok(200)));
        assert!(*latency < Duration::from_secs(60));
    }

    #[test]
    fn the_demo_wipes_only_its_own_or_empty_data_dirs() {
        let root = tempfile::tempdir().unwrap();
        // someone's directory: refused, untouched
        let theirs = root.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("thesis.tex"), "years of work").unwrap();
        let err = prepare_data_dir(&theirs).unwrap_err().to_string();
        assert!(err.contains("not made by `ingot demo`"), "{err}");
        assert_eq!(
            std::fs::read_to_string(theirs.join("thesis.tex")).unwrap(),
            "years of work"
        );
        // a file: refused, untouched
        let file = root.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(prepare_data_dir(&file).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        // new, then its own (with data inside): wiped and marked again
        let ours = root.path().join("ours");
        prepare_data_dir(&ours).unwrap();
        assert!(ours.join(DEMO_MARKER).is_file());
        std::fs::create_dir(ours.join("broker")).unwrap();
        std::fs::write(ours.join("broker/db"), "old run").unwrap();
        prepare_data_dir(&ours).unwrap();
        assert!(!ours.join("broker").exists() && ours.join(DEMO_MARKER).is_file());
        // an empty directory is fine
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        prepare_data_dir(&empty).unwrap();
        assert!(empty.join(DEMO_MARKER).is_file());
    }
}
