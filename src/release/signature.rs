//! The signature beside a lake file: `FILE.parquet` is signed in `FILE.parquet.sig.json` (a name
//! lake listings skip, since it does not end in `.parquet`). It binds the file's bytes (size and
//! SHA-256), its partition path (the `key=value` folders right above it and its name, so that a
//! file moved to another hospital's folder no longer verifies), its owner, the Paillier key id
//! and the time of signing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::owner::{read_small, to_json, OwnerKey};
use super::roster::Roster;
use super::{b64, b64_fixed};
use crate::digest::Labelled;
use crate::error::{Error, Result};

/// `kind` of a signature file.
pub const KIND: &str = "cipherlake.file_signature";
const VERSION: u32 = 1;
const DOMAIN: &str = "cipherlake.file_signature.v1";
/// What a signature file's name adds to its lake file's name.
pub const SUFFIX: &str = ".sig.json";

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

/// A lake file whose signature verified against the roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedFile {
    /// The file.
    pub file: PathBuf,
    /// Its owner.
    pub owner: String,
    /// Its size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// When it was signed (seconds since 1970).
    pub signed_at: u64,
}

/// The signature file of `file`.
pub fn sidecar(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(SUFFIX);
    PathBuf::from(s)
}

/// The partition path of a file at `path` (`/`-separated): the run of `key=value` folders right
/// above it, then its name. `/lake/adm/hospital=a/year=2024/f.parquet` →
/// `hospital=a/year=2024/f.parquet`; `/lake/f.parquet` → `f.parquet`.
pub fn partition_path(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let Some((name, dirs)) = parts.split_last() else {
        return String::new();
    };
    let keep = dirs
        .iter()
        .rev()
        .take_while(|d| d.contains('=') && !d.starts_with('.'))
        .count();
    let mut out: Vec<&str> = dirs[dirs.len() - keep..]
        .iter()
        .map(String::as_str)
        .collect();
    out.push(name);
    out.join("/")
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

    /// Writes the signature file's JSON.
    pub fn to_json(&self) -> Result<String> {
        to_json(self)
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
    sig.check(roster).map_err(&bad)?;
    let path = partition_path(file);
    if sig.path != path {
        return Err(bad(format!(
            "signed as `{}` but found as `{path}`: a signed file must stay in its partition folder",
            crate::error::preview(&sig.path)
        )));
    }
    let (size, sha) = hash_file(file)?;
    if size != sig.size || hex::encode(sha) != sig.sha256 {
        return Err(bad(format!(
            "changed after `{}` signed it ({size} bytes now, {} signed): the content does not match its signature",
            sig.owner, sig.size
        )));
    }
    Ok(SignedFile {
        file: file.to_owned(),
        owner: sig.owner,
        size,
        sha256: sig.sha256,
        signed_at: sig.signed_at,
    })
}

/// Size and SHA-256 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut w = HashingWriter::new(std::io::sink());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).map_err(|e| Error::io(path, e))?;
    }
    Ok(w.finish())
}

/// A writer that hashes and counts what passes through it (the encrypted output is signed as
/// it is written, without reading it back).
pub struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes written so far and their SHA-256.
    pub fn finish(self) -> (u64, [u8; 32]) {
        (self.size, self.hash.finalize().into())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
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
    fn partition_paths_keep_the_key_value_folders_above_the_file() {
        let p = |s: &str| partition_path(Path::new(s));
        assert_eq!(
            p("/lake/adm/hospital=a/year=2024/f.parquet"),
            "hospital=a/year=2024/f.parquet"
        );
        assert_eq!(p("/lake/f.parquet"), "f.parquet");
        assert_eq!(p("/x=1/lake/f.parquet"), "f.parquet");
        assert_eq!(p("f.parquet"), "f.parquet");
    }

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
