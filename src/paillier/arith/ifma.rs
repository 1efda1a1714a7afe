//! AVX-512 IFMA multi-buffer almost-Montgomery multiplication (AMM): one call multiplies 8
//! independent pairs, each modulo its own odd modulus (a lane), numbers in radix 2⁵² with `N`
//! digits, digit-major (one zmm register holds one digit of the 8 numbers). With R = 2^(52·N)
//! and 4m < R, inputs below 2m give an output below 2m congruent to a·b·R⁻¹ (no final
//! subtraction), so products chain. `vpmadd52luq/huq` add the low and high 52 bits of 52×52-bit
//! products into 64-bit lanes, whose 12 spare bits absorb the carries of a whole row.
//!
//! This is the crate's only `unsafe` code: the intrinsics, called only after runtime detection
//! ([`available`]); `CIPHERLAKE_ARITH=gmp` forces the GMP path. Everything here is tested bit for
//! bit against GMP (tests below; `../shared/FASTARITH.md` §4 has the algorithm's facts).

#![allow(unsafe_code)]

use std::sync::OnceLock;

use rug::integer::Order;
use rug::Integer;

/// Numbers per call.
pub(crate) const LANES: usize = 8;
/// The most digits the kernel's accumulator holds (3072-bit n: n² of 6,144 bits needs 119).
pub(crate) const MAX_DIGITS: usize = 120;
const MASK: u64 = (1 << 52) - 1;

/// Whether the kernel can run here: the CPU has AVX-512 F and IFMA, and `CIPHERLAKE_ARITH` is
/// not `gmp`. Decided once per process.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("CIPHERLAKE_ARITH").is_ok_and(|v| v == "gmp") {
            return false;
        }
        detected()
    })
}

#[cfg(target_arch = "x86_64")]
fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

#[cfg(not(target_arch = "x86_64"))]
fn detected() -> bool {
    false
}

/// The digits a modulus of `bits` bits needs so that 4m < R: ⌈(bits + 2) / 52⌉.
pub(crate) fn digits_for(bits: u32) -> usize {
    (bits as usize + 2).div_ceil(52)
}

/// 8 numbers of `N` radix-2⁵² digits, digit-major: `self.0[j][l]` is digit j of lane l.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Lanes<const N: usize>(pub(crate) [[u64; LANES]; N]);

impl<const N: usize> Lanes<N> {
    /// Every lane 0.
    pub(crate) fn zero() -> Self {
        Lanes([[0; LANES]; N])
    }

    /// Every lane `x`.
    pub(crate) fn splat(x: &Integer) -> Self {
        let mut l = Self::zero();
        for lane in 0..LANES {
            l.set(lane, x);
        }
        l
    }

    /// Lane `lane` ← the little-endian integer in `bytes` (below 2^(52·N)).
    pub(crate) fn set_le_bytes(&mut self, lane: usize, bytes: &[u8]) {
        for j in 0..N {
            // Digit j is bits 52j .. 52j + 52: byte 6.5·j, shifted by 0 or 4.
            let (at, shift) = ((52 * j) / 8, (52 * j) % 8);
            let mut word = [0u8; 8];
            if at < bytes.len() {
                let end = (at + 8).min(bytes.len());
                word[..end - at].copy_from_slice(&bytes[at..end]);
            }
            self.0[j][lane] = (u64::from_le_bytes(word) >> shift) & MASK;
        }
    }

    /// Lane `lane` ← `x` (0 ≤ x < 2^(52·N)).
    pub(crate) fn set(&mut self, lane: usize, x: &Integer) {
        for (j, d) in digits_of::<N>(x).into_iter().enumerate() {
            self.0[j][lane] = d;
        }
    }

