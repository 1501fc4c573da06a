//! The simulator's bulk operations: `bulkOperationRunQuery`, `node(id:)` /
//! `currentBulkOperation` on a `BulkOperation`, and the JSONL result at
//! `GET /bulk/<n>.jsonl` (no access token, like Shopify's signed storage URL).
//!
//! As Shopify documents (shopify.dev/docs/api/usage/bulk-operations/queries): one bulk
//! query at a time per shop before API 2026-01 (a second answers the user error
//! `OPERATION_IN_PROGRESS`); the query's one root connection lists every match (no
//! `first`), nested connections are written `edges { node }`; the result has one line
//! per node, each nested connection's nodes on their own lines with `__parentId` (the id of
//! the object holding the connection), directly after their parent (`groupObjects:
//! true`). The snapshot is taken when the job is created; it reports `RUNNING` for
//! [`BulkOps::polls_to_complete`] polls, then `COMPLETED` (or `FAILED` with
//! `INTERNAL_SERVER_ERROR` when a failure was injected).

use super::graphql::{args, list, Ctx, GqlError, Projector};
use super::Resource;
use graphql_parser::query::{Definition, OperationDefinition, Selection, SelectionSet};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One job.
#[derive(Debug)]
struct Op {
    id: u64,
    query: String,
    /// The JSONL lines of the result.
    lines: Arc<Vec<String>>,
    roots: u64,
    polls: u32,
    fail: bool,
    done: bool,
}

/// The shop's bulk jobs and faults.
#[derive(Debug)]
pub(crate) struct BulkOps {
    ops: Vec<Op>,
    /// Polls a job reports `RUNNING` before it completes.
    pub polls_to_complete: u32,
    /// Jobs still to fail (`FAILED`, `INTERNAL_SERVER_ERROR`).
    pub fail_next: u32,
    /// Result downloads answer 403 (an expired signed URL).
    pub expired: bool,
    pub started: u64,
    pub downloads: u64,
    pub refused_in_progress: u64,
}

impl Default for BulkOps {
    fn default() -> Self {
        BulkOps {
            ops: Vec::new(),
            polls_to_complete: 1,
            fail_next: 0,
            expired: false,
            started: 0,
            downloads: 0,
            refused_in_progress: 0,
        }
    }
}

fn gid(id: u64) -> String {
    format!("gid://shopify/BulkOperation/{id}")
}

impl BulkOps {
    /// The result of job `id`: `Err(403)` expired, `Err(404)` unknown or not complete.
    pub(crate) fn download(&mut self, id: u64) -> Result<Arc<Vec<String>>, u16> {
        if self.expired {
            return Err(403);
        }
        let op = self
            .ops
            .iter()
            .find(|o| o.id == id && o.done && !o.fail)
            .ok_or(404u16)?;
        self.downloads += 1;
        Ok(op.lines.clone())
    }
}

fn status(op: &Op) -> &'static str {
    match (op.done, op.fail) {
        (false, _) if op.polls == 0 => "CREATED",
        (false, _) => "RUNNING",
        (true, true) => "FAILED",
        (true, false) => "COMPLETED",
    }
}

fn value(op: &Op, base_url: &str) -> Value {
    let st = status(op);
    let url =
        (st == "COMPLETED" && op.roots > 0).then(|| format!("{base_url}/bulk/{}.jsonl", op.id));
    let size: usize = op.lines.iter().map(|l| l.len() + 1).sum();
    json!({
        "__typename": "BulkOperation",
        "id": gid(op.id),
        "status": st,
        "type": "QUERY",
        "query": op.query,
        "errorCode": if st == "FAILED" { json!("INTERNAL_SERVER_ERROR") } else { Value::Null },
        "objectCount": if op.done { op.lines.len().to_string() } else { "0".to_string() },
        "rootObjectCount": if op.done { op.roots.to_string() } else { "0".to_string() },
        "fileSize": if st == "COMPLETED" { json!(size.to_string()) } else { Value::Null },
        "url": url,
        "partialDataUrl": Value::Null,
        "createdAt": "2024-01-01T00:00:00Z",
        "completedAt": Value::Null,
    })
}

fn user_error(code: &str, message: String) -> Value {
    json!({"bulkOperation": null, "userErrors": [
        {"__typename": "BulkOperationUserError", "field": ["query"], "message": message, "code": code}
    ]})
}

/// `bulkOperationRunQuery(query:, groupObjects:)`.
pub(crate) fn run_query(c: &mut Ctx<'_>, a: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    if let Some(op) = c.g.bulk.ops.iter().find(|o| !o.done) {
        c.g.bulk.refused_in_progress += 1;
        return Ok(user_error(
            "OPERATION_IN_PROGRESS",
            format!(
                "A bulk query operation for this app and shop is already in progress: {}.",
                gid(op.id)
            ),
        ));
    }
    let text = a
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (lines, roots) = match run(c, &text) {
        Ok(x) => x,
        Err(message) => return Ok(user_error("INVALID", message)),
    };
    let b = &mut c.g.bulk;
    let fail = b.fail_next > 0;
    b.fail_next = b.fail_next.saturating_sub(1);
    b.started += 1;
    let op = Op {
        id: 1000 + b.ops.len() as u64,
        query: text,
        lines: Arc::new(lines),
        roots,
        polls: 0,
        fail,
        done: false,
    };
    let v = value(&op, c.base_url);
    b.ops.push(op);
    Ok(json!({"bulkOperation": v, "userErrors": []}))
}

