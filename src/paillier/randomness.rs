//! Randomness for the crypto: every random integer comes from the operating system's CSPRNG
//! (`getrandom` through `rand::rngs::OsRng`), turned into a GMP integer. GMP's own generators
//! (Mersenne Twister, LCG) are never used.

use rand::rngs::OsRng;
use rand::TryRngCore;
use rug::integer::Order;
use rug::{Complete, Integer};

use crate::error::{Error, Result};

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::Randomness(e.to_string()))
}

/// A uniform integer in [0, 2^bits).
pub(crate) fn random_bits(bits: u32) -> Result<Integer> {
    let bytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; bytes];
    fill(&mut buf)?;
    let extra = (bytes as u32) * 8 - bits;
    if extra > 0 {
        // Order::Lsf: the last byte is the most significant one.
        if let Some(top) = buf.last_mut() {
            *top &= 0xff >> extra;
        }
    }
    let x = Integer::from_digits(&buf, Order::Lsf);
    zeroize::Zeroize::zeroize(&mut buf);
    Ok(x)
}

/// A uniform integer in [0, bound), by rejection sampling (bound > 0).
pub(crate) fn random_below(bound: &Integer) -> Result<Integer> {
    let bits = bound.significant_bits();
    loop {
        let x = random_bits(bits)?;
        if &x < bound {
            return Ok(x);
        }
    }
}

/// A uniform element of Z*_n: in [1, n) and coprime to n.
pub(crate) fn random_unit(n: &Integer) -> Result<Integer> {
    loop {
        let x = random_below(n)?;
        if x != 0 && x.gcd_ref(n).complete() == 1 {
            return Ok(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bits_respects_width_and_varies() {
        for bits in [1u32, 7, 8, 9, 63, 64, 65, 1024] {
            let x = random_bits(bits).unwrap();
            assert!(x.significant_bits() <= bits, "{bits}");
        }
        let a = random_bits(256).unwrap();
        let b = random_bits(256).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn random_below_and_unit_stay_in_range() {
        let n = Integer::from(35);
        for _ in 0..200 {
            let x = random_below(&n).unwrap();
            assert!(x >= 0 && x < n);
            let u = random_unit(&n).unwrap();
            assert!(u > 0 && u < n);
            assert_eq!(u.gcd_ref(&n).complete(), 1);
        }
    }
}
