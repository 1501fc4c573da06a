//! [`ShopifyGraphqlConnector`]: the [`Connector`] on Shopify's GraphQL Admin API.
//!
//! 3PA facts (shopify.dev/docs/api/admin-graphql/2025-10/queries/orders, …/customers,
//! …/products, …/events; shopify.dev/docs/api/usage/search-syntax;
//! shopify.dev/docs/api/usage/pagination-graphql):
//!
//! - Listing: `orders`, `customers`, `products` take `first` (at most 250), `after` (an
//!   opaque cursor), `query` (search syntax: `updated_at:>='2024-04-01T18:27:15Z' AND
//!   updated_at:<='…'`, `id:>1234`; `AND` joins terms, quoted values hold `:` and `-`),
//!   `sortKey` (`UPDATED_AT`, `ID`, …) and answer a connection `{ pageInfo { hasNextPage
//!   endCursor } nodes { … } }`. The `orders` query lists every status (no REST-like
//!   `status=open` default) but, without the `read_all_orders` scope, only the last 60
//!   days. Ids are `gid://shopify/<Type>/<digits>` strings; times `DateTime` in UTC,
//!   second precision.
//! - Nested connections: a product's `variants`, an order's `lineItems` and
//!   `shippingLines` are connections too, paged with their own `first`/`after`. When a
//!   node's first page of `variants` or `lineItems` has `hasNextPage`, the connector pages
//!   the rest through `product(id:)` / `order(id:)` and splices them into the node.
//! - Deletions: the `events` query (since 2024-10; changelog "Querying events through the
//!   events connection") with `query: "subject_type:ORDER AND action:destroy AND
//!   created_at:>='…' AND created_at:<='…'"`, `sortKey: ID`; each `BasicEvent` has
//!   `subjectId` (the deleted record's gid), `subjectType`, `action`, `createdAt`. Event
//!   data is kept 1 year (events query docs). Why not `deletionEvents`: it is deprecated
//!   and its `DeletionEventSubjectType` has only `COLLECTION` and `PRODUCT` (no orders, no
//!   customers), so it cannot serve the three models.
//! - Cost: see [`super::graphql`]; page sizes here keep each query's requested cost under
//!   the single-query limit (1000 points): a connection costs 2 + `first` × (its node's
//!   cost), an object 1, a scalar or enum 0 (rate-limits page, "Cost calculation").
//!
//! # Payloads
//!
//! Each listed node is passed on byte for byte as returned (the JSON object inside
//! `nodes`), with mapping topic `orders/graphql`, `customers/graphql` or
//! `products/graphql`; `ingot-standardize` maps it to the same record as the REST and
//! webhook shape. A node whose nested connection needed more pages is the one exception:
//! it is re-serialized with every page's nodes in its `nodes` array (and that connection's
//! `pageInfo.hasNextPage` false).
//!
//! # Paging that cannot lose or loop
//!
//! The REST connector's scheme ([`super::rest`]), in GraphQL terms: never page inside
//! a tie of records that share one `updated_at` second.
//!
//! 1. **Main phase** (token `{"v":1,"t":<done>}`): one request
//!    `query: "updated_at:>='<done plus 1 s>' AND updated_at:<='<to>'"`,
//!    `sortKey: UPDATED_AT`, no `after`. Without
//!    `hasNextPage` every node is emitted and the window is complete. Otherwise, with `t`
//!    the latest second on the page, the nodes before `t` are emitted and the second `t`
//!    is listed on its own.
//! 2. **Tie phase** (token `{"v":1,"t":<t>,"tie":true,"id":<last>}`): `query:
//!    "updated_at:>='<t>' AND updated_at:<='<t>' AND id:><last>"`, `sortKey: ID` (unique),
//!    keyset-paged by the id filter. Without `hasNextPage` the main phase resumes past `t`.
//!
//! An answer that would not move the listing (a full page with nothing after `done`, no
//! id after `last`) fails with [`ConnectorError::NoProgress`]; the deletion feed fails so
//! when an `endCursor` comes back unchanged.

