//! Fixed-base exponentiation with 8-bit windows: for a base b used for every encryption
//! (the DJN `hs`), precompute b^(j·256^i) for every window i and digit j, so that b^a costs one
//! modular multiplication per non-zero byte of `a` instead of a full square-and-multiply.
//! At |n| = 2048 the table holds 128 × 255 residues mod n² (~16 MiB) and is built once per key.

use rayon::prelude::*;
use rug::integer::Order;
use rug::Integer;

pub(crate) struct FixedBaseTable {
    /// rows[i][j - 1] = base^(j · 256^i) mod modulus, for j in 1..=255.
    rows: Vec<Vec<Integer>>,
    modulus: Integer,
    /// The same table for the IFMA kernel (8 exponents at a time), where the CPU has it; built
    /// on the first batch, so that single encryptions never pay for it.
    lanes: std::sync::OnceLock<Option<Box<dyn super::arith::FixedBasePow8>>>,
}

impl FixedBaseTable {
    /// A table for exponents of at most `exp_bits` bits.
    pub(crate) fn new(base: &Integer, modulus: &Integer, exp_bits: u32) -> Self {
        let windows = exp_bits.div_ceil(8) as usize;
        // base^(256^i) for each window: eight squarings apart, a sequential chain.
        let mut starts = Vec::with_capacity(windows);
        let mut b = Integer::from(base % modulus);
        for _ in 0..windows {
            starts.push(b.clone());
            for _ in 0..8 {
                b.square_mut();
                b %= modulus;
            }
        }
        let row = |start: Integer| {
            let mut row = Vec::with_capacity(255);
            let mut acc = start.clone();
            row.push(acc.clone());
            for _ in 2..=255 {
                acc *= &start;
                acc %= modulus;
                row.push(acc.clone());
            }
            row
        };
        // Rows in parallel, except on a rayon worker: the table is built inside the key's
        // OnceLock, and a worker waiting for a parallel job steals other jobs meanwhile; one of
        // them (another encryption of the same batch) would re-enter that initialisation and
        // deadlock. The other workers wait on the OnceLock anyway.
        let rows: Vec<Vec<Integer>> = if rayon::current_thread_index().is_some() {
            starts.into_iter().map(row).collect()
        } else {
            starts.into_par_iter().map(row).collect()
        };
        FixedBaseTable {
            rows,
            modulus: modulus.clone(),
            lanes: std::sync::OnceLock::new(),
        }
    }

    /// The table's rows: rows[i][j − 1] = base^(j · 256^i).
    #[cfg(test)]
    pub(crate) fn rows(&self) -> &[Vec<Integer>] {
        &self.rows
    }

    /// base^e for 8 exponents at once through the IFMA kernel, or None without it.
    pub(crate) fn pow8(&self, exps: [&[u8]; 8]) -> Option<[Integer; 8]> {
        self.lanes
            .get_or_init(|| super::arith::fixed_base_pow8(&self.rows, &self.modulus))
            .as_ref()
            .map(|l| l.pow8(exps))
    }

    /// base^e mod modulus for 0 ≤ e < 2^(8 · windows).
    pub(crate) fn pow(&self, e: &Integer) -> Integer {
        let digits: Vec<u8> = e.to_digits(Order::Lsf);
        debug_assert!(
            digits.len() <= self.rows.len(),
            "exponent wider than the table"
        );
        let mut acc = Integer::from(1);
        for (row, &d) in self.rows.iter().zip(&digits) {
            if d != 0 {
                acc *= &row[d as usize - 1];
                acc %= &self.modulus;
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pow_mod() {
        let modulus =
            Integer::from_str_radix("f1e2d3c4b5a6978877665544332211ffeeddccbbaa", 16).unwrap();
        let base = Integer::from(123_456_789u64);
        let table = FixedBaseTable::new(&base, &modulus, 80);
        for e in [
            0u128,
            1,
            255,
            256,
            65_535,
            1 << 70,
            (1u128 << 80) - 1,
            0x1234_5678_9abc_def0_1122,
        ] {
            let e = Integer::from(e);
            let want = base.clone().pow_mod(&e, &modulus).unwrap();
            assert_eq!(table.pow(&e), want, "e = {e}");
        }
    }
}
