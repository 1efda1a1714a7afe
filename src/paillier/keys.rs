//! Paillier keys with g = n + 1: the public key (with the DJN fast-encryption base `hs` and its
//! fixed-base table), the private key (CRT decryption constants), and key generation.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rug::integer::Order;
use rug::{Assign, Complete, Integer};

use super::ciphertext::Ciphertext;
use super::fixed_base::FixedBaseTable;
use super::modulus::Modulus;
use super::ops::Plaintext;
use super::threshold::ThresholdPublic;
use super::{encoding, primes, randomness};
use crate::digest::Labelled;
use crate::error::{Error, Result};

/// The smallest modulus accepted on any user path.
pub const MIN_BITS: u32 = 2048;
/// The largest modulus accepted when loading a key (a bigger one only makes every operation slow).
pub const MAX_BITS: u32 = 8192;
/// Key sizes `keygen` offers.
pub const OFFERED_BITS: [u32; 3] = [2048, 3072, 4096];

/// Domain tag of the key id (the fingerprint of every public parameter, docs/FORMAT.md).
const KEY_ID_DOMAIN: &str = "cipherlake.key_id.v2";

/// A Paillier public key: n, optionally the DJN base hs = h^n mod n², and for a threshold key
/// the parties and verification keys. Its key id fingerprints all of them.
#[derive(Clone)]
pub struct PublicKey {
    modulus: Modulus,
    hs: Option<Integer>,
    threshold: Option<Arc<ThresholdPublic>>,
    key_id: String,
    /// Built on first encryption, then shared by every thread and every clone.
    table: Arc<OnceLock<FixedBaseTable>>,
}

impl PartialEq for PublicKey {
    /// Two keys are equal when their fingerprints are: every public parameter is the same.
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
    }
}
impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("bits", &self.bits())
            .field("djn", &self.hs.is_some())
            .field(
                "threshold",
                &self
                    .threshold
                    .as_ref()
                    .map(|t| format!("{} of {}", t.needed, t.parties.len())),
            )
            .finish()
    }
}

/// Minimal big-endian bytes of a non-negative integer (no leading zeros; empty for 0).
fn be_bytes(x: &Integer) -> Vec<u8> {
    x.to_digits::<u8>(rug::integer::Order::Msf)
}

/// The key id: lowercase hex SHA-256 over the domain tag and every public parameter, each as
/// `label ‖ 0 ‖ 4-byte big-endian length ‖ bytes` (integers big-endian without leading zeros),
/// in a fixed order; an absent optional parameter contributes nothing. docs/FORMAT.md has the
/// same definition with a Python function that recomputes it.
pub(crate) fn fingerprint(
    n: &Integer,
    hs: Option<&Integer>,
    th: Option<&ThresholdPublic>,
) -> String {
    let mut h = Labelled::new(KEY_ID_DOMAIN);
    h.item("n", &be_bytes(n));
    if let Some(hs) = hs {
        h.item("hs", &be_bytes(hs));
    }
    if let Some(th) = th {
        h.u64("threshold.needed", th.needed as u64);
        h.u64("threshold.parties", th.parties.len() as u64);
        for p in &th.parties {
            h.item("threshold.party", p.as_bytes());
        }
        h.item("threshold.v", &be_bytes(&th.v));
        for v in &th.verification_keys {
            h.item("threshold.verification_key", &be_bytes(v));
        }
    }
    h.hex()
}

/// Whether `s` is a key id as files hold it: 64 lowercase hex digits.
pub fn is_key_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A key id given to pin a key (on the command line, say): 64 hex digits, any case. Returns it
/// in lowercase.
pub fn parse_key_id(s: &str) -> Result<String> {
    let id = s.trim().to_ascii_lowercase();
    if is_key_id(&id) {
        Ok(id)
    } else {
        Err(Error::Invalid(format!(
            "`{}` is not a key id: give the 64 hex digits the key ceremony printed",
            crate::error::preview(s)
        )))
    }
}