use super::graphql::{ShopifyGraphql, MAX_SINGLE_QUERY_COST};
use super::ties::{at, main_page, tie_page, Cursor, Row};
use crate::http::RetryPolicy;
use crate::{
    Connector, ConnectorConfig, ConnectorError, Deletion, Page, PageToken, RemoteRecord, Window,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ingot_model::{Model, Provider};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Default and maximum nodes per page (`first` is at most 250).
pub const MAX_PAGE_SIZE: u32 = 250;

/// Nested connection sizes requested with each node.
pub const VARIANTS_FIRST: u32 = 50;
pub const LINE_ITEMS_FIRST: u32 = 10;
const SHIPPING_LINES_FIRST: u32 = 3;
const DISCOUNTS_FIRST: u32 = 5;
const TRANSACTIONS_FIRST: u32 = 5;

const MONEY: &str = "shopMoney { amount currencyCode }";

fn address_fields() -> &'static str {
    "firstName lastName company address1 address2 city province provinceCode zip country countryCodeV2 phone"
}

/// The selection of an order line (`LineItem`).
pub fn line_item_fields() -> String {
    format!(
        "id name title sku quantity originalUnitPriceSet {{ {MONEY} }} totalDiscountSet {{ {MONEY} }} \
         discountAllocations {{ allocatedAmountSet {{ {MONEY} }} discountApplication {{ index }} }} \
         taxLines {{ title rate priceSet {{ {MONEY} }} }} product {{ id }} variant {{ id }}"
    )
}

/// The selection of a `ProductVariant`.
pub fn variant_fields() -> &'static str {
    "id title sku price compareAtPrice barcode inventoryQuantity position updatedAt selectedOptions { name value }"
}

/// The selection of an `Order` node (what `orders/graphql` carries).
pub fn order_fields() -> String {
    let a = address_fields();
    format!(
        "id name createdAt updatedAt cancelledAt closedAt displayFinancialStatus displayFulfillmentStatus \
         currencyCode email phone note tags customer {{ id }} \
         billingAddress {{ {a} }} shippingAddress {{ {a} }} \
         subtotalPriceSet {{ {MONEY} }} totalDiscountsSet {{ {MONEY} }} totalTaxSet {{ {MONEY} }} \
         totalShippingPriceSet {{ {MONEY} }} totalPriceSet {{ {MONEY} }} \
         taxLines {{ title rate priceSet {{ {MONEY} }} }} \
         discountApplications(first: {DISCOUNTS_FIRST}) {{ nodes {{ __typename index targetType allocationMethod \
           value {{ __typename ... on MoneyV2 {{ amount currencyCode }} ... on PricingPercentageValue {{ percentage }} }} \
           ... on DiscountCodeApplication {{ code }} }} }} \
         shippingLines(first: {SHIPPING_LINES_FIRST}) {{ nodes {{ id title code originalPriceSet {{ {MONEY} }} \
           discountAllocations {{ allocatedAmountSet {{ {MONEY} }} discountApplication {{ index }} }} }} }} \
         refunds {{ transactions(first: {TRANSACTIONS_FIRST}) {{ nodes {{ kind status amountSet {{ {MONEY} }} }} }} }} \
         lineItems(first: {LINE_ITEMS_FIRST}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {} }} }}",
        line_item_fields()
    )
}

/// The selection of a `Customer` node (what `customers/graphql` carries).
pub fn customer_fields() -> String {
    format!(
        "id createdAt updatedAt email firstName lastName phone state note tags numberOfOrders \
         amountSpent {{ amount currencyCode }} emailMarketingConsent {{ marketingState }} \
         defaultAddress {{ {} }}",
        address_fields()
    )
}

/// The selection of a `Product` node (what `products/graphql` carries).
pub fn product_fields() -> String {
    format!(
        "id title descriptionHtml vendor productType handle status tags createdAt updatedAt \
         options {{ name position values }} \
         variants(first: {VARIANTS_FIRST}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {} }} }}",
        variant_fields()
    )
}

/// Estimated requested cost of one node of each model under the rule of the module docs
/// (objects 1, connections 2 + first × node): it sizes `first` so a page stays under the
/// single-query limit.
fn node_cost(model: Model) -> f64 {
    match model {
        // line: 1 + 2 money bags×2 + allocations (1+2+1) + tax lines (1+2) + product + variant ≈ 13
        Model::Order => {
            1.0 + 2.0 * 2.0 // addresses, customer
                + 5.0 * 2.0 // money bags
                + 3.0 // tax lines
                + 2.0 + f64::from(DISCOUNTS_FIRST) * 3.0
                + 2.0 + f64::from(SHIPPING_LINES_FIRST) * 7.0
                + 1.0 + 2.0 + f64::from(TRANSACTIONS_FIRST) * 3.0
                + 2.0 + 1.0 + f64::from(LINE_ITEMS_FIRST) * 13.0
        }
        Model::Customer => 1.0 + 1.0 + 1.0 + 1.0,
        Model::Product => 1.0 + 1.0 + 2.0 + 1.0 + f64::from(VARIANTS_FIRST) * 2.0,
    }
}