/// `node(id:)`: a bulk operation (each poll moves it towards completion), else `null`.
pub(crate) fn node(c: &mut Ctx<'_>, a: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    let id = a.get("id").and_then(Value::as_str).unwrap_or_default();
    let Some(n) = id
        .strip_prefix("gid://shopify/BulkOperation/")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return Ok(Value::Null);
    };
    let polls_to_complete = c.g.bulk.polls_to_complete;
    let Some(op) = c.g.bulk.ops.iter_mut().find(|o| o.id == n) else {
        return Ok(Value::Null);
    };
    op.polls += 1;
    if op.polls > polls_to_complete {
        op.done = true;
    }
    Ok(value(op, c.base_url))
}

/// `currentBulkOperation`: the latest job, or `null`.
pub(crate) fn current(c: &mut Ctx<'_>, _: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    Ok(c.g
        .bulk
        .ops
        .last()
        .map(|o| value(o, c.base_url))
        .unwrap_or(Value::Null))
}

/// Runs a bulk query document: its JSONL lines and root count, or why it is invalid.
fn run(c: &mut Ctx<'_>, text: &str) -> Result<(Vec<String>, u64), String> {
    let doc = graphql_parser::parse_query::<String>(text)
        .map_err(|e| format!("Invalid bulk query: {e}"))?
        .into_static();
    let set = doc
        .definitions
        .iter()
        .find_map(|d| match d {
            Definition::Operation(OperationDefinition::SelectionSet(s)) => Some(s),
            Definition::Operation(OperationDefinition::Query(q)) => Some(&q.selection_set),
            _ => None,
        })
        .ok_or("Invalid bulk query: no query")?;
    let roots: Vec<_> = set
        .items
        .iter()
        .filter_map(|i| match i {
            Selection::Field(f) => Some(f),
            _ => None,
        })
        .collect();
    let [root] = roots.as_slice() else {
        return Err("Bulk queries must contain exactly one top-level field".into());
    };
    let res = match root.name.as_str() {
        "orders" => Resource::Orders,
        "customers" => Resource::Customers,
        "products" => Resource::Products,
        other => return Err(format!("Bulk query root field '{other}' is not supported")),
    };
    let node_sel = edge_node(&root.selection_set)
        .ok_or("Bulk queries must select edges { node { ... } } on the top-level connection")?;
    let empty = Map::new();
    let fragments = BTreeMap::new();
    let proj = Projector::new(&empty, &fragments);
    let mut a = args(root, &empty);
    a.insert("first".into(), json!(250));
    let mut lines = Vec::new();
    let mut count = 0u64;
    loop {
        let page = list(c, res, &a).map_err(|e| e.message)?;
        let entries = page["__listing"].as_array().cloned().unwrap_or_default();
        for e in &entries {
            let (v, _) = proj.object(node_sel, &e["node"]).map_err(|e| e.message)?;
            let Value::Object(o) = v else { continue };
            flatten(o, None, &mut lines)?;
            count += 1;
        }
        if page["hasNext"] != json!(true) {
            break;
        }
        let Some(cursor) = entries.last().and_then(|e| e["cursor"].as_str()) else {
            break;
        };
        a.insert("after".into(), json!(cursor));
    }
    Ok((lines, count))
}

/// The `node` selection under `edges` of a connection selection.
fn edge_node<'s>(
    s: &'s SelectionSet<'static, String>,
) -> Option<&'s SelectionSet<'static, String>> {
    s.items.iter().find_map(|i| match i {
        Selection::Field(e) if e.name == "edges" => {
            e.selection_set.items.iter().find_map(|n| match n {
                Selection::Field(n) if n.name == "node" => Some(&n.selection_set),
                _ => None,
            })
        }
        _ => None,
    })
}

/// Takes the connections (`{"edges": [...]}`) out of `v`, recursively through its objects
/// and lists, as (parent id, child) pairs in field order.
fn take_connections(
    v: &mut Map<String, Value>,
    out: &mut Vec<(String, Map<String, Value>)>,
) -> Result<(), String> {
    let own = v.get("id").and_then(Value::as_str).map(str::to_string);
    let keys: Vec<String> = v.keys().cloned().collect();
    for k in keys {
        let is_conn = v[&k].get("edges").is_some_and(Value::is_array);
        if is_conn {
            let conn = v.remove(&k).unwrap_or_default();
            let parent = own
                .clone()
                .ok_or_else(|| format!("The parent of connection '{k}' must select its id"))?;
            for e in conn["edges"].as_array().into_iter().flatten() {
                if let Some(Value::Object(n)) = e.get("node") {
                    out.push((parent.clone(), n.clone()));
                }
            }
            continue;
        }
        match v.get_mut(&k) {
            Some(Value::Object(o)) => take_connections(o, out)?,
            Some(Value::Array(items)) => {
                for it in items.iter_mut() {
                    if let Value::Object(o) = it {
                        take_connections(o, out)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `obj` as a line (with `__parentId` when it is a child), then its children.
fn flatten(
    mut obj: Map<String, Value>,
    parent: Option<&str>,
    lines: &mut Vec<String>,
) -> Result<(), String> {
    let mut children = Vec::new();
    take_connections(&mut obj, &mut children)?;
    if let Some(p) = parent {
        obj.insert("__parentId".into(), json!(p));
    }
    lines.push(Value::Object(obj).to_string());
    for (p, child) in children {
        flatten(child, Some(&p), lines)?;
    }
    Ok(())
}
