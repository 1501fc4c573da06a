//! Fault injection and request counters, shared by the WooCommerce and NetSuite
//! simulators (re-exported as `ingot_testkit::netsuite::Faults` too).
//!
//! Every knob is settable at runtime through a cheap clone of [`Faults`]; the simulator
//! consults it on each request, in this order:
//!
//! 1. the request is counted (total and per endpoint);
//! 2. `hang_next`: the request never answers (the client's timeout must fire);
//! 3. `rate_limit_next`: `429` with `Retry-After`;
//! 4. `fail_next`: a 5xx;
//! 5. (after authentication and parameter checks) `fail_page`: the page covering a given
//!    record index fails with `503` K times, then succeeds; `fail_nth_page`: the n-th
//!    page served on an endpoint fails K times, then succeeds;
//! 6. the page hook runs (tests mutate the data set here, "while a sync is paging");
//! 7. the configured delay, then the response.
//!
//! Two switches change *what* a listing returns rather than whether it answers:
//! - [`Faults::shuffle_ties`]: records that share their sort value (the same modified
//!   second or minute) come back in an order other than by id, and a different one on
//!   every request, as MySQL returns them through a secondary index
//!   (`ORDER BY post_modified` has no tie-breaker in WordPress). Only a unique order
//!   (`orderby=id`, `ORDER BY id`) is unaffected.
//! - [`Faults::never_advance`]: the listing ignores its continuation (`offset`, `page`, the
//!   lower date bound) and serves the first page again and again, a server that never
//!   advances.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the simulator was told to do with the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// Serve normally.
    None,
    /// Answer `429 Too Many Requests` with this `Retry-After` header value.
    RateLimited { retry_after: String },
    /// Answer this 5xx status.
    ServerError(u16),
    /// Never answer.
    Hang,
}

/// Request counters of a simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests received (all of them, including failed and rejected ones).
    pub requests: u64,
    /// `429` answers.
    pub rate_limited: u64,
    /// Injected 5xx answers (`fail_next` and `fail_page`).
    pub server_errors: u64,
    /// Hung requests.
    pub hung: u64,
    /// Requests per endpoint (`GET /wp-json/wc/v3/orders`, `suiteql transaction`, ...).
    pub per_endpoint: BTreeMap<String, u64>,
}

/// One page about to be served, as the page hook sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The endpoint label (same as in [`Counters::per_endpoint`]).
    pub endpoint: String,
    /// Index (0-based) of the first record of the page in the full result list.
    pub start: usize,
    /// Page size requested.
    pub limit: usize,
}

/// The position of record `id` among its ties under `salt` (see [`Faults::tie_salt`]):
/// a bijective mix of the id, so the order is total and unrelated to the id order.
pub fn tie_rank(id: u64, salt: u64) -> u64 {
    let mut z = (id ^ salt).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z ^= z >> 32;
    z = z.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z ^ (z >> 32)
}

/// A hook called before each page is computed (outside any simulator lock).
pub type PageHook = Arc<dyn Fn(&PageRequest) + Send + Sync>;

#[derive(Debug, Clone)]
struct PageFailure {
    endpoint: String,
    index: usize,
    remaining: u32,
}

#[derive(Debug, Clone)]
struct NthFailure {
    endpoint: String,
    n: u64,
    remaining: u32,
}

#[derive(Default)]
struct State {
    nth_failures: Vec<NthFailure>,
    /// Pages served successfully, per endpoint.
    served: BTreeMap<String, u64>,
    next_429: u32,
    retry_after: Duration,
    next_5xx: u32,
    status_5xx: u16,
    hang_next: u32,
    delay: Duration,
    page_failures: Vec<PageFailure>,
    counters: Counters,
    hook: Option<PageHook>,
    /// `Some(n)`: ties are shuffled; `n` counts the listings served so far (the salt).
    shuffle_ties: Option<u64>,
    never_advance: bool,
}

/// The fault-injection switchboard of one simulator (a cheap, shared handle).
#[derive(Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("counters", &self.counters())
            .finish()
    }
}

