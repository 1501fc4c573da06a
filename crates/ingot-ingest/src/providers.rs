//! Webhook verification per provider: one [`WebhookVerifier`] each, listed in
//! [`verifier_for`] (the only place that names providers).

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use ingot_model::{Provider, Secret};
use sha2::Sha256;

/// What a verified delivery says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The 3PA topic (`orders/create`, `order.updated`).
    pub topic: String,
    /// Delivery / event id for dedupe and tracing.
    pub event_id: Option<String>,
    pub triggered_at: Option<String>,
    pub api_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted(Accepted),
    /// A liveness ping: acknowledge, write nothing.
    Ping,
    Unauthorized(&'static str),
    /// Correctly signed but not a delivery ingot can route (e.g. no topic header).
    BadRequest(&'static str),
}

/// A change of the connection itself that a verified delivery announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The 3PA says the app was removed from the account (Shopify `app/uninstalled`):
    /// the connection is disconnected and its sync stops.
    Uninstalled,
}

pub trait WebhookVerifier: Send + Sync {
    fn verify(&self, headers: &HeaderMap, body: &[u8], secrets: &[Secret]) -> Verdict;
    /// The connection change a verified delivery of `topic` announces, if any.
    fn lifecycle(&self, _topic: &str) -> Option<Lifecycle> {
        None
    }
}

pub fn verifier_for(provider: Provider) -> &'static dyn WebhookVerifier {
    match provider {
        Provider::Shopify => &Shopify,
        Provider::WooCommerce => &WooCommerce,
        Provider::NetSuite => &NoWebhooks,
    }
}

/// True when `signature_b64` is base64(HMAC-SHA256(secret, body)) for one of `secrets`.
/// The comparison is constant-time (`Mac::verify_slice`). A signature that does not
/// decode to a SHA-256 output (32 bytes) is refused before the body is hashed: anyone can
/// send one, and each secret hashes the whole body.
pub fn verify_hmac_base64(signature_b64: &str, body: &[u8], secrets: &[Secret]) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim())
    else {
        return false;
    };
    if expected.len() != 32 {
        return false;
    }
    secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("hmac takes any key length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

fn header(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| headers.get(*n))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Shopify: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app secret, raw body)); topic in
/// `X-Shopify-Topic`; duplicates share `X-Shopify-Event-Id` (else `X-Shopify-Webhook-Id`).
/// The newer unprefixed names (`shopify-hmac-sha256`, ...) are accepted too.
/// Source: shopify.dev/docs/apps/build/webhooks; fixtures QUIRKS Q-S2, Q-S3, Q-S13.
/// `app/uninstalled` (shopify.dev webhook topics: "Occurs whenever a shop has uninstalled
/// the app") is [`Lifecycle::Uninstalled`].
struct Shopify;

impl WebhookVerifier for Shopify {
    fn lifecycle(&self, topic: &str) -> Option<Lifecycle> {
        (topic == "app/uninstalled").then_some(Lifecycle::Uninstalled)
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], secrets: &[Secret]) -> Verdict {
        let Some(sig) = header(headers, &["x-shopify-hmac-sha256", "shopify-hmac-sha256"]) else {
            return Verdict::Unauthorized("missing X-Shopify-Hmac-Sha256");
        };
        if !verify_hmac_base64(&sig, body, secrets) {
            return Verdict::Unauthorized("signature mismatch");
        }
        let Some(topic) = header(headers, &["x-shopify-topic", "shopify-topic"]) else {
            return Verdict::BadRequest("missing X-Shopify-Topic");
        };
        Verdict::Accepted(Accepted {
            topic,
            event_id: header(
                headers,
                &[
                    "x-shopify-event-id",
                    "shopify-event-id",
                    "x-shopify-webhook-id",
                    "shopify-webhook-id",
                ],
            ),
            triggered_at: header(headers, &["x-shopify-triggered-at", "shopify-triggered-at"]),
            api_version: header(headers, &["x-shopify-api-version", "shopify-api-version"]),
        })
    }
}

/// WooCommerce: `X-WC-Webhook-Signature` = base64(HMAC-SHA256(secret, raw body)) where the
/// secret is `wp_specialchars_decode(secret)` (so a secret stored as `a&amp;b` signs as
/// `a&b`: both forms are tried); topic in `X-WC-Webhook-Topic`. The ping on webhook
/// creation is the form body `webhook_id=N` with no X-WC headers and no signature.
/// Source: woocommerce `includes/class-wc-webhook.php` (`generate_signature`, `deliver_ping`); QUIRKS Q-W1, Q-W2.
struct WooCommerce;

