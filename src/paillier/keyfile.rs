//! JSON key files. Big integers are base64url without padding, big-endian (python-paillier's JWK
//! convention). Loading re-validates everything: sizes, key id, primes against n, the DJN base.
//! Private key files are written with mode 0600, through a temporary file renamed into place.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rug::integer::Order;
use rug::Integer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::{PrivateKey, PublicKey, MIN_BITS};
use super::threshold::{KeyShare, ThresholdPublic};
use crate::error::{Error, Result};

/// `kind` of a public key file.
pub const PUBLIC_KIND: &str = "cipherlake.public_key";
/// `kind` of a private key file.
pub const PRIVATE_KIND: &str = "cipherlake.private_key";
/// `kind` of a threshold key share file.
pub const SHARE_KIND: &str = "cipherlake.key_share";
/// The key file format version this build reads and writes.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct PublicJson {
    kind: String,
    version: u32,
    key_id: String,
    bits: u32,
    n: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<ThresholdJson>,
}

#[derive(Serialize, Deserialize)]
struct ThresholdJson {
    parties: Vec<String>,
    needed: usize,
    v: String,
    verification_keys: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ShareJson {
    kind: String,
    version: u32,
    key_id: String,
    party: String,
    index: usize,
    share: String,
}

#[derive(Serialize, Deserialize)]
struct PrivateJson {
    #[serde(flatten)]
    public: PublicJson,
    p: String,
    q: String,
}

#[derive(Deserialize)]
struct KindOnly {
    kind: Option<String>,
}

/// Any key file cipherlake reads.
pub enum KeyFile {
    /// `public.json`, with its threshold parameters for a threshold key.
    Public(PublicKey, Option<ThresholdPublic>),
    /// `private.json`
    Private(PrivateKey),
    /// `share-NAME.json`: one party's share of a threshold key.
    Share(KeyShare),
}

/// Encodes a non-negative integer as base64url (no padding), big-endian.
pub fn b64_encode(x: &Integer) -> String {
    URL_SAFE_NO_PAD.encode(x.to_digits::<u8>(Order::Msf))
}

/// Decodes base64url (no padding), big-endian; `field` names the JSON field in the error.
pub fn b64_decode(s: &str, field: &str, path: &Path) -> Result<Integer> {
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|e| Error::key_file(path, format!("field `{field}` is not base64url: {e}")))?,
    );
    if bytes.is_empty() {
        return Err(Error::key_file(path, format!("field `{field}` is empty")));
    }
    Ok(Integer::from_digits(&bytes, Order::Msf))
}

fn public_json(pk: &PublicKey) -> PublicJson {
    PublicJson {
        kind: PUBLIC_KIND.into(),
        version: VERSION,
        key_id: pk.key_id().into(),
        bits: pk.bits(),
        n: b64_encode(pk.n()),
        hs: pk.hs().map(b64_encode),
        threshold: None,
    }
}

/// Parses key file text; `path` is only used in error messages.
pub fn parse(text: &str, path: &Path) -> Result<KeyFile> {
    let kind: KindOnly = serde_json::from_str(text)
        .map_err(|e| Error::key_file(path, format!("not a valid JSON key file: {e}")))?;
    match kind.kind.as_deref() {
        Some(PUBLIC_KIND) => {
            let j: PublicJson = serde_json::from_str(text)
                .map_err(|e| Error::key_file(path, format!("malformed public key: {e}")))?;
            let pk = public_from_json(&j, path)?;
            let th = j
                .threshold
                .as_ref()
                .map(|t| threshold_from_json(t, &pk, path))
                .transpose()?;
            Ok(KeyFile::Public(pk, th))
        }
        Some(SHARE_KIND) => {
            let text = Zeroizing::new(text.to_owned());
            let j: ShareJson = serde_json::from_str(&text)
                .map_err(|e| Error::key_file(path, format!("malformed key share: {e}")))?;
            let share = Zeroizing::new(j.share);
            if j.version != VERSION {
                return Err(Error::key_file(
                    path,
                    format!("format version {} is not supported", j.version),
                ));
            }
            let s = b64_decode(&share, "share", path)?;
            Ok(KeyFile::Share(KeyShare::new(j.key_id, j.party, j.index, s)))
        }
        Some(PRIVATE_KIND) => {
            let j: Zeroizing<String> = Zeroizing::new(text.to_owned());
            let j: PrivateJson = serde_json::from_str(&j)
                .map_err(|e| Error::key_file(path, format!("malformed private key: {e}")))?;
            Ok(KeyFile::Private(private_from_json(&j, path)?))
        }
        Some(other) => Err(Error::key_file(
            path,
            format!("unknown key file kind `{other}`"),
        )),
        None => Err(Error::key_file(
            path,
            "no `kind` field: not a cipherlake key file",
        )),
    }
}

