//! NetSuite mapping: golden files for every JSON fixture in `shared/fixtures/netsuite`,
//! exact values read off the fixtures, hand-written expanded records and SuiteQL rows, and
//! no-panic properties.

mod support;

use ingot_model::{Model, RawOp, RecordData, RecordKey};
use ingot_standardize::netsuite::NetSuiteMapping;
use ingot_standardize::{Mapping, Outcome, StandardizeError, Standardized};
use proptest::prelude::*;
use serde_json::{json, Value};

const PROVIDER: &str = "netsuite";

use support::{outcome_json, upsert};

fn run(topic: &str, payload: Vec<u8>) -> Result<Outcome, StandardizeError> {
    NetSuiteMapping.standardize(&support::raw_event(PROVIDER, topic, payload))
}

fn run_value(topic: &str, payload: &Value) -> Result<Outcome, StandardizeError> {
    run(topic, serde_json::to_vec(payload).unwrap())
}

/// (fixture, topics it is standardized under, list response split into `items[]`?)
const FIXTURES: &[(&str, &[&str], bool)] = &[
    ("rest_salesorder_get_18.json", &["salesOrder.rest"], false),
    (
        "rest_customer_get_107_fields.json",
        &["customer.rest"],
        false,
    ),
    ("rest_customer_list_page1.json", &["customer.rest"], true),
    ("rest_customer_list_page2.json", &["customer.rest"], true),
    (
        "suiteql_response_sample.json",
        &["salesorder.suiteql", "customer.suiteql", "item.suiteql"],
        true,
    ),
];

#[test]
fn golden_every_fixture() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for (file, topics, is_list) in FIXTURES {
        let bytes = support::read_fixture(&dir, &format!("netsuite/{file}"));
        let mut per_topic = serde_json::Map::new();
        for topic in *topics {
            let actual = if *is_list {
                let page: Value = serde_json::from_slice(&bytes).unwrap();
                let items = page["items"].as_array().expect("items[]");
                assert!(!items.is_empty());
                Value::Array(
                    items
                        .iter()
                        .map(|v| outcome_json(run_value(topic, v)))
                        .collect(),
                )
            } else {
                outcome_json(run(topic, bytes.clone()))
            };
            per_topic.insert(topic.to_string(), actual);
        }
        let actual = if topics.len() == 1 {
            per_topic.into_values().next().unwrap()
        } else {
            Value::Object(per_topic)
        };
        support::assert_golden(
            &format!("netsuite/{}", file.trim_end_matches(".json")),
            &actual,
        );
    }
}

#[test]
fn every_json_fixture_is_covered() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let files: Vec<String> = std::fs::read_dir(dir.join("netsuite"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    for f in &files {
        assert!(
            FIXTURES.iter().any(|(name, _, _)| name == f),
            "fixture {f} has no golden test"
        );
    }
    assert_eq!(files.len(), FIXTURES.len());
}

#[test]
fn sales_order_18_exact_values() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let (id, created, updated, data) = upsert(run(
        "salesOrder.rest",
        support::read_fixture(&dir, "netsuite/rest_salesorder_get_18.json"),
    ));
    assert_eq!(id, "18");
    assert_eq!(created.as_deref(), Some("2020-07-29T08:34:00Z"));
    assert_eq!(updated, "2020-07-29T08:34:00Z");
    let RecordData::Order(o) = data else {
        panic!("not an order")
    };
    assert_eq!(o.order_number.as_deref(), Some("1"), "tranId");
    assert_eq!(
        (
            o.status.as_str(),
            o.payment_status.as_str(),
            o.fulfillment_status.as_str()
        ),
        ("open", "pending", "unfulfilled")
    );
    assert_eq!(
        o.currency.as_deref(),
        Some("USD"),
        "refName USA, currencysymbol USD"
    );
    assert_eq!(o.customer_remote_id.as_deref(), Some("110"));
    assert_eq!(
        o.customer_id,
        Some(RecordKey::new("conn-1", Model::Customer, "110").record_id())
    );
    assert!(o.line_items.is_empty(), "item sublist is links only");
    assert_eq!(o.billing_address, None, "billingaddress is links only");
    assert_eq!(o.shipping_address, None);
    assert_eq!(o.total_price.as_deref(), Some("39.95"));
    assert_eq!(o.subtotal_price.as_deref(), Some("39.95"));
    assert_eq!(o.total_tax.as_deref(), Some("0.00"));
    assert_eq!(o.total_discount.as_deref(), Some("0.00"));
    assert_eq!(o.total_shipping, None);
    assert!(o.discounts.is_empty() && o.tax_lines.is_empty() && o.shipping_lines.is_empty());
}

