//! The release path's plan rules, decided on the hospital's own analysed plan of a request (never
//! the cloud's): SQL that could weight, repeat or difference individual rows inside one released
//! cell is refused, with the reason. What remains is an aggregate in which every contributing lake
//! row counts once, with one public weight, so that the row minimum means what it says.
//!
//! - **Per-row weights**: the plaintext operand of `paillier_mul` (`x * k`) or `paillier_add_plain`
//!   (`x + k`) must be a constant: `SUM(cost * CASE WHEN patient_id = 46 THEN 1 ELSE 0 END)`
//!   (REDTEAM B4) or `SUM(cost * los_plain)` are refused.
//! - **Flags in arithmetic**: an encrypted boolean may only be summed or averaged as it is (a
//!   count, suppressed when small); `SUM(flag * 1)` or `SUM(flag + 0)` (B6 i) would be a count
//!   tagged as a sum, and are refused.
//! - **Differences of aggregates**: `SUM(a) - SUM(a) FILTER (WHERE …)` is one patient; adding or
//!   subtracting aggregates is refused on the release path (decrypt each, then compute).
//! - **Rows counted more than once**: encrypted values may not flow through a union, an unnest, a
//!   recursive query, a join of two encrypted inputs or a join without equality keys. A join of
//!   an encrypted input with a plaintext one (a dimension table, a `VALUES` list) is allowed when
//!   the plaintext side's join keys are unique, which the hospital checks by running that side
//!   itself ([`PlanCheck::unique_keys`]); semi- and anti-joins only filter.
//!
//! These rules are decided on the plan, so they are conservative; row-level provenance (which
//! lake rows and owners contributed to each cell) is the next step.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, LogicalPlan};

use crate::lake::schema::EncryptedColumn;

/// One refusal: where, and why.
fn refusal(expr: &Expr, why: &str) -> String {
    format!("`{expr}`: {why}")
}

/// Whether any field of `schema` is encrypted.
fn carries_ciphertexts(schema: &DFSchema) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| matches!(EncryptedColumn::from_field(f), Ok(Some(_))))
}

/// The encrypted column an expression yields in `schema`, if any.
fn encrypted(expr: &Expr, schema: &DFSchema) -> Option<EncryptedColumn> {
    let (_, field) = expr.to_field(schema).ok()?;
    EncryptedColumn::from_field(&field).ok().flatten()
}

/// What the rules found in a plan: refusals, and joins whose other side must have unique keys.
#[derive(Debug, Default)]
pub struct PlanCheck {
    /// Each refusal, with its reason (empty: nothing refused on the plan alone).
    pub reasons: Vec<String>,
    /// The plaintext side of each join an encrypted input goes through, and its join keys: every
    /// key value must occur at most once, or encrypted rows would be repeated.
    pub unique_keys: Vec<UniqueKeys>,
}

/// A plaintext join input whose keys must be unique.
#[derive(Debug)]
pub struct UniqueKeys {
    /// The input.
    pub plan: LogicalPlan,
    /// Its join keys.
    pub keys: Vec<Expr>,
}

