//! Differential privacy under encryption (issue 14): the releasing hospitals draw encrypted noise
//! shares (round 1), then decrypt each cell times the product of all of them (round 2); the same
//! rows again give the same noisy answer; the ε budget in the ledger refuses once spent; nobody
//! can drop, cancel or swap a hospital's share.

use std::collections::BTreeMap;

use cipherlake::keyfile;
use rug::Integer;

use crate::request::{lake, partial_with, query};
use crate::util::{b64, int, Dir, Run};

const POLICY: &str =
    "min_rows = 11\n\n[dp]\nepsilon = 1.0\nbudget = 2.5\n\n[dp.sensitivity]\ncost = 500\n";

const BY_REGION: &str = "SELECT region, SUM(cost) AS total, SUM(diabetic) AS d \
                         FROM adm GROUP BY region ORDER BY region";

/// Hospital `party` with the ledger and `policy`: round 1 (`--draw-noise`, writing
/// PARTY.noise.json) or round 2 (`--noise FILES`, writing PARTY.partial.json).
fn dp_run(
    dir: &Dir,
    party: &str,
    req: (&str, &str),
    id: &str,
    policy: &str,
    noise: &[&str],
) -> Run {
    let key = format!("owners/{party}.signing.json");
    let mut args = vec![
        "--request",
        req.1,
        "--roster",
        "roster.json",
        "--roster-id",
        id,
        "--force",
        "--ledger",
        "ledger.jsonl",
        "--signing-key",
        &key,
        "--policy",
        policy,
    ];
    let out = if noise.is_empty() {
        args.push("--draw-noise");
        format!("{party}.noise.json")
    } else {
        args.push("--noise");
        args.extend(noise);
        format!("{party}.partial.json")
    };
    dir.partial(party, req.0, &out, &args)
}

/// Rounds 1 and 2 by `parties`, then the requester's combine; returns the CSV and the stderr.
fn release(dir: &Dir, parties: &[&str], req: (&str, &str), id: &str) -> (String, String) {
    for p in parties {
        dp_run(dir, p, req, id, "policy.toml", &[]).ok();
    }
    let files: Vec<String> = parties.iter().map(|p| format!("{p}.noise.json")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    for p in parties {
        dp_run(dir, p, req, id, "policy.toml", &files).ok();
    }
    let partials: Vec<String> = parties
        .iter()
        .map(|p| format!("{p}.partial.json"))
        .collect();
    let partials: Vec<&str> = partials.iter().map(String::as_str).collect();
    let args = [
        "--request",
        req.1,
        "--identity",
        "requester.key",
        "--format",
        "csv",
    ];
    let run = dir.combine(req.0, &partials, &args);
    let csv = run.ok();
    (csv, run.stderr())
}

/// CSV rows as column → value maps keyed by the first column.
fn table(csv: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let row = head
                .iter()
                .zip(&v)
                .map(|(h, x)| (h.to_string(), x.to_string()))
                .collect();
            (v[0].to_owned(), row)
        })
        .collect()
}

/// The exact sums of the lake `request::lake` writes: per region, cost in cents and diabetics.
fn exact() -> BTreeMap<&'static str, (i64, i64)> {
    let mut e = BTreeMap::new();
    for rows in [30usize, 34, 38] {
        for r in 0..rows {
            let region = if r % 2 == 0 { "north" } else { "south" };
            let x = e.entry(region).or_insert((0i64, 0i64));
            x.0 += (100 + r as i64) * 100 + 50;
            x.1 += (r % 3 == 0) as i64;
        }
    }
    e
}

fn cents(s: &str) -> i64 {
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    let neg = whole.starts_with('-');
    let v = whole.trim_start_matches('-').parse::<i64>().unwrap() * 100
        + format!("{frac:0<2}")[..2].parse::<i64>().unwrap();
    if neg {
        -v
    } else {
        v
    }
}

