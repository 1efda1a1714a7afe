//! SQL over the encrypted lake with DataFusion: the encrypted aggregates (`paillier_sum`,
//! `paillier_count`), a session configured to keep Parquet field metadata, and the registration
//! of encrypted tables.

pub mod check;
pub mod common;
pub mod count;
pub mod display;
pub mod sum;
pub mod table;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::AggregateUDF;
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

pub use table::{encrypted_table, EncryptedTableFactory, KeyRing};

/// Registers cipherlake's functions on a session.
pub fn register_all(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(sum::PaillierSum::default()));
    ctx.register_udaf(AggregateUDF::from(count::PaillierCount::default()));
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

/// DataFusion's analyzer rules with the encrypted-column check first: type coercion would
/// otherwise project every UNION input onto one merged field, hiding the disagreement.
fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> =
        vec![Arc::new(check::EncryptedColumnCheck)];
    rules.extend(Analyzer::new().rules);
    rules
}

/// A session ready for encrypted queries: functions registered, `CREATE EXTERNAL TABLE … STORED
/// AS PARQUET` going through the key checks, public keys from `keys`.
pub fn session(keys: KeyRing, target_partitions: Option<usize>) -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(config(target_partitions))
        .with_default_features()
        .with_analyzer_rules(analyzer_rules())
        .with_table_factory("PARQUET".into(), Arc::new(EncryptedTableFactory::new(keys)))
        .build();
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
