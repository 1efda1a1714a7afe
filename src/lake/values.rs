//! Plain values ↔ the signed integers that get encrypted: integers as they are, decimals scaled by
//! 10^scale exactly (more fractional digits than the scale is an error, never a rounding),
//! booleans as 0/1. CSV columns to encrypt are read as text and parsed here, so that `12.30` is
//! never routed through a float.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, FixedSizeBinaryArray, Float64Array,
    Int64Array,
};
use datafusion::arrow::buffer::{Buffer, NullBuffer};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use rug::Integer;

use crate::paillier::encoding;

use super::schema::MAX_SCALE;
use crate::error::{preview, Error, Result};

/// How the values of one column to encrypt are read.
#[derive(Clone, Debug)]
enum Source {
    /// An Arrow integer column.
    Int,
    /// A Decimal128 column with this scale.
    Decimal(u32),
    /// A float column (needs an explicit scale).
    Float,
    /// A Boolean column.
    Bool,
    /// Text (CSV): parsed as integers, decimals or booleans.
    Text(TextKind),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum TextKind {
    Integer,
    Decimal,
    Boolean,
}

/// The plan for one column to encrypt: where its values come from and what they become.
#[derive(Clone, Debug)]
pub(crate) struct ColumnPlan {
    /// Column name.
    pub name: String,
    /// Scale of the encoded values.
    pub scale: u32,
    /// The type recorded as `cipherlake.plain_type`.
    pub plain_type: DataType,
    source: Source,
}

impl ColumnPlan {
    /// Plans a column. `read_type` is the type the reader hands over (Utf8 for CSV columns to
    /// encrypt); `declared` the column's real type (inferred, for CSV); `scale` the `:SCALE` the
    /// user asked for; `file` is used in errors.
    pub(crate) fn new(
        name: &str,
        read_type: &DataType,
        declared: &DataType,
        scale: Option<u32>,
        file: &str,
    ) -> Result<Self> {
        let err = |why: String| Error::Data(format!("{file}: column `{name}`: {why}"));
        if let Some(s) = scale {
            if s > MAX_SCALE {
                return Err(err(format!(
                    "scale {s} is above the maximum of {MAX_SCALE}"
                )));
            }
        }
        let decimal = |s: u32| DataType::Decimal128(38, s as i8);
        let text = matches!(
            read_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        let (source, scale, plain_type) = match declared {
            DataType::Boolean => {
                if scale.is_some_and(|s| s > 0) {
                    return Err(err("a boolean column takes no scale".into()));
                }
                let src = if text { Source::Text(TextKind::Boolean) } else { Source::Bool };
                (src, 0, DataType::Boolean)
            }
            t if t.is_integer() || *t == DataType::Null => {
                let src = if text {
                    Source::Text(if scale.unwrap_or(0) > 0 { TextKind::Decimal } else { TextKind::Integer })
                } else {
                    Source::Int
                };
                match scale {
                    Some(s) if s > 0 => (src, s, decimal(s)),
                    _ => {
                        let plain = if *t == DataType::Null { DataType::Int64 } else { t.clone() };
                        (src, 0, plain)
                    }
                }
            }
            DataType::Decimal128(p, s) => {
                let s = (*s).max(0) as u32;
                let target = scale.unwrap_or(s);
                if target < s {
                    return Err(err(format!(
                        "its values have scale {s}; a smaller scale {target} would round them"
                    )));
                }
                let p = (*p as u32 + target - s).min(38) as u8;
                let src = if text { Source::Text(TextKind::Decimal) } else { Source::Decimal(s) };
                (src, target, DataType::Decimal128(p, target as i8))
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                let Some(s) = scale else {
                    return Err(Error::NeedsScale {
                        at: file.to_owned(),
                        column: name.to_owned(),
                    });
                };
                let src = if text { Source::Text(TextKind::Decimal) } else { Source::Float };
                (src, s, decimal(s))
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if text => {
                // Text that did not look numeric in the sample: parse it and report the first bad value.
                let kind = if scale.unwrap_or(0) > 0 { TextKind::Decimal } else { TextKind::Integer };
                let s = scale.unwrap_or(0);
                let plain = if s > 0 { decimal(s) } else { DataType::Int64 };
                (Source::Text(kind), s, plain)
            }
            other => {
                return Err(err(format!(
                    "type {other} cannot be encrypted: only integers, decimals, floats (with a scale) and booleans"
                )))
            }
        };
        Ok(ColumnPlan {
            name: name.to_owned(),
            scale,
            plain_type,
            source,
        })
    }

    /// The signed integers to encrypt for `array`; `first_row` (1-based) and `file` locate errors.
    pub(crate) fn encode(
        &self,
        array: &ArrayRef,
        first_row: u64,
        file: &str,
    ) -> Result<Vec<Option<i128>>> {
        let at = |i: usize, why: String| {
            Error::Data(format!(
                "{file}: row {}, column `{}`: {why}",
                first_row + i as u64,
                self.name
            ))
        };
        let mul = pow10_i128(self.scale);
        let scale_int = |i: usize, v: i128| {
            v.checked_mul(mul).ok_or_else(|| {
                at(
                    i,
                    format!("value {v} is out of range at scale {}", self.scale),
                )
            })
        };
        macro_rules! ints {
            ($t:ty) => {
                array
                    .as_primitive::<$t>()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.map(|v| scale_int(i, v as i128)).transpose())
                    .collect()
            };
        }
        match &self.source {
            Source::Int => match array.data_type() {
                DataType::Int8 => ints!(Int8Type),
                DataType::Int16 => ints!(Int16Type),
                DataType::Int32 => ints!(Int32Type),
                DataType::Int64 => ints!(Int64Type),
                DataType::UInt8 => ints!(UInt8Type),
                DataType::UInt16 => ints!(UInt16Type),
                DataType::UInt32 => ints!(UInt32Type),
                DataType::UInt64 => ints!(UInt64Type),
                DataType::Null => Ok(vec![None; array.len()]),
                t => Err(at(0, format!("unexpected type {t}"))),
            },
            Source::Decimal(from) => {
                let up = pow10_i128(self.scale - from);
                array
                    .as_primitive::<Decimal128Type>()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.map(|v| {
                            v.checked_mul(up)
                                .ok_or_else(|| at(i, "value is out of range".into()))
                        })
                        .transpose()
                    })
                    .collect()
            }
            Source::Float => {
                let floats: Vec<Option<f64>> = match array.data_type() {
                    DataType::Float32 => array
                        .as_primitive::<Float32Type>()
                        .iter()
                        .map(|v| v.map(f64::from))
                        .collect(),
                    DataType::Float64 => array.as_primitive::<Float64Type>().iter().collect(),
                    t => return Err(at(0, format!("unexpected type {t}"))),
                };
                floats
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.map(|f| {
                            if !f.is_finite() {
                                return Err(at(i, format!("value {f} is not a finite number")));
                            }
                            // Rust prints the shortest decimal that reads back as the same float.
                            parse_decimal(&f.to_string(), self.scale).map_err(|why| at(i, why))
                        })
                        .transpose()
                    })
                    .collect()
            }
            Source::Bool => Ok(array
                .as_boolean()
                .iter()
                .map(|v| v.map(i128::from))
                .collect()),
            Source::Text(kind) => {
                let texts: Vec<Option<&str>> = match array.data_type() {
                    DataType::Utf8 => array.as_string::<i32>().iter().collect(),
                    DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
                    DataType::Utf8View => array.as_string_view().iter().collect(),
                    t => return Err(at(0, format!("unexpected type {t}"))),
                };
                texts
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let Some(s) = v.map(str::trim).filter(|s| !s.is_empty()) else {
                            return Ok(None);
                        };
                        let parsed = match kind {
                            TextKind::Boolean => parse_bool(s),
                            TextKind::Integer => match parse_decimal(s, 0) {
                                Err(why) if s.contains('.') && why.contains("digits after") => {
                                    return Err(Error::NeedsScale {
                                        at: format!("{file}: row {}", first_row + i as u64),
                                        column: self.name.clone(),
                                    })
                                }
                                other => other,
                            },
                            TextKind::Decimal => parse_decimal(s, self.scale),
                        };
                        let v = parsed.map_err(|why| at(i, why))?;
                        check_fits(v, &self.plain_type).map_err(|why| at(i, why))?;
                        Ok(Some(v))
                    })
                    .collect()
            }
        }
    }
}

