//! Encryption with a proof of knowledge of the plaintext (Σ-protocol, Fiat–Shamir), for values a
//! party contributes to someone else's ciphertext: a DP noise share. The proof is bound to a
//! context (the request, the party, the cell), so nobody can present another party's ciphertext,
//! or its inverse (which would cancel that party's noise), as their own: they would need to know
//! its plaintext.
//!
//! With g = 1 + n and the DJN base hs: E = g^m · hs^a mod n². The prover picks x < n and y of
//! |a| + 2·256 bits, sends A = g^x · hs^y, gets e = H(context, n, hs, E, A) (256 bits) and answers
//! z₁ = x + e·m mod n, z₂ = y + e·a over the integers. The verifier accepts iff
//! g^z₁ · hs^z₂ ≡ A · E^e (mod n²), z₂ within its range. (g has order n mod n², so z₁ may be
//! reduced mod n; z₂ statistically hides e·a.) The secret exponents a and y use GMP's
//! side-channel-resistant powm.

use rug::integer::Order;
use rug::Integer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ciphertext::Ciphertext;
use super::keys::{wipe, PublicKey};
use super::randomness;
use super::wire::b64_int;
use crate::error::{Error, Result};

const DOMAIN: &[u8] = b"cipherlake.plaintext_proof.v1\0";
const CHALLENGE_BITS: u32 = 256;
const SLACK_BITS: u32 = 2 * CHALLENGE_BITS;

/// A proof that whoever made a ciphertext knows its plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaintextProof {
    /// The commitment A.
    #[serde(with = "b64_int")]
    pub a: Integer,
    /// The response z₁ (mod n).
    #[serde(with = "b64_int")]
    pub z1: Integer,
    /// The response z₂.
    #[serde(with = "b64_int")]
    pub z2: Integer,
}

fn absorb(h: &mut Sha256, x: &Integer) {
    let bytes = x.to_digits::<u8>(Order::Msf);
    h.update((bytes.len() as u32).to_be_bytes());
    h.update(&bytes);
}

fn challenge(pk: &PublicKey, hs: &Integer, context: &[u8], c: &Integer, a: &Integer) -> Integer {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(pk.key_id().as_bytes());
    h.update((context.len() as u64).to_be_bytes());
    h.update(context);
    for x in [pk.n(), hs, c, a] {
        absorb(&mut h, x);
    }
    Integer::from_digits(&h.finalize(), Order::Msf)
}

fn djn_base(pk: &PublicKey) -> Result<&Integer> {
    pk.hs().ok_or_else(|| {
        Error::Invalid(format!(
            "key {}: proofs of plaintext knowledge need the key's DJN base (hs), which it lacks",
            pk.key_id()
        ))
    })
}

/// (1 + x·n) mod n² = g^x, for x in [0, n).
fn g_pow(pk: &PublicKey, x: &Integer) -> Integer {
    Integer::from(x * pk.n()) + 1u32
}

/// Encrypts the signed integer `m` (|m| ≤ max_int) with a proof, bound to `context`, that the
/// maker knows `m`.
pub fn encrypt_with_proof(
    pk: &PublicKey,
    m: &Integer,
    context: &[u8],
) -> Result<(Ciphertext, PlaintextProof)> {
    let hs = djn_base(pk)?;
    let n2 = pk.n_squared();
    let mut encoded = pk.encode(m)?;
    let bits = pk.djn_exponent_bits();
    let mut a = randomness::random_bits(bits)?;
    let mut x = randomness::random_below(pk.n())?;
    let mut y = randomness::random_bits(bits + SLACK_BITS)?;
    // Secret exponents: constant-time powm (odd modulus; a zero exponent is 1).
    let pow = |e: &Integer| {
        if *e > 0 {
            hs.clone().secure_pow_mod(e, n2)
        } else {
            Integer::from(1)
        }
    };
    let c = (g_pow(pk, &encoded) * pow(&a)) % n2;
    let commitment = (g_pow(pk, &x) * pow(&y)) % n2;
    let e = challenge(pk, hs, context, &c, &commitment);
    let z1 = Integer::from(&x + &e * &encoded) % pk.n();
    let z2 = Integer::from(&y + &e * &a);
    for s in [&mut encoded, &mut a, &mut x, &mut y] {
        wipe(s);
    }
    Ok((
        Ciphertext::from_raw(c),
        PlaintextProof {
            a: commitment,
            z1,
            z2,
        },
    ))
}

/// Whether `proof` shows, for `context`, that its maker knows the plaintext of `c`.
pub fn verify_plaintext_proof(
    pk: &PublicKey,
    c: &Ciphertext,
    proof: &PlaintextProof,
    context: &[u8],
) -> bool {
    let Ok(hs) = djn_base(pk) else {
        return false;
    };
    let n2 = pk.n_squared();
    let (a, z1, z2) = (&proof.a, &proof.z1, &proof.z2);
    if *z1 < 0
        || z1 >= pk.n()
        || *z2 < 0
        || z2.significant_bits() > pk.djn_exponent_bits() + SLACK_BITS + 1
        || pk.validate(a.clone()).is_err()
        || pk.validate(c.as_integer().clone()).is_err()
    {
        return false;
    }
    let e = challenge(pk, hs, context, c.as_integer(), a);
    let Ok(hz) = hs.clone().pow_mod(z2, n2) else {
        return false;
    };
    let Ok(ce) = c.as_integer().clone().pow_mod(&e, n2) else {
        return false;
    };
    let left = (g_pow(pk, z1) * hz) % n2;
    let right = (a * ce) % n2;
    left == right
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::hazmat::fixture_key_512;

    #[test]
    fn proofs_verify_decrypt_and_bind_their_context() {
        let key = fixture_key_512();
        let pk = key.public_key();
        for m in [0i64, 1, -1, 123_456, -987_654_321] {
            let (c, proof) = encrypt_with_proof(pk, &Integer::from(m), b"ctx").unwrap();
            assert_eq!(key.decrypt(&c).unwrap(), m);
            assert!(verify_plaintext_proof(pk, &c, &proof, b"ctx"));
            // Another context (party, cell, request): rejected.
            assert!(!verify_plaintext_proof(pk, &c, &proof, b"ctx2"));
            // The inverse of the ciphertext (what would cancel this noise) with the same proof.
            let inv = pk.neg(&c).unwrap();
            assert!(!verify_plaintext_proof(pk, &inv, &proof, b"ctx"));
            // Any response changed.
            for edit in 0..3 {
                let mut p = proof.clone();
                match edit {
                    0 => p.z1 += 1,
                    1 => p.z2 += 1,
                    _ => p.a = Integer::from(&p.a * 2u32) % pk.n_squared(),
                }
                assert!(!verify_plaintext_proof(pk, &c, &p, b"ctx"), "{edit}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// A re-randomised ciphertext keeps its plaintext but not its proof.
        #[test]
        fn a_rerandomised_share_is_not_the_makers(m in -1_000_000i64..1_000_000) {
            let pk = fixture_key_512().public_key();
            let (c, proof) = encrypt_with_proof(pk, &Integer::from(m), b"x").unwrap();
            let r = pk.rerandomize(&c).unwrap();
            proptest::prop_assert!(verify_plaintext_proof(pk, &c, &proof, b"x"));
            proptest::prop_assert!(!verify_plaintext_proof(pk, &r, &proof, b"x"));
        }
    }
}
