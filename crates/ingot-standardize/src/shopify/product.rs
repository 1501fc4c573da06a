//! Shopify product (REST Admin `Product` resource, `products/*` webhooks) → [`Product`].

use super::{object_id, Obj};
use crate::{common, StandardizeError};
use ingot_model::{Product, ProductOption, ProductVariant, VariantOption};
use serde_json::Value;

/// Product `status` from Shopify's `status`: `active`, `draft`, `archived` kept; missing,
/// `null` or anything else → `unknown`.
pub fn product_status(status: Option<&str>) -> &'static str {
    match status {
        Some("active") => "active",
        Some("draft") => "draft",
        Some("archived") => "archived",
        _ => "unknown",
    }
}

/// Maps a product object. Prices have no currency: REST product and variant prices are in
/// the shop currency, which the payload does not state, so they are formatted with two
/// minor digits and `currency` is `None`. Variant options pair `option1..3` with the
/// product's `options[].name` by position; when `options` is empty (the 2026-04 webhook
/// sample, QUIRKS Q-S14) the names are `Option1`, `Option2`, `Option3`.
///
/// `products/update` sends only the first 100 variants in full (Q-S11): `variants` then
/// lists only those.
pub(super) fn product(p: &Obj) -> Result<Product, StandardizeError> {
    let options: Vec<&Obj> = array(p.get("options")).collect();
    let product_options = options
        .iter()
        .enumerate()
        .map(|(i, o)| ProductOption {
            name: common::text(o.get("name")).unwrap_or_else(|| format!("Option{}", i + 1)),
            values: o
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| common::text(Some(v)))
                .collect(),
        })
        .collect();
    let variants = array(p.get("variants"))
        .map(|v| variant(v, p, &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Product {
        name: common::text(p.get("title")),
        description: common::text(p.get("body_html")),
        status: product_status(p.get("status").and_then(Value::as_str)).to_string(),
        vendor: common::text(p.get("vendor")),
        product_type: common::text(p.get("product_type")),
        handle: common::text(p.get("handle")),
        currency: None,
        tags: common::tags(p.get("tags")),
        options: product_options,
        variants,
    })
}

/// Name of option `n` (1-based): the option whose `position` is `n`, else the `n`-th
/// entry of `options`, else `Option<n>`.
fn option_name(options: &[&Obj], n: usize) -> String {
    options
        .iter()
        .find(|o| common::int(o.get("position")) == i64::try_from(n).ok())
        .or_else(|| options.get(n - 1))
        .and_then(|o| common::text(o.get("name")))
        .unwrap_or_else(|| format!("Option{n}"))
}

/// One `variants[]` entry. `remote_updated_at` is the variant's `updated_at` in UTC, else
/// the `updated_at` of its entry in the webhook's `variant_gids` (UTC with milliseconds,
/// Q-S8).
fn variant(v: &Obj, product: &Obj, options: &[&Obj]) -> Result<ProductVariant, StandardizeError> {
    let remote_id =
        object_id(v, "ProductVariant").ok_or(StandardizeError::MissingField("variants[].id"))?;
    let mut remote_updated_at =
        common::time_string(v.get("updated_at"), "variants[].updated_at", false)?;
    if remote_updated_at.is_none() {
        let gid = format!("gid://shopify/ProductVariant/{remote_id}");
        let listed = array(product.get("variant_gids"))
            .find(|g| g.get("admin_graphql_api_id").and_then(Value::as_str) == Some(gid.as_str()));
        if let Some(g) = listed {
            remote_updated_at =
                common::time_string(g.get("updated_at"), "variant_gids[].updated_at", false)?;
        }
    }
    let variant_options = (1..=3)
        .filter_map(|n| {
            common::text(v.get(format!("option{n}").as_str())).map(|value| VariantOption {
                name: option_name(options, n),
                value,
            })
        })
        .collect();
    Ok(ProductVariant {
        remote_id,
        sku: common::text(v.get("sku")),
        title: common::text(v.get("title")),
        price: common::money_field(v.get("price"), "variants[].price", None)?,
        compare_at_price: common::money_field(
            v.get("compare_at_price"),
            "variants[].compare_at_price",
            None,
        )?,
        options: variant_options,
        inventory_quantity: common::int(v.get("inventory_quantity")),
        barcode: common::text(v.get("barcode")),
        remote_updated_at,
    })
}

/// The objects of a JSON array (other entries and non-arrays are ignored).
fn array(v: Option<&Value>) -> impl Iterator<Item = &Obj> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn product_status_table() {
        assert_eq!(product_status(Some("active")), "active");
        assert_eq!(product_status(Some("draft")), "draft");
        assert_eq!(product_status(Some("archived")), "archived");
        assert_eq!(product_status(Some("unlisted")), "unknown");
        assert_eq!(product_status(None), "unknown");
    }

    #[test]
    fn variant_options_pair_by_position() {
        let p = json!({
            "options": [{"name": "Material", "position": 2}, {"name": "Size", "position": 1}],
            "variants": [{"id": 1, "option1": "S", "option2": "Cotton", "option3": null, "price": 5}]
        });
        let out = product(p.as_object().unwrap()).unwrap();
        let opts = &out.variants[0].options;
        assert_eq!(opts.len(), 2);
        assert_eq!(
            (opts[0].name.as_str(), opts[0].value.as_str()),
            ("Size", "S")
        );
        assert_eq!(
            (opts[1].name.as_str(), opts[1].value.as_str()),
            ("Material", "Cotton")
        );
        assert_eq!(out.variants[0].price.as_deref(), Some("5.00"));
        let p = json!({"options": [], "variants": [{"id": 1, "option1": "Small"}]});
        let out = product(p.as_object().unwrap()).unwrap();
        assert_eq!(out.variants[0].options[0].name, "Option1");
    }

    #[test]
    fn variant_without_id_is_an_error() {
        let p = json!({"variants": [{"title": "x"}]});
        assert_eq!(
            product(p.as_object().unwrap()),
            Err(StandardizeError::MissingField("variants[].id"))
        );
    }
}