/// What each model lists through.
struct Spec {
    /// Root field of the listing query (`orders`).
    root: &'static str,
    /// Root field of the single-node query (`order`).
    one: &'static str,
    /// Sort key enum type (`OrderSortKeys`).
    sort_type: &'static str,
    /// Mapping topics.
    topic: &'static str,
    delete_topic: &'static str,
    /// The gid type (`Order`) and the `EventSubjectType` (`ORDER`).
    gid: &'static str,
    subject: &'static str,
    fields: String,
    /// The nested connection paged past its first page, with its node selection.
    nested: Option<(&'static str, String, u32)>,
}

fn spec(model: Model) -> Spec {
    match model {
        Model::Order => Spec {
            root: "orders",
            one: "order",
            sort_type: "OrderSortKeys",
            topic: "orders/graphql",
            delete_topic: "orders/delete",
            gid: "Order",
            subject: "ORDER",
            fields: order_fields(),
            nested: Some(("lineItems", line_item_fields(), LINE_ITEMS_FIRST)),
        },
        Model::Customer => Spec {
            root: "customers",
            one: "customer",
            sort_type: "CustomerSortKeys",
            topic: "customers/graphql",
            delete_topic: "customers/delete",
            gid: "Customer",
            subject: "CUSTOMER",
            fields: customer_fields(),
            nested: None,
        },
        Model::Product => Spec {
            root: "products",
            one: "product",
            sort_type: "ProductSortKeys",
            topic: "products/graphql",
            delete_topic: "products/delete",
            gid: "Product",
            subject: "PRODUCT",
            fields: product_fields(),
            nested: Some(("variants", variant_fields().to_string(), VARIANTS_FIRST)),
        },
    }
}

/// The listing query of a model.
pub fn list_query(model: Model) -> String {
    let s = spec(model);
    format!(
        "query IngotList($first: Int!, $query: String!, $sortKey: {}!) {{ {}(first: $first, query: $query, sortKey: $sortKey) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {} }} }} }}",
        s.sort_type, s.root, s.fields
    )
}

/// The query paging one node's nested connection.
fn nested_query(s: &Spec) -> Option<String> {
    let (field, sel, first) = s.nested.as_ref()?;
    Some(format!(
        "query IngotNested($id: ID!, $after: String) {{ node: {}(id: $id) {{ conn: {field}(first: {first}, after: $after) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {sel} }} }} }} }}",
        s.one
    ))
}

/// The deletion-feed query.
pub const EVENTS_QUERY: &str = "query IngotDeletions($first: Int!, $after: String, $query: String!) { events(first: $first, after: $after, query: $query, sortKey: ID) { pageInfo { hasNextPage endCursor } nodes { id createdAt action ... on BasicEvent { subjectId subjectType } } } }";

/// Pages of one record's nested connection (line items, variants) read before the
/// listing gives up: Shopify's largest (a product's 2 048 variants, shopify.dev changelog
/// 2024 "2048 variants per product") is a few pages.
pub const MAX_NESTED_PAGES: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    #[serde(default)]
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Connection {
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
    nodes: Vec<Box<RawValue>>,
}

/// The routing fields of a node.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    id: String,
    updated_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventNode {
    #[serde(default)]
    action: Option<String>,
    created_at: String,
    #[serde(default)]
    subject_id: Option<String>,
    #[serde(default)]
    subject_type: Option<String>,
}

/// The digits of `gid://shopify/<ty>/<digits>[?…]`.
pub fn gid_id(gid: &str, ty: &str) -> Option<u64> {
    let rest = gid.strip_prefix("gid://shopify/")?;
    let (t, tail) = rest.split_once('/')?;
    if t != ty {
        return None;
    }
    tail.split(['?', '#']).next()?.parse().ok()
}

fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, ConnectorError> {
    ingot_model::parse_time(s, false)
        .map_err(|e| ConnectorError::Malformed(format!("{what} {s:?}: {e}")))
}

/// Unix seconds as a search-syntax time value (RFC 3339 UTC, quoted by the caller).
/// The Shopify connector on GraphQL. Share it behind an `Arc`: all calls of one shop share
/// its client's cost bucket.
pub struct ShopifyGraphqlConnector {
    client: ShopifyGraphql,
    page_size: u32,
    /// Bulk operations for the historical sync (`None`: `bulk_backfill = false`).
    bulk: Option<super::bulk::ShopifyBulk>,
}

impl ShopifyGraphqlConnector {
    /// A connector for `config` (see [`ShopifyGraphql::new`]); `config.page_size` (default
    /// and max 250) is the most nodes per page, lowered per model to keep a query's
    /// requested cost under the single-query limit.
    pub fn new(config: ConnectorConfig) -> Self {
        let page_size = config
            .page_size
            .unwrap_or(MAX_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        let client = ShopifyGraphql::new(&config);
        let bulk = (config.bulk_backfill != Some(false))
            .then(|| super::bulk::ShopifyBulk::new(client.clone()));
        ShopifyGraphqlConnector {
            client,
            page_size,
            bulk,
        }
    }

    /// Replaces the retry policy.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.client = self.client.with_retry_policy(policy);
        if self.bulk.is_some() {
            self.bulk = Some(super::bulk::ShopifyBulk::new(self.client.clone()));
        }
        self
    }

