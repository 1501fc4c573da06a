//! Webhook subscriptions managed by the sync engine (issue 11 part 2): ensure, check and
//! heal, remove. Provider-neutral: everything goes through
//! [`ingot_connectors::subscriptions::WebhookSubscriptions`].
//!
//! - **Where health lives**: one [`WebhookHealth`] per connection, in the compacted
//!   `ingot.sync` topic under the key `<connection id>/webhooks` (beside the per-model
//!   checkpoints), served in `GET /v1/connections/{id}` and `.../sync-status`.
//! - **Last good cursor**: per topic, `last_healthy` is the last time ingot saw the
//!   subscription present and active. When a check finds one disabled/paused (and
//!   re-enables it) or missing (and re-creates it), deliveries may have been lost since
//!   then, so the topic's model gets a *gap* starting at that time; the next
//!   reconciliation of the model reads from `min(cursor, gap) − overlap` instead of
//!   `cursor − overlap`, and clears the gap once it succeeded. Gaps are persisted, so a
//!   restart between the heal and the reconciliation still fills them.
//! - Failures (the 3PA refuses, is down) are recorded per topic (`last_error`) and never
//!   fail a sync run: polling carries the connection meanwhile.

use chrono::{DateTime, Utc};
use ingot_connectors::subscriptions::{Subscription, WebhookSubscriptions};
use ingot_model::{format_utc, Model};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One topic's subscription as ingot last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicHealth {
    /// The 3PA's id of the subscription (`None`: none exists).
    pub id: Option<String>,
    /// Present and delivering at the last check.
    pub active: bool,
    /// Last check (RFC 3339 UTC).
    pub last_checked: Option<String>,
    /// Why the last check could not make it healthy (`None`: it is).
    pub last_error: Option<String>,
    /// Last time it was seen present and active (the start of a gap when it is not).
    pub last_healthy: Option<String>,
    /// Last time ingot re-enabled or re-created it.
    pub last_healed: Option<String>,
}

/// The webhook subscriptions of one connection, persisted in `ingot.sync` under
/// `<connection id>/webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookHealth {
    /// Where the subscriptions deliver.
    pub callback_url: Option<String>,
    pub last_checked: Option<String>,
    /// Why the last check failed as a whole (listing refused, 3PA down).
    pub last_error: Option<String>,
    /// Per topic, in the 3PA's spelling.
    pub topics: BTreeMap<String, TopicHealth>,
    /// Models (resource names) whose next reconciliation must start at the given time
    /// (`None`: at the cursor, but now): gaps found by a heal, not yet filled.
    #[serde(default)]
    pub gaps: BTreeMap<String, Option<String>>,
    /// Subscriptions re-enabled or re-created so far.
    #[serde(default)]
    pub heals: u64,
}

impl WebhookHealth {
    /// The gap of `model`, if one is pending: `Some(None)` = reconcile from the cursor.
    pub fn gap(&self, model: Model) -> Option<Option<DateTime<Utc>>> {
        self.gaps
            .get(model.resource())
            .map(|g| g.as_deref().and_then(parse))
    }

    fn add_gap(&mut self, model: Model, from: Option<DateTime<Utc>>) {
        let key = model.resource().to_string();
        let merged = match (
            self.gaps.get(&key).map(|g| g.as_deref().and_then(parse)),
            from,
        ) {
            (Some(Some(a)), Some(b)) => Some(a.min(b)),
            (Some(Some(a)), None) => Some(a),
            (_, b) => b,
        };
        self.gaps.insert(key, merged.map(|t| format_utc(&t)));
    }

    /// Whether every topic is present and active.
    pub fn healthy(&self) -> bool {
        !self.topics.is_empty() && self.topics.values().all(|t| t.active)
    }
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    ingot_model::parse_time(s, true).ok()
}

