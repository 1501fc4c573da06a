//! Shopify bulk operations: the historical sync of a whole window in one job per model
//! ([`crate::bulk::BulkExport`] for [`super::ShopifyGraphqlConnector`]).
//!
//! 3PA facts (shopify.dev/docs/api/usage/bulk-operations/queries;
//! shopify.dev/docs/api/admin-graphql/2025-10/mutations/bulkOperationRunQuery, …/objects/BulkOperation,
//! …/enums/BulkOperationStatus, …/enums/BulkOperationUserErrorCode; changelog "Optional
//! groupObjects argument in bulk operations mutations"):
//!
//! - `bulkOperationRunQuery(query: String!, groupObjects: Boolean!)` starts a job and
//!   answers `bulkOperation { id status }` or `userErrors { field message code }`; codes
//!   `OPERATION_IN_PROGRESS` / `LIMIT_REACHED` mean the shop already runs as many bulk
//!   queries as it may (one per app and shop before API 2026-01, five from 2026-01): the
//!   engine waits and starts again ([`ConnectorError::RateLimited`]).
//! - The query has one top-level connection, at most five connections, nesting depth at
//!   most two; connections take no `first`/`after` and are written `edges { node { … } }`.
//! - The job is polled with `node(id:)` (`... on BulkOperation { status errorCode
//!   objectCount rootObjectCount url }`); statuses `CREATED`, `RUNNING`, `CANCELING`
//!   (still running), `COMPLETED`, `FAILED`, `CANCELED`, `EXPIRED`. A completed job's
//!   `url` (`null` when nothing matched) serves the JSONL result for 7 days; it needs no
//!   access token (a signed storage URL).
//! - The result has one line per node: the root nodes, and every node of a nested
//!   connection on its own line with `__parentId` (the id of the object holding the
//!   connection). With `groupObjects: true` children come directly after their parent,
//!   which is what lets [`crate::bulk::Reassembler`] rebuild each record while streaming.
//!
//! # One record, one content
//!
//! The bulk query selects exactly the fields of the paged query ([`super::listing`]),
//! rewritten for bulk: each nested `name(first: N) { pageInfo {…} nodes { SEL } }` becomes
//! `name { edges { node { __typename SEL } } }` (`__typename` tells the reassembler which
//! connection a child line belongs to; it is removed again unless the paged selection has
//! it), and the refunds get their `id` (the parent of their transactions). Rebuilt, a node
//! is the paged node without `pageInfo`; the `*/graphql` mappings read `nodes` either way,
//! so both standardize to the same record.

use super::graphql::ShopifyGraphql;
use super::listing::{customer_fields, gid_id, order_fields, product_fields};
use crate::bulk::{BulkExport, BulkReader, BulkState, ChildField, Reassembler};
use crate::{ConnectorError, RemoteRecord, Window};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use ingot_model::Model;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// How long a read of the result may wait for its next bytes.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The mutation that starts a job.
pub const RUN_MUTATION: &str = "mutation IngotBulkRun($query: String!) { bulkOperationRunQuery(query: $query, groupObjects: true) { bulkOperation { id status } userErrors { field message code } } }";

/// The query that polls a job.
pub const POLL_QUERY: &str = "query IngotBulkPoll($id: ID!) { node(id: $id) { ... on BulkOperation { id status errorCode objectCount rootObjectCount url } } }";

