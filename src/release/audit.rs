//! A hospital's audit log: one JSON line per decision, each committing to the one before it.
//!
//! Line `i` (from 0) is `{"kind":"cipherlake.audit","version":1,"seq":i,"prev":H,"time_unix":T,
//! "event":{…}}` where `H` is the SHA-256 (hex) of line `i − 1`'s bytes without its newline, and 64
//! zeros for line 0. Editing, removing, inserting or reordering any line breaks the link of the
//! line after it; removing lines from the end is caught only against a head recorded elsewhere
//! (`cipherlake audit verify LOG --head SEQ:SHA256`), which is why every append prints its head.
//! Appends take an exclusive lock on the file, re-check the whole chain under it and write one line
//! with one `write` followed by `fsync`, so two hospitals' runs sharing a log cannot fork it and a
//! crash leaves at most one incomplete last line, which is reported, never extended.
//!
//! docs/FORMAT.md gives the layout and a Python check of the chain.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const KIND: &str = "cipherlake.audit";
const VERSION: u32 = 1;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the log.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    kind: String,
    version: u32,
    seq: u64,
    prev: String,
    time_unix: u64,
    event: serde_json::Value,
}

/// The last entry of a log: its number and the SHA-256 of its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// 0-based entry number.
    pub seq: u64,
    /// SHA-256 (hex) of the entry's line.
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

/// What a check of the whole log found.
#[derive(Debug)]
pub struct Checked {
    /// Entries in the log.
    pub entries: u64,
    /// The last entry, if any.
    pub head: Option<Head>,
}

/// An audit log on a local file system.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
}

fn audit_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Audit {
        log: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Walks the chain of `file` from its start; `want` is a head the log must contain.
fn check_chain(path: &Path, file: &File, want: Option<&Head>) -> Result<Checked> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut prev = GENESIS.to_owned();
    let mut seq = 0u64;
    let mut found = want.is_none();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        let at = format!("line {} (entry {seq})", seq + 1);
        if line.pop() != Some(b'\n') {
            return Err(audit_error(
                path,
                format!("{at} is incomplete (a write was interrupted): move the log aside and start a new one; nothing is appended to it"),
            ));
        }
        let entry: Entry = serde_json::from_slice(&line)
            .map_err(|e| audit_error(path, format!("{at} is not an audit entry: {e}")))?;
        if entry.kind != KIND || entry.version != VERSION {
            return Err(audit_error(
                path,
                format!(
                    "{at} is `{}` version {}, not `{KIND}` version {VERSION}",
                    crate::error::preview(&entry.kind),
                    entry.version
                ),
            ));
        }
        if entry.seq != seq {
            return Err(audit_error(
                path,
                format!(
                    "{at} says it is entry {}: entries were removed, inserted or reordered",
                    entry.seq
                ),
            ));
        }
        if entry.prev != prev {
            return Err(audit_error(
                path,
                if seq == 0 {
                    format!("{at} does not start the chain: earlier entries were removed")
                } else {
                    format!("{at} does not commit to the line before it: an entry before it was edited, removed or reordered")
                },
            ));
        }
        prev = hex::encode(Sha256::digest(&line));
        if let Some(w) = want {
            if w.seq == seq {
                if w.sha256 != prev {
                    return Err(audit_error(
                        path,
                        format!("entry {seq} is not the recorded head {w}: the log was rewritten from there on"),
                    ));
                }
                found = true;
            }
        }
        seq += 1;
    }
    if let (false, Some(w)) = (found, want) {
        let ends = match seq {
            0 => "the log is empty".to_owned(),
            n => format!("the log ends at entry {}", n - 1),
        };
        return Err(audit_error(
            path,
            format!(
                "{ends} but the recorded head is entry {}: entries were removed from its end",
                w.seq
            ),
        ));
    }
    Ok(Checked {
        entries: seq,
        head: seq.checked_sub(1).map(|s| Head {
            seq: s,
            sha256: prev,
        }),
    })
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