fn is_woo_ping(headers: &HeaderMap, body: &[u8]) -> bool {
    let no_wc_headers = !headers
        .keys()
        .any(|k| k.as_str().starts_with("x-wc-webhook-"));
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let text = text.trim();
    no_wc_headers
        && text
            .strip_prefix("webhook_id=")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl WebhookVerifier for WooCommerce {
    fn verify(&self, headers: &HeaderMap, body: &[u8], secrets: &[Secret]) -> Verdict {
        if is_woo_ping(headers, body) {
            return Verdict::Ping;
        }
        let Some(sig) = header(headers, &["x-wc-webhook-signature"]) else {
            return Verdict::Unauthorized("missing X-WC-Webhook-Signature");
        };
        let mut all: Vec<Secret> = secrets.to_vec();
        for s in secrets {
            let decoded = html_escape::decode_html_entities(s.expose());
            if decoded != s.expose() {
                all.push(Secret::new(decoded.into_owned()));
            }
        }
        if !verify_hmac_base64(&sig, body, &all) {
            return Verdict::Unauthorized("signature mismatch");
        }
        let Some(topic) = header(headers, &["x-wc-webhook-topic"]) else {
            return Verdict::BadRequest("missing X-WC-Webhook-Topic");
        };
        Verdict::Accepted(Accepted {
            topic,
            event_id: header(headers, &["x-wc-webhook-delivery-id"]),
            triggered_at: None,
            api_version: None,
        })
    }
}

/// Providers without webhooks (NetSuite): every delivery is refused.
struct NoWebhooks;

impl WebhookVerifier for NoWebhooks {
    fn verify(&self, _: &HeaderMap, _: &[u8], _: &[Secret]) -> Verdict {
        Verdict::Unauthorized("provider has no webhooks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn only_shopify_app_uninstalled_is_a_lifecycle_topic() {
        assert_eq!(
            verifier_for(Provider::Shopify).lifecycle("app/uninstalled"),
            Some(Lifecycle::Uninstalled)
        );
        assert_eq!(
            verifier_for(Provider::Shopify).lifecycle("orders/create"),
            None
        );
        assert_eq!(
            verifier_for(Provider::WooCommerce).lifecycle("app/uninstalled"),
            None
        );
    }

    #[test]
    fn shopify_accepts_old_and_new_secret_and_rejects_others() {
        let body = br#"{"id": 820982911946154508}"#;
        let secrets: Vec<Secret> = vec!["new-secret".into(), "old-secret".into()];
        for s in ["new-secret", "old-secret"] {
            let mut h = HeaderMap::new();
            h.insert(
                "X-Shopify-Hmac-Sha256",
                HeaderValue::from_str(&sign(s, body)).unwrap(),
            );
            h.insert("X-Shopify-Topic", HeaderValue::from_static("orders/create"));
            h.insert("X-Shopify-Event-Id", HeaderValue::from_static("evt-1"));
            match Shopify.verify(&h, body, &secrets) {
                Verdict::Accepted(a) => {
                    assert_eq!(a.topic, "orders/create");
                    assert_eq!(a.event_id.as_deref(), Some("evt-1"));
                }
                other => panic!("expected accepted, got {other:?}"),
            }
        }
        let mut h = HeaderMap::new();
        h.insert(
            "X-Shopify-Hmac-Sha256",
            HeaderValue::from_str(&sign("wrong", body)).unwrap(),
        );
        h.insert("X-Shopify-Topic", HeaderValue::from_static("orders/create"));
        assert_eq!(
            Shopify.verify(&h, body, &secrets),
            Verdict::Unauthorized("signature mismatch")
        );
        // a one-byte change of the body breaks the signature
        let mut h2 = HeaderMap::new();
        h2.insert(
            "X-Shopify-Hmac-Sha256",
            HeaderValue::from_str(&sign("new-secret", body)).unwrap(),
        );
        h2.insert("X-Shopify-Topic", HeaderValue::from_static("orders/create"));
        assert_eq!(
            Shopify.verify(&h2, br#"{"id": 820982911946154509}"#, &secrets),
            Verdict::Unauthorized("signature mismatch")
        );
    }

    #[test]
    fn woocommerce_ping_and_entity_encoded_secret() {
        let h = HeaderMap::new();
        assert_eq!(WooCommerce.verify(&h, b"webhook_id=27", &[]), Verdict::Ping);
        assert_eq!(
            WooCommerce.verify(&h, b"{\"id\":1}", &[]),
            Verdict::Unauthorized("missing X-WC-Webhook-Signature")
        );
        let body = br#"{"id":727}"#;
        let mut h = HeaderMap::new();
        h.insert(
            "X-WC-Webhook-Signature",
            HeaderValue::from_str(&sign("a&b", body)).unwrap(),
        );
        h.insert(
            "X-WC-Webhook-Topic",
            HeaderValue::from_static("order.deleted"),
        );
        assert!(matches!(
            WooCommerce.verify(&h, body, &["a&amp;b".into()]),
            Verdict::Accepted(_)
        ));
    }

    /// HMAC_TEST_VECTORS.txt in the shared fixtures (computed over the exact file bytes).
    #[test]
    fn shared_hmac_test_vectors() {
        let Some(dir) = ingot_testkit::fixtures::fixtures_dir() else {
            return;
        };
        let vectors = std::fs::read_to_string(dir.join("HMAC_TEST_VECTORS.txt"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join("HMAC_TEST_VECTORS.txt").display()));
        let mut checked = 0;
        for line in vectors.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let Some(file) = parts
                .iter()
                .find(|p| p.ends_with(".json") || p.ends_with(".txt"))
            else {
                continue;
            };
            let Some(sig) = parts
                .iter()
                .rev()
                .find(|p| p.ends_with('=') && p.len() == 44)
            else {
                continue;
            };
            let Ok(body) = std::fs::read(dir.join(file)) else {
                continue;
            };
            assert!(
                verify_hmac_base64(sig, &body, &["test-secret-not-real".into()]),
                "vector for {file}"
            );
            // the same signature cut short is refused (before any hashing)
            let short = base64::engine::general_purpose::STANDARD.encode(
                &base64::engine::general_purpose::STANDARD
                    .decode(sig)
                    .unwrap()[..31],
            );
            assert!(
                !verify_hmac_base64(&short, &body, &["test-secret-not-real".into()]),
                "a 31-byte signature for {file}"
            );
            checked += 1;
        }
        assert!(
            checked >= 10,
            "only {checked} vectors parsed from HMAC_TEST_VECTORS.txt"
        );
    }
}

/// Property tests: whatever arrives (headers, body, secrets), the verifiers answer a
/// verdict and never panic; a signature nobody computed is never accepted; a correct one
/// is never refused as unauthorized.
#[cfg(test)]
mod props {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    /// Cases per property (`PROPTEST_CASES` overrides).
    const CASES: u32 = 2000;

    const NAMES: &[&str] = &[
        "x-shopify-hmac-sha256",
        "shopify-hmac-sha256",
        "x-shopify-topic",
        "shopify-topic",
        "x-shopify-event-id",
        "shopify-event-id",
        "x-shopify-webhook-id",
        "x-shopify-triggered-at",
        "x-shopify-api-version",
        "x-wc-webhook-signature",
        "x-wc-webhook-topic",
        "x-wc-webhook-delivery-id",
        "x-wc-webhook-resource",
        "x-wc-webhook-event",
        "x-wc-webhook-id",
        "content-type",
        "x-something-else",
    ];

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Header values as they come off the wire: any bytes a `HeaderValue` can hold
    /// (visible ASCII, space, tab, obs-text), including invalid UTF-8.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..64),
            "[a-z]{1,12}[/.][a-z_]{1,12}".prop_map(String::into_bytes),
            "[A-Za-z0-9+/=]{0,60}".prop_map(String::into_bytes),
        ]
    }

    fn headers() -> impl Strategy<Value = HeaderMap> {
        proptest::collection::vec((0..NAMES.len(), value()), 0..12).prop_map(|pairs| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    h.append(HeaderName::from_static(NAMES[n]), v);
                }
            }
            h
        })
    }

    fn secrets() -> impl Strategy<Value = Vec<Secret>> {
        proptest::collection::vec(
            prop_oneof![
                ".{0,40}",
                "[a-z&;]{1,20}",
                proptest::collection::vec(any::<u8>(), 0..40)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ]
            .prop_map(Secret::from),
            0..4,
        )
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            ".{0,200}".prop_map(String::into_bytes),
            Just(b"webhook_id=12".to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn arbitrary_deliveries_get_a_verdict_never_a_panic(
            h in headers(), b in body(), s in secrets()
        ) {
            for p in Provider::ALL {
                let verdict = verifier_for(p).verify(&h, &b, &s);
                // a random signature header is accepted only if it happens to be right
                if let Verdict::Accepted(_) = verdict {
                    let sigs: Vec<&str> = ["x-shopify-hmac-sha256", "shopify-hmac-sha256", "x-wc-webhook-signature"]
                        .iter()
                        .filter_map(|n| h.get(*n)?.to_str().ok())
                        .collect();
                    let decoded: Vec<Secret> = s
                        .iter()
                        .map(|x| Secret::from(html_escape::decode_html_entities(x.expose()).into_owned()))
                        .chain(s.iter().cloned())
                        .collect();
                    prop_assert!(
                        sigs.iter().any(|sig| verify_hmac_base64(sig, &b, &decoded)),
                        "{p:?} accepted an unsigned delivery"
                    );
                }
            }
        }

        #[test]
        fn a_correct_signature_is_never_unauthorized(
            h in headers(), b in body(), secret in "[ -~]{1,40}", others in secrets()
        ) {
            let sig = HeaderValue::from_str(&sign(&secret, &b)).unwrap();
            let mut all = others.clone();
            all.push(Secret::from(secret.clone()));
            for (p, name) in [
                (Provider::Shopify, "x-shopify-hmac-sha256"),
                (Provider::WooCommerce, "x-wc-webhook-signature"),
            ] {
                let mut h = h.clone();
                for n in ["x-shopify-hmac-sha256", "shopify-hmac-sha256", "x-wc-webhook-signature"] {
                    h.remove(n);
                }
                h.insert(HeaderName::from_static(name), sig.clone());
                let verdict = verifier_for(p).verify(&h, &b, &all);
                prop_assert!(
                    !matches!(verdict, Verdict::Unauthorized(_)),
                    "{p:?}: {verdict:?}"
                );
            }
        }
    }
}
