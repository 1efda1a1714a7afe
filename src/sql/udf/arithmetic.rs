//! Per-row arithmetic on ciphertexts, the linear functions Paillier allows without the private
//! key:
//! - `paillier_add(x, y)`: E(x)·E(y) = E(x + y), both under one key. Scales are aligned first: the
//!   value at the smaller scale is multiplied by 10^d (E(x)^(10^d) = E(x·10^d)).
//! - `paillier_neg(x)`: E(x)⁻¹ = E(−x).
//! - `paillier_mul(x, k)`: E(x)^k = E(k·x) for a plaintext k (an integer or decimal constant or
//!   plaintext column; the result's scale is the sum of both scales, as for decimals in SQL).
//! - `paillier_add_plain(x, k)`: E(x)·(1 + k·n) = E(x + k) for a plaintext k.
//!
//! The ordinary operators `x + y`, `x - y`, `-x`, `x * 3`, `x + 10` on encrypted columns are
//! planned as these functions (see `sql/planner.rs`). Results are ciphertexts under the same key,
//! with the scale and plain type in their field metadata like any encrypted column: an integer
//! result is Int64, a decimal one Decimal128(38, s).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::lake::decrypt::binary_values;
use crate::lake::schema::META_MODULUS;
use crate::lake::schema::{EncryptedColumn, MAX_SCALE, META_KEY_ID};
use crate::lake::values::{fixed_size_binary, parse_decimal};
use crate::paillier::{Ciphertext, Modulus, Plaintext, NOT_INVERTIBLE};
use crate::sql::encrypted::{bad_ciphertext, CipherInput};
use crate::sql::policy::Refusal;
use crate::sql::trace::{self, Trace};

/// Which per-row function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// `paillier_add(x, y)`
    Add,
    /// `paillier_neg(x)`
    Neg,
    /// `paillier_mul(x, k)`
    Mul,
    /// `paillier_add_plain(x, k)`
    AddPlain,
}

impl Op {
    /// The SQL name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Add => "paillier_add",
            Op::Neg => "paillier_neg",
            Op::Mul => "paillier_mul",
            Op::AddPlain => "paillier_add_plain",
        }
    }

    fn arity(self) -> usize {
        match self {
            Op::Neg => 1,
            _ => 2,
        }
    }

    /// Every per-row function, in declaration order (`op as usize` indexes it).
    pub(crate) const ALL: [Op; 4] = [Op::Add, Op::Neg, Op::Mul, Op::AddPlain];
}

/// The shared instance of each function, for plans built in code (the SQL planner, rewrites).
pub(crate) fn udf(op: Op) -> Arc<ScalarUDF> {
    static UDFS: OnceLock<[Arc<ScalarUDF>; 4]> = OnceLock::new();
    let all =
        UDFS.get_or_init(|| Op::ALL.map(|op| Arc::new(ScalarUDF::from(CipherScalar::new(op)))));
    Arc::clone(&all[op as usize])
}

/// A per-row function on ciphertexts.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CipherScalar {
    op: Op,
    signature: Signature,
}

impl CipherScalar {
    /// The function `op`.
    pub(crate) fn new(op: Op) -> Self {
        CipherScalar {
            op,
            // Any types: arguments are checked (with messages naming them) in
            // `return_field_from_args`, and ciphertexts must not be cast.
            signature: Signature::any(op.arity(), Volatility::Immutable),
        }
    }
}

/// The plain type of a linear result at `scale`.
fn linear_plain_type(scale: u32) -> DataType {
    if scale == 0 {
        DataType::Int64
    } else {
        DataType::Decimal128(38, scale as i8)
    }
}

/// A plaintext operand: its own decimal scale.
struct PlainOperand {
    scale: u32,
}

/// What a call computes, worked out from its argument fields (and literal arguments).
struct Plan {
    /// The encrypted input (first argument).
    a: CipherInput,
    /// a is raised to 10^shift_a to reach the result's scale.
    shift_a: u32,
    /// The second encrypted input of `paillier_add`, and its shift.
    b: Option<(CipherInput, u32)>,
    /// The plaintext operand of `paillier_mul` / `paillier_add_plain`, and its shift.
    k: Option<(PlainOperand, u32)>,
    /// The result column.
    out: EncryptedColumn,
}

fn cipher_arg(called: &str, field: &Field) -> Result<CipherInput> {
    let input = CipherInput::from_field(called, field)?;
    if input.is_aggregate() {
        let name = &input.name;
        return plan_err!(
            "{called}({name}): `{name}` is an aggregate result; per-row arithmetic runs before aggregating, e.g. SUM(x + y) rather than SUM(x) + SUM(y)"
        );
    }
    Ok(input)
}