/// `Retry-After` value: delta-seconds; whole seconds as an integer (RFC 9110), a
/// sub-second value as a decimal (a simulator liberty that keeps tests fast).
fn retry_after_value(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
    }
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` requests get `429` with `Retry-After: retry_after`.
    pub fn rate_limit_next(&self, n: u32, retry_after: Duration) {
        let mut s = self.lock();
        s.next_429 = n;
        s.retry_after = retry_after;
    }

    /// The next `n` requests get `status` (a 5xx).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.next_5xx = n;
        s.status_5xx = status;
    }

    /// The next `n` requests never get an answer.
    pub fn hang_next(&self, n: u32) {
        self.lock().hang_next = n;
    }

    /// Every response is delayed by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// The page of `endpoint` that covers record index `index` (0-based, in the full
    /// result list) fails with `503` the next `times` times it is requested.
    pub fn fail_page(&self, endpoint: &str, index: usize, times: u32) {
        self.lock().page_failures.push(PageFailure {
            endpoint: endpoint.to_string(),
            index,
            remaining: times,
        });
    }

    /// The `n`-th page (0-based) served on `endpoint` fails with `503` the next `times`
    /// times it is requested (whatever its offset), then succeeds.
    pub fn fail_nth_page(&self, endpoint: &str, n: u64, times: u32) {
        self.lock().nth_failures.push(NthFailure {
            endpoint: endpoint.to_string(),
            n,
            remaining: times,
        });
    }

    /// Installs a hook called before each page is computed.
    pub fn set_page_hook(&self, hook: impl Fn(&PageRequest) + Send + Sync + 'static) {
        self.lock().hook = Some(Arc::new(hook));
    }

    /// Ties (records with equal sort values) come back in a pseudo-random order that is not
    /// by id and changes with every request (see the module docs).
    pub fn shuffle_ties(&self, yes: bool) {
        self.lock().shuffle_ties = yes.then_some(0);
    }

    /// Server side: the salt of this request's tie order, `None` when ties are by id.
    /// Each call is a new request (a new order).
    pub fn tie_salt(&self) -> Option<u64> {
        let mut s = self.lock();
        let n = s.shuffle_ties.as_mut()?;
        *n += 1;
        // splitmix64 of the request number: unrelated orders from one request to the next
        let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Some(z ^ (z >> 31))
    }

    /// The listing ignores `offset`/`page` and the lower date bound: every request gets
    /// the first page of the unfiltered (by lower bound) list.
    pub fn never_advance(&self, yes: bool) {
        self.lock().never_advance = yes;
    }

    /// Server side: whether [`Faults::never_advance`] is on.
    pub fn is_stuck(&self) -> bool {
        self.lock().never_advance
    }

    /// Removes the page hook.
    pub fn clear_page_hook(&self) {
        self.lock().hook = None;
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Clears every fault, the hook and the counters.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    /// Server side: counts a request and decides its fate (steps 1–4), and the delay.
    pub fn on_request(&self, endpoint: &str) -> (Injected, Duration) {
        let mut s = self.lock();
        s.counters.requests += 1;
        *s.counters
            .per_endpoint
            .entry(endpoint.to_string())
            .or_default() += 1;
        let delay = s.delay;
        if s.hang_next > 0 {
            s.hang_next -= 1;
            s.counters.hung += 1;
            return (Injected::Hang, delay);
        }
        if s.next_429 > 0 {
            s.next_429 -= 1;
            s.counters.rate_limited += 1;
            return (
                Injected::RateLimited {
                    retry_after: retry_after_value(s.retry_after),
                },
                delay,
            );
        }
        if s.next_5xx > 0 {
            s.next_5xx -= 1;
            s.counters.server_errors += 1;
            return (Injected::ServerError(s.status_5xx), delay);
        }
        (Injected::None, delay)
    }

    /// Server side: whether the page `[start, start + limit)` of `endpoint` must fail
    /// (step 5); otherwise runs the page hook (step 6). Returns the status to answer.
    pub fn on_page(&self, endpoint: &str, start: usize, limit: usize) -> Option<u16> {
        let hook = {
            let mut s = self.lock();
            let mut failed = false;
            for f in s.page_failures.iter_mut() {
                if f.remaining > 0
                    && f.endpoint == endpoint
                    && f.index >= start
                    && f.index < start + limit.max(1)
                {
                    f.remaining -= 1;
                    failed = true;
                    break;
                }
            }
            let served = s.served.get(endpoint).copied().unwrap_or(0);
            for f in s.nth_failures.iter_mut() {
                if !failed && f.remaining > 0 && f.endpoint == endpoint && f.n == served {
                    f.remaining -= 1;
                    failed = true;
                }
            }
            if failed {
                s.counters.server_errors += 1;
                return Some(503);
            }
            *s.served.entry(endpoint.to_string()).or_default() += 1;
            s.hook.clone()
        };
        if let Some(h) = hook {
            h(&PageRequest {
                endpoint: endpoint.to_string(),
                start,
                limit,
            });
        }
        None
    }
}
