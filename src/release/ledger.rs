//! The consortium's release ledger: one shared, hash-chained file of every release, each entry
//! signed by the hospital that released it, so that every hospital checks a new request against
//! every earlier release, whoever made it.
//!
//! An entry names the request, its SQL and lake snapshot, and for each released cell its measure
//! (the lake column its values come from) and its contributing rows, per lake file (by SHA-256)
//! as a compressed bitmap of row numbers: never a value. The **differencing rule**: a cell is
//! refused when its rows differ from those of any released cell of the same measure, earlier or in
//! the same request, by 1 to k − 1 rows (the symmetric difference), since the difference of the
//! two sums is then a sum over fewer than k patients, possibly one.
//!
//! Lines are chained as [`super::chain`] says and signed: `signature` is the releasing party's
//! Ed25519 signature (its owner key on the roster) of the labelled digest, under
//! `cipherlake.ledger_entry.v1`, of `seq` (8 bytes), `prev` and the entry's JSON bytes as written.
//! docs/FORMAT.md gives the layout.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::chain::Chain;
pub use super::chain::Head;
use super::noise::{CellNoise, Mechanism, NoiseMap};
use super::policy::{Dp, Policy};
use super::verify::{CellProvenance, RowSet};
use super::{OwnerKey, Roster};
use crate::digest::Labelled;
use crate::error::{Error, Result};

const KIND: &str = "cipherlake.ledger";
const VERSION: u32 = 1;
const DOMAIN: &str = "cipherlake.ledger_entry.v1";

/// What one release put in the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The releasing party (its owner id on the roster).
    pub party: String,
    /// The request released.
    pub request_id: String,
    /// Its SQL.
    pub sql: String,
    /// The lake snapshot it read: the labelled digest of its files' SHA-256s, sorted.
    pub snapshot: String,
    /// Seconds since 1970-01-01 UTC.
    pub released_at: u64,
    /// The requester the release was sealed to (its age recipient), for budgets per requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Every released cell.
    pub cells: Vec<Cell>,
}

/// One released cell: where it is, its measure and its rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    /// 0-based result row.
    pub row: u64,
    /// Result column.
    pub column: String,
    /// The lake column(s) its values come from.
    pub measure: String,
    /// Per lake file (SHA-256, hex): the contributing row numbers, as a serialized Roaring
    /// bitmap in base64url.
    pub rows: BTreeMap<String, String>,
    /// The differential-privacy noise it was released with (none: exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<CellNoise>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    kind: String,
    version: u32,
    seq: u64,
    prev: String,
    #[serde(borrow)]
    entry: &'a RawValue,
    signature: String,
}

/// A past release, as read from the ledger.
#[derive(Clone, Debug)]
pub struct Release {
    /// Its line number.
    pub seq: u64,
    /// The entry.
    pub entry: Entry,
    /// Its cells' row sets, decoded.
    pub row_sets: Vec<RowSet>,
}

fn digest(seq: u64, prev: &str, entry: &[u8]) -> [u8; 32] {
    let mut d = Labelled::new(DOMAIN);
    d.u64("seq", seq)
        .item("prev", prev.as_bytes())
        .item("entry", entry);
    d.finish()
}

fn encode_rows(rows: &RoaringBitmap) -> String {
    // Run containers where they are smaller (row sets are often ranges of a file).
    let mut rows = rows.clone();
    rows.optimize();
    let mut bytes = Vec::with_capacity(rows.serialized_size());
    // Writing into a Vec cannot fail.
    let _ = rows.serialize_into(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_rows(s: &str) -> std::result::Result<RoaringBitmap, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "a row set is not base64url".to_owned())?;
    RoaringBitmap::deserialize_from(bytes.as_slice())
        .map_err(|e| format!("a row set is not a Roaring bitmap: {e}"))
}

/// The snapshot digest of a request's files (their SHA-256s).
pub fn snapshot<'a>(shas: impl IntoIterator<Item = &'a str>) -> String {
    let mut shas: Vec<&str> = shas.into_iter().collect();
    shas.sort_unstable();
    shas.dedup();
    let mut d = Labelled::new("cipherlake.snapshot.v1");
    d.u64("files", shas.len() as u64);
    for s in shas {
        d.item("sha256", s.as_bytes());
    }
    d.hex()
}

impl Entry {
    /// The entry for a release of `cells` (this party's provenance of them), with the noise
    /// each was decrypted with.
    pub fn new(
        party: &str,
        request_id: &str,
        sql: &str,
        snapshot: String,
        cells: &[CellProvenance],
        noise: Option<&NoiseMap>,
    ) -> Self {
        Entry {
            party: party.to_owned(),
            request_id: request_id.to_owned(),
            sql: sql.to_owned(),
            snapshot,
            released_at: super::signature::now(),
            requester: None,
            cells: cells
                .iter()
                .map(|c| Cell {
                    row: c.row,
                    column: c.column.clone(),
                    measure: c.measure.clone(),
                    rows: c
                        .row_set
                        .iter()
                        .map(|(sha, rows)| (sha.clone(), encode_rows(rows)))
                        .collect(),
                    noise: noise.and_then(|n| n.get(&(c.column.clone(), c.row)).cloned()),
                })
                .collect(),
        }
    }
}

/// The release ledger at a path.
#[derive(Clone, Debug)]
pub struct Ledger {
    chain: Chain,
}

