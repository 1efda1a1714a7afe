//! Threshold decryption among hospitals: the math as properties, and the real binary end to end.

use std::sync::OnceLock;

use cipherlake::paillier::hazmat;
use cipherlake::paillier::threshold::{
    combine, partial_decrypt, partial_decrypt_batch, verify_batch, verify_partial, BatchProof,
    Dealt, Partial,
};
use proptest::prelude::*;
use rug::Integer;

use crate::util::Dir;

/// A 3-of-5 key at 512 bits (test fixture size).
fn dealt() -> &'static Dealt {
    static D: OnceLock<Dealt> = OnceLock::new();
    D.get_or_init(|| {
        let parties: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        hazmat::deal_any_size(512, &parties, 3).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any 3 of the 5 parties decrypt to the same value; subsets such as {1, 4, 5} have
    /// negative Lagrange coefficients.
    #[test]
    fn any_threshold_subset_combines_to_the_plaintext(m in any::<i64>(), pick in proptest::sample::subsequence(vec![0usize, 1, 2, 3, 4], 3)) {
        let d = dealt();
        let c = d.public.encrypt(&Integer::from(m)).unwrap();
        let partials: Vec<(usize, Integer)> = pick
            .iter()
            .map(|&k| {
                let p = partial_decrypt(&d.public, &d.shares[k], &c, b"t").unwrap();
                prop_assert!(verify_partial(&d.public, k + 1, &c, &p, b"t"));
                Ok((k + 1, p.value))
            })
            .collect::<Result<_, TestCaseError>>()?;
        let refs: Vec<(usize, &Integer)> = partials.iter().map(|(i, v)| (*i, v)).collect();
        let got = d.public.decode(combine(&d.public, &refs).unwrap()).unwrap();
        prop_assert_eq!(got, Integer::from(m));
    }

    /// Changing any part of a proof, the partial value, the binding or the party breaks it.
    #[test]
    fn tampered_proofs_never_verify(m in any::<i32>(), which in 0usize..5, delta in 1u32..1000) {
        let d = dealt();
        let c = d.public.encrypt(&Integer::from(m)).unwrap();
        let good = partial_decrypt(&d.public, &d.shares[1], &c, b"bind").unwrap();
        prop_assert!(verify_partial(&d.public, 2, &c, &good, b"bind"));
        let n2 = d.public.n_squared();
        let mut bad: Partial = good.clone();
        let (mut index, mut binding): (usize, &[u8]) = (2, b"bind");
        match which {
            0 => bad.value = (Integer::from(&bad.value * delta) + 1u32) % n2,
            1 => bad.e += delta,
            2 => bad.z += delta,
            3 => binding = b"other",
            _ => index = 3,
        }
        prop_assert!(!verify_partial(&d.public, index, &c, &bad, binding));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// One batched proof covers every cell of a party: an honest batch verifies; changing any
    /// one partial (by any factor, −1 included), the proof, the binding, a cell's name or the
    /// party makes it fail.
    #[test]
    fn batched_proofs_catch_any_wrong_cell(
        ms in proptest::collection::vec(any::<i32>(), 1..6),
        which in 0usize..6,
        cell in 0usize..6,
        delta in 2u32..1000,
    ) {
        let d = dealt();
        let pk = &d.public;
        let n2 = pk.n_squared();
        let cs: Vec<_> = ms.iter().map(|&m| pk.encrypt(&Integer::from(m)).unwrap()).collect();
        let named: Vec<_> = cs.iter().enumerate().map(|(i, c)| (c, vec![i as u8])).collect();
        let (values, proof) = partial_decrypt_batch(pk, &d.shares[1], &named, b"bind", None).unwrap();
        let proof: BatchProof = proof.unwrap();
        fn items<'a>(cs: &'a [cipherlake::paillier::Ciphertext], vs: &'a [Integer]) -> Vec<(&'a cipherlake::paillier::Ciphertext, &'a Integer, Vec<u8>)> {
            cs.iter().zip(vs).enumerate().map(|(i, (c, v))| (c, v, vec![i as u8])).collect()
        }
        let vs = values.clone();
        prop_assert!(verify_batch(pk, 2, &items(&cs, &vs), &proof, b"bind"));
        let j = cell % cs.len();
        let mut vs = values.clone();
        if which == 0 {
            vs[j] = Integer::from(&vs[j] * delta) % n2;
        }
        let mut its = items(&cs, &vs);
        let (mut p, mut binding, mut index) = (proof.clone(), &b"bind"[..], 2usize);
        match which {
            0 => {}
            1 => p.z += delta,
            2 => p.e += delta,
            3 => binding = b"other",
            4 => index = 3,
            _ => its[j].2 = vec![99],
        }
        prop_assert!(!verify_batch(pk, index, &its, &p, binding));
        // A partial times −1 (of order 2, which squaring would hide) changes the transcript
        // every coefficient is drawn from: it fails too.
        let mut flipped = values.clone();
        flipped[j] = Integer::from(n2 - &flipped[j]);
        prop_assert!(!verify_batch(pk, 2, &items(&cs, &flipped), &proof, b"bind"));
    }
}

#[test]
fn fewer_than_the_threshold_cannot_combine() {
    let d = dealt();
    let c = d.public.encrypt(&Integer::from(5)).unwrap();
    let p = partial_decrypt(&d.public, &d.shares[0], &c, b"").unwrap();
    let p2 = partial_decrypt(&d.public, &d.shares[1], &c, b"").unwrap();
    let err = combine(&d.public, &[(1, &p.value), (2, &p2.value)]).unwrap_err();
    assert!(err.to_string().contains("3 needed"), "{err}");
}

// ---- The real binary -------------------------------------------------------------------

const HOSPITALS: [&str; 3] = ["a", "b", "c"];
const QUERY: &str = "SELECT region, paillier_sum(cost) AS cost, paillier_sum(length_of_stay) AS days, \
                     paillier_count(diabetic) AS diabetic, COUNT(*) AS n FROM admissions GROUP BY region ORDER BY region";

/// Keys in `keys/` (2-of-3) and `single/`; each hospital's synthetic extract encrypted under each
/// key into `lake/` and `lake1/`; the query result of both in `r.parquet` and `r1.parquet`.
fn setup() -> Dir {
    let dir = Dir::new();
    dir.copy_keys("keys", "keys");
    dir.copy_keys("single", "single");
    for (i, h) in HOSPITALS.iter().enumerate() {
        let csv = dir.path(&format!("{h}.csv"));
        cipherlake::synth::write_admissions(&csv, i, 120, 9).unwrap();
        for (key, lake) in [("keys", "lake"), ("single", "lake1")] {
            dir.encrypt(
                &format!("{key}/public.json"),
                csv.to_str().unwrap(),
                "cost:2,length_of_stay,diabetic",
                &format!("{lake}/hospital={h}/part.parquet"),
            )
            .ok();
        }
    }
    for (key, lake, out) in [
        ("keys", "lake", "r.parquet"),
        ("single", "lake1", "r1.parquet"),
    ] {
        dir.query(
            &format!("{key}/public.json"),
            &format!("admissions={lake}"),
            QUERY,
            &["--output", out],
        )
        .ok();
    }
    dir
}

#[test]
fn three_hospitals_every_pair_decrypts_the_same_as_a_single_key() {
    let dir = setup();
    let single = dir
        .decrypt("single/private.json", "r1.parquet", &["--format", "csv"])
        .ok();
    assert!(single.lines().count() >= 3, "{single}");
    for h in HOSPITALS {
        dir.partial(h, "r.parquet", &format!("{h}.partial.json"), &[])
            .ok();
    }
    for (x, y) in [("a", "b"), ("a", "c"), ("b", "c")] {
        let out = dir
            .run(&[
                "combine",
                "--key",
                "keys/public.json",
                "--input",
                "r.parquet",
                "--partials",
                &format!("{x}.partial.json"),
                &format!("{y}.partial.json"),
                "--format",
                "csv",
                "-q",
            ])
            .ok();
        assert_eq!(out, single, "pair {x},{y}");
    }
    // One hospital alone cannot.
    dir.run(&[
        "combine",
        "--key",
        "keys/public.json",
        "--input",
        "r.parquet",
        "--partials",
        "b.partial.json",
    ])
    .fails_with(&["1 valid party given", "2 of 3 parties are needed"]);
    // The audit log has one line per request.
    let log = dir.read("audit-a.log");
    assert_eq!(log.lines().count(), 1);
    assert!(log.contains("\"granted\""), "{log}");
}

#[test]
fn bad_partials_shares_and_requests_are_rejected_with_their_reason() {
    let dir = setup();
    dir.partial("a", "r.parquet", "a.partial.json", &[]).ok();
    dir.partial("b", "r.parquet", "b.partial.json", &[]).ok();
    let combine = |partials: &[&str]| {
        let mut args = vec![
            "combine",
            "--key",
            "keys/public.json",
            "--input",
            "r.parquet",
            "--partials",
        ];
        args.extend_from_slice(partials);
        dir.run(&args)
    };
    let edit = |src: &str, dst: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&dir.read(src)).unwrap();
        f(&mut v);
        dir.write(dst, v.to_string());
    };

    // A tampered partial value, and a tampered proof.
    edit("b.partial.json", "b-value.json", &|v| {
        v["open"]["cells"][0]["value"] = v["open"]["cells"][1]["value"].clone()
    });
    combine(&["a.partial.json", "b-value.json"]).fails_with(&[
        "party b",
        "does not verify",
        "rejected",
    ]);
    let a_proof: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&dir.read("a.partial.json")).unwrap()["open"]
            ["proof"]
            .clone();
    edit("b.partial.json", "b-proof.json", &|v| {
        v["open"]["proof"] = a_proof.clone()
    });
    combine(&["a.partial.json", "b-proof.json"]).fails_with(&["party b", "does not verify"]);
    // A duplicated party.
    combine(&["a.partial.json", "a.partial.json"]).fails_with(&["party a is given twice"]);
    // A partial made for another result file.
    dir.query(
        "keys/public.json",
        "admissions=lake",
        &QUERY.replace("ORDER BY region", "ORDER BY region DESC"),
        &["--output", "r2.parquet"],
    )
    .ok();
    dir.partial("c", "r2.parquet", "c-other.partial.json", &[])
        .ok();
    combine(&["a.partial.json", "c-other.partial.json"])
        .fails_with(&["party c", "different result file"]);
    // A partial for another key.
    edit("b.partial.json", "b-key.json", &|v| {
        v["key_id"] = "ab".repeat(32).into()
    });
    combine(&["a.partial.json", "b-key.json"]).fails_with(&["another key", &"ab".repeat(32)]);
    // A share file for the wrong key.
    dir.copy_keys("other-t", "other");
    dir.run(&[
        "partial-decrypt",
        "--unverified",
        "--share",
        "other/share-a.json",
        "--key",
        "keys/public.json",
        "--input",
        "r.parquet",
        "--output",
        "x.json",
        "-q",
    ])
    .fails_with(&["share of party a is for another key"]);
    assert!(!dir.path("x.json").exists());
    // A cell under the row minimum: refused, listing the cells, and logged.
    dir.run(&[
        "partial-decrypt",
        "--unverified",
        "--share",
        "keys/share-c.json",
        "--key",
        "keys/public.json",
        "--input",
        "r.parquet",
        "--output",
        "c-strict.json",
        "--min-rows",
        "100000",
        "--audit-log",
        "audit-c2.log",
        "-q",
    ])
    .fails_with(&[
        "refused by the disclosure policy",
        "at least 100000",
        "row 1, column `cost`",
    ]);
    assert!(!dir.path("c-strict.json").exists());
    assert!(dir.read("audit-c2.log").contains("\"refused\""));
    // Individual values are never partially decrypted.
    dir.run(&[
        "partial-decrypt",
        "--unverified",
        "--share",
        "keys/share-c.json",
        "--key",
        "keys/public.json",
        "--input",
        "lake/hospital=a/part.parquet",
        "--output",
        "leak.json",
        "-q",
    ])
    .fails_with(&["individual encrypted value, not an aggregate"]);
    // Combining with fewer valid partials than needed after one is wrong.
    combine(&["b-value.json"]).fails_with(&["party b"]);
}

#[test]
fn small_decrypted_counts_and_shares_are_suppressed_averages_decrypt() {
    let dir = Dir::new();
    dir.copy_keys("ab", "keys");
    let mut csv = String::from("cost,flag\n");
    for i in 0..12 {
        csv.push_str(&format!("{i},{}\n", i < 2));
    }
    dir.write("x.csv", csv);
    dir.encrypt("keys/public.json", "x.csv", "cost,flag", "lake/x.parquet")
        .ok();
    dir.query("keys/public.json", "t=lake", "SELECT SUM(cost) AS cost, SUM(flag) AS flagged, AVG(flag) AS share, AVG(cost) AS mean FROM t", &["--output", "r.parquet"])
    .ok();
    for p in ["a", "b"] {
        dir.partial(p, "r.parquet", &format!("{p}.json"), &[]).ok();
    }
    let run = dir.combine_reporting("r.parquet", &["a.json", "b.json"], &["--format", "csv"]);
    // The count of 2 and the share 2/12 (which reveals it) are suppressed; the mean is not.
    assert_eq!(run.ok(), "cost,flagged,share,mean\n66,,,5.5\n");
    assert!(
        run.stderr().contains("2 count(s) suppressed (small: below"),
        "{}",
        run.stderr()
    );
}
