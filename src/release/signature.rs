//! The signature beside a lake file: `FILE.parquet` is signed in `FILE.parquet.sig.json` (a name
//! lake listings skip, since it does not end in `.parquet`). It binds the file's bytes (size and
//! SHA-256), its partition path (the `key=value` folders right above it and its name, so that a
//! file moved to another hospital's folder no longer verifies), its owner, the Paillier key id
//! and the time of signing.

use std::path::{Path, PathBuf};

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use super::owner::{read_small, to_json, OwnerKey};
use super::roster::Roster;
use super::{b64, b64_fixed};
use crate::digest::Labelled;
use crate::error::{Error, Result};
use crate::lake::signed::{hash_file, partition_path, sidecar, FileSigner};

/// `kind` of a signature file.
pub const KIND: &str = "cipherlake.file_signature";
const VERSION: u32 = 1;
const DOMAIN: &str = "cipherlake.file_signature.v1";

/// A signature file's contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSignature {
    /// Always [`KIND`].
    pub kind: String,
    /// Format version (1).
    pub version: u32,
    /// The owner who signed.
    pub owner: String,
    /// The Paillier key id the file's columns are encrypted under.
    pub key_id: String,
    /// The partition path: `hospital=a/admissions.parquet` (see [`partition_path`]).
    pub path: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Seconds since 1970-01-01 UTC.
    pub signed_at: u64,
    /// Ed25519 signature (base64url) of the labelled digest of the fields above.
    pub signature: String,
}

/// A lake file whose signature verified against the roster, and that signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedFile {
    /// The file.
    pub file: PathBuf,
    /// Its signature (owner, size, SHA-256, time …).
    pub signature: FileSignature,
}

impl FileSignature {
    /// Signs a file's facts as `key`'s owner.
    pub fn sign(
        key: &OwnerKey,
        key_id: &str,
        path: &str,
        size: u64,
        sha256: &[u8; 32],
        signed_at: u64,
    ) -> Self {
        let mut sig = FileSignature {
            kind: KIND.into(),
            version: VERSION,
            owner: key.owner().to_owned(),
            key_id: key_id.to_owned(),
            path: path.to_owned(),
            size,
            sha256: hex::encode(sha256),
            signed_at,
            signature: String::new(),
        };
        let digest = sig.digest(sha256);
        sig.signature = b64(&key.sign_digest(&digest).to_bytes());
        sig
    }

    fn digest(&self, sha256: &[u8; 32]) -> [u8; 32] {
        let mut h = Labelled::new(DOMAIN);
        h.item("owner", self.owner.as_bytes())
            .item("key_id", self.key_id.as_bytes())
            .item("path", self.path.as_bytes())
            .u64("size", self.size)
            .item("sha256", sha256)
            .u64("signed_at", self.signed_at);
        h.finish()
    }

    /// Checks the signature against the roster: a known owner, the roster's key, a valid
    /// signature. (Whether the file matches is [`verify_file`]'s part.)
    pub fn check(&self, roster: &Roster) -> std::result::Result<(), String> {
        if self.kind != KIND || self.version != VERSION {
            return Err(format!(
                "not a version {VERSION} signature file (kind `{}`, version {})",
                crate::error::preview(&self.kind),
                self.version
            ));
        }
        let Some(owner) = roster.owner(&self.owner) else {
            return Err(format!(
                "signed by `{}`, who is not on the roster {}",
                crate::error::preview(&self.owner),
                roster.id()
            ));
        };
        if self.key_id != roster.key_id() {
            return Err(format!(
                "signed for key {}, but the roster is for key {}",
                crate::error::preview(&self.key_id),
                roster.key_id()
            ));
        }
        let sha = hex::decode(&self.sha256)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or("its sha256 is not 64 hex digits")?;
        let sig = b64_fixed::<64>(&self.signature).map_err(|why| format!("its signature {why}"))?;
        owner
            .key
            .verify_strict(&self.digest(&sha), &Signature::from_bytes(&sig))
            .map_err(|_| {
                format!(
                    "the signature of `{}` does not verify: the signature file was edited, or not signed by that owner",
                    self.owner
                )
            })
    }

