//! Ordinary SQL on encrypted columns, at the SQL planner. Two hooks are needed because DataFusion
//! computes every expression's type while it plans the SQL, before any analyzer rule runs: `x + y`
//! or `SUM(x)` on binary ciphertexts would fail right there with a type error.
//! - [`CipherPlanner`], an `ExprPlanner`, sees each binary operator with the input schema. On an
//!   encrypted operand it plans `+`, `-` and `*` by a plaintext as the per-row functions of
//!   `scalar.rs`, and refuses the rest (comparisons, division, `x * y` of two ciphertexts) with the
//!   reason and the alternative.
//! - [`SqlAggregate`] replaces `sum` and `avg` in the session: for plaintext arguments it is
//!   DataFusion's own function; for an encrypted argument its result field is the encrypted
//!   aggregate's. The analyzer rule in `rewrite.rs` then swaps each call for the function that
//!   runs (`paillier_sum`, `paillier_count`, `paillier_avg`, or DataFusion's `sum`/`avg`), so
//!   `EXPLAIN` shows what runs and no optimizer rule ever sees the wrapper.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{plan_err, DFSchema, Result};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Coercion, Expr, ExprSchemable, GroupsAccumulator,
    Signature, TypeSignature, TypeSignatureClass,
};
use datafusion::logical_expr_common::signature::Volatility;
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::aggregate::{CipherAggregate, Kind};
use super::check::encrypted_column_in;
use super::common::is_binary;
use super::scalar::{udf, Op};
use crate::lake::schema::{EncryptedColumn, META_KEY_ID};

/// Whether `expr` evaluates to ciphertexts (its field names a key).
pub fn is_encrypted(expr: &Expr, schema: &DFSchema) -> bool {
    expr.to_field(schema)
        .is_ok_and(|(_, f)| f.metadata().contains_key(META_KEY_ID))
}

/// A call of a per-row function.
pub fn call(op: Op, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf(op), args))
}

/// `-k` for a plaintext operand: a negated literal stays a literal (so a decimal constant's
/// digits are still known at planning).
fn negate_plain(e: Expr) -> Result<Expr> {
    Ok(match e {
        Expr::Literal(v, md) => Expr::Literal(v.arithmetic_negate()?, md),
        e => Expr::Negative(Box::new(e)),
    })
}

fn is_zero(e: &Expr) -> bool {
    use datafusion::common::ScalarValue;
    matches!(e, Expr::Literal(ScalarValue::Int64(Some(0)), _))
}

/// Plans arithmetic on encrypted columns; see the module documentation.
#[derive(Debug, Default)]
pub struct CipherPlanner;

impl ExprPlanner for CipherPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let (le, re) = (
            is_encrypted(&expr.left, schema),
            is_encrypted(&expr.right, schema),
        );
        if !le && !re {
            return Ok(PlannerResult::Original(expr));
        }
        let RawBinaryExpr { op, left, right } = expr;
        let column = if le {
            encrypted_column_in(&left, schema)
        } else {
            encrypted_column_in(&right, schema)
        }
        .unwrap_or_else(|| "?".into());
        let text = format!("{left} {op} {right}");
        let planned = match (&op, le, re) {
            (BinaryOperator::Plus, true, true) => call(Op::Add, vec![left, right]),
            (BinaryOperator::Plus, true, false) => call(Op::AddPlain, vec![left, right]),
            (BinaryOperator::Plus, false, true) => call(Op::AddPlain, vec![right, left]),
            (BinaryOperator::Minus, true, true) => {
                call(Op::Add, vec![left, call(Op::Neg, vec![right])])
            }
            (BinaryOperator::Minus, true, false) => {
                call(Op::AddPlain, vec![left, negate_plain(right)?])
            }
            // `0 - x` is how `-x` arrives (see statement.rs).
            (BinaryOperator::Minus, false, true) if is_zero(&left) => call(Op::Neg, vec![right]),
            (BinaryOperator::Minus, false, true) => {
                call(Op::AddPlain, vec![call(Op::Neg, vec![right]), left])
            }
            (BinaryOperator::Multiply, true, true) => {
                return plan_err!(
                    "`{text}`: both operands are encrypted, and Paillier cannot multiply two ciphertexts (only a ciphertext by a plaintext number); multiply after decryption"
                )
            }
            (BinaryOperator::Multiply, true, false) => call(Op::Mul, vec![left, right]),
            (BinaryOperator::Multiply, false, true) => call(Op::Mul, vec![right, left]),
            (BinaryOperator::Divide, _, _) => {
                return plan_err!(
                    "`{text}`: `{column}` is encrypted, and ciphertexts cannot be divided; multiply by a decimal instead (x * 0.5), use AVG({column}) for a mean, or divide after decryption"
                )
            }
            (
                BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::Spaceship,
                _,
                _,
            ) => {
                return plan_err!(
                    "`{text}`: `{column}` is encrypted, and ciphertexts are randomised: the cloud can neither compare nor order encrypted values; compare plaintext columns, or decrypt the result first"
                )
            }
            _ => {
                return plan_err!(
                    "`{text}`: `{column}` is encrypted; only +, - and * by a plaintext number run on ciphertexts"
                )
            }
        };
        Ok(PlannerResult::Planned(planned))
    }
}

