//! The release ledger (issue 14): every release is entered, signed, in one shared hash-chained
//! file, and every hospital checks a new request against all of them (the differencing rule),
//! whoever released them; per-owner minimums; a tampered, truncated, reordered or deleted ledger
//! is detected.

use crate::request::{lake, partial_with, query};
use crate::util::{Dir, Run};

/// Hospital `party` re-verifies `request` for `result` with the shared ledger.
fn release(dir: &Dir, party: &str, result: &str, request: &str, id: &str, extra: &[&str]) -> Run {
    let key = format!("owners/{party}.signing.json");
    let args = ["--ledger", "ledger.jsonl", "--signing-key", &key];
    partial_with(
        dir,
        party,
        result,
        request,
        id,
        &[&args[..], extra].concat(),
    )
}

const ALL: &str = "SELECT SUM(cost) AS t, COUNT(*) AS n FROM adm WHERE patient_id < 30";
const BUT_ONE: &str =
    "SELECT SUM(cost) AS t, COUNT(*) AS n FROM adm WHERE patient_id < 30 AND patient_id <> 4";

#[test]
fn the_differencing_pair_is_refused_whoever_released_the_first() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    // The first request, released by a and c.
    query(&dir, ALL, "r1.parquet", "r1.json").ok();
    for p in ["a", "c"] {
        release(&dir, p, "r1.parquet", "r1.json", &id, &[]).ok();
    }
    let entries = dir.read("ledger.jsonl");
    assert_eq!(entries.lines().count(), 2);
    assert!(
        !entries.contains("cost\":"),
        "values never enter the ledger"
    );
    // The same group minus one patient, brought to another pair (b, then c): both refuse,
    // naming the earlier release.
    query(&dir, BUT_ONE, "r2.parquet", "r2.json").ok();
    let r1 = dir.json("r1.json")["request_id"].as_str().unwrap()[..16].to_owned();
    std::fs::remove_file(dir.path("c.partial.json")).unwrap();
    for p in ["b", "c"] {
        release(&dir, p, "r2.parquet", "r2.json", &id, &[]).fails_with(&[
            "row 1, column `t`: its rows of `cost` differ by 1 from those of row 1, column `t`",
            &format!("of request {r1} (released by `a`, ledger entry 0)"),
            "the difference of the two would reveal those rows",
        ]);
        assert!(!dir.path(&format!("{p}.partial.json")).exists());
    }
    // The refusal is logged, with its reason and the ledger head b read (so b catches a later
    // cut of entries it never wrote).
    let log = dir.read("audit-b.log");
    assert!(
        log.contains("differ by 1") && log.contains("\"ledger_head\":\"1:"),
        "{log}"
    );
    // The first request again is the same release; another measure or a group far enough
    // away is released.
    release(&dir, "b", "r1.parquet", "r1.json", &id, &[]).ok();
    for sql in [
        "SELECT SUM(diabetic) AS d FROM adm WHERE patient_id < 30 AND patient_id <> 4",
        "SELECT SUM(cost) AS t FROM adm WHERE patient_id < 15",
    ] {
        query(&dir, sql, "r3.parquet", "r3.json").ok();
        release(&dir, "b", "r3.parquet", "r3.json", &id, &[]).ok();
    }
    dir.run(&["audit", "verify", "audit-b.log"]).ok();
}

#[test]
fn a_total_and_the_total_but_one_in_one_request_are_refused() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    let sql =
        "SELECT SUM(cost) AS total, SUM(cost) FILTER (WHERE patient_id <> 4) AS but_one FROM adm";
    query(&dir, sql, "r.parquet", "r.json").ok();
    release(&dir, "a", "r.parquet", "r.json", &id, &[]).fails_with(&[
        "row 1, column `but_one`: its rows of `cost` differ by 1 from those of row 1, column `total` of this request",
    ]);
}

#[test]
fn a_total_beside_all_its_parts_but_a_small_one_is_refused_without_a_ledger() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    // north without patient 4, south, and the total: total − north − south = patient 4. No two
    // of the three differ by fewer than 11 rows.
    let sql = "SELECT SUM(cost) FILTER (WHERE region = 'north' AND patient_id <> 4) AS north, \
               SUM(cost) FILTER (WHERE region = 'south') AS south, SUM(cost) AS total FROM adm";
    query(&dir, sql, "r.parquet", "r.json").ok();
    crate::request::partial(&dir, "a", "r.parquet", "r.json", &id).fails_with(&[
        "row 1, column `total`: the cells row 1, column `south`, row 1, column `north` of this request are disjoint parts of it that cover all but 1 of its rows of `cost`",
    ]);
    // With every part, nothing can be derived that was not released.
    let sql = "SELECT SUM(cost) FILTER (WHERE region = 'north') AS north, \
               SUM(cost) FILTER (WHERE region = 'south') AS south, SUM(cost) AS total FROM adm";
    query(&dir, sql, "r.parquet", "r.json").ok();
    crate::request::partial(&dir, "a", "r.parquet", "r.json", &id).ok();
}

