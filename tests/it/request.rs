//! Verifiable release (issue 13): three hospitals, a 2-of-3 key, a signed lake. The honest path
//! releases; every lie of the cloud about what a result is made of is refused by the hospital's
//! own re-verification, and partials cannot be replayed or their minimum edited.

use std::fs::File;
use std::sync::Arc;

use cipherlake::release::Request;
use datafusion::arrow::array::{Array, FixedSizeBinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use serde_json::Value;

use crate::util::{Dir, Run};

const SQL: &str = "SELECT region, COUNT(*) AS n, SUM(cost) AS total, SUM(diabetic) AS diabetics \
                   FROM adm GROUP BY region ORDER BY region";

fn csv(rows: usize, offset: usize) -> String {
    let mut s = String::from("patient_id,region,cost,diabetic\n");
    for i in 0..rows {
        let region = if i % 2 == 0 { "north" } else { "south" };
        s.push_str(&format!(
            "{},{region},{}.50,{}\n",
            offset + i,
            100 + i,
            i % 3 == 0
        ));
    }
    s
}

/// Signing keys for owners a, b, c (owners/) and their roster (roster.json); returns its id.
fn owners(dir: &Dir) -> String {
    let mut roster = vec![
        "roster",
        "--key",
        "keys/public.json",
        "--output",
        "roster.json",
        "-q",
    ];
    let files: Vec<String> = HOSPITALS
        .iter()
        .map(|o| format!("owners/{o}.owner.json"))
        .collect();
    for (o, f) in HOSPITALS.iter().zip(&files) {
        dir.run(&["owner-key", "--owner", o, "--output", "owners", "-q"])
            .ok();
        roster.extend(["--owner", f.as_str()]);
    }
    // The analyst's key: hospitals seal their partials to it.
    dir.run(&["requester-key", "--output", "requester.key", "-q"])
        .ok();
    dir.run(&roster).ok().trim().to_owned()
}

const HOSPITALS: [&str; 3] = ["a", "b", "c"];

/// keys/ (2-of-3 for a, b, c), owners a, b, c and their roster, each hospital's file signed in
/// lake/hospital=X/. Returns the roster id.
pub(crate) fn lake(dir: &Dir) -> String {
    let id = owners(dir);
    for (i, o) in HOSPITALS.iter().enumerate() {
        dir.write(&format!("{o}.csv"), csv(30 + 4 * i, 1000 * i));
    }
    for o in ["a", "b", "c"] {
        dir.encrypt_with(
            "keys/public.json",
            &format!("{o}.csv"),
            "cost:2,diabetic",
            &format!("lake/hospital={o}/{o}.parquet"),
            &["--sign", &format!("owners/{o}.signing.json"), "-q"],
        )
        .ok();
    }
    id
}

/// The cloud: the query, its result and its request.
pub(crate) fn query(dir: &Dir, sql: &str, out: &str, request: &str) -> Run {
    dir.query(
        "keys/public.json",
        "adm=lake",
        sql,
        &[
            "--output",
            out,
            "--request",
            request,
            "--roster",
            "roster.json",
            "--requester-key",
            "requester.key",
            "-q",
            "--force",
        ],
    )
}

/// A hospital: re-verify and partially decrypt.
pub(crate) fn partial(dir: &Dir, party: &str, result: &str, request: &str, id: &str) -> Run {
    partial_with(dir, party, result, request, id, &[])
}

/// [`partial`] with more flags.
pub(crate) fn partial_with(
    dir: &Dir,
    party: &str,
    result: &str,
    request: &str,
    id: &str,
    extra: &[&str],
) -> Run {
    let args = [
        "--request",
        request,
        "--roster",
        "roster.json",
        "--roster-id",
        id,
        "--force",
    ];
    dir.partial(
        party,
        result,
        &format!("{party}.partial.json"),
        &[&args[..], extra].concat(),
    )
}

fn batches(dir: &Dir, rel: &str) -> Vec<RecordBatch> {
    let f = File::open(dir.path(rel)).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn write_batches(dir: &Dir, rel: &str, batches: &[RecordBatch]) {
    let f = File::create(dir.path(rel)).unwrap();
    let mut w = ArrowWriter::try_new(f, batches[0].schema(), None).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// The cloud's forgery: `result.parquet` changed by `edit`, written as `forged.parquet`, and a
/// request for it with a consistent id (the cloud can recompute any digest): `forged.json`.
fn forge(dir: &Dir, edit: impl FnOnce(&mut Vec<RecordBatch>)) {
    let mut b = batches(dir, "result.parquet");
    edit(&mut b);
    write_batches(dir, "forged.parquet", &b);
    let r = Request::load(&dir.path("request.json")).unwrap();
    reissue_for(dir, r, "forged.parquet", "forged.json");
}

/// Writes `r` as a request for the result file `result` (its SHA-256 and size), id recomputed.
pub(crate) fn reissue_for(dir: &Dir, mut r: Request, result: &str, to: &str) {
    let bytes = std::fs::read(dir.path(result)).unwrap();
    use sha2::Digest;
    r.result.sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    r.result.size = bytes.len() as u64;
    reissue(dir, r, to);
}

/// Writes `r` with its id recomputed.
pub(crate) fn reissue(dir: &Dir, r: Request, to: &str) {
    let r = Request::new(
        r.sql,
        r.tables,
        r.files,
        r.key_ids,
        r.roster_id,
        r.requester,
        r.recipient,
        r.result,
    );
    dir.write(to, r.to_json().unwrap());
}

/// Column `name` of every batch replaced by `f(old column)`.
fn replace_column(
    b: &mut [RecordBatch],
    name: &str,
    f: impl Fn(&FixedSizeBinaryArray) -> FixedSizeBinaryArray,
) {
    for batch in b.iter_mut() {
        let schema = batch.schema();
        let i = schema.index_of(name).unwrap();
        let mut cols = batch.columns().to_vec();
        let old = cols[i]
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap();
        cols[i] = Arc::new(f(old));
        *batch = RecordBatch::try_new(schema, cols).unwrap();
    }
}

fn cells(a: &FixedSizeBinaryArray) -> Vec<Vec<u8>> {
    (0..a.len()).map(|i| a.value(i).to_vec()).collect()
}

fn from_cells(c: Vec<Vec<u8>>) -> FixedSizeBinaryArray {
    FixedSizeBinaryArray::try_from_iter(c.into_iter()).unwrap()
}

#[test]
fn the_honest_path_releases_to_the_requester_and_matches_plaintext() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    let q = query(&dir, SQL, "result.parquet", "request.json");
    q.ok();
    let req = dir.json("request.json");
    assert_eq!(req["files"].as_array().unwrap().len(), 3);
    assert_eq!(req["roster_id"], Value::String(id.clone()));
    for p in ["a", "c"] {
        let run = partial(&dir, p, "result.parquet", "request.json", &id);
        run.ok();
    }
    let a = dir.json("a.partial.json");
    assert_eq!(a["version"], 3);
    assert_eq!(a["request_id"], req["request_id"]);
    let out = dir.combine(
        "result.parquet",
        &["a.partial.json", "c.partial.json"],
        &[
            "--request",
            "request.json",
            "--identity",
            "requester.key",
            "--format",
            "csv",
        ],
    );
    // north: a 15 + b 16 + c 19 rows; south likewise; the sums from the CSVs.
    let mut expect = std::collections::BTreeMap::new();
    for (i, rows) in [30usize, 34, 38].iter().enumerate() {
        for r in 0..*rows {
            let region = if r % 2 == 0 { "north" } else { "south" };
            let e = expect.entry(region).or_insert((0u64, 0u64, 0u64));
            e.0 += 1;
            e.1 += (100 + r as u64) * 100 + 50;
            e.2 += (r % 3 == 0) as u64;
            let _ = i;
        }
    }
    let mut want = String::from("region,n,total,diabetics\n");
    for (region, (n, cents, d)) in &expect {
        want.push_str(&format!(
            "{region},{n},{}.{:02},{d}\n",
            cents / 100,
            cents % 100
        ));
    }
    assert_eq!(out.ok(), want);
    // Only the requester can combine: the partials are sealed to its key; nothing in them is
    // in the clear, the cloud (no identity) and another requester's key cannot open them.
    assert!(a["open"].is_null() && a["sealed"].is_string(), "{a}");
    assert_eq!(a["sealed_to"], req["recipient"]);
    dir.combine(
        "result.parquet",
        &["a.partial.json", "c.partial.json"],
        &["--request", "request.json"],
    )
    .fails_with(&[
        "sealed to the requester",
        "needs the requester's secret key",
    ]);
    dir.run(&["requester-key", "--output", "other.key", "-q"])
        .ok();
    dir.combine(
        "result.parquet",
        &["a.partial.json", "c.partial.json"],
        &["--request", "request.json", "--identity", "other.key"],
    )
    .fails_with(&["the partials are not for this requester"]);
    dir.combine(
        "result.parquet",
        &["a.partial.json", "c.partial.json"],
        &["--identity", "other.key"],
    )
    .fails_with(&[
        "cannot open its sealed partials",
        "2 of 3 parties are needed",
    ]);
    // The audit log records the request.
    let log = dir.read("audit-a.log");
    assert!(log.contains(req["request_id"].as_str().unwrap()), "{log}");
}

#[test]
fn b3_rows_the_cloud_encrypted_itself_are_refused() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    query(&dir, SQL, "result.parquet", "request.json").ok();
    // Ten fake rows, encrypted with the public key, in a folder of their own.
    dir.write("fake.csv", csv(10, 9000));
    dir.encrypt(
        "keys/public.json",
        "fake.csv",
        "cost:2,diabetic",
        "lake/hospital=zz/fake.parquet",
    )
    .ok();
    // The cloud cannot make a request over them ...
    query(&dir, SQL, "r2.parquet", "r2.json").fails_with(&[
        "no decryption request can be made",
        "hospital=zz/fake.parquet",
        "not signed",
    ]);
    // ... and a request that leaves them out is refused: the hospital's own plan reads them.
    partial(&dir, "a", "result.parquet", "request.json", &id).fails_with(&[
        "reads 1 file(s) the request does not list",
        "hospital=zz/fake.parquet",
    ]);
    // A request that lists the unsigned file under another file's signature (the cloud's own
    // tool bypassed): refused by the hospital.
    let honest = Request::load(&dir.path("request.json")).unwrap();
    let with_fake = |sig: Option<cipherlake::release::FileSignature>, to: &str| {
        let mut r = honest.clone();
        let mut e = r
            .files
            .iter()
            .find(|f| f.location.ends_with("/hospital=a/a.parquet"))
            .unwrap()
            .clone();
        e.location = e
            .location
            .replace("/hospital=a/a.parquet", "/hospital=zz/fake.parquet");
        if let Some(sig) = sig {
            e.signature = sig;
        }
        r.files.push(e);
        reissue(&dir, r, to);
    };
    with_fake(None, "fake.json");
    partial(&dir, "a", "result.parquet", "fake.json", &id).fails_with(&[
        "hospital=zz/fake.parquet",
        "signed as `hospital=a/a.parquet` but found as `hospital=zz/fake.parquet`",
    ]);
    // Signed by an owner not on the roster: the same.
    dir.run(&["owner-key", "--owner", "zz", "--output", "owners", "-q"])
        .ok();
    dir.encrypt_with(
        "keys/public.json",
        "fake.csv",
        "cost:2,diabetic",
        "lake/hospital=zz/fake.parquet",
        &["--sign", "owners/zz.signing.json", "--force", "-q"],
    )
    .ok();
    query(&dir, SQL, "r2.parquet", "r2.json")
        .fails_with(&["signed by `zz`, who is not on the roster"]);
    // The hospital, given a request that lists the file with zz's signature, refuses it too.
    let sig = serde_json::from_str(&dir.read("lake/hospital=zz/fake.parquet.sig.json")).unwrap();
    with_fake(Some(sig), "zz.json");
    partial(&dir, "a", "result.parquet", "zz.json", &id).fails_with(&[
        "hospital=zz/fake.parquet",
        "signed by `zz`, who is not on the roster",
    ]);
    assert!(!dir.path("a.partial.json").exists());
}

#[test]
fn manifests_that_omit_or_add_files_and_files_changed_after_signing_are_refused() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    query(&dir, SQL, "result.parquet", "request.json").ok();
    let honest = Request::load(&dir.path("request.json")).unwrap();

    // Edited without recomputing the id.
    let text = dir
        .read("request.json")
        .replace("hospital=b/b.parquet\"", "hospital=b/x.parquet\"");
    dir.write("edited.json", text);
    partial(&dir, "a", "result.parquet", "edited.json", &id)
        .fails_with(&["edited.json", "edited after it was made"]);

    // b's file left out (id recomputed): the hospital's plan still reads it.
    let mut r = honest.clone();
    r.files.retain(|f| !f.location.ends_with("b.parquet"));
    reissue(&dir, r, "omit.json");
    partial(&dir, "a", "result.parquet", "omit.json", &id)
        .fails_with(&["does not list", "hospital=b/b.parquet"]);

    // A file added that the query does not read: a's file listed twice under another table.
    let mut r = honest.clone();
    let mut extra = r.files[0].clone();
    extra.location = extra.location.replace("a.parquet", "a2.parquet");
    r.files.push(extra);
    reissue(&dir, r, "add.json");
    partial(&dir, "a", "result.parquet", "add.json", &id)
        .fails_with(&["signed as `hospital=a/a.parquet` but found as `hospital=a/a2.parquet`"]);

    // A's file copied (with its signature) into another folder of the table, both listed: its
    // rows would count twice.
    std::fs::create_dir_all(dir.path("lake/x/hospital=a")).unwrap();
    for f in ["a.parquet", "a.parquet.sig.json"] {
        std::fs::copy(
            dir.path(&format!("lake/hospital=a/{f}")),
            dir.path(&format!("lake/x/hospital=a/{f}")),
        )
        .unwrap();
    }
    let mut r = honest.clone();
    let mut copy = r
        .files
        .iter()
        .find(|f| f.location.ends_with("/hospital=a/a.parquet"))
        .unwrap()
        .clone();
    copy.location = copy.location.replace("/hospital=a/", "/x/hospital=a/");
    r.files.push(copy);
    reissue(&dir, r, "copy.json");
    partial(&dir, "a", "result.parquet", "copy.json", &id).fails_with(&[
        "both signed by `a` as `hospital=a/a.parquet`",
        "count twice",
    ]);
    std::fs::remove_dir_all(dir.path("lake/x")).unwrap();

    // A signed file changed after the request (one byte): the private copy does not hash.
    let file = dir.path("lake/hospital=c/c.parquet");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    partial(&dir, "a", "result.parquet", "request.json", &id)
        .fails_with(&["hospital=c/c.parquet", "changed after `c` signed it"]);
    assert!(!dir.path("a.partial.json").exists());
}