fn pow10_i128(s: u32) -> i128 {
    10i128.pow(s.min(38))
}

/// Values parsed from text must fit the recorded plain type.
fn check_fits(v: i128, t: &DataType) -> std::result::Result<(), String> {
    let ok = match t {
        DataType::Int64 => i64::try_from(v).is_ok(),
        DataType::Decimal128(p, _) => v.unsigned_abs() < 10u128.pow(*p as u32),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("value is out of range for {t}"))
    }
}

fn parse_bool(s: &str) -> std::result::Result<i128, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" => Ok(1),
        "false" | "f" | "0" | "no" => Ok(0),
        _ => Err(format!("`{}` is not a boolean (true/false)", preview(s))),
    }
}

/// Parses `[+-]digits[.digits]` exactly into value · 10^scale. Trailing zeros beyond the scale are
/// fine (`1.50` at scale 1); any other extra digit is an error, never a rounding.
pub(crate) fn parse_decimal(s: &str, scale: u32) -> std::result::Result<i128, String> {
    let shown = preview(s);
    let bad = || {
        if matches!(s.to_ascii_lowercase().as_str(), "yes" | "no" | "y" | "n") {
            format!("`{shown}` is not a number: a yes/no column is read as text; write its values as true/false (or 1/0) to encrypt it as a boolean")
        } else {
            format!("`{shown}` is not a number")
        }
    };
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > scale as usize {
        return Err(format!(
            "`{shown}` has {} digits after the decimal point but the scale is {scale}",
            frac_trimmed.len()
        ));
    }
    let overflow = || format!("`{shown}` is out of range (more than 38 digits)");
    let mut v: i128 = 0;
    for b in int_part.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(overflow)?;
    }
    for k in 0..scale as usize {
        let d = frac_trimmed.as_bytes().get(k).map_or(0, |b| b - b'0');
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(d as i128))
            .ok_or_else(overflow)?;
    }
    if v.unsigned_abs() >= 10u128.pow(38) {
        return Err(overflow());
    }
    Ok(if neg { -v } else { v })
}