#[test]
fn list_pages_and_partial_records_are_exact_errors() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let page: Value = serde_json::from_slice(&support::read_fixture(
        &dir,
        "netsuite/rest_customer_list_page1.json",
    ))
    .unwrap();
    for item in page["items"].as_array().unwrap() {
        assert_eq!(
            run_value("customer.rest", item).unwrap_err(),
            StandardizeError::MissingField("lastModifiedDate")
        );
    }
    // The page envelope itself has no id.
    assert_eq!(
        run_value("customer.rest", &page).unwrap_err(),
        StandardizeError::MissingField("id")
    );
    // `?fields=companyName,email,entityId` returns neither id nor lastModifiedDate.
    let partial = support::read_fixture(&dir, "netsuite/rest_customer_get_107_fields.json");
    assert_eq!(
        run("customer.rest", partial).unwrap_err(),
        StandardizeError::MissingField("id")
    );
    // SuiteQL sample rows (placeholder columns) lack lastmodifieddate.
    let sq: Value = serde_json::from_slice(&support::read_fixture(
        &dir,
        "netsuite/suiteql_response_sample.json",
    ))
    .unwrap();
    assert_eq!(
        run_value("customer.suiteql", &sq["items"][0]).unwrap_err(),
        StandardizeError::MissingField("lastmodifieddate")
    );
}