/// `sum` or `avg` as the session knows them: DataFusion's function, which on an encrypted
/// argument plans as the encrypted aggregate (see the module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SqlAggregate {
    builtin: Arc<AggregateUDF>,
    avg: bool,
    signature: Signature,
}

impl SqlAggregate {
    /// `sum`.
    pub fn sum() -> Self {
        Self::new(sum_udaf(), false)
    }

    /// `avg`.
    pub fn avg() -> Self {
        Self::new(avg_udaf(), true)
    }

    fn new(builtin: Arc<AggregateUDF>, avg: bool) -> Self {
        let base = builtin.signature();
        let mut variants = match &base.type_signature {
            TypeSignature::OneOf(v) => v.clone(),
            t => vec![t.clone()],
        };
        // Ciphertexts, uncast (a cast would lose the field metadata naming their key).
        variants.push(TypeSignature::Coercible(vec![Coercion::new_exact(
            TypeSignatureClass::Binary,
        )]));
        SqlAggregate {
            signature: Signature::one_of(variants, Volatility::Immutable),
            builtin,
            avg,
        }
    }

    /// DataFusion's own function.
    pub fn builtin(&self) -> &Arc<AggregateUDF> {
        &self.builtin
    }

    /// The encrypted aggregate a call on `field` becomes, or None for a plaintext argument.
    pub fn target(&self, field: &Field) -> Option<Kind> {
        if !is_binary(field.data_type()) && !field.metadata().contains_key(META_KEY_ID) {
            return None;
        }
        let boolean = matches!(
            EncryptedColumn::from_field(field),
            Ok(Some(c)) if c.plain_type == DataType::Boolean
        );
        Some(match (self.avg, boolean) {
            (true, _) => Kind::Avg,
            (false, true) => Kind::Count,
            (false, false) => Kind::Sum,
        })
    }

    fn called(&self) -> &'static str {
        if self.avg {
            "AVG"
        } else {
            "SUM"
        }
    }
}

impl AggregateUDFImpl for SqlAggregate {
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn aliases(&self) -> &[String] {
        self.builtin.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        match arg_fields {
            [f] => match self.target(f) {
                Some(kind) => CipherAggregate::new(kind).result_field(self.called(), arg_fields),
                None => self.builtin.return_field(arg_fields),
            },
            _ => self.builtin.return_field(arg_fields),
        }
    }

    fn is_nullable(&self) -> bool {
        self.builtin.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.builtin.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.builtin.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.builtin.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.create_sliding_accumulator(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<datafusion::common::ScalarValue> {
        self.builtin.default_value(data_type)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.builtin.documentation()
    }
}
