//! The simulator's GraphQL Admin API: `POST /admin/api/{version}/graphql.json`.
//!
//! A request `{"query", "variables", "operationName"?}` is parsed (`graphql-parser`), and
//! each root field of the operation is answered by the resolver registered for its name
//! in [`ROOT_FIELDS`] (the dispatcher: to serve a new operation — `bulkOperationRunQuery`,
//! `webhookSubscriptionCreate`, … — add one `(name, resolver)` line). A resolver returns
//! the *full* GraphQL value of its field (every field the simulator knows, connections as
//! JSON arrays); [`project`] then keeps exactly the selected fields (aliases, inline
//! fragments on `__typename`, named fragments), pages nested connections by their
//! `first`/`after` arguments, and counts the actual cost. A selected field that the value
//! does not have is an `undefinedField` error, as Shopify's schema validation would give.
//!
//! Cost (shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): requested cost is
//! computed before execution from the selection (scalar and enum 0, object 1 + its
//! selection, connection 2 + `first` × its node's selection, a list of objects as one
//! object), the actual cost from what was returned (a connection 2 + the cost of the
//! nodes returned). A query over 1000 requested points is refused (`MAX_COST_EXCEEDED`);
//! a query whose requested cost exceeds what the bucket holds answers HTTP 200
//! `{"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
//! "extensions": {"cost": {…, "actualQueryCost": null}}}`; otherwise the requested cost is
//! taken, the difference to the actual refunded, and every answer carries
//! `extensions.cost` with the bucket after the request.
//!
//! Listing roots (`orders`, `customers`, `products`, `events`): `first` (1..=250), `after`,
//! `query` (search syntax: terms joined by `AND`, `field:value`, `field:>=value`,
//! `>`, `<=`, `<`, quoted values; fields `updated_at`, `created_at`, `id`, and for events
//! `subject_type`, `action`; unknown fields are ignored), `sortKey` (`UPDATED_AT`,
//! `CREATED_AT`, `ID`; default `ID`), `reverse`. Pages are keyset pages on (sort value,
//! id); [`super::ShopifySim::shuffle_ties`] permutes ties per request (a cursor inside a
//! tie then skips and repeats records), [`super::ShopifySim::never_advance`] ignores
//! `after` and the lower bounds. Single-node roots: `order(id:)`, `customer(id:)`,
//! `product(id:)` (`null` when absent).

use super::shape::to_graphql;
use super::{Endpoint, Inner, Resource, Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use graphql_parser::query::{
    Definition, Document, Field, OperationDefinition, Selection, SelectionSet, TypeCondition,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// Shopify's single-query limit (points).
pub const MAX_SINGLE_QUERY_COST: f64 = 1000.0;

type Doc<'a> = Document<'a, String>;
type Gql = graphql_parser::query::Value<'static, String>;

/// A GraphQL error of the answer: message and `extensions.code`.
#[derive(Debug, Clone)]
pub struct GqlError {
    pub message: String,
    pub code: &'static str,
}

impl GqlError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        GqlError {
            message: message.into(),
            code,
        }
    }
}

/// What a resolver sees: the shop data and faults (under the simulator's lock), the
/// request's variables, the field with its arguments resolved.
pub(crate) struct Ctx<'a> {
    pub g: &'a mut Inner,
    /// `http://127.0.0.1:<port>` and the request's API version: for resolvers that hand
    /// out URLs (a bulk operation's result file).
    pub base_url: &'a str,
    pub version: &'a str,
    pub vars: &'a Map<String, Value>,
}