/// Compares what the 3PA holds with one subscription per topic calling back
/// `callback`, creates missing ones, re-enables inactive ones, removes ingot's duplicates,
/// and returns the new health and the models that got a gap (see the module docs).
/// Creating a subscription for a topic never seen before (the connection's first check)
/// is not a heal: the historical sync covers what came before.
pub(crate) async fn check(
    subs: &dyn WebhookSubscriptions,
    callback: &str,
    secret: Option<&str>,
    mut health: WebhookHealth,
    now: DateTime<Utc>,
) -> (WebhookHealth, Vec<Model>) {
    let at = format_utc(&now);
    health.callback_url = Some(callback.to_string());
    health.last_checked = Some(at.clone());
    let listed = match subs.list().await {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("listing the 3PA's webhook subscriptions failed: {e}");
            for t in subs.topics() {
                let th = health.topics.entry(t).or_default();
                th.last_checked = Some(at.clone());
                th.last_error = Some(msg.clone());
            }
            health.last_error = Some(msg);
            return (health, Vec::new());
        }
    };
    health.last_error = None;
    let mine: Vec<&Subscription> = listed
        .iter()
        .filter(|s| s.callback_url == callback)
        .collect();
    let mut healed = Vec::new();
    for topic in subs.topics() {
        let known = health.topics.contains_key(&topic);
        let mut th = health.topics.remove(&topic).unwrap_or_default();
        th.last_checked = Some(at.clone());
        let candidates: Vec<&Subscription> =
            mine.iter().copied().filter(|s| s.topic == topic).collect();
        let keep = candidates
            .iter()
            .copied()
            .find(|s| s.active)
            .or(candidates.first().copied());
        if let Some(k) = keep {
            for extra in candidates.iter().filter(|s| s.id != k.id) {
                if let Err(e) = subs.delete(&extra.id).await {
                    tracing::warn!(component = "sync", %topic, id = %extra.id, error = %e, "could not remove a duplicate subscription");
                }
            }
        }
        let result = match keep {
            Some(s) if s.active => Ok((s.clone(), false)),
            Some(s) => subs.enable(&s.id).await.map(|n| (n, true)),
            None => subs
                .create(&topic, callback, secret)
                .await
                .map(|n| (n, known)),
        };
        match result {
            Ok((s, was_healed)) => {
                if was_healed {
                    if let Some(model) = subs.model_of(&topic) {
                        health.add_gap(model, th.last_healthy.as_deref().and_then(parse));
                        if !healed.contains(&model) {
                            healed.push(model);
                        }
                    }
                    th.last_healed = Some(at.clone());
                    health.heals += 1;
                    tracing::info!(component = "sync", %topic, id = %s.id, since = ?th.last_healthy, "webhook subscription healed");
                }
                th.active = s.active;
                th.id = Some(s.id);
                if s.active {
                    th.last_healthy = Some(at.clone());
                    th.last_error = None;
                } else {
                    th.last_error = Some("the 3PA kept the subscription inactive".into());
                }
            }
            Err(e) => {
                th.id = keep.map(|s| s.id.clone());
                th.active = false;
                th.last_error = Some(e.to_string());
                tracing::warn!(component = "sync", %topic, error = %e, "webhook subscription not healthy");
            }
        }
        health.topics.insert(topic, th);
    }
    (health, healed)
}