impl Ledger {
    /// The ledger at `path` (a missing file is an empty ledger).
    pub fn new(path: &Path) -> Self {
        Ledger {
            chain: Chain::new(path, "ledger", KIND, VERSION),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.chain.path()
    }

    /// Checks one line: its signature by a party on `roster`; returns the release.
    fn release(&self, roster: &Roster, seq: u64, bytes: &[u8]) -> Result<Release> {
        let at = format!("line {} (entry {seq})", seq + 1);
        let line: Line = serde_json::from_slice(bytes)
            .map_err(|e| self.chain.error(format!("{at} is not a ledger entry: {e}")))?;
        let entry: Entry = serde_json::from_str(line.entry.get())
            .map_err(|e| self.chain.error(format!("{at} is not a ledger entry: {e}")))?;
        let Some(owner) = roster.owner(&entry.party) else {
            return Err(self.chain.error(format!(
                "{at} is signed as `{}`, who is not on the roster {}",
                crate::error::preview(&entry.party),
                roster.id()
            )));
        };
        let d = digest(seq, &line.prev, line.entry.get().as_bytes());
        if !owner.verifies(&d, &line.signature) {
            return Err(self.chain.error(format!(
                "{at}: the signature of `{}` does not verify: the entry was edited, or not written by that party",
                entry.party
            )));
        }
        // A ledger's ε counts against budgets: a mechanism no hospital could have drawn for (a
        // negative or infinite ε, a sensitivity of 0) is a forged entry.
        for c in &entry.cells {
            if let Some(n) = &c.noise {
                let m = &n.mechanism;
                if Mechanism::new(m.epsilon, m.sensitivity, m.parties).is_err() {
                    return Err(self.chain.error(format!(
                        "{at}: row {}, column `{}` claims a noise mechanism no hospital draws (ε {}, sensitivity {}, {} parties)",
                        c.row + 1,
                        crate::error::preview(&c.column),
                        m.epsilon,
                        m.sensitivity,
                        m.parties
                    )));
                }
            }
        }
        let row_sets = entry
            .cells
            .iter()
            .map(|c| {
                c.rows
                    .iter()
                    .map(|(sha, s)| Ok((sha.clone(), decode_rows(s)?)))
                    .collect::<std::result::Result<RowSet, String>>()
            })
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(|why| self.chain.error(format!("{at}: {why}")))?;
        Ok(Release {
            seq,
            entry,
            row_sets,
        })
    }

    /// Reads every release, checking the chain and every signature against `roster`; with
    /// `head`, the ledger must still hold that entry unchanged.
    pub fn read(
        &self,
        roster: &Roster,
        head: Option<&Head>,
    ) -> Result<(Vec<Release>, Option<Head>)> {
        let mut out = Vec::new();
        let checked = self.chain.walk(head, |seq, line| {
            out.push(self.release(roster, seq, line)?);
            Ok(())
        })?;
        Ok((out, checked.head))
    }

    /// Appends `entry`, signed by `key` (whose owner must be the entry's party), under the
    /// ledger's lock, if `check` accepts every release in the ledger then (so a release another
    /// party entered since this one was checked is not missed); returns the new head.
    pub fn append(
        &self,
        roster: &Roster,
        key: &OwnerKey,
        entry: &Entry,
        check: impl FnOnce(&[Release]) -> Result<()>,
    ) -> Result<Head> {
        if key.owner() != entry.party {
            return Err(Error::Invalid(format!(
                "the signing key is `{}`'s, but the release is by `{}`",
                key.owner(),
                entry.party
            )));
        }
        let body = serde_json::to_string(entry).map_err(|e| self.chain.error(e.to_string()))?;
        let past = std::cell::RefCell::new(Vec::new());
        self.chain.append(
            |seq, line| {
                past.borrow_mut().push(self.release(roster, seq, line)?);
                Ok(())
            },
            |seq, prev| {
                check(&past.borrow())?;
                let sig = key.sign_digest(&digest(seq, prev, body.as_bytes()));
                let raw =
                    RawValue::from_string(body).map_err(|e| self.chain.error(e.to_string()))?;
                let line = Line {
                    kind: KIND.to_owned(),
                    version: VERSION,
                    seq,
                    prev: prev.to_owned(),
                    entry: &raw,
                    signature: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
                };
                serde_json::to_vec(&line).map_err(|e| self.chain.error(e.to_string()))
            },
        )
    }
}

impl Ledger {
    /// Enters the release of `request`'s `cells` by `key`'s owner, under the ledger's lock, if
    /// the differencing rule still holds against every release in it then; returns the new head.
    #[allow(clippy::too_many_arguments)]
    pub fn enter(
        &self,
        roster: &Roster,
        key: &OwnerKey,
        request: &super::Request,
        cells: &[CellProvenance],
        policy: &Policy,
        noise: Option<&NoiseMap>,
        parties: &[String],
    ) -> Result<Head> {
        let snapshot = snapshot(request.files.iter().map(|f| f.signature.sha256.as_str()));
        let mut entry = Entry::new(
            key.owner(),
            &request.request_id,
            &request.sql,
            snapshot,
            cells,
            noise,
        );
        entry.requester = Some(request.recipient.clone());
        self.append(roster, key, &entry, |past| {
            check(request, cells, past, policy, noise, parties)
        })
    }
}

/// The size of the symmetric difference of two row sets.
pub fn difference(a: &RowSet, b: &RowSet) -> u64 {
    let mut d = 0;
    for (sha, x) in a {
        d += match b.get(sha) {
            Some(y) => x.len() + y.len() - 2 * x.intersection_len(y),
            None => x.len(),
        };
    }
    for (sha, y) in b {
        if !a.contains_key(sha) {
            d += y.len();
        }
    }
    d
}

fn size(a: &RowSet) -> u64 {
    a.values().map(RoaringBitmap::len).sum()
}

/// The differencing rule over `cells` (a new request, `request_id`) against `past` releases and
/// each other: the reasons to refuse, each naming both cells.
pub fn differencing(
    request_id: &str,
    cells: &[CellProvenance],
    past: &[Release],
    min_rows: u64,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let close = |a: &RowSet, b: &RowSet| {
        // The sizes bound the difference from below: most pairs are settled without a bitmap
        // operation.
        let (x, y) = (size(a), size(b));
        if x.abs_diff(y) >= min_rows {
            return None;
        }
        let d = difference(a, b);
        (1..min_rows).contains(&d).then_some(d)
    };
    for (i, c) in cells.iter().enumerate() {
        let at = format!("row {}, column `{}`", c.row + 1, c.column);
        for r in past {
            // The same request again (another party's entry of it, or a repeat over the same
            // snapshot) is the same release.
            if r.entry.request_id == request_id {
                continue;
            }
            for (p, rows) in r.entry.cells.iter().zip(&r.row_sets) {
                if p.measure != c.measure {
                    continue;
                }
                if let Some(d) = close(&c.row_set, rows) {
                    reasons.push(format!(
                        "{at}: its rows of `{}` differ by {d} from those of row {}, column `{}` of request {} (released by `{}`, ledger entry {}), fewer than this hospital's minimum of {min_rows}: the difference of the two would reveal those rows",
                        c.measure,
                        p.row + 1,
                        p.column,
                        &r.entry.request_id[..r.entry.request_id.len().min(16)],
                        r.entry.party,
                        r.seq
                    ));
                }
            }
        }
        for o in &cells[..i] {
            if o.measure == c.measure {
                if let Some(d) = close(&c.row_set, &o.row_set) {
                    reasons.push(format!(
                        "{at}: its rows of `{}` differ by {d} from those of row {}, column `{}` of this request, fewer than this hospital's minimum of {min_rows}: the difference of the two would reveal those rows",
                        c.measure,
                        o.row + 1,
                        o.column
                    ));
                }
            }
        }
    }
    reasons
}

/// Every rule of the ledger as a refusal of `request`'s `cells`: [`differencing`], and with
/// `noise` (the policy's `dp`), [`pinning`] and [`budget`].
pub fn check(
    request: &super::Request,
    cells: &[CellProvenance],
    past: &[Release],
    policy: &Policy,
    noise: Option<&NoiseMap>,
    parties: &[String],
) -> Result<()> {
    let id = &request.request_id;
    let mut reasons = differencing(id, cells, past, policy.min_rows);
    if let (Some(dp), Some(noise)) = (&policy.dp, noise) {
        for c in cells {
            let key = (c.column.clone(), c.row);
            let Some(n) = noise.get(&key) else {
                reasons.push(format!(
                    "row {}, column `{}`: no noise, under a policy with differential privacy",
                    c.row + 1,
                    c.column
                ));
                continue;
            };
            if let Some((seq, earlier)) = pinning(id, c, &n.mechanism, past, parties) {
                if earlier.noise != n.noise {
                    reasons.push(format!(
                        "row {}, column `{}`: its rows were released with other noise (ledger entry {seq}) since this party chose its noise; partially decrypt again",
                        c.row + 1,
                        c.column
                    ));
                }
            }
            // The same request released by another party with other noise files: two noisy
            // answers of one cell, which the budget would count once.
            for r in past.iter().filter(|r| &r.entry.request_id == id) {
                let other = r
                    .entry
                    .cells
                    .iter()
                    .find(|p| p.row == c.row && p.column == c.column);
                if let Some(o) = other.and_then(|p| p.noise.as_ref()) {
                    if o.noise != n.noise {
                        reasons.push(format!(
                            "row {}, column `{}`: `{}` released this request with other noise (ledger entry {}): every releasing hospital needs the same noise files",
                            c.row + 1,
                            c.column,
                            r.entry.party,
                            r.seq
                        ));
                    }
                }
            }
        }
        reasons.extend(budget(
            id,
            Some(&request.recipient),
            cells,
            noise,
            past,
            dp,
            super::signature::now(),
        ));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Error::ReleaseRefused {
            request: id.to_owned(),
            reasons,
        })
    }
}

