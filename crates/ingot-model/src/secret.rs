//! Secrets: [`Secret`], the one type for every credential, webhook secret and API key
//! (built on `secrecy`: `Debug` prints `***`, memory is wiped on drop, and it has no
//! `Serialize`, so it cannot leak through a log line or a JSON body by accident); and
//! [`Keyring`], which seals secrets for storage at rest (XChaCha20-Poly1305, a random
//! 192-bit nonce per value, the key id stored with each value so keys can rotate).
//!
//! A sealed value is the text `ingot-sealed:v1:<key id>:<base64url(nonce ‖ ciphertext)>`.
//! Its associated data is a context string (e.g. `shop-1/access_token`), so a sealed value
//! copied to another connection or field does not open.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{AeadCore, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// A secret string. `Debug` prints `***`; read it only where it is used ([`Secret::expose`]).
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret's text: for the HMAC, the HTTP header, the cipher, nothing else.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

const SEALED_PREFIX: &str = "ingot-sealed:v1:";

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Configuration: a key spec is not `<id>:<base64 of 32 bytes>`.
    #[error("secrets key {0}")]
    BadKey(String),
    /// The value was sealed with a key this keyring does not hold (not configured, or
    /// retired too early): add it to the old keys.
    #[error("sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    /// The stored text is not a sealed value.
    #[error("sealed value is malformed")]
    Malformed,
    /// Authentication failed: the wrong key material under that id, or tampering.
    #[error("sealed value does not open (wrong key for its id, or altered)")]
    Forged,
    /// A secret is stored in clear and this reader requires sealed values.
    #[error("secret stored in clear")]
    Clear,
}

/// The keys that seal and open secrets at rest: one current key (seals), any number of
/// older ones (open only), each with an id stored in the values it sealed.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(
            f,
            "Keyring {{ current: {:?}, keys: {ids:?} }}",
            self.current
        )
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Keyring {
    /// From key specs `<id>:<base64 of 32 random bytes>` (standard or URL-safe base64);
    /// the first seals, the others (older keys during a rotation) only open.
    pub fn from_specs<'a>(
        specs: impl IntoIterator<Item = &'a Secret>,
    ) -> Result<Keyring, SealError> {
        let mut keys: Vec<(String, XChaCha20Poly1305)> = Vec::new();
        for spec in specs {
            let (id, material) = spec.expose().trim().split_once(':').ok_or_else(|| {
                SealError::BadKey("must be <id>:<base64 of 32 bytes> (e.g. k1:…)".into())
            })?;
            if !valid_id(id) {
                return Err(SealError::BadKey(format!(
                    "id {id:?} must be 1-64 of A-Z a-z 0-9 - _ ."
                )));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(material)
                .or_else(|_| URL_SAFE_NO_PAD.decode(material.trim_end_matches('=')))
                .map_err(|_| SealError::BadKey(format!("{id:?}: key material is not base64")))?;
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| {
                SealError::BadKey(format!(
                    "{id:?}: key material must be 32 bytes, got {}",
                    bytes.len()
                ))
            })?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(SealError::BadKey(format!("id {id:?} given twice")));
            }
            keys.push((id.to_string(), cipher));
        }
        let current = keys
            .first()
            .map(|(id, _)| id.clone())
            .ok_or_else(|| SealError::BadKey("none given".into()))?;
        Ok(Keyring { current, keys })
    }

    /// A new random key with id `id`, as a keyring and as its spec text (to store).
    pub fn generate(id: &str) -> Result<(Keyring, Secret), SealError> {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let spec = Secret::new(format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ));
        Ok((Keyring::from_specs([&spec])?, spec))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// True when `stored` is a sealed value (of any key).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// Seals `secret` under the current key, bound to `context`.
    pub fn seal(&self, context: &str, secret: &Secret) -> String {
        let (id, cipher) = &self.keys[0];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length ingot stores");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("{SEALED_PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(blob))
    }

    /// Opens a value [`Keyring::seal`] made with `context`, under whichever key sealed it.
    pub fn open(&self, context: &str, stored: &str) -> Result<Secret, SealError> {
        let rest = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealError::Malformed)?;
        let (id, blob) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| SealError::Malformed)?;
        if blob.len() < 24 {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = blob.split_at(24);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Forged)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("shpat_live_123");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(vec![s.clone()])), "Some([***])");
        assert_eq!(s.expose(), "shpat_live_123");
        let parsed: Secret = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(parsed, Secret::new("x"));
    }

    #[test]
    fn sealed_values_open_with_their_key_and_context_only() {
        let (ring, spec) = Keyring::generate("k1").unwrap();
        let secret = Secret::new("shpat_live_123");
        let sealed = ring.seal("shop-1/access_token", &secret);
        assert!(sealed.starts_with("ingot-sealed:v1:k1:"), "{sealed}");
        assert!(!sealed.contains("shpat"));
        assert_ne!(
            sealed,
            ring.seal("shop-1/access_token", &secret),
            "fresh nonce"
        );
        assert_eq!(
            ring.open("shop-1/access_token", &sealed),
            Ok(secret.clone())
        );
        assert_eq!(
            ring.open("shop-2/access_token", &sealed),
            Err(SealError::Forged),
            "bound to its context"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            ring.open("shop-1/access_token", &tampered),
            Err(SealError::Forged)
        );
        assert_eq!(ring.open("c", "shpat_in_clear"), Err(SealError::Malformed));
        assert_eq!(
            ring.open("c", "ingot-sealed:v1:k1:!!"),
            Err(SealError::Malformed)
        );

        // rotation: a new current key seals, the old one still opens what it sealed
        let (_, spec2) = Keyring::generate("k2").unwrap();
        let rotated = Keyring::from_specs([&spec2, &spec]).unwrap();
        assert_eq!(rotated.current_id(), "k2");
        assert_eq!(
            rotated.open("shop-1/access_token", &sealed),
            Ok(secret.clone())
        );
        assert!(rotated
            .seal("c", &secret)
            .starts_with("ingot-sealed:v1:k2:"));
        // the old key alone cannot open the new key's values
        let old_only = Keyring::from_specs([&spec]).unwrap();
        assert_eq!(
            old_only.open("c", &rotated.seal("c", &secret)),
            Err(SealError::UnknownKey("k2".into()))
        );
        // a different key under the same id is detected
        let (impostor, _) = Keyring::generate("k1").unwrap();
        assert_eq!(
            impostor.open("shop-1/access_token", &sealed),
            Err(SealError::Forged)
        );
    }

    #[test]
    fn bad_key_specs_are_refused_with_a_reason() {
        for (spec, reason) in [
            ("nocolon", "must be <id>:"),
            ("k1:not base64!", "not base64"),
            ("k1:AAAA", "must be 32 bytes, got 3"),
            (":AAAA", "id \"\""),
        ] {
            let err = Keyring::from_specs([&Secret::new(spec)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{spec}: {err}");
        }
        assert!(Keyring::from_specs([]).is_err());
    }
}
