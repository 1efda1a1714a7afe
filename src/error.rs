//! The library's one error type. Messages are short, lowercase, and name the file, column, key id
//! or party involved, but never key material or plaintext values.

use std::path::PathBuf;

/// Everything that can go wrong in the cipherlake library.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key size below the minimum, or not one of the offered sizes.
    #[error("key size {bits} bits is not allowed: use 2048, 3072 or 4096 (at least {min})")]
    KeySize { bits: u32, min: u32 },

    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed: {0}")]
    Randomness(String),

    /// A ciphertext that is not an element of Z*_{n²}, or has the wrong width.
    #[error("invalid ciphertext for key {key_id}: {reason}")]
    InvalidCiphertext { key_id: String, reason: String },

    /// A plaintext outside the signed range [-max_int, max_int] of the key.
    #[error("value out of range for key {key_id}: its magnitude must be below n/3")]
    OutOfRange { key_id: String },

    /// A decrypted value in the overflow band: the sum left the encodable range.
    #[error(
        "decrypted value for key {key_id} is in the overflow band: \
         the aggregate left the encodable range (or was tampered with)"
    )]
    Overflow { key_id: String },

    /// Two keys (or a key and data) that must be the same are not.
    #[error("key mismatch: expected key id {expected}, found {found}{context}")]
    KeyMismatch {
        expected: String,
        found: String,
        context: String,
    },

    /// A key file that cannot be used: malformed, truncated, inconsistent, or of the wrong kind.
    #[error("key file {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Invalid parameters passed by the caller (bad scale, bad threshold, …).
    #[error("{0}")]
    Invalid(String),

    /// Bad data in a table: the message names the file, column and row.
    #[error("{0}")]
    Data(String),

    /// An Arrow error (reading CSV, building arrays).
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// A Parquet error (reading or writing a file).
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
}

/// Shorthand for results of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn key_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::KeyFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