/// Checks that needs no secret that n can be a Paillier modulus: odd, not a perfect square, not
/// prime, no prime factor below 2²⁰. (Whether its two factors are balanced cannot be checked
/// without them; the key id, pinned by the hospitals, is what vouches for n.)
fn check_modulus(n: &Integer) -> Result<()> {
    let bad = |reason: String| Error::KeyParameter {
        parameter: "n",
        reason,
    };
    if *n <= 15 {
        return Err(bad("it is not an RSA modulus".into()));
    }
    if let Some(p) = primes::small_factor(n) {
        return Err(bad(format!(
            "it has the small prime factor {p}: not an RSA modulus"
        )));
    }
    if n.is_perfect_square() {
        return Err(bad("it is a perfect square: not an RSA modulus".into()));
    }
    if primes::is_probably_prime(n) {
        return Err(bad(
            "it is prime: anyone could decrypt under it (φ(n) = n − 1)".into(),
        ));
    }
    Ok(())
}

impl PublicKey {
    /// A public key from its modulus and optional DJN base, refusing moduli outside
    /// 2048..=8192 bits and any parameter that fails validation (`check_parameters`).
    pub fn new(n: Integer, hs: Option<Integer>) -> Result<Self> {
        let bits = n.significant_bits();
        if bits < MIN_BITS {
            return Err(Error::KeySize {
                bits,
                min: MIN_BITS,
            });
        }
        if bits > MAX_BITS {
            return Err(Error::KeyParameter {
                parameter: "n",
                reason: format!("it has {bits} bits; at most {MAX_BITS} are accepted"),
            });
        }
        Self::new_unchecked_size(n, hs)
    }

    /// As `new`, without the size policy (test fixtures, through `hazmat`). Every other check
    /// runs: n odd, not a square, not prime, no small factor; hs a unit whose residue modulo n
    /// has order above 2 (hs ≢ ±1 mod n, hs² ≠ 1).
    pub(crate) fn new_unchecked_size(n: Integer, hs: Option<Integer>) -> Result<Self> {
        check_modulus(&n)?;
        let key_id = fingerprint(&n, hs.as_ref(), None);
        let pk = PublicKey {
            modulus: Modulus::new(n)?,
            hs: None,
            threshold: None,
            key_id,
            table: Arc::new(OnceLock::new()),
        };
        let hs = match hs {
            Some(hs) => {
                pk.check_unit_of_large_order("hs", &hs)?;
                let r = Integer::from(&hs % pk.n());
                if Integer::from(r.square_ref()) % pk.n() == 1 {
                    return Err(Error::KeyParameter {
                        parameter: "hs",
                        reason: "hs² ≡ 1 (mod n): its encryptions would hide nothing".into(),
                    });
                }
                Some(hs)
            }
            None => None,
        };
        Ok(PublicKey { hs, ..pk })
    }

    /// This key with its threshold parameters (validated); the key id then covers them too.
    pub fn with_threshold(self, th: ThresholdPublic) -> Result<Self> {
        th.validate(&self)?;
        let key_id = fingerprint(self.n(), self.hs.as_ref(), Some(&th));
        Ok(PublicKey {
            key_id,
            threshold: Some(Arc::new(th)),
            ..self
        })
    }

    /// Checks that `x` is a unit modulo n² whose square is not 1 (an element of order 1 or 2
    /// makes a DJN base or a verification key worthless). `parameter` names it in the error.
    pub(crate) fn check_unit_of_large_order(
        &self,
        parameter: &'static str,
        x: &Integer,
    ) -> Result<()> {
        let bad = |reason: &str| Error::KeyParameter {
            parameter,
            reason: reason.into(),
        };
        if *x <= 0 || *x >= *self.n_squared() || x.gcd_ref(self.n()).complete() != 1 {
            return Err(bad("not a unit modulo n²"));
        }
        if Integer::from(x.square_ref()) % self.n_squared() == 1 {
            return Err(bad(
                "its square is 1 modulo n² (it is ±1 or another root of unity)",
            ));
        }
        Ok(())
    }

    /// The threshold parameters, for a threshold key.
    pub fn threshold(&self) -> Option<&ThresholdPublic> {
        self.threshold.as_deref()
    }

