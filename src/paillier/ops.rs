//! Homomorphic operations on the ciphertexts of one modulus, one at a time and in batches: the
//! running sum an aggregate keeps ([`Sum`]), addition, adding and multiplying by a plaintext,
//! decimal scale shifts, and batch inversion (negation). All of it goes through the arithmetic
//! backend (`arith`); nothing outside `paillier` multiplies ciphertexts.

use std::cell::RefCell;

use rug::Integer;

use super::arith::{backend, batch_product, kernel_fits, run_products};
use super::ciphertext::{read_le_into, write_le, Ciphertext};
use super::modulus::Modulus;

/// Why bytes are not a ciphertext (the cheap checks: a gcd with n is checked where a value is
/// decrypted, since a product shares a factor with n exactly when one of its factors does).
pub type BadCiphertext = &'static str;

/// A signed plaintext integer (a value at its column's scale, or a factor), before it is reduced
/// modulo n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plaintext(Integer);

impl Plaintext {
    /// `v · 10^digits`: a decimal brought to a larger scale (digits 0 for the value as is).
    pub fn scaled(v: i128, digits: u32) -> Self {
        let mut x = Integer::from(v);
        if digits > 0 {
            x *= Integer::from(Integer::u_pow_u(10, digits));
        }
        Plaintext(x)
    }

    /// Below zero.
    pub fn is_negative(&self) -> bool {
        self.0 < 0
    }

    /// Its decimal digits (with a sign): an identity of the constant, for provenance forms.
    pub fn to_decimal(&self) -> String {
        self.0.to_string()
    }
}

impl From<Integer> for Plaintext {
    fn from(v: Integer) -> Self {
        Plaintext(v)
    }
}

thread_local! {
    /// Where `Sum::add_le` reads a ciphertext, so that the hot loop allocates nothing.
    static SCRATCH: RefCell<Integer> = const { RefCell::new(Integer::new()) };
}

/// A running encrypted sum: the product of ciphertexts mod n² (1, an encryption of 0 with no
/// randomness, before the first value). What every encrypted aggregate accumulates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sum {
    acc: Integer,
}

impl Default for Sum {
    fn default() -> Self {
        Self::new()
    }
}

impl Sum {
    /// The empty sum.
    pub fn new() -> Self {
        Sum {
            acc: Integer::from(1),
        }
    }

    /// Adds the ciphertext in `bytes` (little-endian): one multiplication mod n².
    pub fn add_le(&mut self, m: &Modulus, bytes: &[u8]) -> Result<(), BadCiphertext> {
        SCRATCH.with(|s| {
            let x = &mut *s.borrow_mut();
            read_checked(m, x, bytes)?;
            backend().mul_assign(&mut self.acc, x, m.n_squared());
            Ok(())
        })
    }

    /// Adds every ciphertext of `values` (little-endian bytes): through the IFMA kernel, 8 at a
    /// time, when there are at least [`KERNEL_MIN`] and the CPU has it; else one multiplication
    /// each. On a value that is not a ciphertext, its index and why (nothing is added then).
    pub fn add_all_le(
        &mut self,
        m: &Modulus,
        values: &[&[u8]],
    ) -> Result<(), (usize, BadCiphertext)> {
        let n2 = m.n_squared();
        let product = (values.len() >= KERNEL_MIN)
            .then(|| batch_product(n2))
            .flatten();
        let Some(mut product) = product else {
            let mut sum = self.clone();
            for (i, v) in values.iter().enumerate() {
                sum.add_le(m, v).map_err(|why| (i, why))?;
            }
            *self = sum;
            return Ok(());
        };
        let top = n2.to_digits::<u8>(rug::integer::Order::Lsf);
        for (i, v) in values.iter().enumerate() {
            check_le(v, &top).map_err(|why| (i, why))?;
            product.push_le(v);
        }
        backend().mul_assign(&mut self.acc, &product.finish(n2), n2);
        Ok(())
    }

