//! Ordinary SQL arithmetic on encrypted columns, at the SQL planner: DataFusion computes every
//! expression's type while it plans the SQL, before any analyzer rule runs, so `x + y` on binary
//! ciphertexts would fail right there with a type error. [`CipherPlanner`], an `ExprPlanner`,
//! sees each binary operator with the input schema. On an encrypted operand it plans `+`, `-`
//! and `*` by a plaintext as the per-row functions (`udf::arithmetic`), and refuses the rest
//! (comparisons, division, `x * y` of two ciphertexts) with the policy's reason. (`SUM`/`AVG`
//! are the other SQL-planning hook: `udaf::sql_aggregate`.)

use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::encrypted::{encrypted_column_in, is_encrypted};
use super::policy::Refusal;
use super::udf::{call, Op};

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
pub(super) struct CipherPlanner;

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
                return Refusal::MultiplyCiphertexts { text }.err()
            }
            (BinaryOperator::Multiply, true, false) => call(Op::Mul, vec![left, right]),
            (BinaryOperator::Multiply, false, true) => call(Op::Mul, vec![right, left]),
            (BinaryOperator::Divide, _, _) => return Refusal::Divide { text, column }.err(),
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
            ) => return Refusal::Compare { text, column }.err(),
            _ => return Refusal::Operator { text, column }.err(),
        };
        Ok(PlannerResult::Planned(planned))
    }
}
