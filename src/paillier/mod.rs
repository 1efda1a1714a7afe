//! The Paillier cryptosystem (g = n + 1) with Damgård–Jurik–Nielsen fast encryption, CRT
//! decryption, homomorphic operations, signed fixed-point encoding and JSON key files.
//! This module knows nothing of Arrow, Parquet or DataFusion.

mod ciphertext;
pub mod encoding;
mod fixed_base;
pub mod hazmat;
pub mod keyfile;
mod keys;
mod primes;
mod randomness;
pub mod threshold;

pub use ciphertext::{read_le_into, write_le, Ciphertext};
pub use keys::{key_id_of, PrivateKey, PublicKey, MIN_BITS, OFFERED_BITS};
pub use primes::is_safe_prime;
