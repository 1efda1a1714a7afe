//! Key files (JSON, format version 2): `public.json`, `private.json` and `share-NAME.json`, the
//! last two written 0600. Loading re-validates everything: only known fields, sizes, every public
//! parameter (`PublicKey::new`, `PublicKey::with_threshold`), the key id recomputed as the
//! fingerprint of all of them, the primes against n. Errors name the file and the field and never
//! quote a value read from the file: a share or a prime may sit in the wrong field.
//! A hospital pins the key it accepts with its key id (`check_pinned`).

use std::path::{Path, PathBuf};

use rug::Integer;
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{preview, Error, Result};
use crate::lake::atomic::{FileSet, Privacy};
pub use crate::paillier::parse_key_id;
use crate::paillier::threshold::{valid_party_name, Dealt, KeyShare, ThresholdPublic, MAX_PARTIES};
use crate::paillier::wire::{b64_decode, b64_encode};
use crate::paillier::{PrivateKey, PublicKey, MAX_BITS, MIN_BITS};

/// `kind` of a public key file.
pub const PUBLIC_KIND: &str = "cipherlake.public_key";
/// `kind` of a private key file.
pub const PRIVATE_KIND: &str = "cipherlake.private_key";
/// `kind` of a threshold key share file.
pub const SHARE_KIND: &str = "cipherlake.key_share";
/// The key file format version this build reads and writes.
pub const VERSION: u64 = 2;

/// Key files larger than this are refused before they are read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The longest base64url integer a key file may hold: one below n² for the largest n.
const MAX_INT_CHARS: usize = (2 * MAX_BITS as usize).div_ceil(6) + 4;

const PUBLIC_FIELDS: [&str; 7] = ["kind", "version", "key_id", "bits", "n", "hs", "threshold"];
const THRESHOLD_FIELDS: [&str; 4] = ["parties", "needed", "v", "verification_keys"];
const PRIVATE_FIELDS: [&str; 8] = ["kind", "version", "key_id", "bits", "n", "hs", "p", "q"];
const SHARE_FIELDS: [&str; 6] = ["kind", "version", "key_id", "party", "index", "share"];
/// Fields that only secret files hold: a public key file with one of them is refused.
const SECRET_FIELDS: [&str; 3] = ["p", "q", "share"];

/// Any key file cipherlake reads.
pub enum KeyFile {
    /// `public.json` (`threshold()` is set for a threshold key).
    Public(PublicKey),
    /// `private.json`
    Private(PrivateKey),
    /// `share-NAME.json`: one party's share of a threshold key.
    Share(KeyShare),
}

/// A parsed JSON document whose strings are wiped when it is dropped (it may hold a secret).
struct Wiped(Value);

impl Drop for Wiped {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(a) => a.iter_mut().for_each(wipe),
                Value::Object(o) => o.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

/// Typed access to the fields of one JSON object, with errors that name the field only.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
    /// `threshold.` for the fields of the threshold block.
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::key_file(self.path, reason)
    }

    fn bad(&self, name: &str, what: &str) -> Error {
        self.err(format!("field `{}{name}` {what}", self.prefix))
    }

    /// The value of `name`; JSON `null` counts as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn str(&self, name: &str) -> Result<&'a str> {
        match self.get(name) {
            None => Err(self.bad(name, "is missing")),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(self.bad(name, "must be a string")),
        }
    }

    fn uint(&self, name: &str) -> Result<u64> {
        match self.get(name) {
            None => Err(self.bad(name, "is missing")),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| self.bad(name, "must be a whole number")),
        }
    }

    fn decode(&self, name: &str, text: &str) -> Result<Integer> {
        if text.len() > MAX_INT_CHARS {
            return Err(self.bad(
                name,
                &format!("is too long for a key of at most {MAX_BITS} bits"),
            ));
        }
        b64_decode(text).map_err(|why| self.bad(name, why))
    }

    fn int(&self, name: &str) -> Result<Integer> {
        self.decode(name, self.str(name)?)
    }

    fn opt_int(&self, name: &str) -> Result<Option<Integer>> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.int(name).map(Some),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<&'a str>> {
        let list = match self.get(name) {
            None => return Err(self.bad(name, "is missing")),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(self.bad(name, "must be a list of strings")),
        };
        list.iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.bad(name, "must be a list of strings"))
            })
            .collect()
    }

    /// Refuses any field not in `allowed`.
    fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(self.err(format!(
                "unknown field `{}{}` (a version {VERSION} key file has only {})",
                self.prefix,
                preview(k),
                allowed.join(", ")
            ))),
        }
    }
}