#[test]
fn a_small_count_beside_its_total_and_sibling_is_suppressed_with_a_complement() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    // total = north of hospital a (15 rows, 5 diabetics: suppressed) + south of all (51 rows,
    // 17 diabetics). Released as such, total − south would give north's 5.
    let sql =
        "SELECT SUM(diabetic) FILTER (WHERE region = 'south' OR patient_id < 1000) AS total, \
               SUM(diabetic) FILTER (WHERE region = 'north' AND patient_id < 1000) AS north, \
               SUM(diabetic) FILTER (WHERE region = 'south') AS south FROM adm";
    query(&dir, sql, "r.parquet", "r.json").ok();
    for p in ["a", "c"] {
        crate::request::partial(&dir, p, "r.parquet", "r.json", &id).ok();
    }
    let run = dir.combine_reporting(
        "r.parquet",
        &["a.partial.json", "c.partial.json"],
        &[
            "--request",
            "r.json",
            "--identity",
            "requester.key",
            "--format",
            "csv",
        ],
    );
    // south (the smaller of the two released members) is suppressed with north.
    assert_eq!(run.ok(), "total,north,south\n22,,\n");
    assert!(
        run.stderr().contains(
            "2 count(s) suppressed (small: below 11, of which 1 only so that no small count can be derived by subtraction)"
        ),
        "{}",
        run.stderr()
    );
}

#[test]
fn per_owner_minimums_and_breakdowns() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    // north: a 15, b 17, c 19 rows.
    query(
        &dir,
        "SELECT region, SUM(cost) AS t FROM adm GROUP BY region ORDER BY region",
        "r.parquet",
        "r.json",
    )
    .ok();
    release(&dir, "a", "r.parquet", "r.json", &id, &["--min-rows-per-owner", "16"]).fails_with(&[
        "row 1, column `t`: owner `a` contributes 15 row(s), fewer than this hospital's minimum of 16 per owner",
    ]);
    release(
        &dir,
        "a",
        "r.parquet",
        "r.json",
        &id,
        &["--min-rows-per-owner", "15"],
    )
    .ok();
    // A per-site breakdown, where the policy file (TOML, as a privacy officer writes it)
    // forbids it; the linter says what the policy still allows.
    dir.write(
        "policy.toml",
        "# hospital a\nmin_rows = 11\nowner_breakdown = false\n",
    );
    let lint = dir.run(&["policy", "check", "policy.toml"]).ok();
    assert!(lint.contains("owner_breakdown false"), "{lint}");
    assert!(
        lint.contains("warning: min_owners 1") && !lint.contains("per-site breakdowns"),
        "{lint}"
    );
    dir.write("bad.toml", "min_rows = 11\nk_site = 3\n");
    dir.run(&["policy", "check", "bad.toml"])
        .fails_with(&["bad.toml", "unknown field `k_site`"]);
    query(
        &dir,
        "SELECT patient_id / 1000 AS site, SUM(cost) AS t FROM adm GROUP BY patient_id / 1000",
        "s.parquet",
        "s.json",
    )
    .ok();
    release(
        &dir,
        "a",
        "s.parquet",
        "s.json",
        &id,
        &["--policy", "policy.toml"],
    )
    .fails_with(&[
        "all its rows come from owner",
        "a per-owner breakdown this hospital's policy does not allow",
    ]);
    // At most so many groups: two regions pass a maximum of 2, not of 1.
    let with = |policy: &str| release(&dir, "a", "r.parquet", "r.json", &id, &["--policy", policy]);
    dir.write("groups.toml", "max_groups = 1\n");
    with("groups.toml")
        .fails_with(&["the result has 2 rows (groups), more than this hospital's maximum of 1"]);
    dir.write("groups.toml", "max_groups = 2\n");
    with("groups.toml").ok();
    // Only the measures the policy lists.
    dir.write(
        "measures.toml",
        "measures = [\"diabetic\", \"length_of_stay\"]\n",
    );
    with("measures.toml").fails_with(&[
        "row 1, column `t`: its values come from `cost`, which this hospital's policy does not release (measures: diabetic, length_of_stay)",
    ]);
    dir.write("measures.toml", "measures = [\"cost\"]\n");
    with("measures.toml").ok();
    // Without a request, rules per owner cannot be applied: said, not ignored.
    dir.partial("a", "s.parquet", "x.json", &["--policy", "policy.toml"])
        .fails_with(&["rules per owner", "need --request"]);
}

