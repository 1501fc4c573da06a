//! Seeded generator of Shopify REST Admin objects (API 2024-04 shapes).
//!
//! Shapes follow the REST reference examples kept in
//! `crates/ingot-standardize/tests/golden/shopify/` (`rest_order_get_450789469.json`,
//! `rest_customer_get_207119551.json`, `rest_products_list.json`): integer ids (orders and
//! customers 13 digits like real shops today, products 18 digits above 2^53 like the docs
//! samples, QUIRKS Q-S1), money as decimal strings repeated in `*_set` (Q-S6), times with
//! the shop's UTC offset and second precision (Q-S8), tags as one comma-separated string,
//! guest orders with `"customer": null`, Unicode names (Q-S14).

use super::Resource;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// First id of each generated id space.
pub(crate) const ORDER_ID_BASE: u64 = 5_100_000_000_000;
pub(crate) const CUSTOMER_ID_BASE: u64 = 7_300_000_000_000;
pub(crate) const PRODUCT_ID_BASE: u64 = 820_982_911_946_000_000;
const VARIANT_ID_BASE: u64 = 44_100_000_000_000;
const LINE_ITEM_ID_BASE: u64 = 13_900_000_000_000;
const ADDRESS_ID_BASE: u64 = 9_100_000_000_000;
pub(crate) const EVENT_ID_BASE: u64 = 210_000_000_000;

const FIRST: &[&str] = &[
    "Bob", "Alice", "Léon", "Noël", "Zoë", "Søren", "Ana", "Kenji", "Priya", "Olu", "Chloé",
    "Mateo",
];
const LAST: &[&str] = &[
    "Norman",
    "Martin",
    "Dupont",
    "Müller",
    "Nakamura",
    "Okafor",
    "García",
    "Smith",
    "Østergaard",
    "Rossi",
];
const CITIES: &[(&str, &str, &str, &str, &str)] = &[
    ("Louisville", "Kentucky", "KY", "40202", "US"),
    ("Ottawa", "Ontario", "ON", "K2P 1L4", "CA"),
    ("Portland", "Oregon", "OR", "97201", "US"),
    ("Brooklyn", "New York", "NY", "11201", "US"),
];
const PRODUCTS: &[(&str, &str, &str)] = &[
    ("IPod Nano", "Apple", "Cult Products"),
    ("Wool Sweater", "Fjäll", "Apparel"),
    ("Ceramic Mug", "Kiln & Co", "Kitchen"),
    ("Trail Shoe", "Stride", "Footwear"),
    ("Notebook A5", "Papier/Plume", "Stationery"),
    ("Coffee Beans 1kg", "Roast™", "Grocery"),
];
const SIZES: &[&str] = &["S", "M", "L"];

/// Formats a UTC instant in the shop's zone, second precision: `2024-04-02T08:59:11-05:00`.
pub fn shop_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `cents` as a Shopify decimal string (`"404.95"`).
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

fn money_set(cents: i64, currency: &str) -> Value {
    json!({
        "shop_money": {"amount": money(cents), "currency_code": currency},
        "presentment_money": {"amount": money(cents), "currency_code": currency},
    })
}

/// A generated record before rendering: its routing fields and JSON object.
#[derive(Debug, Clone)]
pub(crate) struct GenRecord {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub value: Value,
}

/// A generated destroy event: (subject id, when).
#[derive(Debug, Clone)]
pub(crate) struct GenDeletion {
    pub subject_id: u64,
    pub at: DateTime<Utc>,
}

/// The generated data set.
pub(crate) struct Generated {
    pub orders: Vec<GenRecord>,
    pub customers: Vec<GenRecord>,
    pub products: Vec<GenRecord>,
    pub deletions: Vec<(Resource, GenDeletion)>,
}

/// Random times of `n` records created over `span` before `now`, sorted by creation:
/// (created, updated), second precision. About 5% of records share the `updated_at` of
/// the previous one (bulk edits), so ties on `updated_at` happen naturally.
fn times(
    rng: &mut SmallRng,
    n: usize,
    now: DateTime<Utc>,
    span: Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let span_s = span.num_seconds().max(3600);
    let mut created: Vec<i64> = (0..n).map(|_| rng.gen_range(3600..span_s)).collect();
    created.sort_unstable_by(|a, b| b.cmp(a));
    let now_s = now.timestamp();
    let mut out = Vec::with_capacity(n);
    let mut prev_updated: Option<i64> = None;
    for back in created {
        let c = now_s - back;
        let u = if let (Some(p), true) = (prev_updated, rng.gen_bool(0.05)) {
            p.max(c)
        } else if rng.gen_bool(0.1) {
            // touched recently
            rng.gen_range(c..=now_s - 60).max(c)
        } else {
            (c + rng.gen_range(0..30 * 86_400)).min(now_s - 60).max(c)
        };
        prev_updated = Some(u);
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or(now);
        out.push((at(c), at(u)));
    }
    out
}