/// A root field resolver: the full value of the field (see the module docs).
pub(crate) type Resolver = fn(&mut Ctx<'_>, &BTreeMap<String, Value>) -> Result<Value, GqlError>;

/// The dispatcher: root field name → resolver.
pub(crate) const ROOT_FIELDS: &[(&str, Resolver)] = &[
    ("orders", |c, a| list(c, Resource::Orders, a)),
    ("customers", |c, a| list(c, Resource::Customers, a)),
    ("products", |c, a| list(c, Resource::Products, a)),
    ("order", |c, a| one(c, Resource::Orders, a)),
    ("customer", |c, a| one(c, Resource::Customers, a)),
    ("product", |c, a| one(c, Resource::Products, a)),
    ("events", events),
    ("webhookSubscriptions", super::subscriptions::list),
    ("webhookSubscriptionCreate", super::subscriptions::create),
    ("webhookSubscriptionDelete", super::subscriptions::delete),
    ("bulkOperationRunQuery", super::bulk::run_query),
    ("node", super::bulk::node),
    ("currentBulkOperation", super::bulk::current),
];

fn resolver(name: &str) -> Option<Resolver> {
    ROOT_FIELDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
}

/// Bucket and counters of the GraphQL endpoint.
#[derive(Debug)]
pub(super) struct GqlBucket {
    pub maximum: f64,
    pub restore_rate: f64,
    pub available: f64,
    pub at: Instant,
}

impl GqlBucket {
    pub(super) fn new(maximum: f64, restore_rate: f64) -> Self {
        GqlBucket {
            maximum,
            restore_rate,
            available: maximum,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.at).as_secs_f64();
        self.available = (self.available + dt * self.restore_rate).min(self.maximum);
        self.at = now;
    }

    fn status(&self) -> Value {
        json!({
            "maximumAvailable": self.maximum,
            "currentlyAvailable": (self.available * 10.0).floor() / 10.0,
            "restoreRate": self.restore_rate,
        })
    }
}

fn to_json(v: &Gql, vars: &Map<String, Value>) -> Value {
    use graphql_parser::query::Value as V;
    match v {
        V::Variable(n) => vars.get(n).cloned().unwrap_or(Value::Null),
        V::Int(n) => json!(n.as_i64()),
        V::Float(f) => json!(f),
        V::String(s) => json!(s),
        V::Boolean(b) => json!(b),
        V::Null => Value::Null,
        V::Enum(e) => json!(e),
        V::List(l) => Value::Array(l.iter().map(|x| to_json(x, vars)).collect()),
        V::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), to_json(x, vars)))
                .collect(),
        ),
    }
}

pub(super) fn args(
    f: &Field<'static, String>,
    vars: &Map<String, Value>,
) -> BTreeMap<String, Value> {
    f.arguments
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v, vars)))
        .collect()
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn errors_body(errors: &[GqlError], cost: Option<Value>) -> Value {
    let errs: Vec<Value> = errors
        .iter()
        .map(|e| json!({"message": e.message, "extensions": {"code": e.code}}))
        .collect();
    let mut body = json!({ "errors": errs });
    if let Some(c) = cost {
        body["extensions"] = json!({ "cost": c });
    }
    body
}