/// Parses key file text; `path` is only used in error messages.
pub fn parse(text: &str, path: &Path) -> Result<KeyFile> {
    let doc = Wiped(
        serde_json::from_str(text)
            .map_err(|e| Error::key_file(path, format!("not a valid JSON key file: {e}")))?,
    );
    let obj = doc
        .0
        .as_object()
        .ok_or_else(|| Error::key_file(path, "not a JSON object: not a cipherlake key file"))?;
    let f = Fields {
        obj,
        path,
        prefix: "",
    };
    let kind = match f.get("kind") {
        None => return Err(f.err("no `kind` field: not a cipherlake key file")),
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err(f.bad("kind", "must be a string")),
    };
    if ![PUBLIC_KIND, PRIVATE_KIND, SHARE_KIND].contains(&kind) {
        return Err(f.err(format!("unknown key file kind `{}`", preview(kind))));
    }
    match f.uint("version")? {
        VERSION => {}
        1 => return Err(f.err(
            "key file format version 1 is refused: its key id covered n only, so an edited DJN \
                 base or threshold block went unnoticed. Run the key ceremony again with this \
                 version (`cipherlake keygen`), have every hospital record the new key id, and \
                 encrypt the lake again under the new key",
        )),
        v => {
            return Err(f.err(format!(
                "format version {v} is not supported (this build reads {VERSION})"
            )))
        }
    }
    match kind {
        PUBLIC_KIND => {
            if let Some(s) = SECRET_FIELDS.iter().find(|s| obj.contains_key(**s)) {
                return Err(f.err(format!(
                    "a public key file must not hold `{s}`: is this a private key or a share relabelled as public?"
                )));
            }
            f.only(&PUBLIC_FIELDS)?;
            Ok(KeyFile::Public(public_from(&f)?))
        }
        PRIVATE_KIND => {
            f.only(&PRIVATE_FIELDS)?;
            Ok(KeyFile::Private(private_from(&f)?))
        }
        _ => {
            f.only(&SHARE_FIELDS)?;
            Ok(KeyFile::Share(share_from(&f)?))
        }
    }
}

fn public_from(f: &Fields) -> Result<PublicKey> {
    let bits = f.uint("bits")?;
    if bits < MIN_BITS as u64 {
        return Err(f.err(format!(
            "{bits}-bit key refused: at least {MIN_BITS} bits are required"
        )));
    }
    if bits > MAX_BITS as u64 {
        return Err(f.err(format!(
            "{bits}-bit key refused: at most {MAX_BITS} bits are accepted"
        )));
    }
    let n = f.int("n")?;
    if n.significant_bits() as u64 != bits {
        return Err(f.err(format!(
            "n has {} bits but the file says {bits} (truncated?)",
            n.significant_bits()
        )));
    }
    let hs = f.opt_int("hs")?;
    let mut pk = PublicKey::new(n, hs).map_err(|e| f.err(e.to_string()))?;
    match f.get("threshold") {
        None => {}
        Some(Value::Object(t)) => {
            let tf = Fields {
                obj: t,
                path: f.path,
                prefix: "threshold.",
            };
            tf.only(&THRESHOLD_FIELDS)?;
            let th = ThresholdPublic {
                parties: tf
                    .strings("parties")?
                    .into_iter()
                    .map(String::from)
                    .collect(),
                needed: usize::try_from(tf.uint("needed")?).unwrap_or(usize::MAX),
                v: tf.int("v")?,
                verification_keys: tf
                    .strings("verification_keys")?
                    .into_iter()
                    .map(|s| tf.decode("verification_keys", s))
                    .collect::<Result<_>>()?,
            };
            pk = pk.with_threshold(th).map_err(|e| f.err(e.to_string()))?;
        }
        Some(_) => return Err(f.bad("threshold", "must be an object")),
    }
    let id = f.str("key_id")?;
    if id != pk.key_id() {
        return Err(f.err(format!(
            "key_id {} does not match the key's parameters, whose fingerprint is {}: the file was edited or damaged",
            preview(id),
            pk.key_id()
        )));
    }
    Ok(pk)
}

fn private_from(f: &Fields) -> Result<PrivateKey> {
    let pk = public_from(f)?;
    let p = f.int("p")?;
    let q = f.int("q")?;
    if Integer::from(&p * &q) != *pk.n() {
        return Err(f.err("p·q does not equal n: the file is corrupt"));
    }
    PrivateKey::from_primes(p, q, pk.hs().cloned()).map_err(|e| f.err(e.to_string()))
}

fn share_from(f: &Fields) -> Result<KeyShare> {
    let key_id = f.str("key_id")?;
    if !crate::paillier::is_key_id(key_id) {
        return Err(f.bad("key_id", "is not a key id (64 lowercase hex digits)"));
    }
    let party = f.str("party")?;
    if !valid_party_name(party) {
        return Err(f.bad(
            "party",
            "is not a party name (letters, digits, '-', '_', '.')",
        ));
    }
    let index = f.uint("index")?;
    if index == 0 || index > MAX_PARTIES as u64 {
        return Err(f.bad("index", &format!("must be between 1 and {MAX_PARTIES}")));
    }
    let share = f.int("share")?;
    Ok(KeyShare::new(
        key_id.to_owned(),
        party.to_owned(),
        index as usize,
        share,
    ))
}