    /// Adds each `(i, bytes)` of `values` to `sums[i]` (the groups of one batch): the groups with
    /// at least [`KERNEL_MIN`] values each through a kernel product of their own, those with
    /// at least 4 side by side in the kernel's lanes, the others (and all of them without the
    /// kernel) one multiplication per value. On a value that is not a ciphertext, why.
    pub fn add_grouped_le(
        sums: &mut [Sum],
        m: &Modulus,
        values: &[(usize, &[u8])],
    ) -> Result<(), BadCiphertext> {
        use std::collections::HashMap;
        const RUN_MIN: usize = 4;
        let n2 = m.n_squared();
        let kernel = values.len() >= KERNEL_MIN && kernel_fits(n2);
        let mut batched: HashMap<usize, Vec<&[u8]>> = HashMap::new();
        if kernel {
            let mut counts: HashMap<usize, usize> = HashMap::new();
            for (g, _) in values {
                *counts.entry(*g).or_default() += 1;
            }
            batched = counts
                .into_iter()
                .filter(|&(_, n)| n >= RUN_MIN)
                .map(|(g, n)| (g, Vec::with_capacity(n)))
                .collect();
        }
        for &(g, bytes) in values {
            match batched.get_mut(&g) {
                Some(batch) => batch.push(bytes),
                None => sums[g].add_le(m, bytes)?,
            }
        }
        let (many, runs): (Vec<_>, Vec<_>) = batched
            .into_iter()
            .partition(|(_, b)| b.len() >= KERNEL_MIN);
        for (g, batch) in many {
            sums[g].add_all_le(m, &batch).map_err(|(_, why)| why)?;
        }
        if runs.is_empty() {
            return Ok(());
        }
        let top = n2.to_digits::<u8>(rug::integer::Order::Lsf);
        for (_, run) in &runs {
            for v in run {
                check_le(v, &top)?;
            }
        }
        let slices: Vec<&[&[u8]]> = runs.iter().map(|(_, r)| r.as_slice()).collect();
        match run_products(n2, &slices) {
            Some(products) => {
                for ((g, _), p) in runs.iter().zip(products) {
                    backend().mul_assign(&mut sums[*g].acc, &p, n2);
                }
            }
            None => {
                for (g, run) in &runs {
                    for v in run {
                        sums[*g].add_le(m, v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds another sum (merging two partial aggregates).
    pub fn merge(&mut self, m: &Modulus, other: &Sum) {
        backend().mul_assign(&mut self.acc, &other.acc, m.n_squared());
    }

    /// The sum of the single ciphertext in `bytes`.
    pub fn of_le(m: &Modulus, bytes: &[u8]) -> Result<Self, BadCiphertext> {
        let mut acc = Integer::new();
        read_checked(m, &mut acc, bytes)?;
        Ok(Sum { acc })
    }

    /// Writes the encrypted sum as little-endian bytes (`out` at least the ciphertext width).
    pub fn write_le(&self, out: &mut [u8]) {
        write_le(&self.acc, out);
    }

    /// The encrypted sum as a ciphertext.
    pub fn into_ciphertext(self) -> Ciphertext {
        Ciphertext::from_raw(self.acc)
    }
}

/// How many ciphertexts make a batch worth the IFMA kernel (its fold costs about 30
/// multiplications mod n²).
pub const KERNEL_MIN: usize = 32;

/// Checks 0 < x < n² for little-endian `bytes`, against n²'s little-endian bytes, without
/// reading x into an integer.
fn check_le(bytes: &[u8], n2: &[u8]) -> Result<(), BadCiphertext> {
    let len = bytes.len().max(n2.len());
    for k in (0..len).rev() {
        let (x, y) = (
            bytes.get(k).copied().unwrap_or(0),
            n2.get(k).copied().unwrap_or(0),
        );
        if x != y {
            if x > y {
                return Err("it is not below n²");
            }
            // Below n²: zero only if every byte is.
            return if bytes.iter().all(|&b| b == 0) {
                Err("it is zero")
            } else {
                Ok(())
            };
        }
    }
    Err("it is not below n²")
}

/// Reads little-endian bytes into `x` and checks 0 < x < n².
fn read_checked(m: &Modulus, x: &mut Integer, bytes: &[u8]) -> Result<(), BadCiphertext> {
    read_le_into(x, bytes);
    if *x == 0 {
        Err("it is zero")
    } else if *x >= *m.n_squared() {
        Err("it is not below n²")
    } else {
        Ok(())
    }
}

impl Modulus {
    /// Reads a ciphertext from little-endian bytes, checking 0 < c < n².
    pub fn load_le(&self, bytes: &[u8]) -> Result<Ciphertext, BadCiphertext> {
        let mut x = Integer::new();
        read_checked(self, &mut x, bytes)?;
        Ok(Ciphertext::from_raw(x))
    }

    /// Homomorphic addition: Dec(a ⊕ b) = Dec(a) + Dec(b).
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        let mut c = a.clone();
        self.add_assign(&mut c, b);
        c
    }

    /// In-place homomorphic addition: one multiplication mod n².
    pub fn add_assign(&self, acc: &mut Ciphertext, b: &Ciphertext) {
        backend().mul_assign(acc.as_integer_mut(), b.as_integer(), self.n_squared());
    }

    /// Adds a signed plaintext k: c · (1 + (k mod n)·n) mod n² (g^k with g = n + 1).
    pub fn add_plain(&self, c: &Ciphertext, k: &Plaintext) -> Ciphertext {
        let mut gk = Integer::from(k.0.modulo_ref(self.n()));
        gk *= self.n();
        gk += 1u32;
        let mut out = c.clone();
        backend().mul_assign(out.as_integer_mut(), &gk, self.n_squared());
        out
    }

    /// Multiplies by the magnitude of a plaintext: c^|k| (a negative k also needs the result
    /// inverted: `mul_plain`, or `invert_batch` for many at once).
    pub fn mul_plain_abs(&self, c: &Ciphertext, k: &Plaintext) -> Ciphertext {
        Ciphertext::from_raw(self.pow(c.as_integer(), &Integer::from(k.0.abs_ref())))
    }

    /// Multiplies by a signed plaintext: c^k mod n² (a negative k through the inverse).
    pub fn mul_plain(&self, c: &Ciphertext, k: &Plaintext) -> Result<Ciphertext, BadCiphertext> {
        let mut out = vec![self.mul_plain_abs(c, k)];
        if k.is_negative() {
            self.invert_batch(&mut out).map_err(|_| NOT_INVERTIBLE)?;
        }
        Ok(out.remove(0))
    }

    /// Negation: Dec(neg(c)) = −Dec(c).
    pub fn neg(&self, c: &Ciphertext) -> Result<Ciphertext, BadCiphertext> {
        self.mul_plain(c, &Plaintext(Integer::from(-1)))
    }

    /// Brings a ciphertext to a scale `digits` places larger: c^(10^digits).
    pub fn scale(&self, c: &Ciphertext, digits: u32) -> Ciphertext {
        if digits == 0 {
            return c.clone();
        }
        let e = Integer::from(Integer::u_pow_u(10, digits));
        Ciphertext::from_raw(self.pow(c.as_integer(), &e))
    }

    /// Replaces every value by its inverse mod n², with Montgomery's trick: one inversion and
    /// three multiplications per value instead of one inversion each. On a value that is not a
    /// unit, returns its index and leaves `values` unspecified.
    pub fn invert_batch(&self, values: &mut [Ciphertext]) -> Result<(), usize> {
        let Some(last) = values.len().checked_sub(1) else {
            return Ok(());
        };
        let (b, n2) = (backend(), self.n_squared());
        // prefix[j] = v_0 · … · v_j
        let mut prefix: Vec<Integer> = Vec::with_capacity(values.len());
        for (j, v) in values.iter().enumerate() {
            let mut p = v.as_integer().clone();
            if j > 0 {
                b.mul_assign(&mut p, &prefix[j - 1], n2);
            }
            prefix.push(p);
        }
        let Some(mut inv) = b.invert(&prefix[last], n2) else {
            // Some value shares a factor with n: find it.
            let bad = values
                .iter()
                .position(|v| b.invert(v.as_integer(), n2).is_none())
                .unwrap_or(0);
            return Err(bad);
        };
        for j in (0..=last).rev() {
            let v = values[j].as_integer().clone();
            let vinv = if j == 0 {
                inv.clone()
            } else {
                let mut x = inv.clone();
                b.mul_assign(&mut x, &prefix[j - 1], n2);
                x
            };
            b.mul_assign(&mut inv, &v, n2);
            values[j] = Ciphertext::from_raw(vinv);
        }
        Ok(())
    }

    /// x^e mod n² for e ≥ 0. Small exponents (scale shifts 10^d, factors like 3) by square and
    /// multiply: GMP's powm sets up Montgomery form on every call, which costs more than a few
    /// multiplications.
    fn pow(&self, x: &Integer, e: &Integer) -> Integer {
        let (b, n2) = (backend(), self.n_squared());
        match e.to_u32() {
            Some(e) if e <= 1 << 16 => {
                let mut acc = Integer::from(1);
                for bit in (0..32 - e.leading_zeros()).rev() {
                    b.square_assign(&mut acc, n2);
                    if e >> bit & 1 == 1 {
                        b.mul_assign(&mut acc, x, n2);
                    }
                }
                acc
            }
            _ => b.pow(x, e, n2),
        }
    }
}

/// The reason given for a value that has no inverse mod n².
pub const NOT_INVERTIBLE: BadCiphertext = "it shares a factor with n (not invertible mod n²)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::hazmat;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
        /// A batch added at once (through the IFMA kernel where the CPU has it) is the same
        /// ciphertext, bit for bit, as the values added one by one with GMP; a bad value is
        /// named by its index and adds nothing.
        #[test]
        fn batches_equal_one_by_one(count in 0usize..100, bad in proptest::option::of(0usize..100)) {
            let key = hazmat::fixture_key_512();
            let pk = key.public_key();
            let m = pk.modulus();
            let values: Vec<Vec<u8>> = (0..count)
                .map(|i| {
                    let mut b = vec![0u8; m.width()];
                    pk.encrypt(&Integer::from(i as i64 - 50)).unwrap().write_le(&mut b);
                    b
                })
                .collect();
            let mut one = Sum::new();
            for v in &values {
                one.add_le(m, v).unwrap();
            }
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let mut all = Sum::new();
            all.add_all_le(m, &refs).unwrap();
            proptest::prop_assert_eq!(&all, &one);
            let want: i64 = (0..count as i64).map(|i| i - 50).sum();
            proptest::prop_assert_eq!(key.decrypt(&all.clone().into_ciphertext()).unwrap(), want);
            if let Some(b) = bad.filter(|&b| b < count) {
                let mut edited = values.clone();
                edited[b] = m.n_squared().to_digits::<u8>(rug::integer::Order::Lsf);
                edited[b].resize(m.width(), 0);
                let refs: Vec<&[u8]> = edited.iter().map(Vec::as_slice).collect();
                let mut s = Sum::new();
                proptest::prop_assert_eq!(s.add_all_le(m, &refs), Err((b, "it is not below n²")));
                proptest::prop_assert_eq!(s, Sum::new());
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        /// Values spread over groups (some with many values, some with a few, some with one)
        /// give each group the sum one-by-one addition gives, bit for bit.
        #[test]
        fn grouped_batches_equal_one_by_one(groups in proptest::collection::vec(0usize..12, 0..160)) {
            let key = hazmat::fixture_key_512();
            let pk = key.public_key();
            let m = pk.modulus();
            // Group 0 gets extra values so that one group takes a product of its own.
            let assignment: Vec<usize> = groups.iter().copied().chain(std::iter::repeat_n(0, 40)).collect();
            let bytes: Vec<Vec<u8>> = assignment
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    let mut b = vec![0u8; m.width()];
                    pk.encrypt(&Integer::from(i as i64)).unwrap().write_le(&mut b);
                    b
                })
                .collect();
            let values: Vec<(usize, &[u8])> = assignment.iter().zip(&bytes).map(|(g, b)| (*g, b.as_slice())).collect();
            let mut one = vec![Sum::new(); 12];
            for (g, b) in &values {
                one[*g].add_le(m, b).unwrap();
            }
            let mut grouped = vec![Sum::new(); 12];
            Sum::add_grouped_le(&mut grouped, m, &values).unwrap();
            proptest::prop_assert_eq!(grouped, one);
        }
    }

    #[test]
    fn bytes_are_checked_like_integers() {
        let n2 = [0x10u8, 0x00, 0x80];
        assert_eq!(check_le(&[0x0f, 0x00, 0x80], &n2), Ok(()));
        assert_eq!(
            check_le(&[0x10, 0x00, 0x80], &n2),
            Err("it is not below n²")
        );
        assert_eq!(
            check_le(&[0x00, 0x01, 0x80], &n2),
            Err("it is not below n²")
        );
        assert_eq!(check_le(&[0, 0, 0, 0], &n2), Err("it is zero"));
        assert_eq!(check_le(&[1, 0, 0, 1], &n2), Err("it is not below n²"));
        assert_eq!(check_le(&[1, 0, 0, 0], &n2), Ok(()));
    }

    #[test]
    fn ops_agree_with_decryption() {
        let key = hazmat::fixture_key_512();
        let pk = key.public_key();
        let m = pk.modulus();
        let enc = |v: i64| pk.encrypt(&Integer::from(v)).unwrap();
        let dec = |c: &Ciphertext| key.decrypt(c).unwrap();
        let (a, b) = (enc(1234), enc(-34));
        assert_eq!(dec(&m.add(&a, &b)), 1200);
        assert_eq!(dec(&m.add_plain(&a, &Plaintext::scaled(-5, 1))), 1184);
        assert_eq!(
            dec(&m.mul_plain(&a, &Plaintext::scaled(-3, 0)).unwrap()),
            -3702
        );
        assert_eq!(dec(&m.neg(&b).unwrap()), 34);
        assert_eq!(dec(&m.scale(&a, 2)), 123_400);
        let mut sum = Sum::new();
        let mut bytes = vec![0u8; m.width()];
        for v in [5, -7, 100] {
            enc(v).write_le(&mut bytes);
            sum.add_le(m, &bytes).unwrap();
        }
        assert_eq!(dec(&sum.clone().into_ciphertext()), 98);
        assert_eq!(sum.add_le(m, &vec![0u8; m.width()]), Err("it is zero"));
        let mut values: Vec<Ciphertext> = [3, -4, 5].map(enc).into();
        m.invert_batch(&mut values).unwrap();
        let got: Vec<Integer> = values.iter().map(dec).collect();
        assert_eq!(got, [-3, 4, -5]);
        let p = Ciphertext::from_raw(hazmat::primes_of(key).0.clone());
        let mut with_bad = vec![enc(1), p];
        assert_eq!(m.invert_batch(&mut with_bad), Err(1));
    }
}
