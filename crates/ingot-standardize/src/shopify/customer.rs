//! Shopify customer (REST Admin `Customer` resource, `customers/*` webhooks) → [`Customer`].

use super::{tree_address, Obj};
use crate::{common, StandardizeError};
use ingot_model::Customer;
use serde_json::Value;

/// Customer `status` from Shopify's `state` (REST Customer resource): `enabled` →
/// `active`, `disabled` → `disabled`, `invited` → `invited`, `declined` (the invitation
/// was declined) → `disabled`; missing, `null` or anything else → `unknown`.
pub fn customer_status(state: Option<&str>) -> &'static str {
    match state {
        Some("enabled") => "active",
        Some("disabled") | Some("declined") => "disabled",
        Some("invited") => "invited",
        _ => "unknown",
    }
}

/// Maps a customer object. `accepts_marketing` is `email_marketing_consent.state ==
/// "subscribed"` when that object has a state (API 2022-04+), else the legacy
/// `accepts_marketing` boolean, else `None` (the 2026-04 webhook sample has neither,
/// QUIRKS Q-S10). `company` is `default_address.company`; `total_spent` is in the
/// customer's `currency`.
pub(super) fn customer(c: &Obj) -> Result<Customer, StandardizeError> {
    let currency = common::text(c.get("currency"));
    let consent = c
        .get("email_marketing_consent")
        .and_then(|m| m.get("state"))
        .and_then(Value::as_str);
    let accepts_marketing = match consent {
        Some(state) => Some(state == "subscribed"),
        None => common::boolean(c.get("accepts_marketing")),
    };
    let default_address = tree_address(c.get("default_address"));
    Ok(Customer {
        email: common::text(c.get("email")),
        first_name: common::text(c.get("first_name")),
        last_name: common::text(c.get("last_name")),
        company: default_address.as_ref().and_then(|a| a.company.clone()),
        phone: common::text(c.get("phone")),
        status: customer_status(c.get("state").and_then(Value::as_str)).to_string(),
        accepts_marketing,
        orders_count: common::int(c.get("orders_count")),
        total_spent: common::money_field(c.get("total_spent"), "total_spent", currency.as_deref())?,
        currency,
        tags: common::tags(c.get("tags")),
        note: common::text(c.get("note")),
        default_address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn customer_status_table() {
        assert_eq!(customer_status(Some("enabled")), "active");
        assert_eq!(customer_status(Some("disabled")), "disabled");
        assert_eq!(customer_status(Some("invited")), "invited");
        assert_eq!(customer_status(Some("declined")), "disabled");
        assert_eq!(customer_status(Some("ENABLED")), "unknown");
        assert_eq!(customer_status(None), "unknown");
    }

    #[test]
    fn marketing_consent_wins_over_the_legacy_flag() {
        let c = |v: Value| customer(v.as_object().unwrap()).unwrap().accepts_marketing;
        assert_eq!(
            c(json!({"email_marketing_consent": {"state": "subscribed"}})),
            Some(true)
        );
        assert_eq!(
            c(
                json!({"email_marketing_consent": {"state": "not_subscribed"}, "accepts_marketing": true})
            ),
            Some(false)
        );
        assert_eq!(
            c(json!({"email_marketing_consent": null, "accepts_marketing": true})),
            Some(true)
        );
        assert_eq!(c(json!({})), None);
    }
}
