//! cipherlake: collaborative, privacy-preserving analytics over medical data.
//!
//! Data owners encrypt sensitive columns with Paillier under a shared public key and write Parquet
//! to a data lake; an untrusted cloud runs SQL whose aggregates are computed on ciphertexts; only
//! the key holders decrypt results. See `docs/FORMAT.md` for the on-disk contract.
//!
//! `unsafe` is denied crate-wide (`Cargo.toml`, `[lints.rust]`); the one planned exception is the
//! SIMD arithmetic backend under `paillier/arith`, which will allow it in that module alone.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod digest;
pub mod error;
pub mod keyfile;
pub mod lake;
pub mod paillier;
pub mod release;
pub mod sql;
#[doc(hidden)]
pub mod synth;

pub use error::{Error, Result};