/// Decimal digits of a float literal as written (Rust prints the shortest exact round trip,
/// never in exponent notation): 1.5 → ("1.5", 1).
fn float_literal(v: f64) -> (String, u32) {
    let s = format!("{v}");
    let digits = s.split_once('.').map_or(0, |(_, f)| f.len() as u32);
    (s, digits)
}

fn plain_arg(
    op: Op,
    a: &CipherInput,
    field: &Field,
    scalar: Option<&ScalarValue>,
) -> Result<PlainOperand> {
    let called = op.name();
    let name = field.name();
    if field.metadata().contains_key(META_KEY_ID) {
        return match op {
            Op::Mul => Refusal::MultiplyCiphertexts {
                text: format!("{} * {name}", a.name),
            }
            .err(),
            _ => plan_err!(
                "{called}({}, {name}): `{name}` is encrypted; use paillier_add for two encrypted values",
                a.name
            ),
        };
    }
    let scale = match field.data_type() {
        DataType::Null => 0,
        t if t.is_integer() => 0,
        DataType::Decimal128(_, s) if *s >= 0 => *s as u32,
        DataType::Float32 | DataType::Float64 => match scalar {
            Some(ScalarValue::Float64(v)) => v.map_or(0, |v| float_literal(v).1),
            Some(ScalarValue::Float32(v)) => v.map_or(0, |v| float_literal(v as f64).1),
            _ => {
                return plan_err!(
                    "{called}({}, {name}): `{name}` is a floating-point column, and ciphertexts take only exact numbers; cast it to a DECIMAL",
                    a.name
                )
            }
        },
        t => {
            return plan_err!(
                "{called}({}, {name}): `{name}` is {t}; the plaintext operand must be an integer or decimal number",
                a.name
            )
        }
    };
    Ok(PlainOperand { scale })
}

fn plan(op: Op, fields: &[FieldRef], scalars: &[Option<&ScalarValue>]) -> Result<Plan> {
    let called = op.name();
    if fields.len() != op.arity() {
        return plan_err!("{called} takes {} arguments", op.arity());
    }
    let a = cipher_arg(called, &fields[0])?;
    let sa = a.column.scale;
    let (scale, shift_a, b, k) = match op {
        Op::Neg => (sa, 0, None, None),
        Op::Add => {
            if !fields[1].metadata().contains_key(META_KEY_ID) {
                return plan_err!(
                    "{called}({}, {}): `{}` is not encrypted; use paillier_add_plain to add a plaintext number",
                    a.name,
                    fields[1].name(),
                    fields[1].name()
                );
            }
            let b = cipher_arg(called, &fields[1])?;
            if b.column.key_id != a.column.key_id {
                return plan_err!(
                    "{called}({}, {}): `{}` is encrypted under key {} and `{}` under key {}: values under different keys cannot be combined",
                    a.name,
                    b.name,
                    a.name,
                    a.column.key_id,
                    b.name,
                    b.column.key_id
                );
            }
            let s = sa.max(b.column.scale);
            let sb = b.column.scale;
            (s, s - sa, Some((b, s - sb)), None)
        }
        Op::Mul => {
            let k = plain_arg(op, &a, &fields[1], scalars.get(1).copied().flatten())?;
            (sa + k.scale, 0, None, Some((k, 0)))
        }
        Op::AddPlain => {
            let k = plain_arg(op, &a, &fields[1], scalars.get(1).copied().flatten())?;
            let s = sa.max(k.scale);
            let sk = k.scale;
            (s, s - sa, None, Some((k, s - sk)))
        }
    };
    if scale > MAX_SCALE {
        return plan_err!(
            "{called}({}, …): the result would have {scale} decimal places, more than {MAX_SCALE}",
            a.name
        );
    }
    let out = EncryptedColumn {
        key_id: a.column.key_id.clone(),
        scale,
        plain_type: linear_plain_type(scale),
        aggregate: None,
    };
    Ok(Plan {
        a,
        shift_a,
        b,
        k,
        out,
    })
}

