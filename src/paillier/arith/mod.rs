//! The one place where arithmetic modulo n² on ciphertexts is carried out: every homomorphic
//! operation (`ops`) and every aggregate goes through [`Backend`] or, for products of many
//! ciphertexts, [`batch_product`]. GMP (`gmp.rs`) is the reference; the AVX-512 IFMA kernel
//! (`ifma.rs`, the crate's one module allowed `unsafe` code) multiplies 8 at a time where the CPU
//! has it (`CIPHERLAKE_ARITH=gmp` forces GMP).

mod gmp;
mod ifma;

/// `$f::<N>(args…)` for the digit count N that fits a modulus of `$bits` bits (one of the
/// sizes the kernel is built for: n of 512 to 3,072 bits and their squares), or None.
macro_rules! by_digits {
    ($bits:expr, $f:ident($($arg:expr),*)) => {
        match ifma::digits_for($bits) {
            0..=10 => $f::<10>($($arg),*),
            11..=20 => $f::<20>($($arg),*),
            21..=40 => $f::<40>($($arg),*),
            41..=60 => $f::<60>($($arg),*),
            61..=79 => $f::<79>($($arg),*),
            80..=119 => $f::<119>($($arg),*),
            _ => None,
        }
    };
}

use rug::Integer;

/// Modular arithmetic on residues mod m (m = n², odd). Operands are reduced (0 ≤ x < m).
pub(crate) trait Backend: Sync {
    /// acc ← acc · x mod m.
    fn mul_assign(&self, acc: &mut Integer, x: &Integer, m: &Integer);
    /// acc ← acc² mod m.
    fn square_assign(&self, acc: &mut Integer, m: &Integer);
    /// x^e mod m for a large public exponent e ≥ 0 (x a unit).
    fn pow(&self, x: &Integer, e: &Integer, m: &Integer) -> Integer;
    /// x⁻¹ mod m, or None when x is not a unit.
    fn invert(&self, x: &Integer, m: &Integer) -> Option<Integer>;
}

/// The backend in use.
pub(crate) fn backend() -> &'static dyn Backend {
    &gmp::Gmp
}

/// A product of many values mod m (units below m, as little-endian bytes) computed 8 at a time
/// by the IFMA kernel.
pub(crate) trait BatchProduct {
    /// Multiplies in one value.
    fn push_le(&mut self, bytes: &[u8]);
    /// The product, reduced mod m (the modulus it was made for).
    fn finish(self: Box<Self>, m: &Integer) -> Integer;
}

impl<const N: usize> BatchProduct for ifma::Product<N> {
    fn push_le(&mut self, bytes: &[u8]) {
        ifma::Product::push_le(self, bytes);
    }

    fn finish(self: Box<Self>, m: &Integer) -> Integer {
        ifma::Product::finish(*self, m)
    }
}

/// Whether the IFMA kernel runs here and fits modulus `m`.
pub(crate) fn kernel_fits(m: &Integer) -> bool {
    // 119 digits: the largest size `by_digits!` dispatches.
    ifma::available() && ifma::digits_for(m.significant_bits()) <= 119
}

/// A product mod `m` through the IFMA kernel, or None where it is not available (no AVX-512
/// IFMA, `CIPHERLAKE_ARITH=gmp`, or a modulus above 6,186 bits).
pub(crate) fn batch_product(m: &Integer) -> Option<Box<dyn BatchProduct>> {
    fn boxed<const N: usize>(m: &Integer) -> Option<Box<dyn BatchProduct>> {
        ifma::Product::<N>::new(m).map(|p| Box::new(p) as Box<dyn BatchProduct>)
    }
    if !ifma::available() {
        return None;
    }
    by_digits!(m.significant_bits(), boxed(m))
}

/// The products mod `m` of many short runs of values (the groups of a GROUP BY within one
/// batch), side by side in the IFMA kernel's lanes; None where it is not available or does not
/// fit m.
pub(crate) fn run_products(m: &Integer, runs: &[&[&[u8]]]) -> Option<Vec<Integer>> {
    fn run<const N: usize>(m: &Integer, runs: &[&[&[u8]]]) -> Option<Vec<Integer>> {
        ifma::run_products::<N>(m, runs)
    }
    if !ifma::available() {
        return None;
    }
    by_digits!(m.significant_bits(), run(m, runs))
}

