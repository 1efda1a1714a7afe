//! Dangerous low-level calls, for test vectors and fixtures only: encryption with caller-chosen
//! randomness, keys from caller-chosen primes, and small fixed keys that no user path accepts.
//! Nothing here may be used to protect real data.

use rug::Integer;

use super::ciphertext::Ciphertext;
use super::keys::{self, PrivateKey, PublicKey};
use crate::error::Result;

/// Enc(m) = (1 + m·n) · r^n mod n² with the caller's r: python-paillier's `raw_encrypt(m, r)`.
/// `m` is the raw plaintext in [0, n).
pub fn encrypt_with_r(pk: &PublicKey, m: &Integer, r: &Integer) -> Ciphertext {
    Ciphertext::from_raw(pk.mul_nude(m, pk.r_pow_n(r)))
}

/// DJN encryption with the caller's exponent: (1 + m·n) · hs^a mod n², `m` raw in [0, n).
/// Panics if the key has no `hs` (a test-only precondition).
pub fn encrypt_djn_with_a(pk: &PublicKey, m: &Integer, a: &Integer) -> Ciphertext {
    assert!(pk.hs().is_some(), "key has no DJN base");
    Ciphertext::from_raw(pk.mul_nude(m, pk.djn_pow(a)))
}

/// The key id of any parameters, valid or not (a key is built only from valid ones): for
/// property tests of the fingerprint's encoding.
pub fn fingerprint(
    n: &Integer,
    hs: Option<&Integer>,
    threshold: Option<&super::threshold::ThresholdPublic>,
) -> String {
    keys::fingerprint(n, hs, threshold)
}

/// A private key from given primes and DJN base, any size (fixture keys).
pub fn private_key_from_primes(p: Integer, q: Integer, hs: Option<Integer>) -> Result<PrivateKey> {
    PrivateKey::from_primes(p, q, hs)
}

/// A public key of any size (fixture keys).
pub fn public_key_any_size(n: Integer, hs: Option<Integer>) -> Result<PublicKey> {
    PublicKey::new_unchecked_size(n, hs)
}

/// The DJN base hs = (−x² mod n)^n mod n² for a caller-chosen x.
pub fn djn_base_from_x(n: &Integer, x: &Integer) -> Integer {
    let n2 = Integer::from(n.square_ref());
    let mut h = -Integer::from(x.square_ref());
    h.modulo_mut(n);
    h.pow_mod(n, &n2).unwrap_or_else(|_| Integer::from(1))
}

/// A freshly generated key of any even size ≥ 64 bits, with safe primes.
pub fn generate_any_size(bits: u32) -> Result<PrivateKey> {
    PrivateKey::generate_unchecked_size(bits)
}

/// The primes of a private key (to write test vectors).
pub fn primes_of(key: &PrivateKey) -> (&Integer, &Integer) {
    (key.p(), key.q())
}

/// A fixed 512-bit key with safe primes and a DJN base, for fast unit and property tests (built
/// once, shared).
pub fn fixture_key_512() -> &'static PrivateKey {
    static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(build_fixture_key_512)
}

fn build_fixture_key_512() -> PrivateKey {
    let hex = |s: &str| Integer::from_str_radix(s, 16).unwrap_or_default();
    let p = hex("cbd831a7483ca14e150bc22194f7251531dc47013f3ec16c194f6fd723993817");
    let q = hex("f36b28ec4544e5c07ffd6cc047b012af65faeb0fe3d1497e0e99ed29bbbf02ef");
    let n = Integer::from(&p * &q);
    let hs = djn_base_from_x(&n, &Integer::from(0x1234_5678_9abc_u64));
    // Fixed, valid primes: construction cannot fail; a failure here is a broken fixture.
    match keys::PrivateKey::from_primes(p, q, Some(hs)) {
        Ok(k) => k,
        Err(e) => panic!("fixture key is broken: {e}"),
    }
}

/// The threshold dealer for any size (fixture keys).
pub fn deal_any_size(
    bits: u32,
    parties: &[String],
    needed: usize,
) -> Result<super::threshold::Dealt> {
    super::threshold::deal_unchecked_size(bits, parties, needed)
}
