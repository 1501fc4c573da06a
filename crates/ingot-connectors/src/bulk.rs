//! Bulk exports: a 3PA-side job that lists a whole history window at once and hands back
//! a file, instead of tens of thousands of paged calls (Shopify bulk operations, issue 11).
//!
//! The sync engine drives a [`BulkExport`] during a historical sync: [`BulkExport::start`]
//! (the returned id is checkpointed), [`BulkExport::poll`] until the job ends, then
//! [`BulkExport::open`] streams the result as [`RemoteRecord`]s in batches. Every record
//! of the file is counted; a restart resumes by skipping the records already written
//! ([`BulkReader::skip`]). A job that failed, expired or was cancelled is started again a
//! bounded number of times, then the engine falls back to the paged listing of
//! [`crate::Connector::list`].
//!
//! [`Reassembler`] rebuilds nested objects from a JSONL file whose child lines carry the
//! id of their parent in `__parentId` and follow it (Shopify's layout with
//! `groupObjects: true`, shopify.dev/docs/api/usage/bulk-operations/queries, "The JSONL
//! output … places child objects directly below their corresponding parent objects",
//! shopify.dev/changelog optional-groupobjects-argument-in-bulk-operations-mutations).

use crate::{ConnectorError, RemoteRecord, Window};
use async_trait::async_trait;
use ingot_model::Model;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a bulk job is, as the 3PA reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BulkState {
    /// Created or running; `objects` is the 3PA's running count (roots and children).
    Running { objects: u64 },
    /// Finished: the result is at `url` (`None`: the job matched nothing).
    Completed { url: Option<String>, objects: u64 },
    /// Failed, expired or cancelled: `reason` says which (the 3PA's error code).
    Failed { reason: String },
}

/// A 3PA's bulk export of one model.
#[async_trait]
pub trait BulkExport: Send + Sync {
    /// Starts a job listing every `model` record modified inside `window`; returns its id.
    /// A shop already running as many jobs as it may answers
    /// [`ConnectorError::RateLimited`]: wait and start again.
    async fn start(&self, model: Model, window: &Window) -> Result<String, ConnectorError>;
    /// The job's state.
    async fn poll(&self, id: &str) -> Result<BulkState, ConnectorError>;
    /// Opens a finished job's result.
    async fn open(&self, model: Model, url: &str) -> Result<Box<dyn BulkReader>, ConnectorError>;
}

/// A bulk result read front to back.
#[async_trait]
pub trait BulkReader: Send {
    /// Up to `max` next records; an empty batch is the end.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<RemoteRecord>, ConnectorError>;
    /// Skips `n` records (a restart resumes after the ones already written).
    async fn skip(&mut self, n: u64) -> Result<(), ConnectorError> {
        let mut left = n;
        while left > 0 {
            let got = self.next_batch(left.min(1000) as usize).await?.len() as u64;
            if got == 0 {
                return Err(ConnectorError::Malformed(format!(
                    "the bulk result ended {left} records before its checkpoint"
                )));
            }
            left -= got;
        }
        Ok(())
    }
}

/// Rebuilds root objects from JSONL lines where each child line names its parent in
/// `__parentId` and follows it (grouped). A child is attached to the object whose `id`
/// is its `__parentId` (the root or an object inside it, such as an order's refund), under
/// the connection field [`Reassembler::new`] maps its `__typename` to (or, without one,
/// the type of its `gid://shopify/<Type>/<n>` id), as `{"nodes": [...]}` in file order,
/// without `__parentId` (and without `__typename` unless the field keeps it).
///
/// Errors: a line that is not a JSON object, a child before any root, a child whose
/// parent is not in the current root (an ungrouped file) or whose type maps to no
/// field: all [`ConnectorError::Malformed`].
#[derive(Debug)]
pub struct Reassembler {
    children: Vec<ChildField>,
    current: Option<Map<String, Value>>,
    line: u64,
}

/// Where children of one type go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildField {
    /// The child's `__typename` (or gid type): `LineItem`.
    pub typename: &'static str,
    /// The parent's connection field: `lineItems`.
    pub field: &'static str,
    /// Keep `__typename` in the attached node (the selection asked for it).
    pub keep_typename: bool,
}

/// The object with `"id": id` inside `v` (itself included), depth first.
fn find_by_id<'v>(v: &'v mut Value, id: &str) -> Option<&'v mut Map<String, Value>> {
    match v {
        Value::Object(o) => {
            if o.get("id").and_then(Value::as_str) == Some(id) {
                return Some(o);
            }
            o.values_mut().find_map(|x| find_by_id(x, id))
        }
        Value::Array(a) => a.iter_mut().find_map(|x| find_by_id(x, id)),
        _ => None,
    }
}

impl Reassembler {
    pub fn new(children: &[ChildField]) -> Self {
        Reassembler {
            children: children.to_vec(),
            current: None,
            line: 0,
        }
    }

    fn child_of(&self, obj: &Map<String, Value>) -> Option<&ChildField> {
        let ty = obj.get("__typename").and_then(Value::as_str).or_else(|| {
            let id = obj.get("id")?.as_str()?;
            id.strip_prefix("gid://")?.split('/').nth(1)
        })?;
        self.children.iter().find(|c| c.typename == ty)
    }