/// Fixed-base powers of 8 exponents at a time (DJN encryption).
pub(crate) trait FixedBasePow8: Send + Sync {
    /// base^e mod m for each exponent (little-endian bytes).
    fn pow8(&self, exps: [&[u8]; 8]) -> [Integer; 8];
}

impl<const N: usize> FixedBasePow8 for ifma::FixedBase<N> {
    fn pow8(&self, exps: [&[u8]; 8]) -> [Integer; 8] {
        ifma::FixedBase::pow8(self, exps)
    }
}

/// The IFMA form of a fixed-base table (`rows[i][d − 1]` = base^(d·256^i) mod m), where the
/// kernel is available and fits m.
pub(crate) fn fixed_base_pow8(
    rows: &[Vec<Integer>],
    m: &Integer,
) -> Option<Box<dyn FixedBasePow8>> {
    fn boxed<const N: usize>(rows: &[Vec<Integer>], m: &Integer) -> Option<Box<dyn FixedBasePow8>> {
        ifma::FixedBase::<N>::new(rows, m).map(|t| Box::new(t) as Box<dyn FixedBasePow8>)
    }
    if !ifma::available() {
        return None;
    }
    by_digits!(m.significant_bits(), boxed(rows, m))
}

/// Constant-time exponentiation of 8 bases to 8 secret exponents, each lane modulo its own m.
pub(crate) trait Pow8: Send + Sync {
    /// base_l^exp_l mod m_l; exponents below 2^exp_bits.
    fn pow8(&self, bases: [&Integer; 8], exps: [&Integer; 8], exp_bits: u32) -> [Integer; 8];
}

impl<const N: usize> Pow8 for ifma::Powers<N> {
    fn pow8(&self, bases: [&Integer; 8], exps: [&Integer; 8], exp_bits: u32) -> [Integer; 8] {
        self.pow(bases, exps, exp_bits)
    }
}

/// The IFMA kernel's constant-time exponentiation for these 8 moduli, where it is available
/// and fits them.
pub(crate) fn powers(moduli: [&Integer; 8]) -> Option<Box<dyn Pow8>> {
    fn boxed<const N: usize>(moduli: [&Integer; 8]) -> Option<Box<dyn Pow8>> {
        ifma::Powers::<N>::new(moduli).map(|p| Box::new(p) as Box<dyn Pow8>)
    }
    if !ifma::available() {
        return None;
    }
    let bits = moduli
        .iter()
        .map(|m| m.significant_bits())
        .max()
        .unwrap_or(0);
    by_digits!(bits, boxed(moduli))
}

/// The arithmetic in use for products of many ciphertexts: "AVX-512 IFMA" or "GMP".
pub fn kernel() -> &'static str {
    if ifma::available() {
        "AVX-512 IFMA (8 lanes, radix 2^52)"
    } else {
        "GMP"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rug::integer::Order;

    /// Every size the dispatcher picks (n of 512, 1024, 2048 and 3072 bits: n² of 1,024 to
    /// 6,144 bits) gives GMP's product, when the kernel runs here.
    #[test]
    fn batch_products_match_gmp_at_every_size() {
        let mut s = rug::rand::RandState::new();
        for bits in [1024u32, 2048, 4096, 6144] {
            let m = Integer::from(Integer::random_bits(bits, &mut s))
                | Integer::from(1)
                | (Integer::from(1) << (bits - 1));
            let Some(mut p) = batch_product(&m) else {
                assert!(!ifma::available() || bits > 6186);
                continue;
            };
            let mut want = Integer::from(1);
            for _ in 0..37 {
                let x = Integer::from(Integer::random_bits(bits, &mut s)) % &m;
                p.push_le(&x.to_digits::<u8>(Order::Lsf));
                backend().mul_assign(&mut want, &x, &m);
            }
            assert_eq!(p.finish(&m), want, "{bits} bits");
        }
    }
}