impl ScalarUDFImpl for CipherScalar {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!(
            "{} needs its arguments' field metadata (return_field_from_args)",
            self.op.name()
        )
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let plan = plan(self.op, args.arg_fields, args.scalar_arguments)?;
        let mut md = plan.out.metadata();
        md.insert(META_MODULUS.into(), plan.a.key.metadata_value().to_owned());
        Ok(Arc::new(
            Field::new(
                self.op.name(),
                DataType::FixedSizeBinary(plan.a.key.width() as i32),
                true,
            )
            .with_metadata(md),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalars: Vec<Option<&ScalarValue>> = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let plan = plan(self.op, &args.arg_fields, &scalars)?;
        let rows = args.number_rows;
        let key = &plan.a.key;
        let a = args.args[0].to_array(rows)?;
        let a_bytes = cipher_bytes(&plan.a, &a)?;
        let b = match &plan.b {
            Some(_) => Some(args.args[1].to_array(rows)?),
            None => None,
        };
        let b_bytes = match (&plan.b, &b) {
            (Some((input, _)), Some(array)) => Some(cipher_bytes(input, array)?),
            _ => None,
        };
        let k_values = match &plan.k {
            Some((k, shift)) => Some(plain_values(&args.args[1], k, *shift, rows, self.op)?),
            None => None,
        };
        let m = key.modulus();
        let load = |bytes: &[u8], input: &CipherInput| {
            m.load_le(bytes)
                .map_err(|why| bad_ciphertext(&input.name, why))
        };

        let mut out: Vec<Option<Ciphertext>> = Vec::with_capacity(rows);
        // Rows whose value must still be inverted (negation, a negative factor): done at the end
        // for the whole batch with one modular inversion.
        let mut to_invert: Vec<usize> = Vec::new();
        for i in 0..rows {
            let Some(abytes) = a_bytes[i] else {
                out.push(None);
                continue;
            };
            let x = m.scale(&load(abytes, &plan.a)?, plan.shift_a);
            let value = match self.op {
                Op::Neg => {
                    to_invert.push(i);
                    Some(x)
                }
                Op::Add => match (&plan.b, b_bytes.as_ref().and_then(|b| b[i])) {
                    (Some((input, shift)), Some(bbytes)) => {
                        Some(m.add(&x, &m.scale(&load(bbytes, input)?, *shift)))
                    }
                    // A NULL operand (or, never for a planned Add, no second operand): NULL.
                    _ => None,
                },
                Op::Mul => match k_values.as_ref().and_then(|k| k[i].as_ref()) {
                    None => None,
                    Some(k) => {
                        if k.is_negative() {
                            to_invert.push(i);
                        }
                        Some(m.mul_plain_abs(&x, k))
                    }
                },
                Op::AddPlain => k_values
                    .as_ref()
                    .and_then(|k| k[i].as_ref())
                    .map(|k| m.add_plain(&x, k)),
            };
            out.push(value);
        }
        invert_rows(m, &mut out, &to_invert, &plan.a.name)?;
        let array = ciphertext_array(&out, key.width())?;
        if let Some(t) = trace::current() {
            trace_rows(
                &t,
                self.op,
                &plan,
                &array,
                &a_bytes,
                b_bytes.as_deref(),
                k_values.as_deref(),
            );
        }
        Ok(ColumnarValue::Array(array))
    }
}

/// Records the origin and form of each output row while a trace runs (see `sql::trace`): the form
/// is the operation, its scale shifts and its constant, applied to the inputs' forms.
fn trace_rows(
    t: &Trace,
    op: Op,
    plan: &Plan,
    out: &ArrayRef,
    a: &[Option<&[u8]>],
    b: Option<&[Option<&[u8]>]>,
    k: Option<&[Option<Plaintext>]>,
) {
    let Some(values) = binary_values(out) else {
        return;
    };
    let shift_b = plan.b.as_ref().map_or(0, |(_, s)| *s);
    let shifts = format!("{}:{}", plan.shift_a, shift_b);
    for (i, v) in values.iter().enumerate() {
        let (Some(v), Some(abytes)) = (v, a[i]) else {
            continue;
        };
        let mut inputs = vec![t.origin(abytes)];
        if let Some(bb) = b.and_then(|b| b[i]) {
            inputs.push(t.origin(bb));
        }
        let constant = k
            .and_then(|k| k[i].as_ref())
            .map(Plaintext::to_decimal)
            .unwrap_or_default();
        t.derive(
            v,
            &[op.name().as_bytes(), shifts.as_bytes(), constant.as_bytes()],
            &inputs,
        );
    }
}

/// Inverts the values of `rows` (all Some) in one batch inversion.
fn invert_rows(
    m: &Modulus,
    values: &mut [Option<Ciphertext>],
    rows: &[usize],
    name: &str,
) -> Result<()> {
    let mut batch: Vec<Ciphertext> = rows.iter().filter_map(|&i| values[i].take()).collect();
    m.invert_batch(&mut batch)
        .map_err(|_| bad_ciphertext(name, NOT_INVERTIBLE))?;
    for (&i, v) in rows.iter().zip(batch) {
        values[i] = Some(v);
    }
    Ok(())
}

/// The ciphertext bytes of each row (None for NULL), widths checked.
fn cipher_bytes<'a>(input: &CipherInput, array: &'a ArrayRef) -> Result<Vec<Option<&'a [u8]>>> {
    let Some(values) = binary_values(array) else {
        return exec_err!(
            "column `{}`: type {} is not a ciphertext column",
            input.name,
            array.data_type()
        );
    };
    if let Some(v) = values
        .iter()
        .flatten()
        .find(|v| v.len() != input.key.width())
    {
        return exec_err!(
            "column `{}`: ciphertext of {} bytes, expected {}",
            input.name,
            v.len(),
            input.key.width()
        );
    }
    Ok(values)
}