/// Rewrites a paged selection for a bulk query (see the module docs).
pub fn bulk_selection(sel: &str) -> Result<String, ConnectorError> {
    let b = sel.as_bytes();
    let mut out = String::with_capacity(sel.len() + 64);
    let mut i = 0;
    while i < b.len() {
        // `name(first: N) {` : a paged nested connection
        if b[i] == b'(' && sel[i..].starts_with("(first:") {
            let close = sel[i..]
                .find(')')
                .map(|k| i + k)
                .ok_or_else(|| bad("unclosed arguments"))?;
            let open = sel[close..]
                .find('{')
                .map(|k| close + k)
                .ok_or_else(|| bad("a connection without a selection"))?;
            let end = matching(sel, open)?;
            let body = &sel[open + 1..end];
            let nodes = body
                .find("nodes {")
                .ok_or_else(|| bad("a connection without nodes"))?;
            let nodes_open = nodes + "nodes ".len();
            let nodes_end = matching(body, nodes_open)?;
            let inner = body[nodes_open + 1..nodes_end].trim();
            let inner = bulk_selection(inner)?;
            let typename = if inner.starts_with("__typename") {
                String::new()
            } else {
                "__typename ".to_string()
            };
            out.push_str(&format!(" {{ edges {{ node {{ {typename}{inner} }} }} }}"));
            i = end + 1;
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    // the refunds hold the transactions connection: their id is its parent
    Ok(out.replace("refunds { transactions", "refunds { id transactions"))
}

fn bad(what: &str) -> ConnectorError {
    ConnectorError::Malformed(format!("bulk selection: {what}"))
}

/// The index of the `}` matching the `{` at `open`.
fn matching(s: &str, open: usize) -> Result<usize, ConnectorError> {
    let mut depth = 0usize;
    for (k, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(open + k);
                }
            }
            _ => {}
        }
    }
    Err(bad("unbalanced braces"))
}

/// Root field, gid type, mapping topic and child connections of a model's bulk query.
fn model_spec(model: Model) -> (&'static str, &'static str, &'static str, Vec<ChildField>) {
    let c = |typename, field, keep_typename| ChildField {
        typename,
        field,
        keep_typename,
    };
    match model {
        Model::Order => (
            "orders",
            "Order",
            "orders/graphql",
            vec![
                c("LineItem", "lineItems", false),
                c("ShippingLine", "shippingLines", false),
                c("OrderTransaction", "transactions", false),
                c("DiscountCodeApplication", "discountApplications", true),
                c("AutomaticDiscountApplication", "discountApplications", true),
                c("ManualDiscountApplication", "discountApplications", true),
                c("ScriptDiscountApplication", "discountApplications", true),
            ],
        ),
        Model::Customer => ("customers", "Customer", "customers/graphql", vec![]),
        Model::Product => (
            "products",
            "Product",
            "products/graphql",
            vec![c("ProductVariant", "variants", false)],
        ),
    }
}

/// The bulk query of `model` for records updated inside `window` (bounds inclusive,
/// whole seconds, UTC).
pub fn bulk_query(model: Model, window: &Window) -> Result<String, ConnectorError> {
    let (root, ..) = model_spec(model);
    let fields = match model {
        Model::Order => order_fields(),
        Model::Customer => customer_fields(),
        Model::Product => product_fields(),
    };
    let at = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let search = format!(
        "updated_at:>='{}' AND updated_at:<='{}'",
        at(&window.from),
        at(&window.to)
    );
    Ok(format!(
        "{{ {root}(query: {}, sortKey: UPDATED_AT) {{ edges {{ node {{ {} }} }} }} }}",
        serde_json::to_string(&search).unwrap_or_default(),
        bulk_selection(&fields)?
    ))
}

/// Bulk operations of one shop, through its GraphQL client (shared cost bucket).
#[derive(Debug, Clone)]
pub struct ShopifyBulk {
    client: ShopifyGraphql,
    http: reqwest::Client,
}