/// Answers one GraphQL request (auth and transport faults are handled by the caller).
pub(super) fn respond(shared: &Shared, g: &mut Inner, version: &str, body: &[u8]) -> Response {
    g.stats.graphql_requests += 1;
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            g.stats.bad_requests += 1;
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json; charset=utf-8")],
                r#"{"errors":{"query":"Required parameter missing or invalid"}}"#,
            )
                .into_response();
        }
    };
    let Some(text) = req.get("query").and_then(Value::as_str) else {
        g.stats.bad_requests += 1;
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json; charset=utf-8")],
            r#"{"errors":{"query":"Required parameter missing or invalid"}}"#,
        )
            .into_response();
    };
    let vars = req
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let doc: Doc<'static> = match graphql_parser::parse_query::<String>(text) {
        Ok(d) => d.into_static(),
        Err(e) => {
            return json_response(errors_body(
                &[GqlError::new("parseError", format!("syntax error: {e}"))],
                None,
            ))
        }
    };
    let operation_name = req.get("operationName").and_then(Value::as_str);
    let ops: Vec<&OperationDefinition<'static, String>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(o) => Some(o),
            _ => None,
        })
        .collect();
    let op = match (ops.as_slice(), operation_name) {
        ([one], _) => *one,
        (many, Some(name)) => match many.iter().find(|o| op_name(o) == Some(name)) {
            Some(o) => *o,
            None => {
                return json_response(errors_body(
                    &[GqlError::new(
                        "undefinedOperation",
                        format!("No operation named \"{name}\""),
                    )],
                    None,
                ))
            }
        },
        _ => {
            return json_response(errors_body(
                &[GqlError::new(
                    "operationNotFound",
                    "An operation name is required when sending multiple operations",
                )],
                None,
            ))
        }
    };
    let selection = match op {
        OperationDefinition::SelectionSet(s) => s,
        OperationDefinition::Query(q) => &q.selection_set,
        OperationDefinition::Mutation(m) => &m.selection_set,
        OperationDefinition::Subscription(s) => &s.selection_set,
    };
    let fragments: BTreeMap<String, &SelectionSet<'static, String>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.clone(), &f.selection_set)),
            _ => None,
        })
        .collect();
    let proj = Projector {
        vars: &vars,
        fragments: &fragments,
    };
    // requested cost, before anything runs
    let requested = proj.requested(selection).max(1.0);
    g.gql_bucket.refill();
    if requested > MAX_SINGLE_QUERY_COST {
        let cost = json!({"requestedQueryCost": requested, "actualQueryCost": null, "throttleStatus": g.gql_bucket.status()});
        return json_response(errors_body(
            &[GqlError::new(
                "MAX_COST_EXCEEDED",
                format!("Query cost is {requested}, which exceeds the single query max cost limit ({MAX_SINGLE_QUERY_COST})."),
            )],
            Some(cost),
        ));
    }
    if requested > g.gql_bucket.available + 1e-9 {
        g.stats.graphql_throttled += 1;
        let cost = json!({"requestedQueryCost": requested, "actualQueryCost": null, "throttleStatus": g.gql_bucket.status()});
        return json_response(errors_body(
            &[GqlError::new("THROTTLED", "Throttled")],
            Some(cost),
        ));
    }
    g.gql_bucket.available -= requested;
    g.stats.graphql_requested_cost += requested;

    let mut data = Map::new();
    let mut errors = Vec::new();
    let mut actual = 0.0;
    for item in &selection.items {
        let Selection::Field(f) = item else { continue };
        let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
        if f.name == "__typename" {
            data.insert(key, json!("QueryRoot"));
            continue;
        }
        let Some(r) = resolver(&f.name) else {
            errors.push(GqlError::new(
                "undefinedField",
                format!("Field '{}' doesn't exist on type 'QueryRoot'", f.name),
            ));
            continue;
        };
        let a = args(f, &vars);
        let mut ctx = Ctx {
            g,
            base_url: &shared.base_url,
            version,
            vars: &vars,
        };
        match r(&mut ctx, &a).and_then(|full| proj.field(f, &full)) {
            Ok((v, c)) => {
                actual += c;
                data.insert(key, v);
            }
            Err(e) => errors.push(e),
        }
    }
    let actual = actual.max(1.0).min(requested);
    g.gql_bucket.available =
        (g.gql_bucket.available + requested - actual).min(g.gql_bucket.maximum);
    g.stats.graphql_cost += actual;
    g.stats.ok += 1;
    let cost = json!({"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": g.gql_bucket.status()});
    if !errors.is_empty() {
        let mut body = errors_body(&errors, Some(cost));
        body["data"] = Value::Null;
        return json_response(body);
    }
    json_response(json!({"data": data, "extensions": {"cost": cost}}))
}

fn op_name<'a>(o: &'a OperationDefinition<'static, String>) -> Option<&'a str> {
    match o {
        OperationDefinition::Query(q) => q.name.as_deref(),
        OperationDefinition::Mutation(m) => m.name.as_deref(),
        OperationDefinition::Subscription(s) => s.name.as_deref(),
        OperationDefinition::SelectionSet(_) => None,
    }
}

/// Applies selections to full values, with costs.
pub struct Projector<'a> {
    vars: &'a Map<String, Value>,
    fragments: &'a BTreeMap<String, &'a SelectionSet<'static, String>>,
}

