//! Plan checks for encrypted columns, run before DataFusion's own analysis so that an analyst
//! gets the reason in words, naming the column:
//! - a `UNION` must not mix a column's keys or scales: DataFusion merges (or drops) field metadata
//!   where inputs disagree, so the result would name one key for ciphertexts of two, and
//!   decrypting it would give wrong numbers;
//! - operations that cannot run on ciphertexts (WHERE / ORDER BY / GROUP BY / JOIN keys on an
//!   encrypted column, aggregates other than the encrypted ones and COUNT) are refused.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchema;
use datafusion::common::Result;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

use super::encrypted::{encrypted_column_in, is_encrypted};
use super::policy::{may_take_ciphertext, Clause, Refusal, ENCRYPTED_AGGREGATES};
use crate::lake::schema::{META_KEY_ID, META_SCALE};

/// Refuses set operations whose inputs disagree on a column's key id or scale, or mix an
/// encrypted column with a plaintext one.
#[derive(Debug, Default)]
pub(super) struct EncryptedColumnCheck;

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
                                    Some(k) => format!(
                                        "encrypted under key {k} at scale {}",
                                        s.map_or("?", |s| s.as_str())
                                    ),
                                    None => "not encrypted".to_owned(),
                                };
                                return Refusal::UnionMix {
                                    column: field.name().clone(),
                                    first: show(first),
                                    second: show(this),
                                }
                                .err();
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

fn check_operations(node: &LogicalPlan) -> Result<()> {
    let refuse = |clause, column| Refusal::Clause { clause, column }.err();
    match node {
        LogicalPlan::Filter(f) => {
            if let Some(c) = encrypted_column_in(&f.predicate, f.input.schema()) {
                return refuse(Clause::Where, c);
            }
        }
        LogicalPlan::Sort(s) => {
            for e in &s.expr {
                if let Some(c) = encrypted_column_in(&e.expr, s.input.schema()) {
                    return refuse(Clause::OrderBy, c);
                }
            }
        }
        LogicalPlan::Join(j) => {
            if let Some(c) = j
                .filter
                .as_ref()
                .and_then(|f| encrypted_column_in(f, &j.schema))
            {
                return refuse(Clause::Join, c);
            }
            for (l, r) in &j.on {
                for (e, input) in [(l, &j.left), (r, &j.right)] {
                    if let Some(c) = encrypted_column_in(e, input.schema()) {
                        return refuse(Clause::Join, c);
                    }
                }
            }
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            if let Some(f) = input
                .schema()
                .fields()
                .iter()
                .find(|f| f.metadata().contains_key(META_KEY_ID))
            {
                return refuse(Clause::Distinct, f.name().clone());
            }
        }
        LogicalPlan::Distinct(Distinct::On(on)) => {
            for e in &on.on_expr {
                if let Some(c) = encrypted_column_in(e, on.input.schema()) {
                    return refuse(Clause::DistinctOn, c);
                }
            }
        }
        LogicalPlan::Aggregate(a) => {
            let schema = a.input.schema();
            for g in &a.group_expr {
                if let Some(c) = encrypted_column_in(g, schema) {
                    return refuse(Clause::GroupBy, c);
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
                if let Some((func, column)) = bad {
                    return Refusal::Aggregate { func, column }.err();
                }
            }
        }
        _ => {}
    }
    let schema = merge_schema(&node.inputs());
    let mut bad = None;
    node.apply_expressions(|e| {
        bad = misuse(e, &schema);
        Ok(if bad.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    match bad {
        Some((what, column)) if what == "CASE" => Refusal::Case { column }.err(),
        Some((what, column)) => Refusal::Function { what, column }.err(),
        None => Ok(()),
    }
}

/// The first expression in `e` that takes an encrypted value it cannot handle: (what it is, the
/// encrypted column).
fn misuse(e: &Expr, schema: &DFSchema) -> Option<(String, String)> {
    let mut found = None;
    let _ = e.apply(|x| {
        if may_take_ciphertext(x) {
            return Ok(TreeNodeRecursion::Continue);
        }
        let mut column = None;
        let _ = x.apply_children(|child| {
            if is_encrypted(child, schema) {
                column =
                    Some(encrypted_column_in(child, schema).unwrap_or_else(|| child.to_string()));
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        match column {
            Some(c) => {
                found = Some((describe(x), c));
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    found
}

fn describe(e: &Expr) -> String {
    match e {
        Expr::ScalarFunction(f) => f.func.name().to_owned(),
        Expr::AggregateFunction(f) if f.params.distinct => {
            format!("{} DISTINCT", f.func.name())
        }
        Expr::AggregateFunction(f) => f.func.name().to_owned(),
        Expr::WindowFunction(_) => "a window function".into(),
        Expr::Case(_) => "CASE".into(),
        Expr::Cast(_) | Expr::TryCast(_) => "CAST".into(),
        Expr::BinaryExpr(b) => b.op.to_string(),
        Expr::Like(_) | Expr::SimilarTo(_) => "LIKE".into(),
        Expr::InList(_) => "IN".into(),
        Expr::Between(_) => "BETWEEN".into(),
        Expr::Not(_) => "NOT".into(),
        Expr::Negative(_) => "-".into(),
        other => other.variant_name().to_owned(),
    }
}
