//! The one place where arithmetic modulo n² on ciphertexts is carried out: every homomorphic
//! operation (`ops`) and every aggregate goes through [`Backend`]. GMP (`gmp.rs`) is the only
//! backend today; a SIMD kernel plugs in here and nowhere else (it will be the one module allowed
//! `unsafe` code).

mod gmp;

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