#[test]
fn a_tampered_truncated_reordered_or_deleted_ledger_is_detected() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    for (i, sql) in [
        "SELECT SUM(cost) AS t FROM adm",
        "SELECT SUM(diabetic) AS d FROM adm",
        "SELECT SUM(cost) AS t FROM adm WHERE region = 'north'",
    ]
    .iter()
    .enumerate()
    {
        query(&dir, sql, &format!("r{i}.parquet"), &format!("r{i}.json")).ok();
        release(
            &dir,
            "a",
            &format!("r{i}.parquet"),
            &format!("r{i}.json"),
            &id,
            &[],
        )
        .ok();
    }
    query(
        &dir,
        "SELECT SUM(cost) AS t FROM adm WHERE region = 'south'",
        "q.parquet",
        "q.json",
    )
    .ok();
    let text = dir.read("ledger.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let put = |ls: &[&str]| dir.write("ledger.jsonl", ls.join("\n") + "\n");
    // An entry's SQL edited: its signature fails (and the next entry's link).
    let edited = lines[2].replace("region = 'north'", "region = 'south'");
    put(&[lines[0], lines[1], &edited]);
    release(&dir, "b", "q.parquet", "q.json", &id, &[]).fails_with(&[
        "ledger ledger.jsonl",
        "line 3 (entry 2)",
        "signature of `a` does not verify",
    ]);
    // Reordered.
    put(&[lines[1], lines[0], lines[2]]);
    release(&dir, "b", "q.parquet", "q.json", &id, &[]).fails_with(&["says it is entry 1"]);
    // Truncated: the chain alone looks fine, but a has recorded the head it wrote.
    put(&[lines[0], lines[1]]);
    release(&dir, "a", "q.parquet", "q.json", &id, &[]).fails_with(&[
        "it ends at entry 1 but the recorded head is entry 2",
        "removed from its end",
    ]);
    // Deleted.
    std::fs::remove_file(dir.path("ledger.jsonl")).unwrap();
    release(&dir, "a", "q.parquet", "q.json", &id, &[])
        .fails_with(&["it does not exist but the recorded head is entry 2"]);
    // Restored, it is accepted again, and anyone with the roster can check it.
    put(&lines);
    let ok = dir
        .run(&[
            "ledger",
            "verify",
            "ledger.jsonl",
            "--roster",
            "roster.json",
            "--roster-id",
            &id,
        ])
        .ok();
    assert!(ok.contains("3 entries, chain and signatures intact; 3 request(s) released, entries by a (3); head 2:"), "{ok}");
    put(&[lines[0], lines[1]]);
    dir.run(&[
        "ledger",
        "verify",
        "ledger.jsonl",
        "--roster",
        "roster.json",
        "--head",
        ok.trim().rsplit(' ').next().unwrap(),
    ])
    .fails_with(&["removed from its end"]);
    put(&lines);
    release(&dir, "a", "q.parquet", "q.json", &id, &[]).ok();
    // A hospital cannot sign as another.
    release(&dir, "b", "q.parquet", "q.json", &id, &[]).ok();
    dir.partial(
        "c",
        "q.parquet",
        "c.partial.json",
        &[
            "--request",
            "q.json",
            "--roster",
            "roster.json",
            "--roster-id",
            &id,
            "--ledger",
            "ledger.jsonl",
            "--signing-key",
            "owners/a.signing.json",
        ],
    )
    .fails_with(&["the signing key is owner `a`'s but the share is party `c`'s"]);
}

#[test]
fn of_two_conflicting_releases_made_at_once_exactly_one_is_made() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    query(&dir, ALL, "r1.parquet", "r1.json").ok();
    query(&dir, BUT_ONE, "r2.parquet", "r2.json").ok();
    // a releases the group while b releases the group minus one, at the same time: both read
    // an empty ledger, and the ledger's lock decides.
    let (ra, rb) = std::thread::scope(|s| {
        let a = s.spawn(|| release(&dir, "a", "r1.parquet", "r1.json", &id, &[]));
        let b = s.spawn(|| release(&dir, "b", "r2.parquet", "r2.json", &id, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let ok = [&ra, &rb].iter().filter(|r| r.0.status.success()).count();
    assert_eq!(ok, 1, "a: {}\nb: {}", ra.stderr(), rb.stderr());
    let (loser, party) = if ra.0.status.success() {
        (&rb, "b")
    } else {
        (&ra, "a")
    };
    loser.fails_with(&["differ by 1"]);
    assert!(!dir.path(&format!("{party}.partial.json")).exists());
    assert_eq!(dir.read("ledger.jsonl").lines().count(), 1);
}