fn check_header(j: &PublicJson, path: &Path) -> Result<()> {
    if j.version != VERSION {
        return Err(Error::key_file(
            path,
            format!(
                "format version {} is not supported (this build reads {VERSION})",
                j.version
            ),
        ));
    }
    if j.bits < MIN_BITS {
        return Err(Error::key_file(
            path,
            format!(
                "{}-bit key refused: at least {MIN_BITS} bits are required",
                j.bits
            ),
        ));
    }
    Ok(())
}

fn public_from_json(j: &PublicJson, path: &Path) -> Result<PublicKey> {
    check_header(j, path)?;
    let n = b64_decode(&j.n, "n", path)?;
    if n.significant_bits() != j.bits {
        return Err(Error::key_file(
            path,
            format!(
                "n has {} bits but the file says {} (truncated?)",
                n.significant_bits(),
                j.bits
            ),
        ));
    }
    let hs =
        j.hs.as_deref()
            .map(|s| b64_decode(s, "hs", path))
            .transpose()?;
    let pk = PublicKey::new(n, hs).map_err(|e| Error::key_file(path, e.to_string()))?;
    if pk.key_id() != j.key_id {
        return Err(Error::key_file(
            path,
            format!(
                "key_id {} does not match n (whose key id is {})",
                j.key_id,
                pk.key_id()
            ),
        ));
    }
    Ok(pk)
}

fn threshold_from_json(j: &ThresholdJson, pk: &PublicKey, path: &Path) -> Result<ThresholdPublic> {
    let th = ThresholdPublic {
        parties: j.parties.clone(),
        needed: j.needed,
        v: b64_decode(&j.v, "threshold.v", path)?,
        verification_keys: j
            .verification_keys
            .iter()
            .map(|s| b64_decode(s, "threshold.verification_keys", path))
            .collect::<Result<_>>()?,
    };
    th.validate(pk)
        .map_err(|e| Error::key_file(path, e.to_string()))?;
    Ok(th)
}

fn private_from_json(j: &PrivateJson, path: &Path) -> Result<PrivateKey> {
    let pk = public_from_json(&j.public, path)?;
    let p = b64_decode(&j.p, "p", path)?;
    let q = b64_decode(&j.q, "q", path)?;
    if Integer::from(&p * &q) != *pk.n() {
        return Err(Error::key_file(
            path,
            "p·q does not equal n: the file is corrupt",
        ));
    }
    let sk = PrivateKey::from_primes(p, q, pk.hs().cloned())
        .map_err(|e| Error::key_file(path, e.to_string()))?;
    Ok(sk)
}

/// Reads a key file of any kind.
pub fn load(path: &Path) -> Result<KeyFile> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?);
    parse(&text, path)
}

/// Reads a public key file (a private key or a share is refused: the query path never takes one).
pub fn load_public(path: &Path) -> Result<PublicKey> {
    load_public_with_threshold(path).map(|(pk, _)| pk)
}

/// Reads a public key file with its threshold parameters, if any.
pub fn load_public_with_threshold(path: &Path) -> Result<(PublicKey, Option<ThresholdPublic>)> {
    match load(path)? {
        KeyFile::Public(pk, th) => Ok((pk, th)),
        KeyFile::Private(_) | KeyFile::Share(_) => Err(Error::key_file(
            path,
            "this is a private key or a key share; pass the public key file (public.json) instead",
        )),
    }
}

/// Reads a threshold public key file (its parameters are required).
pub fn load_threshold_public(path: &Path) -> Result<(PublicKey, ThresholdPublic)> {
    match load_public_with_threshold(path)? {
        (pk, Some(th)) => Ok((pk, th)),
        (_, None) => Err(Error::key_file(
            path,
            "this public key is not a threshold key (it has no parties)",
        )),
    }
}

/// Reads a private key file.
pub fn load_private(path: &Path) -> Result<PrivateKey> {
    match load(path)? {
        KeyFile::Private(sk) => Ok(sk),
        KeyFile::Public(..) => Err(Error::key_file(
            path,
            "this is a public key; decryption needs the private key file (private.json)",
        )),
        KeyFile::Share(_) => Err(Error::key_file(
            path,
            "this is one party's key share: use partial-decrypt and combine for a threshold key",
        )),
    }
}

