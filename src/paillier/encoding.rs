//! Signed fixed-point encoding. A value v (already multiplied by 10^scale for its column) maps to
//! v mod n; decoding maps [0, max_int] to itself, [n − max_int, n) to negatives, and refuses the
//! band between (overflow) with max_int = ⌊n/3⌋ − 1. The scale is per column, never per value:
//! a per-value exponent would leak each value's magnitude.

use rug::Integer;

/// v mod n, or None when |v| > max_int.
pub(crate) fn encode(value: &Integer, n: &Integer, max_int: &Integer) -> Option<Integer> {
    if value.cmp_abs(max_int) == std::cmp::Ordering::Greater {
        return None;
    }
    let mut m = value.clone();
    if m < 0 {
        m += n;
    }
    Some(m)
}

/// A decoded sum divided by its row count at `extra` more decimal places, truncated toward zero
/// (as DataFusion's `AVG` of a decimal does): sum · 10^extra ÷ rows.
pub fn average(sum: &Integer, rows: u64, extra: u32) -> Integer {
    let mut x = sum.clone();
    if extra > 0 {
        x *= Integer::from(Integer::u_pow_u(10, extra));
    }
    x.div_rem(Integer::from(rows)).0
}

/// The signed value of a plaintext in [0, n), or None in the overflow band.
pub(crate) fn decode(plain: Integer, n: &Integer, max_int: &Integer) -> Option<Integer> {
    if &plain <= max_int {
        Some(plain)
    } else if plain >= Integer::from(n - max_int) {
        Some(plain - n)
    } else {
        None
    }
}

/// 10^scale as an integer.
pub fn pow10(scale: u32) -> Integer {
    Integer::from(Integer::u_pow_u(10, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_edges() {
        let n = Integer::from(1000);
        let max = Integer::from(&n / 3u32) - 1u32; // 332
        assert_eq!(
            encode(&Integer::from(332), &n, &max),
            Some(Integer::from(332))
        );
        assert_eq!(
            encode(&Integer::from(-332), &n, &max),
            Some(Integer::from(668))
        );
        assert_eq!(encode(&Integer::from(333), &n, &max), None);
        assert_eq!(encode(&Integer::from(-333), &n, &max), None);
        assert_eq!(
            decode(Integer::from(332), &n, &max),
            Some(Integer::from(332))
        );
        assert_eq!(
            decode(Integer::from(668), &n, &max),
            Some(Integer::from(-332))
        );
        assert_eq!(decode(Integer::from(333), &n, &max), None);
        assert_eq!(decode(Integer::from(667), &n, &max), None);
        assert_eq!(pow10(3), 1000);
    }
}