/// Generates the data set of `seed`.
pub(crate) fn generate(
    seed: u64,
    now: DateTime<Utc>,
    span: Duration,
    counts: (usize, usize, usize),
    deleted_fraction: f64,
    tz: Tz,
) -> Generated {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (n_orders, n_customers, n_products) = counts;
    let mut deletions = Vec::new();

    let mut products = Vec::with_capacity(n_products);
    for (i, (c, u)) in times(&mut rng, n_products, now, span)
        .into_iter()
        .enumerate()
    {
        let id = PRODUCT_ID_BASE + (i as u64) * 7919 + rng.gen_range(0..1000);
        products.push(GenRecord {
            id,
            created_at: c,
            updated_at: u,
            value: product(&mut rng, id, c, u, tz),
        });
    }
    let mut customers = Vec::with_capacity(n_customers);
    for (i, (c, u)) in times(&mut rng, n_customers, now, span)
        .into_iter()
        .enumerate()
    {
        let id = CUSTOMER_ID_BASE + (i as u64) * 4099 + rng.gen_range(0..1000);
        customers.push(GenRecord {
            id,
            created_at: c,
            updated_at: u,
            value: customer(&mut rng, id, c, u, tz),
        });
    }
    let mut orders = Vec::with_capacity(n_orders);
    for (i, (c, u)) in times(&mut rng, n_orders, now, span).into_iter().enumerate() {
        let id = ORDER_ID_BASE + (i as u64) * 1021 + rng.gen_range(0..1000);
        let cust = if customers.is_empty() || rng.gen_bool(0.1) {
            None
        } else {
            Some(&customers[rng.gen_range(0..customers.len())])
        };
        let v = order(&mut rng, id, 1001 + i as u64, c, u, cust, &products, tz);
        orders.push(GenRecord {
            id,
            created_at: c,
            updated_at: u,
            value: v,
        });
    }
    // Some records were deleted since: they leave a destroy event and are not listed.
    for (res, list) in [
        (Resource::Orders, &mut orders),
        (Resource::Customers, &mut customers),
        (Resource::Products, &mut products),
    ] {
        let mut kept = Vec::with_capacity(list.len());
        for r in list.drain(..) {
            if rng.gen_bool(deleted_fraction) {
                let lo = r.updated_at.timestamp();
                let hi = (now.timestamp() - 1).max(lo);
                let at = DateTime::from_timestamp(rng.gen_range(lo..=hi), 0).unwrap_or(now);
                deletions.push((
                    res,
                    GenDeletion {
                        subject_id: r.id,
                        at,
                    },
                ));
            } else {
                kept.push(r);
            }
        }
        *list = kept;
    }
    deletions.sort_by_key(|(_, d)| (d.at, d.subject_id));
    Generated {
        orders,
        customers,
        products,
        deletions,
    }
}

fn pick<'a>(rng: &mut SmallRng, xs: &[&'a str]) -> &'a str {
    xs[rng.gen_range(0..xs.len())]
}

fn address(rng: &mut SmallRng, first: &str, last: &str) -> Value {
    let (city, province, code, zip, country) = CITIES[rng.gen_range(0..CITIES.len())];
    json!({
        "first_name": first,
        "address1": format!("{} Chestnut Street", rng.gen_range(1..400)),
        "phone": "+1(555)-459-2181",
        "city": city,
        "zip": zip,
        "province": province,
        "country": if country == "US" { "United States" } else { "Canada" },
        "last_name": last,
        "address2": "",
        "company": null,
        "latitude": 45.41634,
        "longitude": -75.6868,
        "name": format!("{first} {last}"),
        "country_code": country,
        "province_code": code,
    })
}