    /// The GraphQL client (its bucket estimate and counters).
    pub fn client(&self) -> &ShopifyGraphql {
        &self.client
    }

    /// Nodes per page for `model`: the page size, at most what keeps the requested cost
    /// under the single-query limit.
    pub fn first(&self, model: Model) -> u32 {
        let fit = ((MAX_SINGLE_QUERY_COST - 2.0) / node_cost(model))
            .floor()
            .max(1.0) as u32;
        self.page_size.min(fit).max(1)
    }

    fn estimate(&self, model: Model, first: u32) -> f64 {
        2.0 + f64::from(first) * node_cost(model)
    }

    /// One listing request: its rows (routing fields read, nested pages completed) and
    /// `hasNextPage`.
    async fn rows(
        &self,
        model: Model,
        search: String,
        sort_key: &str,
    ) -> Result<(Vec<Row>, bool), ConnectorError> {
        let s = spec(model);
        let first = self.first(model);
        let q = list_query(model);
        let vars = json!({ "first": first, "query": search, "sortKey": sort_key });
        let answer = self
            .client
            .execute_costed::<Value>(&q, vars, Some(self.estimate(model, first)))
            .await?;
        // `data.<root>` kept raw: each node's bytes are the payload
        let data: std::collections::HashMap<String, Box<RawValue>> =
            serde_json::from_value(answer.data).map_err(|e| {
                ConnectorError::Malformed(format!("{}: data is not an object: {e}", s.root))
            })?;
        let conn = data.get(s.root).ok_or_else(|| {
            ConnectorError::Malformed(format!("no \"{}\" in the GraphQL data", s.root))
        })?;
        let conn: Connection = serde_json::from_str(conn.get())
            .map_err(|e| ConnectorError::Malformed(format!("{} connection: {e}", s.root)))?;
        let mut out = Vec::with_capacity(conn.nodes.len());
        for raw in conn.nodes {
            let head: Head = serde_json::from_str(raw.get())
                .map_err(|e| ConnectorError::Malformed(format!("{} node: {e}", s.root)))?;
            let id = gid_id(&head.id, s.gid).ok_or_else(|| {
                ConnectorError::Malformed(format!(
                    "{} node id {:?} is not a gid://shopify/{}/<n>",
                    s.root, head.id, s.gid
                ))
            })?;
            let updated_at = parse_time(&head.updated_at, "updatedAt")?;
            let payload = self.complete(&s, &head.id, raw).await?;
            out.push(Row {
                id,
                sec: updated_at.timestamp(),
                updated_at,
                payload,
            });
        }
        Ok((out, conn.page_info.has_next_page))
    }