#[test]
fn noisy_releases_repeat_on_the_same_rows_and_the_budget_runs_out() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    dir.write("policy.toml", POLICY);
    let lint = dir.run(&["policy", "check", "policy.toml"]).ok();
    assert!(lint.contains("no dp.budget_per_requester"), "{lint}");

    query(&dir, BY_REGION, "r1.parquet", "r1.json").ok();
    let (first, said) = release(&dir, &["a", "c"], ("r1.parquet", "r1.json"), &id);
    assert!(
        said.contains("differential privacy: column `total`: discrete Laplace, ε 1 per cell, sensitivity 500, scale Δ/ε = 500"),
        "{said}"
    );
    assert!(
        said.contains("column `d`: discrete Laplace, ε 1 per cell, sensitivity 1"),
        "{said}"
    );
    let first = table(&first);
    // Sensitivity 500.00 at ε 1: the noise of a total has a standard deviation of ~$707, so it
    // is zero with probability ~1e-5 per cell; both totals exact would be a release without noise.
    let exact = exact();
    let noise: Vec<i64> = exact
        .iter()
        .map(|(region, (c, _))| cents(&first[*region]["total"]) - c)
        .collect();
    assert!(noise.iter().any(|&n| n != 0), "{first:?}");
    assert!(noise.iter().all(|&n| n.abs() < 5_000_000), "{noise:?}");
    // The ledger holds the noise (encrypted), never a value; each entry names the requester.
    let ledger = dir.read("ledger.jsonl");
    assert_eq!(ledger.lines().count(), 2);
    assert!(
        ledger.contains("\"noise\":{\"mechanism\":{\"epsilon\":1.0"),
        "{ledger}"
    );
    assert!(ledger.contains("\"requester\":\"age1"), "{ledger}");

    // The same rows again (another request: other order, other hospitals): the same noisy
    // answer, pinned to the first release, and no new budget spent.
    let again = "SELECT region, SUM(cost) AS total, SUM(diabetic) AS d FROM adm GROUP BY region ORDER BY region DESC";
    query(&dir, again, "r2.parquet", "r2.json").ok();
    let (second, said) = release(&dir, &["b", "c"], ("r2.parquet", "r2.json"), &id);
    assert!(
        said.contains("2 cell(s), 2 repeating an earlier release's noisy answer"),
        "{said}"
    );
    assert_eq!(table(&second), first);

    // Each row has spent ε 2 (a total and a count); one more cell over them would bring it to
    // 3, past the budget of 2.5: refused in round 1 already, naming the budget.
    query(
        &dir,
        "SELECT SUM(cost) AS t FROM adm",
        "r3.parquet",
        "r3.json",
    )
    .ok();
    dp_run(
        &dir,
        "a",
        ("r3.parquet", "r3.json"),
        &id,
        "policy.toml",
        &[],
    )
    .fails_with(&[
        "lake row(s) would exceed this hospital's differential-privacy budget of ε 2.5",
        "ε 2 spent, 1 more by this request",
    ]);
    // With a larger budget the same request goes through, and spends it.
    dir.write("policy.toml", POLICY.replace("budget = 2.5", "budget = 3"));
    let (total, _) = release(&dir, &["a", "b"], ("r3.parquet", "r3.json"), &id);
    assert_eq!(table(&total).len(), 1);
    dir.run(&["audit", "verify", "audit-a.log"]).ok();
}