#[test]
fn b5_b6_results_that_differ_from_the_re_run_are_refused() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    query(&dir, SQL, "result.parquet", "request.json").ok();

    // One bit of one ciphertext. Under the honest request, the file is not the one it names;
    // under a request made for it, it is not what the SQL computes.
    forge(&dir, |b| {
        replace_column(b, "total", |a| {
            let mut c = cells(a);
            c[0][3] ^= 1;
            from_cells(c)
        })
    });
    partial(&dir, "a", "forged.parquet", "request.json", &id)
        .fails_with(&["names another result file"]);
    partial(&dir, "a", "forged.parquet", "forged.json", &id)
        .fails_with(&["differs from the re-run", "not what the request computes"]);

    // B5(b): a row count raised past the minimum (the trailing 8 bytes of an aggregate).
    forge(&dir, |b| {
        replace_column(b, "total", |a| {
            let mut c = cells(a);
            let w = c[0].len();
            c[0][w - 8..].copy_from_slice(&1000u64.to_le_bytes());
            from_cells(c)
        })
    });
    partial(&dir, "a", "forged.parquet", "forged.json", &id)
        .fails_with(&["differs from the re-run"]);

    // B5(c): a raw lake ciphertext (patient 0 of hospital a) passed off as the north total.
    let lake_batches = batches(&dir, "lake/hospital=a/a.parquet");
    let raw = lake_batches[0]
        .column_by_name("cost")
        .unwrap()
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .unwrap()
        .value(0)
        .to_vec();
    forge(&dir, |b| {
        replace_column(b, "total", |a| {
            let mut c = cells(a);
            let mut v = raw.clone();
            v.extend_from_slice(&50u64.to_le_bytes());
            c[0] = v;
            from_cells(c)
        })
    });
    partial(&dir, "a", "forged.parquet", "forged.json", &id)
        .fails_with(&["differs from the re-run"]);

    // B6(ii): the count relabelled as a sum, to dodge small-count suppression.
    forge(&dir, |b| {
        for batch in b.iter_mut() {
            let schema = batch.schema();
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .map(|f| {
                    let mut m = f.metadata().clone();
                    if m.get("cipherlake.aggregate").map(String::as_str) == Some("count") {
                        m.insert("cipherlake.aggregate".into(), "sum".into());
                    }
                    f.as_ref().clone().with_metadata(m)
                })
                .collect();
            let s = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
            *batch = RecordBatch::try_new(s, batch.columns().to_vec()).unwrap();
        }
    });
    partial(&dir, "a", "forged.parquet", "forged.json", &id)
        .fails_with(&["column `diabetics`", "relabelled"]);

    // The honest request still releases.
    partial(&dir, "a", "result.parquet", "request.json", &id).ok();
}

