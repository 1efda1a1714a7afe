//! The GMP backend (through `rug`): the reference every other backend is tested against.

use rug::Integer;

use super::Backend;

pub(crate) struct Gmp;

impl Backend for Gmp {
    fn mul_assign(&self, acc: &mut Integer, x: &Integer, m: &Integer) {
        *acc *= x;
        *acc %= m;
    }

    fn square_assign(&self, acc: &mut Integer, m: &Integer) {
        acc.square_mut();
        *acc %= m;
    }

    fn pow(&self, x: &Integer, e: &Integer, m: &Integer) -> Integer {
        // A unit and a non-negative exponent: GMP's powm cannot fail.
        x.pow_mod_ref(e, m).map(Integer::from).unwrap_or_default()
    }

    fn invert(&self, x: &Integer, m: &Integer) -> Option<Integer> {
        x.invert_ref(m).map(Integer::from)
    }
}