    /// Takes one line; returns the previous root when `line` starts a new one.
    pub fn push(&mut self, line: &[u8]) -> Result<Option<Map<String, Value>>, ConnectorError> {
        self.line += 1;
        let n = self.line;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let mut obj: Map<String, Value> = serde_json::from_slice(trimmed)
            .map_err(|e| ConnectorError::Malformed(format!("bulk line {n}: {e}")))?;
        let Some(parent) = obj.remove("__parentId") else {
            return Ok(self.current.replace(obj));
        };
        let parent = parent.as_str().unwrap_or_default().to_string();
        let child = self.child_of(&obj).cloned().ok_or_else(|| {
            ConnectorError::Malformed(format!(
                "bulk line {n}: a child ({:?}) of no known connection",
                obj.get("__typename").or_else(|| obj.get("id"))
            ))
        })?;
        if !child.keep_typename {
            obj.remove("__typename");
        }
        let Some(root) = self.current.as_mut() else {
            return Err(ConnectorError::Malformed(format!(
                "bulk line {n}: a child before any parent"
            )));
        };
        let mut tree = Value::Object(std::mem::take(root));
        let attached = match find_by_id(&mut tree, &parent) {
            None => Err(ConnectorError::Malformed(format!(
                "bulk line {n}: child of {parent:?} does not follow its parent (ungrouped file)"
            ))),
            Some(p) => {
                let slot = p
                    .entry(child.field)
                    .or_insert_with(|| serde_json::json!({"nodes": []}));
                match slot.get_mut("nodes").and_then(Value::as_array_mut) {
                    Some(nodes) => {
                        nodes.push(Value::Object(obj));
                        Ok(())
                    }
                    None => Err(ConnectorError::Malformed(format!(
                        "bulk line {n}: the parent's {:?} is not a connection",
                        child.field
                    ))),
                }
            }
        };
        if let Value::Object(t) = tree {
            *root = t;
        }
        attached.map(|()| None)
    }

    /// The last root, at the end of the file.
    pub fn finish(&mut self) -> Option<Map<String, Value>> {
        self.current.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(lines: &[&str]) -> Result<Vec<Value>, ConnectorError> {
        let f = |typename, field, keep_typename| ChildField {
            typename,
            field,
            keep_typename,
        };
        let mut r = Reassembler::new(&[
            f("ProductVariant", "variants", false),
            f("LineItem", "lineItems", false),
            f("OrderTransaction", "transactions", false),
            f("DiscountCodeApplication", "discountApplications", true),
        ]);
        let mut out = Vec::new();
        for l in lines {
            if let Some(o) = r.push(l.as_bytes())? {
                out.push(Value::Object(o));
            }
        }
        out.extend(r.finish().map(Value::Object));
        Ok(out)
    }

    #[test]
    fn children_go_under_their_parent_in_file_order() {
        // the layout of shopify.dev/docs/api/usage/bulk-operations/queries
        let out = run(&[
            r#"{"id":"gid://shopify/Product/1921569226808","title":"a"}"#,
            r#"{"id":"gid://shopify/ProductVariant/19435458986123","title":"52","__parentId":"gid://shopify/Product/1921569226808"}"#,
            r#"{"id":"gid://shopify/ProductVariant/19435458986040","title":"70","__parentId":"gid://shopify/Product/1921569226808"}"#,
            "",
            r#"{"id":"gid://shopify/Product/1921569259576","title":"b"}"#,
        ])
        .unwrap();
        assert_eq!(
            out,
            [
                json!({"id":"gid://shopify/Product/1921569226808","title":"a","variants":{"nodes":[
                    {"id":"gid://shopify/ProductVariant/19435458986123","title":"52"},
                    {"id":"gid://shopify/ProductVariant/19435458986040","title":"70"}]}}),
                json!({"id":"gid://shopify/Product/1921569259576","title":"b"}),
            ]
        );
    }

    #[test]
    fn children_of_nested_objects_and_typenames() {
        let out = run(&[
            r#"{"id":"gid://shopify/Order/1","refunds":[{"id":"gid://shopify/Refund/5"}]}"#,
            r#"{"__typename":"LineItem","id":"gid://shopify/LineItem/2","__parentId":"gid://shopify/Order/1"}"#,
            r#"{"__typename":"OrderTransaction","kind":"REFUND","__parentId":"gid://shopify/Refund/5"}"#,
            r#"{"__typename":"DiscountCodeApplication","code":"X","__parentId":"gid://shopify/Order/1"}"#,
        ])
        .unwrap();
        assert_eq!(
            out,
            [json!({"id":"gid://shopify/Order/1",
                "refunds":[{"id":"gid://shopify/Refund/5","transactions":{"nodes":[{"kind":"REFUND"}]}}],
                "lineItems":{"nodes":[{"id":"gid://shopify/LineItem/2"}]},
                "discountApplications":{"nodes":[{"__typename":"DiscountCodeApplication","code":"X"}]}})]
        );
    }

    #[test]
    fn an_ungrouped_or_broken_file_is_an_error_not_a_wrong_record() {
        let e = run(&[
            r#"{"id":"gid://shopify/Order/1"}"#,
            r#"{"id":"gid://shopify/Order/2"}"#,
            r#"{"id":"gid://shopify/LineItem/9","__parentId":"gid://shopify/Order/1"}"#,
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("line 3") && e.to_string().contains("ungrouped"),
            "{e}"
        );
        let e = run(&[r#"{"id":"gid://shopify/LineItem/9","__parentId":"gid://shopify/Order/1"}"#])
            .unwrap_err();
        assert!(e.to_string().contains("before any parent"), "{e}");
        let e = run(&[
            r#"{"id":"gid://shopify/Order/1"}"#,
            r#"{"id":"gid://shopify/Refund/9","__parentId":"gid://shopify/Order/1"}"#,
        ])
        .unwrap_err();
        assert!(e.to_string().contains("no known connection"), "{e}");
        let e = run(&[r#"{"id":"#]).unwrap_err();
        assert!(matches!(e, ConnectorError::Malformed(_)), "{e}");
    }
}
