//! `cipherlake query`: run SQL over the encrypted lake, as the untrusted cloud. Takes public keys
//! only; encrypted aggregates come out encrypted.

use std::path::PathBuf;

use anyhow::Context;
use cipherlake::keyfile;
use cipherlake::lake::atomic::Output;
use cipherlake::lake::atomic::Privacy;
use cipherlake::lake::output::{BatchWriter, Format};
use cipherlake::release::verify::{make_request, release_refusals};
use cipherlake::sql::display::{render, text_schema, CipherText};
use cipherlake::sql::{self, KeyRing};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use futures::StreamExt;
use std::io::Write;

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// SQL to run (several statements separated by `;`: the last one's result is output).
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    command: Option<String>,
    /// A file of SQL.
    #[arg(short = 'f', long, value_name = "FILE.sql")]
    file: Option<PathBuf>,
    /// Register a table: NAME=LOCATION (file, folder, glob, or s3:// gs:// az:// file:// URL).
    #[arg(long = "table", value_name = "NAME=LOCATION")]
    tables: Vec<String>,
    /// A public key whose encrypted columns the query aggregates (repeatable).
    #[arg(long = "key", value_name = "public.json")]
    keys: Vec<PathBuf>,
    /// Key ids to pin (repeatable): every --key must have one of them, and each must be given.
    #[arg(long = "key-id", value_name = "HEX")]
    key_ids: Vec<String>,
    /// table, csv, json, ndjson or parquet (default: from the output's extension; table on stdout).
    #[arg(long)]
    format: Option<String>,
    /// Where to write the result (`-`: standard output).
    #[arg(long, default_value = "-", value_name = "PATH|-")]
    output: String,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// Also write a decryption request for the result (needs a Parquet --output and --roster):
    /// the SQL, the tables, every signed lake file read, the result's hash, bound by an id.
    #[arg(
        long,
        value_name = "FILE",
        requires = "roster",
        requires = "requester_key"
    )]
    request: Option<PathBuf>,
    #[command(flatten)]
    roster: super::owners::RosterFlags,
    /// Who asks for the decryption (with --request): a name the hospitals know.
    #[arg(long, value_name = "NAME", default_value = "analyst")]
    requester: String,
    /// The requester's public key (`age1…`, or the file from `requester-key`): hospitals seal
    /// their partial decryptions to it, and only its secret half can combine them.
    #[arg(long, value_name = "AGE1…|FILE")]
    requester_key: Option<String>,
    /// DataFusion partitions (default: one per core).
    #[arg(long, value_name = "N")]
    partitions: Option<usize>,
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let keys = key_ring(&args.keys, &args.key_ids)?;
    let tables = args
        .tables
        .iter()
        .map(|t| table_flag(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sql_text = match (&args.command, &args.file) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => anyhow::bail!("give SQL with -c or -f"),
    };
    let roster = args.roster.load()?;
    let recipient = match &args.requester_key {
        Some(k) => cipherlake::release::requester::recipient(k)?,
        None => String::new(),
    };
    if args.request.is_some() {
        anyhow::ensure!(
            args.output != "-" && args.format.as_deref().is_none_or(|f| f == "parquet"),
            "--request needs the result as a Parquet file (--output result.parquet): hospitals decrypt that file"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the query runtime")?;
    runtime.block_on(async {
        // Object-store credentials come from the environment, as the tools of each cloud read them.
        let stores: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                ["AWS_", "GOOGLE_", "AZURE_"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .collect();
        let ctx = sql::session_with_stores(keys.clone(), args.partitions, stores.clone());
        for (name, location) in &tables {
            sql::table::register_object_store(&ctx.state(), location, &stores).with_context(
                || format!("cannot open the store of table `{name}` at {location}"),
            )?;
            sql::register_table(&ctx, name, location, &keys)
                .await
                .with_context(|| format!("cannot register table `{name}` at {location}"))?;
        }
        let statements = DFParser::parse_sql(&sql_text).context("SQL syntax error")?;
        anyhow::ensure!(!statements.is_empty(), "no SQL statement given");
        anyhow::ensure!(
            args.request.is_none() || statements.len() == 1,
            "a decryption request holds one query over --table tables ({} statements given)",
            statements.len()
        );
        if args.request.is_some() {
            // The hospitals apply these rules to their own plan; the analyst hears of them first.
            let reasons = release_refusals(&ctx, &sql_text).await?;
            anyhow::ensure!(
                reasons.is_empty(),
                "no decryption request can be made for this SQL: hospitals would refuse it on the release path: {}",
                cipherlake::error::join_limited(&reasons, "; ")
            );
        }
        let last = statements.len() - 1;
        for (i, statement) in statements.into_iter().enumerate() {
            let df = sql::plan_statement(&ctx, statement).await.map_err(|e| {
                let missing_key = e
                    .to_string()
                    .contains("no public key with that id was given");
                let e = anyhow::Error::from(e);
                if missing_key {
                    e.context("pass the column's public key with --key public.json")
                } else {
                    e
                }
            })?;
            refuse_writes(df.logical_plan())?;
            if i < last {
                if let Err(e) = df.collect().await {
                    return Err(locate(&ctx, &tables, &keys, e).await);
                }
                continue;
            }
            // The output is checked before the query runs.
            let (out, format) = super::output_target(
                &args.output,
                args.format.as_deref(),
                args.force,
                Privacy::Shared,
            )?;
            let plan = df.create_physical_plan().await?;
            let mut stream = execute_stream(plan.clone(), ctx.task_ctx())?;
            let schema = stream.schema();
            let mode = match format {
                Format::Table | Format::Csv => Some(CipherText::Tag),
                Format::Json | Format::Ndjson => Some(CipherText::Hex),
                Format::Parquet => None,
            };
            let out_schema = if mode.is_some() {
                text_schema(&schema)
            } else {
                schema.clone()
            };
            let mut writer = BatchWriter::create(format, out, out_schema)?;
            while let Some(batch) = stream.next().await {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => return Err(locate(&ctx, &tables, &keys, e).await),
                };
                match mode {
                    Some(m) => writer.write(&render(&batch, m)?)?,
                    None => writer.write(&batch)?,
                }
            }
            writer.finish()?;
            if let (Some(path), Some(roster)) = (&args.request, &roster) {
                let request = make_request(
                    &sql_text,
                    &tables,
                    &plan,
                    roster,
                    &args.requester,
                    &recipient,
                    std::path::Path::new(&args.output),
                )?;
                let out = Output::file(path, args.force, Privacy::Shared)?;
                out.writer()?.write_all(request.to_json()?.as_bytes())?;
                out.commit()?;
                if !global.quiet {
                    eprintln!(
                        "request {} → {}: {} signed file(s) read; hospitals re-verify it with partial-decrypt --request",
                        request.request_id,
                        path.display(),
                        request.files.len()
                    );
                }
            }
        }
        Ok(())
    })
}

/// The public keys of `--key`, each pinned by one of `--key-id` when any is given.
fn key_ring(paths: &[PathBuf], pins: &[String]) -> anyhow::Result<KeyRing> {
    let pins = pins
        .iter()
        .map(|p| super::key_id_flag(Some(p)).map(Option::unwrap_or_default))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let mut keys = KeyRing::new();
    let mut matched = vec![false; pins.len()];
    for path in paths {
        let pk = keyfile::load_public(path)?;
        if !pins.is_empty() {
            match pins.iter().position(|p| p == pk.key_id()) {
                Some(i) => matched[i] = true,
                None => anyhow::bail!(
                    "key mismatch: {} has key id {}, which is not among the pinned ones ({}): one of its public parameters differs from the key the ceremony made",
                    path.display(),
                    pk.key_id(),
                    pins.join(", ")
                ),
            }
        }
        keys.add(pk);
    }
    if let Some(i) = matched.iter().position(|m| !m) {
        anyhow::bail!("--key-id {} is pinned but no --key has that id", pins[i]);
    }
    Ok(keys)
}

/// `--table NAME=LOCATION`, both non-empty.
fn table_flag(t: &str) -> anyhow::Result<(String, String)> {
    let (name, location) = t
        .split_once('=')
        .with_context(|| format!("--table {t}: expected NAME=LOCATION"))?;
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty(),
        "--table {t}: the table name is empty (expected NAME=LOCATION)"
    );
    anyhow::ensure!(
        !location.is_empty(),
        "--table {t}: the location is empty (expected NAME=LOCATION)"
    );
    Ok((name.to_owned(), location.to_owned()))
}

/// `query` writes only its `--output`: SQL that writes files (`COPY … TO`, `INSERT INTO` a
/// table stored on disk) would skip `--force`, the temporary-name rename and the path checks.
fn refuse_writes(plan: &LogicalPlan) -> anyhow::Result<()> {
    let mut found = None;
    plan.apply(|p| {
        found = match p {
            LogicalPlan::Copy(c) => Some(format!("COPY … TO '{}'", c.output_url)),
            LogicalPlan::Dml(d) if writes_files(d) => Some(format!("{} {}", d.op, d.table_name)),
            _ => None,
        };
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    match found {
        Some(what) => anyhow::bail!(
            "{what}: query writes its result only to --output (with --force, atomically); statements that write files are refused"
        ),
        None => Ok(()),
    }
}

/// A write into a table whose rows live in files (a listing table), not in memory.
fn writes_files(d: &datafusion::logical_expr::DmlStatement) -> bool {
    use datafusion::datasource::{source_as_provider, MemTable};
    source_as_provider(&d.target)
        .map(|t| !t.is::<MemTable>())
        .unwrap_or(true)
}

/// An execution error, with the file and row it came from where a scan of the tables can find
/// them: DataFusion's message names neither for a bad ciphertext or an unreadable page.
async fn locate(
    ctx: &SessionContext,
    tables: &[(String, String)],
    keys: &KeyRing,
    e: DataFusionError,
) -> anyhow::Error {
    let from_data = e.to_string().contains("not a valid ciphertext")
        || matches!(
            e.find_root(),
            DataFusionError::ParquetError(_) | DataFusionError::ArrowError(..)
        );
    if from_data {
        for (name, location) in tables {
            if let Ok(Some(found)) =
                sql::table::find_bad_value(&ctx.state(), name, location, keys).await
            {
                return anyhow::anyhow!("{e}; the first bad value: {found}");
            }
        }
    }
    e.into()
}
