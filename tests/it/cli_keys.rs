//! `keygen` and `inspect` through the real binary.

use crate::util::Dir;

#[test]
fn keygen_writes_a_2048_bit_pair_and_inspect_describes_it() {
    let dir = Dir::new();
    let out = dir
        .run(&["keygen", "--bits", "2048", "--out", "keys", "--quiet"])
        .ok();
    assert!(out.contains("key_id"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path("keys/private.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let public = dir.read("keys/public.json");
    assert!(!public.contains("\"p\""), "public key holds no prime");
    let json = dir
        .run(&["inspect", "keys/public.json", "--format", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["kind"], "public key");
    assert_eq!(v["bits"], 2048);
    assert_eq!(v["ciphertext_bytes"], 512);
    assert_eq!(v["fast_encryption"], true);
    let private = dir.run(&["inspect", "keys/private.json"]).ok();
    assert!(private.contains("private key"));
    assert!(private.contains(v["key_id"].as_str().unwrap()));
    // The secret never reaches the output.
    let sk: serde_json::Value = serde_json::from_str(&dir.read("keys/private.json")).unwrap();
    assert!(!private.contains(sk["p"].as_str().unwrap()));

    // A second run refuses to overwrite, and --force does.
    dir.run(&["keygen", "--out", "keys", "--quiet"])
        .fails_with(&["already exists", "--force"]);
    dir.run(&["keygen", "--out", "keys", "--quiet", "--force"])
        .ok();
    assert_ne!(dir.read("keys/public.json"), public);
}

#[test]
fn small_and_odd_key_sizes_are_refused_and_nothing_is_written() {
    let dir = Dir::new();
    for bits in ["1024", "512", "2047", "2560"] {
        dir.run(&["keygen", "--bits", bits, "--out", "k"])
            .fails_with(&["not allowed", bits]);
        assert!(!dir.path("k").exists());
    }
}

#[test]
fn damaged_key_files_get_clear_errors() {
    let dir = Dir::new();
    dir.copy_keys("single", "k");
    let public = dir.read("k/public.json");
    let private = dir.read("k/private.json");

    // Truncated.
    dir.write("trunc.json", &public[..public.len() / 2]);
    dir.run(&["inspect", "trunc.json"])
        .fails_with(&["trunc.json", "not a valid JSON key file"]);
    // Key id that does not match n.
    let mut v: serde_json::Value = serde_json::from_str(&public).unwrap();
    v["key_id"] = "00".repeat(32).into();
    dir.write("badid.json", v.to_string());
    dir.run(&["inspect", "badid.json"])
        .fails_with(&["badid.json", "does not match the key's parameters"]);
    // Three bytes of n lost (four base64 characters from the middle): the size no longer matches.
    let mut v: serde_json::Value = serde_json::from_str(&public).unwrap();
    let n = v["n"].as_str().unwrap().to_owned();
    v["n"] = format!("{}{}", &n[..100], &n[104..]).into();
    dir.write("shortn.json", v.to_string());
    dir.run(&["inspect", "shortn.json"])
        .fails_with(&["shortn.json", "bits"]);
    // A prime swapped for another value.
    let mut v: serde_json::Value = serde_json::from_str(&private).unwrap();
    v["p"] = "AQAB".into();
    dir.write("badp.json", v.to_string());
    dir.run(&["inspect", "badp.json"])
        .fails_with(&["badp.json", "p·q does not equal n"]);
    // Not base64url.
    let mut v: serde_json::Value = serde_json::from_str(&public).unwrap();
    v["hs"] = "!!".into();
    dir.write("badhs.json", v.to_string());
    dir.run(&["inspect", "badhs.json"])
        .fails_with(&["badhs.json", "`hs`"]);
    // Missing file.
    dir.run(&["inspect", "nope.json"])
        .fails_with(&["nope.json"]);
}