impl ShopifyBulk {
    pub fn new(client: ShopifyGraphql) -> Self {
        ShopifyBulk {
            client,
            http: reqwest::Client::builder()
                .read_timeout(READ_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunAnswer {
    bulk_operation_run_query: Option<RunPayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunPayload {
    bulk_operation: Option<OpHead>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct OpHead {
    id: String,
}

#[derive(Deserialize)]
struct UserError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct PollAnswer {
    node: Option<Operation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    root_object_count: Option<Value>,
    #[serde(default)]
    url: Option<String>,
}

/// `UnsignedInt64` comes as a string; be lenient and take a number too.
fn count(v: &Option<Value>) -> u64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

#[async_trait]
impl BulkExport for ShopifyBulk {
    async fn start(&self, model: Model, window: &Window) -> Result<String, ConnectorError> {
        let query = bulk_query(model, window)?;
        let a: RunAnswer = self
            .client
            .execute(RUN_MUTATION, json!({ "query": query }))
            .await?;
        let p = a.bulk_operation_run_query.ok_or_else(|| {
            ConnectorError::Malformed("no bulkOperationRunQuery in the answer".into())
        })?;
        if let Some(e) = p.user_errors.first() {
            return match e.code.as_deref() {
                Some("OPERATION_IN_PROGRESS" | "LIMIT_REACHED") => {
                    Err(ConnectorError::RateLimited { retry_after: None })
                }
                _ => Err(ConnectorError::Rejected {
                    status: 200,
                    message: format!(
                        "bulkOperationRunQuery: {} ({})",
                        e.message,
                        e.code.as_deref().unwrap_or("no code")
                    ),
                }),
            };
        }
        p.bulk_operation.map(|o| o.id).ok_or_else(|| {
            ConnectorError::Malformed("bulkOperationRunQuery returned no operation".into())
        })
    }

    async fn poll(&self, id: &str) -> Result<BulkState, ConnectorError> {
        let a: PollAnswer = self.client.execute(POLL_QUERY, json!({ "id": id })).await?;
        let Some(op) = a.node else {
            return Ok(BulkState::Failed {
                reason: format!("operation {id} not found"),
            });
        };
        let objects = count(&op.root_object_count);
        Ok(match op.status.as_deref() {
            Some("CREATED" | "RUNNING" | "CANCELING") => BulkState::Running { objects },
            Some("COMPLETED") => BulkState::Completed {
                url: op.url,
                objects,
            },
            Some(s @ ("FAILED" | "CANCELED" | "EXPIRED")) => BulkState::Failed {
                reason: match op.error_code {
                    Some(code) => format!("{s} ({code})"),
                    None => s.to_string(),
                },
            },
            other => {
                return Err(ConnectorError::Malformed(format!(
                    "bulk operation {id}: unknown status {other:?}"
                )))
            }
        })
    }

    async fn open(&self, model: Model, url: &str) -> Result<Box<dyn BulkReader>, ConnectorError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ConnectorError::Unavailable(format!("bulk result: {e}")))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => {}
            500..=599 | 429 => {
                return Err(ConnectorError::Unavailable(format!(
                    "bulk result: HTTP {status}"
                )))
            }
            _ => {
                return Err(ConnectorError::Rejected {
                    status,
                    message: "bulk result unavailable (expired?)".into(),
                })
            }
        }
        let (_, gid, topic, children) = model_spec(model);
        Ok(Box::new(JsonlReader {
            model,
            gid,
            topic,
            resp: Some(resp),
            buf: Vec::new(),
            ready: std::collections::VecDeque::new(),
            asm: Reassembler::new(&children),
        }))
    }
}

/// The longest line a bulk result may hold: each line is one object, its connections
/// on lines of their own (a few KB for an order).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Streams a JSONL result: bytes → lines → rebuilt nodes → records.
struct JsonlReader {
    model: Model,
    gid: &'static str,
    topic: &'static str,
    /// `None` once the body ended.
    resp: Option<reqwest::Response>,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<Map<String, Value>>,
    asm: Reassembler,
}

impl JsonlReader {
    fn record(&self, node: Map<String, Value>) -> Result<RemoteRecord, ConnectorError> {
        let gid = node.get("id").and_then(Value::as_str).unwrap_or_default();
        let remote_id = gid_id(gid, self.gid).ok_or_else(|| {
            ConnectorError::Malformed(format!(
                "bulk node id {gid:?} is not a gid://shopify/{}/<n>",
                self.gid
            ))
        })?;
        let updated = node
            .get("updatedAt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let updated_at = DateTime::parse_from_rfc3339(updated)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                ConnectorError::Malformed(format!("bulk node {gid}: updatedAt {updated:?}: {e}"))
            })?;
        let payload = serde_json::to_vec(&node)
            .map_err(|e| ConnectorError::Malformed(format!("bulk node {gid}: {e}")))?;
        Ok(RemoteRecord {
            model: self.model,
            remote_id: remote_id.to_string(),
            updated_at,
            topic: self.topic.to_string(),
            payload,
        })
    }

    /// Reads until at least one node is complete or the body ends.
    async fn fill(&mut self) -> Result<(), ConnectorError> {
        while self.ready.is_empty() {
            let Some(resp) = self.resp.as_mut() else {
                return Ok(());
            };
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| ConnectorError::Unavailable(format!("bulk result: {e}")))?;
            match chunk {
                Some(bytes) => {
                    // `buf` holds no newline before the chunk: only the chunk is searched
                    let before = self.buf.len();
                    self.buf.extend_from_slice(&bytes);
                    let mut start = 0;
                    let mut from = before;
                    while let Some(k) = self.buf[from..].iter().position(|&c| c == b'\n') {
                        let line = &self.buf[start..from + k];
                        if let Some(done) = self.asm.push(line)? {
                            self.ready.push_back(done);
                        }
                        start = from + k + 1;
                        from = start;
                    }
                    self.buf.drain(..start);
                    if self.buf.len() > MAX_LINE_BYTES {
                        return Err(ConnectorError::Malformed(format!(
                            "bulk result: a line longer than {MAX_LINE_BYTES} bytes (each line is one object)"
                        )));
                    }
                }
                None => {
                    self.resp = None;
                    let rest = std::mem::take(&mut self.buf);
                    if let Some(done) = self.asm.push(&rest)? {
                        self.ready.push_back(done);
                    }
                    if let Some(last) = self.asm.finish() {
                        self.ready.push_back(last);
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BulkReader for JsonlReader {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<RemoteRecord>, ConnectorError> {
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            self.fill().await?;
            let Some(node) = self.ready.pop_front() else {
                break;
            };
            out.push(self.record(node)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_past_its_limit_is_an_error() {
        // a result URL is the 3PA's to give (and a connection's base_url the caller's)
        let mut body = b"{\"id\":\"gid://shopify/Order/1\"}\n".to_vec();
        body.extend(std::iter::repeat_n(b' ', MAX_LINE_BYTES + 1));
        let (_, gid, topic, children) = model_spec(Model::Order);
        let mut reader = JsonlReader {
            model: Model::Order,
            gid,
            topic,
            resp: Some(reqwest::Response::from(axum::http::Response::new(body))),
            buf: Vec::new(),
            ready: std::collections::VecDeque::new(),
            asm: Reassembler::new(&children),
        };
        let err = reader.next_batch(10).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unreadable 3PA response: bulk result: a line longer than {MAX_LINE_BYTES} bytes (each line is one object)")
        );
    }

    #[test]
    fn paged_connections_become_bulk_edges_with_typenames() {
        let s = bulk_selection(
            "id lineItems(first: 10) { pageInfo { hasNextPage endCursor } nodes { id sku } } \
             discountApplications(first: 5) { nodes { __typename index } } \
             refunds { transactions(first: 5) { nodes { kind } } } title",
        )
        .unwrap();
        assert_eq!(
            s,
            "id lineItems { edges { node { __typename id sku } } } \
             discountApplications { edges { node { __typename index } } } \
             refunds { id transactions { edges { node { __typename kind } } } } title"
        );
        assert!(bulk_selection("x(first: 3) { nodes { a }").is_err());
    }

    #[test]
    fn bulk_queries_parse_and_keep_every_paged_field() {
        let w = Window {
            from: "2024-01-01T00:00:00Z".parse().unwrap(),
            to: "2024-02-01T00:00:00Z".parse().unwrap(),
        };
        for m in Model::ALL {
            let q = bulk_query(m, &w).unwrap();
            assert!(!q.contains("first:") && !q.contains("pageInfo"), "{q}");
            assert!(
                q.contains(r#"query: "updated_at:>='2024-01-01T00:00:00Z' AND updated_at:<='2024-02-01T00:00:00Z'""#),
                "{q}"
            );
            assert_eq!(q.matches('{').count(), q.matches('}').count(), "{q}");
        }
        let q = bulk_query(Model::Order, &w).unwrap();
        // at most five connections (Shopify's bulk limit): orders, lineItems,
        // discountApplications, shippingLines, transactions
        assert_eq!(q.matches("edges").count(), 5, "{q}");
    }
}