#[test]
fn shares_cannot_be_dropped_cancelled_swapped_or_drawn_for_another_mechanism() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    dir.write("policy.toml", POLICY);
    let req = ("r.parquet", "r.json");
    query(&dir, BY_REGION, req.0, req.1).ok();
    let as_a = |noise: &[&str]| dp_run(&dir, "a", req, &id, "policy.toml", noise);

    // No noise round: told what to do.
    partial_with(
        &dir,
        "a",
        req.0,
        req.1,
        &id,
        &[
            "--ledger",
            "ledger.jsonl",
            "--signing-key",
            "owners/a.signing.json",
            "--policy",
            "policy.toml",
        ],
    )
    .fails_with(&["first each releasing hospital runs partial-decrypt --draw-noise"]);
    as_a(&[]).ok();
    dp_run(&dir, "b", req, &id, "policy.toml", &[]).ok();
    dp_run(
        &dir,
        "c",
        req,
        &id,
        "policy.toml",
        &["a.noise.json", "b.noise.json"],
    )
    .fails_with(&["this party drew no noise for request"]);
    dp_run(&dir, "c", req, &id, "policy.toml", &[]).ok();

    // a's own share left out.
    as_a(&["b.noise.json", "c.noise.json"])
        .fails_with(&["no noise file of party a among the 2 given"]);
    // Too few shares for the mechanism (a alone).
    as_a(&["a.noise.json"]).fails_with(&["noise from 1 party (a), fewer than the 2 needed"]);

    // c cancels a's noise: its "share" of each cell is the inverse of a's. Without knowing a's
    // plaintext it cannot prove knowledge of it, so a refuses.
    let pk = keyfile::load_threshold_public(&dir.path("keys/public.json")).unwrap();
    let a = dir.json("a.noise.json");
    let mut c = dir.json("c.noise.json");
    for (i, cell) in c["cells"].as_array_mut().unwrap().iter_mut().enumerate() {
        let share = int(&a["cells"][i]["share"]);
        let inv = pk.neg(&pk.ciphertext_from_integer(share).unwrap()).unwrap();
        cell["share"] = b64(inv.as_integer());
    }
    dir.write("c-cancel.noise.json", c.to_string());
    as_a(&["a.noise.json", "c-cancel.noise.json"])
        .fails_with(&["the proof that party c knows its share does not verify"]);
    // c presents a's shares (and proofs) as its own: bound to party a, refused.
    let mut swapped = a.clone();
    swapped["party"] = "c".into();
    swapped["index"] = 3.into();
    dir.write("c-copy.noise.json", swapped.to_string());
    as_a(&["a.noise.json", "c-copy.noise.json"])
        .fails_with(&["the proof that party c knows its share does not verify"]);
    // a's own file replaced by another one (b's shares under a's name would fail their proofs;
    // an edited copy of a's is not the file a logged).
    let mut edited = a.clone();
    edited["cells"].as_array_mut().unwrap().reverse();
    dir.write("a-edited.noise.json", edited.to_string());
    as_a(&["a-edited.noise.json", "c.noise.json"])
        .fails_with(&["not the noise file this party drew for the request"]);

    // b draws under ε 0.5: its shares are not the mechanism a's policy gives the cells.
    dir.write(
        "half.toml",
        POLICY.replace("epsilon = 1.0", "epsilon = 0.5"),
    );
    dp_run(&dir, "b", req, &id, "half.toml", &[]).ok();
    as_a(&["a.noise.json", "b.noise.json"]).fails_with(&[
        "the share was drawn for ε 0.5, sensitivity",
        "this hospital's policy gives the cell ε 1, sensitivity",
    ]);

    // Every refusal is logged; the ledger holds no release.
    assert!(!dir.path("ledger.jsonl").exists() || dir.read("ledger.jsonl").is_empty());
    let log = dir.read("audit-a.log");
    assert!(
        log.contains("noise drawn") && log.contains("does not verify"),
        "{log}"
    );

    // Arithmetic on a column has no declared sensitivity: refused under DP.
    query(
        &dir,
        "SELECT SUM(cost * 2) AS t FROM adm",
        "w.parquet",
        "w.json",
    )
    .ok();
    dp_run(&dir, "a", ("w.parquet", "w.json"), &id, "policy.toml", &[])
        .fails_with(&["only SUM, COUNT and AVG of a lake column itself are released"]);
    // Without a sensitivity for the column: refused, naming it.
    dir.write("nosens.toml", "[dp]\nepsilon = 1.0\nbudget = 5\n");
    dp_run(&dir, "a", req, &id, "nosens.toml", &[])
        .fails_with(&["the policy declares no dp.sensitivity for `cost`"]);
}

/// Shares from the OS CSPRNG never repeat: two noise rounds of the same hospital for two
/// requests decrypt (with two shares of the threshold key) to different shares.
#[test]
fn noise_shares_are_fresh_for_every_request() {
    use cipherlake::paillier::threshold::{combine, partial_decrypt};
    let dir = Dir::with_keys();
    let id = lake(&dir);
    dir.write("policy.toml", POLICY);
    let pk = keyfile::load_threshold_public(&dir.path("keys/public.json")).unwrap();
    let keys: Vec<_> = ["a", "b"]
        .iter()
        .map(|p| keyfile::load_share(&dir.path(&format!("keys/share-{p}.json"))).unwrap())
        .collect();
    let mut plain = Vec::new();
    let sqls = [
        BY_REGION,
        "SELECT region, SUM(cost) AS total, SUM(diabetic) AS d FROM adm \
         WHERE patient_id < 2000 GROUP BY region ORDER BY region",
    ];
    for (i, sql) in sqls.iter().enumerate() {
        let (r, q) = (format!("r{i}.parquet"), format!("r{i}.json"));
        query(&dir, sql, &r, &q).ok();
        dp_run(&dir, "a", (&r, &q), &id, "policy.toml", &[]).ok();
        let f = dir.json("a.noise.json");
        // The totals' shares (sensitivity 50,000 cents): counts' shares are small integers
        // that may well repeat.
        for c in f["cells"].as_array().unwrap() {
            if c["column"] != "total" {
                continue;
            }
            let share = pk.ciphertext_from_integer(int(&c["share"])).unwrap();
            let parts: Vec<_> = keys
                .iter()
                .map(|k| {
                    (
                        k.index(),
                        partial_decrypt(&pk, k, &share, b"t").unwrap().value,
                    )
                })
                .collect();
            let refs: Vec<(usize, &Integer)> = parts.iter().map(|(i, v)| (*i, v)).collect();
            plain.push(pk.decode(combine(&pk, &refs).unwrap()).unwrap());
        }
    }
    assert_eq!(plain.len(), 4);
    let distinct: std::collections::BTreeSet<&Integer> = plain.iter().collect();
    assert_eq!(distinct.len(), plain.len(), "{plain:?}");
    assert!(plain.iter().any(|z| *z != 0), "{plain:?}");
}