    /// Lane `lane` as an integer.
    pub(crate) fn get(&self, lane: usize) -> Integer {
        let mut bytes = vec![0u8; (52 * N).div_ceil(8) + 8];
        for j in 0..N {
            let (at, shift) = ((52 * j) / 8, (52 * j) % 8);
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            let v = u64::from_le_bytes(word) | (self.0[j][lane] << shift);
            bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        Integer::from_digits(&bytes, Order::Lsf)
    }
}

/// The N radix-2⁵² digits of `x` (0 ≤ x < 2^(52·N)), from its 64-bit limbs.
fn digits_of<const N: usize>(x: &Integer) -> [u64; N] {
    let limbs = x.as_limbs();
    let limb = |k: usize| limbs.get(k).copied().unwrap_or(0);
    std::array::from_fn(|j| {
        let (k, shift) = ((52 * j) / 64, (52 * j) % 64);
        let mut d = limb(k) >> shift;
        if shift > 12 {
            d |= limb(k + 1) << (64 - shift);
        }
        d & MASK
    })
}

/// The moduli of the 8 lanes and their Montgomery constants.
#[derive(Clone, Debug)]
pub(crate) struct Ctx<const N: usize> {
    m: Lanes<N>,
    /// −m⁻¹ mod 2⁵², per lane.
    k0: [u64; LANES],
}

impl<const N: usize> Ctx<N> {
    /// The context for `moduli` (each odd, 4m < 2^(52·N)), or None.
    pub(crate) fn new(moduli: [&Integer; LANES]) -> Option<Self> {
        if N > MAX_DIGITS {
            return None;
        }
        let mut m = Lanes::zero();
        let mut k0 = [0; LANES];
        for (lane, modulus) in moduli.iter().enumerate() {
            if modulus.is_even()
                || **modulus <= 1
                || modulus.significant_bits() as usize + 2 > 52 * N
            {
                return None;
            }
            m.set(lane, modulus);
            // m⁻¹ mod 2⁶⁴ by Newton's iteration (each step doubles the correct low bits: 3 → 96).
            let low = modulus.to_u64_wrapping();
            let mut inv = low;
            for _ in 0..5 {
                inv = inv.wrapping_mul(2u64.wrapping_sub(low.wrapping_mul(inv)));
            }
            k0[lane] = inv.wrapping_neg() & MASK;
        }
        Some(Ctx { m, k0 })
    }

    /// The context of one modulus in every lane.
    pub(crate) fn uniform(modulus: &Integer) -> Option<Self> {
        Self::new([modulus; LANES])
    }

    /// R^k mod `modulus`, where R = 2^(52·N).
    pub(crate) fn r_power(&self, modulus: &Integer, k: u64) -> Integer {
        // 2^(52·N·k) mod m; a non-negative exponent and an odd modulus: pow_mod cannot fail.
        let e = Integer::from(52 * N as u64) * k;
        Integer::from(2)
            .pow_mod(&e, modulus)
            .unwrap_or_else(|_| Integer::from(1))
    }

