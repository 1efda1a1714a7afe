//! Expression builders for DataFrame users: the encrypted functions as `Expr`s, e.g.
//! `df.aggregate(vec![col("region")], vec![paillier_sum(col("cost"))])`. (The SQL rewrite of
//! `+`, `-`, `*` happens in the SQL planner, so DataFrame code calls these by name.)

use datafusion::logical_expr::Expr;

use super::udaf::{udaf, Kind};
use super::udf::{call, Op};

/// The encrypted sum of an encrypted column.
pub fn paillier_sum(x: Expr) -> Expr {
    udaf(Kind::Sum).call(vec![x])
}

/// How many rows have an encrypted boolean set.
pub fn paillier_count(flag: Expr) -> Expr {
    udaf(Kind::Count).call(vec![flag])
}

/// The encrypted sum and row count of a column, decrypted as their quotient.
pub fn paillier_avg(x: Expr) -> Expr {
    udaf(Kind::Avg).call(vec![x])
}

/// `x + y` of two encrypted columns under one key.
pub fn paillier_add(x: Expr, y: Expr) -> Expr {
    call(Op::Add, vec![x, y])
}

/// `-x` of an encrypted column.
pub fn paillier_neg(x: Expr) -> Expr {
    call(Op::Neg, vec![x])
}

/// `x * k` for a plaintext k (a literal or a plaintext column).
pub fn paillier_mul(x: Expr, k: Expr) -> Expr {
    call(Op::Mul, vec![x, k])
}

/// `x + k` for a plaintext k.
pub fn paillier_add_plain(x: Expr, k: Expr) -> Expr {
    call(Op::AddPlain, vec![x, k])
}