/// A colluding hospital enters a release of its own in the ledger, over the rows a request will
/// read, with noise it knows (an encryption of 0). A release that fewer than t parties entered
/// pins nothing: the honest hospitals draw fresh noise, and the answer is not exact.
#[test]
fn a_release_entered_by_one_colluder_does_not_pin_known_noise() {
    use cipherlake::release::ledger::{snapshot, Entry, Ledger};
    use cipherlake::release::noise::{CellNoise, Mechanism, NoiseMap};
    use cipherlake::release::verify::{CellProvenance, RowSet};
    use cipherlake::release::{OwnerKey, Roster};
    use sha2::Digest;

    let dir = Dir::with_keys();
    let id = lake(&dir);
    // The fake release spends budget too (counted whoever entered it): room for the real one.
    dir.write("policy.toml", POLICY.replace("budget = 2.5", "budget = 10"));
    let pk = keyfile::load_threshold_public(&dir.path("keys/public.json")).unwrap();
    // The lake's rows per region, by file (anyone who reads the lake knows them).
    let mut rows: [RowSet; 2] = Default::default();
    for (o, n) in [("a", 30u32), ("b", 34), ("c", 38)] {
        let bytes = std::fs::read(dir.path(&format!("lake/hospital={o}/{o}.parquet"))).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        for (region, set) in rows.iter_mut().enumerate() {
            set.insert(
                sha.clone(),
                (0..n).filter(|r| r % 2 == region as u32).collect(),
            );
        }
    }
    let zero = pk.encrypt(&Integer::from(0)).unwrap();
    let mut cells = Vec::new();
    let mut noise = NoiseMap::new();
    for (column, measure, count, sensitivity) in
        [("total", "cost", false, 50_000), ("d", "diabetic", true, 1)]
    {
        for (row, set) in rows.iter().enumerate() {
            cells.push(CellProvenance {
                column: column.into(),
                row: row as u64,
                rows: set.values().map(|b| b.len()).sum(),
                owners: Default::default(),
                measure: measure.into(),
                row_set: set.clone(),
                plain: true,
                count,
                scale: if count { 0 } else { 2 },
            });
            noise.insert(
                (column.into(), row as u64),
                CellNoise {
                    mechanism: Mechanism::new(1.0, sensitivity, 2).unwrap(),
                    noise: zero.as_integer().clone(),
                    pinned: None,
                },
            );
        }
    }
    let fake = Entry::new(
        "c",
        &"f".repeat(64),
        BY_REGION,
        snapshot(["x"]),
        &cells,
        Some(&noise),
    );
    let roster = Roster::load(&dir.path("roster.json"), Some(&id)).unwrap();
    let key = OwnerKey::load(&dir.path("owners/c.signing.json")).unwrap();
    Ledger::new(&dir.path("ledger.jsonl"))
        .append(&roster, &key, &fake, |_| Ok(()))
        .unwrap();

    query(&dir, BY_REGION, "r.parquet", "r.json").ok();
    let (csv, said) = release(&dir, &["a", "b"], ("r.parquet", "r.json"), &id);
    assert!(!said.contains("repeating an earlier release"), "{said}");
    let got = table(&csv);
    let exact = exact();
    assert!(
        exact
            .iter()
            .any(|(region, (c, _))| cents(&got[*region]["total"]) != *c),
        "the release is exact: {got:?}"
    );
}
