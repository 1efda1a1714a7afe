//! cipherlake: collaborative, privacy-preserving analytics over medical data.
//!
//! Data owners encrypt sensitive columns with Paillier under a shared public key and write Parquet
//! to a data lake; an untrusted cloud runs SQL whose aggregates are computed on ciphertexts; only
//! the key holders decrypt results. See `docs/FORMAT.md` for the on-disk contract.
#![forbid(unsafe_code)]

pub mod error;
pub mod keyfile;
pub mod lake;
pub mod paillier;
pub mod sql;
pub mod synth;

pub use error::{Error, Result};
