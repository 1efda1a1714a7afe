//! A temporary folder and a way to run the real binary inside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Runs `cipherlake encrypt --key KEY --input INPUT --encrypt COLUMNS --output OUTPUT -q`.
    pub fn encrypt(&self, key: &str, input: &str, columns: &str, output: &str) -> Run {
        self.encrypt_with(key, input, columns, output, &["-q"])
    }

    /// Runs `cipherlake encrypt --key KEY --input INPUT --encrypt COLUMNS --output OUTPUT EXTRA…`.
    pub fn encrypt_with(
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
    pub fn query(&self, key: &str, table: &str, sql: &str, extra: &[&str]) -> Run {
        let args = ["query", "--key", key, "--table", table, "-c", sql];
        self.run(&[&args[..], extra].concat())
    }

    /// Runs `cipherlake decrypt --key KEY --input INPUT EXTRA…`.
    pub fn decrypt(&self, key: &str, input: &str, extra: &[&str]) -> Run {
        let args = ["decrypt", "--key", key, "--input", input];
        self.run(&[&args[..], extra].concat())
    }

    /// Runs `cipherlake keygen --parties PARTIES --threshold T --out OUT -q`.
    pub fn keygen_threshold(&self, parties: &str, threshold: &str, out: &str) -> Run {
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
    pub fn key_id(&self, rel: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.read(rel)).unwrap();
        v["key_id"].as_str().unwrap().to_owned()
    }

    /// Runs `cipherlake ARGS` in this folder.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_cipherlake"))
            .args(args)
            .current_dir(self.root())
            .output()
            .expect("run cipherlake");
        Run(out)
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
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
    pub fn fails_with(&self, needles: &[&str]) -> String {
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
