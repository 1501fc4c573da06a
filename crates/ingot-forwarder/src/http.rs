//! Sending one signed request, and the SSRF guard.
//!
//! The guard: endpoint URLs must be `https` and every address their host resolves to must be
//! public (no loopback, private, shared, link-local — which holds the cloud metadata
//! address 169.254.169.254 —, unique-local, multicast, documentation or reserved ranges).
//! It is checked when an endpoint is created or changed and again on every request by the
//! client's DNS resolver (so a name that later resolves to a private address is refused
//! too). Redirects are never followed, proxies from the environment are ignored, and at
//! most `max_response_bytes` of a response are read. `allow_insecure_urls` lifts the guard.

use crate::sign::signature_header;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Is this address one a webhook may be sent to (a public unicast address)?
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return is_public_v4(v4);
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata)
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(o[0] == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, the metadata address
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // documentation
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
        || ip.is_multicast()
        || o[0] >= 240) // reserved and broadcast
}

/// Checks an endpoint URL without resolving it. Returns the parsed URL.
pub fn check_url(url: &str, allow_insecure: bool) -> Result<Url, String> {
    let u = Url::parse(url).map_err(|e| format!("url: not a URL ({e})"))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err("url: must be https".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("url: must not carry credentials".into());
    }
    let host = u.host().ok_or("url: needs a host")?;
    if allow_insecure {
        return Ok(u);
    }
    if u.scheme() != "https" {
        return Err("url: must be https".into());
    }
    match host {
        url::Host::Ipv4(ip) if !is_public(IpAddr::V4(ip)) => {
            Err("url: loopback, private, link-local and metadata addresses are not allowed".into())
        }
        url::Host::Ipv6(ip) if !is_public(IpAddr::V6(ip)) => {
            Err("url: loopback, private, link-local and metadata addresses are not allowed".into())
        }
        url::Host::Domain(d)
            if d.eq_ignore_ascii_case("localhost")
                || d.to_ascii_lowercase().ends_with(".localhost") =>
        {
            Err("url: loopback addresses are not allowed".into())
        }
        _ => Ok(u),
    }
}

/// [`check_url`], then resolves the host and refuses it if any address is not public.
pub async fn check_url_resolving(url: &str, allow_insecure: bool) -> Result<Url, String> {
    let u = check_url(url, allow_insecure)?;
    if allow_insecure {
        return Ok(u);
    }
    if let Some(url::Host::Domain(d)) = u.host() {
        let port = u.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((d, port))
            .await
            .map_err(|e| format!("url: host does not resolve ({e})"))?
            .collect();
        if addrs.is_empty() {
            return Err("url: host does not resolve".into());
        }
        if addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(
                "url: host resolves to a loopback, private, link-local or metadata address".into(),
            );
        }
    }
    Ok(u)
}

/// A DNS resolver that drops non-public addresses (and fails when none is left).
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host}: no public address (SSRF guard)").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
    /// `Retry-After` of a 429 or 503, in seconds form or as an HTTP date.
    pub retry_after: Option<Duration>,
    /// The first bytes of the body.
    pub response: Option<String>,
}

impl AttemptResult {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The HTTP side of deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_insecure: bool,
    max_response_bytes: usize,
}

const KEPT_RESPONSE_BYTES: usize = 256;

impl Sender {
    pub fn new(timeout: Duration, max_response_bytes: usize, allow_insecure: bool) -> Self {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("ingot-webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_insecure {
            b = b.dns_resolver(Arc::new(GuardedResolver));
        }
        Sender {
            client: b.build().expect("http client builds"),
            allow_insecure,
            max_response_bytes,
        }
    }

    /// Sends `body` to `url` signed with every secret. Never fails: errors are in the result.
    pub async fn send(
        &self,
        url: &str,
        msg_id: &str,
        body: &[u8],
        secrets: &[&str],
    ) -> AttemptResult {
        let started = Instant::now();
        let fail = |e: String| AttemptResult {
            status: None,
            latency: started.elapsed(),
            error: Some(e),
            retry_after: None,
            response: None,
        };
        if let Err(e) = check_url(url, self.allow_insecure) {
            return fail(e);
        }
        let ts = chrono::Utc::now().timestamp();
        let signature = match signature_header(secrets, msg_id, ts, body) {
            Ok(s) => s,
            Err(e) => return fail(e.to_string()),
        };
        let res = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        let mut res = match res {
            Ok(r) => r,
            Err(e) => return fail(describe(&e)),
        };
        let status = res.status().as_u16();
        let retry_after = if status == 429 || status == 503 {
            res.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after)
        } else {
            None
        };
        // read at most max_response_bytes, then drop the connection
        let mut kept = Vec::new();
        let mut read = 0usize;
        let mut error = None;
        while read < self.max_response_bytes {
            match res.chunk().await {
                Ok(Some(c)) => {
                    read += c.len();
                    let room = KEPT_RESPONSE_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&c[..c.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(describe(&e));
                    break;
                }
            }
        }
        let success = (200..300).contains(&status);
        AttemptResult {
            status: Some(status),
            latency: started.elapsed(),
            // a 2xx counts even if its body broke off
            error: if success {
                None
            } else {
                error.or_else(|| Some(format!("HTTP {status}")))
            },
            retry_after,
            response: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        let mut msg = format!("connect: {e}");
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg = format!("{msg}: {s}");
            src = s.source();
        }
        msg
    } else {
        e.to_string()
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = t.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_must_be_https_and_public_unless_insecure_is_allowed() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://10.0.0.5/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://localhost/x",
            "https://user:pw@hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/x", true).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        assert!(check_url_resolving("https://localhost./x", false)
            .await
            .is_err());
        assert!(check_url_resolving("https://localhost/x", true)
            .await
            .is_ok());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
