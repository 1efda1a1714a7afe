//! The library's one error type. Messages are short, lowercase, and name the file, column, key id
//! or party involved, but never key material or plaintext values. Each message is complete on its
//! own: no variant repeats its cause's text through `source()`, so an error chain printed with
//! `{:#}` says everything once.

use std::path::PathBuf;

/// Everything that can go wrong in the cipherlake library.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key size below the minimum, or not one of the offered sizes.
    #[error("key size {bits} bits is not allowed: use 2048, 3072 or 4096 (at least {min})")]
    KeySize {
        /// The size asked for.
        bits: u32,
        /// The smallest size allowed.
        min: u32,
    },

    /// A public key parameter that fails validation (names the parameter, never its value).
    #[error("public key parameter `{parameter}`: {reason}")]
    KeyParameter {
        /// The parameter's name in the key file (`n`, `hs`, `threshold.v`, …).
        parameter: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed: {0}")]
    Randomness(String),

    /// A ciphertext that is not an element of Z*_{n²}, or has the wrong width.
    #[error("invalid ciphertext for key {key_id}: {reason}")]
    InvalidCiphertext {
        /// The key the value was read for.
        key_id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A plaintext outside the signed range [-max_int, max_int] of the key.
    #[error("value out of range for key {key_id}: its magnitude must be below n/3")]
    OutOfRange {
        /// The key.
        key_id: String,
    },

    /// A decrypted value in the overflow band: the sum left the encodable range.
    #[error(
        "decrypted value for key {key_id} is in the overflow band: \
         the aggregate left the encodable range (or was tampered with)"
    )]
    Overflow {
        /// The key.
        key_id: String,
    },

    /// Two keys (or a key and data) that must be the same are not.
    #[error("key mismatch: expected key id {expected}, found {found}{context}")]
    KeyMismatch {
        /// The key id that was expected.
        expected: String,
        /// The key id found.
        found: String,
        /// Where (a file, a column), as a suffix of the message.
        context: String,
    },

    /// A key file that cannot be used: malformed, truncated, inconsistent, or of the wrong kind.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never a value from it).
        reason: String,
    },

    /// An output that exists already, where the caller did not ask to replace it.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The output.
        path: PathBuf,
    },

    /// Reading or writing a file failed. The cause is part of the message (not a `source`), so
    /// that a printed chain does not say it twice.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },

    /// Invalid parameters passed by the caller (bad scale, bad threshold, …).
    #[error("{0}")]
    Invalid(String),

    /// Bad data in a table: the message names the file, column and row.
    #[error("{0}")]
    Data(String),

    /// A column of decimals to encrypt without a decimal scale (`at` names the file and row).
    #[error("{at}: column `{column}`: it holds decimals, so it needs a decimal scale (the number of places to keep)")]
    NeedsScale {
        /// The file (and row) where it was found.
        at: String,
        /// The column.
        column: String,
    },

    /// A decryption request refused by a party's disclosure policy, with each violation.
    #[error(
        "{result}: refused by the disclosure policy (at least {min_rows} contributing rows per aggregate): {}",
        join_limited(violations, "; ")
    )]
    PolicyRefused {
        /// The result file.
        result: String,
        /// The party's minimum of contributing rows.
        min_rows: u64,
        /// Each offending cell, described.
        violations: Vec<String>,
    },

    /// A request whose SQL could weight, repeat or difference rows inside a released cell
    /// (decided on the party's own plan), with each reason.
    #[error(
        "request {request}: refused on the release path: {}",
        join_limited(reasons, "; ")
    )]
    ReleaseRefused {
        /// The request id.
        request: String,
        /// Each offending expression or plan node, with why.
        reasons: Vec<String>,
    },

    /// A party's partial decryptions whose batched proof does not verify (`who` names its file
    /// and party): at least one of them is not what its share gives.
    #[error("{who}: the proof of its partial decryptions does not verify: rejected")]
    ProofRejected {
        /// The partial decryption file and its party.
        who: String,
    },

    /// A lake file whose signature is missing, unknown to the roster, invalid, or does not match
    /// the file (names the file; never a key).
    #[error("{}: {reason}", file.display())]
    Signature {
        /// The lake file (or its signature file).
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A roster file that cannot be used: malformed, edited, or not the pinned one.
    #[error("roster {}: {reason}", path.display())]
    Roster {
        /// The roster file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A hash-chained file (audit log, release ledger) whose chain is broken or that cannot be
    /// appended to (names the file and the line).
    #[error("{what} {}: {reason}", path.display())]
    Chain {
        /// What the file is ("audit log", "ledger").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the line.
        reason: String,
    },

    /// An Arrow error (reading CSV, building arrays).
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// A Parquet error (reading or writing a file).
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
}

/// Shorthand for results of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    pub(crate) fn key_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::KeyFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The kind of the underlying I/O error, for an I/O error (a broken pipe, say).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { cause, .. } => Some(cause.kind()),
            _ => None,
        }
    }
}

/// At most this many items of a list go into a message; the rest are counted.
pub const LIST_LIMIT: usize = 5;
/// At most this many characters of a value go into a message.
pub const VALUE_LIMIT: usize = 64;

/// The first [`LIST_LIMIT`] items joined with `sep`, then "… and N more": a message about
/// 200,000 cells stays one line.
pub fn join_limited<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    let shown: Vec<&str> = items.iter().take(LIST_LIMIT).map(AsRef::as_ref).collect();
    let mut s = shown.join(sep);
    if items.len() > LIST_LIMIT {
        s.push_str(&format!("{sep}… and {} more", items.len() - LIST_LIMIT));
    }
    s
}

/// A cell value as a message may quote it: at most [`VALUE_LIMIT`] characters, then "…" and the
/// full length.
pub fn preview(value: &str) -> String {
    match value.char_indices().nth(VALUE_LIMIT) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// A message from another library that may quote a whole input value (a CSV cell, say), cut to
/// a length a terminal and a log can take.
pub fn shorten(message: String) -> String {
    const MAX: usize = 400;
    match message.char_indices().nth(MAX) {
        None => message,
        Some((cut, _)) => format!("{}… ({} more bytes)", &message[..cut], message.len() - cut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_and_values_are_cut() {
        let items: Vec<String> = (1..=2000).map(|i| format!("row {i}")).collect();
        let s = join_limited(&items, "; ");
        assert_eq!(s, "row 1; row 2; row 3; row 4; row 5; … and 1995 more");
        assert_eq!(join_limited(&["a", "b"], ", "), "a, b");
        let long = "7".repeat(10_000_000);
        let p = preview(&long);
        assert!(p.len() < 100 && p.ends_with("(10000000 bytes)"), "{p}");
        assert_eq!(preview("12.5"), "12.5");
    }

    #[test]
    fn io_errors_say_their_cause_once() {
        let e = Error::io(
            "out/x.csv",
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(e.to_string(), "out/x.csv: denied");
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::PermissionDenied));
    }
}