#[test]
fn partials_cannot_be_replayed_onto_another_request_nor_their_minimum_edited() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    query(&dir, SQL, "result.parquet", "request.json").ok();
    partial(&dir, "a", "result.parquet", "request.json", &id).ok();
    partial(&dir, "c", "result.parquet", "request.json", &id).ok();
    // Another request for the same result bytes (another requester).
    let mut r = Request::load(&dir.path("request.json")).unwrap();
    r.requester = "someone-else".into();
    reissue(&dir, r, "other.json");
    let other = dir.json("other.json")["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    dir.combine(
        "result.parquet",
        &["a.partial.json", "c.partial.json"],
        &["--request", "other.json", "--identity", "requester.key"],
    )
    .fails_with(&["not for request", &other, "2 of 3 parties are needed"]);
    // The partials relabelled for the other request: the proofs bind the request.
    for p in ["a", "c"] {
        let text = dir.read(&format!("{p}.partial.json"));
        let orig = dir.json("request.json")["request_id"]
            .as_str()
            .unwrap()
            .to_owned();
        dir.write(&format!("{p}.replayed.json"), text.replace(&orig, &other));
    }
    dir.combine(
        "result.parquet",
        &["a.replayed.json", "c.replayed.json"],
        &["--request", "other.json", "--identity", "requester.key"],
    )
    .fails_with(&["does not verify", "2 of 3 parties are needed"]);
    // B6(iii): min_rows edited down in both partials: the policy's digest is in the proof.
    for p in ["a", "c"] {
        let text = dir.read(&format!("{p}.partial.json"));
        dir.write(
            &format!("{p}.edited.json"),
            text.replace("\"min_rows\": 11", "\"min_rows\": 2"),
        );
    }
    dir.combine(
        "result.parquet",
        &["a.edited.json", "c.edited.json"],
        &[
            "--request",
            "request.json",
            "--identity",
            "requester.key",
            "--min-rows",
            "2",
        ],
    )
    .fails_with(&["does not verify", "2 of 3 parties are needed"]);
}

