//! A decryption request: the document `query --request` writes next to an encrypted result, and
//! the only thing a hospital decides on. It names the SQL, the tables, every lake file the query
//! read (with its owner's signature), the keys, the roster, the requester and the result file's
//! hash, and carries an id that binds all of it (docs/FORMAT.md). A hospital never trusts the
//! result's own tags: it re-runs the request (`release::verify`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::owner::{read_small_limit, to_json};
use super::signature::FileSignature;
use crate::digest::Labelled;
use crate::error::{Error, Result};

/// `kind` of a request file.
pub const KIND: &str = "cipherlake.request";
const VERSION: u32 = 2;
const DOMAIN: &str = "cipherlake.request_id.v2";
/// A request lists at most this many files (each a signature's worth of JSON).
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A decryption request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Always [`KIND`].
    pub kind: String,
    /// Format version (1).
    pub version: u32,
    /// The SQL: one query over the tables below.
    pub sql: String,
    /// The tables the SQL names, as registered.
    pub tables: Vec<TableEntry>,
    /// Every lake file the query read, with its signature.
    pub files: Vec<FileEntry>,
    /// The Paillier key ids of the query's encrypted columns.
    pub key_ids: Vec<String>,
    /// The roster the files are signed under.
    pub roster_id: String,
    /// Who asks (a name the hospitals know).
    pub requester: String,
    /// The requester's age X25519 recipient (`age1…`): hospitals seal their partial
    /// decryptions to it, so that only the requester can combine them.
    pub recipient: String,
    /// The encrypted result file.
    pub result: ResultEntry,
    /// The labelled digest of everything above (lowercase hex).
    pub request_id: String,
}

/// A table of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    /// The table's name in the SQL.
    pub name: String,
    /// Where it was registered: an absolute local path (a folder or a file).
    pub location: String,
}

/// A lake file a request's query read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// The table it belongs to.
    pub table: String,
    /// Its absolute local path.
    pub location: String,
    /// Its owner's signature (the contents of its signature file).
    pub signature: FileSignature,
}

/// The result file a request is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultEntry {
    /// Lowercase hex SHA-256 of the result file.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Request {
    /// A request with its id computed.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sql: String,
        tables: Vec<TableEntry>,
        files: Vec<FileEntry>,
        key_ids: Vec<String>,
        roster_id: String,
        requester: String,
        recipient: String,
        result: ResultEntry,
    ) -> Self {
        let mut r = Request {
            kind: KIND.into(),
            version: VERSION,
            sql,
            tables,
            files,
            key_ids,
            roster_id,
            requester,
            recipient,
            result,
            request_id: String::new(),
        };
        r.request_id = r.digest();
        r
    }

    /// The request id: the labelled digest under `cipherlake.request_id.v1` of every field, in
    /// the order of docs/FORMAT.md.
    fn digest(&self) -> String {
        let mut h = Labelled::new(DOMAIN);
        h.item("sql", self.sql.as_bytes());
        h.u64("tables", self.tables.len() as u64);
        for t in &self.tables {
            h.item("table.name", t.name.as_bytes());
            h.item("table.location", t.location.as_bytes());
        }
        h.u64("files", self.files.len() as u64);
        for f in &self.files {
            let s = &f.signature;
            h.item("file.table", f.table.as_bytes());
            h.item("file.location", f.location.as_bytes());
            h.item("file.owner", s.owner.as_bytes());
            h.item("file.key_id", s.key_id.as_bytes());
            h.item("file.path", s.path.as_bytes());
            h.u64("file.size", s.size);
            h.item("file.sha256", s.sha256.as_bytes());
            h.u64("file.signed_at", s.signed_at);
            h.item("file.signature", s.signature.as_bytes());
        }
        h.u64("key_ids", self.key_ids.len() as u64);
        for k in &self.key_ids {
            h.item("key_id", k.as_bytes());
        }
        h.item("roster_id", self.roster_id.as_bytes());
        h.item("requester", self.requester.as_bytes());
        h.item("recipient", self.recipient.as_bytes());
        h.item("result.sha256", self.result.sha256.as_bytes());
        h.u64("result.size", self.result.size);
        h.hex()
    }

    /// Reads a request file: strict fields, the right kind and version, and an id that is the
    /// digest of its contents.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Data(format!("request {}: {reason}", path.display()));
        let text = read_small_limit(path, MAX_BYTES)?;
        let r: Request =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a request file: {e}")))?;
        if r.kind != KIND || r.version != VERSION {
            return Err(bad(format!(
                "not a version {VERSION} request (kind `{}`, version {})",
                crate::error::preview(&r.kind),
                r.version
            )));
        }
        if r.digest() != r.request_id {
            return Err(bad(
                "its request_id is not the digest of its contents: the request was edited after it was made".into(),
            ));
        }
        Ok(r)
    }

    /// The request as its file's JSON.
    pub fn to_json(&self) -> Result<String> {
        to_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        let sig = FileSignature {
            kind: "cipherlake.file_signature".into(),
            version: 1,
            owner: "a".into(),
            key_id: "k".into(),
            path: "hospital=a/f.parquet".into(),
            size: 10,
            sha256: "00".repeat(32),
            signed_at: 1,
            signature: "s".into(),
        };
        Request::new(
            "SELECT 1".into(),
            vec![TableEntry {
                name: "t".into(),
                location: "/lake".into(),
            }],
            vec![FileEntry {
                table: "t".into(),
                location: "/lake/hospital=a/f.parquet".into(),
                signature: sig,
            }],
            vec!["k".into()],
            "r".into(),
            "analyst".into(),
            "age1recipient".into(),
            ResultEntry {
                sha256: "11".repeat(32),
                size: 5,
            },
        )
    }

    #[test]
    fn the_id_covers_every_field_and_an_edit_is_refused() {
        let r = request();
        let edits: [fn(&mut Request); 8] = [
            |r| r.sql.push(' '),
            |r| r.tables[0].location.push('x'),
            |r| r.files[0].signature.size += 1,
            |r| r.files.clear(),
            |r| r.requester.push('x'),
            |r| r.recipient.push('x'),
            |r| r.result.size += 1,
            |r| r.roster_id.push('x'),
        ];
        for edit in edits {
            let mut e = r.clone();
            edit(&mut e);
            assert_ne!(e.digest(), r.request_id);
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, r.to_json().unwrap()).unwrap();
        assert_eq!(Request::load(&p).unwrap(), r);
        std::fs::write(&p, r.to_json().unwrap().replace("SELECT 1", "SELECT 2")).unwrap();
        let err = Request::load(&p).unwrap_err().to_string();
        assert!(err.contains("edited after it was made"), "{err}");
    }
}
