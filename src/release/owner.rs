//! A data owner's signing key. The secret file (`NAME.signing.json`, 0600) stays with the owner;
//! the public file (`NAME.owner.json`) goes to whoever assembles the roster.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{b64, b64_fixed, check_owner_id};
use crate::error::{Error, Result};

/// `kind` of a signing key file.
pub const SIGNING_KIND: &str = "cipherlake.owner_signing_key";
/// `kind` of an owner's public key file.
pub const PUBLIC_KIND: &str = "cipherlake.owner_public_key";
const VERSION: u32 = 1;
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// An owner's Ed25519 signing key. `Debug` shows the owner and the public key only; the secret
/// is wiped when the key is dropped (the dalek key zeroizes itself).
pub struct OwnerKey {
    owner: String,
    key: SigningKey,
}

/// An owner's public key, as the roster lists it.
#[derive(Clone, PartialEq, Eq)]
pub struct OwnerPublic {
    /// The owner id.
    pub owner: String,
    /// The Ed25519 public key.
    pub key: VerifyingKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningFile {
    kind: String,
    version: u32,
    owner: String,
    public: String,
    secret: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    kind: String,
    version: u32,
    owner: String,
    public: String,
}

impl OwnerKey {
    /// A new signing key for `owner`, its seed from the operating system's CSPRNG.
    pub fn generate(owner: &str) -> Result<Self> {
        check_owner_id(owner).map_err(Error::Invalid)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::paillier::randomness::fill(seed.as_mut())?;
        Ok(OwnerKey {
            owner: owner.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The public half.
    pub fn public(&self) -> OwnerPublic {
        OwnerPublic {
            owner: self.owner.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs a 32-byte digest (the callers sign labelled transcripts, never raw data).
    pub(crate) fn sign_digest(&self, digest: &[u8; 32]) -> Signature {
        self.key.sign(digest)
    }

    /// Reads a signing key file; the public key in it must be the secret's.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_small(path)?;
        let f: SigningFile = serde_json::from_str(&text).map_err(|e| {
            // serde's message may quote a field's text; the classification and position do not.
            Error::key_file(
                path,
                format!(
                    "not a signing key file (JSON {:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        check_header(path, &f.kind, f.version, SIGNING_KIND)?;
        check_owner_id(&f.owner).map_err(|why| Error::key_file(path, why))?;
        let seed = Zeroizing::new(
            b64_fixed::<32>(&f.secret)
                .map_err(|why| Error::key_file(path, format!("`secret` {why}")))?,
        );
        drop(Zeroizing::new(f.secret));
        let key = SigningKey::from_bytes(&seed);
        let public = b64_fixed::<32>(&f.public)
            .map_err(|why| Error::key_file(path, format!("`public` {why}")))?;
        if key.verifying_key().as_bytes() != &public {
            return Err(Error::key_file(
                path,
                "`public` is not the public key of `secret`: the file was edited",
            ));
        }
        Ok(OwnerKey {
            owner: f.owner,
            key,
        })
    }

    /// The file names for `dir`: the signing key (`OWNER.signing.json`, to be written 0600) and
    /// the public key (`OWNER.owner.json`).
    pub fn file_names(&self, dir: &Path) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{}.signing.json", self.owner)),
            dir.join(format!("{}.owner.json", self.owner)),
        )
    }

    /// The contents of the signing key file (secret: write it 0600) and of the public key file.
    pub fn to_files(&self) -> Result<(Zeroizing<String>, String)> {
        let file = SigningFile {
            kind: SIGNING_KIND.into(),
            version: VERSION,
            owner: self.owner.clone(),
            public: b64(self.key.verifying_key().as_bytes()),
            secret: b64(self.key.as_bytes()),
        };
        let text = Zeroizing::new(to_json(&file)?);
        drop(Zeroizing::new(file.secret));
        Ok((text, self.public().to_json()?))
    }
}

impl fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerKey")
            .field("owner", &self.owner)
            .field("public", &b64(self.key.verifying_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OwnerPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OwnerPublic({}, {})",
            self.owner,
            b64(self.key.as_bytes())
        )
    }
}

impl OwnerPublic {
    /// Parses a public key given as base64url, refusing weak (small-order) points, with which
    /// a signature could verify for more than one message.
    pub(crate) fn parse(owner: &str, public: &str) -> std::result::Result<Self, String> {
        check_owner_id(owner)?;
        let bytes = b64_fixed::<32>(public).map_err(|why| format!("`public` {why}"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "`public` is not an Ed25519 public key".to_owned())?;
        if key.is_weak() {
            return Err("`public` is a small-order Ed25519 point, which no honest key is".into());
        }
        Ok(OwnerPublic {
            owner: owner.to_owned(),
            key,
        })
    }

    /// Whether `signature` (base64url) is this owner's Ed25519 signature of `digest` (strict
    /// verification: no malleable or small-order forms).
    pub(crate) fn verifies(&self, digest: &[u8; 32], signature: &str) -> bool {
        b64_fixed::<64>(signature).is_ok_and(|sig| {
            self.key
                .verify_strict(digest, &Signature::from_bytes(&sig))
                .is_ok()
        })
    }

    /// The base64url public key.
    pub fn key_b64(&self) -> String {
        b64(self.key.as_bytes())
    }

    /// Reads an owner's public key file (`NAME.owner.json`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_small(path)?;
        let f: PublicFile = serde_json::from_str(&text).map_err(|e| {
            Error::key_file(
                path,
                format!("not an owner public key file ({e}); a signing key file is not one"),
            )
        })?;
        check_header(path, &f.kind, f.version, PUBLIC_KIND)?;
        Self::parse(&f.owner, &f.public).map_err(|why| Error::key_file(path, why))
    }

    fn to_json(&self) -> Result<String> {
        to_json(&PublicFile {
            kind: PUBLIC_KIND.into(),
            version: VERSION,
            owner: self.owner.clone(),
            public: self.key_b64(),
        })
    }
}

fn check_header(path: &Path, kind: &str, version: u32, want: &str) -> Result<()> {
    if kind != want {
        return Err(Error::key_file(
            path,
            format!(
                "its kind is `{}`, expected `{want}`",
                crate::error::preview(kind)
            ),
        ));
    }
    if version != VERSION {
        return Err(Error::key_file(
            path,
            format!("format version {version} is not supported (this build reads {VERSION})"),
        ));
    }
    Ok(())
}

/// A small JSON file (a key, a roster, a signature) read whole, refusing anything large.
pub(crate) fn read_small(path: &Path) -> Result<Zeroizing<String>> {
    read_small_limit(path, MAX_FILE_BYTES)
}

/// A JSON file of at most `limit` bytes, read whole (and wiped when dropped).
pub(crate) fn read_small_limit(path: &Path, limit: u64) -> Result<Zeroizing<String>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > limit {
        return Err(Error::key_file(path, format!("{size} bytes is too large")));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Error::key_file(path, "not UTF-8 text (JSON)"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Data(format!("cannot write JSON: {e}")))?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_an_edited_public_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = OwnerKey::generate("hospital-a").unwrap();
        let (secret, public) = k.file_names(dir.path());
        let (text, public_text) = k.to_files().unwrap();
        std::fs::write(&secret, text.as_bytes()).unwrap();
        std::fs::write(&public, public_text).unwrap();
        let back = OwnerKey::load(&secret).unwrap();
        assert_eq!(back.public(), k.public());
        assert_eq!(OwnerPublic::load(&public).unwrap(), k.public());

        let other = OwnerKey::generate("hospital-a").unwrap();
        let text = std::fs::read_to_string(&secret).unwrap().replace(
            &b64(k.key.verifying_key().as_bytes()),
            &b64(other.key.verifying_key().as_bytes()),
        );
        std::fs::write(&secret, text).unwrap();
        let err = OwnerKey::load(&secret).unwrap_err().to_string();
        assert!(err.contains("was edited"), "{err}");
        assert!(!format!("{:?}", back).contains(&b64(back.key.as_bytes())));
    }

    #[test]
    fn weak_points_and_bad_owner_ids_are_refused() {
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let err = OwnerPublic::parse("a", &b64(&identity)).unwrap_err();
        assert!(err.contains("small-order"), "{err}");
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_owner_id(bad).is_err(), "{bad:?}");
        }
    }
}