    /// out ← a·b·R⁻¹ (mod each lane's m), below 2m when a and b are.
    pub(crate) fn mul(&self, a: &Lanes<N>, b: &Lanes<N>, out: &mut Lanes<N>) {
        assert!(
            available(),
            "the IFMA kernel was called without AVX-512 IFMA"
        );
        kernel(a, b, self, out);
    }
}

#[cfg(target_arch = "x86_64")]
fn kernel<const N: usize>(a: &Lanes<N>, b: &Lanes<N>, ctx: &Ctx<N>, out: &mut Lanes<N>) {
    // SAFETY: callers checked `available()`: the CPU has AVX-512 F and IFMA, the only features
    // `amm` is compiled for. Its memory accesses are unaligned loads and stores of 8 u64 within
    // the arrays of `Lanes` (rows of exactly 8), and indices of `acc` below 2·N + 1 ≤
    // 2·MAX_DIGITS + 1 (N ≤ MAX_DIGITS, checked by `Ctx::new`).
    unsafe { amm::<N>(a, b, ctx, out) }
}

#[cfg(not(target_arch = "x86_64"))]
fn kernel<const N: usize>(_: &Lanes<N>, _: &Lanes<N>, _: &Ctx<N>, _: &mut Lanes<N>) {
    // `available()` is false off x86-64: `mul` asserted it before coming here.
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512ifma")]
#[allow(clippy::needless_range_loop)]
unsafe fn amm<const N: usize>(a: &Lanes<N>, b: &Lanes<N>, ctx: &Ctx<N>, out: &mut Lanes<N>) {
    use std::arch::x86_64::*;

    let zero = _mm512_setzero_si512();
    let mask = _mm512_set1_epi64(MASK as i64);
    let k0 = _mm512_loadu_si512(ctx.k0.as_ptr().cast());
    let mut acc = [zero; 2 * MAX_DIGITS + 1];
    for i in 0..N {
        let bi = _mm512_loadu_si512(b.0[i].as_ptr().cast());
        let a0 = _mm512_loadu_si512(a.0[0].as_ptr().cast());
        let m0 = _mm512_loadu_si512(ctx.m.0[0].as_ptr().cast());
        let mut t = _mm512_madd52lo_epu64(acc[i], a0, bi);
        // q = t·k0 mod 2⁵² (only the low 52 bits of t enter the product), so that t + m0·q
        // ≡ 0 mod 2⁵².
        let q = _mm512_madd52lo_epu64(zero, t, k0);
        t = _mm512_madd52lo_epu64(t, m0, q);
        let mut next = _mm512_madd52hi_epu64(acc[i + 1], a0, bi);
        next = _mm512_madd52hi_epu64(next, m0, q);
        acc[i + 1] = _mm512_add_epi64(next, _mm512_srli_epi64(t, 52));
        for j in 1..N {
            let aj = _mm512_loadu_si512(a.0[j].as_ptr().cast());
            let mj = _mm512_loadu_si512(ctx.m.0[j].as_ptr().cast());
            let mut lo = _mm512_madd52lo_epu64(acc[i + j], aj, bi);
            lo = _mm512_madd52lo_epu64(lo, mj, q);
            acc[i + j] = lo;
            let mut hi = _mm512_madd52hi_epu64(acc[i + j + 1], aj, bi);
            hi = _mm512_madd52hi_epu64(hi, mj, q);
            acc[i + j + 1] = hi;
        }
    }
    // acc[N..2N] is (a·b + q·m)/R with digits above 52 bits: carry them up.
    let mut carry = zero;
    for j in 0..N {
        let d = _mm512_add_epi64(acc[N + j], carry);
        carry = _mm512_srli_epi64(d, 52);
        _mm512_storeu_si512(out.0[j].as_mut_ptr().cast(), _mm512_and_si512(d, mask));
    }
}

/// The product mod `m` of many ciphertexts (little-endian bytes, each already checked to be a
/// unit below `m`), 8 at a time through the kernel: each lane accumulates a·c·R⁻¹, and the
/// fold multiplies the lanes and the leftover values with GMP and restores R^k.
pub(crate) struct Product<const N: usize> {
    ctx: Ctx<N>,
    acc: Lanes<N>,
    spare: Lanes<N>,
    pending: Lanes<N>,
    filled: usize,
    /// Values multiplied in through the kernel (each contributes one R⁻¹).
    through: u64,
}

impl<const N: usize> Product<N> {
    /// An empty product mod `m` (None when the kernel does not fit `m`).
    pub(crate) fn new(m: &Integer) -> Option<Self> {
        Some(Product {
            ctx: Ctx::uniform(m)?,
            acc: Lanes::splat(&Integer::from(1)),
            spare: Lanes::zero(),
            pending: Lanes::zero(),
            filled: 0,
            through: 0,
        })
    }

    /// Multiplies in the value in `bytes`.
    pub(crate) fn push_le(&mut self, bytes: &[u8]) {
        self.pending.set_le_bytes(self.filled, bytes);
        self.filled += 1;
        if self.filled == LANES {
            self.ctx.mul(&self.acc, &self.pending, &mut self.spare);
            std::mem::swap(&mut self.acc, &mut self.spare);
            self.filled = 0;
            self.through += LANES as u64;
        }
    }

    /// The product, fully reduced mod `m` (the modulus given to `new`).
    pub(crate) fn finish(self, m: &Integer) -> Integer {
        let mut p = self.ctx.r_power(m, self.through);
        for lane in 0..LANES {
            p *= self.acc.get(lane);
            p %= m;
        }
        for lane in 0..self.filled {
            p *= self.pending.get(lane);
            p %= m;
        }
        p
    }
}

/// The products mod `m` of many short runs of values (each value a unit below m, as
/// little-endian bytes): 8 runs side by side, one per lane, each lane taking the next run as
/// soon as its own ends. A run of k values gathers R⁻ᵏ, undone with a cached R^k. For the
/// groups of a GROUP BY, whose values in one batch are too few for a [`Product`] of their own.
pub(crate) fn run_products<const N: usize>(m: &Integer, runs: &[&[&[u8]]]) -> Option<Vec<Integer>> {
    let ctx = Ctx::<N>::uniform(m)?;
    let one = Integer::from(1);
    let r = ctx.r_power(m, 1);
    let mut r_pow = vec![one.clone()];
    let mut out = vec![Integer::new(); runs.len()];
    let (mut acc, mut x, mut spare) = (Lanes::<N>::zero(), Lanes::<N>::zero(), Lanes::<N>::zero());
    // Per lane: (run, next value's position in it).
    let mut cur: [Option<(usize, usize)>; LANES] = [None; LANES];
    let mut next = 0;
    loop {
        for (lane, slot) in cur.iter_mut().enumerate() {
            while slot.is_none() && next < runs.len() {
                if runs[next].is_empty() {
                    out[next] = one.clone();
                } else {
                    *slot = Some((next, 0));
                    acc.set(lane, &one);
                }
                next += 1;
            }
        }
        if cur.iter().all(Option::is_none) {
            return Some(out);
        }
        for (lane, slot) in cur.iter().enumerate() {
            match slot {
                Some((run, pos)) => x.set_le_bytes(lane, runs[*run][*pos]),
                None => x.set(lane, &one),
            }
        }
        ctx.mul(&acc, &x, &mut spare);
        std::mem::swap(&mut acc, &mut spare);
        for (lane, slot) in cur.iter_mut().enumerate() {
            let Some((run, pos)) = slot else { continue };
            *pos += 1;
            if *pos == runs[*run].len() {
                let k = *pos;
                while r_pow.len() <= k {
                    let p = Integer::from(&r_pow[r_pow.len() - 1] * &r) % m;
                    r_pow.push(p);
                }
                out[*run] = acc.get(lane) * &r_pow[k] % m;
                *slot = None;
            }
        }
    }
}

/// Exponentiation of 8 bases to 8 secret exponents at a time, each lane modulo its own m, in
/// constant time: a fixed 4-bit window, every window squaring 4 times and multiplying once, the
/// table entry chosen by a masked scan of all 16 (no memory access or branch depends on an
/// exponent), in the Montgomery domain throughout.
pub(crate) struct Powers<const N: usize> {
    ctx: Ctx<N>,
    /// R² mod m per lane (into the Montgomery domain).
    r2: Lanes<N>,
    /// R mod m per lane (the Montgomery form of 1).
    one: Lanes<N>,
    moduli: [Integer; LANES],
}

impl<const N: usize> Powers<N> {
    /// For `moduli` (odd, 4m < R), or None.
    pub(crate) fn new(moduli: [&Integer; LANES]) -> Option<Self> {
        let ctx = Ctx::new(moduli)?;
        let (mut r2, mut one) = (Lanes::zero(), Lanes::zero());
        for (lane, m) in moduli.iter().enumerate() {
            r2.set(lane, &ctx.r_power(m, 2));
            one.set(lane, &ctx.r_power(m, 1));
        }
        Some(Powers {
            ctx,
            r2,
            one,
            moduli: moduli.map(Clone::clone),
        })
    }

    /// base_l^exp_l mod m_l for every lane; bases below m_l, exponents below 2^exp_bits (the
    /// same number of windows for every lane, whatever its exponent).
    pub(crate) fn pow(
        &self,
        bases: [&Integer; LANES],
        exps: [&Integer; LANES],
        exp_bits: u32,
    ) -> [Integer; LANES] {
        let mut b = Lanes::<N>::zero();
        for (lane, x) in bases.iter().enumerate() {
            b.set(lane, x);
        }
        let mut t = vec![self.one.clone(), Lanes::zero()];
        self.ctx.mul(&b, &self.r2, &mut t[1]);
        for k in 2..16 {
            let mut next = Lanes::zero();
            self.ctx.mul(&t[k - 1], &t[1], &mut next);
            t.push(next);
        }
        let windows = exp_bits.div_ceil(4) as usize;
        let mut exp_bytes: Vec<Vec<u8>> =
            exps.iter().map(|e| e.to_digits::<u8>(Order::Lsf)).collect();
        let nibble = |lane: usize, w: usize| -> u64 {
            let byte = exp_bytes[lane].get(w / 2).copied().unwrap_or(0);
            u64::from(if w.is_multiple_of(2) {
                byte & 15
            } else {
                byte >> 4
            })
        };
        let (mut acc, mut spare, mut x) = (self.one.clone(), Lanes::zero(), Lanes::zero());
        for w in (0..windows).rev() {
            for _ in 0..4 {
                self.ctx.mul(&acc, &acc, &mut spare);
                std::mem::swap(&mut acc, &mut spare);
            }
            let d: [u64; LANES] = std::array::from_fn(|lane| nibble(lane, w));
            select(&t, &d, &mut x);
            self.ctx.mul(&acc, &x, &mut spare);
            std::mem::swap(&mut acc, &mut spare);
        }
        // Out of the Montgomery domain: acc·1·R⁻¹, at most m.
        let mut plain_one = Lanes::<N>::zero();
        for lane in 0..LANES {
            plain_one.0[0][lane] = 1;
        }
        self.ctx.mul(&acc, &plain_one, &mut spare);
        // The exponents are secret: their bytes are wiped (best effort).
        zeroize::Zeroize::zeroize(&mut exp_bytes);
        std::array::from_fn(|lane| spare.get(lane) % &self.moduli[lane])
    }
}

impl<const N: usize> Drop for Powers<N> {
    fn drop(&mut self) {
        // The moduli may be secret (p², q²): wiped, best effort.
        use zeroize::Zeroize;
        for l in [&mut self.ctx.m, &mut self.r2, &mut self.one] {
            l.0.zeroize();
        }
        self.ctx.k0.zeroize();
        for m in &mut self.moduli {
            crate::paillier::keys::wipe(m);
        }
    }
}

/// x ← t[d_l] in every lane l, reading every entry of `t` (masks, no index by d); compiled for
/// AVX-512 where the kernel runs (8 lanes: one zmm per digit), plain elsewhere.
fn select<const N: usize>(t: &[Lanes<N>], d: &[u64; LANES], x: &mut Lanes<N>) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: `available()` checked that the CPU has AVX-512 F, the only feature
        // `select_avx512` is compiled for; it is safe Rust otherwise.
        unsafe { select_avx512(t, d, x) };
        return;
    }
    select_plain(t, d, x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn select_avx512<const N: usize>(t: &[Lanes<N>], d: &[u64; LANES], x: &mut Lanes<N>) {
    select_plain(t, d, x);
}

#[inline(always)]
fn select_plain<const N: usize>(t: &[Lanes<N>], d: &[u64; LANES], x: &mut Lanes<N>) {
    for xj in x.0.iter_mut() {
        *xj = [0; LANES];
    }
    for (k, entry) in t.iter().enumerate() {
        // All ones where d_l = k: computed without a branch.
        let masks: [u64; LANES] =
            std::array::from_fn(|lane| ((d[lane] ^ k as u64).wrapping_sub(1) >> 63).wrapping_neg());
        for (xj, ej) in x.0.iter_mut().zip(&entry.0) {
            for ((x, e), m) in xj.iter_mut().zip(ej).zip(&masks) {
                *x |= e & m;
            }
        }
    }
}

/// Fixed-base exponentiation of 8 exponents at a time (DJN encryption's hs^a): the table of
/// base^(d·256^i) in digits, one window of every lane per kernel call. Every window multiplies
/// (by 1 for a zero digit), so each lane gathers R⁻¹ once per window, undone at the end.
pub(crate) struct FixedBase<const N: usize> {
    ctx: Ctx<N>,
    /// entries[i·256 + d] = base^(d·256^i) mod m (d = 0: 1), in digits.
    entries: Vec<[u64; N]>,
    windows: usize,
    /// R^windows mod m.
    fix: Integer,
    modulus: Integer,
}

impl<const N: usize> FixedBase<N> {
    /// From the rows of a GMP table (`rows[i][d − 1]` = base^(d·256^i)), or None when the
    /// kernel does not fit `modulus`.
    pub(crate) fn new(rows: &[Vec<Integer>], modulus: &Integer) -> Option<Self> {
        let ctx = Ctx::uniform(modulus)?;
        let digits = digits_of::<N>;
        let one = digits(&Integer::from(1));
        let mut entries = Vec::with_capacity(rows.len() * 256);
        for row in rows {
            entries.push(one);
            entries.extend(row.iter().map(digits));
            entries.resize(entries.len().next_multiple_of(256), one);
        }
        let windows = rows.len();
        Some(FixedBase {
            fix: ctx.r_power(modulus, windows as u64),
            ctx,
            entries,
            windows,
            modulus: modulus.clone(),
        })
    }

    /// base^e mod m for each of 8 exponents, given as little-endian bytes (at most `windows`).
    pub(crate) fn pow8(&self, exps: [&[u8]; LANES]) -> [Integer; LANES] {
        let mut acc = Lanes::<N>::splat(&Integer::from(1));
        let (mut x, mut spare) = (Lanes::<N>::zero(), Lanes::<N>::zero());
        for i in 0..self.windows {
            for (lane, e) in exps.iter().enumerate() {
                let d = e.get(i).copied().unwrap_or(0) as usize;
                let entry = &self.entries[i * 256 + d];
                for (j, digit) in entry.iter().enumerate() {
                    x.0[j][lane] = *digit;
                }
            }
            self.ctx.mul(&acc, &x, &mut spare);
            std::mem::swap(&mut acc, &mut spare);
        }
        std::array::from_fn(|lane| acc.get(lane) * &self.fix % &self.modulus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn random(bits: u32, seed: &mut rug::rand::RandState<'_>) -> Integer {
        Integer::from(Integer::random_bits(bits, seed))
    }

    /// One lane-mulmod against GMP: a·b·R⁻¹ ≡ out (mod m), out < 2m.
    fn check<const N: usize>(ms: [&Integer; LANES], a: [&Integer; LANES], b: [&Integer; LANES]) {
        let ctx = Ctx::<N>::new(ms).unwrap();
        let (mut la, mut lb, mut out) = (Lanes::<N>::zero(), Lanes::<N>::zero(), Lanes::zero());
        for l in 0..LANES {
            la.set(l, a[l]);
            lb.set(l, b[l]);
        }
        ctx.mul(&la, &lb, &mut out);
        for l in 0..LANES {
            let m = ms[l];
            let got = out.get(l);
            assert!(got < Integer::from(m * 2u32), "lane {l}: not below 2m");
            let r = Integer::from(1) << (52 * N as u32);
            let want = Integer::from(a[l] * b[l]) * r.invert(m).unwrap() % m;
            assert_eq!(Integer::from(&got % m), want, "lane {l}");
        }
    }

    #[test]
    fn digits_round_trip_and_fit() {
        let mut s = rug::rand::RandState::new();
        for bits in [1u32, 51, 52, 53, 1000, 4095, 4096] {
            let x = random(bits, &mut s);
            let mut l = Lanes::<80>::zero();
            l.set(3, &x);
            assert_eq!(l.get(3), x);
            let mut by = Lanes::<80>::zero();
            by.set_le_bytes(5, &x.to_digits::<u8>(Order::Lsf));
            assert_eq!(by.get(5), x);
        }
        assert_eq!(digits_for(4096), 79);
        assert_eq!(digits_for(2048), 40);
        assert_eq!(digits_for(6144), 119);
        assert!(Ctx::<80>::uniform(&(Integer::from(1) << 4158u32).next_prime()).is_none());
        assert!(Ctx::<80>::uniform(&Integer::from(10)).is_none());
    }

    #[test]
    fn edge_values_match_gmp() {
        if !available() {
            return;
        }
        let mut s = rug::rand::RandState::new();
        let m = (random(4096, &mut s) | Integer::from(1)) | (Integer::from(1) << 4095u32);
        let r = Integer::from(1) << (52 * 80u32);
        // 0, 1, m − 1, 2m − 1 (an AMM output may be that large), R⁻¹-ish and all-ones digits.
        let all_ones = (Integer::from(1) << 4096u32) - 1u32;
        let vals = [
            Integer::new(),
            Integer::from(1),
            Integer::from(&m - 1u32),
            Integer::from(&m * 2u32) - 1u32,
            Integer::from(&r / 4u32) % &m,
            Integer::from(&all_ones % &m),
            random(4000, &mut s),
            random(4096, &mut s) % &m,
        ];
        let v: Vec<&Integer> = vals.iter().collect();
        let ms = [&m; LANES];
        check::<80>(
            ms,
            v.clone().try_into().unwrap(),
            v.clone().try_into().unwrap(),
        );
        let mut rev = v.clone();
        rev.reverse();
        check::<80>(ms, v.try_into().unwrap(), rev.try_into().unwrap());
    }

    #[test]
    fn run_products_match_gmp() {
        if !available() {
            return;
        }
        let mut s = rug::rand::RandState::new();
        let m = random(2048, &mut s) | Integer::from(1) | (Integer::from(1) << 2047u32);
        // Runs of 0 to 40 values, more runs than lanes.
        let values: Vec<Vec<Vec<u8>>> = (0..23)
            .map(|i| {
                (0..(i * 7) % 41)
                    .map(|_| (random(2048, &mut s) % &m).to_digits::<u8>(Order::Lsf))
                    .collect()
            })
            .collect();
        let slices: Vec<Vec<&[u8]>> = values
            .iter()
            .map(|r| r.iter().map(Vec::as_slice).collect())
            .collect();
        let runs: Vec<&[&[u8]]> = slices.iter().map(Vec::as_slice).collect();
        let got = run_products::<40>(&m, &runs).unwrap();
        for (run, p) in values.iter().zip(&got) {
            let mut want = Integer::from(1);
            for v in run {
                want = want * Integer::from_digits(v, Order::Lsf) % &m;
            }
            assert_eq!(*p, want);
        }
    }

    #[test]
    fn constant_time_powers_match_gmp() {
        if !available() {
            return;
        }
        let mut s = rug::rand::RandState::new();
        // Lanes alternating between two moduli (as CRT decryption uses p² and q²).
        let ms: Vec<Integer> = (0..2)
            .map(|_| random(2048, &mut s) | Integer::from(1) | (Integer::from(1) << 2047u32))
            .collect();
        let moduli: [&Integer; LANES] = std::array::from_fn(|l| &ms[l % 2]);
        let p = Powers::<40>::new(moduli).unwrap();
        let bases: Vec<Integer> = (0..LANES)
            .map(|l| match l {
                0 => Integer::from(1),
                1 => Integer::from(moduli[1] - 1u32),
                _ => random(2048, &mut s) % moduli[l],
            })
            .collect();
        let exps: Vec<Integer> = (0..LANES)
            .map(|l| match l {
                2 => Integer::new(),
                3 => Integer::from(1),
                4 => (Integer::from(1) << 1024u32) - 1u32,
                _ => random(1024, &mut s),
            })
            .collect();
        let got = p.pow(
            std::array::from_fn(|l| &bases[l]),
            std::array::from_fn(|l| &exps[l]),
            1024,
        );
        for l in 0..LANES {
            let want = Integer::from(bases[l].pow_mod_ref(&exps[l], moduli[l]).unwrap());
            assert_eq!(got[l], want, "lane {l}");
        }
        let mut x = Lanes::<4>::zero();
        let t: Vec<Lanes<4>> = (0..16)
            .map(|k| {
                let mut l = Lanes::<4>::zero();
                for lane in 0..LANES {
                    l.0[2][lane] = 100 + k;
                }
                l
            })
            .collect();
        select(&t, &[0, 1, 2, 3, 15, 14, 7, 8], &mut x);
        assert_eq!(x.0[2], [100, 101, 102, 103, 115, 114, 107, 108]);
    }

    #[test]
    fn fixed_base_powers_match_gmp() {
        if !available() {
            return;
        }
        let mut s = rug::rand::RandState::new();
        let m = random(1024, &mut s) | Integer::from(1) | (Integer::from(1) << 1023u32);
        let base = random(1000, &mut s);
        let table = crate::paillier::fixed_base::FixedBaseTable::new(&base, &m, 256);
        let fb = FixedBase::<20>::new(table.rows(), &m).unwrap();
        let exps: Vec<Integer> = (0..LANES)
            .map(|l| match l {
                0 => Integer::new(),
                1 => (Integer::from(1) << 256u32) - 1u32,
                _ => random(256, &mut s),
            })
            .collect();
        let bytes: Vec<Vec<u8>> = exps.iter().map(|e| e.to_digits::<u8>(Order::Lsf)).collect();
        let got = fb.pow8(std::array::from_fn(|l| bytes[l].as_slice()));
        for (l, e) in exps.iter().enumerate() {
            assert_eq!(
                got[l],
                Integer::from(base.pow_mod_ref(e, &m).unwrap()),
                "lane {l}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every lane its own random modulus and operands, at 2048 and 4096 bits.
        #[test]
        fn lanes_with_different_moduli_match_gmp(seed in any::<u64>(), wide in any::<bool>()) {
            if !available() {
                return Ok(());
            }
            let mut s = rug::rand::RandState::new();
            s.seed(&Integer::from(seed));
            let bits = if wide { 4096 } else { 2048 };
            let ms: Vec<Integer> = (0..LANES)
                .map(|_| random(bits, &mut s) | Integer::from(1) | (Integer::from(1) << (bits - 1)))
                .collect();
            let a: Vec<Integer> = ms.iter().map(|m| random(bits + 1, &mut s) % Integer::from(m * 2u32)).collect();
            let b: Vec<Integer> = ms.iter().map(|m| random(bits + 1, &mut s) % Integer::from(m * 2u32)).collect();
            let ms: [&Integer; LANES] = std::array::from_fn(|i| &ms[i]);
            let a: [&Integer; LANES] = std::array::from_fn(|i| &a[i]);
            let b: [&Integer; LANES] = std::array::from_fn(|i| &b[i]);
            if wide {
                check::<80>(ms, a, b);
            } else {
                check::<40>(ms, a, b);
            }
        }

        /// A product of many values through the kernel equals GMP's, whatever the count.
        #[test]
        fn products_match_gmp(seed in any::<u64>(), count in 0usize..40) {
            if !available() {
                return Ok(());
            }
            let mut s = rug::rand::RandState::new();
            s.seed(&Integer::from(seed));
            let m = random(4096, &mut s) | Integer::from(1) | (Integer::from(1) << 4095u32);
            let mut p = Product::<80>::new(&m).unwrap();
            let mut want = Integer::from(1);
            for _ in 0..count {
                let x = random(4096, &mut s) % &m;
                p.push_le(&x.to_digits::<u8>(Order::Lsf));
                want = want * &x % &m;
            }
            prop_assert_eq!(p.finish(&m), want);
        }
    }
}