/// The plaintext operand's values as integers at the result's scale (its own scale + `shift`).
fn plain_values(
    value: &ColumnarValue,
    k: &PlainOperand,
    shift: u32,
    rows: usize,
    op: Op,
) -> Result<Vec<Option<Plaintext>>> {
    let scaled = |v: i128| Plaintext::scaled(v, shift);
    let float = |v: f64| -> Result<Plaintext> {
        let (s, _) = float_literal(v);
        parse_decimal(&s, k.scale)
            .map(scaled)
            .map_err(|e| DataFusionError::Execution(format!("{}: constant {s}: {e}", op.name())))
    };
    match value {
        ColumnarValue::Scalar(ScalarValue::Float64(v)) => {
            let v = v.map(float).transpose()?;
            return Ok(vec![v; rows]);
        }
        ColumnarValue::Scalar(ScalarValue::Float32(v)) => {
            let v = v.map(|v| float(v as f64)).transpose()?;
            return Ok(vec![v; rows]);
        }
        _ => {}
    }
    let array = value.to_array(rows)?;
    if array.data_type() == &DataType::Null {
        return Ok(vec![None; rows]);
    }
    let decimal = cast(&array, &DataType::Decimal128(38, k.scale as i8))?;
    Ok(decimal
        .as_primitive::<Decimal128Type>()
        .iter()
        .map(|v| v.map(scaled))
        .collect())
}

