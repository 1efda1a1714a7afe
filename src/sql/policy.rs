//! The one policy of the SQL layer: what may touch a ciphertext. Every refusal, wherever it is
//! found (the operator planner, the plan check, the function rewrite, the syntax diagnosis, the
//! functions' own argument checks), is a [`Refusal`]: one type, one message per case, naming the
//! column, the reason and what to write instead. The allow-lists live here too.

use std::fmt;

use datafusion::common::DataFusionError;
use datafusion::logical_expr::Expr;

use super::udf::CipherScalar;

/// The aggregates that accept an encrypted argument, by name (after the rewrite).
pub const ENCRYPTED_AGGREGATES: [&str; 4] =
    ["paillier_sum", "paillier_count", "paillier_avg", "count"];

/// Every function that takes encrypted values, as SQL names it (before planning): the
/// aggregates (also as `sum`, `avg`, `mean`, `count`) and the per-row functions.
pub const CIPHER_FUNCTIONS: [&str; 11] = [
    "sum",
    "avg",
    "mean",
    "count",
    "paillier_sum",
    "paillier_count",
    "paillier_avg",
    "paillier_add",
    "paillier_neg",
    "paillier_mul",
    "paillier_add_plain",
];

/// Whether the expression node `e` may take an encrypted input as it is (its children are
/// checked separately).
pub fn may_take_ciphertext(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Alias(_) | Expr::IsNull(_) | Expr::IsNotNull(_) => true,
        Expr::ScalarFunction(f) => f.func.inner().downcast_ref::<CipherScalar>().is_some(),
        Expr::AggregateFunction(f) => {
            let name = f.func.name().to_ascii_lowercase();
            ENCRYPTED_AGGREGATES.contains(&name.as_str()) && !f.params.distinct
        }
        _ => false,
    }
}

/// A plan clause that compares, orders or groups values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clause {
    /// `WHERE`
    Where,
    /// `ORDER BY`
    OrderBy,
    /// `JOIN … ON`
    Join,
    /// `SELECT DISTINCT`
    Distinct,
    /// `DISTINCT ON`
    DistinctOn,
    /// `GROUP BY`
    GroupBy,
}

/// Why a query cannot run on ciphertexts, and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A clause that needs to compare encrypted values.
    Clause {
        /// Which clause.
        clause: Clause,
        /// The encrypted column.
        column: String,
    },
    /// A comparison operator on a ciphertext (`text` is the expression as written).
    Compare {
        /// The expression as written.
        text: String,
        /// The encrypted column.
        column: String,
    },
    /// A division of a ciphertext.
    Divide {
        /// The expression as written.
        text: String,
        /// The encrypted column.
        column: String,
    },
    /// A product of two ciphertexts.
    MultiplyCiphertexts {
        /// The expression as written.
        text: String,
    },
    /// Any other operator on a ciphertext.
    Operator {
        /// The expression as written.
        text: String,
        /// The encrypted column.
        column: String,
    },
    /// `WHERE flag` / `HAVING flag` on an encrypted boolean.
    BarePredicate {
        /// `WHERE` or `HAVING`.
        clause: &'static str,
        /// The encrypted column.
        column: String,
    },
    /// `CASE` over a ciphertext.
    Case {
        /// The encrypted column.
        column: String,
    },
    /// A function other than the encrypted ones on a ciphertext (`what` names it).
    Function {
        /// The function.
        what: String,
        /// The encrypted column.
        column: String,
    },
    /// `MIN`, `MAX` and other aggregates that compare values, or that do not run on ciphertexts.
    Aggregate {
        /// The aggregate function.
        func: String,
        /// The encrypted column.
        column: String,
    },
    /// `SUM(DISTINCT x)` and the like.
    DistinctAggregate {
        /// The aggregate function.
        func: String,
        /// Its argument as written.
        arg: String,
    },
    /// A window function over a ciphertext.
    Window {
        /// The window function.
        func: String,
        /// The encrypted column.
        column: String,
    },
    /// A `UNION` whose inputs disagree on a column's key or scale.
    UnionMix {
        /// The column.
        column: String,
        /// Its key and scale in the first input.
        first: String,
        /// Its key and scale in the disagreeing input.
        second: String,
    },
}

const RANDOMISED: &str =
    "ciphertexts are randomised: the cloud can neither compare nor order encrypted values";