/// A REST `Customer` (2024-04: still has `orders_count`, `total_spent`, Q-S10).
pub(crate) fn customer(
    rng: &mut SmallRng,
    id: u64,
    c: DateTime<Utc>,
    u: DateTime<Utc>,
    tz: Tz,
) -> Value {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let mut addr = address(rng, first, last);
    let aid = ADDRESS_ID_BASE + id % 1_000_000_000;
    if let Some(a) = addr.as_object_mut() {
        a.remove("latitude");
        a.remove("longitude");
        a.insert("id".into(), json!(aid));
        a.insert("customer_id".into(), json!(id));
        a.insert(
            "country_name".into(),
            a.get("country").cloned().unwrap_or(Value::Null),
        );
        a.insert("default".into(), json!(true));
    }
    let orders_count = rng.gen_range(0..12u32);
    json!({
        "id": id,
        "email": format!("{}.{}{}@mail.example.com", first.to_lowercase(), last.to_lowercase(), id % 10_000),
        "created_at": shop_time(c, tz),
        "updated_at": shop_time(u, tz),
        "first_name": first,
        "last_name": last,
        "orders_count": orders_count,
        "state": if rng.gen_bool(0.7) { "enabled" } else { "disabled" },
        "total_spent": money(i64::from(orders_count) * rng.gen_range(1_000..40_000)),
        "last_order_id": null,
        "note": if rng.gen_bool(0.1) { json!("VIP – prefers e-mail\u{2028}second line") } else { Value::Null },
        "verified_email": true,
        "multipass_identifier": null,
        "tax_exempt": false,
        "tags": if rng.gen_bool(0.3) { "Léon, Noël" } else { "" },
        "last_order_name": null,
        "currency": "USD",
        "phone": if rng.gen_bool(0.5) { json!(format!("+1555555{:04}", id % 10_000)) } else { Value::Null },
        "addresses": [addr.clone()],
        "tax_exemptions": [],
        "email_marketing_consent": {"state": "not_subscribed", "opt_in_level": null, "consent_updated_at": null},
        "sms_marketing_consent": null,
        "admin_graphql_api_id": format!("gid://shopify/Customer/{id}"),
        "default_address": addr,
    })
}

/// A REST `Product` with 1–3 variants.
pub(crate) fn product(
    rng: &mut SmallRng,
    id: u64,
    c: DateTime<Utc>,
    u: DateTime<Utc>,
    tz: Tz,
) -> Value {
    let (title, vendor, ptype) = PRODUCTS[rng.gen_range(0..PRODUCTS.len())];
    let title = format!("{title} #{}", id % 100_000);
    let handle = title.to_lowercase().replace([' ', '#'], "-");
    let n_var = rng.gen_range(1..=3usize);
    let price = rng.gen_range(500..30_000i64);
    let variants: Vec<Value> = (0..n_var)
        .map(|k| {
            let vid = VARIANT_ID_BASE + (id % 1_000_000_000) * 3 + k as u64;
            json!({
                "id": vid,
                "product_id": id,
                "title": SIZES[k],
                "price": money(price),
                "sku": format!("SKU-{}-{}", id % 100_000, SIZES[k]),
                "position": k + 1,
                "inventory_policy": "deny",
                "compare_at_price": null,
                "fulfillment_service": "manual",
                "inventory_management": "shopify",
                "option1": SIZES[k],
                "option2": null,
                "option3": null,
                "created_at": shop_time(c, tz),
                "updated_at": shop_time(u, tz),
                "taxable": true,
                "barcode": format!("{}", 400_000_000_000u64 + vid % 1_000_000),
                "grams": 567,
                "image_id": null,
                "weight": 1.25,
                "weight_unit": "lb",
                "inventory_item_id": vid + 1_000_000_000,
                "inventory_quantity": rng.gen_range(0..50),
                "old_inventory_quantity": 10,
                "requires_shipping": true,
                "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{vid}"),
            })
        })
        .collect();
    let status = match rng.gen_range(0..10) {
        0 => "draft",
        1 => "archived",
        _ => "active",
    };
    json!({
        "id": id,
        "title": title,
        "body_html": format!("<p>{title}: made by {vendor}. See <a href=\"https://example.com/p/{id}\">details</a> & care notes.</p>"),
        "vendor": vendor,
        "product_type": ptype,
        "created_at": shop_time(c, tz),
        "handle": handle,
        "updated_at": shop_time(u, tz),
        "published_at": if status == "active" { json!(shop_time(c, tz)) } else { Value::Null },
        "template_suffix": null,
        "published_scope": "web",
        "tags": "Emotive, Flash Memory",
        "status": status,
        "admin_graphql_api_id": format!("gid://shopify/Product/{id}"),
        "variants": variants,
        "options": [{"id": id % 1_000_000_000 + 5_000_000_000, "product_id": id, "name": "Size", "position": 1, "values": SIZES[..n_var]}],
        "images": [],
        "image": null,
    })
}