/// Refuses a key whose id is not the pinned one (when a pin is given).
pub fn check_pinned(key_id: &str, pin: Option<&str>, path: &Path) -> Result<()> {
    match pin {
        Some(pin) if pin != key_id => Err(Error::KeyMismatch {
            expected: pin.to_owned(),
            found: key_id.to_owned(),
            context: format!(
                " ({} is not the pinned key: one of its public parameters differs from the key the ceremony made)",
                path.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// Reads a key file of any kind.
pub fn load(path: &Path) -> Result<KeyFile> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(Error::key_file(
            path,
            format!("{size} bytes is too large for a key file"),
        ));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::key_file(path, "not a key file: it is not UTF-8 text (JSON)"))?;
    parse(text, path)
}

/// Reads a public key file (a private key or a share is refused: the query path never takes one).
pub fn load_public(path: &Path) -> Result<PublicKey> {
    match load(path)? {
        KeyFile::Public(pk) => Ok(pk),
        KeyFile::Private(_) | KeyFile::Share(_) => Err(Error::key_file(
            path,
            "this is a private key or a key share; pass the public key file (public.json) instead",
        )),
    }
}

/// Reads a threshold public key file (its parameters are required).
pub fn load_threshold_public(path: &Path) -> Result<PublicKey> {
    let pk = load_public(path)?;
    if pk.threshold().is_none() {
        return Err(Error::key_file(
            path,
            "this public key is not a threshold key (it has no parties)",
        ));
    }
    Ok(pk)
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

#[derive(Serialize)]
struct ThresholdJson<'a> {
    parties: &'a [String],
    needed: usize,
    v: String,
    verification_keys: Vec<String>,
}

#[derive(Serialize)]
struct KeyJson<'a> {
    kind: &'a str,
    version: u64,
    key_id: &'a str,
    bits: u32,
    n: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<ThresholdJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<&'a str>,
}

#[derive(Serialize)]
struct ShareJson<'a> {
    kind: &'a str,
    version: u64,
    key_id: &'a str,
    party: &'a str,
    index: usize,
    share: &'a str,
}

fn key_json<'a>(pk: &'a PublicKey, kind: &'a str) -> KeyJson<'a> {
    KeyJson {
        kind,
        version: VERSION,
        key_id: pk.key_id(),
        bits: pk.bits(),
        n: b64_encode(pk.n()),
        hs: pk.hs().map(b64_encode),
        threshold: pk.threshold().map(|th| ThresholdJson {
            parties: &th.parties,
            needed: th.needed,
            v: b64_encode(&th.v),
            verification_keys: th.verification_keys.iter().map(b64_encode).collect(),
        }),
        p: None,
        q: None,
    }
}

/// Pretty JSON and a newline, into a buffer reserved up front (no reallocation leaves a copy of
/// a secret behind) that is wiped on drop.
fn to_text<T: Serialize>(value: &T) -> Zeroizing<String> {
    let mut buf = Zeroizing::new(Vec::with_capacity(64 * 1024));
    // Serialising strings and numbers into memory cannot fail.
    let _ = serde_json::to_writer_pretty(&mut *buf, value);
    buf.push(b'\n');
    Zeroizing::new(String::from_utf8_lossy(&buf).into_owned())
}

/// The text of `public.json` (single or threshold key).
pub fn public_json(pk: &PublicKey) -> String {
    to_text(&key_json(pk, PUBLIC_KIND)).to_string()
}

/// The text of `private.json`.
pub fn private_json(sk: &PrivateKey) -> Zeroizing<String> {
    let p = Zeroizing::new(b64_encode(sk.p()));
    let q = Zeroizing::new(b64_encode(sk.q()));
    let mut j = key_json(sk.public_key(), PRIVATE_KIND);
    j.p = Some(&p);
    j.q = Some(&q);
    to_text(&j)
}

/// The text of a party's `share-NAME.json`.
pub fn share_json(share: &KeyShare) -> Zeroizing<String> {
    let s = Zeroizing::new(b64_encode(share.secret()));
    to_text(&ShareJson {
        kind: SHARE_KIND,
        version: VERSION,
        key_id: share.key_id(),
        party: share.party(),
        index: share.index(),
        share: &s,
    })
}

/// The files of a key set in `dir`, in the order `write_pair` and `write_dealt` fill them:
/// `public.json`, then `private.json` (no parties) or one `share-NAME.json` per party.
pub fn key_set_paths(dir: &Path, parties: Option<&[String]>) -> Vec<(PathBuf, Privacy)> {
    let mut v = vec![(dir.join("public.json"), Privacy::Shared)];
    match parties {
        None => v.push((dir.join("private.json"), Privacy::Secret)),
        Some(ps) => v.extend(
            ps.iter()
                .map(|p| (dir.join(format!("share-{p}.json")), Privacy::Secret)),
        ),
    }
    v
}

/// Fills a file set begun on `key_set_paths(dir, None)` with a key pair.
pub fn write_pair(set: &mut FileSet, sk: &PrivateKey) -> Result<()> {
    set.write(0, public_json(sk.public_key()).as_bytes())?;
    set.write(1, private_json(sk).as_bytes())
}

/// Fills a file set begun on `key_set_paths(dir, Some(parties))` with a dealt threshold key.
pub fn write_dealt(set: &mut FileSet, dealt: &Dealt) -> Result<()> {
    set.write(0, public_json(&dealt.public).as_bytes())?;
    for (i, s) in dealt.shares.iter().enumerate() {
        set.write(i + 1, share_json(s).as_bytes())?;
    }
    Ok(())
}

/// Writes `public.json` alone (through a temporary file renamed into place).
pub fn write_public(pk: &PublicKey, path: &Path, overwrite: bool) -> Result<()> {
    let mut set = FileSet::begin(&[(path.to_owned(), Privacy::Shared)], overwrite)?;
    set.write(0, public_json(pk).as_bytes())?;
    set.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::hazmat;

    #[test]
    fn small_key_files_are_refused() {
        let key = hazmat::fixture_key_512();
        let text = public_json(key.public_key());
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
        let e = parse("{\"kind\": \"cipherlake.public_key\", \"version\": 2", p)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a valid JSON key file"), "{e}");
        let e = parse("{\"kind\": \"something\", \"version\": 2}", p)
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown key file kind"), "{e}");
        let e = parse("[1,2]", p).err().unwrap();
        assert!(e.to_string().contains("x.json"), "{e}");
        let e = parse("{\"kind\": \"cipherlake.key_share\", \"version\": 1}", p)
            .err()
            .unwrap();
        assert!(e.to_string().contains("version 1 is refused"), "{e}");
    }

    #[test]
    fn secret_values_in_the_wrong_field_are_never_echoed() {
        let secret = "c2VjcmV0LXNoYXJlLXZhbHVlLXRoYXQtbXVzdC1uZXZlci1sZWFr";
        let cases = [
            format!(r#"{{"kind":"cipherlake.key_share","version":2,"key_id":"{}","party":"a","index":"{secret}","share":"{secret}"}}"#, "ab".repeat(32)),
            format!(r#"{{"kind":"cipherlake.key_share","version":2,"key_id":"{secret}","party":"a","index":1,"share":"{secret}"}}"#),
            format!(r#"{{"kind":"cipherlake.key_share","version":2,"key_id":"{}","party":"{secret}!","index":1,"share":"{secret}"}}"#, "ab".repeat(32)),
            format!(r#"{{"kind":"cipherlake.private_key","version":2,"key_id":"x","bits":"{secret}","n":"AQAB","p":"{secret}","q":"x"}}"#),
            r#"{"kind":"cipherlake.private_key","version":2,"key_id":"x","bits":1.4588970513292935e+308,"n":"AQAB","p":"x","q":"x"}"#.to_owned(),
        ];
        for text in cases {
            let e = parse(&text, Path::new("s.json")).err().unwrap().to_string();
            assert!(e.contains("s.json") && e.contains("field `"), "{e}");
            assert!(!e.contains(secret) && !e.contains("1458897"), "{e}");
        }
    }

    #[test]
    fn a_public_key_file_holding_a_secret_is_refused() {
        let key = hazmat::fixture_key_512();
        let mut v: Value = serde_json::from_str(&private_json(key)).unwrap();
        v["kind"] = PUBLIC_KIND.into();
        let e = parse(&v.to_string(), Path::new("k.json"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("must not hold `p`"), "{e}");
    }

    #[test]
    fn pins_compare_whole_key_ids() {
        let id = "ab".repeat(32);
        assert_eq!(parse_key_id(&id.to_uppercase()).unwrap(), id);
        assert!(parse_key_id(&id[..16]).is_err());
        assert!(check_pinned(&id, Some(&id), Path::new("k")).is_ok());
        assert!(check_pinned(&id, None, Path::new("k")).is_ok());
        let e = check_pinned(&id, Some(&"cd".repeat(32)), Path::new("k.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&id) && e.contains(&"cd".repeat(32)) && e.contains("k.json"),
            "{e}"
        );
    }
}
