//! A hospital's release policy: what it requires of every cell it helps decrypt. One typed
//! policy per hospital (`--policy`: a TOML file written by hand, or the JSON form); the partial
//! decryptions bind its digest into their proof, and `combine` applies the strictest policy of
//! the parties it uses. [`Policy::warnings`] is the linter behind `cipherlake policy check`.

use std::collections::BTreeMap;
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// At most this many result rows (groups) per request (None: no limit): a bound on how
    /// finely a GROUP BY may cut the patients.
    #[serde(default)]
    pub max_groups: Option<u64>,
    /// The lake columns whose values may be released (None: any); a cell made from another
    /// column is refused.
    #[serde(default)]
    pub measures: Option<Vec<String>>,
    /// Differential privacy: noise added under encryption by the releasing hospitals, and a
    /// budget kept in the ledger (None: exact releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<Dp>,
}

/// Differential privacy (the `[dp]` table of a policy): every released cell gets discrete Laplace
/// noise drawn in shares by the releasing hospitals (`release::noise`), and the ledger keeps
/// what each lake row (patient) has spent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dp {
    /// The privacy loss ε of one released cell (> 0).
    pub epsilon: f64,
    /// The most ε one lake row may accumulate over every noisy release in the ledger (each cell
    /// it contributes to spends `epsilon`).
    pub budget: f64,
    /// The most ε one lake row may accumulate over the releases to one requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_per_requester: Option<f64>,
    /// Releases older than this many days no longer count against the budgets (a refill; none:
    /// they always count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u64>,
    /// How much one patient can change a cell of each measure (the largest absolute value of the
    /// lake column), in the column's own units; counts of a flag need none (1).
    #[serde(default)]
    pub sensitivity: BTreeMap<String, f64>,
}

impl Dp {
    fn check(&self, what: &str) -> Result<()> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.epsilon) {
            return Err(Error::Invalid(format!(
                "{what}: dp.epsilon {} must be a positive number",
                self.epsilon
            )));
        }
        for (name, b) in [
            ("budget", Some(self.budget)),
            ("budget_per_requester", self.budget_per_requester),
        ] {
            if let Some(b) = b {
                if !positive(b) || b < self.epsilon {
                    return Err(Error::Invalid(format!(
                        "{what}: dp.{name} {b} must be at least dp.epsilon ({}), or nothing could be released",
                        self.epsilon
                    )));
                }
            }
        }
        if self.window_days == Some(0) {
            return Err(Error::Invalid(format!(
                "{what}: dp.window_days 0 would never count a release; leave it out to count them all"
            )));
        }
        for (m, s) in &self.sensitivity {
            if !positive(*s) {
                return Err(Error::Invalid(format!(
                    "{what}: dp.sensitivity of `{m}` is {s}; it must be a positive number"
                )));
            }
        }
        Ok(())
    }

    fn digest_into(&self, d: &mut Labelled) {
        d.u64("epsilon", self.epsilon.to_bits())
            .u64("budget", self.budget.to_bits())
            .u64(
                "budget_per_requester",
                self.budget_per_requester.map_or(0, f64::to_bits),
            )
            .u64("window_days", self.window_days.unwrap_or(0))
            .u64("sensitivities", self.sensitivity.len() as u64);
        for (m, s) in &self.sensitivity {
            d.item("measure", m.as_bytes())
                .u64("sensitivity", s.to_bits());
        }
    }

    fn stricter(self, other: Dp) -> Dp {
        let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut sensitivity = self.sensitivity;
        for (m, s) in other.sensitivity {
            let e = sensitivity.entry(m).or_insert(s);
            *e = e.max(s);
        }
        Dp {
            epsilon: self.epsilon.min(other.epsilon),
            budget: self.budget.min(other.budget),
            budget_per_requester: min(self.budget_per_requester, other.budget_per_requester),
            window_days: match (self.window_days, other.window_days) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            },
            sensitivity,
        }
    }
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
            max_groups: None,
            measures: None,
            dp: None,
        }
    }
}

/// The JSON form, as written.
#[derive(Serialize)]
struct PolicyFile {
    kind: String,
    version: u32,
    min_rows: u64,
    min_owners: u64,
    min_rows_per_owner: u64,
    owner_breakdown: bool,
    max_groups: Option<u64>,
    measures: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dp: Option<Dp>,
}

/// A policy's fields as written (TOML, or the JSON form without `kind` and `version`): every
/// field optional, defaulting as [`Policy::default`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    #[serde(default = "default_min_rows")]
    min_rows: u64,
    #[serde(default = "one")]
    min_owners: u64,
    #[serde(default = "one")]
    min_rows_per_owner: u64,
    #[serde(default = "yes")]
    owner_breakdown: bool,
    #[serde(default)]
    max_groups: Option<u64>,
    #[serde(default)]
    measures: Option<Vec<String>>,
    #[serde(default)]
    dp: Option<Dp>,
}