    /// The modulus, all that arithmetic on this key's ciphertexts needs.
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }
    /// The modulus n.
    pub fn n(&self) -> &Integer {
        self.modulus.n()
    }
    /// n².
    pub fn n_squared(&self) -> &Integer {
        self.modulus.n_squared()
    }
    /// The DJN base, when the key has one.
    pub fn hs(&self) -> Option<&Integer> {
        self.hs.as_ref()
    }
    /// Bit length of n.
    pub fn bits(&self) -> u32 {
        self.modulus.bits()
    }
    /// The key id: lowercase hex SHA-256 fingerprint of every public parameter.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// The largest magnitude a signed plaintext may have: ⌊n/3⌋ − 1.
    pub fn max_int(&self) -> &Integer {
        self.modulus.max_int()
    }
    /// Bytes of one ciphertext on disk: 2·⌈|n|/8⌉ rounded up to a multiple of 8.
    pub fn ciphertext_width(&self) -> usize {
        self.modulus.width()
    }

    /// Signed integer → plaintext in [0, n).
    pub fn encode(&self, value: &Integer) -> Result<Integer> {
        encoding::encode(value, self.n(), self.max_int()).ok_or_else(|| Error::OutOfRange {
            key_id: self.key_id.clone(),
        })
    }

    /// Plaintext in [0, n) → signed integer; the band between max_int and n − max_int is overflow.
    pub fn decode(&self, plain: Integer) -> Result<Integer> {
        encoding::decode(plain, self.n(), self.max_int()).ok_or_else(|| Error::Overflow {
            key_id: self.key_id.clone(),
        })
    }

    /// Encrypts a signed integer (|value| ≤ max_int).
    pub fn encrypt(&self, value: &Integer) -> Result<Ciphertext> {
        let m = self.encode(value)?;
        let obf = self.obfuscator()?;
        Ok(Ciphertext::from_raw(self.mul_nude(&m, obf)))
    }

    /// Encrypts a signed 128-bit integer (the unscaled value of a decimal, say).
    pub fn encrypt_i128(&self, value: i128) -> Result<Ciphertext> {
        self.encrypt(&Integer::from(value))
    }

    /// A fresh random encryption of zero: hs^a with |a| = ⌈|n|/2⌉ bits (DJN), or r^n.
    pub(crate) fn obfuscator(&self) -> Result<Integer> {
        match &self.hs {
            Some(_) => {
                let a = randomness::random_bits(self.djn_exponent_bits())?;
                Ok(self.djn_pow(&a))
            }
            None => {
                let r = randomness::random_unit(self.n())?;
                Ok(self.r_pow_n(&r))
            }
        }
    }

    pub(crate) fn djn_exponent_bits(&self) -> u32 {
        self.bits().div_ceil(2)
    }

    /// Encrypts signed 128-bit integers, 8 at a time through the IFMA kernel where the CPU has
    /// it (DJN keys), else one by one: the same ciphertexts as [`encrypt_i128`](Self::encrypt_i128)
    /// would give for the same randomness.
    pub fn encrypt_many_i128(&self, values: &[i128]) -> Result<Vec<Ciphertext>> {
        let mut out = Vec::with_capacity(values.len());
        for chunk in values.chunks(8) {
            let obfs = match (&self.hs, chunk.len()) {
                (Some(_), 8) => {
                    let mut exps = Vec::with_capacity(8);
                    for _ in 0..8 {
                        exps.push(randomness::random_bits(self.djn_exponent_bits())?);
                    }
                    let mut bytes: Vec<Vec<u8>> =
                        exps.iter().map(|a| a.to_digits::<u8>(Order::Lsf)).collect();
                    let powers = self
                        .djn_table()
                        .pow8(std::array::from_fn(|l| bytes[l].as_slice()));
                    for (a, b) in exps.iter_mut().zip(&mut bytes) {
                        wipe(a);
                        zeroize::Zeroize::zeroize(b);
                    }
                    powers.map(Vec::from)
                }
                _ => None,
            };
            match obfs {
                Some(obfs) => {
                    for (v, obf) in chunk.iter().zip(obfs) {
                        let m = self.encode(&Integer::from(*v))?;
                        out.push(Ciphertext::from_raw(self.mul_nude(&m, obf)));
                    }
                }
                None => {
                    for v in chunk {
                        out.push(self.encrypt_i128(*v)?);
                    }
                }
            }
        }
        Ok(out)
    }

    fn djn_table(&self) -> &FixedBaseTable {
        self.table.get_or_init(|| {
            let hs = self
                .hs
                .as_ref()
                .map_or_else(|| Integer::from(1), Clone::clone);
            FixedBaseTable::new(&hs, self.n_squared(), self.djn_exponent_bits())
        })
    }

    /// hs^a mod n² through the fixed-base table (built on first use).
    pub(crate) fn djn_pow(&self, a: &Integer) -> Integer {
        self.djn_table().pow(a)
    }

    pub(crate) fn r_pow_n(&self, r: &Integer) -> Integer {
        // r < n and n² > 0: pow_mod cannot fail for a positive exponent.
        r.clone()
            .pow_mod(self.n(), self.n_squared())
            .unwrap_or_else(|_| Integer::from(1))
    }

    /// (1 + m·n) · obf mod n², for m in [0, n) and obf a unit mod n². Computed as
    /// obf + n·(m·obf mod n): one multiplication mod n instead of one mod n².
    pub(crate) fn mul_nude(&self, m: &Integer, mut obf: Integer) -> Integer {
        let (n, n2) = (self.n(), self.n_squared());
        let mut t = Integer::from(&obf % n);
        t *= m;
        t %= n;
        t *= n;
        obf += t;
        if obf >= *n2 {
            obf -= n2;
        }
        obf
    }

    /// Checks that c is a unit of Z_{n²}: 0 < c < n² and gcd(c, n) = 1.
    pub(crate) fn validate(&self, c: Integer) -> Result<Integer> {
        let reason = if c <= 0 {
            "it is zero"
        } else if c >= *self.n_squared() {
            "it is not below n²"
        } else if c.gcd_ref(self.n()).complete() != 1 {
            "it shares a factor with n"
        } else {
            return Ok(c);
        };
        Err(Error::InvalidCiphertext {
            key_id: self.key_id.clone(),
            reason: reason.into(),
        })
    }

    /// Homomorphic addition: Dec(a ⊕ b) = Dec(a) + Dec(b).
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        self.modulus.add(a, b)
    }

    /// In-place homomorphic addition, the aggregation hot path: one multiplication mod n².
    pub fn add_assign(&self, acc: &mut Ciphertext, b: &Ciphertext) {
        self.modulus.add_assign(acc, b);
    }

    /// Adds a signed plaintext k (|k| ≤ max_int): c · (1 + k·n) mod n².
    pub fn add_plain(&self, c: &Ciphertext, k: &Integer) -> Result<Ciphertext> {
        self.encode(k)?;
        Ok(self.modulus.add_plain(c, &Plaintext::from(k.clone())))
    }

    /// Multiplies by a signed plaintext k: c^k mod n² (a negative k through the inverse).
    pub fn mul_plain(&self, c: &Ciphertext, k: &Integer) -> Result<Ciphertext> {
        self.modulus
            .mul_plain(c, &Plaintext::from(k.clone()))
            .map_err(|reason| self.invalid(reason))
    }

    /// Negation: Dec(neg(c)) = −Dec(c).
    pub fn neg(&self, c: &Ciphertext) -> Result<Ciphertext> {
        self.modulus.neg(c).map_err(|reason| self.invalid(reason))
    }

    /// A fresh-looking ciphertext of the same plaintext: c · Enc(0).
    pub fn rerandomize(&self, c: &Ciphertext) -> Result<Ciphertext> {
        let obf = Ciphertext::from_raw(self.obfuscator()?);
        Ok(self.modulus.add(c, &obf))
    }

    fn invalid(&self, reason: &str) -> Error {
        Error::InvalidCiphertext {
            key_id: self.key_id.clone(),
            reason: reason.into(),
        }
    }

    /// Reads a fixed-width little-endian ciphertext, validating it.
    pub fn ciphertext_from_le_bytes(&self, bytes: &[u8]) -> Result<Ciphertext> {
        if bytes.len() != self.ciphertext_width() {
            return Err(Error::InvalidCiphertext {
                key_id: self.key_id.clone(),
                reason: format!(
                    "{} bytes where {} are expected",
                    bytes.len(),
                    self.ciphertext_width()
                ),
            });
        }
        let c = Ciphertext::integer_from_le_bytes(bytes);
        Ok(Ciphertext::from_raw(self.validate(c)?))
    }

    /// Validates a ciphertext given as an integer.
    pub fn ciphertext_from_integer(&self, c: Integer) -> Result<Ciphertext> {
        Ok(Ciphertext::from_raw(self.validate(c)?))
    }

    /// The fixed-width little-endian bytes of a ciphertext of this key.
    pub fn ciphertext_to_le_bytes(&self, c: &Ciphertext) -> Vec<u8> {
        let mut out = vec![0u8; self.ciphertext_width()];
        c.write_le(&mut out);
        out
    }
}

