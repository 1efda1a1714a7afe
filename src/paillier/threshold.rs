//! Threshold Paillier (Damgård–Jurik, s = 1) with a trusted dealer: `needed` of `parties` must
//! cooperate to decrypt. Each party computes a partial decryption c_i = c^(2Δ·s_i) with a
//! non-interactive proof (Fiat–Shamir over the whole statement) that it used its real share;
//! any `needed` verified partials combine to the plaintext. See shared THRESHOLD.md for the math.

use std::fmt;

use rug::integer::Order;
use rug::{Complete, Integer};
use sha2::{Digest, Sha256};

use super::ciphertext::Ciphertext;
use super::keys::{djn_base, generate_safe_prime_pair, wipe, PublicKey, MIN_BITS, OFFERED_BITS};
use super::randomness;
use crate::error::{Error, Result};

/// Domain tag of the proof hash.
const PROOF_DOMAIN: &[u8] = b"cipherlake.threshold.proof.v1\0";
/// Bits of the proof challenge e.
const CHALLENGE_BITS: u32 = 256;
/// Extra bits of the proof's blinding r over Δ·n·m (statistical hiding).
const BLINDING_SLACK: u32 = 256;

/// The public threshold parameters: who the parties are, how many are needed, and the
/// verification keys of their shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThresholdPublic {
    /// Party names, in share-index order (party i has index i + 1).
    pub parties: Vec<String>,
    /// How many parties must cooperate.
    pub needed: usize,
    /// The verification base v = ρ² mod n².
    pub v: Integer,
    /// v_i = v^(Δ·s_i) mod n², one per party.
    pub verification_keys: Vec<Integer>,
}

impl ThresholdPublic {
    /// Δ = l!.
    pub fn delta(&self) -> Integer {
        Integer::from(Integer::factorial(self.parties.len() as u32))
    }

    /// 1-based index of a party.
    pub fn index_of(&self, party: &str) -> Option<usize> {
        self.parties.iter().position(|p| p == party).map(|i| i + 1)
    }

    /// Checks the parameters against the key's modulus: 2 ≤ threshold ≤ parties ≤ 64, one
    /// verification key per party, valid distinct names, and v and every v_i units of order
    /// above 2 (v = 1 or v_i = ±1 would let a party prove a partial it never computed).
    pub fn validate(&self, pk: &PublicKey) -> Result<()> {
        let l = self.parties.len();
        let bad =
            |parameter: &'static str, reason: String| Error::KeyParameter { parameter, reason };
        if l < 2 || self.needed < 2 || self.needed > l || l > MAX_PARTIES {
            return Err(bad(
                "threshold",
                format!(
                    "{} of {l} parties is not valid: need 2 ≤ threshold ≤ parties ≤ {MAX_PARTIES}",
                    self.needed
                ),
            ));
        }
        if self.verification_keys.len() != l {
            return Err(bad(
                "threshold.verification_keys",
                format!(
                    "{} given for {l} parties: one per party is required",
                    self.verification_keys.len()
                ),
            ));
        }
        for (i, p) in self.parties.iter().enumerate() {
            if !valid_party_name(p) || self.parties[..i].contains(p) {
                return Err(bad(
                    "threshold.parties",
                    format!(
                        "party name `{}` is invalid or repeated",
                        crate::error::preview(p)
                    ),
                ));
            }
        }
        pk.check_unit_of_large_order("threshold.v", &self.v)?;
        for (p, vk) in self.parties.iter().zip(&self.verification_keys) {
            pk.check_unit_of_large_order("threshold.verification_keys", vk)
                .map_err(|e| {
                    bad(
                        "threshold.verification_keys",
                        format!("party {p}: {}", reason_of(e)),
                    )
                })?;
        }
        Ok(())
    }
}

