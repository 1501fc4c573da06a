//! GraphQL Admin API nodes (`orders/graphql`, `customers/graphql`, `products/graphql`):
//! golden files for the GraphQL fixtures of `tests/data/shopify_graphql/` (written from the
//! 2025-10 reference shapes: gid ids, camelCase, `MoneyBag` amounts as `Decimal` strings
//! such as `"199.0"`, upper-case enums, connections with `nodes`), and one cross-source
//! test per model: the REST fixture of the same record (`../shared/fixtures/shopify`)
//! standardizes to exactly the same record (remote id, times, the whole content).

mod support;

use ingot_model::RawEvent;
use ingot_standardize::shopify::{ShopifyMapping, MAPPING_VERSION};
use ingot_standardize::{Mapping, Outcome, Standardized};
use serde_json::Value;
use std::path::Path;

fn graphql_event(name: &str, topic: &str) -> RawEvent {
    let path = support::package_dir()
        .join("tests/data/shopify_graphql")
        .join(format!("{name}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut e = support::raw_event("shopify", topic, bytes);
    e.source = "poll".into();
    e
}

fn rest_event(dir: &Path, file: &str, key: &str, topic: &str) -> RawEvent {
    let body: Value =
        serde_json::from_slice(&support::read_fixture(dir, &format!("shopify/{file}.json")))
            .unwrap();
    let mut e = support::raw_event("shopify", topic, serde_json::to_vec(&body[key]).unwrap());
    e.source = "poll".into();
    e
}

fn record(e: &RawEvent) -> Standardized {
    match ShopifyMapping.standardize(e) {
        Ok(Outcome::Record(s)) => s,
        other => panic!("{}: {other:?}", e.topic),
    }
}

/// (GraphQL fixture, its topic, REST fixture, key, REST topic)
const PAIRS: [(&str, &str, &str, &str, &str); 3] = [
    (
        "order_450789469",
        "orders/graphql",
        "rest_order_get_450789469",
        "order",
        "orders/rest",
    ),
    (
        "customer_207119551",
        "customers/graphql",
        "rest_customer_get_207119551",
        "customer",
        "customers/rest",
    ),
    (
        "product_632910392",
        "products/graphql",
        "rest_product_get_632910392",
        "product",
        "products/rest",
    ),
];

#[test]
fn golden_graphql_nodes() {
    for (name, topic, ..) in PAIRS {
        let out = support::outcome_json(ShopifyMapping.standardize(&graphql_event(name, topic)));
        support::assert_golden(&format!("shopify/graphql_{name}"), &out);
    }
}

#[test]
fn graphql_and_rest_of_one_record_standardize_identically() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for (name, topic, file, key, rest_topic) in PAIRS {
        let g = record(&graphql_event(name, topic));
        let r = record(&rest_event(&dir, file, key, rest_topic));
        assert_eq!(g, r, "{name}: GraphQL and REST standardize differently");
    }
}

#[test]
fn explicit_values_of_the_graphql_order() {
    let Standardized::Upsert {
        remote_id, data, ..
    } = record(&graphql_event("order_450789469", "orders/graphql"))
    else {
        panic!("not an upsert")
    };
    assert_eq!(remote_id, "450789469");
    let ingot_model::RecordData::Order(o) = data else {
        panic!("not an order")
    };
    // "598.94" from "598.94"; MoneyBag "199.0" prints as "199.00"
    assert_eq!(o.line_items[0].unit_price.as_deref(), Some("199.00"));
    assert_eq!(o.line_items[0].total_discount.as_deref(), Some("3.34"));
    assert_eq!(o.payment_status, "partially_refunded");
    assert_eq!(o.fulfillment_status, "unfulfilled");
    assert_eq!(o.discounts.len(), 1);
    assert_eq!(o.discounts[0].code.as_deref(), Some("TENOFF"));
    assert_eq!(o.discounts[0].amount.as_deref(), Some("10.00"));
    assert_eq!(o.total_refunded.as_deref(), Some("209.00"));
    assert_eq!(
        o.line_items[0].product_remote_id.as_deref(),
        Some("632910392")
    );
}

#[test]
fn a_hostile_graphql_node_is_an_error_or_a_record_never_a_panic() {
    for payload in [
        r#"{}"#,
        r#"{"id": "gid://shopify/Order/x", "updatedAt": "2024-01-01T00:00:00Z"}"#,
        r#"{"id": 5, "updatedAt": 7, "lineItems": {"nodes": [1, null, {"quantity": "x"}]}}"#,
        r#"{"id": "gid://shopify/Order/1", "updatedAt": "2024-01-01T00:00:00Z", "totalPriceSet": {"shopMoney": {"amount": "abc"}}}"#,
        r#"{"id": "gid://shopify/Order/1", "updatedAt": "2024-01-01T00:00:00Z", "discountApplications": {"nodes": [{"__typename": "DiscountCodeApplication", "index": 0}]}, "lineItems": {"edges": [{"node": {"discountAllocations": [{"allocatedAmountSet": {"shopMoney": {"amount": "1e400"}}, "discountApplication": {"index": 0}}]}}]}}"#,
        r#"[]"#,
    ] {
        for topic in ["orders/graphql", "customers/graphql", "products/graphql"] {
            let _ = ShopifyMapping.standardize(&support::raw_event(
                "shopify",
                topic,
                payload.as_bytes().to_vec(),
            ));
        }
    }
    assert_eq!(
        MAPPING_VERSION, "shopify/1",
        "REST output did not change: no bump"
    );
}