/// A Paillier private key: the primes and the CRT decryption constants.
pub struct PrivateKey {
    public: PublicKey,
    p: Integer,
    q: Integer,
    p2: Integer,
    q2: Integer,
    p_minus_1: Integer,
    q_minus_1: Integer,
    /// L_p(g^(p−1) mod p²)⁻¹ mod p, and the same for q.
    hp: Integer,
    hq: Integer,
    /// p⁻¹ mod q, for recombination.
    p_inv_q: Integer,
    /// The IFMA kernel's constant-time exponentiation mod p², q² (4 ciphertexts a call), built
    /// on first use where the CPU has it.
    crt: OnceLock<Option<Box<dyn super::arith::Pow8>>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_id", &self.public.key_id)
            .field("bits", &self.public.bits())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Overwrites the limbs an integer holds, then sets it to zero (best effort: GMP may have left
/// copies behind on earlier reallocations).
pub(crate) fn wipe(x: &mut Integer) {
    let limbs = x.as_limbs().len() as u32;
    if limbs > 0 {
        let ones = (Integer::from(1) << (limbs * 64)) - 1u32;
        x.assign(&ones);
    }
    x.assign(0);
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        for x in [
            &mut self.p,
            &mut self.q,
            &mut self.p2,
            &mut self.q2,
            &mut self.p_minus_1,
            &mut self.q_minus_1,
            &mut self.hp,
            &mut self.hq,
            &mut self.p_inv_q,
        ] {
            wipe(x);
        }
    }
}

impl PrivateKey {
    /// Generates a key pair with safe primes of equal length, |n| one of 2048, 3072, 4096.
    pub fn generate(bits: u32) -> Result<Self> {
        if !OFFERED_BITS.contains(&bits) {
            return Err(Error::KeySize {
                bits,
                min: MIN_BITS,
            });
        }
        Self::generate_unchecked_size(bits)
    }

