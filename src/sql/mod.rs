//! SQL over the encrypted lake with DataFusion: the encrypted aggregates (`paillier_sum`,
//! `paillier_count`), a session configured to keep Parquet field metadata, and the registration
//! of encrypted tables.

pub mod aggregate;
pub mod check;
pub mod common;
pub mod display;
pub mod planner;
pub mod rewrite;
pub mod scalar;
pub mod statement;
pub mod table;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::AggregateUDF;
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

use aggregate::Kind;
use planner::SqlAggregate;
use scalar::Op;
pub use statement::{plan, plan_statement};
pub use table::{encrypted_table, EncryptedTableFactory, KeyRing};

/// Registers cipherlake's functions on a session: the encrypted aggregates, the per-row
/// functions, and `sum`/`avg` that plan as the encrypted aggregates on encrypted columns.
pub fn register_all(ctx: &SessionContext) {
    for kind in Kind::ALL {
        ctx.register_udaf(aggregate::udaf(kind).as_ref().clone());
    }
    for op in Op::ALL {
        ctx.register_udf(scalar::udf(op).as_ref().clone());
    }
    ctx.register_udaf(AggregateUDF::from(SqlAggregate::sum()));
    ctx.register_udaf(AggregateUDF::from(SqlAggregate::avg()));
}

/// Session settings: Parquet field metadata kept (it names each column's key), the given number of
/// partitions (default: one per core).
pub fn config(target_partitions: Option<usize>) -> SessionConfig {
    let mut cfg =
        SessionConfig::new().set_bool("datafusion.execution.parquet.skip_metadata", false);
    if let Some(p) = target_partitions {
        cfg = cfg.with_target_partitions(p.max(1));
    }
    cfg
}

/// DataFusion's analyzer rules after cipherlake's: the rewrite of ordinary SQL into the encrypted
/// functions, then the encrypted-column check (type coercion would otherwise project every UNION
/// input onto one merged field, hiding the disagreement).
pub fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![
        Arc::new(rewrite::EncryptedRewrite),
        Arc::new(check::EncryptedColumnCheck),
    ];
    rules.extend(Analyzer::new().rules);
    rules
}

/// A session ready for encrypted queries: functions registered, `CREATE EXTERNAL TABLE … STORED
/// AS PARQUET` going through the key checks, public keys from `keys`.
pub fn session(keys: KeyRing, target_partitions: Option<usize>) -> SessionContext {
    let mut builder = SessionStateBuilder::new()
        .with_config(config(target_partitions))
        .with_default_features()
        .with_analyzer_rules(analyzer_rules())
        .with_table_factory("PARQUET".into(), Arc::new(EncryptedTableFactory::new(keys)));
    // First, so that arithmetic on ciphertexts is planned before any other planner sees it.
    builder
        .expr_planners()
        .get_or_insert_with(Vec::new)
        .insert(0, Arc::new(planner::CipherPlanner));
    let state = builder.build();
    let ctx = SessionContext::new_with_state(state);
    register_all(&ctx);
    ctx
}

/// Registers an encrypted Parquet table `name` at `location` (file, folder, glob or URL).
pub async fn register_table(
    ctx: &SessionContext,
    name: &str,
    location: &str,
    keys: &KeyRing,
) -> Result<()> {
    let table = encrypted_table(&ctx.state(), name, location, keys).await?;
    ctx.register_table(name, table)?;
    Ok(())
}