#[test]
fn b4_b6_sql_that_could_isolate_a_patient_is_refused_on_the_release_path() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    query(&dir, SQL, "result.parquet", "request.json").ok();
    let honest = Request::load(&dir.path("request.json")).unwrap();
    let cases = [
        // B4: a per-row weight singles out patient 46.
        (
            "SELECT COUNT(*) AS n, SUM(cost * CASE WHEN patient_id = 46 THEN 1 ELSE 0 END) AS one FROM adm",
            "per-row plaintext weight",
        ),
        ("SELECT SUM(cost * patient_id) AS w FROM adm", "per-row plaintext weight"),
        // B6(i): a flag in arithmetic is a count tagged as a sum.
        ("SELECT region, SUM(diabetic * 1) AS d FROM adm GROUP BY region", "encrypted flag"),
        ("SELECT region, SUM(diabetic + 0) AS d FROM adm GROUP BY region", "encrypted flag"),
        // Rows counted twice.
        (
            "SELECT SUM(cost) AS t FROM (SELECT cost FROM adm UNION ALL SELECT cost FROM adm WHERE patient_id = 46) u",
            "UNION carries encrypted values",
        ),
        (
            "SELECT SUM(a.cost) AS t FROM adm a JOIN adm b ON a.region = b.region",
            "both carry encrypted values",
        ),
        (
            "WITH w(r) AS (VALUES ('north'), ('north')) SELECT SUM(a.cost) AS t FROM adm a JOIN w ON a.region = w.r",
            "repeats a key",
        ),
    ];
    for (sql, why) in cases {
        // The cloud is told first ...
        query(&dir, sql, "r.parquet", "r.json")
            .fails_with(&["no decryption request can be made for this SQL", why]);
        // ... and a hospital given such a request anyway (the cloud's own tool bypassed) refuses
        // it on its own plan, whatever the result file says.
        let mut r = honest.clone();
        r.sql = sql.to_owned();
        reissue(&dir, r, "bad.json");
        partial(&dir, "a", "result.parquet", "bad.json", &id)
            .fails_with(&["refused on the release path", why]);
    }
    // A total minus all but one: SQL refuses arithmetic on aggregates everywhere, the release
    // path included.
    let diff = "SELECT SUM(cost) - SUM(cost) FILTER (WHERE patient_id <> 46) AS one FROM adm";
    query(&dir, diff, "r.parquet", "r.json").fails_with(&["is an aggregate result"]);
    let mut r = honest.clone();
    r.sql = diff.to_owned();
    reissue(&dir, r, "bad.json");
    partial(&dir, "a", "result.parquet", "bad.json", &id).fails_with(&["is an aggregate result"]);
    assert!(!dir.path("a.partial.json").exists());
    // Honest shapes still release: a constant weight, a FILTER, a join with a unique-keyed
    // plaintext list, a semi-join.
    for sql in [
        "SELECT region, SUM(cost * 2) AS t, COUNT(*) AS n FROM adm GROUP BY region",
        "SELECT SUM(cost) FILTER (WHERE region = 'north') AS t FROM adm",
        "WITH w(r, name) AS (VALUES ('north', 'N'), ('south', 'S')) \
         SELECT w.name, SUM(a.cost) AS t FROM adm a JOIN w ON a.region = w.r GROUP BY w.name",
        "SELECT SUM(cost) AS t FROM adm WHERE region IN (SELECT 'north')",
    ] {
        query(&dir, sql, "ok.parquet", "ok.json").ok();
        partial(&dir, "a", "ok.parquet", "ok.json", &id).ok();
    }
}

