//! Integration tests, linked into one binary: the real `cipherlake` executable on real files,
//! known-answer vectors, and the crypto laws as properties.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_keys;
mod dp;
mod fingerprint;
mod hostile;
mod lake;
mod laws;
mod ledger;
mod queries;
mod release_sql;
mod request;
mod signing;
mod slt;
mod threshold;
mod util;
mod vectors;