/// A `FixedSizeBinary(width)` array over `buf`, one `width`-byte slot per item of `valid`, NULL
/// where it is false.
pub(crate) fn fixed_size_binary(
    buf: Vec<u8>,
    width: usize,
    valid: impl IntoIterator<Item = bool>,
) -> Result<FixedSizeBinaryArray> {
    let nulls = NullBuffer::from_iter(valid);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok(FixedSizeBinaryArray::try_new(
        width as i32,
        Buffer::from(buf),
        nulls,
    )?)
}

/// Decrypted signed integers → an array of the column's plain type.
pub(crate) fn to_plain_array(
    values: Vec<Option<Integer>>,
    plain_type: &DataType,
    what: &dyn Fn(usize) -> String,
) -> Result<ArrayRef> {
    let err = |i: usize, why: &str| Error::Data(format!("{}: {why}", what(i)));
    match plain_type {
        DataType::Boolean => {
            let out: Result<BooleanArray> = values
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    None => Ok(None),
                    Some(x) if *x == 0 => Ok(Some(false)),
                    Some(x) if *x == 1 => Ok(Some(true)),
                    Some(_) => Err(err(i, "decrypted value is not 0 or 1 for a boolean column")),
                })
                .collect();
            Ok(Arc::new(out?))
        }
        DataType::Decimal128(p, s) => {
            let limit = 10u128.pow(*p as u32);
            let out: Result<Decimal128Array> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_ref()
                        .map(|x| {
                            x.to_i128()
                                .filter(|x| x.unsigned_abs() < limit)
                                .ok_or_else(|| {
                                    err(i, &format!("decrypted value does not fit {plain_type}"))
                                })
                        })
                        .transpose()
                })
                .collect();
            Ok(Arc::new(out?.with_precision_and_scale(*p, *s)?))
        }
        t if t.is_integer() => {
            let out: Result<Int64Array> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_ref()
                        .map(|x| {
                            x.to_i64().ok_or_else(|| {
                                err(i, &format!("decrypted value does not fit {plain_type}"))
                            })
                        })
                        .transpose()
                })
                .collect();
            let a: ArrayRef = Arc::new(out?);
            if t == &DataType::Int64 {
                return Ok(a);
            }
            let strict = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(&a, t, &strict).map_err(|e| {
                Error::Data(format!(
                    "{}: decrypted value does not fit {t}: {e}",
                    what(0)
                ))
            })
        }
        t => Err(err(0, &format!("unsupported plain type {t}"))),
    }
}