const ONLY: &str = "on encrypted columns only SUM, AVG, COUNT, IS [NOT] NULL, + and -, and * by a plaintext number run";

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Clause { clause, column: c } => match clause {
                Clause::Where => write!(f, "WHERE on encrypted column `{c}` cannot run: {RANDOMISED}; filter on plaintext columns (IS NULL / IS NOT NULL is allowed)"),
                Clause::OrderBy => write!(f, "ORDER BY encrypted column `{c}` cannot run: {RANDOMISED}; decrypt the result, then sort"),
                Clause::Join => write!(f, "JOIN on encrypted column `{c}` cannot run: {RANDOMISED}; join on plaintext keys"),
                Clause::Distinct => write!(f, "SELECT DISTINCT on encrypted column `{c}` cannot run: {RANDOMISED}, so equal values would not be found; select plaintext columns only"),
                Clause::DistinctOn => write!(f, "DISTINCT ON encrypted column `{c}` cannot run: {RANDOMISED}"),
                Clause::GroupBy => write!(f, "GROUP BY encrypted column `{c}` cannot run: {RANDOMISED}, so equal values would not group; group by plaintext columns"),
            },
            Refusal::Compare { text, column } => write!(f, "`{text}`: `{column}` is encrypted, and {RANDOMISED}; compare plaintext columns, or decrypt the result first"),
            Refusal::Divide { text, column } => write!(f, "`{text}`: `{column}` is encrypted, and ciphertexts cannot be divided; multiply by a decimal instead (x * 0.5), use AVG({column}) for a mean, or divide after decryption"),
            Refusal::MultiplyCiphertexts { text } => write!(f, "`{text}`: both operands are encrypted, and Paillier cannot multiply two ciphertexts (only a ciphertext by a plaintext number); multiply after decryption"),
            Refusal::Operator { text, column } => write!(f, "`{text}`: `{column}` is encrypted; only +, - and * by a plaintext number run on ciphertexts"),
            Refusal::BarePredicate { clause, column: c } => write!(f, "{clause} {c}: `{c}` is encrypted, and the cloud cannot test a ciphertext; filter on plaintext columns, or count the rows with SUM({c})"),
            Refusal::Case { column: c } => write!(f, "CASE({c}): `{c}` is encrypted and CASE cannot run on ciphertexts; to aggregate a subset of rows, use SUM({c}) FILTER (WHERE …)"),
            Refusal::Function { what, column: c } => write!(f, "{what}({c}): `{c}` is encrypted and {what} cannot run on ciphertexts; {ONLY}"),
            Refusal::Aggregate { func, column: c } => {
                let why = match func.to_ascii_lowercase().as_str() {
                    "min" | "max" | "median" | "first_value" | "last_value" => {
                        format!("{func} compares values, which ciphertexts do not allow")
                    }
                    _ => format!("{func} cannot run on ciphertexts"),
                };
                write!(f, "{func}({c}): `{c}` is encrypted and {why}; use SUM({c}) for a sum (a count of TRUE for a boolean), AVG({c}) for a mean, COUNT({c}) for how many rows have a value")
            }
            Refusal::DistinctAggregate { func, arg } => write!(f, "{func}(DISTINCT {arg}): the argument is encrypted, and DISTINCT compares values, which ciphertexts do not allow"),
            Refusal::Window { func, column: c } => write!(f, "{func}({c}) OVER (…): `{c}` is encrypted, and window functions do not run on ciphertexts; aggregate with GROUP BY instead"),
            Refusal::UnionMix { column, first, second } => write!(f, "UNION column `{column}` mixes values {first} with values {second}: a column must use one key and one scale"),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for DataFusionError {
    /// A planning error that keeps the refusal (callers can downcast to it).
    fn from(r: Refusal) -> Self {
        DataFusionError::Plan(r.to_string())
    }
}

impl Refusal {
    /// As a planning error.
    pub fn err<T>(self) -> datafusion::common::Result<T> {
        Err(self.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_the_column_and_an_alternative() {
        let c = || "cost".to_owned();
        let all = [
            Refusal::Clause {
                clause: Clause::Where,
                column: c(),
            },
            Refusal::Compare {
                text: "cost > 1".into(),
                column: c(),
            },
            Refusal::Divide {
                text: "cost / 2".into(),
                column: c(),
            },
            Refusal::Operator {
                text: "cost % 2".into(),
                column: c(),
            },
            Refusal::BarePredicate {
                clause: "WHERE",
                column: c(),
            },
            Refusal::Case { column: c() },
            Refusal::Function {
                what: "abs".into(),
                column: c(),
            },
            Refusal::Aggregate {
                func: "MIN".into(),
                column: c(),
            },
            Refusal::Window {
                func: "sum".into(),
                column: c(),
            },
        ];
        for r in all {
            let s = r.to_string();
            assert!(s.contains("`cost`"), "{s}");
            assert!(s.contains(';'), "no alternative: {s}");
        }
    }
}
