//! Owners sign what they upload (issue 13, first part): owner keys, the roster and its pinned id,
//! `encrypt --sign` for a file and a folder, and `verify` refusing every way a lake file can be
//! untrustworthy: unsigned, signed by someone not on the roster, changed after signing, moved to
//! another hospital's folder, a signature file or a roster edited.

use serde_json::Value;

use crate::util::Dir;

fn csv(rows: usize, offset: usize) -> String {
    let mut s = String::from("patient_id,cost,diabetic\n");
    for i in 0..rows {
        s.push_str(&format!("{},{}.25,{}\n", offset + i, 100 + i, i % 2 == 0));
    }
    s
}

/// `cipherlake roster` over keys/public.json and OWNER.owner.json of each owner, into `out`;
/// returns the roster id printed.
fn make_roster(dir: &Dir, owners: &[&str], out: &str) -> String {
    let files: Vec<String> = owners
        .iter()
        .map(|o| format!("owners/{o}.owner.json"))
        .collect();
    let mut args = vec![
        "roster",
        "--key",
        "keys/public.json",
        "--output",
        out,
        "--force",
        "-q",
    ];
    for f in &files {
        args.extend(["--owner", f.as_str()]);
    }
    dir.run(&args).ok().trim().to_owned()
}

/// keys/ (2-of-3), owner keys for a and b, a roster of a and b; a's file signed into
/// lake/hospital=a/, b's folder signed into lake/hospital=b/. Returns the roster id.
fn signed_lake(dir: &Dir) -> String {
    for owner in ["a", "b", "z"] {
        dir.run(&["owner-key", "--owner", owner, "--output", "owners", "-q"])
            .ok();
    }
    let id = make_roster(dir, &["a", "b"], "roster.json");
    assert_eq!(id.len(), 64, "{id}");
    dir.write("a.csv", csv(20, 0));
    dir.write("b/one.csv", csv(15, 100));
    dir.write("b/two.csv", csv(12, 200));
    dir.encrypt_with(
        "keys/public.json",
        "a.csv",
        "cost:2,diabetic",
        "lake/hospital=a/a.parquet",
        &["--sign", "owners/a.signing.json", "-q"],
    )
    .ok();
    dir.encrypt_with(
        "keys/public.json",
        "b",
        "cost:2,diabetic",
        "lake/hospital=b",
        &["--sign", "owners/b.signing.json", "-q"],
    )
    .ok();
    id
}

fn verify(dir: &Dir, id: &str) -> crate::util::Run {
    dir.run(&[
        "verify",
        "--roster",
        "roster.json",
        "--roster-id",
        id,
        "lake",
    ])
}

