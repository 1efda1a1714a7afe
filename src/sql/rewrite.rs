//! The function rewrite that turns ordinary SQL on encrypted columns into the functions that run
//! on ciphertexts. DataFusion's `ApplyFunctionRewrites` applies it, first among the analyzer's
//! passes (before type coercion); it rewrites:
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
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::{Expr, ExprSchemable, WindowFunctionDefinition};

use super::encrypted::{encrypted_column_in, is_encrypted};
use super::policy::Refusal;
use super::udaf::{udaf, SqlAggregate};
use super::udf::{call, Op};

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct EncryptedRewrite;

impl FunctionRewrite for EncryptedRewrite {
    fn name(&self) -> &str {
        "cipherlake_encrypted_rewrite"
    }

    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        _config: &ConfigOptions,
    ) -> Result<Transformed<Expr>> {
        rewrite_expr(expr, schema)
    }
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
                        return Refusal::DistinctAggregate {
                            func: f.func.name().to_owned(),
                            arg: f.params.args[0].to_string(),
                        }
                        .err();
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
                let column = encrypted_column_in(arg, schema).unwrap_or_else(|| arg.to_string());
                return Refusal::Window {
                    func: w.fun.to_string(),
                    column,
                }
                .err();
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
    use crate::sql::encrypted::fixture;
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