/// The noise of an earlier release (of another request than `request_id`) of the same rows of
/// the same measure under the same mechanism, if any, with the ledger entry where it was first
/// drawn: a repeated request over the same lake snapshot gets the same noisy answer, so that
/// repeating it averages nothing away. Only a release that at least `mechanism.parties` of the
/// key's `parties` entered with that very cell (measure, mechanism, rows and noise) counts: one
/// of them is then honest and checked that its own share is in it (or that it was pinned in
/// turn), so that t − 1 colluders can neither make hospitals decrypt with noise they know nor
/// move an honest release's noise onto other rows.
pub fn pinning<'a>(
    request_id: &str,
    cell: &CellProvenance,
    mechanism: &Mechanism,
    past: &'a [Release],
    parties: &[String],
) -> Option<(u64, &'a CellNoise)> {
    let same = |p: &Cell, rows: &RowSet, n: &CellNoise| {
        p.measure == cell.measure
            && n.mechanism == *mechanism
            && size(rows) == size(&cell.row_set)
            && difference(rows, &cell.row_set) == 0
    };
    let entered_by = |r: &Release, p: &Cell, n: &CellNoise| {
        past.iter()
            .filter(|o| o.entry.request_id == r.entry.request_id)
            .filter(|o| parties.contains(&o.entry.party))
            .filter(|o| {
                o.entry.cells.iter().zip(&o.row_sets).any(|(q, rows)| {
                    q.row == p.row
                        && q.column == p.column
                        && q.noise
                            .as_ref()
                            .is_some_and(|m| m.noise == n.noise && same(q, rows, m))
                })
            })
            .map(|o| o.entry.party.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    past.iter()
        .filter(|r| r.entry.request_id != request_id)
        .find_map(|r| {
            r.entry.cells.iter().zip(&r.row_sets).find_map(|(p, rows)| {
                let n = p.noise.as_ref()?;
                (same(p, rows, n) && entered_by(r, p, n) >= mechanism.parties as usize)
                    .then(|| (n.pinned.unwrap_or(r.seq), n))
            })
        })
}

/// The differential-privacy budget: every lake row (patient) accumulates the ε of each noisy
/// cell it contributes to (sequential composition; cells with disjoint rows cost a row once),
/// over every release in the ledger within `dp.window_days`. A release entered by several
/// hospitals counts once per cell, over the union of the rows its entries name (so that an
/// entry a colluder makes first, with fewer rows, does not lower the charge), and this
/// hospital's own rows of a cell are charged whatever other entries of the request say; a
/// pinned cell repeats an answer and costs nothing. A request that would take a row past
/// `dp.budget`, or past `dp.budget_per_requester` over the releases any of whose entries name
/// `requester`, is refused. Only the rows of this request are tallied. Returns the reasons.
pub fn budget(
    request_id: &str,
    requester: Option<&str>,
    cells: &[CellProvenance],
    noise: &NoiseMap,
    past: &[Release],
    dp: &Dp,
    now: u64,
) -> Vec<String> {
    use std::collections::HashMap;
    let since = dp
        .window_days
        .map_or(0, |d| now.saturating_sub(d.saturating_mul(86_400)));
    // Per earlier (request, column, row): the union of its entries' rows, the largest ε, and
    // whether an entry names this requester.
    type Charge = (RowSet, f64, bool);
    let mut charges: HashMap<(&str, &str, u64), Charge> = HashMap::new();
    for r in past.iter().filter(|r| r.entry.released_at >= since) {
        let theirs = requester.is_some() && r.entry.requester.as_deref() == requester;
        for (c, rows) in r.entry.cells.iter().zip(&r.row_sets) {
            let Some(n) = c.noise.as_ref().filter(|n| n.pinned.is_none()) else {
                continue;
            };
            let e = charges
                .entry((r.entry.request_id.as_str(), c.column.as_str(), c.row))
                .or_insert_with(|| (RowSet::new(), 0.0, false));
            for (sha, bits) in rows {
                *e.0.entry(sha.clone()).or_default() |= bits;
            }
            e.1 = e.1.max(n.mechanism.epsilon);
            e.2 |= theirs;
        }
    }
    // What this request adds, per row it touches.
    let mut new: HashMap<(&str, u32), f64> = HashMap::new();
    let mut touched: BTreeMap<&str, RoaringBitmap> = BTreeMap::new();
    for c in cells {
        let Some(n) = noise.get(&(c.column.clone(), c.row)) else {
            continue;
        };
        if n.pinned.is_some() {
            continue;
        }
        let already = charges.get(&(request_id, c.column.as_str(), c.row));
        for (sha, bits) in &c.row_set {
            let mut bits = bits.clone();
            if let Some(rows) = already.and_then(|a| a.0.get(sha)) {
                bits -= rows;
            }
            for r in &bits {
                *new.entry((sha.as_str(), r)).or_default() += n.mechanism.epsilon;
            }
            *touched.entry(sha.as_str()).or_default() |= bits;
        }
    }
    // What earlier releases spent on those rows (only those).
    type PerRow<'a> = HashMap<(&'a str, u32), f64>;
    let (mut all, mut theirs): (PerRow, PerRow) = Default::default();
    for (rows, epsilon, named) in charges.values() {
        for (sha, t) in &touched {
            let Some(bits) = rows.get(*sha) else { continue };
            for r in &(bits & t) {
                *all.entry((sha, r)).or_default() += epsilon;
                if *named {
                    *theirs.entry((sha, r)).or_default() += epsilon;
                }
            }
        }
    }
    let releases: std::collections::HashSet<&str> = charges.keys().map(|k| k.0).collect();
    let mut reasons = Vec::new();
    let limits = [
        (Some(dp.budget), &all, "budget", ""),
        (
            dp.budget_per_requester,
            &theirs,
            "budget per requester",
            " to this requester",
        ),
    ];
    for (limit, spent, what, whom) in limits {
        let Some(limit) = limit else { continue };
        let mut over = 0u64;
        let mut worst: Option<(f64, f64, &str, u32)> = None;
        for (&(sha, r), &add) in &new {
            let before = spent.get(&(sha, r)).copied().unwrap_or(0.0);
            // A tolerance for the sums of floating-point ε.
            if before + add > limit * (1.0 + 1e-9) {
                over += 1;
                if worst.is_none_or(|w| before + add > w.0 + w.1) {
                    worst = Some((before, add, sha, r));
                }
            }
        }
        if let Some((before, add, sha, r)) = worst {
            reasons.push(format!(
                "{over} lake row(s) would exceed this hospital's differential-privacy {what} of ε {limit}{whom} (row {r} of file {}…: ε {before} spent, {add} more by this request; {} noisy release(s) in the ledger count)",
                &sha[..sha.len().min(12)],
                releases.len()
            ));
        }
    }
    reasons
}

/// Whether every row of `a` is in `b`.
fn is_subset(a: &RowSet, b: &RowSet) -> bool {
    a.iter()
        .all(|(sha, x)| b.get(sha).is_some_and(|y| x.is_subset(y)))
}

/// Other cells of `t`'s measure in `cells` that are disjoint parts of it, largest first, each
/// taken if disjoint from those taken (a greedy cover, which finds a total's groups), and how many
/// of its rows they leave out.
fn cover<'a>(t: &CellProvenance, cells: &'a [CellProvenance]) -> (Vec<&'a CellProvenance>, u64) {
    let mut parts: Vec<&CellProvenance> = cells
        .iter()
        .filter(|p| {
            !std::ptr::eq(*p, t) && p.measure == t.measure && is_subset(&p.row_set, &t.row_set)
        })
        .collect();
    parts.sort_by_key(|p| std::cmp::Reverse(size(&p.row_set)));
    let mut covered = RowSet::new();
    let mut taken = Vec::new();
    for p in parts {
        if difference(&covered, &p.row_set) == size(&covered) + size(&p.row_set) {
            for (sha, rows) in &p.row_set {
                *covered.entry(sha.clone()).or_default() |= rows;
            }
            taken.push(p);
        }
    }
    let left = size(&t.row_set) - size(&covered);
    (taken, left)
}