fn is_connection(s: &SelectionSet<'static, String>) -> bool {
    s.items.iter().any(|i| {
        matches!(i, Selection::Field(f) if matches!(f.name.as_str(), "nodes" | "edges" | "pageInfo"))
    })
}

fn first_arg(a: &BTreeMap<String, Value>) -> Option<u64> {
    a.get("first")
        .or_else(|| a.get("last"))
        .and_then(Value::as_u64)
}

fn nested_cursor(i: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"i\":{i}}}"))
}

fn parse_nested_cursor(c: &str) -> Option<usize> {
    let b = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&b).ok()?;
    v.get("i")?.as_u64().map(|i| i as usize)
}

impl<'a> Projector<'a> {
    /// A projector with these variables and named fragments.
    pub fn new(
        vars: &'a Map<String, Value>,
        fragments: &'a BTreeMap<String, &'a SelectionSet<'static, String>>,
    ) -> Self {
        Projector { vars, fragments }
    }

    /// The fields of a selection set, inline fragments and spreads applied for `value`'s
    /// `__typename` (`None`: every fragment, for the requested cost).
    fn fields<'s>(
        &'s self,
        s: &'s SelectionSet<'static, String>,
        typename: Option<&str>,
        out: &mut Vec<&'s Field<'static, String>>,
    ) {
        for item in &s.items {
            match item {
                Selection::Field(f) => out.push(f),
                Selection::InlineFragment(fr) => {
                    let applies = match (&fr.type_condition, typename) {
                        (Some(TypeCondition::On(t)), Some(tn)) => t == tn,
                        _ => true,
                    };
                    if applies {
                        self.fields(&fr.selection_set, typename, out);
                    }
                }
                Selection::FragmentSpread(sp) => {
                    if let Some(set) = self.fragments.get(&sp.fragment_name) {
                        self.fields(set, typename, out);
                    }
                }
            }
        }
    }

    /// Requested cost of a selection set.
    fn requested(&self, s: &SelectionSet<'static, String>) -> f64 {
        let mut fs = Vec::new();
        self.fields(s, None, &mut fs);
        fs.iter()
            .filter(|f| !f.selection_set.items.is_empty())
            .map(|f| {
                let a = args(f, self.vars);
                let inner = &f.selection_set;
                if is_connection(inner) {
                    let n = first_arg(&a).unwrap_or(1) as f64;
                    let node = inner
                        .items
                        .iter()
                        .filter_map(|i| match i {
                            Selection::Field(x) if x.name == "nodes" => {
                                Some(self.requested(&x.selection_set))
                            }
                            Selection::Field(x) if x.name == "edges" => {
                                x.selection_set.items.iter().find_map(|e| match e {
                                    Selection::Field(n) if n.name == "node" => {
                                        Some(self.requested(&n.selection_set))
                                    }
                                    _ => None,
                                })
                            }
                            _ => None,
                        })
                        .fold(0.0, f64::max);
                    2.0 + n * node
                } else {
                    1.0 + self.requested(inner)
                }
            })
            .sum()
    }

    /// Projects one field of a parent whose full value of that field is `full`.
    pub fn field(
        &self,
        f: &Field<'static, String>,
        full: &Value,
    ) -> Result<(Value, f64), GqlError> {
        let sel = &f.selection_set;
        if sel.items.is_empty() {
            return Ok((full.clone(), 0.0));
        }
        match full {
            Value::Null => Ok((Value::Null, 0.0)),
            Value::Array(items) if is_connection(sel) => {
                let a = args(f, self.vars);
                let first = first_arg(&a).unwrap_or(items.len() as u64) as usize;
                let start = a
                    .get("after")
                    .and_then(Value::as_str)
                    .and_then(parse_nested_cursor)
                    .map(|i| i + 1)
                    .unwrap_or(0)
                    .min(items.len());
                let end = (start + first).min(items.len());
                let page: Vec<(String, &Value)> = (start..end)
                    .map(|i| (nested_cursor(i), &items[i]))
                    .collect();
                let has_next = end < items.len();
                self.connection(sel, &page, has_next, start > 0)
            }
            Value::Object(o) if o.contains_key("__listing") && is_connection(sel) => {
                let entries = o
                    .get("__listing")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let page: Vec<(String, &Value)> = entries
                    .iter()
                    .map(|e| {
                        (
                            e.get("cursor")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            e.get("node").unwrap_or(&Value::Null),
                        )
                    })
                    .collect();
                let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
                self.connection(sel, &page, flag("hasNext"), flag("hasPrevious"))
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut cost: f64 = 0.0;
                for it in items {
                    let (v, c) = self.object(sel, it)?;
                    cost = cost.max(c);
                    out.push(v);
                }
                Ok((Value::Array(out), 1.0 + cost))
            }
            Value::Object(_) => {
                let (v, c) = self.object(sel, full)?;
                Ok((v, 1.0 + c))
            }
            _ => Err(GqlError::new(
                "selectionMismatch",
                format!("Selections can't be made on scalars (field '{}')", f.name),
            )),
        }
    }

    /// A connection's value for a page of `(cursor, full node)`.
    pub fn connection(
        &self,
        sel: &SelectionSet<'static, String>,
        page: &[(String, &Value)],
        has_next: bool,
        has_previous: bool,
    ) -> Result<(Value, f64), GqlError> {
        let mut fs = Vec::new();
        self.fields(sel, Some("Connection"), &mut fs);
        let mut out = Map::new();
        let mut cost = 2.0;
        for f in fs {
            let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
            match f.name.as_str() {
                "nodes" => {
                    let mut nodes = Vec::with_capacity(page.len());
                    for (_, n) in page {
                        let (v, c) = self.object(&f.selection_set, n)?;
                        cost += c;
                        nodes.push(v);
                    }
                    out.insert(key, Value::Array(nodes));
                }
                "edges" => {
                    let mut edges = Vec::with_capacity(page.len());
                    for (i, n) in page {
                        let full = json!({"cursor": i, "node": n});
                        let mut efs = Vec::new();
                        self.fields(&f.selection_set, Some("Edge"), &mut efs);
                        let mut e = Map::new();
                        for ef in efs {
                            let k = ef.alias.clone().unwrap_or_else(|| ef.name.clone());
                            match ef.name.as_str() {
                                "cursor" => {
                                    e.insert(k, full["cursor"].clone());
                                }
                                "node" => {
                                    let (v, c) = self.object(&ef.selection_set, n)?;
                                    cost += c;
                                    e.insert(k, v);
                                }
                                other => {
                                    return Err(GqlError::new(
                                        "undefinedField",
                                        format!("Field '{other}' doesn't exist on type 'Edge'"),
                                    ))
                                }
                            }
                        }
                        edges.push(Value::Object(e));
                    }
                    out.insert(key, Value::Array(edges));
                }
                "pageInfo" => {
                    let info = json!({
                        "hasNextPage": has_next,
                        "hasPreviousPage": has_previous,
                        "endCursor": page.last().map(|(c, _)| c.clone()),
                        "startCursor": page.first().map(|(c, _)| c.clone()),
                        "__typename": "PageInfo",
                    });
                    let (v, _) = self.object(&f.selection_set, &info)?;
                    out.insert(key, v);
                }
                "__typename" => {
                    out.insert(key, json!("Connection"));
                }
                other => {
                    return Err(GqlError::new(
                        "undefinedField",
                        format!("Field '{other}' doesn't exist on type 'Connection'"),
                    ))
                }
            }
        }
        Ok((Value::Object(out), cost))
    }

    /// Projects an object (its selected fields), returning the cost of its children.
    pub fn object(
        &self,
        sel: &SelectionSet<'static, String>,
        full: &Value,
    ) -> Result<(Value, f64), GqlError> {
        let Value::Object(obj) = full else {
            return Ok((Value::Null, 0.0));
        };
        let typename = obj.get("__typename").and_then(Value::as_str);
        let mut fs = Vec::new();
        self.fields(sel, typename, &mut fs);
        let mut out = Map::new();
        let mut cost = 0.0;
        for f in fs {
            let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
            let Some(v) = obj.get(&f.name) else {
                return Err(GqlError::new(
                    "undefinedField",
                    format!(
                        "Field '{}' doesn't exist on type '{}'",
                        f.name,
                        typename.unwrap_or("Object")
                    ),
                ));
            };
            let (pv, c) = self.field(f, v)?;
            cost += c;
            out.insert(key, pv);
        }
        Ok((Value::Object(out), cost))
    }
}

