//! The release path's trust anchors: who may put data into the lake, and proof that a file is
//! what its owner wrote.
//!
//! - [`owner`]: a data owner's Ed25519 signing key (secret, 0600) and its public half.
//! - [`roster`]: the consortium roster (owner ids and their signing keys, bound to the Paillier
//!   key id), fingerprinted like the key id and pinned by every hospital.
//! - [`signature`]: the signature beside each lake file (`FILE.sig.json`): the file's size,
//!   SHA-256 and partition path, its owner, the key id and the time, signed by the owner; and the
//!   check a hospital runs before it trusts a file.
//!
//! - [`audit`]: a hospital's hash-chained audit log of every request and its outcome.
//!
//! docs/FORMAT.md specifies every file; docs/SECURITY.md says what each check stops.

pub mod audit;
pub mod chain;
pub mod ledger;
pub mod noise;
pub mod owner;
pub mod partial;
pub mod plan;
pub mod policy;
pub mod request;
pub mod requester;
pub mod roster;
pub mod signature;
pub mod verify;

pub use owner::{OwnerKey, OwnerPublic};
pub use request::Request;
pub use roster::Roster;
pub use signature::{FileSignature, SignedFile};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// An owner id: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, not starting with `.` (it names files
/// and appears in messages, so it is kept plain).
pub fn check_owner_id(id: &str) -> std::result::Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an owner id: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
            crate::error::preview(id)
        ))
    }
}

/// Bytes of a known length from base64url (no padding); the error is a reason for the caller's
/// field name.
fn b64_fixed<const N: usize>(s: &str) -> std::result::Result<[u8; N], String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "is not base64url".to_owned())?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| format!("must be {N} bytes"))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
