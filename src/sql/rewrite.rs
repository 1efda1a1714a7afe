//! The analyzer rule that turns ordinary SQL on encrypted columns into the functions that run on
//! ciphertexts. It runs first, before DataFusion's type coercion, and rewrites:
//! - `sum(x)` / `avg(x)` (the session's [`SqlAggregate`]) into `paillier_sum(x)` (`paillier_count`
//!   for an encrypted boolean) / `paillier_avg(x)` when `x` is encrypted, and into DataFusion's own
//!   `sum` / `avg` otherwise;
//! - `-x` on a ciphertext into `paillier_neg(x)` (DataFusion would otherwise pass the field, and
//!   its key metadata, through unchanged: the value would decrypt without its sign). SQL never
//!   gets here with it (`statement.rs` writes `-x` as `0 - x`); a DataFrame's `-col(…)` does.
//!
//! Output names are kept (`sum(admissions.cost)` stays the column's name), so the rest of the plan
//! is untouched; `EXPLAIN` shows the functions that run.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{plan_err, DFSchema, Result};
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, WindowFunctionDefinition};
use datafusion::optimizer::AnalyzerRule;

use super::aggregate::udaf;
use super::check::encrypted_column_in;
use super::planner::{call, is_encrypted, SqlAggregate};
use super::scalar::Op;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct EncryptedRewrite;

impl AnalyzerRule for EncryptedRewrite {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(plan.transform_up_with_subqueries(rewrite_node)?.data)
    }

    fn name(&self) -> &str {
        "cipherlake_encrypted_rewrite"
    }
}

/// The schema a node's expressions are evaluated against.
fn input_schema(node: &LogicalPlan) -> DFSchema {
    match node {
        LogicalPlan::TableScan(ts) => ts.projected_schema.as_ref().clone(),
        _ => merge_schema(&node.inputs()),
    }
}

fn rewrite_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let schema = input_schema(&node);
    let names = NamePreserver::new(&node);
    let mut changed = false;
    let node = node
        .map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|x| rewrite_expr(x, &schema))?;
            changed |= t.transformed;
            Ok(t.update_data(|e| saved.restore(e)))
        })?
        .data;
    // An input's fields may have changed (a plain type after paillier_neg): always recompute,
    // as DataFusion's type coercion does.
    let node = node.recompute_schema()?;
    Ok(if changed {
        Transformed::yes(node)
    } else {
        Transformed::no(node)
    })
}

fn rewrite_expr(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::AggregateFunction(f) => {
            let Some(sql) = f.func.inner().downcast_ref::<SqlAggregate>() else {
                return Ok(Transformed::no(Expr::AggregateFunction(f)));
            };
            let target = match f.params.args.as_slice() {
                [arg] => {
                    let (_, field) = arg.to_field(schema)?;
                    sql.target(&field)
                }
                _ => None,
            };
            let func = match target {
                Some(kind) => {
                    if f.params.distinct {
                        return plan_err!(
                            "{}(DISTINCT {}): the argument is encrypted, and DISTINCT compares values, which ciphertexts do not allow",
                            f.func.name(),
                            f.params.args[0]
                        );
                    }
                    udaf(kind)
                }
                None => Arc::clone(sql.builtin()),
            };
            let p = f.params;
            Ok(Transformed::yes(Expr::AggregateFunction(
                AggregateFunction::new_udf(
                    func,
                    p.args,
                    p.distinct,
                    p.filter,
                    p.order_by,
                    p.null_treatment,
                ),
            )))
        }
        Expr::WindowFunction(w) => {
            let builtin = match &w.fun {
                WindowFunctionDefinition::AggregateUDF(u) => u
                    .inner()
                    .downcast_ref::<SqlAggregate>()
                    .map(|s| Arc::clone(s.builtin())),
                _ => None,
            };
            if let Some(arg) = w.params.args.iter().find(|a| is_encrypted(a, schema)) {
                let c = encrypted_column_in(arg, schema).unwrap_or_else(|| arg.to_string());
                return plan_err!(
                    "{}({c}) OVER (…): `{c}` is encrypted, and window functions do not run on ciphertexts; aggregate with GROUP BY instead",
                    w.fun
                );
            }
            match builtin {
                Some(b) => {
                    let mut w: WindowFunction = *w;
                    w.fun = WindowFunctionDefinition::AggregateUDF(b);
                    Ok(Transformed::yes(Expr::WindowFunction(Box::new(w))))
                }
                None => Ok(Transformed::no(Expr::WindowFunction(w))),
            }
        }
        Expr::Negative(inner) if is_encrypted(&inner, schema) => {
            Ok(Transformed::yes(call(Op::Neg, vec![*inner])))
        }
        e => Ok(Transformed::no(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Int64Type, Schema};
    use datafusion::prelude::col;

    use crate::lake::decrypt::decrypt_batch;
    use crate::lake::encrypt::encrypt_values;
    use crate::sql::common::fixture;
    use crate::sql::{session, KeyRing};

    /// The DataFrame API builds `Expr::Negative` directly (SQL never does): it must become
    /// `paillier_neg`, or the value would decrypt without its sign.
    #[tokio::test]
    async fn dataframe_negation_becomes_paillier_neg() {
        let sk = fixture::key();
        let pk = sk.public_key();
        let field = fixture::field("c", 0, DataType::Int64, None);
        let values = encrypt_values(pk, &[Some(5), None, Some(-7)]).unwrap();
        let batch =
            RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![Arc::new(values)])
                .unwrap();
        let ctx = session(KeyRing::new(), Some(1));
        let df = ctx
            .read_batch(batch)
            .unwrap()
            .select(vec![(-col("c")).alias("n")])
            .unwrap();
        let plan = format!(
            "{}",
            df.clone().into_optimized_plan().unwrap().display_indent()
        );
        assert!(plan.contains("paillier_neg(?table?.c)"), "{plan}");
        let out = df.collect().await.unwrap();
        let plain = decrypt_batch(sk, &out[0], 1, "result").unwrap();
        let got: Vec<Option<i64>> = plain.column(0).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(got, vec![Some(-5), None, Some(7)]);
    }
}