// ---------------------------------------------------------------- search syntax

/// One search term: field, comparator (`=`, `>`, `>=`, `<`, `<=`), value.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub field: String,
    pub op: &'static str,
    pub value: String,
}

/// Parses `updated_at:>='2024-01-01T00:00:00Z' AND id:>5 subject_type:ORDER`.
pub fn parse_search(q: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut rest = q.trim();
    while !rest.is_empty() {
        // one token: up to whitespace outside quotes
        let mut end = rest.len();
        let mut quote: Option<char> = None;
        for (i, ch) in rest.char_indices() {
            match quote {
                Some(qc) if ch == qc => quote = None,
                Some(_) => {}
                None if ch == '\'' || ch == '"' => quote = Some(ch),
                None if ch.is_whitespace() => {
                    end = i;
                    break;
                }
                None => {}
            }
        }
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        if tok.eq_ignore_ascii_case("AND") || tok.is_empty() {
            continue;
        }
        let Some((field, v)) = tok.split_once(':') else {
            continue;
        };
        let (op, v) = [">=", "<=", ">", "<"]
            .into_iter()
            .find_map(|op| v.strip_prefix(op).map(|r| (op, r)))
            .unwrap_or(("=", v));
        let v = v.trim_matches(|c| c == '\'' || c == '"');
        terms.push(Term {
            field: field.to_ascii_lowercase(),
            op,
            value: v.to_string(),
        });
    }
    terms
}

