//! The per-row functions on ciphertexts (`arithmetic.rs`: `paillier_add`, `paillier_neg`,
//! `paillier_mul`, `paillier_add_plain`).

mod arithmetic;

use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::Expr;

pub(super) use arithmetic::{udf, CipherScalar, Op};

/// A call of a per-row function.
pub(super) fn call(op: Op, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf(op), args))
}