#[test]
fn every_query_in_queries_releases_through_a_re_verified_request() {
    let dir = Dir::with_keys();
    let id = owners(&dir);
    for (i, h) in ["a", "b", "c"].iter().enumerate() {
        let plain = dir.path(&format!("plain/{h}.csv"));
        std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
        cipherlake::synth::write_admissions(&plain, i, 300 + 50 * i, 42).unwrap();
        dir.encrypt_with(
            "keys/public.json",
            plain.to_str().unwrap(),
            "cost:2,length_of_stay,diabetic",
            &format!("lake/hospital={h}/admissions.parquet"),
            &["--sign", &format!("owners/{h}.signing.json"), "-q"],
        )
        .ok();
    }
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    for file in files {
        dir.run(&[
            "query",
            "--key",
            "keys/public.json",
            "--table",
            "admissions=lake",
            "-f",
            file.to_str().unwrap(),
            "--output",
            "r.parquet",
            "--request",
            "r.json",
            "--roster",
            "roster.json",
            "--requester-key",
            "requester.key",
            "-q",
            "--force",
        ])
        .ok();
        for p in ["a", "b"] {
            partial(&dir, p, "r.parquet", "r.json", &id).ok();
        }
        let out = dir.combine(
            "r.parquet",
            &["a.partial.json", "b.partial.json"],
            &[
                "--request",
                "r.json",
                "--identity",
                "requester.key",
                "--format",
                "csv",
            ],
        );
        let csv = out.ok();
        assert!(csv.lines().count() > 1, "{}: {csv}", file.display());
    }
}

