//! Hash-chained JSON-lines files: the audit log of each hospital and the consortium's release
//! ledger. Line `i` (from 0) is a JSON object with at least `kind`, `version`, `seq` (= `i`) and
//! `prev`: the SHA-256 (hex) of line `i − 1`'s bytes without its newline, 64 zeros for line 0.
//! Editing, removing, inserting or reordering a line breaks the link of the line after it;
//! lines cut from the end are caught only against a head recorded elsewhere ([`Head`]).
//!
//! Appends take an exclusive lock on the file, re-check the whole chain under it and write one
//! line with one `write` followed by `fsync`, so concurrent writers cannot fork the chain and a
//! crash leaves at most one incomplete last line, which is reported, never extended.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// `prev` of line 0.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The last line of a chain: its number and the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// 0-based line number.
    pub seq: u64,
    /// SHA-256 (hex) of the line.
    pub sha256: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.sha256)
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    /// `SEQ:SHA256`, as [`Head`]'s `Display` writes it.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not a log head: expected SEQ:SHA256 (as `partial-decrypt` prints it)",
                crate::error::preview(s)
            )
        };
        let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
        let seq = seq.parse().map_err(|_| bad())?;
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Head { seq, sha256: hash })
    }
}

/// What a walk of the whole chain found.
#[derive(Debug)]
pub struct Checked {
    /// Lines in the file.
    pub entries: u64,
    /// The last line, if any.
    pub head: Option<Head>,
}

/// The fields every line has.
#[derive(Deserialize)]
struct Header {
    kind: String,
    version: u32,
    seq: u64,
    prev: String,
}

/// One chained file: its path, and the `kind` and `version` of its lines.
#[derive(Clone, Debug)]
pub struct Chain {
    path: PathBuf,
    kind: &'static str,
    version: u32,
    /// What the file is called in messages ("audit log", "ledger").
    what: &'static str,
}

impl Chain {
    /// The chain at `path`, of lines of `kind` and `version`.
    pub fn new(path: &Path, what: &'static str, kind: &'static str, version: u32) -> Self {
        Chain {
            path: path.to_path_buf(),
            kind,
            version,
            what,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error about this file.
    pub fn error(&self, reason: impl Into<String>) -> Error {
        Error::Chain {
            what: self.what,
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn open_rw(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Walks the chain from its start, giving each line (number, bytes) to `each`; `want` is a
    /// head the file must still hold unchanged. A missing file is an empty chain.
    pub fn walk(
        &self,
        want: Option<&Head>,
        each: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<Checked> {
        match File::open(&self.path) {
            Ok(f) => self.walk_file(&f, want, each),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.walk_empty(want),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    fn walk_empty(&self, want: Option<&Head>) -> Result<Checked> {
        match want {
            Some(w) => Err(self.error(format!(
                "it does not exist but the recorded head is entry {}: it was removed",
                w.seq
            ))),
            None => Ok(Checked {
                entries: 0,
                head: None,
            }),
        }
    }

    fn walk_file(
        &self,
        file: &File,
        want: Option<&Head>,
        mut each: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<Checked> {
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut prev = GENESIS.to_owned();
        let mut seq = 0u64;
        let mut found = want.is_none();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                break;
            }
            let at = format!("line {} (entry {seq})", seq + 1);
            if line.pop() != Some(b'\n') {
                return Err(self.error(format!(
                    "{at} is incomplete (a write was interrupted): move the file aside and start a new one; nothing is appended to it"
                )));
            }
            let h: Header = serde_json::from_slice(&line)
                .map_err(|e| self.error(format!("{at} is not an entry of it: {e}")))?;
            if h.kind != self.kind || h.version != self.version {
                return Err(self.error(format!(
                    "{at} is `{}` version {}, not `{}` version {}",
                    crate::error::preview(&h.kind),
                    h.version,
                    self.kind,
                    self.version
                )));
            }
            if h.seq != seq {
                return Err(self.error(format!(
                    "{at} says it is entry {}: entries were removed, inserted or reordered",
                    h.seq
                )));
            }
            if h.prev != prev {
                return Err(self.error(if seq == 0 {
                    format!("{at} does not start the chain: earlier entries were removed")
                } else {
                    format!("{at} does not commit to the line before it: an entry before it was edited, removed or reordered")
                }));
            }
            each(seq, &line)?;
            prev = hex::encode(Sha256::digest(&line));
            if let Some(w) = want {
                if w.seq == seq {
                    if w.sha256 != prev {
                        return Err(self.error(format!(
                            "entry {seq} is not the recorded head {w}: it was rewritten from there on"
                        )));
                    }
                    found = true;
                }
            }
            seq += 1;
        }
        if let (false, Some(w)) = (found, want) {
            let ends = match seq {
                0 => "it is empty".to_owned(),
                n => format!("it ends at entry {}", n - 1),
            };
            return Err(self.error(format!(
                "{ends} but the recorded head is entry {}: entries were removed from its end",
                w.seq
            )));
        }
        Ok(Checked {
            entries: seq,
            head: seq.checked_sub(1).map(|s| Head {
                seq: s,
                sha256: prev,
            }),
        })
    }

    /// Checks that the file can be opened for appending (creating it) and that its chain holds.
    pub fn check_writable(&self) -> Result<Checked> {
        let file = self.open_rw()?;
        self.walk_file(&file, None, |_, _| Ok(()))
    }

    /// Appends the line `make(seq, prev)` returns, under an exclusive lock, after checking the
    /// whole chain again (`each` sees every existing line, as in [`walk`](Self::walk)); syncs it
    /// to disk and returns the new head.
    pub fn append(
        &self,
        each: impl FnMut(u64, &[u8]) -> Result<()>,
        make: impl FnOnce(u64, &str) -> Result<Vec<u8>>,
    ) -> Result<Head> {
        let mut file = self.open_rw()?;
        file.lock().map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&self.path, e))?;
        let checked = self.walk_file(&file, None, each)?;
        let seq = checked.entries;
        let prev = checked
            .head
            .map_or_else(|| GENESIS.to_owned(), |h| h.sha256);
        let mut line = make(seq, &prev)?;
        if line.contains(&b'\n') {
            return Err(self.error("an entry may not hold a newline"));
        }
        let head = Head {
            seq,
            sha256: hex::encode(Sha256::digest(&line)),
        };
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&self.path, e))?;
        // The lock is released when `file` is closed.
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_strictly() {
        assert!("3".parse::<Head>().is_err());
        assert!("x:00".parse::<Head>().is_err());
        assert!(format!("1:{}", "g".repeat(64)).parse::<Head>().is_err());
        let h: Head = format!("1:{GENESIS}").parse().unwrap();
        assert_eq!(h.to_string().parse::<Head>().unwrap(), h);
    }
}