    /// As `generate`, for any even size ≥ 64 (test fixtures, through `hazmat`).
    pub(crate) fn generate_unchecked_size(bits: u32) -> Result<Self> {
        let (p, q) = generate_safe_prime_pair(bits)?;
        let n = Integer::from(&p * &q);
        let hs = djn_base(&n)?;
        Self::from_primes(p, q, Some(hs))
    }

    /// A private key from its primes (validated as prime, distinct) and optional DJN base.
    pub(crate) fn from_primes(p: Integer, q: Integer, hs: Option<Integer>) -> Result<Self> {
        use rug::integer::IsPrime;
        if p == q {
            return Err(Error::Invalid("the two primes are equal".into()));
        }
        if p.is_probably_prime(30) == IsPrime::No || q.is_probably_prime(30) == IsPrime::No {
            return Err(Error::Invalid("a factor of n is not prime".into()));
        }
        let n = Integer::from(&p * &q);
        let public = PublicKey::new_unchecked_size(n, hs)?;
        let p2 = Integer::from(p.square_ref());
        let q2 = Integer::from(q.square_ref());
        let p_minus_1 = Integer::from(&p - 1u32);
        let q_minus_1 = Integer::from(&q - 1u32);
        let hp = h_constant(public.n(), &p, &p2, &p_minus_1)?;
        let hq = h_constant(public.n(), &q, &q2, &q_minus_1)?;
        let p_inv_q = p
            .invert_ref(&q)
            .map(Integer::from)
            .ok_or_else(|| Error::Invalid("p has no inverse modulo q".into()))?;
        let key = PrivateKey {
            public,
            p,
            q,
            p2,
            q2,
            p_minus_1,
            q_minus_1,
            hp,
            hq,
            p_inv_q,
            crt: OnceLock::new(),
        };
        // With the primes, hs can be checked fully: it must be an n-th residue (an encryption of
        // 0), or every value encrypted with it would be shifted by an unknown amount.
        if let Some(hs) = key.public.hs() {
            if key.decrypt_raw(&Ciphertext::from_raw(hs.clone())) != 0 {
                return Err(Error::KeyParameter {
                    parameter: "hs",
                    reason: "it is not an encryption of 0 under this key".into(),
                });
            }
        }
        Ok(key)
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn p(&self) -> &Integer {
        &self.p
    }
    pub(crate) fn q(&self) -> &Integer {
        &self.q
    }

    /// Decrypts to the raw plaintext in [0, n), by CRT over p² and q².
    pub fn decrypt_raw(&self, c: &Ciphertext) -> Integer {
        let mp = self.decrypt_half(c.as_integer(), &self.p, &self.p2, &self.p_minus_1, &self.hp);
        let mq = self.decrypt_half(c.as_integer(), &self.q, &self.q2, &self.q_minus_1, &self.hq);
        self.recombine(mp, mq)
    }

    /// Decrypts many ciphertexts to raw plaintexts: 4 at a time through the IFMA kernel where
    /// the CPU has it (each one's powers mod p² and mod q² in 8 lanes, in constant time), else
    /// one by one as [`decrypt_raw`](Self::decrypt_raw); the same plaintexts either way.
    pub fn decrypt_raw_many(&self, cs: &[&Ciphertext]) -> Vec<Integer> {
        let kernel = self.crt.get_or_init(|| {
            super::arith::powers(std::array::from_fn(|l| {
                if l.is_multiple_of(2) {
                    &self.p2
                } else {
                    &self.q2
                }
            }))
        });
        let Some(kernel) = kernel else {
            return cs.iter().map(|c| self.decrypt_raw(c)).collect();
        };
        let bits = self
            .p_minus_1
            .significant_bits()
            .max(self.q_minus_1.significant_bits());
        let mut out = Vec::with_capacity(cs.len());
        for chunk in cs.chunks(4) {
            if chunk.len() < 4 {
                out.extend(chunk.iter().map(|c| self.decrypt_raw(c)));
                continue;
            }
            let half = |l: usize| {
                if l.is_multiple_of(2) {
                    &self.p2
                } else {
                    &self.q2
                }
            };
            let bases: Vec<Integer> = (0..8)
                .map(|l| Integer::from(chunk[l / 2].as_integer() % half(l)))
                .collect();
            let exps = std::array::from_fn(|l| {
                if l.is_multiple_of(2) {
                    &self.p_minus_1
                } else {
                    &self.q_minus_1
                }
            });
            let xs = kernel.pow8(std::array::from_fn(|l| &bases[l]), exps, bits);
            for pair in xs.chunks(2) {
                let mp = Self::finish_half(&pair[0], &self.p, &self.hp);
                let mq = Self::finish_half(&pair[1], &self.q, &self.hq);
                out.push(self.recombine(mp, mq));
            }
        }
        out
    }

    /// m = mp + ((mq − mp) · p⁻¹ mod q) · p.
    fn recombine(&self, mp: Integer, mq: Integer) -> Integer {
        let mut u = mq - &mp;
        u *= &self.p_inv_q;
        u.modulo_mut(&self.q);
        u *= &self.p;
        u += mp;
        u
    }

    /// Decrypts and decodes to a signed integer (an error in the overflow band).
    pub fn decrypt(&self, c: &Ciphertext) -> Result<Integer> {
        self.public.decode(self.decrypt_raw(c))
    }

    fn decrypt_half(
        &self,
        c: &Integer,
        prime: &Integer,
        prime2: &Integer,
        prime_minus_1: &Integer,
        h: &Integer,
    ) -> Integer {
        let base = Integer::from(c % prime2);
        // The exponent p − 1 is secret. GMP's variable-time powm is 1.6× faster than its
        // side-channel-resistant one here; decryption with a private key runs on the key holder's
        // own machine in batch, not as a service an attacker can time (the threshold service path
        // uses the resistant powm). p − 1 > 0 and p² is odd, so this cannot fail.
        let x = base.pow_mod(prime_minus_1, prime2).unwrap_or_default();
        Self::finish_half(&x, prime, h)
    }

    /// L_p(x) · h mod p, for x = c^(p−1) mod p².
    fn finish_half(x: &Integer, prime: &Integer, h: &Integer) -> Integer {
        let mut l = Integer::from(x - 1u32) / prime;
        l *= h;
        l.modulo_mut(prime);
        l
    }
}

/// h_p = L_p(g^(p−1) mod p²)⁻¹ mod p with g = n + 1.
fn h_constant(n: &Integer, p: &Integer, p2: &Integer, p_minus_1: &Integer) -> Result<Integer> {
    let g = Integer::from(n + 1u32);
    let x = g
        .pow_mod(p_minus_1, p2)
        .map_err(|_| Error::Invalid("cannot compute the decryption constant".into()))?;
    let l = (x - 1u32) / p;
    l.invert(p)
        .map_err(|_| Error::Invalid("the decryption constant is not invertible".into()))
}

/// Two distinct safe primes of bits/2 bits each, whose product has exactly `bits` bits.
pub(crate) fn generate_safe_prime_pair(bits: u32) -> Result<(Integer, Integer)> {
    let half = bits / 2;
    loop {
        let p = primes::safe_prime(half)?;
        let q = primes::safe_prime(half)?;
        if p != q && Integer::from(&p * &q).significant_bits() == bits {
            return Ok((p, q));
        }
    }
}

/// The DJN base: x random in Z*_n, h = −x² mod n, hs = h^n mod n². x and h are wiped.
pub(crate) fn djn_base(n: &Integer) -> Result<Integer> {
    let mut x = randomness::random_unit(n)?;
    let mut h = Integer::from(x.square_ref());
    h = -h;
    h.modulo_mut(n);
    let n2 = Integer::from(n.square_ref());
    let hs = h
        .clone()
        .pow_mod(n, &n2)
        .map_err(|_| Error::Invalid("cannot compute the DJN base".into()))?;
    wipe(&mut x);
    wipe(&mut h);
    Ok(hs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::hazmat;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
        /// Encryption 8 at a time (through the IFMA kernel where the CPU has it) decrypts to the
        /// values, whatever their number, and never repeats a ciphertext.
        #[test]
        fn batch_encryption_decrypts(values in proptest::collection::vec(proptest::num::i64::ANY, 0..40)) {
            let key = hazmat::fixture_key_512();
            let pk = key.public_key();
            let values: Vec<i128> = values.into_iter().map(i128::from).collect();
            let cts = pk.encrypt_many_i128(&values).unwrap();
            proptest::prop_assert_eq!(cts.len(), values.len());
            for (c, v) in cts.iter().zip(&values) {
                proptest::prop_assert_eq!(key.decrypt(c).unwrap(), *v);
            }
            let again = pk.encrypt_many_i128(&values).unwrap();
            proptest::prop_assert!(cts.iter().zip(&again).all(|(a, b)| a != b));
            // Decryption 4 at a time (the kernel's constant-time powers) gives what one by one does.
            let refs: Vec<&Ciphertext> = cts.iter().collect();
            let many = key.decrypt_raw_many(&refs);
            let one: Vec<Integer> = cts.iter().map(|c| key.decrypt_raw(c)).collect();
            proptest::prop_assert_eq!(many, one);
        }
    }

    #[test]
    fn refuses_small_and_odd_sizes() {
        for bits in [512u32, 1024, 2047, 2560] {
            let err = PrivateKey::generate(bits).unwrap_err();
            assert!(err.to_string().contains("not allowed"), "{err}");
        }
        let small = hazmat::fixture_key_512();
        let err = PublicKey::new(small.public_key().n().clone(), None).unwrap_err();
        assert!(err.to_string().contains("2048"), "{err}");
    }

    #[test]
    fn debug_is_redacted() {
        let key = hazmat::fixture_key_512();
        let s = format!("{key:?}");
        assert!(s.contains("redacted"));
        assert!(!s.contains(&key.p().to_string()));
        assert!(!s.contains(&key.p().to_string_radix(16)));
    }

    /// A 2048-bit product of two primes (not safe primes: enough for public-key tests).
    fn modulus_2048() -> Integer {
        // Both 1024 bits with the two top bits set: the product has exactly 2048.
        let p = (Integer::from(3) << 1022u32).next_prime();
        let q = Integer::from(&p + 2u32).next_prime();
        Integer::from(&p * &q)
    }

    #[test]
    fn width_of_2048_bit_ciphertext_is_512() {
        let pk = PublicKey::new(modulus_2048(), None).unwrap();
        assert_eq!(pk.bits(), 2048);
        assert_eq!(pk.ciphertext_width(), 512);
    }

    #[test]
    fn moduli_that_anyone_could_factor_are_refused() {
        let n = modulus_2048();
        let prime = (Integer::from(1) << 2047u32).next_prime();
        let cases = [
            (Integer::from(&n + 1u32), "small prime factor 2"),
            (Integer::from(&n * 3u32), "small prime factor 3"),
            (prime, "it is prime"),
        ];
        for (m, want) in cases {
            let e = PublicKey::new_unchecked_size(m, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("`n`") && e.contains(want), "{e}");
        }
        let sq = {
            let p = (Integer::from(3) << 1022u32).next_prime();
            Integer::from(p.square_ref())
        };
        let e = PublicKey::new(sq, None).unwrap_err().to_string();
        assert!(e.contains("perfect square"), "{e}");
        let big = Integer::from(&n << 6200u32) | 1u32;
        let e = PublicKey::new(big, None).unwrap_err().to_string();
        assert!(e.contains("at most 8192"), "{e}");
    }

    #[test]
    fn djn_bases_of_small_order_are_refused() {
        let n = modulus_2048();
        let n2 = Integer::from(n.square_ref());
        let bad = [
            Integer::from(1),
            Integer::from(&n2 - 1u32),
            Integer::from(&n + 1u32),
            Integer::from(&n - 1u32),
            Integer::new(),
            n2.clone(),
        ];
        for hs in bad {
            let e = PublicKey::new(n.clone(), Some(hs)).unwrap_err().to_string();
            assert!(e.contains("`hs`"), "{e}");
        }
        assert!(PublicKey::new(n.clone(), Some(Integer::from(4))).is_ok());
    }

    #[test]
    fn a_private_key_refuses_a_djn_base_that_is_not_an_encryption_of_zero() {
        let key = hazmat::fixture_key_512();
        let (p, q) = (key.p().clone(), key.q().clone());
        let hs = key.public_key().hs().unwrap().clone();
        let n = key.public_key().n().clone();
        let shifted = (&hs * Integer::from(&n + 1u32)) % key.public_key().n_squared();
        let e = PrivateKey::from_primes(p, q, Some(shifted))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`hs`") && e.contains("encryption of 0"), "{e}");
    }

    #[test]
    fn key_id_is_lowercase_hex_sha256() {
        let key = hazmat::fixture_key_512();
        let id = key.public_key().key_id();
        assert_eq!(id.len(), 64);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    }

    #[test]
    fn generated_keys_use_safe_primes_and_exact_size() {
        let key = PrivateKey::generate_unchecked_size(512).unwrap();
        assert_eq!(key.public_key().bits(), 512);
        assert!(primes::is_safe_prime(key.p()));
        assert!(primes::is_safe_prime(key.q()));
        assert_eq!(key.p().significant_bits(), key.q().significant_bits());
        let m = Integer::from(-42);
        let c = key.public_key().encrypt(&m).unwrap();
        assert_eq!(key.decrypt(&c).unwrap(), m);
    }
}