fn cmp_ok<T: PartialOrd>(x: T, op: &str, v: T) -> bool {
    match op {
        ">" => x > v,
        ">=" => x >= v,
        "<" => x < v,
        "<=" => x <= v,
        _ => x == v,
    }
}

fn utc_s(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------- resolvers

#[derive(serde::Serialize, serde::Deserialize)]
struct ListCursor {
    k: (i128, i128),
}

fn encode(c: &ListCursor) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode(s: &str) -> Option<ListCursor> {
    let b = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    serde_json::from_slice(&b).ok()
}

/// The listing arguments shared by connection roots.
struct ListArgs {
    first: usize,
    after: Option<ListCursor>,
    terms: Vec<Term>,
    sort: String,
    reverse: bool,
}

fn list_args(ctx: &mut Ctx<'_>, a: &BTreeMap<String, Value>) -> Result<ListArgs, GqlError> {
    let first = match a.get("first").or_else(|| a.get("last")) {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if (1..=250).contains(&n) => n as usize,
            _ => {
                return Err(GqlError::new(
                    "BAD_REQUEST",
                    "The first argument must be between 1 and 250",
                ))
            }
        },
        _ => {
            return Err(GqlError::new(
                "BAD_REQUEST",
                "you must provide one of first or last",
            ))
        }
    };
    let after = match a.get("after") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(decode(s).ok_or_else(|| {
            GqlError::new("BAD_REQUEST", "Invalid cursor for current pagination sort.")
        })?),
        Some(_) => return Err(GqlError::new("BAD_REQUEST", "after must be a string")),
    };
    let mut terms = a
        .get("query")
        .and_then(Value::as_str)
        .map(parse_search)
        .unwrap_or_default();
    let mut after = after;
    if ctx.g.faults.never_advance {
        after = None;
        terms.retain(|t| !matches!(t.op, ">" | ">="));
    }
    Ok(ListArgs {
        first,
        after,
        terms,
        sort: a
            .get("sortKey")
            .and_then(Value::as_str)
            .unwrap_or("ID")
            .to_string(),
        reverse: a.get("reverse").and_then(Value::as_bool).unwrap_or(false),
    })
}

