//! A plan check that keeps ciphertexts of different keys or scales from being mixed in one
//! column. DataFusion merges (or drops) field metadata where inputs disagree, so a `UNION` of two
//! tables encrypted under different keys would otherwise yield one column whose metadata names
//! only one key: decrypting it would turn the other key's ciphertexts into wrong numbers.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::AnalyzerRule;

use crate::lake::schema::{META_KEY_ID, META_SCALE};

/// Refuses set operations whose inputs disagree on a column's key id or scale, or mix an
/// encrypted column with a plaintext one.
#[derive(Debug, Default)]
pub struct EncryptedColumnCheck;

impl AnalyzerRule for EncryptedColumnCheck {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.apply(|node| {
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
