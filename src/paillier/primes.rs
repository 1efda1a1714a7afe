//! Safe prime generation: p = 2p' + 1 with p and p' both prime, of an exact bit length.
//!
//! Random starts from the OS CSPRNG, a sieve over a window of candidates that removes any p' for
//! which p' or 2p'+1 has a small factor, a base-2 Fermat test on both, then GMP's
//! Baillie–PSW + Miller–Rabin on the survivors. Rayon workers search independent windows and the
//! first safe prime found wins.

use std::sync::atomic::{AtomicBool, Ordering};

use rug::integer::IsPrime;
use rug::Integer;

use super::randomness;
use crate::error::Result;

/// Miller–Rabin rounds on top of GMP's Baillie–PSW for the final test (error < 2^-100 even for
/// adversarial inputs; ours are random).
const MR_REPS: u32 = 50;
/// Candidates p' = start + 2k for k in 0..WINDOW are sieved at once.
const WINDOW: usize = 1 << 16;
/// Small primes used by the sieve.
const SIEVE_LIMIT: u32 = 1 << 16;

/// Trial division of a public modulus goes up to this bound: no prime factor below 2²⁰.
pub(crate) const TRIAL_DIVISION_BOUND: u32 = 1 << 20;

/// The odd primes below `limit`.
fn small_primes(limit: u32) -> Vec<u32> {
    let limit = limit as usize;
    let mut composite = vec![false; limit];
    let mut primes = Vec::new();
    for i in 3..limit {
        if !composite[i] {
            primes.push(i as u32);
            let mut j = i * i;
            while j < limit {
                composite[j] = true;
                j += i;
            }
        }
    }
    primes
}

/// Modular inverse of `a` modulo the odd prime `p` (a not divisible by p).
fn inv_mod(a: u64, p: u64) -> u64 {
    // Fermat: a^(p-2) mod p; p < 2^16 so no overflow in u64.
    let (mut base, mut exp, mut acc) = (a % p, p - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc * base % p;
        }
        base = base * base % p;
        exp >>= 1;
    }
    acc
}

/// A safe prime of exactly `bits` bits whose two top bits are set (so that the product of two
/// such primes has exactly `2·bits` bits). `bits` ≥ 16.
pub(crate) fn safe_prime(bits: u32) -> Result<Integer> {
    assert!(bits >= 16, "safe_prime needs at least 16 bits");
    let primes = small_primes(SIEVE_LIMIT);
    let found = AtomicBool::new(false);
    // Each worker of the pool searches its own random windows until one of them finds a safe
    // prime (or fails, which stops the others too).
    let result = rayon::broadcast(|_| {
        let r = search(bits, &primes, &found);
        if r.is_err() {
            found.store(true, Ordering::SeqCst);
        }
        r
    });
    let mut first_err = None;
    for r in result {
        match r {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(e) => first_err = Some(e),
        }
    }
    // Workers stop without a prime only after one of them failed, so an error is present here.
    Err(first_err.unwrap_or_else(|| {
        crate::error::Error::Randomness("safe prime search stopped without a result".into())
    }))
}