/// A `FixedSizeBinary(width)` array of ciphertexts (little-endian), NULL where None.
fn ciphertext_array(values: &[Option<Ciphertext>], width: usize) -> Result<ArrayRef> {
    let mut buf = vec![0u8; values.len() * width];
    for (out, v) in buf.chunks_exact_mut(width).zip(values) {
        if let Some(v) = v {
            v.write_le(out);
        }
    }
    fixed_size_binary(buf, width, values.iter().map(Option::is_some))
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::encrypt::encrypt_values;
    use crate::sql::encrypted::fixture::{self, key};
    use datafusion::common::config::ConfigOptions;
    use proptest::prelude::*;

    /// An encrypted column's field at `scale`.
    fn field(name: &str, scale: u32) -> FieldRef {
        fixture::field(name, scale, linear_plain_type(scale), None)
    }

    fn encrypted(values: &[Option<i64>]) -> ColumnarValue {
        let v: Vec<Option<i128>> = values.iter().map(|v| v.map(i128::from)).collect();
        ColumnarValue::Array(Arc::new(encrypt_values(key().public_key(), &v).unwrap()))
    }

    /// Calls `op` as DataFusion would and decrypts the result: (values, result scale).
    fn run(
        op: Op,
        args: Vec<ColumnarValue>,
        fields: Vec<FieldRef>,
        rows: usize,
    ) -> Result<(Vec<Option<i128>>, u32)> {
        let f = CipherScalar::new(op);
        let scalars: Vec<Option<&ScalarValue>> = args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                _ => None,
            })
            .collect();
        let return_field = f.return_field_from_args(ReturnFieldArgs {
            arg_fields: &fields,
            scalar_arguments: &scalars,
        })?;
        let scale = EncryptedColumn::from_field(&return_field)
            .unwrap()
            .unwrap()
            .scale;
        let out = f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields: fields,
            number_rows: rows,
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        })?;
        let ColumnarValue::Array(a) = out else {
            panic!("an array")
        };
        let pk = key().public_key();
        let values = binary_values(&a)
            .unwrap()
            .into_iter()
            .map(|v| {
                v.map(|b| {
                    key()
                        .decrypt(&pk.ciphertext_from_le_bytes(b).unwrap())
                        .unwrap()
                        .to_i128()
                        .unwrap()
                })
            })
            .collect();
        Ok((values, scale))
    }

    fn ints(v: &[Option<i128>]) -> Vec<Option<i128>> {
        v.to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn add_aligns_scales(a in any::<i32>(), b in any::<i32>(), sa in 0u32..4, sb in 0u32..4) {
            let (got, scale) = run(
                Op::Add,
                vec![encrypted(&[Some(a.into()), None]), encrypted(&[Some(b.into()), Some(1)])],
                vec![field("a", sa), field("b", sb)],
                2,
            ).unwrap();
            let s = sa.max(sb);
            prop_assert_eq!(scale, s);
            let want = a as i128 * 10i128.pow(s - sa) + b as i128 * 10i128.pow(s - sb);
            prop_assert_eq!(got, ints(&[Some(want), None]));
        }

        #[test]
        fn neg_and_mul_by_a_decimal(a in any::<i32>(), k in any::<i32>(), sk in 0i8..5) {
            // Several rows and a NULL: the batch inversion pairs each value with its own inverse.
            let (got, scale) = run(
                Op::Neg,
                vec![encrypted(&[Some(a.into()), None, Some(k.into()), Some(7)])],
                vec![field("a", 2)],
                4,
            ).unwrap();
            prop_assert_eq!(scale, 2);
            prop_assert_eq!(got, ints(&[Some(-(a as i128)), None, Some(-(k as i128)), Some(-7)]));
            let kd = ScalarValue::Decimal128(Some(k.into()), 12, sk);
            let (got, scale) = run(
                Op::Mul,
                vec![encrypted(&[Some(a.into()), None]), ColumnarValue::Scalar(kd)],
                vec![field("a", 1), Arc::new(Field::new("k", DataType::Decimal128(12, sk), true))],
                2,
            ).unwrap();
            prop_assert_eq!(scale, 1 + sk as u32);
            prop_assert_eq!(got, ints(&[Some(a as i128 * k as i128), None]));
        }

        #[test]
        fn add_plain_per_row_and_float_literal(a in any::<i32>(), k in any::<i32>(), f in -1000i32..1000) {
            // A per-row plaintext column (Int64) added to a scale-2 ciphertext.
            let col: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(vec![Some(k as i64), None]));
            let (got, scale) = run(
                Op::AddPlain,
                vec![encrypted(&[Some(a.into()), Some(5)]), ColumnarValue::Array(col)],
                vec![field("a", 2), Arc::new(Field::new("k", DataType::Int64, true))],
                2,
            ).unwrap();
            prop_assert_eq!(scale, 2);
            prop_assert_eq!(got, ints(&[Some(a as i128 + 100 * k as i128), None]));
            // A float literal as written, e.g. 12.5: exact, scale 1.
            let lit = f as f64 + 0.5;
            let (got, scale) = run(
                Op::AddPlain,
                vec![encrypted(&[Some(a.into())]), ColumnarValue::Scalar(ScalarValue::Float64(Some(lit)))],
                vec![field("a", 0), Arc::new(Field::new("k", DataType::Float64, false))],
                1,
            ).unwrap();
            prop_assert_eq!(scale, 1);
            prop_assert_eq!(got, ints(&[Some(a as i128 * 10 + f as i128 * 10 + 5)]));
        }
    }

    #[test]
    fn refusals_name_the_arguments() {
        let e = run(
            Op::Mul,
            vec![encrypted(&[Some(1)]), encrypted(&[Some(2)])],
            vec![field("cost", 0), field("stay", 0)],
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`cost * stay`") && e.contains("cannot multiply two ciphertexts"),
            "{e}"
        );
        let other = {
            let mut md = field("x", 0).metadata().clone();
            md.insert(META_KEY_ID.into(), "ab".repeat(32));
            Arc::new(field("y", 0).as_ref().clone().with_metadata(md))
        };
        let e = run(
            Op::Add,
            vec![encrypted(&[Some(1)]), encrypted(&[Some(2)])],
            vec![field("x", 0), other],
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("under different keys"), "{e}");
        let e = run(
            Op::Mul,
            vec![
                encrypted(&[Some(1)]),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(10))),
            ],
            vec![
                field("x", 30),
                Arc::new(Field::new("k", DataType::Decimal128(20, 10), true)),
            ],
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("40 decimal places"), "{e}");
    }
}
