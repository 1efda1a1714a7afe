//! A hospital's release policy: what it requires of every cell it helps decrypt. One typed
//! policy per hospital (a small JSON file, `--policy`); the partial decryptions bind its digest
//! into their proof, and `combine` applies the strictest policy of the parties it uses.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::Labelled;
use crate::error::{Error, Result};

/// `kind` of a policy file.
pub const POLICY_KIND: &str = "cipherlake.release_policy";
/// The policy format this build reads and writes.
pub const POLICY_VERSION: u32 = 1;
/// The default minimum of distinct lake rows per released cell.
pub const DEFAULT_MIN_ROWS: u64 = 11;

/// What every released cell must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Each cell is a sum over at least this many distinct lake rows (at least 2: one row is an
    /// individual value); decrypted counts 1..min_rows−1 are suppressed.
    pub min_rows: u64,
    /// Each cell has rows from at least this many owners (at least 1).
    pub min_owners: u64,
    /// Each owner that contributes to a cell contributes at least this many rows (a site's own
    /// minimum; 1: no such rule).
    #[serde(default = "one")]
    pub min_rows_per_owner: u64,
    /// Whether a cell may hold the rows of one owner only when the request spans several (a
    /// per-site breakdown, such as `GROUP BY hospital`).
    #[serde(default = "yes")]
    pub owner_breakdown: bool,
}

fn one() -> u64 {
    1
}

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_rows: DEFAULT_MIN_ROWS,
            min_owners: 1,
            min_rows_per_owner: 1,
            owner_breakdown: true,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    kind: String,
    version: u32,
    min_rows: u64,
    min_owners: u64,
    #[serde(default = "one")]
    min_rows_per_owner: u64,
    #[serde(default = "yes")]
    owner_breakdown: bool,
}

impl Policy {
    /// Checks the bounds; `what` names the source in the message.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.min_rows < 2 {
            return Err(Error::Invalid(format!(
                "{what}: min_rows {} would release individual values; it must be at least 2",
                self.min_rows
            )));
        }
        if self.min_owners < 1 || self.min_rows_per_owner < 1 {
            return Err(Error::Invalid(format!(
                "{what}: min_owners and min_rows_per_owner must be at least 1"
            )));
        }
        Ok(())
    }

    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = super::owner::read_small_limit(path, 64 * 1024)?;
        let file: PolicyFile = serde_json::from_str(&text).map_err(|e| {
            Error::Invalid(format!("{}: not a release policy: {e}", path.display()))
        })?;
        if file.kind != POLICY_KIND || file.version != POLICY_VERSION {
            return Err(Error::Invalid(format!(
                "{}: not a release policy of version {POLICY_VERSION} (kind {POLICY_KIND})",
                path.display()
            )));
        }
        let policy = Policy {
            min_rows: file.min_rows,
            min_owners: file.min_owners,
            min_rows_per_owner: file.min_rows_per_owner,
            owner_breakdown: file.owner_breakdown,
        };
        policy.check(&path.display().to_string())?;
        Ok(policy)
    }

    /// The policy as a file.
    pub fn to_json(&self) -> Result<String> {
        super::owner::to_json(&PolicyFile {
            kind: POLICY_KIND.into(),
            version: POLICY_VERSION,
            min_rows: self.min_rows,
            min_owners: self.min_owners,
            min_rows_per_owner: self.min_rows_per_owner,
            owner_breakdown: self.owner_breakdown,
        })
    }

    /// Its digest, bound into every proof of a partial decryption made under it.
    pub fn digest(&self) -> [u8; 32] {
        let mut d = Labelled::new("cipherlake.release_policy.v2");
        d.u64("min_rows", self.min_rows)
            .u64("min_owners", self.min_owners)
            .u64("min_rows_per_owner", self.min_rows_per_owner)
            .u64("owner_breakdown", u64::from(self.owner_breakdown));
        d.finish()
    }

    /// The stricter of two policies, requirement by requirement.
    pub fn stricter(self, other: Policy) -> Policy {
        Policy {
            min_rows: self.min_rows.max(other.min_rows),
            min_owners: self.min_owners.max(other.min_owners),
            min_rows_per_owner: self.min_rows_per_owner.max(other.min_rows_per_owner),
            owner_breakdown: self.owner_breakdown && other.owner_breakdown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_file_round_trips_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.json");
        let pol = Policy {
            min_rows: 20,
            min_owners: 2,
            min_rows_per_owner: 5,
            owner_breakdown: false,
        };
        std::fs::write(&p, pol.to_json().unwrap()).unwrap();
        assert_eq!(Policy::load(&p).unwrap(), pol);
        for bad in [
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":1,"min_owners":1}"#,
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":5,"min_owners":0}"#,
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":5}"#,
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":5,"min_owners":1,"x":1}"#,
            r#"{"kind":"other","version":1,"min_rows":5,"min_owners":1}"#,
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(Policy::load(&p).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_differ_and_the_stricter_wins_each_bound() {
        let a = Policy {
            min_rows: 20,
            min_owners: 1,
            min_rows_per_owner: 3,
            owner_breakdown: true,
        };
        let b = Policy {
            min_rows: 11,
            min_owners: 3,
            min_rows_per_owner: 1,
            owner_breakdown: false,
        };
        assert_ne!(a.digest(), b.digest());
        let c = Policy {
            owner_breakdown: false,
            ..a
        };
        assert_ne!(a.digest(), c.digest());
        assert_eq!(
            a.stricter(b),
            Policy {
                min_rows: 20,
                min_owners: 3,
                min_rows_per_owner: 3,
                owner_breakdown: false,
            }
        );
    }
}