    /// [`check`](Self::check), and that the signature is for a file where `file` is: its signed
    /// path is `file`'s partition path.
    pub fn check_at(&self, roster: &Roster, file: &Path) -> std::result::Result<(), String> {
        self.check(roster)?;
        let path = partition_path(file);
        if self.path != path {
            return Err(format!(
                "signed as `{}` but found as `{path}`: a signed file must stay in its partition folder",
                crate::error::preview(&self.path)
            ));
        }
        Ok(())
    }

    /// Whether bytes of `size` hashing to `sha256` are the signed ones.
    pub fn check_content(&self, size: u64, sha256: &[u8; 32]) -> std::result::Result<(), String> {
        if size != self.size || hex::encode(sha256) != self.sha256 {
            return Err(format!(
                "changed after `{}` signed it ({size} bytes now, {} signed): the content does not match its signature",
                self.owner, self.size
            ));
        }
        Ok(())
    }

    /// Writes the signature file's JSON.
    pub fn to_json(&self) -> Result<String> {
        to_json(self)
    }
}

/// An owner's key signing `encrypt`'s outputs for one Paillier key.
pub struct Signer {
    key: OwnerKey,
    key_id: String,
}

impl Signer {
    /// Signs as `key`'s owner, for files encrypted under `key_id`.
    pub fn new(key: OwnerKey, key_id: &str) -> Self {
        Signer {
            key,
            key_id: key_id.to_owned(),
        }
    }
}

impl FileSigner for Signer {
    fn sign_file(&self, target: &Path, size: u64, sha256: &[u8; 32]) -> Result<String> {
        FileSignature::sign(
            &self.key,
            &self.key_id,
            &partition_path(target),
            size,
            sha256,
            now(),
        )
        .to_json()
    }
}

/// Verifies a lake file against its signature file and the roster: the owner is on the roster,
/// the signature is valid, the partition path is the file's, and the bytes hash to what was
/// signed.
pub fn verify_file(roster: &Roster, file: &Path) -> Result<SignedFile> {
    let bad = |reason: String| Error::Signature {
        file: file.to_owned(),
        reason,
    };
    let side = sidecar(file);
    if !side.exists() {
        return Err(bad(format!(
            "not signed (no {}): only files signed by an owner on the roster are trusted",
            side.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        )));
    }
    let text = read_small(&side)?;
    let sig: FileSignature = serde_json::from_str(&text)
        .map_err(|e| bad(format!("its signature file is not valid: {e}")))?;
    sig.check_at(roster, file).map_err(&bad)?;
    let (size, sha) = hash_file(file)?;
    sig.check_content(size, &sha).map_err(&bad)?;
    Ok(SignedFile {
        file: file.to_owned(),
        signature: sig,
    })
}

/// Now, in seconds since 1970 (for `signed_at`).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{OwnerKey, Roster};

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn every_signed_field_is_covered() {
        let a = OwnerKey::generate("a").unwrap();
        let roster = Roster::new(KEY, vec![a.public()]).unwrap();
        let sig = FileSignature::sign(&a, KEY, "hospital=a/f.parquet", 10, &[7; 32], 5);
        assert_eq!(sig.check(&roster), Ok(()));
        let edits: [fn(&mut FileSignature); 4] = [
            |s| s.path = "hospital=b/f.parquet".into(),
            |s| s.size += 1,
            |s| s.sha256 = hex::encode([8u8; 32]),
            |s| s.signed_at += 1,
        ];
        for edit in edits {
            let mut s = sig.clone();
            edit(&mut s);
            assert!(s.check(&roster).unwrap_err().contains("does not verify"));
        }
        // Someone else's key under a's name.
        let impostor = OwnerKey::generate("a").unwrap();
        let forged = FileSignature::sign(&impostor, KEY, "hospital=a/f.parquet", 10, &[7; 32], 5);
        assert!(forged
            .check(&roster)
            .unwrap_err()
            .contains("does not verify"));
        let mut s = sig.clone();
        s.owner = "b".into();
        assert!(s.check(&roster).unwrap_err().contains("not on the roster"));
        let b = OwnerKey::generate("b").unwrap();
        let by_b = FileSignature::sign(&b, KEY, "f.parquet", 1, &[0; 32], 0);
        assert!(by_b
            .check(&roster)
            .unwrap_err()
            .contains("not on the roster"));
    }
}
