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
}

/// API keys → principals. Keys are kept only as SHA-256 digests.
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
                keys.insert(Sha256::digest(k.expose().as_bytes()).into(), p.clone());
            }
        }
        Auth {
            keys: Arc::new(keys),
        }
    }

    /// The principal of an `Authorization` header value (`Bearer <key>`), if any.
    pub fn principal(&self, authorization: Option<&str>) -> Option<Arc<Principal>> {
        let (scheme, token) = authorization?.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.keys.get(&digest).cloned()
    }
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
        assert!(auth.principal(Some("Bearer nope")).is_none());
        assert_eq!(
            auth.principal(Some("bearer k1")).unwrap().tenant_id,
            "acme",
            "the scheme is case-insensitive (RFC 7235)"
        );
        assert!(auth.principal(Some("k1")).is_none());
        assert!(auth.principal(None).is_none());
    }
}