#[test]
fn soap_xml_is_malformed_not_a_panic() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    for (file, topic) in [
        ("soap_get_customer_988.xml", "customer.rest"),
        ("soap_get_deleted_invoices.xml", "salesorder.deleted"),
    ] {
        let r = run(
            topic,
            support::read_fixture(&dir, &format!("netsuite/{file}")),
        );
        assert!(
            matches!(r, Err(StandardizeError::MalformedPayload(_))),
            "{file}: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hand-written payloads (shapes per the N-DEV / N-REAL fixtures, values invented)

/// A salesOrder GET with `expandSubResources=true`: an item line, a discount line applying
/// to it, a second item line, shipping, tax and both addresses.
fn expanded_sales_order() -> Value {
    json!({
        "links": [],
        "id": "5001",
        "tranId": "SO-5001",
        "createdDate": "2024-05-01T10:00:00Z",
        "lastModifiedDate": "2024-05-01T10:05:00Z",
        "orderStatus": {"id": "B", "refName": "Pending Fulfillment"},
        "status": {"id": "Pending Fulfillment", "refName": "Pending Fulfillment"},
        "ccApproved": "T",
        "currency": {"links": [], "id": "1", "refName": "US Dollar"},
        "entity": {"links": [], "id": "110", "refName": "Jane Roe"},
        "email": "jane@example.com",
        "memo": "leave at door",
        "billingAddress": {"links": [], "addr1": "1 Main St", "addr2": "Apt 2", "city": "Springfield", "state": "IL",
            "zip": "62701", "country": {"id": "US", "refName": "United States"}, "addrPhone": "555-0100",
            "addressee": "Jane Roe"},
        "shippingAddress": {"links": [{"rel": "self", "href": "x"}]},
        "item": {"links": [], "count": 3, "hasMore": false, "offset": 0, "totalResults": 3, "items": [
            {"links": [], "line": 1, "item": {"links": [], "id": "301", "refName": "MUG-1"}, "itemType": "InvtPart",
             "description": "Mug", "quantity": 2.0, "rate": 10.0, "amount": 20.0, "tax1Amt": 1.5},
            {"links": [], "line": 2, "item": {"links": [], "id": "90", "refName": "SPRING10"}, "itemType": "Discount",
             "rate": "-10%", "amount": -2.0},
            {"links": [], "line": 3, "item": {"links": [], "id": "302", "refName": "TEE-BLK-M"}, "itemType": {"id": "InvtPart", "refName": "InvtPart"},
             "quantity": 1, "rate": 14.31, "amount": 14.31},
            {"links": [], "line": 4, "item": {"links": [], "id": "-2", "refName": "Subtotal"}, "itemType": "Subtotal", "amount": 32.31}
        ]},
        "subtotal": 32.31,
        "discountTotal": 0.0,
        "shipMethod": {"links": [], "id": "7", "refName": "UPS Ground"},
        "shippingCost": 5.0,
        "taxItem": {"links": [], "id": "-8", "refName": "IL State"},
        "taxRate": 6.25,
        "taxTotal": 2.02,
        "total": 39.33
    })
}

#[test]
fn expanded_sales_order_lines_discounts_tax_shipping() {
    let (id, _, updated, data) = upsert(run_value("salesOrder.rest", &expanded_sales_order()));
    assert_eq!(
        (id.as_str(), updated.as_str()),
        ("5001", "2024-05-01T10:05:00Z")
    );
    let RecordData::Order(o) = data else { panic!() };
    assert_eq!(o.order_number.as_deref(), Some("SO-5001"));
    assert_eq!(
        (
            o.status.as_str(),
            o.payment_status.as_str(),
            o.fulfillment_status.as_str()
        ),
        ("open", "authorized", "unfulfilled")
    );
    assert_eq!(o.currency.as_deref(), Some("USD"), "\"US Dollar\"");
    assert_eq!(
        o.line_items.len(),
        2,
        "discount and subtotal lines are not line items"
    );
    let l = &o.line_items[0];
    assert_eq!(l.remote_id.as_deref(), Some("1"));
    assert_eq!(l.product_remote_id.as_deref(), Some("301"));
    assert_eq!(l.sku.as_deref(), Some("MUG-1"));
    assert_eq!(l.name.as_deref(), Some("Mug"));
    assert_eq!(l.quantity, 2);
    assert_eq!(l.unit_price.as_deref(), Some("10.00"));
    assert_eq!(
        l.total_discount.as_deref(),
        Some("2.00"),
        "the discount line right below applies to it"
    );
    assert_eq!(l.total.as_deref(), Some("18.00"));
    assert_eq!(l.total_tax.as_deref(), Some("1.50"));
    let l = &o.line_items[1];
    assert_eq!(
        (l.sku.as_deref(), l.name.as_deref()),
        (Some("TEE-BLK-M"), Some("TEE-BLK-M"))
    );
    assert_eq!(
        (
            l.unit_price.as_deref(),
            l.total.as_deref(),
            l.total_discount.as_deref()
        ),
        (Some("14.31"), Some("14.31"), Some("0.00"))
    );
    assert_eq!(l.total_tax, None);
    assert_eq!(o.discounts.len(), 1);
    assert_eq!(o.discounts[0].code.as_deref(), Some("SPRING10"));
    assert_eq!(o.discounts[0].amount.as_deref(), Some("2.00"));
    assert_eq!(o.discounts[0].kind.as_deref(), Some("percentage"));
    assert_eq!(o.total_discount.as_deref(), Some("2.00"));
    assert_eq!(o.subtotal_price.as_deref(), Some("32.31"));
    assert_eq!(o.shipping_lines[0].title.as_deref(), Some("UPS Ground"));
    assert_eq!(o.shipping_lines[0].price.as_deref(), Some("5.00"));
    assert_eq!(o.total_shipping.as_deref(), Some("5.00"));
    assert_eq!(o.tax_lines[0].title.as_deref(), Some("IL State"));
    assert_eq!(o.tax_lines[0].rate.as_deref(), Some("0.0625"));
    assert_eq!(o.tax_lines[0].amount.as_deref(), Some("2.02"));
    assert_eq!(o.total_price.as_deref(), Some("39.33"));
    assert_eq!(o.note.as_deref(), Some("leave at door"));
    let b = o.billing_address.as_ref().unwrap();
    assert_eq!(b.line1.as_deref(), Some("1 Main St"));
    assert_eq!(b.line2.as_deref(), Some("Apt 2"));
    assert_eq!(b.region_code.as_deref(), Some("IL"));
    assert_eq!(b.country_code.as_deref(), Some("US"));
    assert_eq!(b.country.as_deref(), Some("United States"));
    assert_eq!(b.phone.as_deref(), Some("555-0100"));
    assert_eq!(o.shipping_address, None, "links only");
}

#[test]
fn fractional_quantity_is_an_error_not_a_rounding() {
    let mut so = expanded_sales_order();
    so["item"]["items"][0]["quantity"] = json!(1.5);
    assert!(matches!(
        run_value("salesOrder.rest", &so),
        Err(StandardizeError::InvalidField { field, .. }) if field == "item.items[0].quantity"
    ));
}

#[test]
fn body_discount_is_negative_in_netsuite() {
    let mut so = expanded_sales_order();
    so["discountItem"] = json!({"id": "91", "refName": "WELCOME5"});
    so["discountTotal"] = json!(-5.0);
    let RecordData::Order(o) = upsert(run_value("salesOrder.rest", &so)).3 else {
        panic!()
    };
    assert_eq!(o.discounts.len(), 2);
    assert_eq!(o.discounts[1].code.as_deref(), Some("WELCOME5"));
    assert_eq!(o.discounts[1].amount.as_deref(), Some("5.00"));
    assert_eq!(
        o.total_discount.as_deref(),
        Some("7.00"),
        "line discount 2 + body discount 5"
    );
    assert_eq!(
        o.subtotal_price.as_deref(),
        Some("27.31"),
        "subtotal 32.31 − 5"
    );
}

#[test]
fn suiteql_rows_are_strings_and_lower_case() {
    let row = json!({"links": [], "id": "5001", "tranid": "SO-5001", "status": "G", "currency": "US Dollar",
        "currencysymbol": "USD", "entity": "110", "email": "jane@example.com", "subtotal": "32.31",
        "discounttotal": "0", "taxtotal": "2.02", "shippingcost": "5", "foreigntotal": "39.33",
        "createddate": "5/1/2024 10:00 am", "lastmodifieddate": "5/1/2024 10:05 am"});
    let (id, created, updated, data) = upsert(run_value("salesorder.suiteql", &row));
    assert_eq!(
        (id.as_str(), created.as_deref(), updated.as_str()),
        ("5001", Some("2024-05-01T10:00:00Z"), "2024-05-01T10:05:00Z")
    );
    let RecordData::Order(o) = data else { panic!() };
    assert_eq!(
        (
            o.status.as_str(),
            o.payment_status.as_str(),
            o.fulfillment_status.as_str()
        ),
        ("closed", "unknown", "fulfilled")
    );
    assert_eq!(o.currency.as_deref(), Some("USD"));
    assert_eq!(o.customer_remote_id.as_deref(), Some("110"));
    assert_eq!(o.total_price.as_deref(), Some("39.33"));
    assert_eq!(o.total_shipping.as_deref(), Some("5.00"));
    assert!(o.line_items.is_empty());

    let row = json!({"links": [], "id": "110", "entityid": "Jane Roe", "firstname": "Jane", "lastname": "Roe",
        "companyname": null, "email": "jane@example.com", "phone": "555-0100", "isinactive": "F",
        "currency": "1", "currencysymbol": "USD", "globalsubscriptionstatus": "1", "comments": "VIP",
        "datecreated": "1/15/2024 3:04 pm", "lastmodifieddate": "2024-05-01T10:05:00Z",
        "addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"});
    let (id, created, _, data) = upsert(run_value("customer.suiteql", &row));
    assert_eq!(
        (id.as_str(), created.as_deref()),
        ("110", Some("2024-01-15T15:04:00Z"))
    );
    let RecordData::Customer(c) = data else {
        panic!()
    };
    assert_eq!(
        (c.first_name.as_deref(), c.last_name.as_deref()),
        (Some("Jane"), Some("Roe"))
    );
    assert_eq!(c.status, "active");
    assert_eq!(c.currency.as_deref(), Some("USD"));
    assert_eq!(c.accepts_marketing, Some(true));
    assert_eq!(c.note.as_deref(), Some("VIP"));
    let a = c.default_address.unwrap();
    assert_eq!(
        (
            a.line1.as_deref(),
            a.postal_code.as_deref(),
            a.country_code.as_deref()
        ),
        (Some("1 Main St"), Some("62701"), Some("US"))
    );

    let row = json!({"links": [], "id": "301", "itemid": "MUG-1", "displayname": "Mug", "itemtype": "InvtPart",
        "isinactive": "T", "upccode": "0123456789012", "baseprice": "10", "quantityavailable": "7",
        "salesdescription": "A mug", "lastmodifieddate": "2024-05-01T10:05:00Z"});
    let (_, _, _, data) = upsert(run_value("item.suiteql", &row));
    let RecordData::Product(p) = data else {
        panic!()
    };
    assert_eq!(
        (
            p.name.as_deref(),
            p.status.as_str(),
            p.product_type.as_deref()
        ),
        (Some("Mug"), "archived", Some("InvtPart"))
    );
    assert_eq!(p.description.as_deref(), Some("A mug"));
    let v = &p.variants[0];
    assert_eq!(
        (v.remote_id.as_str(), v.sku.as_deref(), v.price.as_deref()),
        ("301", Some("MUG-1"), Some("10.00"))
    );
    assert_eq!(
        (v.inventory_quantity, v.barcode.as_deref()),
        (Some(7), Some("0123456789012"))
    );
}

#[test]
fn rest_customer_and_item() {
    let cust = json!({"links": [], "id": "107", "entityId": "Glenrock", "companyName": "Glenrock General Hospital",
    "isPerson": false, "email": "alan@example.com", "isInactive": false,
    "currency": {"id": "1", "refName": "USA"}, "globalSubscriptionStatus": {"id": "2", "refName": "Soft Opt-Out"},
    "dateCreated": "2019-01-01T08:00:00Z", "lastModifiedDate": "2025-12-19T15:23:00Z",
    "addressBook": {"links": [], "items": [
        {"links": [], "defaultBilling": false, "defaultShipping": true, "addressBookAddress": {"links": [], "addr1": "Ship St", "country": {"id": "US"}}},
        {"links": [], "defaultBilling": true, "defaultShipping": false, "addressBookAddress": {"links": [], "addr1": "Bill St", "zip": "10001", "country": {"id": "US", "refName": "United States"}}}
    ]}});
    let (id, created, updated, data) = upsert(run_value("customer.rest", &cust));
    assert_eq!(
        (id.as_str(), created.as_deref(), updated.as_str()),
        ("107", Some("2019-01-01T08:00:00Z"), "2025-12-19T15:23:00Z")
    );
    let RecordData::Customer(c) = data else {
        panic!()
    };
    assert_eq!(c.company.as_deref(), Some("Glenrock General Hospital"));
    assert_eq!(c.currency.as_deref(), Some("USD"));
    assert_eq!(c.accepts_marketing, Some(false));
    assert_eq!(c.default_address.unwrap().line1.as_deref(), Some("Bill St"));

    let item = json!({"links": [], "id": "301", "itemId": "MUG-1", "displayName": "Mug", "isInactive": "F",
        "manufacturer": "Acme", "lastModifiedDate": "2024-05-01T10:05:00Z", "createdDate": "2024-01-01T00:00:00Z"});
    let (_, _, _, data) = upsert(run_value("inventoryItem.rest", &item));
    let RecordData::Product(p) = data else {
        panic!()
    };
    assert_eq!(
        (
            p.status.as_str(),
            p.product_type.as_deref(),
            p.vendor.as_deref()
        ),
        ("active", Some("inventoryItem"), Some("Acme"))
    );
    assert_eq!(
        p.variants[0].remote_updated_at.as_deref(),
        Some("2024-05-01T10:05:00Z")
    );
}

#[test]
fn deleted_record_rows() {
    let row =
        json!({"recordid": "18", "recordtype": "salesorder", "deleteddate": "1/15/2024 3:04 pm"});
    assert_eq!(
        run_value("salesorder.deleted", &row).unwrap(),
        Outcome::Record(Standardized::Delete {
            model: Model::Order,
            remote_id: "18".into(),
            deleted_at: ingot_model::parse_time("2024-01-15T15:04:00Z", false).unwrap(),
        })
    );
    let row = json!({"recordid": "988", "deleteddate": "2011-12-15T11:56:19.000-08:00"});
    let Outcome::Record(d) = run_value("customer.deleted", &row).unwrap() else {
        panic!()
    };
    assert_eq!((d.model(), d.remote_id()), (Model::Customer, "988"));
    let Outcome::Record(Standardized::Delete { deleted_at, .. }) =
        run_value("inventoryItem.deleted", &json!({"recordid": "301"})).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        ingot_model::format_utc(&deleted_at),
        "2026-01-01T00:00:00Z",
        "no deleteddate: received_at"
    );
    assert_eq!(
        run_value("customer.deleted", &json!({})).unwrap_err(),
        StandardizeError::MissingField("recordid")
    );
    assert!(matches!(
        run_value("customer.deleted", &json!({"recordid": "1", "deleteddate": "yesterday"})),
        Err(StandardizeError::InvalidField { field, .. }) if field == "deleteddate"
    ));
}

#[test]
fn routes() {
    let m = NetSuiteMapping;
    assert_eq!(
        m.route("salesOrder.rest"),
        Some((Model::Order, RawOp::Upsert))
    );
    assert_eq!(
        m.route("salesorder.rest"),
        Some((Model::Order, RawOp::Upsert))
    );
    assert_eq!(
        m.route("customer.suiteql"),
        Some((Model::Customer, RawOp::Upsert))
    );
    assert_eq!(
        m.route("item.suiteql"),
        Some((Model::Product, RawOp::Upsert))
    );
    assert_eq!(
        m.route("nonInventorySaleItem.rest"),
        Some((Model::Product, RawOp::Upsert))
    );
    assert_eq!(
        m.route("customer.deleted"),
        Some((Model::Customer, RawOp::Delete))
    );
    assert_eq!(
        m.route("item.deleted"),
        Some((Model::Product, RawOp::Delete))
    );
    assert_eq!(m.route("invoice.rest"), None);
    assert_eq!(m.route("discountItem.rest"), None);
    assert_eq!(m.route("item.rest"), None);
    assert_eq!(
        run_value("invoice.rest", &json!({"id": "1"})).unwrap(),
        Outcome::Skip("unmapped topic")
    );
    for topic in ALL_TOPICS {
        let payload = json!({"id": "5", "recordid": "5", "lastModifiedDate": "2024-01-01T00:00:00Z", "lastmodifieddate": "2024-01-01T00:00:00Z"});
        match (m.route(topic), run_value(topic, &payload).unwrap()) {
            (None, Outcome::Skip(_)) => {}
            (Some((model, RawOp::Upsert)), Outcome::Record(s @ Standardized::Upsert { .. })) => {
                assert_eq!(s.model(), model)
            }
            (Some((model, RawOp::Delete)), Outcome::Record(s @ Standardized::Delete { .. })) => {
                assert_eq!(s.model(), model)
            }
            (route, r) => panic!("{topic}: route {route:?} but standardize gave {r:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Never panics

const ALL_TOPICS: &[&str] = &[
    "salesOrder.rest",
    "customer.rest",
    "inventoryItem.rest",
    "kitItem.rest",
    "salesorder.suiteql",
    "customer.suiteql",
    "item.suiteql",
    "salesorder.deleted",
    "customer.deleted",
    "item.deleted",
    "invoice.rest",
    "",
];

const KEYS: &[&str] = &[
    "id",
    "recordid",
    "deleteddate",
    "lastModifiedDate",
    "lastmodifieddate",
    "createdDate",
    "orderStatus",
    "status",
    "ccApproved",
    "currency",
    "currencySymbol",
    "entity",
    "refName",
    "item",
    "items",
    "itemType",
    "quantity",
    "rate",
    "amount",
    "tax1Amt",
    "line",
    "discountTotal",
    "subtotal",
    "taxTotal",
    "tax2Total",
    "taxRate",
    "taxItem",
    "shippingCost",
    "handlingCost",
    "shipMethod",
    "total",
    "billingAddress",
    "addr1",
    "country",
    "state",
    "addressBook",
    "addressBookAddress",
    "defaultBilling",
    "isInactive",
    "globalSubscriptionStatus",
    "itemId",
    "basePrice",
    "quantityAvailable",
    "links",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "",
            "-1",
            "1",
            "T",
            "F",
            "B",
            "G",
            "Discount",
            "Subtotal",
            "12%",
            "-10%",
            "1e30",
            "99999999999999999999999999999",
            "1/15/2024 3:04 pm",
            "2020-07-29T08:34:00Z",
            "13/45/2024 99:99 pm",
            "USA",
            "USD",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        ".{0,6}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json(), topic in prop::sample::select(ALL_TOPICS)) {
        let _ = run_value(topic, &v);
        let mut obj = json!({"id": "1", "lastModifiedDate": "2024-01-01T00:00:00Z", "lastmodifieddate": "1/1/2024 1:00 pm"});
        if let Value::Object(extra) = &v {
            for (k, x) in extra { obj[k] = x.clone(); }
        }
        let _ = run_value(topic, &obj);
        // And inside an expanded sublist.
        let mut so = expanded_sales_order();
        so["item"]["items"][1] = v.clone();
        let _ = run_value(topic, &so);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), topic in prop::sample::select(ALL_TOPICS)) {
        let _ = run(topic, bytes);
    }
}