#[test]
fn signed_files_verify_and_the_signing_key_is_secret() {
    let dir = Dir::with_keys();
    let id = signed_lake(&dir);
    let out = verify(&dir, &id);
    out.ok();
    let err = out.stderr();
    assert!(
        err.contains("a: 1 file(s)") && err.contains("b: 2 file(s)"),
        "{err}"
    );
    assert!(err.contains("all 3 file(s) verified"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path("owners/a.signing.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let sig = dir.json("lake/hospital=a/a.parquet.sig.json");
    assert_eq!(sig["owner"], "a");
    assert_eq!(sig["path"], "hospital=a/a.parquet");
    assert_eq!(sig["key_id"], Value::String(dir.key_id("keys/public.json")));
    assert_eq!(
        dir.json("lake/hospital=b/one.parquet.sig.json")["path"],
        "hospital=b/one.parquet"
    );
    // The signature files do not disturb the lake: it is queryable as before.
    let q = dir.query(
        "keys/public.json",
        "adm=lake",
        "SELECT hospital, COUNT(*) n FROM adm GROUP BY hospital ORDER BY hospital",
        &["--format", "csv"],
    );
    assert_eq!(q.ok(), "hospital,n\na,20\nb,27\n");
}

#[test]
fn unsigned_foreign_changed_and_moved_files_are_refused() {
    let dir = Dir::with_keys();
    let id = signed_lake(&dir);

    // The cloud's own rows, encrypted with the public key: no signature.
    dir.write("fake.csv", csv(10, 900));
    dir.encrypt(
        "keys/public.json",
        "fake.csv",
        "cost:2,diabetic",
        "lake/hospital=zz/fake.parquet",
    )
    .ok();
    verify(&dir, &id).fails_with(&["hospital=zz/fake.parquet", "not signed", "1 of 4 file(s)"]);

    // Signed, but by an owner who is not on the roster.
    dir.encrypt_with(
        "keys/public.json",
        "fake.csv",
        "cost:2,diabetic",
        "lake/hospital=zz/fake.parquet",
        &["--sign", "owners/z.signing.json", "--force", "-q"],
    )
    .ok();
    verify(&dir, &id).fails_with(&["fake.parquet", "signed by `z`, who is not on the roster"]);
    std::fs::remove_dir_all(dir.path("lake/hospital=zz")).unwrap();
    verify(&dir, &id).ok();

    // z relabels its signature as a's: the signature no longer verifies.
    dir.encrypt_with(
        "keys/public.json",
        "fake.csv",
        "cost:2,diabetic",
        "lake/hospital=a/fake.parquet",
        &["--sign", "owners/z.signing.json", "-q"],
    )
    .ok();
    let side = "lake/hospital=a/fake.parquet.sig.json";
    let relabelled = dir
        .read(side)
        .replace("\"owner\": \"z\"", "\"owner\": \"a\"");
    dir.write(side, relabelled);
    verify(&dir, &id).fails_with(&["fake.parquet", "signature of `a` does not verify"]);
    std::fs::remove_file(dir.path("lake/hospital=a/fake.parquet")).unwrap();
    std::fs::remove_file(dir.path(side)).unwrap();

    // One byte of a signed file changed.
    let file = dir.path("lake/hospital=b/one.parquet");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    verify(&dir, &id).fails_with(&["hospital=b/one.parquet", "changed after `b` signed it"]);
    bytes[mid] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    verify(&dir, &id).ok();

    // a's file moved (with its signature) into b's folder: its partition would say `b`.
    std::fs::rename(
        dir.path("lake/hospital=a/a.parquet"),
        dir.path("lake/hospital=b/a.parquet"),
    )
    .unwrap();
    std::fs::rename(
        dir.path("lake/hospital=a/a.parquet.sig.json"),
        dir.path("lake/hospital=b/a.parquet.sig.json"),
    )
    .unwrap();
    verify(&dir, &id)
        .fails_with(&["signed as `hospital=a/a.parquet` but found as `hospital=b/a.parquet`"]);
}

#[test]
fn an_edited_or_unpinned_roster_is_refused() {
    let dir = Dir::with_keys();
    let id = signed_lake(&dir);
    // z's key put in place of b's, the stored id kept: the fingerprint no longer matches.
    let z = dir.json("owners/z.owner.json")["public"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = dir.json("owners/b.owner.json")["public"]
        .as_str()
        .unwrap()
        .to_owned();
    let edited = dir.read("roster.json").replace(&b, &z);
    dir.write("edited.json", &edited);
    dir.run(&["verify", "--roster", "edited.json", "lake"])
        .fails_with(&["roster", "edited.json", "the file was edited"]);
    // A consistent roster (its id recomputed), but another one: a with z instead of b.
    make_roster(&dir, &["a", "z"], "z.json");
    dir.run(&["verify", "--roster", "z.json", "--roster-id", &id, "lake"])
        .fails_with(&["not the pinned roster", &id]);
    // Unpinned, z's roster would be believed and b's files refused: pinning is what decides.
    dir.run(&["verify", "--roster", "z.json", "lake"])
        .fails_with(&["signed by `b`, who is not on the roster"]);
    // A roster for another Paillier key is another roster.
    dir.run(&[
        "roster",
        "--key",
        "single/public.json",
        "--owner",
        "owners/a.owner.json",
        "--output",
        "single-roster.json",
        "-q",
    ])
    .ok();
    dir.run(&[
        "verify",
        "--roster",
        "single-roster.json",
        "lake/hospital=a",
    ])
    .fails_with(&["signed for key", "but the roster is for key"]);
    // A signing key passed where a public key is expected is refused, and not echoed.
    let secret = dir.json("owners/a.signing.json")["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = dir.run(&[
        "roster",
        "--key",
        "keys/public.json",
        "--owner",
        "owners/a.signing.json",
        "--output",
        "r2.json",
    ]);
    let err = out.fails_with(&["a.signing.json"]);
    assert!(!err.contains(&secret), "{err}");
    assert!(!dir.path("r2.json").exists());
}