/// Reads a key share file.
pub fn load_share(path: &Path) -> Result<KeyShare> {
    match load(path)? {
        KeyFile::Share(s) => Ok(s),
        _ => Err(Error::key_file(
            path,
            "not a key share file (share-NAME.json)",
        )),
    }
}

/// Writes a threshold `public.json` (mode 0644).
pub fn write_threshold_public(
    pk: &PublicKey,
    th: &ThresholdPublic,
    path: &Path,
    overwrite: bool,
) -> Result<()> {
    let j = PublicJson {
        threshold: Some(ThresholdJson {
            parties: th.parties.clone(),
            needed: th.needed,
            v: b64_encode(&th.v),
            verification_keys: th.verification_keys.iter().map(b64_encode).collect(),
        }),
        ..public_json(pk)
    };
    let text = serde_json::to_string_pretty(&j).unwrap_or_default() + "\n";
    write_atomic(path, text.as_bytes(), 0o644, overwrite)
}

/// Writes a party's `share-NAME.json` (mode 0600).
pub fn write_share(share: &KeyShare, path: &Path, overwrite: bool) -> Result<()> {
    let j = ShareJson {
        kind: SHARE_KIND.into(),
        version: VERSION,
        key_id: share.key_id().into(),
        party: share.party().into(),
        index: share.index(),
        share: b64_encode(share.secret()),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&j).unwrap_or_default() + "\n");
    drop(Zeroizing::new(j.share));
    write_atomic(path, text.as_bytes(), 0o600, overwrite)
}

/// The public key file's JSON text.
pub fn public_to_json(pk: &PublicKey) -> String {
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string_pretty(&public_json(pk)).unwrap_or_default() + "\n"
}

/// Writes `public.json` (mode 0644).
pub fn write_public(pk: &PublicKey, path: &Path, overwrite: bool) -> Result<()> {
    write_atomic(path, public_to_json(pk).as_bytes(), 0o644, overwrite)
}

/// Writes `private.json` (mode 0600).
pub fn write_private(sk: &PrivateKey, path: &Path, overwrite: bool) -> Result<()> {
    let j = PrivateJson {
        public: PublicJson {
            kind: PRIVATE_KIND.into(),
            ..public_json(sk.public_key())
        },
        p: b64_encode(sk.p()),
        q: b64_encode(sk.q()),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&j).unwrap_or_default() + "\n");
    let j = Zeroizing::new((j.p, j.q));
    drop(j);
    write_atomic(path, text.as_bytes(), 0o600, overwrite)
}

/// Writes a file through a temporary file in the same folder (created 0600), then renames it into
/// place: a crash leaves either no file or the complete one. Refuses an existing file unless
/// `overwrite`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !overwrite && path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists (use --force to overwrite)",
            ),
        ));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".cipherlake-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    set_mode(tmp.path(), mode)?;
    if overwrite {
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    } else {
        tmp.persist_noclobber(path)
            .map_err(|e| Error::io(path, e.error))?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_big_endian_without_padding() {
        // 65537 = 0x010001 → AQAB, as in every JWK.
        assert_eq!(b64_encode(&Integer::from(65537)), "AQAB");
        let p = Path::new("k.json");
        assert_eq!(b64_decode("AQAB", "e", p).unwrap(), 65537);
        assert!(b64_decode("A*AB", "e", p)
            .unwrap_err()
            .to_string()
            .contains("`e`"));
    }

    #[test]
    fn small_key_files_are_refused() {
        let key = crate::paillier::hazmat::fixture_key_512();
        let text = public_to_json(key.public_key());
        let err = parse(&text, Path::new("small.json"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("small.json") && err.contains("512-bit key refused"),
            "{err}"
        );
    }

    #[test]
    fn garbage_and_wrong_kind() {
        let p = Path::new("x.json");
        let e = parse("{\"kind\": \"cipherlake.public_key\", \"version\": 1", p)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a valid JSON key file"), "{e}");
        let e = parse("{\"kind\": \"something\"}", p).err().unwrap();
        assert!(e.to_string().contains("unknown key file kind"), "{e}");
        let e = parse("[1,2]", p).err().unwrap();
        assert!(e.to_string().contains("x.json"), "{e}");
    }
}