pub(super) fn list(
    ctx: &mut Ctx<'_>,
    res: Resource,
    a: &BTreeMap<String, Value>,
) -> Result<Value, GqlError> {
    let la = list_args(ctx, a)?;
    let salt = match ctx.g.faults.shuffle_ties.as_mut() {
        Some(n) if la.sort != "ID" => {
            *n += 1;
            Some(*n)
        }
        _ => None,
    };
    let now = ctx.g.data.now();
    let cutoff = (res == Resource::Orders && !ctx.g.read_all_orders)
        .then(|| (now - chrono::Duration::days(60)).timestamp_millis());
    let tz = ctx.g.data.tz;
    let mut items = Vec::new();
    if let Some(t) = ctx.g.data.records.get(&res) {
        'rec: for r in t.values() {
            if cutoff.is_some_and(|c| r.created.timestamp_millis() < c) {
                continue;
            }
            for term in &la.terms {
                let ok = match term.field.as_str() {
                    "updated_at" | "created_at" => {
                        let Some(v) = super::parse_filter_time(&term.value, tz) else {
                            return Err(GqlError::new(
                                "BAD_REQUEST",
                                format!("invalid date in search query: {}", term.value),
                            ));
                        };
                        let x = if term.field == "updated_at" {
                            r.updated
                        } else {
                            r.created
                        };
                        cmp_ok(x.timestamp_millis(), term.op, v)
                    }
                    "id" => match term.value.parse::<u64>() {
                        Ok(v) => cmp_ok(r.id, term.op, v),
                        Err(_) => false,
                    },
                    _ => true,
                };
                if !ok {
                    continue 'rec;
                }
            }
            let p = match la.sort.as_str() {
                "UPDATED_AT" => i128::from(r.updated.timestamp_millis()),
                "CREATED_AT" => i128::from(r.created.timestamp_millis()),
                _ => 0,
            };
            let tie = match salt {
                Some(s) => i128::from(crate::woocommerce::faults::tie_rank(r.id, s)),
                None => i128::from(r.id),
            };
            let key = if la.reverse { (-p, -tie) } else { (p, tie) };
            items.push((key, r));
        }
    }
    items.sort_by_key(|x| x.0);
    let start = match &la.after {
        Some(c) => items.partition_point(|x| x.0 <= c.k),
        None => 0,
    };
    let end = (start + la.first).min(items.len());
    let page: Vec<((i128, i128), Value)> = items[start..end]
        .iter()
        .map(|(k, r)| (*k, to_graphql(res, &r.value)))
        .collect();
    let has_next = end < items.len();
    let has_prev = start > 0;
    drop(items);
    run_hook(ctx, Endpoint::List(res));
    Ok(listing_value(page, has_next, has_prev))
}

fn run_hook(ctx: &mut Ctx<'_>, endpoint: Endpoint) {
    let q = format!(
        "graphql:{}",
        serde_json::to_string(ctx.vars).unwrap_or_default()
    );
    let seen = ctx
        .g
        .queries
        .entry(format!("graphql-{:?}", endpoint))
        .or_default();
    let page = match seen.iter().position(|x| *x == q) {
        Some(i) => i as u32 + 1,
        None => {
            seen.push(q);
            seen.len() as u32
        }
    };
    let g = &mut *ctx.g;
    if let Some(hook) = g.hook.as_mut() {
        hook(&mut g.data, endpoint, page);
    }
}

/// A root connection's full value: already paged, with keyset cursors. The projector
/// recognises it by `__listing`.
fn listing_value(page: Vec<((i128, i128), Value)>, has_next: bool, has_prev: bool) -> Value {
    let page: Vec<Value> = page
        .into_iter()
        .map(|(k, v)| json!({"cursor": encode(&ListCursor { k }), "node": v}))
        .collect();
    json!({"__listing": page, "hasNext": has_next, "hasPrevious": has_prev})
}

