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

/// `Retry-After` as a duration: delta-seconds, or an HTTP date (RFC 7231 §7.1.3).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
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
        let resp = match result {
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
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
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
            // honour Retry-After when the 3PA gives one
            Attempt::Retry { wait: Some(w), .. } => Some((*w).max(dur.unwrap_or_default())),
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
}
