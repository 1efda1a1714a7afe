//! A hospital's audit log: one JSON line per decision, each committing to the one before it.
//!
//! Line `i` (from 0) is `{"kind":"cipherlake.audit","version":1,"seq":i,"prev":H,"time_unix":T,
//! "event":{…}}`, chained as [`super::chain`] says: editing, removing, inserting or reordering any
//! line is caught; removing lines from the end only against a head recorded elsewhere
//! (`cipherlake audit verify LOG --head SEQ:SHA256`), which is why every append prints its head.
//!
//! docs/FORMAT.md gives the layout and a Python check of the chain.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chain::Chain;
pub use super::chain::{Checked, Head};
use crate::error::Result;

const KIND: &str = "cipherlake.audit";
const VERSION: u32 = 1;

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

fn chain(path: &Path) -> Chain {
    Chain::new(path, "audit log", KIND, VERSION)
}

/// Each line parsed as an entry (the chain checks only the common fields).
fn entry(c: &Chain, seq: u64, line: &[u8]) -> Result<Entry> {
    serde_json::from_slice(line).map_err(|e| {
        c.error(format!(
            "line {} (entry {seq}) is not an audit entry: {e}",
            seq + 1
        ))
    })
}

/// An audit log on a local file system.
#[derive(Debug)]
pub struct AuditLog {
    chain: Chain,
}

impl AuditLog {
    /// Opens (or creates) the log at `path` and checks its chain: a log that cannot be written
    /// or whose chain is broken is refused before any work is done.
    pub fn open(path: &Path) -> Result<Self> {
        let log = AuditLog { chain: chain(path) };
        log.chain.check_writable()?;
        Ok(log)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        self.chain.path()
    }

    /// The last event that `wanted` accepts (events are checked as they are read).
    pub fn last_event(
        &self,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<Option<serde_json::Value>> {
        let mut last = None;
        self.chain.walk(None, |seq, line| {
            let e = entry(&self.chain, seq, line)?;
            if wanted(&e.event) {
                last = Some(e.event);
            }
            Ok(())
        })?;
        Ok(last)
    }

    /// Appends `event` under an exclusive lock (after checking the chain again) and syncs it to
    /// disk; returns the new head.
    pub fn append(&self, event: serde_json::Value) -> Result<Head> {
        let c = &self.chain;
        c.append(
            |seq, line| entry(c, seq, line).map(drop),
            |seq, prev| {
                let e = Entry {
                    kind: KIND.to_owned(),
                    version: VERSION,
                    seq,
                    prev: prev.to_owned(),
                    time_unix: super::signature::now(),
                    event,
                };
                serde_json::to_vec(&e).map_err(|e| c.error(e.to_string()))
            },
        )
    }
}

/// Checks the whole chain of the log at `path`; with `head`, also that the log still holds that
/// entry unchanged (so nothing was removed from its end since the head was recorded).
pub fn verify(path: &Path, head: Option<&Head>) -> Result<Checked> {
    let c = chain(path);
    if !path.exists() {
        return Err(crate::error::Error::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    c.walk(head, |seq, line| entry(&c, seq, line).map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::PathBuf;

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
        let log = AuditLog {
            chain: chain(&path),
        };
        assert!(log.append(json!({})).is_err());
    }

    #[test]
    fn the_last_event_wanted() {
        let (_d, path, _) = log_with(3);
        let log = AuditLog::open(&path).unwrap();
        let last = |f: &dyn Fn(&serde_json::Value) -> bool| log.last_event(f).unwrap();
        assert_eq!(last(&|e| e.get("i").is_some()).unwrap()["i"], json!(2));
        assert_eq!(last(&|e| e["i"] == json!(0)).unwrap()["i"], json!(0));
        assert_eq!(last(&|e| e.get("nothing").is_some()), None);
    }
}