/// The complementary rule within one request: a cell whose rows are covered, but for 1 to
/// `min_rows − 1` of them, by other cells of the same measure that are disjoint parts of it (a
/// total beside all its groups but a small one) is refused, since subtracting the parts from it
/// reveals those rows. One part alone is the differencing rule's case.
pub fn complementary(cells: &[CellProvenance], min_rows: u64) -> Vec<String> {
    let mut reasons = Vec::new();
    for t in cells {
        let (taken, left) = cover(t, cells);
        if taken.len() >= 2 && (1..min_rows).contains(&left) {
            let names: Vec<String> = taken
                .iter()
                .map(|p| format!("row {}, column `{}`", p.row + 1, p.column))
                .collect();
            reasons.push(format!(
                "row {}, column `{}`: the cells {} of this request are disjoint parts of it that cover all but {left} of its rows of `{}`, fewer than this hospital's minimum of {min_rows}: subtracting them from it would reveal those rows",
                t.row + 1,
                t.column,
                names.join(", "),
                t.measure
            ));
        }
    }
    reasons
}

/// A cell of a result: its column and 0-based row.
pub type CellKey = (String, u64);

/// What subtraction can derive within one request: `total` is the sum of `parts` (disjoint)
/// and of `rest` rows more. `combine` uses it to suppress further counts, so that no count it
/// suppresses can be derived from the others (complementary suppression).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    /// The total.
    pub total: CellKey,
    /// Its disjoint parts, each a cell of the request.
    pub parts: Vec<CellKey>,
    /// Rows of the total in no part.
    pub rest: u64,
}