/// The release-path rules applied to an analysed plan.
pub fn check(plan: &LogicalPlan) -> PlanCheck {
    let mut out = PlanCheck::default();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::Join(j) if carries_ciphertexts(j.schema.as_ref()) => {
                let filtering = matches!(
                    j.join_type,
                    JoinType::LeftSemi | JoinType::LeftAnti | JoinType::RightSemi | JoinType::RightAnti
                );
                let (left, right) = (
                    carries_ciphertexts(j.left.schema()),
                    carries_ciphertexts(j.right.schema()),
                );
                if filtering {
                    // Only filters the side it returns.
                } else if left && right {
                    out.reasons.push(format!(
                        "a {} join of two inputs that both carry encrypted values can pair a lake row with many others; aggregate each side on its own",
                        j.join_type
                    ));
                } else {
                    let pairs = equi_keys(j);
                    if pairs.is_empty() {
                        out.reasons.push(format!(
                            "a {} join without equality keys carries encrypted values: every lake row would repeat once per row of the other side",
                            j.join_type
                        ));
                        return Ok(TreeNodeRecursion::Continue);
                    }
                    // The encrypted side's rows repeat once per match on the other side: that
                    // side's join keys must be unique, which the hospital checks by running it.
                    let (other, keys) = if left {
                        (j.right.as_ref(), pairs.into_iter().map(|(_, r)| r).collect())
                    } else {
                        (j.left.as_ref(), pairs.into_iter().map(|(l, _)| l).collect())
                    };
                    out.unique_keys.push(UniqueKeys {
                        plan: other.clone(),
                        keys,
                    });
                }
            }
            LogicalPlan::Union(u) if carries_ciphertexts(u.schema.as_ref()) => out.reasons.push(
                "a UNION carries encrypted values: it can count a lake row twice; query each table on its own".into(),
            ),
            LogicalPlan::Unnest(u) if carries_ciphertexts(u.schema.as_ref()) => {
                out.reasons.push("UNNEST carries encrypted values: it repeats rows".into())
            }
            LogicalPlan::RecursiveQuery(_) => {
                out.reasons.push("a recursive query can repeat rows: not on the release path".into())
            }
            _ => {}
        }
        // Expressions are checked against the schema their columns come from.
        let inputs = node.inputs();
        if let [input] = inputs.as_slice() {
            let schema = input.schema();
            for e in node.expressions() {
                check_expr(&e, schema, &mut out.reasons);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out.reasons.sort();
    out.reasons.dedup();
    out
}

/// A join's equality keys as (left, right) pairs: its `on` list, and the `l = r` conjuncts of its
/// filter that compare a left column with a right one (the analysed plan keeps `JOIN … ON a = b`
/// as a filter; further conjuncts only remove matches).
fn equi_keys(j: &datafusion::logical_expr::Join) -> Vec<(Expr, Expr)> {
    use datafusion::logical_expr::utils::split_conjunction;
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let mut keys = j.on.clone();
    let side = |e: &Expr, schema: &DFSchema| {
        let cols = e.column_refs();
        !cols.is_empty() && cols.iter().all(|c| schema.has_column(c))
    };
    if let Some(filter) = &j.filter {
        for c in split_conjunction(filter) {
            if let Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) = c
            {
                let (l, r) = (left.as_ref(), right.as_ref());
                if side(l, j.left.schema()) && side(r, j.right.schema()) {
                    keys.push((l.clone(), r.clone()));
                } else if side(r, j.left.schema()) && side(l, j.right.schema()) {
                    keys.push((r.clone(), l.clone()));
                }
            }
        }
    }
    keys
}

fn check_expr(expr: &Expr, schema: &DFSchema, out: &mut Vec<String>) {
    let _ = expr.apply(|e| {
        let Expr::ScalarFunction(f) = e else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let name = f.func.name();
        if !name.starts_with("paillier_") {
            return Ok(TreeNodeRecursion::Continue);
        }
        let cipher_args: Vec<EncryptedColumn> =
            f.args.iter().filter_map(|a| encrypted(a, schema)).collect();
        if cipher_args.iter().any(|c| c.plain_type == datafusion::arrow::datatypes::DataType::Boolean)
        {
            out.push(refusal(
                e,
                "arithmetic on an encrypted flag turns a count into a sum that escapes small-count suppression; use SUM(flag) or AVG(flag) as they are",
            ));
        }
        match name {
            "paillier_mul" | "paillier_add_plain" => {
                if let Some(k) = f.args.get(1) {
                    if !k.column_refs().is_empty() {
                        out.push(refusal(
                            e,
                            "a per-row plaintext weight (from a column, a CASE) can single out one patient inside an aggregate; only a constant factor or term is released",
                        ));
                    }
                }
                if name == "paillier_add_plain" && cipher_args.iter().any(|c| c.aggregate.is_some()) {
                    out.push(refusal(
                        e,
                        "a constant added to an aggregate is computed after decryption, not released encrypted",
                    ));
                }
            }
            "paillier_add" if cipher_args.iter().any(|c| c.aggregate.is_some()) => {
                out.push(refusal(
                    e,
                    "adding or subtracting aggregates can isolate one patient (a total minus all but one); decrypt each aggregate, then compute",
                ));
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
}
