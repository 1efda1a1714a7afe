//! The Paillier cryptosystem (g = n + 1) with Damgård–Jurik–Nielsen fast encryption, CRT
//! decryption, homomorphic operations, signed fixed-point encoding, threshold decryption and the
//! base64url form of its integers (`wire`); key files on disk are `crate::keyfile`.
//! This module knows nothing of Arrow, Parquet or DataFusion.

pub mod arith;
mod ciphertext;
pub mod encoding;
mod fixed_base;
pub mod hazmat;
mod keys;
mod modulus;
mod ops;
pub mod plaintext_proof;
mod primes;
pub(crate) mod randomness;
pub mod threshold;
pub mod wire;

pub use ciphertext::Ciphertext;
pub use keys::{is_key_id, parse_key_id, PrivateKey, PublicKey, MAX_BITS, MIN_BITS, OFFERED_BITS};
pub use modulus::Modulus;
pub use ops::{BadCiphertext, Plaintext, Sum, KERNEL_MIN, NOT_INVERTIBLE};
pub use primes::is_safe_prime;
