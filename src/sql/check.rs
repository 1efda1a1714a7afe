//! Plan checks for encrypted columns, run before DataFusion's own analysis so that an analyst
//! gets the reason in words, naming the column:
//! - a `UNION` must not mix a column's keys or scales: DataFusion merges (or drops) field metadata
//!   where inputs disagree, so the result would name one key for ciphertexts of two, and
//!   decrypting it would give wrong numbers;
//! - operations that cannot run on ciphertexts (WHERE / ORDER BY / GROUP BY / JOIN keys on an
//!   encrypted column, aggregates other than the encrypted ones and COUNT) are refused.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{plan_err, Result};
use datafusion::common::{DFSchema, ExprSchema};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

use crate::lake::schema::{META_KEY_ID, META_SCALE};

/// Refuses set operations whose inputs disagree on a column's key id or scale, or mix an
/// encrypted column with a plaintext one.
#[derive(Debug, Default)]
pub struct EncryptedColumnCheck;

impl AnalyzerRule for EncryptedColumnCheck {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.apply(|node| {
            check_operations(node)?;
            if let LogicalPlan::Union(union) = node {
                for (i, field) in union.schema.fields().iter().enumerate() {
                    let mut seen: Option<(Option<&String>, Option<&String>)> = None;
                    for input in &union.inputs {
                        let f = input.schema().field(i);
                        let this = (f.metadata().get(META_KEY_ID), f.metadata().get(META_SCALE));
                        match seen {
                            None => seen = Some(this),
                            Some(first) if first != this => {
                                let show = |(k, s): (Option<&String>, Option<&String>)| match k {
                                    Some(k) => format!("encrypted under key {k} at scale {}", s.map_or("?", |s| s.as_str())),
                                    None => "not encrypted".to_owned(),
                                };
                                return plan_err!(
                                    "UNION column `{}` mixes values {} with values {}: a column must use one key and one scale",
                                    field.name(),
                                    show(first),
                                    show(this)
                                );
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "cipherlake_encrypted_column_check"
    }
}

/// The first encrypted column `expr` uses (its value, not only whether it is NULL).
fn encrypted_column_in(expr: &Expr, schema: &DFSchema) -> Option<String> {
    let mut found = None;
    let _ = expr.apply(|e| {
        match e {
            // NULL-ness of a ciphertext is visible to the cloud anyway: filtering on it is fine.
            Expr::IsNull(inner) | Expr::IsNotNull(inner)
                if matches!(inner.as_ref(), Expr::Column(_)) =>
            {
                return Ok(TreeNodeRecursion::Jump);
            }
            Expr::Column(c) => {
                if let Ok(f) = schema.field_from_column(c) {
                    if f.metadata().contains_key(META_KEY_ID) {
                        found = Some(c.name.clone());
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Aggregates that are fine on an encrypted column.
const ENCRYPTED_AGGREGATES: [&str; 3] = ["paillier_sum", "paillier_count", "count"];

fn check_operations(node: &LogicalPlan) -> Result<()> {
    let why =
        "ciphertexts are randomised: the cloud can neither compare nor order encrypted values";
    match node {
        LogicalPlan::Filter(f) => {
            if let Some(c) = encrypted_column_in(&f.predicate, f.input.schema()) {
                return plan_err!("WHERE on encrypted column `{c}` cannot run: {why}; filter on plaintext columns (IS NULL / IS NOT NULL is allowed)");
            }
        }
        LogicalPlan::Sort(s) => {
            for e in &s.expr {
                if let Some(c) = encrypted_column_in(&e.expr, s.input.schema()) {
                    return plan_err!("ORDER BY encrypted column `{c}` cannot run: {why}; decrypt the result, then sort");
                }
            }
        }
        LogicalPlan::Join(j) => {
            if let Some(c) = j
                .filter
                .as_ref()
                .and_then(|f| encrypted_column_in(f, &j.schema))
            {
                return plan_err!(
                    "JOIN on encrypted column `{c}` cannot run: {why}; join on plaintext keys"
                );
            }
            for (l, r) in &j.on {
                for (e, input) in [(l, &j.left), (r, &j.right)] {
                    if let Some(c) = encrypted_column_in(e, input.schema()) {
                        return plan_err!("JOIN on encrypted column `{c}` cannot run: {why}; join on plaintext keys");
                    }
                }
            }
        }
        LogicalPlan::Aggregate(a) => {
            let schema = a.input.schema();
            for g in &a.group_expr {
                if let Some(c) = encrypted_column_in(g, schema) {
                    return plan_err!("GROUP BY encrypted column `{c}` cannot run: {why}, so equal values would not group; group by plaintext columns");
                }
            }
            for e in &a.aggr_expr {
                let mut bad = None;
                let _ = e.apply(|x| {
                    if let Expr::AggregateFunction(f) = x {
                        let name = f.func.name().to_ascii_lowercase();
                        if !ENCRYPTED_AGGREGATES.contains(&name.as_str()) {
                            if let Some(c) = f
                                .params
                                .args
                                .iter()
                                .find_map(|arg| encrypted_column_in(arg, schema))
                            {
                                bad = Some((f.func.name().to_owned(), c));
                                return Ok(TreeNodeRecursion::Stop);
                            }
                        }
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
                if let Some((func, c)) = bad {
                    return plan_err!(
                        "{func}({c}): `{c}` is encrypted and {func} cannot run on ciphertexts; use paillier_sum({c}) for a sum, paillier_count({c}) for a count of TRUE, COUNT({c}) for a plain count"
                    );
                }
            }
        }
        _ => {}
    }
    Ok(())
}