/// Decrypted sums and their row counts → averages: Float64, or Decimal128(p, s′) with the sum at
/// `scale` divided to s′ ≥ `scale` places, truncated toward zero (as DataFusion's AVG of a
/// decimal does, so that both give the same digits).
pub(crate) fn average_array(
    sums: Vec<Option<Integer>>,
    rows: &[Option<u64>],
    scale: u32,
    plain_type: &DataType,
    what: &dyn Fn(usize) -> String,
) -> Result<ArrayRef> {
    let err = |i: usize, why: &str| Error::Data(format!("{}: {why}", what(i)));
    let pairs =
        sums.into_iter()
            .enumerate()
            .map(|(i, v)| match (v, rows.get(i).copied().flatten()) {
                (None, _) => Ok(None),
                (Some(_), None | Some(0)) => Err(err(i, "an average without a row count")),
                (Some(v), Some(r)) => Ok(Some((v, r))),
            });
    match plain_type {
        DataType::Float64 => {
            let div = 10f64.powi(scale as i32);
            let out: Result<Float64Array> = pairs
                .map(|p| p.map(|p| p.map(|(v, r)| v.to_f64() / div / r as f64)))
                .collect();
            Ok(Arc::new(out?))
        }
        DataType::Decimal128(p, s) if *s as u32 >= scale => {
            let extra = *s as u32 - scale;
            let limit = 10u128.pow(*p as u32);
            let out: Result<Decimal128Array> = pairs
                .enumerate()
                .map(|(i, p)| {
                    p?.map(|(v, r)| {
                        encoding::average(&v, r, extra)
                            .to_i128()
                            .filter(|q| q.unsigned_abs() < limit)
                            .ok_or_else(|| err(i, &format!("average does not fit {plain_type}")))
                    })
                    .transpose()
                })
                .collect();
            Ok(Arc::new(out?.with_precision_and_scale(*p, *s)?))
        }
        t => Err(err(0, &format!("unsupported type {t} for an average"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("12.34", 2), Ok(1234));
        assert_eq!(parse_decimal("-0.5", 2), Ok(-50));
        assert_eq!(parse_decimal("7", 3), Ok(7000));
        assert_eq!(parse_decimal("1.50", 1), Ok(15));
        assert_eq!(parse_decimal(".5", 1), Ok(5));
        assert!(parse_decimal("1.234", 2)
            .unwrap_err()
            .contains("3 digits after"));
        assert!(parse_decimal("abc", 2)
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_decimal("1e5", 0)
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_decimal("-", 0).is_err());
        assert!(parse_decimal(&"9".repeat(39), 0)
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn floats_need_a_scale_and_never_round() {
        let a: ArrayRef = Arc::new(datafusion::arrow::array::Float64Array::from(vec![
            Some(0.1),
            None,
            Some(-2.25),
        ]));
        let e =
            ColumnPlan::new("x", &DataType::Float64, &DataType::Float64, None, "f").unwrap_err();
        assert!(
            matches!(&e, Error::NeedsScale { column, .. } if column == "x")
                && e.to_string().contains("decimal scale"),
            "{e}"
        );
        let plan =
            ColumnPlan::new("x", &DataType::Float64, &DataType::Float64, Some(2), "f").unwrap();
        assert_eq!(
            plan.encode(&a, 1, "f").unwrap(),
            vec![Some(10), None, Some(-225)]
        );
        let plan =
            ColumnPlan::new("x", &DataType::Float64, &DataType::Float64, Some(1), "f").unwrap();
        let e = plan.encode(&a, 1, "f").unwrap_err().to_string();
        assert!(e.contains("row 3") && e.contains("`x`"), "{e}");
    }

    #[test]
    fn averages_truncate_toward_zero_like_datafusion() {
        let what = |i: usize| format!("row {i}");
        let sums = vec![
            Some(Integer::from(1000)),
            None,
            Some(Integer::from(-5)),
            Some(Integer::from(7)),
        ];
        let rows = [Some(3), None, Some(2), Some(0)];
        let e = average_array(sums.clone(), &rows, 2, &DataType::Float64, &what).unwrap_err();
        assert!(e.to_string().contains("row 3"), "{e}");
        let rows = [Some(3), None, Some(2), Some(2)];
        // 10.00 / 3 at 6 places; -0.05 / 2 = -0.025 → -0.025000.
        let a = average_array(sums.clone(), &rows, 2, &DataType::Decimal128(38, 6), &what).unwrap();
        let a = a.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
        assert_eq!(a.value(0), 3_333_333);
        assert!(a.is_null(1));
        assert_eq!(a.value(2), -25_000);
        // At 2 places 1000/3 = 333.33… → 3.33; −5/2 = −2.5 → −2 (toward zero).
        let a = average_array(sums.clone(), &rows, 2, &DataType::Decimal128(38, 2), &what).unwrap();
        let a = a.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
        assert_eq!((a.value(0), a.value(2)), (333, -2));
        let a = average_array(sums, &rows, 0, &DataType::Float64, &what).unwrap();
        let a = a.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(
            (a.value(0), a.value(2), a.value(3)),
            (1000.0 / 3.0, -2.5, 3.5)
        );
    }

    #[test]
    fn plain_arrays_from_integers() {
        let vals = vec![Some(Integer::from(-5)), None, Some(Integer::from(300))];
        let a = to_plain_array(vals.clone(), &DataType::Int32, &|i| format!("row {i}")).unwrap();
        assert_eq!(a.data_type(), &DataType::Int32);
        let e = to_plain_array(vals.clone(), &DataType::Int8, &|i| format!("row {i}")).unwrap_err();
        assert!(e.to_string().contains("Int8"), "{e}");
        let e = to_plain_array(vals, &DataType::Boolean, &|i| format!("row {i}")).unwrap_err();
        assert!(e.to_string().contains("row 0"), "{e}");
    }
}