/// The reason of a parameter error, without its parameter prefix.
fn reason_of(e: Error) -> String {
    match e {
        Error::KeyParameter { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// The most parties a threshold key may have (Δ = l! grows fast; shares are numbered by index).
pub const MAX_PARTIES: usize = 64;

/// The threshold parameters of `pk`, or an error saying it is not a threshold key.
pub fn params(pk: &PublicKey) -> Result<&ThresholdPublic> {
    pk.threshold().ok_or_else(|| {
        Error::Invalid(format!(
            "key {} is not a threshold key (it has no parties)",
            pk.key_id()
        ))
    })
}

/// Party names: letters, digits, `-`, `_`, `.`; used in file names.
pub fn valid_party_name(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One party's secret share s_i of d.
pub struct KeyShare {
    key_id: String,
    party: String,
    index: usize,
    share: Integer,
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("key_id", &self.key_id)
            .field("party", &self.party)
            .field("index", &self.index)
            .field("share", &"<redacted>")
            .finish()
    }
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        wipe(&mut self.share);
    }
}

impl KeyShare {
    pub(crate) fn new(key_id: String, party: String, index: usize, share: Integer) -> Self {
        KeyShare {
            key_id,
            party,
            index,
            share,
        }
    }
    /// The key id of the public key this share belongs to.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// The party's name.
    pub fn party(&self) -> &str {
        &self.party
    }
    /// The party's 1-based index.
    pub fn index(&self) -> usize {
        self.index
    }
    pub(crate) fn secret(&self) -> &Integer {
        &self.share
    }

    /// Checks that this share belongs to `pk` and matches the party's published verification key.
    pub fn check_against(&self, pk: &PublicKey) -> Result<()> {
        let th = params(pk)?;
        if self.key_id != pk.key_id() {
            return Err(Error::KeyMismatch {
                expected: pk.key_id().into(),
                found: self.key_id.clone(),
                context: format!(" (the share of party {} is for another key)", self.party),
            });
        }
        if th.index_of(&self.party) != Some(self.index) {
            return Err(Error::Invalid(format!(
                "party {} with index {} is not one of this key's parties",
                self.party, self.index
            )));
        }
        let vi = secure_pow(&th.v, &(th.delta() * &self.share), pk.n_squared());
        if vi != th.verification_keys[self.index - 1] {
            return Err(Error::Invalid(format!(
                "the share of party {} does not match its verification key in the public key",
                self.party
            )));
        }
        Ok(())
    }
}

/// base^e mod m with GMP's side-channel-resistant powm for secret exponents (which needs a
/// positive exponent and an odd modulus; n² is odd).
fn secure_pow(base: &Integer, e: &Integer, m: &Integer) -> Integer {
    if *e > 0 {
        base.clone().secure_pow_mod(e, m)
    } else {
        pow_signed(base, e, m)
    }
}

/// base^e mod m for a signed exponent (a negative one through the inverse; base is a unit).
fn pow_signed(base: &Integer, e: &Integer, m: &Integer) -> Integer {
    base.clone()
        .pow_mod(e, m)
        .unwrap_or_else(|_| Integer::from(0))
}

/// A partial decryption with its proof of correctness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partial {
    /// c_i = c^(2Δ·s_i) mod n².
    pub value: Integer,
    /// Proof challenge.
    pub e: Integer,
    /// Proof response.
    pub z: Integer,
}

fn blinding_bits(pk: &PublicKey, th: &ThresholdPublic) -> u32 {
    th.delta().significant_bits() + 2 * pk.bits() + BLINDING_SLACK
}

/// Writes an integer to the hash: 4-byte big-endian length, then big-endian bytes.
fn absorb(h: &mut Sha256, x: &Integer) {
    let bytes = x.to_digits::<u8>(Order::Msf);
    h.update((bytes.len() as u32).to_be_bytes());
    h.update(&bytes);
}

#[allow(clippy::too_many_arguments)]
fn challenge(
    pk: &PublicKey,
    th: &ThresholdPublic,
    binding: &[u8],
    index: usize,
    c: &Integer,
    ci: &Integer,
    a: &Integer,
    b: &Integer,
) -> Integer {
    let mut h = Sha256::new();
    h.update(PROOF_DOMAIN);
    h.update(pk.key_id().as_bytes());
    h.update((binding.len() as u32).to_be_bytes());
    h.update(binding);
    h.update((index as u64).to_be_bytes());
    for x in [pk.n(), &th.v, &th.verification_keys[index - 1], c, ci, a, b] {
        absorb(&mut h, x);
    }
    Integer::from_digits(&h.finalize(), Order::Msf)
}

/// Party `share` partially decrypts `c` (validated on entry), proving it did so correctly.
/// `binding` ties the proof to one request (e.g. the hash of the result file and the cell).
pub fn partial_decrypt(
    pk: &PublicKey,
    share: &KeyShare,
    c: &Ciphertext,
    binding: &[u8],
) -> Result<Partial> {
    let th = params(pk)?;
    let n2 = pk.n_squared();
    let c = c.as_integer();
    let exp = Integer::from(2u32) * th.delta() * share.secret();
    // Secret exponent: GMP's side-channel-resistant powm (odd modulus, positive exponent).
    let ci = secure_pow(c, &exp, n2);
    let u = pow_signed(c, &Integer::from(4), n2);
    let (e, z) = dleq_prove(pk, th, share, &u, |a, b| {
        challenge(pk, th, binding, share.index, c, &ci, a, b)
    })?;
    Ok(Partial { value: ci, e, z })
}

/// A proof that log_u û = log_v v_i (= Δ·s_i): commitments a = u^r, b = v^r for a fresh r,
/// the challenge e = `challenge(a, b)`, the response z = r + e·Δ·s_i.
fn dleq_prove(
    pk: &PublicKey,
    th: &ThresholdPublic,
    share: &KeyShare,
    u: &Integer,
    challenge: impl FnOnce(&Integer, &Integer) -> Integer,
) -> Result<(Integer, Integer)> {
    let n2 = pk.n_squared();
    let r = randomness::random_bits(blinding_bits(pk, th))?;
    let a = secure_pow(u, &r, n2);
    let b = secure_pow(&th.v, &r, n2);
    let e = challenge(&a, &b);
    let z = r + &e * th.delta() * share.secret();
    Ok((e, z))
}

/// The commitments a = u^z·û^(−e), b = v^z·v_i^(−e) that a proof (e, z) of log_u û = log_v v_i
/// for party `index` must hash back to; None when e or z is out of range.
fn dleq_commitments(
    pk: &PublicKey,
    th: &ThresholdPublic,
    index: usize,
    u: &Integer,
    uhat: &Integer,
    e: &Integer,
    z: &Integer,
) -> Option<(Integer, Integer)> {
    if *z < 0
        || z.significant_bits() > blinding_bits(pk, th) + 1
        || *e < 0
        || e.significant_bits() > CHALLENGE_BITS
    {
        return None;
    }
    let n2 = pk.n_squared();
    let neg_e = Integer::from(-e);
    let a = (pow_signed(u, z, n2) * pow_signed(uhat, &neg_e, n2)) % n2;
    let b =
        (pow_signed(&th.v, z, n2) * pow_signed(&th.verification_keys[index - 1], &neg_e, n2)) % n2;
    Some((a, b))
}

/// The threshold parameters, if `index` is one of their parties.
fn party_params(pk: &PublicKey, index: usize) -> Option<&ThresholdPublic> {
    pk.threshold()
        .filter(|th| index >= 1 && index <= th.parties.len())
}

/// Verifies party `index`'s partial decryption of `c` for `binding`.
pub fn verify_partial(
    pk: &PublicKey,
    index: usize,
    c: &Ciphertext,
    partial: &Partial,
    binding: &[u8],
) -> bool {
    let Some(th) = party_params(pk, index) else {
        return false;
    };
    let n2 = pk.n_squared();
    if pk.ciphertext_from_integer(partial.value.clone()).is_err() {
        return false;
    }
    let c = c.as_integer();
    let u = pow_signed(c, &Integer::from(4), n2);
    let uhat = pow_signed(&partial.value, &Integer::from(2), n2);
    let Some((a, b)) = dleq_commitments(pk, th, index, &u, &uhat, &partial.e, &partial.z) else {
        return false;
    };
    challenge(pk, th, binding, index, c, &partial.value, &a, &b) == partial.e
}

/// Domain tag of the batched proof's transcript.
const BATCH_DOMAIN: &[u8] = b"cipherlake.threshold.batch_proof.v1\0";
/// Bits of each batch coefficient t_j.
const BATCH_COEFFICIENT_BITS: usize = 128;

/// One proof that every partial decryption of a batch used the party's share: an
/// equality-of-discrete-logs proof log_v v_i = log_U Û for the random linear combinations
/// U = Π (c_j⁴)^(t_j) and Û = Π (c_ij²)^(t_j), the 128-bit t_j drawn from a hash of the whole
/// batch (Aditya–Peng–Boyd–Dawson–Lee; Tiresias §4.4). Every base is a square first, so the
/// small-order elements of Z*_{n²} cannot cancel in the combination.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchProof {
    /// Challenge (base64url in files).
    #[serde(with = "super::wire::b64_int")]
    pub e: Integer,
    /// Response (base64url in files).
    #[serde(with = "super::wire::b64_int")]
    pub z: Integer,
}