    /// The node's bytes, with its nested connection's further pages spliced in when its
    /// first page was not the last.
    async fn complete(
        &self,
        s: &Spec,
        gid: &str,
        raw: Box<RawValue>,
    ) -> Result<Vec<u8>, ConnectorError> {
        let Some((field, _, _)) = s.nested.as_ref() else {
            return Ok(raw.get().as_bytes().to_vec());
        };
        #[derive(Deserialize)]
        struct Nested {
            #[serde(rename = "pageInfo")]
            page_info: PageInfo,
        }
        let first: Option<Nested> = serde_json::from_str::<Value>(raw.get())
            .ok()
            .and_then(|v| v.get(*field).cloned())
            .and_then(|c| serde_json::from_value(c).ok());
        let Some(Nested { page_info }) = first else {
            return Ok(raw.get().as_bytes().to_vec());
        };
        if !page_info.has_next_page {
            return Ok(raw.get().as_bytes().to_vec());
        }
        let mut node: Value = serde_json::from_str(raw.get())
            .map_err(|e| ConnectorError::Malformed(format!("{} node: {e}", s.root)))?;
        let q = nested_query(s).unwrap_or_default();
        let mut after = page_info.end_cursor;
        let mut extra: Vec<Value> = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > MAX_NESTED_PAGES {
                // cursors that never end (a cycle, or always new ones): no 3PA's record
                return Err(ConnectorError::NoProgress(format!(
                    "{gid}: {field} did not end after {MAX_NESTED_PAGES} pages"
                )));
            }
            let Some(cursor) = after.clone() else {
                return Err(ConnectorError::Malformed(format!(
                    "{gid}: {field} hasNextPage without an endCursor"
                )));
            };
            let data: Value = self
                .client
                .execute(&q, json!({ "id": gid, "after": cursor }))
                .await?;
            let conn = data
                .get("node")
                .and_then(|n| n.get("conn"))
                .cloned()
                .ok_or_else(|| {
                    ConnectorError::Malformed(format!("{gid}: no {field} in the answer"))
                })?;
            #[derive(Deserialize)]
            struct Conn {
                #[serde(rename = "pageInfo")]
                page_info: PageInfo,
                nodes: Vec<Value>,
            }
            let conn: Conn = serde_json::from_value(conn)
                .map_err(|e| ConnectorError::Malformed(format!("{gid}: {field}: {e}")))?;
            extra.extend(conn.nodes);
            if !conn.page_info.has_next_page {
                after = conn.page_info.end_cursor.or(after);
                break;
            }
            if conn.page_info.end_cursor == Some(cursor) {
                return Err(ConnectorError::NoProgress(format!(
                    "{gid}: {field} endCursor did not advance"
                )));
            }
            after = conn.page_info.end_cursor;
        }
        if let Some(c) = node.get_mut(*field).and_then(Value::as_object_mut) {
            if let Some(Value::Array(nodes)) = c.get_mut("nodes") {
                nodes.extend(extra);
            }
            c.insert(
                "pageInfo".into(),
                json!({ "hasNextPage": false, "endCursor": after }),
            );
        }
        serde_json::to_vec(&node).map_err(|e| ConnectorError::Malformed(e.to_string()))
    }
}

#[async_trait]
impl Connector for ShopifyGraphqlConnector {
    fn provider(&self) -> Provider {
        Provider::Shopify
    }

    fn bulk(&self) -> Option<&dyn crate::bulk::BulkExport> {
        self.bulk
            .as_ref()
            .map(|b| b as &dyn crate::bulk::BulkExport)
    }