fn default_min_rows() -> u64 {
    DEFAULT_MIN_ROWS
}

impl Policy {
    /// What a privacy officer should know about this policy, in words (none is an error).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.min_rows < DEFAULT_MIN_ROWS {
            w.push(format!(
                "min_rows {} is below {DEFAULT_MIN_ROWS}, the usual minimum cell size of health statistics: cells of {} patients are released",
                self.min_rows, self.min_rows
            ));
        }
        if self.min_owners < 2 {
            w.push("min_owners 1: a cell may hold the rows of a single hospital".into());
        }
        if self.owner_breakdown {
            w.push(
                "owner_breakdown true: per-site breakdowns (GROUP BY hospital) are allowed".into(),
            );
        }
        if self.min_rows_per_owner < 2 && (self.min_owners > 1 || !self.owner_breakdown) {
            w.push("min_rows_per_owner 1: a hospital may contribute a single row to a cell of several hospitals, which the others' totals then expose to it".into());
        }
        if self.measures.is_none() {
            w.push("no measures list: every encrypted column may be released".into());
        }
        if self.max_groups.is_none() {
            w.push("no max_groups: a GROUP BY may cut the patients into as many cells as it likes (each still of min_rows rows)".into());
        }
        match &self.dp {
            None => w.push("no differential privacy ([dp]): releases are exact; the ledger refuses pairs of releases that differ by fewer than min_rows rows, but not combinations of three or more (docs/SECURITY.md)".into()),
            Some(dp) => {
                if dp.epsilon > 1.0 {
                    w.push(format!("dp.epsilon {} per cell is above 1: each release says much about each patient in it", dp.epsilon));
                }
                if dp.budget > 10.0 {
                    w.push(format!("dp.budget {} is above 10: over many releases the noise protects little", dp.budget));
                }
                if dp.budget_per_requester.is_none() {
                    w.push("no dp.budget_per_requester: one requester may spend the whole budget".into());
                }
                if let Some(days) = dp.window_days {
                    w.push(format!("dp.window_days {days}: the budget refills, so a patient's total privacy loss grows without bound over the years"));
                }
                w.push("dp: releases made without noise (by a hospital whose policy has no [dp]) are not in the budget and void its guarantee for their rows".into());
            }
        }
        w
    }

    /// Checks the bounds; `what` names the source in the message.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.min_rows < 2 {
            return Err(Error::Invalid(format!(
                "{what}: min_rows {} would release individual values; it must be at least 2",
                self.min_rows
            )));
        }
        if self.max_groups == Some(0) {
            return Err(Error::Invalid(format!(
                "{what}: max_groups 0 would release nothing; leave it out for no limit"
            )));
        }
        if self.min_owners < 1 || self.min_rows_per_owner < 1 {
            return Err(Error::Invalid(format!(
                "{what}: min_owners and min_rows_per_owner must be at least 1"
            )));
        }
        if let Some(dp) = &self.dp {
            dp.check(what)?;
        }
        Ok(())
    }

    /// Reads and checks a policy file: TOML when its name ends in `.toml`, else the JSON form.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = super::owner::read_small_limit(path, 64 * 1024)?;
        let bad = |why: String| {
            Error::Invalid(format!("{}: not a release policy: {why}", path.display()))
        };
        let f: Fields = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?
        } else {
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            let kind = v.remove("kind");
            let version = v.remove("version");
            if kind != Some(POLICY_KIND.into()) || version != Some(POLICY_VERSION.into()) {
                return Err(Error::Invalid(format!(
                    "{}: not a release policy of version {POLICY_VERSION} (kind {POLICY_KIND})",
                    path.display()
                )));
            }
            serde_json::from_value(v.into()).map_err(|e| bad(e.to_string()))?
        };
        let policy = Policy {
            min_rows: f.min_rows,
            min_owners: f.min_owners,
            min_rows_per_owner: f.min_rows_per_owner,
            owner_breakdown: f.owner_breakdown,
            max_groups: f.max_groups,
            measures: f.measures.map(|mut m| {
                m.sort();
                m.dedup();
                m
            }),
            dp: f.dp,
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
            max_groups: self.max_groups,
            measures: self.measures.clone(),
            dp: self.dp.clone(),
        })
    }

    /// Its digest, bound into every proof of a partial decryption made under it.
    pub fn digest(&self) -> [u8; 32] {
        let mut d = Labelled::new("cipherlake.release_policy.v2");
        d.u64("min_rows", self.min_rows)
            .u64("min_owners", self.min_owners)
            .u64("min_rows_per_owner", self.min_rows_per_owner)
            .u64("owner_breakdown", u64::from(self.owner_breakdown))
            .u64("max_groups", self.max_groups.unwrap_or(0));
        match &self.measures {
            None => {
                d.u64("measures", 0);
            }
            Some(m) => {
                d.u64("measures", 1 + m.len() as u64);
                for x in m {
                    d.item("measure", x.as_bytes());
                }
            }
        }
        // A policy without `dp` keeps the digest it had before `dp` existed.
        if let Some(dp) = &self.dp {
            d.u64("dp", 1);
            dp.digest_into(&mut d);
        }
        d.finish()
    }

    /// Whether a cell of `measure` (columns joined by `+`) may be released.
    pub fn allows(&self, measure: &str) -> bool {
        self.measures
            .as_ref()
            .is_none_or(|m| measure.split('+').all(|c| m.iter().any(|x| x == c)))
    }

    /// The stricter of two policies, requirement by requirement.
    pub fn stricter(self, other: Policy) -> Policy {
        let measures = match (self.measures, other.measures) {
            (Some(a), Some(b)) => Some(a.into_iter().filter(|x| b.contains(x)).collect()),
            (a, b) => a.or(b),
        };
        Policy {
            measures,
            min_rows: self.min_rows.max(other.min_rows),
            min_owners: self.min_owners.max(other.min_owners),
            min_rows_per_owner: self.min_rows_per_owner.max(other.min_rows_per_owner),
            owner_breakdown: self.owner_breakdown && other.owner_breakdown,
            max_groups: match (self.max_groups, other.max_groups) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            dp: match (self.dp, other.dp) {
                (Some(a), Some(b)) => Some(a.stricter(b)),
                (a, b) => a.or(b),
            },
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
            max_groups: Some(40),
            measures: Some(vec!["cost".into(), "diabetic".into()]),
            dp: None,
        };
        std::fs::write(&p, pol.to_json().unwrap()).unwrap();
        assert!(pol.allows("cost") && !pol.allows("cost+los") && !pol.allows("los"));
        assert_eq!(Policy::load(&p).unwrap(), pol);
        for bad in [
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":1,"min_owners":1}"#,
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":5,"min_owners":0}"#,
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":5,"min_owners":"2"}"#,
            r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":5,"min_owners":1,"x":1}"#,
            r#"{"kind":"other","version":1,"min_rows":5,"min_owners":1}"#,
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(Policy::load(&p).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_toml_policy_defaults_what_it_leaves_out_and_the_linter_speaks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.toml");
        std::fs::write(&p, "# ours\nmin_rows = 20\nowner_breakdown = false\n").unwrap();
        let pol = Policy::load(&p).unwrap();
        assert_eq!(
            pol,
            Policy {
                min_rows: 20,
                owner_breakdown: false,
                ..Policy::default()
            }
        );
        let w = pol.warnings().join("\n");
        assert!(
            w.contains("min_rows_per_owner 1") && !w.contains("below 11"),
            "{w}"
        );
        assert!(Policy::default()
            .warnings()
            .join("\n")
            .contains("per-site breakdowns"));
        for bad in [
            "min_rows = 1",
            "k = 11",
            "min_rows = \"eleven\"",
            "min_owners = 0",
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = Policy::load(&p).unwrap_err().to_string();
            assert!(e.contains("policy.toml"), "{bad}: {e}");
        }
    }

    #[test]
    fn digests_differ_and_the_stricter_wins_each_bound() {
        let a = Policy {
            min_rows: 20,
            min_owners: 1,
            min_rows_per_owner: 3,
            owner_breakdown: true,
            max_groups: None,
            measures: Some(vec!["cost".into(), "los".into()]),
            dp: None,
        };
        let b = Policy {
            min_rows: 11,
            min_owners: 3,
            min_rows_per_owner: 1,
            owner_breakdown: false,
            max_groups: Some(50),
            measures: Some(vec!["cost".into()]),
            dp: None,
        };
        assert_ne!(a.digest(), b.digest());
        let c = Policy {
            owner_breakdown: false,
            ..a.clone()
        };
        assert_ne!(a.digest(), c.digest());
        assert_eq!(
            a.stricter(b),
            Policy {
                min_rows: 20,
                min_owners: 3,
                min_rows_per_owner: 3,
                owner_breakdown: false,
                max_groups: Some(50),
                measures: Some(vec!["cost".into()]),
                dp: None,
            }
        );
    }
}