/// The combined bases (U, Û) of a batch and the digest every later hash starts from.
fn batch_bases(
    pk: &PublicKey,
    th: &ThresholdPublic,
    binding: &[u8],
    index: usize,
    items: &[(&Integer, &Integer, &[u8])],
) -> (Integer, Integer, [u8; 32]) {
    use rayon::prelude::*;
    let n2 = pk.n_squared();
    let mut h = Sha256::new();
    h.update(BATCH_DOMAIN);
    h.update(pk.key_id().as_bytes());
    h.update((binding.len() as u32).to_be_bytes());
    h.update(binding);
    h.update((index as u64).to_be_bytes());
    h.update((items.len() as u64).to_be_bytes());
    for x in [pk.n(), &th.v, &th.verification_keys[index - 1]] {
        absorb(&mut h, x);
    }
    for (c, ci, cell) in items {
        h.update((cell.len() as u32).to_be_bytes());
        h.update(cell);
        absorb(&mut h, c);
        absorb(&mut h, ci);
    }
    let seed: [u8; 32] = h.finalize().into();
    let coefficient = |j: usize| {
        let mut h = Sha256::new();
        h.update(seed);
        h.update((j as u64).to_be_bytes());
        let d = h.finalize();
        Integer::from_digits(&d[..BATCH_COEFFICIENT_BITS / 8], Order::Msf)
    };
    // Public exponents: GMP's ordinary powm; each term in parallel, then one product.
    let (u, uhat) = items
        .par_iter()
        .enumerate()
        .map(|(j, (c, ci, _))| {
            let t = coefficient(j);
            let u = pow_signed(c, &(Integer::from(&t) * 4u32), n2);
            let uhat = pow_signed(ci, &(t * 2u32), n2);
            (u, uhat)
        })
        .reduce(
            || (Integer::from(1), Integer::from(1)),
            |(a, b), (c, d)| ((a * c) % n2, (b * d) % n2),
        );
    (u, uhat, seed)
}