/// Removes every subscription calling back `callback` (ingot's own for this connection;
/// others are left alone). Returns how many were removed.
pub(crate) async fn remove_all(
    subs: &dyn WebhookSubscriptions,
    callback: &str,
) -> Result<usize, String> {
    let listed = subs.list().await.map_err(|e| e.to_string())?;
    let mut removed = 0;
    let mut errors = Vec::new();
    for s in listed.iter().filter(|s| s.callback_url == callback) {
        match subs.delete(&s.id).await {
            Ok(()) => removed += 1,
            Err(e) => errors.push(format!("{} ({}): {e}", s.topic, s.id)),
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_connectors::ConnectorError;
    use std::sync::Mutex;

    /// An in-memory 3PA with two topics; `refuse` makes every call a 403.
    #[derive(Default)]
    struct Fake {
        subs: Mutex<Vec<Subscription>>,
        next: Mutex<u32>,
        refuse: Mutex<bool>,
    }

    impl Fake {
        fn refused(&self) -> Result<(), ConnectorError> {
            if *self.refuse.lock().unwrap() {
                return Err(ConnectorError::Rejected {
                    status: 403,
                    message: "no".into(),
                });
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl WebhookSubscriptions for Fake {
        fn topics(&self) -> Vec<String> {
            vec!["order.updated".into(), "customer.updated".into()]
        }
        fn model_of(&self, topic: &str) -> Option<Model> {
            Some(if topic.starts_with("order") {
                Model::Order
            } else {
                Model::Customer
            })
        }
        fn secret_per_subscription(&self) -> bool {
            true
        }
        async fn list(&self) -> Result<Vec<Subscription>, ConnectorError> {
            self.refused()?;
            Ok(self.subs.lock().unwrap().clone())
        }
        async fn create(
            &self,
            topic: &str,
            callback_url: &str,
            _: Option<&str>,
        ) -> Result<Subscription, ConnectorError> {
            self.refused()?;
            let mut n = self.next.lock().unwrap();
            *n += 1;
            let s = Subscription {
                id: n.to_string(),
                topic: topic.into(),
                callback_url: callback_url.into(),
                active: true,
            };
            self.subs.lock().unwrap().push(s.clone());
            Ok(s)
        }
        async fn enable(&self, id: &str) -> Result<Subscription, ConnectorError> {
            self.refused()?;
            let mut subs = self.subs.lock().unwrap();
            let s = subs.iter_mut().find(|s| s.id == id).unwrap();
            s.active = true;
            Ok(s.clone())
        }
        async fn delete(&self, id: &str) -> Result<(), ConnectorError> {
            self.refused()?;
            self.subs.lock().unwrap().retain(|s| s.id != id);
            Ok(())
        }
    }

    #[tokio::test]
    async fn heals_open_gaps_from_the_last_healthy_time_and_refusals_are_recorded() {
        let t = |s: &str| parse(s).unwrap();
        let fake = Fake::default();
        let cb = "https://i.example/webhooks/woocommerce/w";
        // a foreign subscription is left alone
        fake.subs.lock().unwrap().push(Subscription {
            id: "99".into(),
            topic: "order.updated".into(),
            callback_url: "https://other.example".into(),
            active: false,
        });
        let t0 = t("2026-01-01T00:00:00Z");
        let (h, healed) = check(&fake, cb, Some("s"), WebhookHealth::default(), t0).await;
        assert!(healed.is_empty(), "first creation is no heal");
        assert!(h.healthy() && h.gaps.is_empty() && h.heals == 0, "{h:?}");
        // the 3PA disables one, another disappears
        fake.subs.lock().unwrap().iter_mut().for_each(|s| {
            if s.topic == "order.updated" && s.id != "99" {
                s.active = false
            }
        });
        fake.subs
            .lock()
            .unwrap()
            .retain(|s| s.topic != "customer.updated");
        // a refused check changes nothing but says why, and keeps the last healthy time
        *fake.refuse.lock().unwrap() = true;
        let t1 = t("2026-01-01T01:00:00Z");
        let (h, healed) = check(&fake, cb, Some("s"), h, t1).await;
        assert!(healed.is_empty());
        assert!(h.last_error.as_deref().unwrap().contains("403"), "{h:?}");
        assert_eq!(
            h.topics["order.updated"].last_healthy.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        *fake.refuse.lock().unwrap() = false;
        let t2 = t("2026-01-01T02:00:00Z");
        let (h, mut healed) = check(&fake, cb, Some("s"), h, t2).await;
        healed.sort();
        let mut want = vec![Model::Order, Model::Customer];
        want.sort();
        assert_eq!(healed, want);
        // both gaps start when the subscriptions were last known healthy (t0), not t1
        assert_eq!(h.gap(Model::Order), Some(Some(t0)));
        assert_eq!(h.gap(Model::Customer), Some(Some(t0)));
        assert!(
            h.healthy() && h.heals == 2 && h.last_error.is_none(),
            "{h:?}"
        );
        assert!(fake
            .subs
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.id == "99" && !s.active));
        // removal takes only ingot's
        assert_eq!(remove_all(&fake, cb).await, Ok(2));
        assert_eq!(fake.subs.lock().unwrap().len(), 1);
    }

    #[test]
    fn gaps_keep_the_earliest_known_time() {
        let t = |s: &str| parse(s).unwrap();
        let mut h = WebhookHealth::default();
        h.add_gap(Model::Order, None);
        assert_eq!(h.gap(Model::Order), Some(None));
        h.add_gap(Model::Order, Some(t("2026-01-02T00:00:00Z")));
        h.add_gap(Model::Order, Some(t("2026-01-03T00:00:00Z")));
        h.add_gap(Model::Order, None);
        assert_eq!(h.gap(Model::Order), Some(Some(t("2026-01-02T00:00:00Z"))));
        assert_eq!(h.gap(Model::Customer), None);
    }
}
