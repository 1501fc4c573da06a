//! API keys and tenants: who is calling, and what they may read. Pure; the HTTP layers
//! (query API, connections API) share it.

use crate::secret::Secret;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A tenant (an ISV account): its API keys and, optionally, the connections they may read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Tenant {
    pub id: String,
    /// `Debug` prints `***` for each.
    pub api_keys: Vec<Secret>,
    /// `None`: every connection of the tenant.
    #[serde(default)]
    pub connections: Option<Vec<String>>,
}

/// The caller behind an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    /// `None`: every connection of the tenant.
    pub connections: Option<HashSet<String>>,
}

impl Principal {
    /// May this caller see records of `connection_id` owned by `tenant_id`?
    pub fn may_read(&self, tenant_id: &str, connection_id: &str) -> bool {
        self.tenant_id == tenant_id
            && self
                .connections
                .as_ref()
                .is_none_or(|c| c.contains(connection_id))
    }

    /// May this caller see something of `tenant_id` that reaches the connections
    /// `connection_ids` (`None`: every connection of the tenant), such as a webhook
    /// endpoint? A key limited to some connections sees it only when all of them are its.
    pub fn may_see(&self, tenant_id: &str, connection_ids: Option<&[String]>) -> bool {
        self.tenant_id == tenant_id
            && match (&self.connections, connection_ids) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(allowed), Some(c)) => c.iter().all(|x| allowed.contains(x)),
            }
    }
}

/// How an API key is written down without the key: `sha256:<64 lowercase hex>` of its text.
pub fn hash_api_key(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// The SHA-256 digest an API key entry stands for: a `sha256:<64 hex>` entry is the digest
/// itself (the key is kept nowhere), anything else is the key. A `sha256:` entry that is
/// not 64 hex digits is an error (rather than a key nobody could guess).
pub fn key_digest(entry: &Secret) -> Result<[u8; 32], String> {
    match entry.expose().strip_prefix("sha256:") {
        Some(h) => hex::decode(h.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| "an API key entry \"sha256:…\" must be 64 hex digits".to_string()),
        None => Ok(Sha256::digest(entry.expose().as_bytes()).into()),
    }
}

/// API keys → principals. Keys are kept only as SHA-256 digests (and may be configured so).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    keys: Arc<HashMap<[u8; 32], Arc<Principal>>>,
}

impl Auth {
    pub fn new(tenants: &[Tenant]) -> Self {
        let mut keys = HashMap::new();
        for t in tenants {
            let p = Arc::new(Principal {
                tenant_id: t.id.clone(),
                connections: t.connections.as_ref().map(|c| c.iter().cloned().collect()),
            });
            for k in &t.api_keys {
                // a malformed `sha256:` entry (refused by config validation) matches nobody
                if let Ok(d) = key_digest(k) {
                    keys.insert(d, p.clone());
                }
            }
        }
        Auth {
            keys: Arc::new(keys),
        }
    }

    /// The principal of an `Authorization` header value (`Bearer <key>`), if any.
    pub fn principal(&self, authorization: Option<&str>) -> Option<Arc<Principal>> {
        self.keys.get(&bearer_digest(authorization)?).cloned()
    }

    /// The SHA-256 digest of the bearer key of an `Authorization` header value when it is
    /// a configured key (what per-key limits are keyed by: the key itself is kept nowhere).
    pub fn known_key_digest(&self, authorization: Option<&str>) -> Option<[u8; 32]> {
        bearer_digest(authorization).filter(|d| self.keys.contains_key(d))
    }
}

/// The SHA-256 digest of the key of an `Authorization: Bearer <key>` value.
fn bearer_digest(authorization: Option<&str>) -> Option<[u8; 32]> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(Sha256::digest(token.trim().as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_their_tenant_and_limits() {
        let auth = Auth::new(&[
            Tenant {
                id: "acme".into(),
                api_keys: vec!["k1".into()],
                connections: None,
            },
            Tenant {
                id: "globex".into(),
                api_keys: vec!["k2".into()],
                connections: Some(vec!["g-1".into()]),
            },
        ]);
        let a = auth.principal(Some("Bearer k1")).unwrap();
        assert_eq!(a.tenant_id, "acme");
        assert!(a.may_read("acme", "anything"));
        assert!(!a.may_read("globex", "g-1"));
        let g = auth.principal(Some("Bearer k2")).unwrap();
        assert!(g.may_read("globex", "g-1"));
        assert!(!g.may_read("globex", "g-2"));
        // endpoints and the like: a limited key sees only what reaches its connections
        let (g1, g2) = (
            vec!["g-1".to_string()],
            vec!["g-1".to_string(), "g-2".into()],
        );
        assert!(g.may_see("globex", Some(&g1)));
        assert!(!g.may_see("globex", Some(&g2)));
        assert!(!g.may_see("globex", None), "None reaches every connection");
        assert!(!g.may_see("acme", Some(&g1)));
        assert!(a.may_see("acme", None) && a.may_see("acme", Some(&g2)));
        assert!(!a.may_see("globex", None));
        assert!(auth.principal(Some("Bearer nope")).is_none());
        let d: [u8; 32] = Sha256::digest(b"k1").into();
        assert_eq!(auth.known_key_digest(Some("bearer  k1 ")), Some(d));
        assert_eq!(auth.known_key_digest(Some("Bearer nope")), None);
        assert_eq!(auth.known_key_digest(Some("Basic k1")), None);
        assert_eq!(auth.known_key_digest(None), None);
        assert_eq!(
            auth.principal(Some("bearer k1")).unwrap().tenant_id,
            "acme",
            "the scheme is case-insensitive (RFC 7235)"
        );
        assert!(auth.principal(Some("k1")).is_none());
        // a key configured as its digest
        let hashed = Auth::new(&[Tenant {
            id: "acme".into(),
            api_keys: vec![hash_api_key("k3").into(), "sha256:zz".into()],
            connections: None,
        }]);
        assert_eq!(
            hashed.principal(Some("Bearer k3")).unwrap().tenant_id,
            "acme"
        );
        assert!(hashed
            .principal(Some(&format!("Bearer {}", hash_api_key("k3"))))
            .is_none());
        assert!(hashed.principal(Some("Bearer sha256:zz")).is_none());
        assert_eq!(
            hash_api_key("test-api-key"),
            "sha256:4c806362b613f7496abf284146efd31da90e4b16169fe001841ca17290f427c4"
        );
        assert!(auth.principal(None).is_none());
    }
}