fn batch_challenge(
    seed: &[u8; 32],
    u: &Integer,
    uhat: &Integer,
    a: &Integer,
    b: &Integer,
) -> Integer {
    let mut h = Sha256::new();
    h.update(BATCH_DOMAIN);
    h.update(seed);
    for x in [u, uhat, a, b] {
        absorb(&mut h, x);
    }
    Integer::from_digits(&h.finalize(), Order::Msf)
}

/// Party `share` partially decrypts every ciphertext of `cells` (each with the bytes that name
/// it, bound into the proof), proving all of them at once. The ciphertexts are validated on
/// entry; the share exponentiation is GMP's side-channel-resistant powm.
pub fn partial_decrypt_batch(
    pk: &PublicKey,
    share: &KeyShare,
    cells: &[(&Ciphertext, Vec<u8>)],
    binding: &[u8],
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<(Vec<Integer>, Option<BatchProof>)> {
    use rayon::prelude::*;
    let th = params(pk)?;
    let n2 = pk.n_squared();
    let mut exp = Integer::from(2u32) * th.delta() * share.secret();
    // Secret exponent, constant time either way: 8 cells a call through the IFMA kernel where
    // the CPU has it (a short last call padded with 1s), else GMP's powm_sec cell by cell.
    let values: Vec<Integer> = match super::arith::powers([n2; 8]) {
        Some(kernel) => {
            let bits = exp.significant_bits();
            let one = Integer::from(1);
            cells
                .par_chunks(8)
                .flat_map_iter(|chunk| {
                    let bases =
                        std::array::from_fn(|l| chunk.get(l).map_or(&one, |(c, _)| c.as_integer()));
                    let powers = kernel.pow8(bases, [&exp; 8], bits);
                    if let Some(p) = progress {
                        p(chunk.len() as u64);
                    }
                    powers.into_iter().take(chunk.len())
                })
                .collect()
        }
        None => cells
            .par_iter()
            .map(|(c, _)| {
                let v = secure_pow(c.as_integer(), &exp, n2);
                if let Some(p) = progress {
                    p(1);
                }
                v
            })
            .collect(),
    };
    wipe(&mut exp);
    if cells.is_empty() {
        return Ok((values, None));
    }
    let items: Vec<(&Integer, &Integer, &[u8])> = cells
        .iter()
        .zip(&values)
        .map(|((c, name), v)| (c.as_integer(), v, name.as_slice()))
        .collect();
    let (u, uhat, seed) = batch_bases(pk, th, binding, share.index, &items);
    let (e, z) = dleq_prove(pk, th, share, &u, |a, b| {
        batch_challenge(&seed, &u, &uhat, a, b)
    })?;
    Ok((values, Some(BatchProof { e, z })))
}

/// Verifies party `index`'s batch of partial decryptions (ciphertext, partial, name bytes).
pub fn verify_batch(
    pk: &PublicKey,
    index: usize,
    items: &[(&Ciphertext, &Integer, Vec<u8>)],
    proof: &BatchProof,
    binding: &[u8],
) -> bool {
    let Some(th) = party_params(pk, index) else {
        return false;
    };
    if items
        .iter()
        .any(|(_, v, _)| pk.ciphertext_from_integer((*v).clone()).is_err())
    {
        return false;
    }
    let refs: Vec<(&Integer, &Integer, &[u8])> = items
        .iter()
        .map(|(c, v, name)| (c.as_integer(), *v, name.as_slice()))
        .collect();
    let (u, uhat, seed) = batch_bases(pk, th, binding, index, &refs);
    let Some((a, b)) = dleq_commitments(pk, th, index, &u, &uhat, &proof.e, &proof.z) else {
        return false;
    };
    batch_challenge(&seed, &u, &uhat, &a, &b) == proof.e
}

/// Combines the partial decryptions of `needed` distinct parties (1-based index, c_i) into the
/// raw plaintext in [0, n). The partials must have been verified.
pub fn combine(pk: &PublicKey, partials: &[(usize, &Integer)]) -> Result<Integer> {
    let th = params(pk)?;
    if partials.len() < th.needed {
        return Err(Error::Invalid(format!(
            "{} partial decryptions given, {} needed",
            partials.len(),
            th.needed
        )));
    }
    let used = &partials[..th.needed];
    let n2 = pk.n_squared();
    let delta = th.delta();
    let mut acc = Integer::from(1);
    for &(i, ci) in used {
        let mut num = delta.clone();
        let mut den = Integer::from(1);
        for &(j, _) in used {
            if j != i {
                num *= j as u64;
                den *= j as i64 - i as i64;
            }
        }
        // λ_i = Δ·Π j / Π (j − i): an exact integer division, possibly negative.
        let lambda = num.div_exact(&den);
        acc *= pow_signed(ci, &(lambda * 2u32), n2);
        acc %= n2;
    }
    let n = pk.n();
    if Integer::from(&acc % n) != 1 {
        return Err(Error::Invalid(
            "partial decryptions do not combine (c' ≢ 1 mod n): a partial is wrong".into(),
        ));
    }
    let l = (acc - 1u32) / n;
    let four_delta_sq = Integer::from(delta.square_ref()) * 4u32;
    let inv = four_delta_sq
        .invert(n)
        .map_err(|_| Error::Invalid("4Δ² is not invertible modulo n".into()))?;
    Ok((l * inv).modulo(n))
}

/// The dealer's output: the public key (with `hs` and its threshold parameters), and one share
/// per party.
#[derive(Debug)]
pub struct Dealt {
    /// The public key; `public.threshold()` holds the parties and verification keys.
    pub public: PublicKey,
    /// The shares, in party order.
    pub shares: Vec<KeyShare>,
}

/// The dealer ceremony: safe primes, d ≡ 0 mod m and ≡ 1 mod n, Shamir shares of d over Z_{n·m},
/// verification keys, then a self-test of every `needed`-sized subset. p, q, m, d and the
/// polynomial are wiped before returning.
pub fn deal(bits: u32, parties: &[String], needed: usize) -> Result<Dealt> {
    if !OFFERED_BITS.contains(&bits) {
        return Err(Error::KeySize {
            bits,
            min: MIN_BITS,
        });
    }
    deal_unchecked_size(bits, parties, needed)
}

pub(crate) fn deal_unchecked_size(bits: u32, parties: &[String], needed: usize) -> Result<Dealt> {
    let l = parties.len();
    if l < 2 || needed < 2 || needed > l || l > MAX_PARTIES {
        return Err(Error::Invalid(format!(
            "threshold {needed} of {l} parties is not valid: need 2 ≤ threshold ≤ parties ≤ {MAX_PARTIES}"
        )));
    }
    let (mut p, mut q) = generate_safe_prime_pair(bits)?;
    let n = Integer::from(&p * &q);
    let n2 = Integer::from(n.square_ref());
    let mut m: Integer = (Integer::from(&p - 1u32) >> 1) * (Integer::from(&q - 1u32) >> 1);
    wipe(&mut p);
    wipe(&mut q);
    let m_inv = m
        .invert_ref(&n)
        .map(Integer::from)
        .ok_or_else(|| Error::Invalid("gcd(n, m) ≠ 1".into()))?;
    let mut d = Integer::from(&m * &m_inv);
    let nm = Integer::from(&n * &m);
    let mut coeffs = vec![d.clone()];
    for _ in 1..needed {
        coeffs.push(randomness::random_below(&nm)?);
    }
    let shares_raw: Vec<Integer> = (1..=l)
        .map(|i| {
            // Horner: f(i) mod n·m
            let mut acc = Integer::new();
            for a in coeffs.iter().rev() {
                acc *= i as u64;
                acc += a;
                acc %= &nm;
            }
            acc
        })
        .collect();
    let hs = djn_base(&n)?;
    let rho = randomness::random_unit(&n2)?;
    let v = Integer::from(rho.square_ref()) % &n2;
    let delta = Integer::from(Integer::factorial(l as u32));
    let verification_keys = shares_raw
        .iter()
        .map(|s| pow_signed(&v, &(&delta * s).complete(), &n2))
        .collect();
    let threshold = ThresholdPublic {
        parties: parties.to_vec(),
        needed,
        v,
        verification_keys,
    };
    let public = PublicKey::new_unchecked_size(n, Some(hs))?.with_threshold(threshold)?;
    let shares: Vec<KeyShare> = shares_raw
        .into_iter()
        .enumerate()
        .map(|(i, s)| KeyShare::new(public.key_id().into(), parties[i].clone(), i + 1, s))
        .collect();
    for x in coeffs.iter_mut().chain([&mut m, &mut d]) {
        wipe(x);
    }
    self_test(&public, &shares)?;
    Ok(Dealt { public, shares })
}

/// Every `needed`-sized subset of parties decrypts fresh ciphertexts of 0, −1, 12345 and
/// ±max_int (and hs, an encryption of 0), with every proof verifying.
fn self_test(pk: &PublicKey, shares: &[KeyShare]) -> Result<()> {
    let th = params(pk)?;
    let max = pk.max_int().clone();
    let values = [
        Integer::new(),
        Integer::from(-1),
        Integer::from(12345),
        max.clone(),
        -max,
    ];
    let mut cts: Vec<(Ciphertext, Integer)> = Vec::new();
    for v in values {
        cts.push((pk.encrypt(&v)?, v));
    }
    if let Some(hs) = pk.hs() {
        cts.push((pk.ciphertext_from_integer(hs.clone())?, Integer::new()));
    }
    let fail = |what: &str| Error::Invalid(format!("key ceremony self-test failed: {what}"));
    let binding = b"self-test";
    for (c, want) in &cts {
        let partials: Vec<Partial> = shares
            .iter()
            .map(|s| partial_decrypt(pk, s, c, binding))
            .collect::<Result<_>>()?;
        for (s, part) in shares.iter().zip(&partials) {
            if !verify_partial(pk, s.index, c, part, binding) {
                return Err(fail(&format!(
                    "the proof of party {} does not verify",
                    s.party
                )));
            }
        }
        for subset in subsets(shares.len(), th.needed) {
            let chosen: Vec<(usize, &Integer)> = subset
                .iter()
                .map(|&k| (shares[k].index, &partials[k].value))
                .collect();
            let got = pk.decode(combine(pk, &chosen)?)?;
            if &got != want {
                return Err(fail("a subset of parties decrypted a wrong value"));
            }
        }
    }
    Ok(())
}

/// All k-element subsets of 0..n, as index lists.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    fn go(start: usize, n: usize, k: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            go(i + 1, n, k, cur, out);
            cur.pop();
        }
    }
    go(0, n, k, &mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_all_k_combinations() {
        assert_eq!(subsets(3, 2), vec![vec![0, 1], vec![0, 2], vec![1, 2]]);
        assert_eq!(subsets(5, 3).len(), 10);
    }

    /// The batch (8 cells a call through the IFMA kernel where the CPU has it) gives the same
    /// partial decryptions, bit for bit, as GMP's powm_sec cell by cell, and they combine.
    #[test]
    fn batched_partials_equal_single_ones() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let d = deal_unchecked_size(512, &p(&["a", "b", "c"]), 2).unwrap();
        let pk = &d.public;
        let cts: Vec<Ciphertext> = (0..11)
            .map(|i| pk.encrypt(&Integer::from(i * 1000 - 7)).unwrap())
            .collect();
        let cells: Vec<(&Ciphertext, Vec<u8>)> =
            cts.iter().map(|c| (c, b"cell".to_vec())).collect();
        let mut parts = Vec::new();
        for share in &d.shares[..2] {
            let (values, proof) = partial_decrypt_batch(pk, share, &cells, b"bind", None).unwrap();
            for (c, v) in cts.iter().zip(&values) {
                assert_eq!(*v, partial_decrypt(pk, share, c, b"x").unwrap().value);
            }
            let items: Vec<(&Ciphertext, &Integer, Vec<u8>)> = cts
                .iter()
                .zip(&values)
                .map(|(c, v)| (c, v, b"cell".to_vec()))
                .collect();
            assert!(verify_batch(
                pk,
                share.index(),
                &items,
                &proof.unwrap(),
                b"bind"
            ));
            parts.push((share.index(), values));
        }
        for (i, _) in cts.iter().enumerate() {
            let shares: Vec<(usize, &Integer)> = parts.iter().map(|(k, v)| (*k, &v[i])).collect();
            assert_eq!(
                pk.decode(combine(pk, &shares).unwrap()).unwrap(),
                i as i64 * 1000 - 7
            );
        }
    }

    #[test]
    fn refuses_bad_thresholds() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(deal_unchecked_size(256, &p(&["a"]), 1).is_err());
        assert!(deal_unchecked_size(256, &p(&["a", "b"]), 3).is_err());
        assert!(deal(1024, &p(&["a", "b"]), 2)
            .unwrap_err()
            .to_string()
            .contains("not allowed"));
    }
}
