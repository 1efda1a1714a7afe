//! Labelled SHA-256 transcripts: the one construction behind every fingerprint and signed message
//! of cipherlake (key ids, roster ids, file signatures, requests). Each item is
//! `label ‖ 0 ‖ 4-byte big-endian length ‖ bytes` after a domain tag, so that no two different
//! lists of items hash the same. docs/FORMAT.md gives the same definition in Python.

use sha2::{Digest, Sha256};

/// A SHA-256 over a domain tag and labelled items.
pub(crate) struct Labelled(Sha256);

impl Labelled {
    /// Starts a transcript under `domain` (a versioned tag such as `cipherlake.key_id.v2`; a NUL
    /// byte ends it).
    pub(crate) fn new(domain: &str) -> Self {
        let mut h = Sha256::new();
        h.update(domain.as_bytes());
        h.update([0u8]);
        Labelled(h)
    }

    /// Adds one item.
    pub(crate) fn item(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update(label.as_bytes());
        self.0.update([0u8]);
        self.0.update((bytes.len() as u32).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds an unsigned number as its 8 big-endian bytes.
    pub(crate) fn u64(&mut self, label: &str, x: u64) -> &mut Self {
        self.item(label, &x.to_be_bytes())
    }

    /// The 32-byte digest.
    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }

    /// The digest as lowercase hex.
    pub(crate) fn hex(self) -> String {
        hex::encode(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_framed_so_that_boundaries_matter() {
        let mut a = Labelled::new("d");
        a.item("x", b"ab").item("y", b"c");
        let mut b = Labelled::new("d");
        b.item("x", b"a").item("y", b"bc");
        assert_ne!(a.hex(), b.hex());
        let mut c = Labelled::new("d");
        c.item("x", b"ab").item("y", b"c");
        let mut d = Labelled::new("e");
        d.item("x", b"ab").item("y", b"c");
        assert_ne!(c.hex(), d.hex());
    }
}
