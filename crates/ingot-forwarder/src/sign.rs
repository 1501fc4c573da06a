//! Standard Webhooks signing (<https://www.standardwebhooks.com/>, spec §"Signature
//! scheme"): `webhook-signature` is `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`,
//! one per active secret, space-separated. Signing is done by the `standardwebhooks` crate.

use base64::Engine;
use rand::RngCore;

/// Prefix of every secret (Standard Webhooks: the key is the base64 after it).
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (the spec asks for 24–64).
pub const SECRET_BYTES: usize = 32;

/// A new secret: `whsec_` + base64 of 32 random bytes from the OS-seeded CSPRNG.
pub fn generate_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut key);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Errors of signing: a stored secret that is not `whsec_<base64>` (ours) or a body that is
/// not UTF-8 (ours: bodies are JSON).
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(String);

/// The `webhook-signature` header value: `v1,<sig>` for every secret, space-separated.
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignError> {
    let mut out = Vec::with_capacity(secrets.len());
    for s in secrets {
        let wh = standardwebhooks::Webhook::new(s).map_err(|e| SignError(e.to_string()))?;
        out.push(
            wh.sign(msg_id, timestamp, body)
                .map_err(|e| SignError(e.to_string()))?,
        );
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks spec and its reference libraries.
    #[test]
    fn spec_test_vector() {
        let h = signature_header(
            &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(h, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn two_secrets_give_two_signatures_and_secrets_are_well_formed() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        let key = base64::engine::general_purpose::STANDARD
            .decode(a.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(key.len(), SECRET_BYTES);
        let h = signature_header(&[&a, &b], "msg_1", 1, b"{}").unwrap();
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
