//! The public keys a session knows. The query path holds public keys only.

use std::collections::HashMap;

use crate::paillier::PublicKey;

/// The public keys a session knows, by key id. The query path holds public keys only.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: HashMap<String, PublicKey>,
}

impl KeyRing {
    /// An empty key ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a public key.
    pub fn add(&mut self, pk: PublicKey) {
        self.keys.insert(pk.key_id().to_owned(), pk);
    }

    /// The key with this id, if known.
    pub fn get(&self, key_id: &str) -> Option<&PublicKey> {
        self.keys.get(key_id)
    }
}