fn one(ctx: &mut Ctx<'_>, res: Resource, a: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    let ty = match res {
        Resource::Orders => "Order",
        Resource::Customers => "Customer",
        Resource::Products => "Product",
    };
    let id = a
        .get("id")
        .and_then(Value::as_str)
        .and_then(|g| g.strip_prefix(&format!("gid://shopify/{ty}/")))
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| GqlError::new("BAD_REQUEST", format!("Invalid global id for {ty}")))?;
    Ok(ctx
        .g
        .data
        .records
        .get(&res)
        .and_then(|t| t.get(&id))
        .map(|r| to_graphql(res, &r.value))
        .unwrap_or(Value::Null))
}

fn events(ctx: &mut Ctx<'_>, a: &BTreeMap<String, Value>) -> Result<Value, GqlError> {
    let la = list_args(ctx, a)?;
    let tz = ctx.g.data.tz;
    let mut items = Vec::new();
    'ev: for e in &ctx.g.data.events {
        for term in &la.terms {
            let ok = match term.field.as_str() {
                "created_at" => {
                    let Some(v) = super::parse_filter_time(&term.value, tz) else {
                        return Err(GqlError::new("BAD_REQUEST", "invalid date in search query"));
                    };
                    cmp_ok(e.created.timestamp_millis(), term.op, v)
                }
                "id" => term
                    .value
                    .parse::<u64>()
                    .is_ok_and(|v| cmp_ok(e.id, term.op, v)),
                "subject_type" => e.subject.subject_type().eq_ignore_ascii_case(&term.value),
                "action" => term.value == "destroy",
                _ => true,
            };
            if !ok {
                continue 'ev;
            }
        }
        let p = match la.sort.as_str() {
            "CREATED_AT" => i128::from(e.created.timestamp_millis()),
            _ => 0,
        };
        let key = if la.reverse {
            (-p, -i128::from(e.id))
        } else {
            (p, i128::from(e.id))
        };
        items.push((key, e));
    }
    items.sort_by_key(|x| x.0);
    let start = match &la.after {
        Some(c) => items.partition_point(|x| x.0 <= c.k),
        None => 0,
    };
    let end = (start + la.first).min(items.len());
    let page: Vec<((i128, i128), Value)> = items[start..end]
        .iter()
        .map(|(k, e)| {
            let st = e.subject.subject_type();
            (
                *k,
                json!({
                    "__typename": "BasicEvent",
                    "id": format!("gid://shopify/BasicEvent/{}", e.id),
                    "createdAt": utc_s(e.created),
                    "action": "destroy",
                    "subjectType": st.to_ascii_uppercase(),
                    "subjectId": format!("gid://shopify/{st}/{}", e.subject_id),
                    "message": format!("{st} was deleted."),
                    "appTitle": null,
                    "attributeToApp": false,
                    "attributeToUser": true,
                    "criticalAlert": false,
                }),
            )
        })
        .collect();
    let (has_next, has_prev) = (end < items.len(), start > 0);
    drop(items);
    run_hook(ctx, Endpoint::Events);
    Ok(listing_value(page, has_next, has_prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms() {
        let t = parse_search("updated_at:>='2024-01-01T00:00:00Z' AND updated_at:<=\"2024-02-01T00:00:00Z\" AND id:>5 subject_type:ORDER");
        assert_eq!(t.len(), 4);
        assert_eq!(
            t[0],
            Term {
                field: "updated_at".into(),
                op: ">=",
                value: "2024-01-01T00:00:00Z".into()
            }
        );
        assert_eq!(t[1].op, "<=");
        assert_eq!(
            t[2],
            Term {
                field: "id".into(),
                op: ">",
                value: "5".into()
            }
        );
        assert_eq!(
            t[3],
            Term {
                field: "subject_type".into(),
                op: "=",
                value: "ORDER".into()
            }
        );
    }
}
