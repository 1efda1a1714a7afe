//! `cipherlake query`: run SQL over the encrypted lake, as the untrusted cloud. Takes public keys
//! only; encrypted aggregates come out encrypted.

use std::path::PathBuf;

use anyhow::Context;
use cipherlake::lake::output::{BatchWriter, Format};
use cipherlake::paillier::keyfile;
use cipherlake::sql::display::{render, text_schema, CipherText};
use cipherlake::sql::{self, KeyRing};
use datafusion::sql::parser::DFParser;
use futures::StreamExt;

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
    /// table, csv, json, ndjson or parquet (default: from the output's extension; table on stdout).
    #[arg(long)]
    format: Option<String>,
    /// Where to write the result (`-`: standard output).
    #[arg(long, default_value = "-", value_name = "PATH|-")]
    output: String,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// DataFusion partitions (default: one per core).
    #[arg(long, value_name = "N")]
    partitions: Option<usize>,
}

pub(crate) fn run(args: Args, _global: &Global) -> anyhow::Result<()> {
    let mut keys = KeyRing::new();
    for k in &args.keys {
        keys.add(keyfile::load_public(k)?);
    }
    let sql_text = match (&args.command, &args.file) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => anyhow::bail!("give SQL with -c or -f"),
    };
    let (out_path, format) = super::output_target(&args.output, args.format.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the query runtime")?;
    runtime.block_on(async {
        let ctx = sql::session(keys.clone(), args.partitions);
        for t in &args.tables {
            let (name, location) = t
                .split_once('=')
                .with_context(|| format!("--table {t}: expected NAME=LOCATION"))?;
            sql::register_table(&ctx, name, location, &keys)
                .await
                .with_context(|| format!("cannot register table `{name}` at {location}"))?;
        }
        let statements = DFParser::parse_sql(&sql_text).context("SQL syntax error")?;
        anyhow::ensure!(!statements.is_empty(), "no SQL statement given");
        let last = statements.len() - 1;
        for (i, statement) in statements.into_iter().enumerate() {
            let df = sql::plan_statement(&ctx, statement).await?;
            if i < last {
                df.collect().await?;
                continue;
            }
            let mut stream = df.execute_stream().await?;
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
            let mut writer =
                BatchWriter::create(format, out_path.as_deref(), out_schema, args.force)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                match mode {
                    Some(m) => writer.write(&render(&batch, m)?)?,
                    None => writer.write(&batch)?,
                }
            }
            writer.finish()?;
        }
        Ok(())
    })
}