/// A REST `Order`: 1–4 line items, 6% state tax, optional discount code, shipping line.
/// About 55% are closed (`closed_at` set), 5% cancelled (and closed), the rest open.
#[allow(clippy::too_many_arguments)]
pub(crate) fn order(
    rng: &mut SmallRng,
    id: u64,
    number: u64,
    c: DateTime<Utc>,
    u: DateTime<Utc>,
    customer: Option<&GenRecord>,
    products: &[GenRecord],
    tz: Tz,
) -> Value {
    let cur = "USD";
    let n_lines = rng.gen_range(1..=4usize);
    let mut subtotal = 0i64;
    let mut tax_total = 0i64;
    let mut lines = Vec::with_capacity(n_lines);
    let mut line_totals = Vec::with_capacity(n_lines);
    for k in 0..n_lines {
        let qty = rng.gen_range(1..=3i64);
        let price = rng.gen_range(500..20_000i64);
        let line_total = price * qty;
        let tax = line_total * 6 / 100;
        subtotal += line_total;
        tax_total += tax;
        line_totals.push(line_total);
        let prod = (!products.is_empty()).then(|| &products[rng.gen_range(0..products.len())]);
        let (pid, vid, title) = match prod {
            Some(p) => (
                json!(p.id),
                p.value
                    .pointer("/variants/0/id")
                    .cloned()
                    .unwrap_or(Value::Null),
                p.value.get("title").cloned().unwrap_or(Value::Null),
            ),
            None => (Value::Null, Value::Null, json!("Custom item")),
        };
        let li = LINE_ITEM_ID_BASE + (id % 1_000_000_000) * 5 + k as u64;
        lines.push(json!({
            "id": li,
            "admin_graphql_api_id": format!("gid://shopify/LineItem/{li}"),
            "current_quantity": qty,
            "fulfillable_quantity": qty,
            "fulfillment_service": "manual",
            "fulfillment_status": null,
            "gift_card": false,
            "grams": 200,
            "name": title,
            "price": money(price),
            "price_set": money_set(price, cur),
            "product_exists": prod.is_some(),
            "product_id": pid,
            "properties": [],
            "quantity": qty,
            "requires_shipping": true,
            "sku": format!("SKU-{}", li % 100_000),
            "taxable": true,
            "title": title,
            "total_discount": "0.00",
            "total_discount_set": money_set(0, cur),
            "variant_id": vid,
            "variant_inventory_management": "shopify",
            "variant_title": "M",
            "vendor": null,
            "tax_lines": [{"channel_liable": null, "price": money(tax), "price_set": money_set(tax, cur), "rate": 0.06, "title": "State Tax"}],
            "duties": [],
            "discount_allocations": [],
        }));
    }
    let discount = if rng.gen_bool(0.2) { subtotal / 10 } else { 0 };
    // the code's amount allocated across the lines in proportion (the last line takes
    // the rounding rest), as Shopify reports it in `discount_allocations`
    if discount > 0 {
        let mut left = discount;
        for (k, line) in lines.iter_mut().enumerate() {
            let a = if k + 1 == n_lines {
                left
            } else {
                discount * line_totals[k] / subtotal.max(1)
            };
            left -= a;
            line["discount_allocations"] = json!([{"amount": money(a), "amount_set": money_set(a, cur), "discount_application_index": 0}]);
        }
    }
    let discount_applications = if discount > 0 {
        json!([{"target_type": "line_item", "type": "discount_code", "value": "10.0", "value_type": "percentage",
                "allocation_method": "across", "target_selection": "all", "code": "TENOFF"}])
    } else {
        json!([])
    };
    let shipping = if rng.gen_bool(0.5) {
        0
    } else {
        rng.gen_range(400..2_000i64)
    };
    let total = subtotal - discount + tax_total + shipping;
    let cancelled = rng.gen_bool(0.05);
    let closed = cancelled || rng.gen_bool(0.55);
    let financial = if cancelled {
        "voided"
    } else {
        [
            "paid",
            "paid",
            "paid",
            "pending",
            "authorized",
            "partially_refunded",
            "refunded",
        ][rng.gen_range(0..7)]
    };
    let fulfillment = if closed && !cancelled {
        json!("fulfilled")
    } else {
        Value::Null
    };
    let (first, last, email, cust) = match customer {
        Some(cr) => {
            let v = &cr.value;
            let f = v
                .get("first_name")
                .and_then(Value::as_str)
                .unwrap_or("Bob")
                .to_string();
            let l = v
                .get("last_name")
                .and_then(Value::as_str)
                .unwrap_or("Norman")
                .to_string();
            let e = v.get("email").cloned().unwrap_or(Value::Null);
            let mut cv = v.clone();
            if let Some(o) = cv.as_object_mut() {
                o.remove("addresses");
                o.remove("orders_count");
                o.remove("total_spent");
                o.remove("last_order_id");
                o.remove("last_order_name");
            }
            (f, l, e, cv)
        }
        None => (
            "Guest".to_string(),
            "Buyer".to_string(),
            json!(format!("guest{id}@example.com")),
            Value::Null,
        ),
    };
    let addr = address(rng, &first, &last);
    let closed_at = closed.then(|| shop_time(u, tz));
    let shipping_lines = json!([{
        "id": id % 1_000_000_000 + 3_000_000_000,
        "carrier_identifier": null,
        "code": if shipping == 0 { "Free Shipping" } else { "Standard" },
        "discounted_price": money(shipping),
        "discounted_price_set": money_set(shipping, cur),
        "phone": null,
        "price": money(shipping),
        "price_set": money_set(shipping, cur),
        "requested_fulfillment_service_id": null,
        "source": "shopify",
        "title": if shipping == 0 { "Free Shipping" } else { "Standard" },
        "tax_lines": [],
        "discount_allocations": [],
    }]);
    let mut head = json!({
        "id": id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "app_id": 580111,
        "browser_ip": "0.0.0.0",
        "buyer_accepts_marketing": false,
        "cancel_reason": if cancelled { json!("customer") } else { Value::Null },
        "cancelled_at": if cancelled { json!(shop_time(u, tz)) } else { Value::Null },
        "closed_at": closed_at,
        "confirmation_number": format!("X{:08}", id % 100_000_000),
        "confirmed": true,
        "contact_email": email,
        "created_at": shop_time(c, tz),
        "currency": cur,
        "current_subtotal_price": money(subtotal - discount),
        "current_total_price": money(total),
        "current_total_tax": money(tax_total),
        "customer_locale": "en",
        "discount_codes": if discount > 0 { json!([{"code": "TENOFF", "amount": money(discount), "type": "percentage"}]) } else { json!([]) },
        "email": email,
        "estimated_taxes": false,
        "financial_status": financial,
        "fulfillment_status": fulfillment,
        "landing_site": "/products/sale?utm=a&b=c",
        "name": format!("#{number}"),
        "note": null,
        "note_attributes": [],
        "number": number - 1000,
        "order_number": number,
        "order_status_url": format!("https://example.myshopify.com/7/orders/{:032x}/authenticate?key=abc", id),
        "payment_gateway_names": ["bogus"],
        "phone": null,
        "presentment_currency": cur,
        "processed_at": shop_time(c, tz),
        "referring_site": "",
        "source_name": "web",
        "subtotal_price": money(subtotal - discount),
        "subtotal_price_set": money_set(subtotal - discount, cur),
        "tags": if rng.gen_bool(0.2) { "wholesale, Léon" } else { "" },
    });
    let rest = json!({
        "tax_lines": [{"price": money(tax_total), "rate": 0.06, "title": "State Tax", "price_set": money_set(tax_total, cur), "channel_liable": null}],
        "taxes_included": false,
        "test": false,
        "token": format!("{:032x}", id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        "total_discounts": money(discount),
        "total_discounts_set": money_set(discount, cur),
        "total_line_items_price": money(subtotal),
        "total_line_items_price_set": money_set(subtotal, cur),
        "total_outstanding": "0.00",
        "total_price": money(total),
        "total_price_set": money_set(total, cur),
        "total_shipping_price_set": money_set(shipping, cur),
        "total_tax": money(tax_total),
        "total_tax_set": money_set(tax_total, cur),
        "total_tip_received": "0.00",
        "total_weight": 0,
        "updated_at": shop_time(u, tz),
        "user_id": null,
        "billing_address": addr.clone(),
        "customer": cust,
        "discount_applications": discount_applications,
        "fulfillments": [],
        "line_items": lines,
        "payment_terms": null,
        "refunds": [],
        "shipping_address": addr,
        "shipping_lines": shipping_lines,
    });
    if let (Some(h), Value::Object(r)) = (head.as_object_mut(), rest) {
        h.extend(r);
    }
    head
}

/// A fresh generator for records made after start (`ShopifySim::make_record`).
pub(crate) fn rng_for(seed: u64, id: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ id.rotate_left(17))
}
