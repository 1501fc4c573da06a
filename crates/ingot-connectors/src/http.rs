//! The HTTP layer every connector uses: retries with exponential backoff (`backon`) on
//! 429, 5xx, timeouts and connection errors, honouring `Retry-After` (seconds or HTTP
//! date), within a per-request attempt budget.

use crate::ConnectorError;
use backon::{ExponentialBuilder, Retryable};
use std::time::Duration;

/// Retry policy of one request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts including the first.
    pub max_attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The default policy with the connection's attempt budget (`max_attempts`, at least 1).
    pub fn from_config(config: &crate::ConnectorConfig) -> Self {
        let mut policy = RetryPolicy::default();
        if let Some(n) = config.max_attempts {
            policy.max_attempts = n.max(1);
        }
        policy
    }
}

/// A successful response: status, headers, body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

pub use reqwest::Client;

/// The largest response body a 3PA call reads (a page of the largest size any connector
/// asks for is a few MB). A connection's `base_url` is the caller's to choose, so the
/// other end may be anyone's server.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Reads a response body of at most `limit` bytes; `Ok(None)` past it.
async fn read_body(resp: &mut reqwest::Response, limit: usize) -> reqwest::Result<Option<Vec<u8>>> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The longest wait a `Retry-After` can impose on one request: a 3PA asking for more
/// (`1e20`, `inf`, a date next year) is waited on for this long, then retried.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as a duration: delta-seconds, or an HTTP date (RFC 7231 §7.1.3), capped
/// at [`MAX_RETRY_AFTER`]. A value that is neither (negative, NaN, garbage) is ignored
/// (`None`: the backoff's own delay applies); a date in the past is zero.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        // `try_from` fails only on overflow (inf, 1e20): that is "very long", so the cap
        return Some(
            Duration::try_from_secs_f64(secs)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER),
        );
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

#[derive(Debug)]
enum Attempt {
    Retry {
        error: ConnectorError,
        wait: Option<Duration>,
    },
    Fatal(ConnectorError),
}

/// Sends the request built by `build` (called once per attempt) until it succeeds (2xx),
/// fails permanently (4xx other than 429), or the budget is spent.
pub async fn send<F>(policy: &RetryPolicy, build: F) -> Result<Response, ConnectorError>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let attempt = || async {
        let result = build().timeout(policy.timeout).send().await;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                return Err(Attempt::Retry {
                    error: ConnectorError::Unavailable(e.to_string()),
                    wait: None,
                });
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match read_body(&mut resp, MAX_RESPONSE_BYTES).await {
            Ok(Some(b)) => b,
            // asking again would read it again
            Ok(None) => {
                return Err(Attempt::Fatal(ConnectorError::Malformed(format!(
                    "HTTP {status}: a response body over {MAX_RESPONSE_BYTES} bytes"
                ))))
            }
            Err(e) => {
                return Err(Attempt::Retry {
                    error: ConnectorError::Unavailable(e.to_string()),
                    wait: None,
                })
            }
        };
        match status {
            200..=299 => Ok(Response {
                status,
                headers,
                body,
            }),
            429 => {
                let wait = retry_after(&headers);
                Err(Attempt::Retry {
                    error: ConnectorError::RateLimited { retry_after: wait },
                    wait,
                })
            }
            500..=599 => Err(Attempt::Retry {
                error: ConnectorError::Unavailable(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
                wait: retry_after(&headers),
            }),
            _ => Err(Attempt::Fatal(ConnectorError::Rejected {
                status,
                message: String::from_utf8_lossy(&body).chars().take(500).collect(),
            })),
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
        .with_jitter();
    let result = attempt
        .retry(backoff)
        .when(|e: &Attempt| matches!(e, Attempt::Retry { .. }))
        .adjust(|e: &Attempt, dur| match e {
            // honour Retry-After when the 3PA gives one, within the attempt budget
            // (`None`: the budget is spent, stop)
            Attempt::Retry { wait: Some(w), .. } => dur.map(|d| d.max(*w)),
            _ => dur,
        })
        .notify(|e: &Attempt, dur| tracing::debug!(component = "connector", error = ?e, ?dur, "retrying"))
        .await;
    result.map_err(|e| match e {
        Attempt::Retry { error, .. } | Attempt::Fatal(error) => error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_from_a_hostile_3pa_never_panics_and_is_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        for (value, expected) in [
            ("inf", Some(MAX_RETRY_AFTER)),
            ("+Infinity", Some(MAX_RETRY_AFTER)),
            ("1e20", Some(MAX_RETRY_AFTER)),
            ("18446744073709551616", Some(MAX_RETRY_AFTER)),
            ("7200", Some(MAX_RETRY_AFTER)),
            ("3599", Some(Duration::from_secs(3599))),
            ("NaN", None),
            ("-1", None),
            ("-inf", None),
            ("soon", None),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
        ] {
            h.insert("retry-after", value.parse().unwrap());
            assert_eq!(retry_after(&h), expected, "Retry-After: {value}");
        }
    }

    #[tokio::test]
    async fn a_429_with_an_infinite_retry_after_is_an_error_not_a_panic() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // a 3PA that always answers 429 with `Retry-After: inf`
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: inf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        // one attempt: the wait is computed (where it panicked) but the budget is spent, so
        // it is not slept (it was: a Retry-After outlived any budget)
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let client = Client::new();
        let url = format!("http://{addr}/x");
        let err = send(&policy, || client.get(&url)).await.unwrap_err();
        match err {
            ConnectorError::RateLimited { retry_after } => {
                assert_eq!(retry_after, Some(MAX_RETRY_AFTER))
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_body_without_end_is_read_up_to_the_limit_and_not_asked_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // a server behind a caller-chosen base_url: 200, then bytes until the client
        // goes away (no content-length, the body ends at close); or a length too large
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if buf[..n].starts_with(b"GET /declared") {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n{")
                            .await;
                        return;
                    }
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                        .await;
                    let chunk = vec![b' '; 1 << 20];
                    while sock.write_all(&chunk).await.is_ok() {}
                });
            }
        });
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let client = Client::new();
        let want = format!(
            "unreadable 3PA response: HTTP 200: a response body over {MAX_RESPONSE_BYTES} bytes"
        );
        for path in ["endless", "declared"] {
            let before = requests.load(Ordering::SeqCst);
            let url = format!("http://{addr}/{path}");
            let err = send(&policy, || client.get(&url)).await.unwrap_err();
            assert_eq!(err.to_string(), want, "{path}");
            assert_eq!(
                requests.load(Ordering::SeqCst) - before,
                1,
                "{path}: not retried"
            );
        }
    }
}
