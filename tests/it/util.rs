//! A temporary folder and a way to run the real binary inside it, the committed key fixtures, and
//! the key id recomputed from docs/FORMAT.md's definition (independently of the crate).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rug::Integer;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub(crate) struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub(crate) fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Copies the committed key fixture `set` (tests/data/keys/SET: `single`, `other`, `keys`,
    /// `other-t`, `ab`) into the folder `to`.
    pub(crate) fn copy_keys(&self, set: &str, to: &str) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/keys")
            .join(set);
        std::fs::create_dir_all(self.path(to)).unwrap();
        for e in std::fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), self.path(to).join(e.file_name())).unwrap();
        }
    }

    /// A folder holding `keys/` (a 2-of-3 threshold key for parties a, b, c), `single/` and
    /// `other/` (two key pairs), copied from the committed fixtures.
    pub(crate) fn with_keys() -> Self {
        let dir = Dir::new();
        for set in ["keys", "single", "other"] {
            dir.copy_keys(set, set);
        }
        dir
    }

    /// A key file (or any JSON file) of this folder, parsed.
    pub(crate) fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    /// Runs `cipherlake partial-decrypt` for `party` of `keys/` on `input`, logging to
    /// `audit-PARTY.log`.
    pub(crate) fn partial(&self, party: &str, input: &str, out: &str, extra: &[&str]) -> Run {
        let share = format!("keys/share-{party}.json");
        let log = format!("audit-{party}.log");
        let args = [
            "partial-decrypt",
            "--share",
            &share,
            "--key",
            "keys/public.json",
            "--input",
            input,
            "--output",
            out,
            "--audit-log",
            &log,
            "-q",
        ];
        // Without a request, the tests of the cloud-trusting path say so, as a user must.
        let unverified: &[&str] = if extra.contains(&"--request") {
            &[]
        } else {
            &["--unverified"]
        };
        self.run(&[&args[..], unverified, extra].concat())
    }

    /// Runs `cipherlake combine --key keys/public.json --input INPUT --partials P… -q EXTRA…`.
    pub(crate) fn combine(&self, input: &str, partials: &[&str], extra: &[&str]) -> Run {
        self.combine_reporting(input, partials, &[&["-q"], extra].concat())
    }

    /// As [`combine`](Self::combine), without `-q`: for tests that read what it reports.
    pub(crate) fn combine_reporting(&self, input: &str, partials: &[&str], extra: &[&str]) -> Run {
        let args = [
            "combine",
            "--key",
            "keys/public.json",
            "--input",
            input,
            "--partials",
        ];
        self.run(&[&args[..], partials, extra].concat())
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub(crate) fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub(crate) fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Runs `cipherlake encrypt --key KEY --input INPUT --encrypt COLUMNS --output OUTPUT -q`.
    pub(crate) fn encrypt(&self, key: &str, input: &str, columns: &str, output: &str) -> Run {
        self.encrypt_with(key, input, columns, output, &["-q"])
    }

    /// Runs `cipherlake encrypt --key KEY --input INPUT --encrypt COLUMNS --output OUTPUT EXTRA…`.
    pub(crate) fn encrypt_with(
        &self,
        key: &str,
        input: &str,
        columns: &str,
        output: &str,
        extra: &[&str],
    ) -> Run {
        let args = [
            "encrypt",
            "--key",
            key,
            "--input",
            input,
            "--encrypt",
            columns,
            "--output",
            output,
        ];
        self.run(&[&args[..], extra].concat())
    }

    /// Runs `cipherlake query --key KEY --table TABLE -c SQL EXTRA…`.
    pub(crate) fn query(&self, key: &str, table: &str, sql: &str, extra: &[&str]) -> Run {
        let args = ["query", "--key", key, "--table", table, "-c", sql];
        self.run(&[&args[..], extra].concat())
    }

    /// Runs `cipherlake decrypt --key KEY --input INPUT EXTRA…`.
    pub(crate) fn decrypt(&self, key: &str, input: &str, extra: &[&str]) -> Run {
        let args = ["decrypt", "--key", key, "--input", input];
        self.run(&[&args[..], extra].concat())
    }

    /// Runs `cipherlake keygen --parties PARTIES --threshold T --out OUT -q`.
    pub(crate) fn keygen_threshold(&self, parties: &str, threshold: &str, out: &str) -> Run {
        self.run(&[
            "keygen",
            "--parties",
            parties,
            "--threshold",
            threshold,
            "--out",
            out,
            "-q",
        ])
    }

    /// The `key_id` of a key file in this folder.
    pub(crate) fn key_id(&self, rel: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.read(rel)).unwrap();
        v["key_id"].as_str().unwrap().to_owned()
    }

    /// Runs `cipherlake ARGS` in this folder.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_cipherlake"))
            .args(args)
            .current_dir(self.root())
            .output()
            .expect("run cipherlake");
        Run(out)
    }
}

pub(crate) struct Run(pub Output);

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success and returns stdout.
    pub(crate) fn ok(&self) -> String {
        assert!(
            self.0.status.success(),
            "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
    /// Asserts exit code 1 and that stderr contains every needle; returns stderr.
    pub(crate) fn fails_with(&self, needles: &[&str]) -> String {
        assert_eq!(
            self.0.status.code(),
            Some(1),
            "expected exit 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        let err = self.stderr();
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
        }
        assert!(!err.contains("panicked"), "panic: {err}");
        err
    }
}

/// A base64url big-endian integer of a key file.
pub(crate) fn int(v: &Value) -> Integer {
    cipherlake::paillier::wire::b64_decode(v.as_str().expect("a string")).expect("base64url")
}

/// An integer as a key file writes it.
pub(crate) fn b64(x: &Integer) -> Value {
    cipherlake::paillier::wire::b64_encode(x).into()
}

/// The key id of a public key file's JSON, computed from the definition in docs/FORMAT.md.
pub(crate) fn fingerprint(key: &Value) -> String {
    let mut h = Sha256::new();
    h.update(b"cipherlake.key_id.v2\0");
    let mut item = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update([0u8]);
        h.update((bytes.len() as u32).to_be_bytes());
        h.update(bytes);
    };
    let be = |v: &Value| int(v).to_digits::<u8>(rug::integer::Order::Msf);
    item("n", &be(&key["n"]));
    if key.get("hs").is_some_and(|v| !v.is_null()) {
        item("hs", &be(&key["hs"]));
    }
    if let Some(t) = key.get("threshold").filter(|v| !v.is_null()) {
        let parties = t["parties"].as_array().unwrap();
        item(
            "threshold.needed",
            &t["needed"].as_u64().unwrap().to_be_bytes(),
        );
        item("threshold.parties", &(parties.len() as u64).to_be_bytes());
        for p in parties {
            item("threshold.party", p.as_str().unwrap().as_bytes());
        }
        item("threshold.v", &be(&t["v"]));
        for v in t["verification_keys"].as_array().unwrap() {
            item("threshold.verification_key", &be(v));
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