/// The relations among the count cells of one request (cells of other measures are never
/// suppressed after decryption; the row rules cover them).
pub fn relations(cells: &[CellProvenance]) -> Vec<Relation> {
    cells
        .iter()
        .filter(|t| t.count)
        .filter_map(|t| {
            let (taken, rest) = cover(t, cells);
            let parts: Vec<CellKey> = taken
                .iter()
                .filter(|p| p.count)
                .map(|p| (p.column.clone(), p.row))
                .collect();
            (!parts.is_empty() && parts.len() == taken.len()).then(|| Relation {
                total: (t.column.clone(), t.row),
                parts,
                rest,
            })
        })
        .collect()
}

/// Complementary suppression: given the cells already `suppressed` (small counts) and every
/// cell's value, suppresses more until no relation lets a suppressed count, or a count of 1 to
/// `min_rows − 1` over a relation's other rows, be derived by subtraction: a relation with one
/// suppressed member and no other rows, or none suppressed and a small remainder, loses its
/// smallest released member. Returns the cells it added.
pub fn suppress_complements(
    relations: &[Relation],
    value: impl Fn(&CellKey) -> Option<i128>,
    suppressed: &mut std::collections::BTreeSet<CellKey>,
    min_rows: u64,
) -> Vec<CellKey> {
    let mut added = Vec::new();
    loop {
        let mut changed = false;
        for r in relations {
            let members: Vec<&CellKey> = std::iter::once(&r.total).chain(&r.parts).collect();
            let Some(values) = members
                .iter()
                .map(|k| value(k))
                .collect::<Option<Vec<i128>>>()
            else {
                continue;
            };
            let hidden = members.iter().filter(|k| suppressed.contains(**k)).count();
            // Values a noisy share made huge may overflow: then the remainder is taken as small.
            let rest = values[1..]
                .iter()
                .try_fold(values[0], |acc, v| acc.checked_sub(*v));
            let small = rest.is_none_or(|rest| rest > 0 && rest < i128::from(min_rows));
            let derivable = match (hidden, r.rest) {
                (1, 0) => true,
                (0, rest_rows) if rest_rows > 0 => small,
                _ => false,
            };
            if !derivable {
                continue;
            }
            let smallest = members
                .iter()
                .zip(&values)
                .filter(|(k, _)| !suppressed.contains(**k))
                .min_by_key(|(_, v)| **v)
                .map(|(k, _)| (*k).clone());
            if let Some(k) = smallest {
                suppressed.insert(k.clone());
                added.push(k);
                changed = true;
            }
        }
        if !changed {
            return added;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn cell(row: u64, measure: &str, files: &[(&str, std::ops::Range<u32>)]) -> CellProvenance {
        let row_set: RowSet = files
            .iter()
            .map(|(sha, r)| (sha.to_string(), r.clone().collect()))
            .collect();
        CellProvenance {
            column: "total".into(),
            row,
            rows: size(&row_set),
            owners: BTreeMap::new(),
            measure: measure.into(),
            row_set,
            plain: true,
            count: false,
            scale: 0,
        }
    }

    fn setup() -> (tempfile::TempDir, Ledger, Roster, OwnerKey, OwnerKey) {
        let dir = tempfile::tempdir().unwrap();
        let a = OwnerKey::generate("a").unwrap();
        let b = OwnerKey::generate("b").unwrap();
        let roster = Roster::new(KEY, vec![a.public(), b.public()]).unwrap();
        let ledger = Ledger::new(&dir.path().join("ledger.jsonl"));
        (dir, ledger, roster, a, b)
    }

    #[test]
    fn entries_chain_sign_and_round_trip() {
        let (_d, ledger, roster, a, b) = setup();
        assert!(ledger.read(&roster, None).unwrap().0.is_empty());
        let c = [cell(0, "cost", &[("f1", 0..15), ("f2", 3..9)])];
        let e1 = Entry::new("a", "r1", "SELECT 1", snapshot(["f1", "f2"]), &c, None);
        ledger.append(&roster, &a, &e1, |_| Ok(())).unwrap();
        let e2 = Entry::new("b", "r2", "SELECT 2", snapshot(["f1"]), &c, None);
        let head = ledger.append(&roster, &b, &e2, |_| Ok(())).unwrap();
        let (past, h) = ledger.read(&roster, Some(&head)).unwrap();
        assert_eq!(h, Some(head));
        assert_eq!(past.len(), 2);
        assert_eq!(past[0].entry, e1);
        assert_eq!(past[1].row_sets[0], c[0].row_set);
        // Signed by the wrong party's key: refused before writing.
        assert!(ledger.append(&roster, &a, &e2, |_| Ok(())).is_err());
        // A check that fails under the lock leaves the ledger as it was.
        let refused = ledger.append(&roster, &a, &e1, |past| {
            assert_eq!(past.len(), 2);
            Err(Error::Invalid("no".into()))
        });
        assert!(refused.is_err());
        assert_eq!(ledger.read(&roster, None).unwrap().0.len(), 2);
    }

    #[test]
    fn edited_forged_and_reordered_entries_are_caught() {
        let (_d, ledger, roster, a, b) = setup();
        let c = [cell(0, "cost", &[("f1", 0..15)])];
        ledger
            .append(
                &roster,
                &a,
                &Entry::new("a", "r1", "S", snapshot(["f1"]), &c, None),
                |_| Ok(()),
            )
            .unwrap();
        ledger
            .append(
                &roster,
                &b,
                &Entry::new("b", "r2", "S", snapshot(["f1"]), &c, None),
                |_| Ok(()),
            )
            .unwrap();
        let text = std::fs::read_to_string(ledger.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let put = |ls: &[&str]| std::fs::write(ledger.path(), ls.join("\n") + "\n").unwrap();
        // The last entry edited (its SQL): its signature no longer verifies.
        let edited = lines[1].replace("\"sql\":\"S\"", "\"sql\":\"T\"");
        put(&[lines[0], &edited]);
        let e = ledger.read(&roster, None).unwrap_err().to_string();
        assert!(e.contains("signature of `b` does not verify"), "{e}");
        // Reordered.
        put(&[lines[1], lines[0]]);
        assert!(ledger.read(&roster, None).is_err());
        // Written by someone off the roster.
        let z = OwnerKey::generate("z").unwrap();
        let other = Roster::new(KEY, vec![a.public(), z.public()]).unwrap();
        put(&[lines[0]]);
        ledger
            .append(
                &other,
                &z,
                &Entry::new("z", "r3", "S", snapshot(["f1"]), &c, None),
                |_| Ok(()),
            )
            .unwrap();
        let e = ledger.read(&roster, None).unwrap_err().to_string();
        assert!(e.contains("`z`, who is not on the roster"), "{e}");
    }

    #[test]
    fn the_differencing_rule() {
        let (_d, ledger, roster, a, _) = setup();
        let base = cell(0, "cost", &[("f1", 0..15), ("f2", 0..5)]);
        ledger
            .append(
                &roster,
                &a,
                &Entry::new(
                    "a",
                    "r1",
                    "S",
                    snapshot(["f1", "f2"]),
                    std::slice::from_ref(&base),
                    None,
                ),
                |_| Ok(()),
            )
            .unwrap();
        let (past, _) = ledger.read(&roster, None).unwrap();
        // The same group minus one patient: refused, naming the earlier release.
        let minus_one = cell(0, "cost", &[("f1", 0..14), ("f2", 0..5)]);
        let r = differencing("r2", std::slice::from_ref(&minus_one), &past, 11);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].contains("differ by 1 from those of row 1, column `total` of request r1"),
            "{r:?}"
        );
        // Another measure, the same rows (Δ = 0), the same request again, or far enough: released.
        for (id, c) in [
            (
                "r2",
                cell(0, "length_of_stay", &[("f1", 0..14), ("f2", 0..5)]),
            ),
            ("r2", base.clone()),
            ("r1", minus_one.clone()),
            (
                "r2",
                cell(0, "cost", &[("f1", 0..15), ("f2", 0..5), ("f3", 0..11)]),
            ),
        ] {
            assert!(differencing(id, &[c], &past, 11).is_empty());
        }
        // Within one request: a total and the total minus one row.
        let r = differencing(
            "r3",
            &[
                cell(0, "x", &[("f9", 0..20)]),
                cell(1, "x", &[("f9", 1..20)]),
            ],
            &[],
            11,
        );
        assert_eq!(r.len(), 1);
        assert!(
            r[0].contains("row 2, column `total`") && r[0].contains("of this request"),
            "{r:?}"
        );
        assert_eq!(difference(&base.row_set, &minus_one.row_set), 1);
    }

    fn row_set() -> impl proptest::strategy::Strategy<Value = RowSet> {
        use proptest::prelude::*;
        proptest::collection::btree_map(
            "f[0-2]",
            proptest::collection::btree_set(0u32..300, 0..60),
            0..3,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect()
        })
    }

    fn plain(a: &RowSet) -> std::collections::BTreeSet<(String, u32)> {
        a.iter()
            .flat_map(|(f, rows)| rows.iter().map(move |r| (f.clone(), r)))
            .collect()
    }

    proptest::proptest! {
        /// The difference (and the size bound the rule relies on) agree with plain sets, and the
        /// rule refuses exactly the pairs 1..k−1 apart.
        #[test]
        fn difference_is_the_symmetric_difference(a in row_set(), b in row_set(), k in 2u64..40) {
            let want = plain(&a).symmetric_difference(&plain(&b)).count() as u64;
            proptest::prop_assert_eq!(difference(&a, &b), want);
            proptest::prop_assert!(size(&a).abs_diff(size(&b)) <= want);
            let cell = |r: &RowSet| CellProvenance {
                column: "c".into(), row: 0, rows: size(r), owners: BTreeMap::new(),
                measure: "m".into(), row_set: r.clone(), plain: true, count: false, scale: 0,
            };
            let refused = !differencing("r", &[cell(&a), cell(&b)], &[], k).is_empty();
            proptest::prop_assert_eq!(refused, (1..k).contains(&want));
            // Stored and read back, a row set is the same set.
            proptest::prop_assert_eq!(
                decode_rows(&encode_rows(a.values().next().unwrap_or(&RoaringBitmap::new()))).unwrap(),
                a.values().next().cloned().unwrap_or_default()
            );
        }
    }

    /// A noisy release of `cell` by `party` for `request`, as read back from a ledger.
    fn noisy(
        seq: u64,
        party: &str,
        request: &str,
        c: &CellProvenance,
        eps: f64,
        n: u32,
    ) -> Release {
        let noise: NoiseMap = [(
            (c.column.clone(), c.row),
            CellNoise {
                mechanism: Mechanism::new(eps, 1, 2).unwrap(),
                noise: rug::Integer::from(n),
                pinned: None,
            },
        )]
        .into_iter()
        .collect();
        let mut entry = Entry::new(
            party,
            request,
            "S",
            snapshot(["f"]),
            std::slice::from_ref(c),
            Some(&noise),
        );
        entry.requester = Some("req".into());
        Release {
            seq,
            row_sets: vec![c.row_set.clone()],
            entry,
        }
    }

    fn dp(budget: f64) -> Dp {
        Dp {
            epsilon: 1.0,
            budget,
            budget_per_requester: None,
            window_days: None,
            sensitivity: Default::default(),
        }
    }

    #[test]
    fn pinned_noise_needs_t_parties_entering_that_very_cell() {
        let parties: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m = Mechanism::new(1.0, 1, 2).unwrap();
        let s = cell(0, "cost", &[("f", 0..20)]);
        let wider = cell(0, "cost", &[("f", 0..40)]);
        // a and c released R1 over rows 0..20 with noise 7; colluder b enters R1's cell with
        // the same noise over rows 0..40.
        let past = vec![
            noisy(0, "a", "r1", &s, 1.0, 7),
            noisy(1, "c", "r1", &s, 1.0, 7),
            noisy(2, "b", "r1", &wider, 1.0, 7),
        ];
        assert_eq!(pinning("r2", &s, &m, &past, &parties).map(|p| p.0), Some(0));
        assert!(pinning("r2", &wider, &m, &past, &parties).is_none());
        // Entries by owners who hold no key share do not count either.
        let past = vec![
            noisy(0, "a", "r1", &s, 1.0, 7),
            noisy(1, "z", "r1", &s, 1.0, 7),
        ];
        assert!(pinning("r2", &s, &m, &past, &parties).is_none());
    }

    #[test]
    fn the_budget_charges_every_row_of_a_release_whatever_entry_comes_first() {
        let s = cell(0, "cost", &[("f", 0..20)]);
        let empty = cell(0, "cost", &[]);
        let noise: NoiseMap = [(
            ("total".to_owned(), 0),
            CellNoise {
                mechanism: Mechanism::new(1.0, 1, 2).unwrap(),
                noise: rug::Integer::from(7),
                pinned: None,
            },
        )]
        .into_iter()
        .collect();
        // A colluder entered this very request first, with no rows: this hospital's rows are
        // charged all the same.
        let past = vec![noisy(0, "b", "r9", &empty, 1.0, 7)];
        let r = budget(
            "r9",
            Some("req"),
            std::slice::from_ref(&s),
            &noise,
            &past,
            &dp(0.5),
            0,
        );
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].starts_with("20 lake row(s) would exceed"), "{r:?}");
        // Another request over the same rows, entered by one party with fewer rows and by
        // another with all: the union is charged.
        let past = vec![
            noisy(0, "b", "r1", &cell(0, "cost", &[("f", 0..5)]), 1.0, 7),
            noisy(1, "a", "r1", &s, 1.0, 7),
        ];
        let r = budget(
            "r2",
            Some("req"),
            std::slice::from_ref(&s),
            &noise,
            &past,
            &dp(1.5),
            0,
        );
        assert!(
            r[0].starts_with("20 lake row(s)") && r[0].contains("ε 1 spent"),
            "{r:?}"
        );
        // A row number near 2³² in the ledger is tallied only if this request touches it.
        let far = cell(0, "cost", &[("f", u32::MAX - 1..u32::MAX)]);
        let past = vec![noisy(0, "b", "r1", &far, 1.0, 7)];
        assert!(budget("r2", None, &[s], &noise, &past, &dp(1.0), 0).is_empty());
    }

    #[test]
    fn entries_claiming_an_impossible_mechanism_are_refused() {
        let (_d, ledger, roster, a, _) = setup();
        let c = cell(0, "cost", &[("f", 0..15)]);
        let mut bad = noisy(0, "a", "r1", &c, 1.0, 7).entry;
        if let Some(n) = bad.cells[0].noise.as_mut() {
            n.mechanism.epsilon = -1e300;
        }
        ledger.append(&roster, &a, &bad, |_| Ok(())).unwrap();
        let e = ledger.read(&roster, None).unwrap_err().to_string();
        assert!(
            e.contains("claims a noise mechanism no hospital draws"),
            "{e}"
        );
    }

    #[test]
    fn complementary_suppression_leaves_nothing_to_subtract() {
        let mut total = cell(0, "flag", &[("f", 0..40)]);
        let mut north = cell(1, "flag", &[("f", 0..20)]);
        let mut south = cell(2, "flag", &[("f", 20..40)]);
        for c in [&mut total, &mut north, &mut south] {
            c.count = true;
        }
        let rel = relations(&[total.clone(), north.clone(), south.clone()]);
        assert_eq!(
            rel,
            vec![Relation {
                total: ("total".into(), 0),
                parts: vec![("total".into(), 1), ("total".into(), 2)],
                rest: 0
            }]
        );
        let values = |v: [i128; 3]| move |k: &CellKey| Some(v[k.1 as usize]);
        // north is a small count: south (the smaller of the two released) goes too.
        let mut hidden = [("total".to_owned(), 1)].into_iter().collect();
        let added = suppress_complements(&rel, values([25, 4, 21]), &mut hidden, 11);
        assert_eq!(added, vec![("total".to_owned(), 2)]);
        // Nothing small: nothing added.
        let mut none = Default::default();
        assert!(suppress_complements(&rel, values([40, 15, 25]), &mut none, 11).is_empty());
        // Parts that leave rows out: a small remainder is suppressed through its smallest member.
        let mut most = cell(1, "flag", &[("f", 0..25)]);
        most.count = true;
        let part = relations(&[total.clone(), most]);
        assert_eq!(part[0].rest, 15);
        let mut none = Default::default();
        let added = suppress_complements(&part, values([20, 17, 0]), &mut none, 11);
        assert_eq!(added, vec![("total".to_owned(), 1)]);
        // Cells that are not counts have no relations.
        assert!(relations(&[
            cell(0, "cost", &[("f", 0..40)]),
            cell(1, "cost", &[("f", 0..20)])
        ])
        .is_empty());
    }

    #[test]
    fn the_complementary_rule() {
        let mut total = cell(0, "cost", &[("f", 0..40)]);
        total.column = "total".into();
        let parts = [
            cell(1, "cost", &[("f", 0..20)]),
            cell(2, "cost", &[("f", 20..39)]),
        ];
        let all = [total.clone(), parts[0].clone(), parts[1].clone()];
        let r = complementary(&all, 11);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].starts_with(
                "row 1, column `total`: the cells row 2, column `total`, row 3, column `total`"
            ),
            "{r:?}"
        );
        assert!(r[0].contains("all but 1 of its rows of `cost`"), "{r:?}");
        // Parts covering all of it, or leaving ≥ k rows, or of another measure: nothing.
        let full = [
            total.clone(),
            parts[0].clone(),
            cell(2, "cost", &[("f", 20..40)]),
        ];
        assert!(complementary(&full, 11).is_empty());
        let far = [
            total.clone(),
            cell(1, "cost", &[("f", 0..10)]),
            cell(2, "cost", &[("f", 20..30)]),
        ];
        assert!(complementary(&far, 11).is_empty());
        let other = [total, parts[0].clone(), cell(2, "los", &[("f", 20..39)])];
        assert!(complementary(&other, 11).is_empty());
    }
}