#[test]
fn provenance_refuses_what_the_plan_alone_does_not_show_and_policies_bind() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    // SQL cannot choose a weight per row (CASE on ciphertexts is refused); a filter down to one
    // patient passes the plan rules, and the trace counts one distinct row.
    let one = "SELECT SUM(cost) FILTER (WHERE patient_id = 20) AS one FROM adm";
    query(&dir, one, "r.parquet", "r.json").ok();
    partial(&dir, "a", "r.parquet", "r.json", &id).fails_with(&[
        "refused on the release path",
        "row 1, column `one`: 1 distinct lake row(s), fewer than this hospital's minimum of 11",
    ]);
    assert!(!dir.path("a.partial.json").exists());
    // A colluding owner signs a file of eleven copies of another hospital's row for patient 20:
    // every signature checks, the row count says 11, the sum is 11 times one patient's cost.
    // The trace finds the same ciphertext eleven times.
    let a_rows = batches(&dir, "lake/hospital=a/a.parquet");
    let ids = a_rows[0]
        .column_by_name("patient_id")
        .unwrap()
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .clone();
    let at = ids.iter().position(|v| v == Some(20)).unwrap() as u32;
    let copies = datafusion::arrow::array::UInt32Array::from(vec![at; 11]);
    let cols = a_rows[0]
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c, &copies, None).unwrap())
        .collect();
    let copied = RecordBatch::try_new(a_rows[0].schema(), cols).unwrap();
    write_batches(&dir, "lake/hospital=c/copy.parquet", &[copied]);
    let file = dir.path("lake/hospital=c/copy.parquet");
    let (size, sha) = cipherlake::lake::signed::hash_file(&file).unwrap();
    let key = cipherlake::release::OwnerKey::load(&dir.path("owners/c.signing.json")).unwrap();
    let roster = cipherlake::release::Roster::load(&dir.path("roster.json"), None).unwrap();
    let sig = cipherlake::release::FileSignature::sign(
        &key,
        roster.key_id(),
        &cipherlake::lake::signed::partition_path(&file),
        size,
        &sha,
        cipherlake::release::signature::now(),
    );
    std::fs::write(
        cipherlake::lake::signed::sidecar(&file),
        sig.to_json().unwrap(),
    )
    .unwrap();
    dir.run(&["verify", "--roster", "roster.json", "lake"]).ok();
    let copied_sql =
        "SELECT SUM(cost) AS t, COUNT(*) AS n FROM adm WHERE hospital = 'c' AND patient_id = 20";
    query(&dir, copied_sql, "r.parquet", "r.json").ok();
    partial(&dir, "a", "r.parquet", "r.json", &id).fails_with(&[
        "row 1, column `t`: it includes a ciphertext that occurs twice in the lake files",
        "row 1, column `t`: a lake row contributes to it more than once",
    ]);
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(cipherlake::lake::signed::sidecar(&file)).unwrap();
    // Per-hospital groups have one owner each: a policy asking for two owners refuses them and
    // says which cells; per-region groups have all three.
    let policy = dir.path("policy.json");
    std::fs::write(
        &policy,
        r#"{"kind":"cipherlake.release_policy","version":1,"min_rows":11,"min_owners":2}"#,
    )
    .unwrap();
    let with_policy = |result: &str, request: &str| {
        dir.partial(
            "a",
            result,
            "a.partial.json",
            &[
                "--request",
                request,
                "--roster",
                "roster.json",
                "--roster-id",
                &id,
                "--policy",
                policy.to_str().unwrap(),
                "--force",
            ],
        )
    };
    query(
        &dir,
        "SELECT hospital, SUM(cost) AS t FROM adm GROUP BY hospital ORDER BY hospital",
        "h.parquet",
        "h.json",
    )
    .ok();
    with_policy("h.parquet", "h.json").fails_with(&[
        "row 1, column `t`: rows from 1 owner(s), fewer than this hospital's minimum of 2",
        "row 3, column `t`",
    ]);
    query(&dir, SQL, "result.parquet", "request.json").ok();
    with_policy("result.parquet", "request.json").ok();
    // The policy is in the partial, and an owners' minimum needs a request to know owners.
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("a.partial.json")).unwrap())
            .unwrap();
    assert_eq!(p["policy"]["min_owners"], 2);
    dir.partial(
        "a",
        "result.parquet",
        "x.json",
        &["--min-owners", "2", "--force"],
    )
    .fails_with(&["rules per owner (min_owners 2"]);
    dir.partial("a", "result.parquet", "x.json", &["--min-rows", "1"])
        .fails_with(&["min_rows 1 would release individual values"]);
}

