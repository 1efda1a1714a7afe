//! SQL over the encrypted lake with DataFusion: the encrypted aggregates and per-row functions,
//! the planning hooks that let ordinary SQL run on ciphertexts (or be refused with a reason), and
//! the registration of encrypted tables.
//!
//! - [`register_all`] registers the functions that *run* (`paillier_*`) into any function
//!   registry: what a Ballista executor needs, since plans name only those after analysis.
//! - [`with_cipherlake`] adds the planning parts whose order matters to a session builder: the
//!   operator planner first, `sum`/`avg` that plan as encrypted aggregates, the function rewrite
//!   and the plan check before type coercion, and `CREATE EXTERNAL TABLE … STORED AS PARQUET`.
//! - [`session`] is both, with Parquet field metadata kept.

mod check;
pub mod display;
mod encrypted;
pub mod expr_fn;
mod keyring;
mod planner;
pub mod policy;
mod rewrite;
mod syntax;
pub mod table;
pub mod trace;
mod udaf;
mod udf;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::AggregateUDF;
use datafusion::optimizer::analyzer::function_rewrite::ApplyFunctionRewrites;
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

pub use keyring::KeyRing;
pub use syntax::{plan, plan_statement};
pub use table::{encrypted_table, EncryptedTableFactory, StoreOptions};
use udaf::{Kind, SqlAggregate};
use udf::Op;

/// Registers the functions that run on ciphertexts: `paillier_sum`, `paillier_count`,
/// `paillier_avg`, `paillier_add`, `paillier_neg`, `paillier_mul`, `paillier_add_plain`.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for kind in Kind::ALL {
        registry.register_udaf(udaf::udaf(kind))?;
    }
    for op in Op::ALL {
        registry.register_udf(udf::udf(op))?;
    }
    Ok(())
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

/// The analyzer passes, in order: the rewrite of ordinary SQL into the encrypted functions
/// (DataFusion's `ApplyFunctionRewrites` with cipherlake's rewrite), the encrypted-column check
/// (type coercion would otherwise project every UNION input onto one merged field, hiding the
/// disagreement), then DataFusion's own.
pub fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![
        Arc::new(ApplyFunctionRewrites::new(vec![Arc::new(
            rewrite::EncryptedRewrite,
        )])),
        Arc::new(check::EncryptedColumnCheck),
    ];
    rules.extend(Analyzer::new().rules);
    rules
}

/// Adds cipherlake's planning to a session builder (see the module documentation). `keys` and
/// `store_options` serve `CREATE EXTERNAL TABLE`.
pub fn with_cipherlake(
    builder: SessionStateBuilder,
    keys: KeyRing,
    store_options: Vec<(String, String)>,
) -> SessionStateBuilder {
    let mut builder = builder
        .with_analyzer_rules(analyzer_rules())
        .with_table_factory(
            "PARQUET".into(),
            Arc::new(EncryptedTableFactory::new(keys, store_options)),
        );
    // First, so that arithmetic on ciphertexts is planned before any other planner sees it.
    builder
        .expr_planners()
        .get_or_insert_with(Vec::new)
        .insert(0, Arc::new(planner::CipherPlanner));
    builder
        .aggregate_functions()
        .get_or_insert_with(Vec::new)
        .extend([
            Arc::new(AggregateUDF::from(SqlAggregate::sum())),
            Arc::new(AggregateUDF::from(SqlAggregate::avg())),
        ]);
    builder
}

/// A session ready for encrypted queries: DataFusion's defaults, cipherlake's planning and
/// functions, public keys from `keys`. Remote tables need their object store registered
/// (`table::register_object_store`), or `session_with_stores`.
pub fn session(keys: KeyRing, target_partitions: Option<usize>) -> SessionContext {
    session_with_stores(keys, target_partitions, Vec::new())
}

/// As [`session`], with the options `CREATE EXTERNAL TABLE` builds object stores from.
pub fn session_with_stores(
    keys: KeyRing,
    target_partitions: Option<usize>,
    store_options: Vec<(String, String)>,
) -> SessionContext {
    let builder = SessionStateBuilder::new()
        .with_config(config(target_partitions))
        .with_default_features();
    let mut state = with_cipherlake(builder, keys, store_options).build();
    // A session state accepts every function: registration cannot fail.
    let _ = register_all(&mut state);
    SessionContext::new_with_state(state)
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