    /// Nodes of `model` with `updatedAt` in `window` (both ends inclusive), in
    /// (`updatedAt`, `id`) order, by the main and tie phases of the module docs.
    async fn list(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<RemoteRecord>, ConnectorError> {
        let s = spec(model);
        let from = window.from.timestamp();
        let to = window.to.timestamp();
        let record = |r: Row| RemoteRecord {
            model,
            remote_id: r.id.to_string(),
            updated_at: r.updated_at,
            topic: s.topic.to_string(),
            payload: r.payload,
        };
        let cursor = match page {
            None => Cursor::main(from - 1),
            Some(p) => Cursor::parse(p).ok_or_else(|| {
                ConnectorError::Malformed(format!("not a GraphQL listing token: {:?}", p.0))
            })?,
        };
        if cursor.tie {
            let (t, last) = (cursor.t, cursor.id);
            let search = format!(
                "updated_at:>='{}' AND updated_at:<='{}' AND id:>{last}",
                at(t),
                at(t)
            );
            let (rows, more) = self.rows(model, search, "ID").await?;
            let (fresh, next) = tie_page(rows, more, (t, last), (from, to), || s.root.to_string())?;
            return Ok(Page {
                items: fresh.into_iter().map(record).collect(),
                next: Some(next.token()?),
            });
        }
        let done = cursor.t;
        if done >= to {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let search = format!(
            "updated_at:>='{}' AND updated_at:<='{}'",
            at(done + 1),
            at(to)
        );
        let (rows, more) = self.rows(model, search, "UPDATED_AT").await?;
        let (kept, next) = main_page(rows, more, (done, to), || s.root.to_string())?;
        Ok(Page {
            items: kept.into_iter().map(record).collect(),
            next: next.map(|c| c.token()).transpose()?,
        })
    }

    /// `destroy` events of `model` created inside `window` (the deletion time, both ends
    /// inclusive), paged by `after`. Each becomes the delete topic with payload
    /// `{"id": <digits of subjectId>}`.
    async fn deletions(
        &self,
        model: Model,
        window: &Window,
        page: Option<&PageToken>,
    ) -> Result<Page<Deletion>, ConnectorError> {
        let s = spec(model);
        let search = format!(
            "subject_type:{} AND action:destroy AND created_at:>='{}' AND created_at:<='{}'",
            s.subject,
            at(window.from.timestamp()),
            at(window.to.timestamp())
        );
        let vars = json!({
            "first": self.page_size,
            "after": page.map(|p| p.0.clone()),
            "query": search,
        });
        let data: Value = self
            .client
            .execute_costed(EVENTS_QUERY, vars, Some(2.0 + f64::from(self.page_size)))
            .await?
            .data;
        let conn = data
            .get("events")
            .cloned()
            .ok_or_else(|| ConnectorError::Malformed("no \"events\" in the GraphQL data".into()))?;
        #[derive(Deserialize)]
        struct Conn {
            #[serde(rename = "pageInfo")]
            page_info: PageInfo,
            nodes: Vec<EventNode>,
        }
        let conn: Conn = serde_json::from_value(conn)
            .map_err(|e| ConnectorError::Malformed(format!("events connection: {e}")))?;
        let mut out = Vec::with_capacity(conn.nodes.len());
        for ev in conn.nodes {
            if ev.action.as_deref().is_some_and(|a| a != "destroy")
                || ev
                    .subject_type
                    .as_deref()
                    .is_some_and(|t| !t.eq_ignore_ascii_case(s.subject))
            {
                continue;
            }
            let Some(gid) = ev.subject_id else { continue };
            let id = gid_id(&gid, s.gid).ok_or_else(|| {
                ConnectorError::Malformed(format!("event subjectId {gid:?} is not a {} gid", s.gid))
            })?;
            out.push(Deletion {
                model,
                remote_id: id.to_string(),
                deleted_at: parse_time(&ev.created_at, "createdAt")?,
                topic: s.delete_topic.to_string(),
                payload: format!("{{\"id\":{id}}}").into_bytes(),
            });
        }
        let next = if conn.page_info.has_next_page {
            let c = conn.page_info.end_cursor.ok_or_else(|| {
                ConnectorError::Malformed("events: hasNextPage without an endCursor".into())
            })?;
            if page.is_some_and(|p| p.0 == c) {
                return Err(ConnectorError::NoProgress(
                    "events: the endCursor came back unchanged".into(),
                ));
            }
            Some(PageToken(c))
        } else {
            None
        };
        Ok(Page { items: out, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids() {
        assert_eq!(
            gid_id("gid://shopify/Order/820982911946154508", "Order"),
            Some(820982911946154508)
        );
        assert_eq!(gid_id("gid://shopify/Order/1", "Product"), None);
        assert_eq!(gid_id("gid://shopify/Order/x", "Order"), None);
        assert_eq!(gid_id("820982911946154508", "Order"), None);
    }

    #[test]
    fn pages_stay_under_the_single_query_limit() {
        let c = ShopifyGraphqlConnector::new(ConnectorConfig::default());
        for m in [Model::Order, Model::Customer, Model::Product] {
            let first = c.first(m);
            assert!(first >= 1);
            assert!(
                c.estimate(m, first) <= MAX_SINGLE_QUERY_COST,
                "{m:?} {first}"
            );
        }
        assert!(
            c.first(Model::Customer) >= 200,
            "{}",
            c.first(Model::Customer)
        );
    }
}