#[test]
fn the_audit_log_chains_every_decision_and_catches_tampering() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    query(&dir, SQL, "result.parquet", "request.json").ok();
    let req = dir.json("request.json");
    partial(&dir, "a", "result.parquet", "request.json", &id).ok();
    // Not quiet here: the head is printed for recording elsewhere.
    let run = dir.run(
        &[
            "partial-decrypt",
            "--share",
            "keys/share-b.json",
            "--key",
            "keys/public.json",
            "--input",
            "result.parquet",
            "--output",
            "b.partial.json",
            "--audit-log",
            "audit-a.log",
            "--request",
            "request.json",
            "--roster",
            "roster.json",
            "--roster-id",
            &id,
        ][..],
    );
    run.ok();
    let granted = run.stderr();
    assert!(granted.contains("as entry 1:"), "{granted}");
    // A refused request is logged too, with its reason.
    let mut r = Request::load(&dir.path("request.json")).unwrap();
    r.sql = "SELECT SUM(cost * patient_id) AS w FROM adm".into();
    reissue(&dir, r, "bad.json");
    partial(&dir, "a", "result.parquet", "bad.json", &id).fails_with(&["per-row plaintext weight"]);
    let text = dir.read("audit-a.log");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3);
    let e0 = &entries[0]["event"];
    assert_eq!(e0["decision"], "granted");
    assert_eq!(e0["request_id"], req["request_id"]);
    // Every released cell with its verdict and provenance: 2 regions × 2 encrypted aggregates.
    let verdicts = e0["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 4, "{e0}");
    assert!(verdicts
        .iter()
        .all(|v| v["verdict"] == "released" && v["rows"].as_u64().unwrap() >= 11));
    assert_eq!(verdicts[0]["owners"].as_object().unwrap().len(), 3);
    assert_eq!(entries[2]["event"]["decision"], "refused");
    assert!(entries[2]["event"]["reason"]
        .as_str()
        .unwrap()
        .contains("per-row plaintext weight"));
    let ok = dir.run(&["audit", "verify", "audit-a.log"]).ok();
    assert!(ok.contains("3 entries, chain intact; head 2:"), "{ok}");
    let head = ok.trim().rsplit(' ').next().unwrap().to_owned();
    dir.run(&["audit", "verify", "audit-a.log", "--head", &head])
        .ok();

    // Tampering: an entry edited, removed, reordered; the end cut (caught against the head).
    let lines: Vec<&str> = text.lines().collect();
    let put = |ls: &[&str]| dir.write("audit-a.log", ls.join("\n") + "\n");
    let edited = lines[1].replace("granted", "refused");
    put(&[lines[0], &edited, lines[2]]);
    dir.run(&["audit", "verify", "audit-a.log"]).fails_with(&[
        "audit-a.log",
        "line 3 (entry 2) does not commit to the line before it",
    ]);
    // A hospital does not serve a request while its own log is broken.
    partial(&dir, "a", "result.parquet", "request.json", &id)
        .fails_with(&["audit log", "does not commit"]);
    put(&[lines[0], lines[2]]);
    dir.run(&["audit", "verify", "audit-a.log"])
        .fails_with(&["says it is entry 2"]);
    put(&[lines[1], lines[0], lines[2]]);
    dir.run(&["audit", "verify", "audit-a.log"])
        .fails_with(&["line 1 (entry 0) says it is entry 1"]);
    put(&[lines[0], lines[1]]);
    dir.run(&["audit", "verify", "audit-a.log"]).ok();
    dir.run(&["audit", "verify", "audit-a.log", "--head", &head])
        .fails_with(&[
            "it ends at entry 1 but the recorded head is entry 2",
            "removed from its end",
        ]);
    // A malformed head is bad usage (exit 2), said as such.
    let bad = dir.run(&["audit", "verify", "audit-a.log", "--head", "2:zz"]);
    assert_eq!(bad.0.status.code(), Some(2));
    assert!(
        bad.stderr().contains("is not a log head"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn the_demo_goes_through_signed_files_requests_re_verification_and_the_requester() {
    let dir = Dir::new();
    let run = dir.run(&["demo", "--rows", "150", "--dir", "d"]);
    let out = run.ok();
    let err = run.stderr();
    assert!(out.contains("all 4 results match"), "{out}");
    assert!(
        out.contains("re-verified and decrypted by hospitals a + b, opened by the requester alone"),
        "{out}"
    );
    assert!(
        err.contains("4 requests re-verified by hospitals a + b: every file signed"),
        "{err}"
    );
    for h in HOSPITALS {
        assert!(dir
            .path(&format!("d/lake/hospital={h}/admissions.parquet.sig.json"))
            .exists());
    }
    // Both deciding hospitals entered each of the 4 releases in the ledger, signed.
    let ledger = dir.read("d/ledger.jsonl");
    assert_eq!(ledger.lines().count(), 8, "{ledger}");
    assert!(dir.path("d/owners/a.signing.json").exists());
    let req = dir.json("d/results/totals_by_region.request.json");
    assert_eq!(req["files"].as_array().unwrap().len(), 3);
    assert_eq!(req["roster_id"], dir.json("d/roster.json")["roster_id"]);
}

#[test]
fn a_hospital_decrypts_nothing_without_a_request_unless_told_it_is_unverified() {
    let dir = Dir::with_keys();
    lake(&dir);
    query(&dir, SQL, "result.parquet", "request.json").ok();
    let err = dir
        .run(&[
            "partial-decrypt",
            "--share",
            "keys/share-a.json",
            "--key",
            "keys/public.json",
            "--input",
            "result.parquet",
            "--output",
            "a.partial.json",
        ])
        .fails_with(&["no --request given", "--unverified"]);
    assert!(!err.contains("panicked"));
    assert!(!dir.path("a.partial.json").exists());
    // Said explicitly, the cloud-trusting path still works, and the log says it was unverified.
    dir.partial("a", "result.parquet", "a.partial.json", &[])
        .ok();
    let log = dir.read("audit-a.log");
    assert!(log.contains("\"unverified\":true"), "{log}");
}
