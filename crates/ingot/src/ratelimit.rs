//! Per-API-key rate limits on every `/v1` route (query API, connections, replays,
//! webhook endpoints): one axum middleware over the merged router, so no route can
//! forget it.
//!
//! The limit is `[http] rate_limit_per_minute` requests per minute per configured key
//! (0: off), a GCRA bucket from the `governor` crate holding a minute's worth of burst,
//! keyed by the SHA-256 digest of the bearer key (the key itself is kept nowhere). Over
//! the limit: `429` with `Retry-After` (whole seconds, at least 1) and the error envelope
//! `{"error": …}` (`ingot_http::ApiError::TooManyRequests`). Requests without a configured
//! key are not counted here (the routes answer them `401`), so unknown keys cannot grow the
//! limiter's table.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ingot_http::ApiError;
use ingot_model::auth::Auth;
use std::num::NonZeroU32;
use std::sync::Arc;

/// The limiter the middleware consults.
#[derive(Clone)]
pub struct KeyLimits {
    auth: Auth,
    limiter: Arc<DefaultKeyedRateLimiter<[u8; 32]>>,
    clock: DefaultClock,
}

impl KeyLimits {
    /// `None` when `per_minute` is 0 (limits off).
    pub fn new(auth: Auth, per_minute: u32) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        Some(KeyLimits {
            auth,
            limiter: Arc::new(RateLimiter::dashmap(quota)),
            clock: DefaultClock::default(),
        })
    }

    /// `Err(seconds to wait)` when the key behind `authorization` is over its limit.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), u64> {
        let Some(digest) = self.auth.known_key_digest(authorization) else {
            return Ok(());
        };
        self.limiter.check_key(&digest).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // whole seconds, rounded up, never 0 (a client retrying at once would fail)
            (wait.as_millis().div_ceil(1000) as u64).max(1)
        })
    }
}

/// The middleware: counts `/v1` requests per key, answers 429 over the limit.
pub async fn limit(State(limits): State<KeyLimits>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(secs) = limits.check(authorization) {
            metrics::counter!("ingot_api_rate_limited_total").increment(1);
            return ApiError::TooManyRequests {
                retry_after_secs: secs,
            }
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_model::auth::Tenant;

    fn auth() -> Auth {
        Auth::new(&[Tenant {
            id: "acme".into(),
            api_keys: vec!["k1".into(), "k2".into()],
            connections: None,
        }])
    }

    #[test]
    fn n_pass_then_a_wait_of_at_least_a_second_and_keys_are_apart() {
        let l = KeyLimits::new(auth(), 3).unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(Some("Bearer k1")), Ok(()));
        }
        let wait = l.check(Some("Bearer k1")).unwrap_err();
        // one request per 20 s replenishes
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(l.check(Some("Bearer k2")), Ok(()));
        // unknown keys and no key are the routes' business (401), never counted
        for _ in 0..10 {
            assert_eq!(l.check(Some("Bearer nope")), Ok(()));
            assert_eq!(l.check(None), Ok(()));
        }
    }

    #[test]
    fn zero_is_off() {
        assert!(KeyLimits::new(auth(), 0).is_none());
    }
}
