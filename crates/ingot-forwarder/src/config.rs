//! `[forwarder]` configuration.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the forwarder runs. Every field has a default; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwarderConfig {
    /// Consumer group on the normalized topics (its committed offsets show the lag; the
    /// authoritative position is stored in RocksDB with the delivery jobs).
    pub group_id: String,
    /// Delay before each attempt, in seconds: the first entry is the delay before the first
    /// attempt, entry `n` the delay after the `n`-th failure. A delivery is given up after
    /// `len()` failed attempts. Default: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    pub retry_schedule_secs: Vec<f64>,
    /// Random spread applied to each retry delay, as a fraction (0.2 = ±20 %).
    pub retry_jitter: f64,
    /// Per-attempt timeout (connect + request + response), seconds.
    pub timeout_secs: f64,
    /// Longest `Retry-After` (429/503) honoured, seconds; longer values are capped.
    pub max_retry_after_secs: f64,
    /// An endpoint whose deliveries all failed for this long is disabled (default 5 days).
    pub disable_after_failing_secs: f64,
    /// After a secret rotation the previous secret keeps signing for this long (default 24 h).
    pub secret_overlap_secs: f64,
    /// Response bytes read from a receiver (the rest is discarded unread).
    pub max_response_bytes: usize,
    /// Deliveries in flight at once, over all endpoints (512: an attempt is a task and a
    /// socket; with 8 per endpoint, 64 endpoints each timing out at once are needed to
    /// hold back a healthy one).
    pub max_in_flight: usize,
    /// Deliveries in flight at once to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// Allow `http://` URLs and loopback, private, link-local and metadata addresses
    /// (tests and demos only: it lets API callers make ingot call internal services).
    pub allow_insecure_urls: bool,
    /// Finished deliveries are kept in the delivery log this long (seconds, default 7 days).
    pub delivery_log_retention_secs: f64,
    /// Endpoints that get their own `endpoint` label on metrics; the rest share `other`.
    pub metrics_endpoint_labels: usize,
    /// Most normalized records handled per consumer batch.
    pub max_batch: usize,
    /// On a clean stop, attempts under way may finish for this long (seconds); the rest
    /// are abandoned and stay pending.
    pub shutdown_grace_secs: f64,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            group_id: "ingot-forwarder".into(),
            retry_schedule_secs: vec![0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
            retry_jitter: 0.2,
            timeout_secs: 15.0,
            max_retry_after_secs: 86400.0,
            disable_after_failing_secs: 5.0 * 86400.0,
            secret_overlap_secs: 86400.0,
            max_response_bytes: 4096,
            max_in_flight: 512,
            max_in_flight_per_endpoint: 8,
            allow_insecure_urls: false,
            delivery_log_retention_secs: 7.0 * 86400.0,
            metrics_endpoint_labels: 20,
            max_batch: 500,
            shutdown_grace_secs: 5.0,
        }
    }
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl ForwarderConfig {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if self.retry_schedule_secs.is_empty() {
            errs.push("forwarder.retry_schedule_secs: needs at least one entry".to_string());
        }
        if self
            .retry_schedule_secs
            .iter()
            .any(|s| !s.is_finite() || *s < 0.0)
        {
            errs.push("forwarder.retry_schedule_secs: entries must be ≥ 0".to_string());
        }
        if !(0.0..1.0).contains(&self.retry_jitter) {
            errs.push("forwarder.retry_jitter: must be in [0, 1)".to_string());
        }
        for (name, v) in [
            ("timeout_secs", self.timeout_secs),
            ("max_retry_after_secs", self.max_retry_after_secs),
            (
                "disable_after_failing_secs",
                self.disable_after_failing_secs,
            ),
            ("secret_overlap_secs", self.secret_overlap_secs),
            (
                "delivery_log_retention_secs",
                self.delivery_log_retention_secs,
            ),
        ] {
            if !v.is_finite() || v <= 0.0 {
                errs.push(format!("forwarder.{name}: must be > 0"));
            }
        }
        if !self.shutdown_grace_secs.is_finite() || self.shutdown_grace_secs < 0.0 {
            errs.push("forwarder.shutdown_grace_secs: must be ≥ 0".to_string());
        }
        for (name, v) in [
            ("max_in_flight", self.max_in_flight),
            (
                "max_in_flight_per_endpoint",
                self.max_in_flight_per_endpoint,
            ),
            ("max_batch", self.max_batch),
            ("max_response_bytes", self.max_response_bytes),
        ] {
            if v == 0 {
                errs.push(format!("forwarder.{name}: must be > 0"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// The delay before attempt `n` (0-based), jittered; `None` once the schedule is over.
    pub(crate) fn delay_before(&self, attempt: usize) -> Option<Duration> {
        let base = *self.retry_schedule_secs.get(attempt)?;
        let spread = if base > 0.0 && self.retry_jitter > 0.0 {
            use rand::Rng;
            rand::thread_rng().gen_range(-self.retry_jitter..self.retry_jitter)
        } else {
            0.0
        };
        Some(secs(base * (1.0 + spread)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue_and_unknown_keys_are_errors() {
        let c: ForwarderConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ForwarderConfig::default());
        assert_eq!(c.retry_schedule_secs.len(), 8);
        assert_eq!(c.timeout_secs, 15.0);
        assert!(!c.allow_insecure_urls);
        assert!(c.validate().is_ok());
        assert!(serde_json::from_str::<ForwarderConfig>(r#"{"nope": 1}"#).is_err());
        let bad = ForwarderConfig {
            retry_schedule_secs: vec![],
            max_in_flight: 0,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().len(), 2);
    }

    #[test]
    fn delays_are_jittered_within_bounds_and_end_with_the_schedule() {
        let c = ForwarderConfig::default();
        assert_eq!(c.delay_before(0), Some(Duration::ZERO));
        for _ in 0..100 {
            let d = c.delay_before(2).unwrap().as_secs_f64();
            assert!((240.0..=360.0).contains(&d), "{d}");
        }
        assert_eq!(c.delay_before(8), None);
    }
}