fn search(bits: u32, primes: &[u32], found: &AtomicBool) -> Result<Option<Integer>> {
    let q_bits = bits - 1;
    let two = Integer::from(2);
    while !found.load(Ordering::Relaxed) {
        // Random odd start for p' with its two top bits set.
        let mut start = randomness::random_bits(q_bits)?;
        start.set_bit(q_bits - 1, true);
        start.set_bit(q_bits - 2, true);
        start.set_bit(0, true);
        let mut dead = vec![false; WINDOW];
        // Primes below p'/2 only, so that a candidate is never struck off for equalling one.
        let sieve_bound = 1u64 << (q_bits - 2).min(32);
        for &sp in primes.iter().take_while(|&&sp| (sp as u64) < sieve_bound) {
            let sp = sp as u64;
            let r = start.mod_u(sp as u32) as u64;
            // p' = start + 2k ≡ 0 (mod sp)  ⇔  k ≡ -r · 2⁻¹
            let k1 = (sp - r) % sp * inv_mod(2, sp) % sp;
            // 2p' + 1 = 2·start + 1 + 4k ≡ 0  ⇔  k ≡ -(2r + 1) · 4⁻¹
            let k2 = (sp - (2 * r + 1) % sp) % sp * inv_mod(4, sp) % sp;
            for k0 in [k1, k2] {
                let mut k = k0 as usize;
                while k < WINDOW {
                    dead[k] = true;
                    k += sp as usize;
                }
            }
        }
        for (k, &is_dead) in dead.iter().enumerate() {
            if is_dead {
                continue;
            }
            if k % 256 == 0 && found.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let q = Integer::from(&start + 2 * k as u64);
            if q.significant_bits() != q_bits {
                break;
            }
            // Fermat base 2 on p' then on p = 2p' + 1: cheap filters before the full tests.
            let qm1 = Integer::from(&q - 1u32);
            if two.clone().pow_mod(&qm1, &q).map_or(true, |x| x != 1) {
                continue;
            }
            let p = Integer::from(&q << 1) + 1u32;
            let pm1 = Integer::from(&p - 1u32);
            if two.clone().pow_mod(&pm1, &p).map_or(true, |x| x != 1) {
                continue;
            }
            if q.is_probably_prime(MR_REPS) != IsPrime::No
                && p.is_probably_prime(MR_REPS) != IsPrime::No
                && !found.swap(true, Ordering::SeqCst)
            {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// The smallest prime factor of `n` below [`TRIAL_DIVISION_BOUND`], if any (2 included).
pub(crate) fn small_factor(n: &Integer) -> Option<u32> {
    static PRIMES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    if n.is_even() {
        return Some(2);
    }
    PRIMES
        .get_or_init(|| small_primes(TRIAL_DIVISION_BOUND))
        .iter()
        .copied()
        .find(|&p| n.mod_u(p) == 0 && *n != p)
}

/// True if `n` is (probably) prime: GMP's Baillie–PSW plus Miller–Rabin rounds.
pub(crate) fn is_probably_prime(n: &Integer) -> bool {
    n.is_probably_prime(MR_REPS) != IsPrime::No
}

/// True if `p` is (probably) a safe prime.
pub fn is_safe_prime(p: &Integer) -> bool {
    if *p < 5 || p.is_even() {
        return false;
    }
    let q: Integer = Integer::from(p - 1u32) >> 1;
    p.is_probably_prime(MR_REPS) != IsPrime::No && q.is_probably_prime(MR_REPS) != IsPrime::No
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_primes_have_exact_size_and_are_safe() {
        for bits in [64u32, 128, 256] {
            let p = safe_prime(bits).unwrap();
            assert_eq!(p.significant_bits(), bits);
            assert!(p.get_bit(bits - 2), "second top bit set");
            assert!(is_safe_prime(&p));
        }
    }

    #[test]
    fn small_factors_are_found() {
        assert_eq!(small_factor(&Integer::from(2 * 7919)), Some(2));
        assert_eq!(
            small_factor(&Integer::from(1_048_573u64 * 1_048_573)),
            Some(1_048_573)
        );
        let big = Integer::from(Integer::u_pow_u(2, 127)) - 1u32; // a Mersenne prime
        assert_eq!(small_factor(&(Integer::from(&big * 3u32))), Some(3));
        assert_eq!(small_factor(&Integer::from(&big * &big)), None);
        assert!(is_probably_prime(&big));
    }

    #[test]
    fn known_safe_primes() {
        assert!(is_safe_prime(&Integer::from(23)));
        assert!(is_safe_prime(&Integer::from(47)));
        assert!(!is_safe_prime(&Integer::from(29))); // 14 is not prime
        assert!(!is_safe_prime(&Integer::from(21)));
    }
}