impl AuditLog {
    /// Opens (or creates) the log at `path` and checks its chain: a log that cannot be written
    /// or whose chain is broken is refused before any work is done.
    pub fn open(path: &Path) -> Result<Self> {
        let file = open_rw(path)?;
        check_chain(path, &file, None)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` under an exclusive lock (after checking the chain again) and syncs it to
    /// disk; returns the new head.
    pub fn append(&self, event: serde_json::Value) -> Result<Head> {
        let path = &self.path;
        let mut file = open_rw(path)?;
        file.lock().map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(path, e))?;
        let checked = check_chain(path, &file, None)?;
        let entry = Entry {
            kind: KIND.to_owned(),
            version: VERSION,
            seq: checked.entries,
            prev: checked
                .head
                .map_or_else(|| GENESIS.to_owned(), |h| h.sha256),
            time_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            event,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| audit_error(path, e.to_string()))?;
        let head = Head {
            seq: entry.seq,
            sha256: hex::encode(Sha256::digest(&line)),
        };
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(path, e))?;
        // The lock is released when `file` is closed.
        Ok(head)
    }
}

/// Checks the whole chain of the log at `path`; with `head`, also that the log still holds that
/// entry unchanged (so nothing was removed from its end since the head was recorded).
pub fn verify(path: &Path, head: Option<&Head>) -> Result<Checked> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    check_chain(path, &file, head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_with(n: u64) -> (tempfile::TempDir, PathBuf, Vec<Head>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let heads = (0..n)
            .map(|i| log.append(json!({"decision": "granted", "i": i})).unwrap())
            .collect();
        (dir, path, heads)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    fn reason(path: &Path, head: Option<&Head>) -> String {
        verify(path, head).unwrap_err().to_string()
    }

    #[test]
    fn appends_chain_and_verify() {
        let (_d, path, heads) = log_with(4);
        let checked = verify(&path, Some(&heads[3])).unwrap();
        assert_eq!(checked.entries, 4);
        assert_eq!(checked.head.as_ref(), Some(&heads[3]));
        assert!(verify(&path, Some(&heads[1])).is_ok());
        let round: Head = heads[2].to_string().parse().unwrap();
        assert_eq!(round, heads[2]);
        // Reopening keeps the chain going.
        let next = AuditLog::open(&path).unwrap().append(json!({})).unwrap();
        assert_eq!(next.seq, 4);
        assert_eq!(verify(&path, None).unwrap().entries, 5);
    }

    #[test]
    fn an_edited_entry_is_caught_by_the_next() {
        let (_d, path, _) = log_with(3);
        let mut l = lines(&path);
        l[1] = l[1].replace("granted", "refused");
        write_lines(&path, &l);
        let r = reason(&path, None);
        assert!(r.contains("line 3 (entry 2) does not commit"), "{r}");
        // And appending to a broken log is refused.
        assert!(AuditLog::open(&path).is_err());
    }

    #[test]
    fn removed_reordered_and_inserted_entries_are_caught() {
        let (_d, path, heads) = log_with(4);
        let l = lines(&path);
        write_lines(&path, &[l[0].clone(), l[2].clone(), l[3].clone()]);
        assert!(reason(&path, None).contains("says it is entry 2"));
        write_lines(
            &path,
            &[l[0].clone(), l[2].clone(), l[1].clone(), l[3].clone()],
        );
        assert!(reason(&path, None).contains("says it is entry 2"));
        write_lines(&path, &l[1..]);
        assert!(reason(&path, None).contains("says it is entry 1"));
        // Renumbering does not help: the links still break.
        let renumbered: Vec<String> = l[1..]
            .iter()
            .enumerate()
            .map(|(i, s)| s.replacen(&format!("\"seq\":{}", i + 1), &format!("\"seq\":{i}"), 1))
            .collect();
        write_lines(&path, &renumbered);
        assert!(reason(&path, None).contains("does not start the chain"));
        // A truncated end is caught only against a recorded head.
        write_lines(&path, &l[..2]);
        assert!(verify(&path, None).is_ok());
        let r = reason(&path, Some(&heads[3]));
        assert!(r.contains("removed from its end"), "{r}");
        // An edited last entry, against its recorded head.
        let mut last = l.clone();
        last[3] = last[3].replace("granted", "refused");
        write_lines(&path, &last);
        assert!(verify(&path, None).is_ok());
        assert!(reason(&path, Some(&heads[3])).contains("rewritten"));
    }

    #[test]
    fn an_interrupted_write_is_reported_not_extended() {
        let (_d, path, _) = log_with(2);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"kind\":\"cipherlake.au").unwrap();
        let r = reason(&path, None);
        assert!(r.contains("line 3 (entry 2) is incomplete"), "{r}");
        let log = AuditLog { path: path.clone() };
        assert!(log.append(json!({})).is_err());
    }

    #[test]
    fn heads_parse_strictly() {
        assert!("3".parse::<Head>().is_err());
        assert!("x:00".parse::<Head>().is_err());
        assert!(format!("1:{}", "g".repeat(64)).parse::<Head>().is_err());
        assert!(format!("1:{GENESIS}").parse::<Head>().is_ok());
    }
}
